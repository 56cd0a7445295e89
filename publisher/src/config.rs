//! The publisher's settings. The node fills them from its `[publisher]` TOML section; defaults are
//! the reference's (Aztec `L1TxUtils`) unless noted.

use std::time::Duration;

use crate::error::{ConfigProblem, PublisherError};

/// One gwei in wei.
pub const GWEI: u128 = 1_000_000_000;

/// Highest fee per gas the publisher can record (fees are stored as `u64` wei: 18.4 ETH per gas).
pub(crate) const MAX_RECORDABLE_FEE_PER_GAS: u128 = u64::MAX as u128;

/// The smallest replacement bump Ethereum mempools accept (geth, reth, nethermind: 10 %).
pub const MIN_REPLACEMENT_BUMP_PERCENT: u32 = 10;

/// Which RPC the send-time simulation uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SimulationMethod {
    /// `eth_simulateV1` with a block-time override: one call returns gas used and the revert.
    #[default]
    SimulateV1,
    /// `eth_call` with a block-override argument, then `eth_estimateGas` for the gas.
    CallWithOverrides,
}

impl SimulationMethod {
    /// Label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SimulateV1 => "eth_simulateV1",
            Self::CallWithOverrides => "eth_call",
        }
    }
}

/// Settings of the publisher. Timeouts marked "L1 time" are measured between L1 block
/// timestamps, so a missed L1 slot pauses them (anchors §B.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Most a propose may pay per gas (base fee + priority fee), wei. Default 2,000 gwei.
    pub max_fee_per_gas: u128,
    /// Floor of the priority fee, wei. Default 0.
    pub min_priority_fee_per_gas: u128,
    /// Added to the estimated priority fee of a first attempt, percent. Default 20.
    pub priority_fee_padding_percent: u32,
    /// Fee increase of each replacement (speed-up or cancel), on both the fee cap and the
    /// priority fee, percent; at least [`MIN_REPLACEMENT_BUMP_PERCENT`]. Default 50.
    pub replacement_bump_percent: u32,
    /// Added to the simulated gas, percent. Default 20.
    pub gas_limit_buffer_percent: u32,
    /// A tx not mined this long after its last attempt is sped up (L1 time). Default 12 s.
    pub stall_time: Duration,
    /// Speed-ups per tx (and again per cancel). Default 3.
    pub max_speed_ups: u32,
    /// How often receipts and the mempool are checked. Default 1 s.
    pub receipt_poll_interval: Duration,
    /// How often the L1 head is polled while waiting for the block before the target slot.
    /// Default 200 ms.
    pub send_wait_poll_interval: Duration,
    /// How long to wait (local clock, from `T − E`) for the block before the target slot before
    /// assuming that L1 slot was missed and sending anyway; `None` = `E`, i.e. send at `T` at
    /// the latest: a block stamped `T − E` is seen before `T` unless its slot was missed, and a
    /// tx sent at `T` can still make the block stamped `T`. Shorter values risk sending before a
    /// late block stamped `T − E`, which would revert the propose with a slot mismatch.
    pub send_wait_timeout: Option<Duration>,
    /// A cancel the L1 node does not know for this long counts as dropped (L1 time). Default
    /// 72 s (the reference's, six L1 blocks).
    pub tx_unseen_considered_dropped: Duration,
    /// A propose the L1 node does not know for this long counts as dropped and is sent again
    /// (L1 time); `None` = two L1 slots. Shorter than `tx_unseen_considered_dropped`: a propose
    /// only has the few L1 blocks of its window, so waiting 72 s would never help it.
    pub propose_unseen_considered_dropped: Option<Duration>,
    /// A cancel not mined this long after it was first sent is given up (L1 time): the nonce
    /// is released once the L1 node no longer knows any tx of it, and no higher nonce of the
    /// key waits for it. Default 288 s.
    pub cancel_final_timeout: Duration,
    /// L1 blocks (the including one counted) a mined propose needs, after its window closed,
    /// before it is reported landed: a reorg of the newest blocks can still take it out.
    /// Default 2.
    pub confirmations: u64,
    /// Warn (metric and log) when a key's balance covers fewer proposes than this at current
    /// gas prices. Default 50.
    pub low_balance_runway_checkpoints: u64,
    /// The send-time simulation's RPC. Default `eth_simulateV1`.
    pub simulation_method: SimulationMethod,
    /// Finished tx records kept in the store for audits (inclusion window, fee ladder).
    /// Default 1,024.
    pub keep_finished_records: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            max_fee_per_gas: 2_000 * GWEI,
            min_priority_fee_per_gas: 0,
            priority_fee_padding_percent: 20,
            replacement_bump_percent: 50,
            gas_limit_buffer_percent: 20,
            stall_time: Duration::from_secs(12),
            max_speed_ups: 3,
            receipt_poll_interval: Duration::from_secs(1),
            send_wait_poll_interval: Duration::from_millis(200),
            send_wait_timeout: None,
            tx_unseen_considered_dropped: Duration::from_secs(72),
            propose_unseen_considered_dropped: None,
            cancel_final_timeout: Duration::from_secs(288),
            confirmations: 2,
            low_balance_runway_checkpoints: 50,
            simulation_method: SimulationMethod::SimulateV1,
            keep_finished_records: 1_024,
        }
    }
}

