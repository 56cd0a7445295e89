// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "../Rollup.sol";
import {Fixture} from "./Fixture.sol";

/// @notice The committee draw the contract used before (uniform start, linear probing past taken
/// indices), kept here only to show the fairness test can tell a biased draw from a fair one.
library LegacyDraw {
    function committee(uint256 seed, uint256 epoch, uint256 count, uint256 size)
        internal
        pure
        returns (uint256[] memory out)
    {
        out = new uint256[](size);
        bool[] memory taken = new bool[](count);
        for (uint256 i; i < size; ++i) {
            uint256 index = uint256(keccak256(abi.encode(seed, epoch, i))) % count;
            while (taken[index]) index = (index + 1) % count;
            taken[index] = true;
            out[i] = index;
        }
    }
}

contract SamplingTest is Fixture {
    uint256 internal constant VALIDATORS = 100;
    uint256 internal constant COMMITTEE = 48;
    uint256 internal constant EPOCHS = 20_000;
    /// @dev Critical values (x1000) at p = 0.001 of the statistics below, derived by
    /// scripts/sampling-chi2-critical.py. Each cell is binomial, so a squared deviation is divided
    /// by E(1 - p); the statistic is then a weighted sum of chi2_1 over the eigenvalues of the
    /// cells' correlation. Members: the counts sum to N k exactly, so it is (100/99) chi2_99
    /// (148.23 x 100/99). Adjacent pairs: overlapping pairs are correlated, weights 0.35..1.66.
    uint256 internal constant CHI2_MEMBERS_P001_X1000 = 149_728;
    uint256 internal constant CHI2_PAIRS_P001_X1000 = 156_029;

    Rollup internal rollup;
    mapping(address => uint256) internal indexOf;

    function setUp() public {
        rollup = deploy(VALIDATORS, COMMITTEE);
        address[] memory all = rollup.getValidators();
        for (uint256 i; i < all.length; ++i) indexOf[all[i]] = i;
    }

    /// @dev 1000 * sum((observed - E)^2 / (E (1 - p))) over the cells: each cell counts a
    /// per-epoch event of chance p = pNum / pDen over `epochs` epochs, so E = epochs * p and the
    /// cell's variance is E (1 - p).
    function chiSquareX1000(uint256[] memory observed, uint256 epochs, uint256 pNum, uint256 pDen)
        internal
        pure
        returns (uint256 sum)
    {
        // Everything scaled by pDen: E pDen = epochs pNum, and E (1 - p) pDen^2 = that (pDen - pNum).
        uint256 expected = epochs * pNum;
        uint256 variance = expected * (pDen - pNum);
        for (uint256 i; i < observed.length; ++i) {
            uint256 o = observed[i] * pDen;
            uint256 diff = o > expected ? o - expected : expected - o;
            sum += (diff * diff * 1000) / variance;
        }
    }

    /// @dev Per-validator inclusion counts and per-adjacent-pair (i, i+1 mod n) co-inclusion
    /// counts over `EPOCHS` committees, from the contract or from the legacy draw.
    function tally(bool legacy) internal view returns (uint256[] memory single, uint256[] memory pairs) {
        single = new uint256[](VALIDATORS);
        pairs = new uint256[](VALIDATORS);
        uint256 seed = rollup.getEpochSeed(0);
        for (uint256 epoch; epoch < EPOCHS; ++epoch) {
            // Memory is never freed inside one call: reuse it for every epoch, or 20,000 epochs
            // pay quadratic memory expansion.
            uint256 mark;
            assembly {
                mark := mload(0x40)
            }
            bool[] memory member = new bool[](VALIDATORS);
            if (legacy) {
                uint256[] memory drawn = LegacyDraw.committee(seed, epoch, VALIDATORS, COMMITTEE);
                for (uint256 i; i < COMMITTEE; ++i) member[drawn[i]] = true;
            } else {
                address[] memory drawn = rollup.getEpochCommittee(epoch);
                for (uint256 i; i < COMMITTEE; ++i) member[indexOf[drawn[i]]] = true;
            }
            for (uint256 v; v < VALIDATORS; ++v) {
                if (!member[v]) continue;
                ++single[v];
                if (member[(v + 1) % VALIDATORS]) ++pairs[v];
            }
            assembly {
                mstore(0x40, mark)
            }
        }
    }

    /// @notice 100 validators, committee 48, 20,000 epochs (the genesis snapshot's fixed seed):
    /// every validator is drawn as often as chance allows, and so is every adjacent pair. The
    /// legacy draw passes the first test (its start is uniform, so each validator's marginal
    /// chance is exact) but fails the second: a validator right after a taken index is taken
    /// far more often.
    function test_DrawIsUniformAndTheLegacyDrawIsNot() public view {
        // Chances per epoch: k / n for a validator, k (k-1) / (n (n-1)) for an adjacent pair.
        uint256 memberNum = COMMITTEE;
        uint256 memberDen = VALIDATORS;
        uint256 pairNum = COMMITTEE * (COMMITTEE - 1);
        uint256 pairDen = VALIDATORS * (VALIDATORS - 1);

        (uint256[] memory single, uint256[] memory pairs) = tally(false);
        uint256 chiSingle = chiSquareX1000(single, EPOCHS, memberNum, memberDen);
        uint256 chiPairs = chiSquareX1000(pairs, EPOCHS, pairNum, pairDen);
        (uint256[] memory legacySingle, uint256[] memory legacyPairs) = tally(true);
        uint256 legacyChiSingle = chiSquareX1000(legacySingle, EPOCHS, memberNum, memberDen);
        uint256 legacyChiPairs = chiSquareX1000(legacyPairs, EPOCHS, pairNum, pairDen);
        log("chi2 x1000, members, new draw   ", chiSingle);
        log("chi2 x1000, pairs, new draw     ", chiPairs);
        log("chi2 x1000, members, legacy draw", legacyChiSingle);
        log("chi2 x1000, pairs, legacy draw  ", legacyChiPairs);
        log("critical value x1000, members (p = 0.001)", CHI2_MEMBERS_P001_X1000);
        log("critical value x1000, pairs (p = 0.001)  ", CHI2_PAIRS_P001_X1000);

        assertTrue(chiSingle < CHI2_MEMBERS_P001_X1000, string.concat("members chi2 x1000 = ", _str(chiSingle)));
        assertTrue(chiPairs < CHI2_PAIRS_P001_X1000, string.concat("pairs chi2 x1000 = ", _str(chiPairs)));
        assertTrue(legacyChiSingle < CHI2_MEMBERS_P001_X1000, "legacy marginals are uniform");
        assertTrue(
            legacyChiPairs > CHI2_PAIRS_P001_X1000, string.concat("legacy pairs chi2 x1000 = ", _str(legacyChiPairs))
        );
    }

    /// @notice Any seed and epoch: the committee has the right size, no repeats, only registered
    /// validators, and the epoch's proposers are members.
    function testFuzz_CommitteesAreDistinctRegisteredMembers(uint256 epoch, uint256 slotInEpoch) public view {
        epoch = epoch % 1e12;
        address[] memory committee = rollup.getEpochCommittee(epoch);
        assertEq(committee.length, COMMITTEE, "committee size");
        bool[] memory seen = new bool[](VALIDATORS);
        for (uint256 i; i < committee.length; ++i) {
            uint256 index = indexOf[committee[i]];
            assertTrue(rollup.getValidators()[index] == committee[i], "a registered validator");
            assertTrue(!seen[index], "no repeats");
            seen[index] = true;
        }
        address proposer = rollup.getProposerForSlot(epoch * EPOCH + (slotInEpoch % EPOCH));
        assertTrue(seen[indexOf[proposer]] && proposer != address(0), "the proposer is a member");
    }

    /// @notice Smaller sets: committee = everyone (rotation), and committee of one.
    function testFuzz_SmallValidatorSets(uint8 count, uint8 size, uint256 epoch) public {
        count = uint8(bound(count, 1, 40));
        size = uint8(bound(size, 1, 40));
        Rollup small = deploy(count, size);
        address[] memory committee = small.getEpochCommittee(epoch % 1e12);
        assertEq(committee.length, size < count ? size : count, "committee size");
        for (uint256 i; i < committee.length; ++i) {
            for (uint256 j; j < i; ++j) assertTrue(committee[i] != committee[j], "no repeats");
        }
    }

    function bound(uint256 value, uint256 low, uint256 high) internal pure returns (uint256) {
        return low + value % (high - low + 1);
    }
}
