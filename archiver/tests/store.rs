//! The archiver store on a real RocksDB: insertion rules, tips, L1 reconciliation and pruning,
//! including the reference scenarios 16–23.

use proptest::prelude::*;
mod common;

use common::{BuiltCheckpoint, Chain, genesis};
use tandem_archiver::{ArchiverError, ArchiverStore, L1Outcome, L1Ref, PruneKind};
use tandem_proto::{B256, BlockHeader, archive::ArchiveTree};

fn open() -> (tempfile::TempDir, ArchiverStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    (dir, store)
}

fn add_blocks(store: &mut ArchiverStore, checkpoint: &BuiltCheckpoint) {
    for block in &checkpoint.blocks {
        store.add_proposed_block(block.clone()).unwrap();
    }
}

#[test]
fn scenario_16_propose_and_read_fee_fields() {
    let (_dir, mut store) = open();
    assert_eq!(store.tips().proposed_checkpoint.checkpoint.number, 0);
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    let stored = store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    assert_eq!(stored.total_mana_used, 200);
    assert_eq!(stored.payload.fee_asset_price_modifier, -75);
    let tips = store.tips();
    assert_eq!(tips.proposed_checkpoint.checkpoint.number, 1);
    assert_eq!(tips.proposed_checkpoint.block.number, 2);
    assert_eq!(tips.checkpointed.checkpoint.number, 0);
    assert!(tips.has_proposed_checkpoint());
    assert_eq!(store.proposed_checkpoint(1).unwrap().unwrap(), stored);
}

#[test]
fn scenario_17_l1_confirms_the_proposed_checkpoint() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    let cp2 = chain.checkpoint(2, 6, 2, 1);
    add_blocks(&mut store, &cp1);
    assert_eq!(
        store.add_l1_checkpoint(cp1.l1(10)).unwrap(),
        L1Outcome::Inserted {
            new_blocks: 0,
            pruned: None
        }
    );
    add_blocks(&mut store, &cp2);
    store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    assert_eq!(
        store.add_l1_checkpoint(cp2.l1(11)).unwrap(),
        L1Outcome::Promoted
    );
    assert!(store.proposed_checkpoints().unwrap().is_empty());
    let tips = store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 2);
    assert_eq!(tips.proposed_checkpoint, tips.checkpointed);
    assert!(!tips.has_proposed_checkpoint());
    assert_eq!(store.checkpoint_by_slot(6).unwrap().unwrap().number, 2);
}

#[test]
fn scenario_18_proposed_checkpoints_must_be_sequential() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    let mut skipped = chain.clone();
    let _cp2 = skipped.checkpoint(2, 6, 1, 1);
    let cp3 = skipped.checkpoint(3, 7, 1, 1);
    let err = store.add_proposed_checkpoint(cp3.proposed()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::ProposedCheckpointNotSequential {
                expected: 2,
                got: 3
            }
        ),
        "{err}"
    );
    let err = store.add_proposed_checkpoint(cp1.proposed()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::ProposedCheckpointNotSequential {
                expected: 2,
                got: 1
            }
        ),
        "{err}"
    );
    assert!(store.proposed_checkpoints().unwrap().is_empty());
}

#[test]
fn scenario_19_removing_checkpoints_clears_only_what_sat_on_them() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    let cp3 = chain.checkpoint(3, 7, 1, 1);
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    store.add_l1_checkpoint(cp2.l1(11)).unwrap();
    add_blocks(&mut store, &cp3);
    store.add_proposed_checkpoint(cp3.proposed()).unwrap();

    assert_eq!(store.remove_checkpoints_after(2).unwrap(), None);
    assert!(store.proposed_checkpoint(3).unwrap().is_some());

    let event = store.remove_checkpoints_after(1).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::L1Reorg);
    assert_eq!((event.first_removed_block, event.removed_blocks), (2, 2));
    assert_eq!(event.evicted_checkpoints, vec![3]);
    let tips = store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 1);
    assert_eq!(tips.proposed.block.number, 1);
    assert!(store.proposed_checkpoints().unwrap().is_empty());
    assert!(store.checkpoint(2).unwrap().is_none());
    assert!(store.checkpoint_by_slot(6).unwrap().is_none());
}