impl PublisherConfig {
    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), PublisherError> {
        let bad = |field: &'static str, problem| Err(PublisherError::Config { field, problem });
        if self.max_fee_per_gas == 0 || self.max_fee_per_gas > MAX_RECORDABLE_FEE_PER_GAS {
            return bad(
                "max_fee_per_gas",
                ConfigProblem::FeeOutOfRange {
                    max: MAX_RECORDABLE_FEE_PER_GAS,
                },
            );
        }
        if self.min_priority_fee_per_gas > self.max_fee_per_gas {
            return bad("min_priority_fee_per_gas", ConfigProblem::AboveMaxFee);
        }
        if self.replacement_bump_percent < MIN_REPLACEMENT_BUMP_PERCENT {
            return bad(
                "replacement_bump_percent",
                ConfigProblem::BumpTooSmall(self.replacement_bump_percent),
            );
        }
        let ceiling = crate::fees::cancel_ceiling(self);
        if ceiling > MAX_RECORDABLE_FEE_PER_GAS {
            return bad(
                "max_fee_per_gas",
                ConfigProblem::CancelCeilingTooHigh {
                    ceiling,
                    max: MAX_RECORDABLE_FEE_PER_GAS,
                },
            );
        }
        let propose_unseen = self.propose_unseen_considered_dropped;
        for (field, value) in [
            ("stall_time", Some(self.stall_time)),
            ("receipt_poll_interval", Some(self.receipt_poll_interval)),
            (
                "send_wait_poll_interval",
                Some(self.send_wait_poll_interval),
            ),
            (
                "tx_unseen_considered_dropped",
                Some(self.tx_unseen_considered_dropped),
            ),
            ("propose_unseen_considered_dropped", propose_unseen),
            ("cancel_final_timeout", Some(self.cancel_final_timeout)),
        ] {
            if value.is_some_and(|value| value.is_zero()) {
                return bad(field, ConfigProblem::Zero);
            }
        }
        if self.confirmations == 0 {
            return bad("confirmations", ConfigProblem::Zero);
        }
        Ok(())
    }

    /// The send-wait timeout for an L1 slot of `l1_slot`.
    pub fn send_wait_timeout_for(&self, l1_slot: Duration) -> Duration {
        self.send_wait_timeout.unwrap_or(l1_slot)
    }

    /// The propose dropped-tx threshold for an L1 slot of `l1_slot`.
    pub fn propose_unseen_considered_dropped_for(&self, l1_slot: Duration) -> Duration {
        self.propose_unseen_considered_dropped
            .unwrap_or_else(|| l1_slot.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        PublisherConfig::default().validate().unwrap();
        let config = PublisherConfig {
            replacement_bump_percent: 9,
            ..Default::default()
        };
        match config.validate() {
            Err(PublisherError::Config { field, .. }) => {
                assert_eq!(field, "replacement_bump_percent")
            }
            other => panic!("{other:?}"),
        }
        let config = PublisherConfig {
            max_fee_per_gas: u128::from(u64::MAX) + 1,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PublisherError::Config {
                field: "max_fee_per_gas",
                ..
            })
        ));
        let config = PublisherConfig {
            stall_time: Duration::ZERO,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PublisherError::Config {
                field: "stall_time",
                problem: ConfigProblem::Zero,
            })
        ));
        // The cap fits, but a cancel one bump above it would not.
        let config = PublisherConfig {
            max_fee_per_gas: u128::from(u64::MAX) * 3 / 4,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PublisherError::Config {
                field: "max_fee_per_gas",
                problem: ConfigProblem::CancelCeilingTooHigh { .. },
            })
        ));
        let config = PublisherConfig {
            confirmations: 0,
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PublisherError::Config {
                field: "confirmations",
                ..
            })
        ));
    }

    #[test]
    fn the_propose_drop_threshold_defaults_to_two_l1_slots() {
        let config = PublisherConfig::default();
        assert_eq!(
            config.propose_unseen_considered_dropped_for(Duration::from_secs(12)),
            Duration::from_secs(24)
        );
        assert!(
            config.propose_unseen_considered_dropped_for(Duration::from_secs(12))
                < config.tx_unseen_considered_dropped
        );
    }

    #[test]
    fn send_wait_timeout_defaults_to_one_l1_slot() {
        let config = PublisherConfig::default();
        assert_eq!(
            config.send_wait_timeout_for(Duration::from_secs(12)),
            Duration::from_secs(12)
        );
        let config = PublisherConfig {
            send_wait_timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        };
        assert_eq!(
            config.send_wait_timeout_for(Duration::from_secs(12)),
            Duration::from_millis(300)
        );
    }
}
