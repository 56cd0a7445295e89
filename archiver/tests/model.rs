//! The archiver store against a reference model: random operations (blocks, proposals,
//! duplicates, L1 checkpoints matching or not, slot ends, reorgs), each result and the tips
//! checked against what the model says, and the whole store checked for consistency.

use proptest::prelude::*;
mod common;

use common::{BuiltCheckpoint, Chain, genesis, open_store};
use tandem_archiver::{
    Added, ArchiverError, ArchiverStore, DEFAULT_MAX_PROPOSED_DEPTH, L1Outcome, PruneKind,
};
use tandem_proto::B256;

/// What the store should hold: L1 checkpoints (their blocks' hashes), local blocks above them
/// (hash, checkpoint), and proposed checkpoints.
#[derive(Debug, Clone, Default)]
struct Model {
    /// `checkpoints[k]`: hashes of checkpoint k's blocks (k = 0 is genesis).
    checkpoints: Vec<Vec<B256>>,
    local: Vec<(B256, u64)>,
    proposed: std::collections::BTreeMap<u64, usize>,
}

impl Model {
    fn new() -> Self {
        Self {
            checkpoints: vec![vec![genesis().hash()]],
            ..Self::default()
        }
    }
    fn checkpointed(&self) -> u64 {
        self.checkpoints.len() as u64 - 1
    }
    fn checkpointed_last_block(&self) -> u64 {
        self.checkpoints.iter().map(Vec::len).sum::<usize>() as u64 - 1
    }
    fn last_block(&self) -> u64 {
        self.checkpointed_last_block() + self.local.len() as u64
    }
    /// Checkpoint number of the last local block (or the checkpointed one).
    fn last_checkpoint(&self) -> u64 {
        self.local.last().map_or(self.checkpointed(), |(_, c)| *c)
    }
    /// Local checkpoints above the checkpointed tip, in order: (number, block count).
    fn local_checkpoints(&self) -> Vec<(u64, usize)> {
        let mut out: Vec<(u64, usize)> = Vec::new();
        for (_, checkpoint) in &self.local {
            match out.last_mut() {
                Some((c, n)) if c == checkpoint => *n += 1,
                _ => out.push((*checkpoint, 1)),
            }
        }
        out
    }
    fn proposed_checkpoint(&self) -> u64 {
        self.proposed
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.checkpointed())
    }
    /// Drops local blocks from position `from` on, and every proposed checkpoint touching
    /// them.
    fn truncate_local(&mut self, from: usize) -> usize {
        let removed = self.local.len() - from;
        if let Some((_, lowest)) = self.local.get(from) {
            let lowest = *lowest;
            self.proposed.retain(|n, _| *n < lowest);
        }
        self.local.truncate(from);
        removed
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Blocks of a new checkpoint after the last local one.
    NewCheckpoint(u32),
    /// Propose the first local checkpoint not proposed yet.
    Propose,
    /// A new checkpoint of two blocks, proposed with only its first.
    ProposePrefix,
    /// The last local block again, and a different one at its number.
    Duplicate,
    L1Matching,
    L1Different,
    SlotEnds,
    Reorg,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..4).prop_map(Op::NewCheckpoint),
        3 => Just(Op::Propose),
        1 => Just(Op::ProposePrefix),
        1 => Just(Op::Duplicate),
        2 => Just(Op::L1Matching),
        1 => Just(Op::L1Different),
        1 => Just(Op::SlotEnds),
        1 => Just(Op::Reorg),
    ]
}

struct Harness {
    store: ArchiverStore,
    model: Model,
    /// Positioned after the last local block.
    builder: Chain,
    /// Built local checkpoints above the checkpointed tip, by number.
    built: std::collections::BTreeMap<u64, BuiltCheckpoint>,
    slot: u64,
    l1_block: u64,
}

