//! The sequencer's settings (the node maps its `[sequencer]` section onto them).

use std::{collections::BTreeSet, time::Duration};

use tandem_proto::{Address, max_txs_in_checkpoint_body};
use tandem_state::TX_MANA;

use crate::{
    deps::ProtocolParams,
    error::{SequencerError, SequencerResult},
};

/// Shortest poll interval accepted (the loop also ticks on every archiver tip change).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The `prod` profile's slot and L1 slot (DESIGN.md "Profiles"): a network with these is the
/// reference network, where test hooks are refused.
const PROD_SLOT: Duration = Duration::from_secs(72);
const PROD_L1_SLOT: Duration = Duration::from_secs(12);

/// The sequencer's local settings. Protocol constants come with [`crate::ProtocolParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct SequencerConfig {
    /// How often the loop ticks without an archiver tip change (reference: 500 ms).
    pub poll_interval: Duration,
    /// How often a sub-slot waiting for txs looks at the pool again.
    pub tx_poll_interval: Duration,
    /// Txs the first block waits for; later blocks need at least one whatever this says.
    pub min_txs_per_block: usize,
    /// Build one empty block in the last sub-slot when no txs came (a checkpoint every slot).
    pub build_checkpoint_if_empty: bool,
    /// Most txs in one block (`None`: only the checkpoint's budgets limit it).
    pub max_txs_per_block: Option<usize>,
    /// Most mana in one block.
    pub max_mana_per_block: Option<u64>,
    /// Most txs in one checkpoint (`None`: the body cap limits it).
    pub max_txs_per_checkpoint: Option<usize>,
    /// Most mana in one checkpoint (`None`: the deployment's mana limit; never above it).
    pub max_mana_per_checkpoint: Option<u64>,
    /// A block may take this multiple of its even share of what is left of the checkpoint's
    /// budgets (reference: 1.2), so a backlog does not fill the first block.
    pub per_block_allocation_multiplier: f64,
    /// L1 address credited for our checkpoints (`None`: the proposer's address).
    pub coinbase: Option<Address>,
    /// L2 address receiving the fees (`None`: the proposer's address).
    pub fee_recipient: Option<Address>,
    /// Test hook: checkpoints for these target slots are built, gossiped and attested but never
    /// handed to the publisher. Empty (off) by default; refused on the `prod` profile.
    pub skip_publishing_slots: BTreeSet<u64>,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            tx_poll_interval: Duration::from_millis(100),
            min_txs_per_block: 1,
            build_checkpoint_if_empty: false,
            max_txs_per_block: None,
            max_mana_per_block: None,
            max_txs_per_checkpoint: None,
            max_mana_per_checkpoint: None,
            per_block_allocation_multiplier: 1.2,
            coinbase: None,
            fee_recipient: None,
            skip_publishing_slots: BTreeSet::new(),
        }
    }
}

