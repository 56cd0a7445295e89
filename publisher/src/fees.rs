//! EIP-1559 fees: the first attempt from the node's fee history, replacements bumped by what
//! mempools require; proposes under the operator's cap, cancels under a ceiling one bump above it.

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

/// The highest fee cap a cancel may carry: `max_fee_per_gas` raised by one replacement bump.
/// A cancel must outbid the propose it replaces, which may sit at the cap, so a cancel may pass
/// the cap by that one bump. The ceiling comes from the settings alone, never from the previous
/// attempt, so cancels sped up or refreshed again and again cannot compound their fees.
pub(crate) fn cancel_ceiling(config: &PublisherConfig) -> u128 {
    bumped(config.max_fee_per_gas, config.replacement_bump_percent)
}

/// Fees of a replacement of an attempt paying `previous` (`None` when no earlier attempt can be
/// in a mempool): both fields bumped by `replacement_bump_percent` — a replacement that bumps
/// only the cap is refused as underpriced (anchors §B.4, field bug #23543) — or the fresh
/// estimate when higher. A speed-up stays under `max_fee_per_gas`, a cancel under
/// [`cancel_ceiling`]; `None` when the bump does not fit (a speed-up is skipped, a cancel is
/// broadcast again as it was signed).
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
        Replacement::Cancel => cancel_ceiling(config),
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

/// What a tx with `fees` is expected to pay per gas in the next block: base fee plus priority
/// fee, at most its cap.
pub(crate) fn expected_price(fees: Fees, estimate: FeeEstimate) -> u128 {
    estimate
        .next_base_fee
        .saturating_add(fees.max_priority_fee_per_gas)
        .min(fees.max_fee_per_gas)
}

/// The gas limit of a propose that simulated to `gas_used`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GasLimit {
    /// The 63/64 reserve plus the buffer.
    Buffered(u64),
    /// The reserve fits under the ceiling but the buffer does not: the ceiling.
    Trimmed(u64),
    /// Even the reserve is above the ceiling: no tx can carry this propose.
    TooHigh {
        /// Gas used plus the 63/64 reserve.
        needed: u64,
    },
}

/// Gas limit for a simulated `gas_used`: the 63/64 rule (a call keeps 1/64 of its gas back), plus
/// the buffer, at most `ceiling`.
pub(crate) fn gas_limit(gas_used: u64, buffer_percent: u32, ceiling: u64) -> GasLimit {
    let with_reserve = u128::from(gas_used).saturating_mul(64).div_ceil(63);
    let needed = u64::try_from(with_reserve).unwrap_or(u64::MAX);
    if needed > ceiling {
        return GasLimit::TooHigh { needed };
    }
    let limit = u64::try_from(percent(with_reserve, buffer_percent)).unwrap_or(u64::MAX);
    if limit > ceiling {
        GasLimit::Trimmed(ceiling)
    } else {
        GasLimit::Buffered(limit)
    }
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
    fn repeated_cancels_stay_under_the_ceiling_and_then_stop_bumping() {
        let config = config();
        let ceiling = cancel_ceiling(&config);
        assert_eq!(ceiling, 150 * GWEI);
        let mut previous = Fees {
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        let mut bumps = 0;
        // A refreshed cancel outbids the newest attempt every time: without the ceiling its fees
        // would grow 1.5x per refresh and pass u64 wei after ~40.
        for _ in 0..100 {
            match replacement_fees(
                Some(previous),
                estimate(300, 1),
                &config,
                Replacement::Cancel,
            ) {
                Some(next) => {
                    assert!(next.max_fee_per_gas <= ceiling);
                    previous = next;
                    bumps += 1;
                }
                None => break,
            }
        }
        assert_eq!(bumps, 1, "one bump from the cap reaches the ceiling");
        assert_eq!(previous.max_fee_per_gas, ceiling);
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
        assert_eq!(gas_limit(63_000, 0, u64::MAX), GasLimit::Buffered(64_000));
        assert_eq!(gas_limit(63_000, 20, u64::MAX), GasLimit::Buffered(76_800));
        assert_eq!(gas_limit(63_000, 20, 70_000), GasLimit::Trimmed(70_000));
        assert_eq!(
            gas_limit(63_000, 20, 63_999),
            GasLimit::TooHigh { needed: 64_000 }
        );
        assert_eq!(runway(10 * GWEI * 500_000, 500_000, GWEI), 10);
        assert_eq!(runway(1, 0, 0), u128::MAX);
        let fees = Fees {
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        assert_eq!(expected_price(fees, estimate(10, 1)), 12 * GWEI);
        assert_eq!(expected_price(fees, estimate(99, 1)), 100 * GWEI);
    }

    proptest! {
        /// Model: every accepted replacement outbids the previous attempt by the bump on both
        /// fields (what geth's pool requires); a speed-up never passes the cap and a cancel never
        /// passes the ceiling; `None` exactly when the bump does not fit under the limit.
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
            let limit = if cancel { cancel_ceiling(&config) } else { config.max_fee_per_gas };
            match replacement_fees(Some(previous), estimate, &config, kind) {
                Some(next) => {
                    prop_assert!(next.max_fee_per_gas * 100 >= previous.max_fee_per_gas * 150);
                    prop_assert!(
                        next.max_priority_fee_per_gas * 100 >= previous.max_priority_fee_per_gas * 150
                    );
                    prop_assert!(next.max_priority_fee_per_gas <= next.max_fee_per_gas);
                    prop_assert!(next.max_fee_per_gas <= limit);
                }
                None => prop_assert!(bumped(previous.max_fee_per_gas, 50) > limit),
            }
        }

        /// A ladder of replacements (speed-ups, then cancels, then refreshed cancels) from any
        /// first attempt stays bounded: every fee fits the record's u64, cancels stay under the
        /// ceiling however often they are refreshed.
        #[test]
        fn a_replacement_ladder_never_passes_its_bounds(
            base in 0u128..1_000_000_000_000,
            tip in 0u128..10_000_000_000,
            speed_ups in 0usize..5,
            cancels in 0usize..60,
        ) {
            let config = config();
            let estimate = FeeEstimate { next_base_fee: base, priority_fee: tip };
            let mut fees = initial_fees(estimate, &config);
            prop_assert!(fees.max_fee_per_gas <= config.max_fee_per_gas);
            let ladder = std::iter::repeat_n(Replacement::SpeedUp, speed_ups)
                .chain(std::iter::repeat_n(Replacement::Cancel, cancels));
            for kind in ladder {
                if let Some(next) = replacement_fees(Some(fees), estimate, &config, kind) {
                    fees = next;
                }
                let limit = match kind {
                    Replacement::SpeedUp => config.max_fee_per_gas,
                    Replacement::Cancel => cancel_ceiling(&config),
                };
                prop_assert!(fees.max_fee_per_gas <= limit);
                prop_assert!(u64::try_from(fees.max_fee_per_gas).is_ok());
            }
        }
    }
}
