// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The fee model of the tandem Rollup
/// @notice Internal functions only, so they are inlined into the Rollup (no external call, no
/// storage). `l1/src/fees.rs` computes the same values; a differential test over `eth_call`
/// keeps them equal.
///
/// Fee header (one word): bits 0..63 mana used, 64..127 excess mana, 128..191 fee-asset price
/// (ETH per fee asset, PRICE_PRECISION = 1.0).
library FeeMath {
    uint256 internal constant PRICE_PRECISION = 1e12;
    uint256 internal constant MIN_ETH_PER_FEE_ASSET = 1e6;
    uint256 internal constant MAX_ETH_PER_FEE_ASSET = 1e18;
    /// The fee exponent (excess / fraction) is capped here so the fee stays finite and
    /// `propose` can never overflow: e^32 ~ 7.9e13.
    uint256 internal constant MAX_FEE_EXPONENT = 32;

    function pack(uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset) internal pure returns (uint256) {
        return uint64(manaUsed) | (uint256(uint64(excessMana)) << 64) | (uint256(uint64(ethPerFeeAsset)) << 128);
    }

    function unpack(uint256 feeHeader)
        internal
        pure
        returns (uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
    {
        manaUsed = uint64(feeHeader);
        excessMana = uint64(feeHeader >> 64);
        ethPerFeeAsset = uint64(feeHeader >> 128);
    }

    /// @notice max(0, parent excess + parent mana used - target), saturating at 2^64 - 1.
    function childExcessMana(uint256 parentFeeHeader, uint256 manaTarget) internal pure returns (uint256) {
        (uint256 manaUsed, uint256 excess,) = unpack(parentFeeHeader);
        uint256 total = excess + manaUsed;
        if (total <= manaTarget) return 0;
        uint256 child = total - manaTarget;
        return child > type(uint64).max ? type(uint64).max : child;
    }

    /// @notice fake_exponential(minFeePerMana, excess, fraction) * PRICE_PRECISION / price, the
    /// exponent capped at MAX_FEE_EXPONENT, the result saturating at 2^128 - 1.
    function manaMinFee(uint256 parentFeeHeader, uint256 manaTarget, uint256 minFeePerMana, uint256 fraction)
        internal
        pure
        returns (uint256)
    {
        uint256 excess = childExcessMana(parentFeeHeader, manaTarget);
        uint256 cap = MAX_FEE_EXPONENT * fraction;
        if (excess > cap) excess = cap;
        (,, uint256 ethPerFeeAsset) = unpack(parentFeeHeader);
        uint256 fee = (fakeExponential(minFeePerMana, excess, fraction) * PRICE_PRECISION) / ethPerFeeAsset;
        return fee > type(uint128).max ? type(uint128).max : fee;
    }

    /// @notice The parent's price moved by `modifierBps` (the caller bounds it), clamped to
    /// [MIN_ETH_PER_FEE_ASSET, MAX_ETH_PER_FEE_ASSET].
    function childPrice(uint256 parentFeeHeader, int256 modifierBps) internal pure returns (uint256 price) {
        (,, uint256 parentPrice) = unpack(parentFeeHeader);
        price = (parentPrice * uint256(int256(10_000) + modifierBps)) / 10_000;
        if (price < MIN_ETH_PER_FEE_ASSET) price = MIN_ETH_PER_FEE_ASSET;
        if (price > MAX_ETH_PER_FEE_ASSET) price = MAX_ETH_PER_FEE_ASSET;
    }

    /// @notice factor * e^(numerator / denominator), approximated by its Taylor series (EIP-4844).
    function fakeExponential(uint256 factor, uint256 numerator, uint256 denominator) internal pure returns (uint256) {
        uint256 output;
        uint256 accumulator = factor * denominator;
        for (uint256 i = 1; accumulator > 0; ++i) {
            output += accumulator;
            accumulator = (accumulator * numerator) / (denominator * i);
        }
        return output / denominator;
    }
}
