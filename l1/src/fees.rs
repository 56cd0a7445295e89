//! The fee model, identical to the contract's (a differential test against `eth_call` keeps it so).
//!
//! The min fee per mana of checkpoint K is a pure function of K−1's fee header: an EIP-4844-style
//! `fake_exponential` over the excess mana K inherits, converted to the fee asset at K−1's price.
//! The fee header stored for K carries K's mana used, that excess, and K−1's price moved by K's
//! modifier (±1 % at most).

use alloy::primitives::U256;

/// 1.0 in the fixed-point fee-asset price.
pub const PRICE_PRECISION: u64 = 1_000_000_000_000;
/// Lowest fee-asset price.
pub const MIN_ETH_PER_FEE_ASSET: u64 = 1_000_000;
/// Highest fee-asset price.
pub const MAX_ETH_PER_FEE_ASSET: u64 = 1_000_000_000_000_000_000;
pub use tandem_proto::MAX_FEE_ASSET_PRICE_MODIFIER_BPS;
/// Cap on `excess / fee_update_fraction` (e^32 ≈ 7.9e13), so the fee stays finite.
pub const MAX_FEE_EXPONENT: u64 = 32;

/// The fee state of one checkpoint, as stored in one word on L1.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct FeeHeader {
    /// Mana used by the checkpoint.
    pub mana_used: u64,
    /// Excess mana carried into the checkpoint.
    pub excess_mana: u64,
    /// ETH per fee asset (fixed point, [`PRICE_PRECISION`] = 1.0).
    pub eth_per_fee_asset: u64,
}

impl FeeHeader {
    /// The packed word: bits 0..63 mana used, 64..127 excess, 128..191 price.
    pub fn pack(&self) -> U256 {
        U256::from(self.mana_used)
            | (U256::from(self.excess_mana) << 64)
            | (U256::from(self.eth_per_fee_asset) << 128)
    }

    /// Unpacks a word; bits above 191 are ignored, as the contract does.
    pub fn unpack(word: U256) -> Self {
        let limb = |i: usize| word.as_limbs()[i];
        Self {
            mana_used: limb(0),
            excess_mana: limb(1),
            eth_per_fee_asset: limb(2),
        }
    }
}

/// Why a fee could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// The modifier is outside ±[`MAX_FEE_ASSET_PRICE_MODIFIER_BPS`].
    #[error("fee-asset price modifier {0} bps is outside ±{MAX_FEE_ASSET_PRICE_MODIFIER_BPS}")]
    ModifierOutOfRange(i64),
    /// The parent's price is zero (never produced by the contract).
    #[error("parent fee header has a zero fee-asset price")]
    ZeroPrice,
    /// `fake_exponential` was given a zero denominator (`fee_update_fraction = 0`, which no
    /// deployment accepts).
    #[error("fee exponent denominator (fee_update_fraction) is zero")]
    ZeroDenominator,
    /// `fake_exponential` overflowed 256 bits (the contract reverts on the same inputs), or the
    /// fee does not fit the header's uint128 `feePerMana` (no checkpoint could carry it).
    #[error("fee overflows (256-bit exponential, or a fee above uint128)")]
    Overflow,
}

/// Fee parameters of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeParams {
    /// Mana per checkpoint above which the fee rises.
    pub mana_target: u64,
    /// Fee per mana (in ETH terms) at zero excess.
    pub min_fee_per_mana: u64,
    /// Denominator of the exponent: larger means slower fee changes.
    pub fee_update_fraction: u64,
}

impl FeeParams {
    /// Excess mana of the child: `max(0, excess + used − target)`, saturating at `u64::MAX`.
    pub fn child_excess_mana(&self, parent: &FeeHeader) -> u64 {
        let total = u128::from(parent.excess_mana) + u128::from(parent.mana_used);
        let excess = total.saturating_sub(u128::from(self.mana_target));
        u64::try_from(excess).unwrap_or(u64::MAX)
    }