impl Harness {
    fn rebuild_builder(&mut self) {
        self.builder = Chain::from_store(&self.store, self.store.tips().proposed.block.number);
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let tips = self.store.tips();
        let m = &self.model;
        prop_assert_eq!(tips.checkpointed.checkpoint.number, m.checkpointed());
        prop_assert_eq!(tips.checkpointed.block.number, m.checkpointed_last_block());
        prop_assert_eq!(tips.proposed.block.number, m.last_block());
        let expected_hash = m
            .local
            .last()
            .map_or(*m.checkpoints.last().unwrap().last().unwrap(), |(h, _)| *h);
        prop_assert_eq!(tips.proposed.block.hash, expected_hash);
        prop_assert_eq!(
            tips.proposed_checkpoint.checkpoint.number,
            m.proposed_checkpoint()
        );
        prop_assert!(
            self.store.check_consistency().is_ok(),
            "{:?}",
            self.store.check_consistency()
        );
        let reader = self.store.reader();
        let view = reader.view().unwrap();
        prop_assert_eq!(view.tips().unwrap(), tips);
        let stored: Vec<u64> = view
            .proposed_checkpoints()
            .unwrap()
            .iter()
            .map(|p| p.number)
            .collect();
        prop_assert_eq!(stored, m.proposed.keys().copied().collect::<Vec<_>>());
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        // Events of earlier operations were checked there (or are of no interest here).
        self.store.take_prune_events();
        match op {
            Op::NewCheckpoint(count) => {
                let number = self.model.last_checkpoint() + 1;
                let allowed = number == self.model.checkpointed() + 1
                    || self.model.proposed.contains_key(&(number - 1));
                self.slot += 1;
                let mut builder = self.builder.clone();
                let cp = builder.checkpoint(number, self.slot, count, 1);
                let first = self.store.add_proposed_block(cp.proposed_block(0));
                if !allowed {
                    prop_assert!(
                        matches!(
                            first,
                            Err(ArchiverError::BlockCheckpointNumberNotSequential { .. })
                        ),
                        "{:?}",
                        first
                    );
                    return Ok(());
                }
                if number - self.model.checkpointed() > DEFAULT_MAX_PROPOSED_DEPTH {
                    prop_assert!(
                        matches!(first, Err(ArchiverError::TooFarAboveCheckpointed { .. })),
                        "{:?}",
                        first
                    );
                    return Ok(());
                }
                prop_assert!(matches!(first, Ok(Added::Stored(_))), "{:?}", first);
                for i in 1..cp.blocks.len() {
                    let added = self.store.add_proposed_block(cp.proposed_block(i));
                    prop_assert!(matches!(added, Ok(Added::Stored(_))), "{:?}", added);
                }
                for block in &cp.blocks {
                    self.model.local.push((block.hash(), number));
                }
                self.builder = builder;
                self.built.insert(number, cp);
            }
            Op::Propose | Op::ProposePrefix => {
                if let Op::ProposePrefix = op {
                    let number = self.model.last_checkpoint() + 1;
                    let allowed = number == self.model.checkpointed() + 1
                        || self.model.proposed.contains_key(&(number - 1));
                    if !allowed || number - self.model.checkpointed() > DEFAULT_MAX_PROPOSED_DEPTH {
                        return Ok(());
                    }
                    self.slot += 1;
                    let prefix = self.builder.clone().checkpoint(number, self.slot, 1, 1);
                    let all = self.builder.checkpoint(number, self.slot, 2, 1);
                    for i in 0..2 {
                        self.store
                            .add_proposed_block(all.proposed_block(i))
                            .unwrap();
                        self.model.local.push((all.blocks[i].hash(), number));
                    }
                    let added = self.store.add_proposed_checkpoint(prefix.proposed());
                    prop_assert!(matches!(added, Ok(Added::Stored(_))), "{:?}", added);
                    self.model.local.pop();
                    self.model.proposed.insert(number, 1);
                    let events = self.store.take_prune_events();
                    prop_assert_eq!(events.len(), 1);
                    prop_assert_eq!(events[0].kind, PruneKind::OutsideProposedCheckpoint);
                    self.built.insert(number, prefix);
                    self.rebuild_builder();
                    return Ok(());
                }
                let next = self
                    .model
                    .local_checkpoints()
                    .into_iter()
                    .find(|(n, _)| !self.model.proposed.contains_key(n));
                let Some((number, count)) = next else {
                    // Propose again what is proposed: a duplicate.
                    if let Some(number) = self.model.proposed.keys().next().copied() {
                        let again = self
                            .store
                            .add_proposed_checkpoint(self.built[&number].proposed());
                        prop_assert!(matches!(again, Ok(Added::AlreadyStored(_))), "{:?}", again);
                    }
                    return Ok(());
                };
                let added = self
                    .store
                    .add_proposed_checkpoint(self.built[&number].proposed());
                prop_assert!(matches!(added, Ok(Added::Stored(_))), "{:?}", added);
                self.model.proposed.insert(number, count);
            }
            Op::Duplicate => {
                let Some(cp) = self.built.get(&self.model.last_checkpoint()) else {
                    return Ok(());
                };
                let last = cp.blocks.len() - 1;
                let again = self.store.add_proposed_block(cp.proposed_block(last));
                prop_assert!(matches!(again, Ok(Added::AlreadyStored(_))), "{:?}", again);
                let number = cp.blocks[last].header.block_number;
                let mut other = Chain::from_store(&self.store, number - 1);
                let conflicting = other.checkpoint(cp.number, cp.payload.header.slot, 1, 0x55);
                let mut block = conflicting.proposed_block(0);
                block.header.index_within_checkpoint =
                    cp.blocks[last].header.index_within_checkpoint;
                let refused = self.store.add_proposed_block(block);
                if self.model.proposed.contains_key(&cp.number) {
                    prop_assert!(
                        matches!(refused, Err(ArchiverError::BlockNumberAlreadyExists { .. })),
                        "{:?}",
                        refused
                    );
                } else {
                    prop_assert!(
                        matches!(
                            refused,
                            Err(ArchiverError::BlockNumberHeldByUncovered { .. })
                        ),
                        "{:?}",
                        refused
                    );
                }
            }
            Op::L1Matching => {
                let Some(&(number, count)) = self.model.local_checkpoints().first() else {
                    return Ok(());
                };
                self.l1_block += 1;
                let outcome = self
                    .store
                    .add_l1_checkpoint(self.built[&number].l1(self.l1_block));
                let was_proposed = self.model.proposed.remove(&number).is_some();
                let expected = if was_proposed {
                    L1Outcome::Promoted
                } else {
                    L1Outcome::Inserted {
                        new_blocks: 0,
                        pruned: None,
                    }
                };
                prop_assert_eq!(outcome.unwrap(), expected);
                let blocks: Vec<B256> = self.model.local.drain(..count).map(|(h, _)| h).collect();
                self.model.checkpoints.push(blocks);
                self.built.remove(&number);
            }
            Op::L1Different => {
                // Someone else's checkpoint lands: local speculation is replaced.
                let last = self.model.checkpointed_last_block();
                let mut other = Chain::from_store(&self.store, last);
                self.slot += 1;
                self.l1_block += 1;
                let number = self.model.checkpointed() + 1;
                let cp = other.checkpoint(number, self.slot, 1, 7);
                let outcome = self.store.add_l1_checkpoint(cp.l1(self.l1_block)).unwrap();
                let removed = self.model.truncate_local(0);
                self.model.proposed.clear();
                let L1Outcome::Inserted { new_blocks, pruned } = outcome else {
                    return Err(TestCaseError::fail("a different checkpoint was promoted"));
                };
                prop_assert_eq!(new_blocks, 1);
                prop_assert_eq!(
                    pruned.map(|p| p.removed_blocks).unwrap_or(0),
                    removed as u64
                );
                self.model.checkpoints.push(vec![cp.blocks[0].hash()]);
                self.built.clear();
                self.rebuild_builder();
            }
            Op::SlotEnds => {
                self.slot += 1;
                let event = self.store.prune_uncheckpointed(self.slot).unwrap();
                let removed = self.model.truncate_local(0);
                self.model.proposed.clear();
                prop_assert_eq!(event.map(|e| e.removed_blocks).unwrap_or(0), removed as u64);
                self.built.clear();
                self.rebuild_builder();
            }
            Op::Reorg => {
                let checkpointed = self.model.checkpointed();
                if checkpointed == 0 {
                    prop_assert_eq!(self.store.remove_checkpoints_after(0).unwrap(), None);
                    return Ok(());
                }
                let event = self
                    .store
                    .remove_checkpoints_after(checkpointed - 1)
                    .unwrap();
                let dropped = self.model.checkpoints.pop().unwrap().len();
                let removed = self.model.truncate_local(0) + dropped;
                self.model.proposed.clear();
                let event = event.unwrap();
                prop_assert_eq!(event.removed_blocks, removed as u64);
                prop_assert_eq!(
                    event.first_removed_block,
                    self.model.checkpointed_last_block() + 1
                );
                self.built.clear();
                self.rebuild_builder();
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every operation's result and the resulting tips equal the model's; the store stays
    /// consistent (the full check, from genesis) and readers see the writer's tips.
    #[test]
    fn random_operations_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let mut harness = Harness {
            builder: Chain::new(),
            store,
            model: Model::new(),
            built: Default::default(),
            slot: 10,
            l1_block: 100,
        };
        for op in ops {
            harness.apply(op)?;
            harness.check()?;
        }
    }
}