#[test]
fn scenario_20_blocks_on_top_of_a_proposed_checkpoint() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    add_blocks(&mut store, &cp2);
    store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    let cp3 = chain.checkpoint(3, 7, 1, 1);
    store.add_proposed_block(cp3.blocks[0].clone()).unwrap();
    let cp4 = chain.checkpoint(4, 8, 1, 1);
    let err = store.add_proposed_block(cp4.blocks[0].clone()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::BlockCheckpointNumberNotSequential {
                checkpoint: 4,
                previous: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot insert block 4 for checkpoint 4 given previous checkpoint number is 2"
    );
}

#[test]
fn scenario_21_proposed_checkpoint_block_falls_back_to_checkpointed() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    assert_eq!(store.tips().proposed_checkpoint.block.number, 2);
    let cp2 = chain.checkpoint(2, 6, 3, 1);
    add_blocks(&mut store, &cp2);
    assert_eq!(
        store.tips().proposed_checkpoint.block.number,
        2,
        "blocks alone do not move it"
    );
    store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    assert_eq!(store.tips().proposed_checkpoint.block.number, 5);
}

#[test]
fn scenario_22_l1_mines_a_different_checkpoint_and_evicts_both_proposed() {
    let (_dir, mut store) = open();
    let mut local = Chain::new();
    let l1_chain = &mut local.clone();
    let cp1 = local.checkpoint(1, 125, 1, 1);
    let cp2 = local.checkpoint(2, 126, 1, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    add_blocks(&mut store, &cp2);
    store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    assert_eq!(store.proposed_checkpoints().unwrap().len(), 2);

    let other = l1_chain.checkpoint(1, 125, 1, 9);
    let L1Outcome::Inserted { new_blocks, pruned } = store.add_l1_checkpoint(other.l1(10)).unwrap()
    else {
        panic!("a divergent checkpoint cannot be promoted");
    };
    assert_eq!(new_blocks, 1);
    let pruned = pruned.unwrap();
    assert_eq!(pruned.kind, PruneKind::L1Divergence);
    assert_eq!((pruned.first_removed_block, pruned.removed_blocks), (1, 2));
    assert_eq!(pruned.evicted_checkpoints, vec![1, 2]);
    let tips = store.tips();
    assert_eq!(tips.proposed.block.hash, other.blocks[0].hash());
    assert_eq!(tips.checkpointed.block.number, 1);
    assert!(store.proposed_checkpoints().unwrap().is_empty());
    assert!(
        store
            .block_number_by_hash(&cp2.blocks[0].hash())
            .unwrap()
            .is_none()
    );
}

#[test]
fn scenario_23_no_prune_while_the_slot_runs_then_prune() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    // Slot 5 still running (next L1 block is in slot 5): keep everything.
    assert_eq!(store.prune_uncheckpointed(5).unwrap(), None);
    assert_eq!(store.tips().proposed_checkpoint.checkpoint.number, 1);
    // Slot 5 over without an L1 checkpoint: blocks and the proposed checkpoint go.
    let event = store.prune_uncheckpointed(6).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::UncheckpointedSlot);
    assert_eq!((event.first_removed_block, event.removed_blocks), (1, 2));
    assert_eq!(event.evicted_checkpoints, vec![1]);
    assert_eq!(store.tips().proposed.block.number, 0);
}

#[test]
fn promotion_of_the_lower_proposed_keeps_the_higher() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    let cp2 = chain.checkpoint(2, 6, 2, 1);
    for cp in [&cp1, &cp2] {
        add_blocks(&mut store, cp);
        store.add_proposed_checkpoint(cp.proposed()).unwrap();
    }
    assert_eq!(
        store.add_l1_checkpoint(cp1.l1(10)).unwrap(),
        L1Outcome::Promoted
    );
    let tips = store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 1);
    assert_eq!(tips.proposed_checkpoint.checkpoint.number, 2);
    assert_eq!(tips.proposed_checkpoint.block.number, 3);
}