    /// The fee per mana (in fee asset) the child of `parent` must carry.
    pub fn min_fee_per_mana(&self, parent: &FeeHeader) -> Result<u128, FeeError> {
        if parent.eth_per_fee_asset == 0 {
            return Err(FeeError::ZeroPrice);
        }
        let cap = U256::from(MAX_FEE_EXPONENT) * U256::from(self.fee_update_fraction);
        let excess = U256::from(self.child_excess_mana(parent)).min(cap);
        let fee_in_eth = fake_exponential(
            U256::from(self.min_fee_per_mana),
            excess,
            U256::from(self.fee_update_fraction),
        )?;
        let fee = fee_in_eth
            .checked_mul(U256::from(PRICE_PRECISION))
            .ok_or(FeeError::Overflow)?
            / U256::from(parent.eth_per_fee_asset);
        // No uint128 `feePerMana` can equal a larger uint256 fee: L1 would refuse every
        // checkpoint, so a validator must not accept a saturated one.
        u128::try_from(fee).map_err(|_| FeeError::Overflow)
    }

    /// The fee header the contract stores for a child of `parent` using `mana_used`.
    pub fn child_fee_header(
        &self,
        parent: &FeeHeader,
        mana_used: u64,
        fee_asset_price_modifier: i64,
    ) -> Result<FeeHeader, FeeError> {
        // unsigned_abs: abs() would overflow on i64::MIN.
        if fee_asset_price_modifier.unsigned_abs() > MAX_FEE_ASSET_PRICE_MODIFIER_BPS.unsigned_abs()
        {
            return Err(FeeError::ModifierOutOfRange(fee_asset_price_modifier));
        }
        // Within ±100 the factor is in 9_900..=10_100: no overflow, never negative.
        let factor = u128::try_from(10_000i64.saturating_add(fee_asset_price_modifier))
            .map_err(|_| FeeError::ModifierOutOfRange(fee_asset_price_modifier))?;
        let price = u128::from(parent.eth_per_fee_asset).saturating_mul(factor) / 10_000;
        let price = price.clamp(
            u128::from(MIN_ETH_PER_FEE_ASSET),
            u128::from(MAX_ETH_PER_FEE_ASSET),
        );
        Ok(FeeHeader {
            mana_used,
            excess_mana: self.child_excess_mana(parent),
            eth_per_fee_asset: u64::try_from(price).unwrap_or(u64::MAX),
        })
    }
}

