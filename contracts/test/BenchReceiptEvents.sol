// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @dev Bench only (bench/gas.py): the alternative to anchoring a Merkle root, one event per receipt
 * carrying just its leaf hash (the least a per-receipt record on chain can hold), to put the gas
 * per receipt of {ModelRegistry-anchorReceipts} in proportion.
 */
contract BenchReceiptEvents {
    event ReceiptLogged(bytes32 indexed leaf);

    function logReceipts(bytes32[] calldata leaves) external {
        for (uint256 i; i < leaves.length; ++i) {
            emit ReceiptLogged(leaves[i]);
        }
    }
}
