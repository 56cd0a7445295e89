// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "../Rollup.sol";
import {TestBase} from "./Cheats.sol";

/// @notice Deploys a rollup with validators whose private keys are 1..n (so tests can sign).
abstract contract Fixture is TestBase {
    uint256 internal constant GENESIS = 1_000_000;
    uint256 internal constant SLOT = 4;
    uint256 internal constant EPOCH = 8;

    function config(uint256 committeeSize) internal pure returns (Rollup.Config memory) {
        return Rollup.Config({
            genesisTime: GENESIS,
            slotDuration: SLOT,
            l1SlotDuration: 2,
            epochDuration: EPOCH,
            committeeSize: committeeSize,
            manaTarget: 1_000_000,
            manaLimit: 2_000_000,
            minFeePerMana: 1_000,
            feeUpdateFraction: 5_000_000,
            initialEthPerFeeAsset: 1e12,
            l2ChainId: 1337,
            genesisArchive: keccak256("genesis"),
            blockDurationMs: 1_000,
            lastBlockReexecutionBudgetMs: 1_000,
            pipeliningMode: 1,
            maxCheckpointBodyBytes: 120 * 1024,
            rollupVersion: 1
        });
    }

    function validatorAddresses(uint256 first, uint256 count) internal pure returns (address[] memory out) {
        out = new address[](count);
        for (uint256 i; i < count; ++i) out[i] = vm.addr(first + i);
    }

    function deploy(uint256 validatorCount, uint256 committeeSize) internal returns (Rollup) {
        vm.prevrandao(keccak256("fixed seed"));
        vm.warp(GENESIS);
        return new Rollup(config(committeeSize), address(this), validatorAddresses(1, validatorCount));
    }
}