impl SequencerConfig {
    /// Refuses settings the sequencer cannot work with, naming the key.
    pub fn validate(&self) -> SequencerResult<()> {
        let refuse = |field, problem| Err(SequencerError::Config { field, problem });
        if self.poll_interval < MIN_POLL_INTERVAL {
            return refuse("poll_interval", "must be at least 10ms");
        }
        if self.tx_poll_interval < MIN_POLL_INTERVAL {
            return refuse("tx_poll_interval", "must be at least 10ms");
        }
        if !(self.per_block_allocation_multiplier.is_finite()
            && self.per_block_allocation_multiplier >= 1.0)
        {
            return refuse(
                "per_block_allocation_multiplier",
                "must be a number of at least 1",
            );
        }
        for (field, value) in [
            (
                "max_txs_per_block",
                self.max_txs_per_block.map(|v| v as u64),
            ),
            ("max_mana_per_block", self.max_mana_per_block),
            (
                "max_txs_per_checkpoint",
                self.max_txs_per_checkpoint.map(|v| v as u64),
            ),
            ("max_mana_per_checkpoint", self.max_mana_per_checkpoint),
        ] {
            if value == Some(0) {
                return refuse(field, "must be at least 1");
            }
        }
        // A budget that holds no transfer would only ever build empty blocks.
        for (field, value) in [
            ("max_mana_per_block", self.max_mana_per_block),
            ("max_mana_per_checkpoint", self.max_mana_per_checkpoint),
        ] {
            if value.is_some_and(|mana| mana < TX_MANA) {
                // The value is TX_MANA's (a test keeps them equal).
                return refuse(
                    field,
                    "must hold at least one transfer (TX_MANA = 10000 mana)",
                );
            }
        }
        if self
            .max_mana_per_block
            .is_some_and(|mana| self.min_txs_per_block as u64 > mana / TX_MANA)
        {
            return refuse(
                "min_txs_per_block",
                "must not exceed the transfers max_mana_per_block holds (no block could reach it)",
            );
        }
        // A first block that can never hold the minimum drops every sub-slot: the node would
        // never build while its pool is full.
        if self
            .max_txs_per_block
            .is_some_and(|max| self.min_txs_per_block > max)
        {
            return refuse(
                "min_txs_per_block",
                "must not exceed max_txs_per_block (no block could reach it)",
            );
        }
        if self
            .max_txs_per_checkpoint
            .is_some_and(|max| self.min_txs_per_block > max)
        {
            return refuse(
                "min_txs_per_block",
                "must not exceed max_txs_per_checkpoint (no block could reach it)",
            );
        }
        Ok(())
    }

    /// [`SequencerConfig::validate`], and what only the network decides: its budgets must
    /// hold a transfer per block, and the test hook is refused on the `prod` profile.
    pub fn validate_for(&self, params: &ProtocolParams) -> SequencerResult<()> {
        self.validate()?;
        let refuse = |field, problem| Err(SequencerError::Config { field, problem });
        let clock = params.slot_clock();
        if !self.skip_publishing_slots.is_empty()
            && clock.slot_duration() == PROD_SLOT
            && clock.l1_slot_duration() == PROD_L1_SLOT
        {
            return refuse(
                "skip_publishing_slots",
                "is a test hook, refused on the prod profile (72 s slots, 12 s L1 slots)",
            );
        }
        if params.mana_limit < TX_MANA {
            return Err(SequencerError::Deployment {
                param: "mana_limit",
                value: params.mana_limit,
                problem: format!("holds no transfer (TX_MANA = {TX_MANA} mana)"),
            });
        }
        let blocks = usize::try_from(params.timetable.max_blocks_per_checkpoint())
            .unwrap_or(usize::MAX)
            .max(1);
        if max_txs_in_checkpoint_body(params.max_body_bytes, blocks) == 0 {
            return Err(SequencerError::Deployment {
                param: "max_body_bytes",
                value: params.max_body_bytes as u64,
                problem: format!(
                    "holds no transfer with the timetable's {blocks} blocks per checkpoint"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimum_no_block_can_reach_is_refused() {
        for (max_txs_per_block, max_txs_per_checkpoint) in [(Some(2), None), (None, Some(2))] {
            let bad = SequencerConfig {
                min_txs_per_block: 3,
                max_txs_per_block,
                max_txs_per_checkpoint,
                ..SequencerConfig::default()
            };
            assert!(matches!(
                bad.validate(),
                Err(SequencerError::Config {
                    field: "min_txs_per_block",
                    ..
                })
            ));
            let reachable = SequencerConfig {
                min_txs_per_block: 2,
                ..bad
            };
            reachable.validate().unwrap();
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        SequencerConfig::default().validate().unwrap();
        let bad = SequencerConfig {
            per_block_allocation_multiplier: 0.5,
            ..SequencerConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SequencerError::Config {
                field: "per_block_allocation_multiplier",
                ..
            })
        ),);
        let bad = SequencerConfig {
            max_mana_per_checkpoint: Some(0),
            ..SequencerConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SequencerError::Config {
                field: "max_mana_per_checkpoint",
                ..
            })
        ));
        let bad = SequencerConfig {
            poll_interval: Duration::from_millis(1),
            ..SequencerConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SequencerError::Config {
                field: "poll_interval",
                ..
            })
        ));
    }
}

#[cfg(test)]
mod network_tests {
    use std::time::Duration;

