//! EIP-1559 fees: the first attempt from the node's fee history, replacements bumped by what
//! mempools require, both under the operator's cap.

use alloy::rpc::types::FeeHistory;

use crate::config::PublisherConfig;

/// Blocks of fee history read per estimate.
pub(crate) const FEE_HISTORY_BLOCKS: u64 = 5;
/// Percentile of the priority fees paid in those blocks (the reference's `p75_competitive`).
pub(crate) const PRIORITY_FEE_PERCENTILE: f64 = 75.0;
/// The fee cap covers this multiple of the next block's base fee: six full blocks in a row
/// (+12.5 % each) before the tx is priced out.
pub(crate) const BASE_FEE_HEADROOM: u128 = 2;

/// What the L1 node's fee history says about the next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FeeEstimate {
    /// Base fee of the next block, wei.
    pub(crate) next_base_fee: u128,
    /// Median of the recent blocks' 75th-percentile priority fees, wei.
    pub(crate) priority_fee: u128,
}

impl FeeEstimate {
    /// From `eth_feeHistory` (the last base fee entry is the next block's). `None` when the node
    /// reports no base fee (no EIP-1559).
    pub(crate) fn from_history(history: &FeeHistory) -> Option<Self> {
        let next_base_fee = *history.base_fee_per_gas.last()?;
        let mut tips: Vec<u128> = history
            .reward
            .iter()
            .flatten()
            .filter_map(|percentiles| percentiles.first().copied())
            .collect();
        tips.sort_unstable();
        let priority_fee = tips.get(tips.len() / 2).copied().unwrap_or(0);
        Some(Self {
            next_base_fee,
            priority_fee,
        })
    }
}

/// The EIP-1559 fee fields of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fees {
    /// Fee cap, wei.
    pub(crate) max_fee_per_gas: u128,
    /// Priority fee, wei.
    pub(crate) max_priority_fee_per_gas: u128,
}

fn percent(value: u128, percent: u32) -> u128 {
    value
        .saturating_mul(100 + u128::from(percent))
        .div_ceil(100)
}

/// `value` raised by `bump` percent, rounded up and at least by one wei (a zero fee must move).
fn bumped(value: u128, bump: u32) -> u128 {
    percent(value, bump).max(value.saturating_add(1))
}

/// Uncapped fees for the current estimate.
fn fresh(estimate: FeeEstimate, config: &PublisherConfig) -> Fees {
    let priority = percent(estimate.priority_fee, config.priority_fee_padding_percent)
        .max(config.min_priority_fee_per_gas);
    Fees {
        max_fee_per_gas: estimate
            .next_base_fee
            .saturating_mul(BASE_FEE_HEADROOM)
            .saturating_add(priority),
        max_priority_fee_per_gas: priority,
    }
}

/// Fees of a first attempt: the fresh estimate, capped at `max_fee_per_gas` (then the tx waits
/// for the base fee to drop, or is cancelled when its window closes).
pub(crate) fn initial_fees(estimate: FeeEstimate, config: &PublisherConfig) -> Fees {
    let fees = fresh(estimate, config);
    let max_fee_per_gas = fees.max_fee_per_gas.min(config.max_fee_per_gas);
    Fees {
        max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(max_fee_per_gas),
    }
}

/// Whether a replacement replaces a propose (speed-up) or cancels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replacement {
    /// Same call, higher fees.
    SpeedUp,
    /// A 0-value transfer to self, higher fees.
    Cancel,
}

