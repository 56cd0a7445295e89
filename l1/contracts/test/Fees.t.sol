// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "../Rollup.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Properties of the fee model over arbitrary fee headers (the Rust model is checked
/// against the same functions by l1/tests/anvil.rs).
contract FeesTest is Fixture {
    Rollup internal rollup;

    function setUp() public {
        rollup = deploy(4, 4);
    }

    function header(uint64 used, uint64 excess, uint64 price) internal view returns (uint256) {
        return rollup.packFeeHeader(used, excess, price);
    }

    function testFuzz_PackRoundTrips(uint64 used, uint64 excess, uint64 price) public view {
        (uint256 u, uint256 e, uint256 p) = rollup.unpackFeeHeader(header(used, excess, price));
        assertEq(u, used, "mana used");
        assertEq(e, excess, "excess");
        assertEq(p, price, "price");
    }

    function testFuzz_ExcessFollowsTheTarget(uint64 used, uint64 excess) public view {
        uint256 child = rollup.childExcessMana(header(used, excess, 1e12));
        uint256 total = uint256(used) + excess;
        uint256 expected = total <= 1_000_000 ? 0 : total - 1_000_000;
        if (expected > type(uint64).max) expected = type(uint64).max;
        assertEq(child, expected, "child excess");
    }

    function testFuzz_MinFeeIsMonotoneInExcessAndBounded(uint64 excessA, uint64 excessB, uint64 price) public view {
        vm.assume(price >= rollup.MIN_ETH_PER_FEE_ASSET() && price <= rollup.MAX_ETH_PER_FEE_ASSET());
        (uint64 low, uint64 high) = excessA <= excessB ? (excessA, excessB) : (excessB, excessA);
        uint256 feeLow = rollup.computeManaMinFee(header(0, low, price));
        uint256 feeHigh = rollup.computeManaMinFee(header(0, high, price));
        assertTrue(feeLow <= feeHigh, "fee must not fall as excess grows");
        assertTrue(feeHigh <= type(uint128).max, "fee fits u128");
        // At zero excess the fee is the minimum, converted at the price.
        uint256 base = rollup.computeManaMinFee(header(0, 0, price));
        assertEq(base, (1_000 * uint256(1e12)) / price, "base fee");
    }

    function testFuzz_ModifierIsBoundedAndPriceClamped(uint64 price, int256 modifier_, uint64 used) public {
        vm.assume(price >= rollup.MIN_ETH_PER_FEE_ASSET() && price <= rollup.MAX_ETH_PER_FEE_ASSET());
        uint256 parent = header(0, 0, price);
        if (modifier_ > 100 || modifier_ < -100) {
            vm.expectRevert(abi.encodeWithSelector(Rollup.InvalidFeeAssetPriceModifier.selector, modifier_));
            rollup.computeChildFeeHeader(parent, used, modifier_);
            return;
        }
        (uint256 u,, uint256 p) = rollup.unpackFeeHeader(rollup.computeChildFeeHeader(parent, used, modifier_));
        assertEq(u, used, "mana used carried");
        assertTrue(p >= rollup.MIN_ETH_PER_FEE_ASSET() && p <= rollup.MAX_ETH_PER_FEE_ASSET(), "price clamped");
        // Never more than 1 % away from the parent's price (before clamping).
        uint256 raw = (uint256(price) * uint256(int256(10_000) + modifier_)) / 10_000;
        if (raw >= rollup.MIN_ETH_PER_FEE_ASSET() && raw <= rollup.MAX_ETH_PER_FEE_ASSET()) {
            assertEq(p, raw, "price step");
        }
    }

    function testFuzz_FakeExponentialOfZeroIsTheFactor(uint64 factor, uint64 denominator) public view {
        vm.assume(denominator > 0);
        assertEq(rollup.fakeExponential(factor, 0, denominator), factor, "e^0");
    }
}
