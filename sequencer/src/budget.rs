//! The checkpoint's budgets (txs, mana, body bytes) split across its blocks: each block may take
//! its even share of what is left times a multiplier (reference: 1.2), so a backlog does not
//! fill the first block and every sub-slot gets a block.

use tandem_proto::{max_txs_in_checkpoint_body, time::Timestamp};
use tandem_state::{BuildLimits, CheckpointBodyBudget};

/// What is left of one checkpoint's budgets as its blocks are built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CheckpointBudget {
    txs_left: usize,
    mana_left: u64,
    body: CheckpointBodyBudget,
    per_block_txs: usize,
    per_block_mana: u64,
    multiplier: f64,
}

impl CheckpointBudget {
    /// `max_txs` / `max_mana` per checkpoint (`None`: the body cap / the mana limit), per-block
    /// caps, the body cap and the timetable's block count.
    pub(crate) fn new(
        config: &crate::SequencerConfig,
        mana_limit: u64,
        max_body_bytes: usize,
        max_blocks: u32,
    ) -> Self {
        let blocks = usize::try_from(max_blocks).unwrap_or(usize::MAX).max(1);
        let by_body = max_txs_in_checkpoint_body(max_body_bytes, blocks);
        Self {
            txs_left: config
                .max_txs_per_checkpoint
                .map_or(by_body, |max| max.min(by_body)),
            mana_left: config
                .max_mana_per_checkpoint
                .map_or(mana_limit, |max| max.min(mana_limit)),
            body: CheckpointBodyBudget::new(max_body_bytes),
            per_block_txs: config.max_txs_per_block.unwrap_or(usize::MAX),
            per_block_mana: config.max_mana_per_block.unwrap_or(u64::MAX),
            multiplier: config.per_block_allocation_multiplier,
        }
    }

    /// Limits of the next block, with `subslots_left` sub-slots (this one included) to share
    /// the rest.
    pub(crate) fn block_limits(&self, subslots_left: u32, deadline: Timestamp) -> BuildLimits {
        // In integers (per mille of the multiplier), rounded down but at least one tx's worth,
        // so the last sub-slots are not starved.
        let permille = (self.multiplier * 1000.0).round() as u128;
        let parts = u128::from(subslots_left.max(1)) * 1000;
        let share = |left: u128| left.saturating_mul(permille) / parts;
        let txs = usize::try_from(share(self.txs_left as u128))
            .unwrap_or(usize::MAX)
            .max(1);
        let mana = u64::try_from(share(u128::from(self.mana_left)))
            .unwrap_or(u64::MAX)
            .max(tandem_state::TX_MANA);
        BuildLimits {
            max_txs: txs.min(self.txs_left).min(self.per_block_txs),
            max_mana: mana.min(self.mana_left).min(self.per_block_mana),
            max_body_bytes: self.body.remaining(),
            deadline,
        }
    }

    /// Counts a built block.
    pub(crate) fn add_block(&mut self, txs: usize, mana: u64) {
        self.txs_left = self.txs_left.saturating_sub(txs);
        self.mana_left = self.mana_left.saturating_sub(mana);
        self.body.add_block(txs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SequencerConfig;

    #[test]
    fn a_backlog_is_spread_over_every_sub_slot() {
        let config = SequencerConfig {
            max_txs_per_checkpoint: Some(100),
            ..SequencerConfig::default()
        };
        let mut budget = CheckpointBudget::new(&config, u64::MAX, 1 << 20, 4);
        let mut blocks = Vec::new();
        for left in (1..=4).rev() {
            let limits = budget.block_limits(left, Timestamp(0));
            // A backlog fills every block to its limit.
            blocks.push(limits.max_txs);
            budget.add_block(limits.max_txs, 0);
        }
        // 100/4·1.2 = 30, then 70/3·1.2 = 28, 42/2·1.2 = 25 (floor of 25.2), then the rest.
        assert_eq!(blocks, vec![30, 28, 25, 17]);
        assert_eq!(blocks.iter().sum::<usize>(), 100);
    }

    #[test]
    fn rounding_down_leaves_every_sub_slot_a_share() {
        let config = SequencerConfig {
            max_txs_per_checkpoint: Some(16),
            ..SequencerConfig::default()
        };
        let mut budget = CheckpointBudget::new(&config, u64::MAX, 1 << 20, 8);
        let mut blocks = Vec::new();
        for left in (1..=8).rev() {
            let limits = budget.block_limits(left, Timestamp(0));
            blocks.push(limits.max_txs);
            budget.add_block(limits.max_txs, 0);
        }
        assert_eq!(blocks, vec![2; 8]);
    }

    #[test]
    fn per_block_caps_and_the_body_cap_bound_each_block() {
        let config = SequencerConfig {
            max_txs_per_block: Some(5),
            max_mana_per_block: Some(7),
            ..SequencerConfig::default()
        };
        let budget = CheckpointBudget::new(&config, 1_000, 10_000, 2);
        let limits = budget.block_limits(2, Timestamp(9));
        assert_eq!(limits.max_txs, 5);
        assert_eq!(limits.max_mana, 7);
        assert_eq!(
            limits.max_body_bytes,
            CheckpointBodyBudget::new(10_000).remaining()
        );
        assert_eq!(limits.deadline, Timestamp(9));
    }
}
