// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IModelRegistryForAttack {
    function createModel(bytes32 slugHash, uint96 price, uint64 licenseDuration, bytes32 parentId, uint16 upstreamBps)
        external
        returns (bytes32);
    function withdraw() external;
}

/// @notice Test-only attacker: a vendor contract whose receive hook re-enters `withdraw`.
/// With `swallow` set it catches the failed re-entry (so the outer withdraw can finish);
/// otherwise the failed re-entry bubbles up and the whole withdraw reverts.
contract ReentrantWithdrawer {
    IModelRegistryForAttack public immutable registry;
    bool public swallow;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;

    constructor(address registry_, bool swallow_) {
        registry = IModelRegistryForAttack(registry_);
        swallow = swallow_;
    }

    function register(bytes32 slugHash, uint96 price) external returns (bytes32) {
        return registry.createModel(slugHash, price, 0, bytes32(0), 0);
    }

    function attack() external {
        registry.withdraw();
    }

    receive() external payable {
        if (reentryAttempts >= 3) return;
        reentryAttempts += 1;
        if (swallow) {
            try registry.withdraw() {
                reentrySuccesses += 1;
            } catch {}
        } else {
            registry.withdraw();
            reentrySuccesses += 1;
        }
    }
}