/// Fees of a replacement of an attempt paying `previous` (`None` when no earlier attempt can be
/// in a mempool): both fields bumped by `replacement_bump_percent` — a replacement that bumps
/// only the cap is refused as underpriced (anchors §B.4, field bug #23543) — or the fresh
/// estimate when higher. A speed-up stays under the cap and is skipped (`None`) when the bump
/// cannot fit; a cancel may exceed the cap by its mandatory bump, so a stuck nonce can always be
/// freed for 21,000 gas.
pub(crate) fn replacement_fees(
    previous: Option<Fees>,
    estimate: FeeEstimate,
    config: &PublisherConfig,
    replacement: Replacement,
) -> Option<Fees> {
    let Some(previous) = previous else {
        return Some(initial_fees(estimate, config));
    };
    let fresh = fresh(estimate, config);
    let min_max = bumped(previous.max_fee_per_gas, config.replacement_bump_percent);
    let min_priority = bumped(
        previous.max_priority_fee_per_gas,
        config.replacement_bump_percent,
    );
    let limit = match replacement {
        Replacement::SpeedUp => config.max_fee_per_gas,
        Replacement::Cancel => config.max_fee_per_gas.max(min_max),
    };
    if min_max > limit {
        return None;
    }
    let max_fee_per_gas = min_max.max(fresh.max_fee_per_gas).min(limit);
    let max_priority_fee_per_gas = min_priority
        .max(fresh.max_priority_fee_per_gas)
        .min(max_fee_per_gas);
    if max_priority_fee_per_gas < min_priority {
        return None;
    }
    Some(Fees {
        max_fee_per_gas,
        max_priority_fee_per_gas,
    })
}

/// Gas limit for a simulated `gas_used`: the 63/64 rule (a call keeps 1/64 of its gas back), plus
/// the buffer, capped at `ceiling`.
pub(crate) fn gas_limit(gas_used: u64, buffer_percent: u32, ceiling: u64) -> u64 {
    let with_reserve = u128::from(gas_used).saturating_mul(64).div_ceil(63);
    let limit = percent(with_reserve, buffer_percent);
    u64::try_from(limit).unwrap_or(u64::MAX).min(ceiling)
}