#[test]
fn full_node_inserts_blocks_from_l1_alone_and_keeps_later_local_blocks() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 3, 1);
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    assert_eq!(
        store.add_l1_checkpoint(cp1.l1(10)).unwrap(),
        L1Outcome::Inserted {
            new_blocks: 3,
            pruned: None
        }
    );
    // Gossip delivered checkpoint 2's block before L1 did; L1's copy is identical.
    add_blocks(&mut store, &cp2);
    assert_eq!(
        store.add_l1_checkpoint(cp2.l1(11)).unwrap(),
        L1Outcome::Inserted {
            new_blocks: 0,
            pruned: None
        }
    );
    assert_eq!(store.tips().checkpointed.block.number, 4);
    // Duplicate gossip of a checkpointed block.
    assert!(matches!(
        store.add_proposed_block(cp1.blocks[1].clone()),
        Err(ArchiverError::AlreadyCheckpointed { number: 2 })
    ));
    // A tampered L1 body is refused and nothing is written.
    let mut bad = chain.checkpoint(3, 7, 1, 1).l1(12);
    bad.blocks[0].header.state_root = B256::repeat_byte(0xee);
    assert!(matches!(
        store.add_l1_checkpoint(bad),
        Err(ArchiverError::L1CheckpointBlocks { number: 3, .. })
    ));
    assert_eq!(store.tips().checkpointed.checkpoint.number, 2);
}

#[test]
fn block_rules_refuse_bad_blocks_without_writing() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    let mut gap = cp1.blocks[1].clone();
    gap.header.block_number = 2;
    assert!(matches!(
        store.add_proposed_block(gap),
        Err(ArchiverError::BlockNumberNotSequential {
            expected: 1,
            got: 2
        })
    ));
    let mut wrong_parent = cp1.blocks[0].clone();
    wrong_parent.header.last_archive_root = B256::repeat_byte(3);
    assert!(matches!(
        store.add_proposed_block(wrong_parent),
        Err(ArchiverError::BlockArchiveNotConsistent { block: 1 })
    ));
    let mut wrong_index = cp1.blocks[0].clone();
    wrong_index.header.index_within_checkpoint = 1;
    assert!(matches!(
        store.add_proposed_block(wrong_index),
        Err(ArchiverError::BlockIndexNotSequential {
            expected: 0,
            got: 1,
            ..
        })
    ));
    assert_eq!(store.tips().proposed.block.number, 0);

    // Once checkpoint 1 is proposed, no block can join it.
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    let mut extra = chain.checkpoint(1, 5, 1, 1).blocks[0].clone();
    extra.header.index_within_checkpoint = 1;
    assert!(matches!(
        store.add_proposed_block(extra),
        Err(ArchiverError::CheckpointAlreadyProposed {
            block: 2,
            checkpoint: 1
        })
    ));
}

#[test]
fn orphan_blocks_are_pruned_after_their_deadline() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    let deadline = |slot: u64| slot * 1_000;
    assert_eq!(store.prune_orphans(5_000, deadline).unwrap(), None);
    let event = store.prune_orphans(5_001, deadline).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::Orphan);
    assert_eq!(event.removed_blocks, 2);
    assert_eq!(store.tips().proposed.block.number, 0);
}

