//! The sequencer's settings (the node maps its `[sequencer]` section onto them).

use std::{collections::BTreeSet, time::Duration};

use tandem_proto::Address;

use crate::error::{SequencerError, SequencerResult};

/// Shortest poll interval accepted (the loop also ticks on every archiver tip change).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

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
    /// handed to the publisher. Empty (off) by default.
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