/// How many more proposes `balance` pays for at `gas` per propose and `fee_per_gas`.
pub(crate) fn runway(balance: u128, gas: u64, fee_per_gas: u128) -> u128 {
    let cost = u128::from(gas).saturating_mul(fee_per_gas);
    if cost == 0 {
        return u128::MAX;
    }
    balance / cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GWEI;
    use proptest::prelude::*;

    fn config() -> PublisherConfig {
        PublisherConfig {
            max_fee_per_gas: 100 * GWEI,
            min_priority_fee_per_gas: GWEI / 10,
            priority_fee_padding_percent: 20,
            replacement_bump_percent: 50,
            ..Default::default()
        }
    }

    fn estimate(base_gwei: u128, tip_gwei: u128) -> FeeEstimate {
        FeeEstimate {
            next_base_fee: base_gwei * GWEI,
            priority_fee: tip_gwei * GWEI,
        }
    }

    #[test]
    fn history_gives_next_base_fee_and_median_tip() {
        let history = FeeHistory {
            base_fee_per_gas: vec![1, 2, 3, 7],
            reward: Some(vec![vec![5], vec![1], vec![9]]),
            oldest_block: 10,
            ..Default::default()
        };
        assert_eq!(
            FeeEstimate::from_history(&history),
            Some(FeeEstimate {
                next_base_fee: 7,
                priority_fee: 5
            })
        );
        assert_eq!(FeeEstimate::from_history(&FeeHistory::default()), None);
    }

    #[test]
    fn first_attempt_pads_the_tip_keeps_the_floor_and_respects_the_cap() {
        let fees = initial_fees(estimate(10, 1), &config());
        assert_eq!(fees.max_priority_fee_per_gas, 1_200_000_000);
        assert_eq!(fees.max_fee_per_gas, 20 * GWEI + 1_200_000_000);
        let fees = initial_fees(estimate(10, 0), &config());
        assert_eq!(fees.max_priority_fee_per_gas, GWEI / 10);
        let fees = initial_fees(estimate(80, 1), &config());
        assert_eq!(fees.max_fee_per_gas, 100 * GWEI);
    }

    #[test]
    fn speed_up_bumps_both_fields_or_jumps_to_the_estimate() {
        let previous = initial_fees(estimate(10, 1), &config());
        let next = replacement_fees(
            Some(previous),
            estimate(10, 1),
            &config(),
            Replacement::SpeedUp,
        )
        .unwrap();
        assert_eq!(next.max_fee_per_gas, percent(previous.max_fee_per_gas, 50));
        assert_eq!(
            next.max_priority_fee_per_gas,
            percent(previous.max_priority_fee_per_gas, 50)
        );
        // A spike: the estimate is above the bump.
        let next = replacement_fees(
            Some(previous),
            estimate(40, 1),
            &config(),
            Replacement::SpeedUp,
        )
        .unwrap();
        assert_eq!(next.max_fee_per_gas, 80 * GWEI + 1_200_000_000);
    }

    #[test]
    fn speed_up_stops_at_the_cap_but_a_cancel_may_pass_it_by_one_bump() {
        let at_cap = Fees {
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        assert_eq!(
            replacement_fees(
                Some(at_cap),
                estimate(300, 1),
                &config(),
                Replacement::SpeedUp
            ),
            None
        );
        let cancel = replacement_fees(
            Some(at_cap),
            estimate(300, 1),
            &config(),
            Replacement::Cancel,
        )
        .unwrap();
        assert_eq!(cancel.max_fee_per_gas, 150 * GWEI);
        assert_eq!(cancel.max_priority_fee_per_gas, 3 * GWEI);
        // Nothing in a mempool to outbid: fresh fees.
        assert_eq!(
            replacement_fees(None, estimate(10, 1), &config(), Replacement::Cancel),
            Some(initial_fees(estimate(10, 1), &config()))
        );
    }

    #[test]
    fn zero_fees_still_move() {
        let zero = Fees {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
        };
        let next =
            replacement_fees(Some(zero), estimate(0, 0), &config(), Replacement::SpeedUp).unwrap();
        assert!(next.max_fee_per_gas >= 1 && next.max_priority_fee_per_gas >= 1);
    }

    #[test]
    fn gas_limit_and_runway() {
        assert_eq!(gas_limit(63_000, 0, u64::MAX), 64_000);
        assert_eq!(gas_limit(63_000, 20, u64::MAX), 76_800);
        assert_eq!(gas_limit(63_000, 20, 70_000), 70_000);
        assert_eq!(runway(10 * GWEI * 500_000, 500_000, GWEI), 10);
        assert_eq!(runway(1, 0, 0), u128::MAX);
    }

    proptest! {
        /// Model: every accepted replacement outbids the previous attempt by the bump on both
        /// fields (what geth's pool requires) and a speed-up never passes the cap.
        #[test]
        fn replacements_always_satisfy_the_mempool_rule(
            previous_max in 0u128..200_000_000_000,
            previous_tip_share in 0u128..=100,
            base in 0u128..500_000_000_000,
            tip in 0u128..10_000_000_000,
            cancel: bool,
        ) {
            let config = config();
            let previous = Fees {
                max_fee_per_gas: previous_max,
                max_priority_fee_per_gas: previous_max * previous_tip_share / 100,
            };
            let estimate = FeeEstimate { next_base_fee: base, priority_fee: tip };
            let kind = if cancel { Replacement::Cancel } else { Replacement::SpeedUp };
            match replacement_fees(Some(previous), estimate, &config, kind) {
                Some(next) => {
                    prop_assert!(next.max_fee_per_gas * 100 >= previous.max_fee_per_gas * 150);
                    prop_assert!(
                        next.max_priority_fee_per_gas * 100 >= previous.max_priority_fee_per_gas * 150
                    );
                    prop_assert!(next.max_priority_fee_per_gas <= next.max_fee_per_gas);
                    if !cancel {
                        prop_assert!(next.max_fee_per_gas <= config.max_fee_per_gas);
                    }
                }
                None => {
                    prop_assert!(!cancel);
                    prop_assert!(bumped(previous.max_fee_per_gas, 50) > config.max_fee_per_gas);
                }
            }
        }
    }
}
