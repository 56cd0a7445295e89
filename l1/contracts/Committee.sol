// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Committee selection for the tandem Rollup: the per-epoch snapshot history and the
/// unbiased draw. Internal functions only, so they are inlined into the Rollup.

/// @notice Per-epoch (epoch, validator count, seed) history, append-only.
library EpochSnapshots {
    struct Snapshot {
        uint64 epoch;
        uint64 validatorCount;
        uint128 seed;
    }

    /// @dev Records (epoch, validator count, seed) once per epoch; later calls in the same epoch
    /// only refresh the count. The new seed chains the previous one with `randomness`.
    function record(Snapshot[] storage history, uint256 epoch, uint256 validatorCount, uint256 randomness)
        internal
    {
        Snapshot storage last = history[history.length - 1];
        if (last.epoch == epoch) {
            last.validatorCount = uint64(validatorCount);
            return;
        }
        uint128 seed = uint128(uint256(keccak256(abi.encode(last.seed, randomness, epoch))));
        history.push(Snapshot({epoch: uint64(epoch), validatorCount: uint64(validatorCount), seed: seed}));
    }

    /// @dev The latest snapshot taken at or before `epoch` (the first one if none). Binary
    /// search: O(log n).
    function latestAt(Snapshot[] storage history, uint256 epoch) internal view returns (Snapshot memory) {
        uint256 low;
        uint256 high = history.length;
        while (high - low > 1) {
            uint256 mid = (low + high) / 2;
            if (history[mid].epoch <= epoch) low = mid;
            else high = mid;
        }
        return history[low];
    }
}

/// @notice A partial Fisher-Yates shuffle of
/// the indices [0, count): draw i swaps position i with a uniform position in [i, count). Only
/// the swapped positions are remembered, in a small in-memory hash table (at most 2 * size
/// entries), so the cost depends on the committee size, not on the number of validators, and
/// every committee of that size is equally likely.
library CommitteeSampling {
    /// @dev `size` distinct indices of [0, count), uniformly: step i swaps position i with
    /// position j uniform in [i, count) and takes what lands at i. Positions never swapped hold
    /// their own index; swapped ones live in an open-addressing table of 2^k >= 2 * size slots
    /// (a key is stored as position + 1, so 0 means empty), at most half full. Positions are
    /// uniform draws (or 0..size), so the low bits are their hash.
    function sampleIndices(uint256 seed, uint256 count, uint256 size) internal pure returns (uint256[] memory out) {
        out = new uint256[](size);
        uint256 capacity = 1;
        while (capacity < 2 * size) capacity <<= 1;
        uint256[] memory keys = new uint256[](capacity);
        uint256[] memory values = new uint256[](capacity);
        uint256 mask = capacity - 1;
        for (uint256 i; i < size; ++i) {
            uint256 j = i + uint256(keccak256(abi.encode(seed, i))) % (count - i);
            (uint256 slotJ, uint256 atJ) = lookup(keys, values, mask, j);
            (, uint256 atI) = lookup(keys, values, mask, i);
            out[i] = atJ;
            // Position j now holds what position i held; position i is never read again. Both
            // lookups ran before this write, so slotJ is still j's slot (or its empty one).
            keys[slotJ] = j + 1;
            values[slotJ] = atI;
        }
    }

    /// @dev The table slot of `position` (its own or the empty one it would go to) and the
    /// index it holds.
    function lookup(uint256[] memory keys, uint256[] memory values, uint256 mask, uint256 position)
        internal
        pure
        returns (uint256 slot, uint256 index)
    {
        slot = position & mask;
        while (true) {
            uint256 key = keys[slot];
            if (key == 0) return (slot, position);
            if (key == position + 1) return (slot, values[slot]);
            slot = (slot + 1) & mask;
        }
    }
}
