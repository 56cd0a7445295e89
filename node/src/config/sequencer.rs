//! `[sequencer]`: the proposer's local settings. The budgets shape this proposer's own schedule,
//! never consensus deadlines; the rest maps onto `tandem_sequencer::SequencerConfig`.

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};
use tandem_proto::{Address, time::SequencerBudgets};

/// `[sequencer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SequencerConfig {
    /// How often the loop looks at the clock when the archiver's tips do not change.
    #[serde(with = "humantime_serde")]
    pub(crate) poll_interval: Duration,
    /// How often a sub-slot waiting for txs looks at the pool again.
    #[serde(with = "humantime_serde")]
    pub(crate) tx_poll_interval: Duration,
    /// Txs the first block of a checkpoint waits for (later blocks need at least one).
    pub(crate) min_txs_per_block: u32,
    /// Build one empty block in the last sub-slot when no txs came.
    pub(crate) build_checkpoint_if_empty: bool,
    /// L1 address credited for this node's checkpoints (defaults to the validator address).
    pub(crate) coinbase: Option<Address>,
    /// L2 address receiving fees (defaults to the validator address).
    pub(crate) fee_recipient: Option<Address>,
    /// Sync, proposer check and fork before the first block.
    #[serde(with = "humantime_serde")]
    pub(crate) checkpoint_init_time: Duration,
    /// Shortest block worth building; the timetable caps it at D / 2 (a sub-slot reached up to
    /// D / 2 late keeps its block).
    #[serde(with = "humantime_serde")]
    pub(crate) min_block_duration: Duration,
    /// Expected gossip propagation time.
    #[serde(with = "humantime_serde")]
    pub p2p_propagation_time: Duration,
    /// Assembling and signing the checkpoint after its last block.
    #[serde(with = "humantime_serde")]
    pub(crate) checkpoint_prepare_time: Duration,
    /// Time kept for the L1 tx in the non-pipelined mode.
    #[serde(with = "humantime_serde")]
    pub l1_publishing_time: Duration,
    /// Cap on blocks per checkpoint below what the timetable allows.
    pub(crate) max_blocks_per_checkpoint: Option<u32>,
    /// Most txs in one block. Unset: the most that keep a checkpoint of the timetable's full
    /// block count within the deployment's body cap (`Config::max_txs_per_block`), so the
    /// default fits every S, E, D and R.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_txs_per_block: Option<u32>,
    /// Most mana in one block (unset: only the checkpoint's budget limits it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_mana_per_block: Option<u64>,
    /// Most txs in one checkpoint (unset: the body cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_txs_per_checkpoint: Option<u32>,
    /// Most mana in one checkpoint (unset: the deployment's mana limit, never above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_mana_per_checkpoint: Option<u64>,
    /// A block may take this multiple of its even share of what is left of the checkpoint.
    pub(crate) per_block_allocation_multiplier: f64,
    /// Test hook, off (empty) by default: checkpoints for these target slots are built,
    /// gossiped and attested but never submitted to L1.
    pub(crate) skip_publishing_slots: BTreeSet<u64>,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        let budgets = SequencerBudgets::default();
        let library = tandem_sequencer::SequencerConfig::default();
        Self {
            poll_interval: library.poll_interval,
            tx_poll_interval: library.tx_poll_interval,
            min_txs_per_block: u32::try_from(library.min_txs_per_block).unwrap_or(u32::MAX),
            build_checkpoint_if_empty: library.build_checkpoint_if_empty,
            coinbase: None,
            fee_recipient: None,
            checkpoint_init_time: budgets.checkpoint_init_time,
            min_block_duration: budgets.min_block_duration,
            p2p_propagation_time: budgets.p2p_propagation_time,
            checkpoint_prepare_time: budgets.checkpoint_prepare_time,
            l1_publishing_time: budgets.l1_publishing_time,
            max_blocks_per_checkpoint: None,
            max_txs_per_block: None,
            max_mana_per_block: None,
            max_txs_per_checkpoint: None,
            max_mana_per_checkpoint: None,
            per_block_allocation_multiplier: library.per_block_allocation_multiplier,
            skip_publishing_slots: BTreeSet::new(),
        }
    }
}

