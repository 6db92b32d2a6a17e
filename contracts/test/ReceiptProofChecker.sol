// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/**
 * @dev Test only: checks a download receipt's proof with OpenZeppelin's own {MerkleProof.verify}
 * and computes its leaf with the StandardMerkleTree double hash, so the Python library
 * (hallmark.receipts) is held to what a contract would accept (tests/registry/test_receipts_contract.py).
 */
contract ReceiptProofChecker {
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verify(proof, root, leaf);
    }

    /// @dev The leaf of a receipt: fields in the order and types of docs/recorder.md.
    function leaf(
        bytes32 receiptId,
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 fileSha256,
        address licensee,
        address device,
        uint64 rangeStart,
        uint64 rangeEnd,
        uint64 servedAt
    ) external pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        receiptId, modelId, version, rootDigest, fileSha256, licensee, device, rangeStart, rangeEnd, servedAt
                    )
                )
            )
        );
    }
}