#[test]
fn reopen_keeps_everything_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    let tips = {
        let mut store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
        store.add_l1_checkpoint(cp1.l1(10)).unwrap();
        add_blocks(&mut store, &cp2);
        store.add_proposed_checkpoint(cp2.proposed()).unwrap();
        store
            .set_l1_synced(L1Ref {
                number: 10,
                hash: B256::repeat_byte(4),
                timestamp: 3,
            })
            .unwrap();
        store.set_finalized(1).unwrap();
        store.tips()
    };
    let store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    assert_eq!(store.tips(), tips);
    assert_eq!(store.tips().finalized.checkpoint.number, 1);
    assert_eq!(store.l1_synced().unwrap().unwrap().number, 10);
    drop(store);
    let other = BlockHeader {
        chain_id: 2,
        ..genesis()
    };
    assert!(matches!(
        ArchiverStore::open(dir.path(), &other),
        Err(ArchiverError::GenesisMismatch { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    AddBlocks(u32),
    Propose,
    L1Matching,
    L1Different,
    SlotEnds,
    Reorg,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..3).prop_map(Op::AddBlocks),
        Just(Op::Propose),
        Just(Op::L1Matching),
        Just(Op::L1Different),
        Just(Op::SlotEnds),
        Just(Op::Reorg),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever happens, the tips hold their invariants and every stored block above the
    /// checkpointed tip chains on its predecessor (the consistency check re-verifies it).
    #[test]
    fn random_operations_keep_the_store_consistent(ops in proptest::collection::vec(op(), 1..30)) {
        let (_dir, mut store) = open();
        // The "canonical" chain the network builds; local is what this node holds.
        let mut canonical = Chain::new();
        let mut pending: Vec<BuiltCheckpoint> = Vec::new();
        let mut slot = 10;
        let mut l1_block = 100;
        for op in ops {
            let tips = store.tips();
            match op {
                Op::AddBlocks(count) => {
                    // Blocks for the next checkpoint after everything proposed.
                    if pending.len() < 2 {
                        let number = tips.checkpointed.checkpoint.number + pending.len() as u64 + 1;
                        slot += 1;
                        let mut next = canonical.clone();
                        let cp = next.checkpoint(number, slot, count, 1);
                        let mut ok = true;
                        for block in &cp.blocks {
                            ok = ok && store.add_proposed_block(block.clone()).is_ok();
                        }
                        if ok {
                            canonical = next;
                            pending.push(cp);
                        }
                    }
                }
                Op::Propose => {
                    if let Some(cp) = pending.iter().find(|cp| store.proposed_checkpoint(cp.number).unwrap().is_none()) {
                        let _ = store.add_proposed_checkpoint(cp.proposed());
                    }
                }
                Op::L1Matching => {
                    if !pending.is_empty() {
                        let cp = pending.remove(0);
                        l1_block += 1;
                        store.add_l1_checkpoint(cp.l1(l1_block)).unwrap();
                    }
                }
                Op::L1Different => {
                    // Someone else's checkpoint lands: local speculation is replaced.
                    let last = tips.checkpointed.block.number;
                    let mut other = Chain { archive: canonical_archive_at(&store, last), last_block: last, last_checkpoint_archive: B256::ZERO, ..Chain::new() };
                    slot += 1;
                    l1_block += 1;
                    let cp = other.checkpoint(tips.checkpointed.checkpoint.number + 1, slot, 1, 7);
                    store.add_l1_checkpoint(cp.l1(l1_block)).unwrap();
                    canonical = other;
                    pending.clear();
                }
                Op::SlotEnds => {
                    slot += 1;
                    if store.prune_uncheckpointed(slot).unwrap().is_some() {
                        canonical = Chain { archive: canonical_archive_at(&store, store.tips().checkpointed.block.number), last_block: store.tips().checkpointed.block.number, last_checkpoint_archive: B256::ZERO, ..Chain::new() };
                        pending.clear();
                    }
                }
                Op::Reorg => {
                    let checkpointed = tips.checkpointed.checkpoint.number;
                    if checkpointed > 0 && store.remove_checkpoints_after(checkpointed - 1).unwrap().is_some() {
                        let last = store.tips().checkpointed.block.number;
                        canonical = Chain { archive: canonical_archive_at(&store, last), last_block: last, last_checkpoint_archive: B256::ZERO, ..Chain::new() };
                        pending.clear();
                    }
                }
            }
            let tips = store.tips();
            prop_assert!(tips.check_invariants().is_ok());
            prop_assert!(store.check_consistency().is_ok());
            for proposed in store.proposed_checkpoints().unwrap() {
                prop_assert!(proposed.number > tips.checkpointed.checkpoint.number);
            }
        }
    }
}

/// The archive tree after stored block `number`, rebuilt from the store's blocks.
fn canonical_archive_at(store: &ArchiverStore, number: u64) -> ArchiveTree {
    let mut archive = ArchiveTree::new();
    for n in 0..=number {
        archive
            .append(store.block(n).unwrap().unwrap().block.hash())
            .unwrap();
    }
    archive
}

#[test]
fn tx_lookup_follows_blocks_through_proposal_promotion_reopen_and_prune() {
    use tandem_proto::{Address, SigningDomain, SigningKey, Tx, TxPayload};
    let domain = SigningDomain {
        chain_id: 1,
        rollup: Address::ZERO,
    };
    let key = SigningKey::from_bytes(&[8; 32]).unwrap();
    let tx = |nonce| {
        let payload = TxPayload {
            chain_id: 1,
            nonce,
            to: Address::ZERO,
            amount: 1,
            max_fee_per_mana: 1,
            mana_limit: 10_000,
        };
        Tx::sign(payload, &domain, &key)
            .into_recovered(&domain)
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::new();
    let first = vec![tx(0), tx(1)];
    chain.next_txs = first.iter().map(|t| t.tx().clone()).collect();
    let cp1 = chain.checkpoint(1, 5, 1, 1);
    let later = vec![tx(2)];
    chain.next_txs = later.iter().map(|t| t.tx().clone()).collect();
    let cp2 = chain.checkpoint(2, 6, 1, 1);

    let mut store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    store
        .add_proposed_block_recovered(cp1.blocks[0].header.clone(), &first)
        .unwrap();
    let found = |store: &ArchiverStore, hash: B256| {
        store
            .tx(&hash)
            .unwrap()
            .map(|(number, tx)| (number, tx.hash()))
    };
    assert_eq!(
        found(&store, first[1].hash()),
        Some((1, first[1].hash())),
        "uncheckpointed, in memory"
    );
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    assert_eq!(
        store.add_l1_checkpoint(cp1.l1(10)).unwrap(),
        L1Outcome::Promoted
    );
    drop(store);
    let mut store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    assert_eq!(
        found(&store, first[0].hash()),
        Some((1, first[0].hash())),
        "checkpointed, on disk"
    );

    store
        .add_proposed_block_recovered(cp2.blocks[0].header.clone(), &later)
        .unwrap();
    drop(store);
    let mut store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    assert_eq!(
        found(&store, later[0].hash()),
        Some((2, later[0].hash())),
        "rebuilt at open"
    );
    store.prune_uncheckpointed(u64::MAX).unwrap().unwrap();
    assert_eq!(found(&store, later[0].hash()), None, "pruned");
    assert!(found(&store, first[1].hash()).is_some());
}

#[test]
fn orphan_deadline_waits_longer_when_a_proposal_was_seen() {
    use std::time::Duration;

    use tandem_archiver::orphan_deadline;
    use tandem_proto::time::{ConsensusWindows, PipeliningMode, Slot, SlotClock, Timestamp};

    let clock = SlotClock::new(
        Timestamp::from_secs(10_000),
        Duration::from_secs(72),
        Duration::from_secs(12),
        32,
    )
    .unwrap();
    let windows = ConsensusWindows::new(
        clock,
        Duration::from_secs(6),
        PipeliningMode::Pipelined,
        Duration::from_secs(6),
    );
    let slot = Slot(5);
    let t = clock.slot_start(slot);
    let tolerance = Duration::from_secs(1);
    // No proposal: receive deadline (T − E − D = T − 18 s) + 1 s.
    assert_eq!(
        orphan_deadline(&windows, tolerance, false, slot),
        t.saturating_sub(Duration::from_secs(17))
    );
    // A proposal was seen: the next proposer's build frame start + 2·D = T.
    assert_eq!(orphan_deadline(&windows, tolerance, true, slot), t);
}