    use tandem_proto::time::{
        ConsensusWindows, PipeliningMode, SequencerBudgets, SlotClock, Timestamp, Timetable,
    };

    use super::*;

    fn params(slot: u64, l1_slot: u64, block: u64) -> ProtocolParams {
        let clock = SlotClock::new(
            Timestamp(0),
            Duration::from_secs(slot),
            Duration::from_secs(l1_slot),
            4,
        )
        .unwrap();
        let d = Duration::from_secs(block);
        let windows = ConsensusWindows::new(clock, d, PipeliningMode::Pipelined, d);
        ProtocolParams {
            timetable: Timetable::new(windows, SequencerBudgets::default()).unwrap(),
            domain: crate::tests::domain(),
            fees: crate::tests::fee_params(),
            mana_limit: 100_000_000,
            max_body_bytes: tandem_proto::DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
        }
    }

    fn refused_field(config: &SequencerConfig, params: &ProtocolParams) -> Option<&'static str> {
        match config.validate_for(params) {
            Err(SequencerError::Config { field, .. }) => Some(field),
            Err(other) => panic!("{other}"),
            Ok(()) => None,
        }
    }

    /// Review 15 m7: the test hook is a config error on the prod profile, fine on ci.
    #[test]
    fn the_skip_publishing_hook_is_refused_on_the_prod_profile() {
        let hooked = SequencerConfig {
            skip_publishing_slots: [5].into(),
            ..SequencerConfig::default()
        };
        let prod = params(72, 12, 6);
        let ci = params(12, 1, 1);
        assert_eq!(refused_field(&hooked, &prod), Some("skip_publishing_slots"));
        assert_eq!(refused_field(&hooked, &ci), None);
        assert_eq!(refused_field(&SequencerConfig::default(), &prod), None);
    }

    /// Review 15 M3: budgets that hold no transfer, and a minimum above what the per-block
    /// mana holds, are refused instead of building empty blocks (or none).
    #[test]
    fn budgets_that_hold_no_transfer_are_refused() {
        let ci = params(12, 1, 1);
        let tiny_block_mana = SequencerConfig {
            max_mana_per_block: Some(TX_MANA - 1),
            ..SequencerConfig::default()
        };
        assert_eq!(
            refused_field(&tiny_block_mana, &ci),
            Some("max_mana_per_block")
        );
        let min_above_mana = SequencerConfig {
            max_mana_per_block: Some(2 * TX_MANA),
            min_txs_per_block: 3,
            ..SequencerConfig::default()
        };
        assert_eq!(
            refused_field(&min_above_mana, &ci),
            Some("min_txs_per_block")
        );
        let reachable = SequencerConfig {
            min_txs_per_block: 2,
            ..min_above_mana
        };
        assert_eq!(refused_field(&reachable, &ci), None);
        let message = tiny_block_mana.validate_for(&ci).unwrap_err().to_string();
        assert!(
            message.contains(&format!("TX_MANA = {TX_MANA} mana")),
            "{message}"
        );
    }

    /// Review-seq minor 6: deployment parameters that hold no transfer are refused as
    /// themselves, with their value, not as a `[sequencer]` key.
    #[test]
    fn deployment_parameters_that_hold_no_transfer_are_refused_by_name_and_value() {
        let ci = params(12, 1, 1);
        let mut no_mana = ci;
        no_mana.mana_limit = TX_MANA - 1;
        let err = SequencerConfig::default()
            .validate_for(&no_mana)
            .unwrap_err();
        assert!(
            matches!(err, SequencerError::Deployment { param: "mana_limit", value, .. }
                if value == TX_MANA - 1),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "deployment parameter mana_limit = {}: holds no transfer (TX_MANA = {TX_MANA} mana)",
                TX_MANA - 1
            )
        );
        let mut no_body = ci;
        no_body.max_body_bytes = 64;
        let err = SequencerConfig::default()
            .validate_for(&no_body)
            .unwrap_err();
        assert!(
            matches!(
                err,
                SequencerError::Deployment {
                    param: "max_body_bytes",
                    value: 64,
                    ..
                }
            ),
            "{err}"
        );
    }
}
