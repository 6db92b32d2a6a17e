// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @notice The gas anchor of bench/gas.py: a plain OpenZeppelin 5 ERC-721 with an open mint.
contract BenchERC721 is ERC721 {
    constructor() ERC721("Bench", "BENCH") {}

    function mint(address to, uint256 tokenId) external {
        _mint(to, tokenId);
    }
}