/// `factor · e^(numerator / denominator)` by its Taylor series, exactly as EIP-4844 (and the
/// contract) computes it, in 256-bit integers. A zero denominator or a term that overflows 256
/// bits (where the contract's checked arithmetic reverts) is an error, never a panic.
pub fn fake_exponential(
    factor: U256,
    numerator: U256,
    denominator: U256,
) -> Result<U256, FeeError> {
    if denominator.is_zero() {
        return Err(FeeError::ZeroDenominator);
    }
    let mut output = U256::ZERO;
    let mut accumulator = factor.checked_mul(denominator).ok_or(FeeError::Overflow)?;
    let mut i = U256::from(1);
    while !accumulator.is_zero() {
        output = output.checked_add(accumulator).ok_or(FeeError::Overflow)?;
        let divisor = denominator.checked_mul(i).ok_or(FeeError::Overflow)?;
        accumulator = accumulator
            .checked_mul(numerator)
            .ok_or(FeeError::Overflow)?
            / divisor;
        i += U256::from(1);
    }
    Ok(output / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> FeeParams {
        FeeParams {
            mana_target: 1_000_000,
            min_fee_per_mana: 1_000,
            fee_update_fraction: 5_000_000,
        }
    }

    #[test]
    fn pack_round_trip() {
        let header = FeeHeader {
            mana_used: 7,
            excess_mana: u64::MAX,
            eth_per_fee_asset: 3,
        };
        assert_eq!(FeeHeader::unpack(header.pack()), header);
    }

    #[test]
    fn fee_rises_with_excess_and_is_flat_below_target() {
        let p = params();
        let base = FeeHeader {
            mana_used: 0,
            excess_mana: 0,
            eth_per_fee_asset: PRICE_PRECISION,
        };
        assert_eq!(p.min_fee_per_mana(&base), Ok(1_000));
        let at_target = FeeHeader {
            mana_used: 1_000_000,
            ..base
        };
        assert_eq!(p.child_excess_mana(&at_target), 0);
        let congested = FeeHeader {
            mana_used: 2_000_000,
            excess_mana: 4_000_000,
            ..base
        };
        assert_eq!(p.child_excess_mana(&congested), 5_000_000);
        // e^1 ≈ 2.718
        assert_eq!(p.min_fee_per_mana(&congested), Ok(2_718));
        // A fee asset worth twice as much ETH halves the fee in fee asset.
        let dearer = FeeHeader {
            eth_per_fee_asset: 2 * PRICE_PRECISION,
            ..congested
        };
        assert_eq!(p.min_fee_per_mana(&dearer), Ok(1_359));
    }

    #[test]
    fn modifier_moves_price_within_bounds() {
        let p = params();
        let parent = FeeHeader {
            mana_used: 0,
            excess_mana: 0,
            eth_per_fee_asset: PRICE_PRECISION,
        };
        let up = p.child_fee_header(&parent, 5, 100).unwrap();
        assert_eq!(up.eth_per_fee_asset, PRICE_PRECISION / 100 * 101);
        assert_eq!(up.mana_used, 5);
        assert_eq!(
            p.child_fee_header(&parent, 5, 101),
            Err(FeeError::ModifierOutOfRange(101))
        );
        for extreme in [i64::MIN, i64::MAX, -101] {
            assert_eq!(
                p.child_fee_header(&parent, 5, extreme),
                Err(FeeError::ModifierOutOfRange(extreme))
            );
        }
        let floor = FeeHeader {
            eth_per_fee_asset: MIN_ETH_PER_FEE_ASSET,
            ..parent
        };
        assert_eq!(
            p.child_fee_header(&floor, 0, -100)
                .unwrap()
                .eth_per_fee_asset,
            MIN_ETH_PER_FEE_ASSET
        );
    }

    #[test]
    fn fake_exponential_refuses_a_zero_denominator_and_overflow() {
        let one = U256::from(1);
        assert_eq!(
            fake_exponential(one, one, U256::ZERO),
            Err(FeeError::ZeroDenominator)
        );
        assert_eq!(
            fake_exponential(U256::MAX, one, U256::from(2)),
            Err(FeeError::Overflow)
        );
        // 1000 · e^1 ≈ 2718.
        let million = U256::from(1_000_000);
        assert_eq!(
            fake_exponential(U256::from(1_000), million, million),
            Ok(U256::from(2_718))
        );
        let zero_fraction = FeeParams {
            fee_update_fraction: 0,
            ..params()
        };
        let parent = FeeHeader {
            eth_per_fee_asset: PRICE_PRECISION,
            ..FeeHeader::default()
        };
        assert_eq!(
            zero_fraction.min_fee_per_mana(&parent),
            Err(FeeError::ZeroDenominator)
        );
    }

    #[test]
    fn a_fee_above_u128_is_an_error_not_saturated() {
        let p = FeeParams {
            mana_target: 1,
            min_fee_per_mana: u64::MAX,
            fee_update_fraction: 1,
        };
        let parent = FeeHeader {
            mana_used: u64::MAX,
            excess_mana: u64::MAX,
            eth_per_fee_asset: MIN_ETH_PER_FEE_ASSET,
        };
        assert_eq!(p.min_fee_per_mana(&parent), Err(FeeError::Overflow));
    }
}