/// The dotted key of a library setting.
fn key_of(field: &str) -> &'static str {
    match field {
        "poll_interval" => "sequencer.poll_interval",
        "tx_poll_interval" => "sequencer.tx_poll_interval",
        "per_block_allocation_multiplier" => "sequencer.per_block_allocation_multiplier",
        "max_txs_per_block" => "sequencer.max_txs_per_block",
        "max_mana_per_block" => "sequencer.max_mana_per_block",
        "max_txs_per_checkpoint" => "sequencer.max_txs_per_checkpoint",
        "min_txs_per_block" => "sequencer.min_txs_per_block",
        "max_mana_per_checkpoint" => "sequencer.max_mana_per_checkpoint",
        _ => "sequencer",
    }
}

impl SequencerConfig {
    /// Reports what the sequencer library would refuse, under the key at fault, against the
    /// operator's own `max_txs_per_block`. The limit derived from the deployment is only known
    /// once bound: `settings(config.max_txs_per_block(table))` must check it when the node
    /// starts the sequencer (until then the job caps the minimum at each block's share).
    pub(crate) fn problems(&self, problem: &mut impl FnMut(&'static str, String)) {
        if let Err(tandem_sequencer::SequencerError::Config {
            field,
            problem: why,
        }) = self.settings(self.max_txs_per_block.unwrap_or(u32::MAX))
        {
            problem(key_of(field), why.to_string());
        }
    }

    /// The library's settings; `max_txs_per_block` is the node's resolved value
    /// (`Config::max_txs_per_block`). A setting the library refuses comes back with its key.
    pub(crate) fn settings(
        &self,
        max_txs_per_block: u32,
    ) -> Result<tandem_sequencer::SequencerConfig, tandem_sequencer::SequencerError> {
        let usize_of = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        let settings = tandem_sequencer::SequencerConfig {
            poll_interval: self.poll_interval,
            tx_poll_interval: self.tx_poll_interval,
            min_txs_per_block: usize_of(self.min_txs_per_block),
            build_checkpoint_if_empty: self.build_checkpoint_if_empty,
            max_txs_per_block: Some(usize_of(max_txs_per_block)),
            max_mana_per_block: self.max_mana_per_block,
            max_txs_per_checkpoint: self.max_txs_per_checkpoint.map(usize_of),
            max_mana_per_checkpoint: self.max_mana_per_checkpoint,
            per_block_allocation_multiplier: self.per_block_allocation_multiplier,
            coinbase: self.coinbase,
            fee_recipient: self.fee_recipient,
            skip_publishing_slots: self.skip_publishing_slots.clone(),
        };
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_library_defaults() {
        let node = SequencerConfig::default();
        let library = tandem_sequencer::SequencerConfig::default();
        let mapped = node.settings(83).unwrap();
        assert_eq!(
            mapped,
            tandem_sequencer::SequencerConfig {
                max_txs_per_block: Some(83),
                ..library
            }
        );
    }

    #[test]
    fn a_refused_value_names_its_key() {
        let config = SequencerConfig {
            per_block_allocation_multiplier: 0.5,
            ..SequencerConfig::default()
        };
        let err = config.settings(10).unwrap_err().to_string();
        assert!(
            err.starts_with("sequencer.per_block_allocation_multiplier: "),
            "{err}"
        );
    }

    #[test]
    fn every_key_is_documented_in_the_validator_example() {
        let example = include_str!("../../../deploy/config/validator.example.toml");
        let section = example
            .split("[sequencer]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap();
        let all_set = SequencerConfig {
            coinbase: Some(Address::ZERO),
            fee_recipient: Some(Address::ZERO),
            max_blocks_per_checkpoint: Some(1),
            max_txs_per_block: Some(1),
            max_mana_per_block: Some(1),
            max_txs_per_checkpoint: Some(1),
            max_mana_per_checkpoint: Some(1),
            ..SequencerConfig::default()
        };
        let keys = toml::Value::try_from(all_set).unwrap();
        for key in keys.as_table().unwrap().keys() {
            let set = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(
                section.contains(&set) || section.contains(&commented),
                "sequencer.{key} is not in deploy/config/validator.example.toml"
            );
            assert!(
                section.contains(&format!("TANDEM__SEQUENCER__{}", key.to_uppercase())),
                "the env var of sequencer.{key} is not documented"
            );
        }
    }
}
