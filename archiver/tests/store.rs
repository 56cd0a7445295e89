//! The archiver store on a real RocksDB: insertion rules and outcomes, tips, L1 reconciliation
//! and pruning, the reference scenarios 16–23, and a property test against a reference model.

use proptest::prelude::*;
mod common;

use common::{BuiltCheckpoint, Chain, DOMAIN, add_blocks, genesis, open_store, tx};
use tandem_archiver::{
    Added, ArchiverError, ArchiverStore, DEFAULT_MAX_PROPOSED_DEPTH, Disposition, L1EventOutcome,
    L1Outcome, L1Ref, PruneKind,
};
use tandem_proto::{Address, B256, BlockHeader};

fn open() -> (tempfile::TempDir, ArchiverStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    (dir, store)
}

#[test]
fn scenario_16_propose_and_read_fee_fields() {
    let (_dir, mut store) = open();
    assert_eq!(store.tips().proposed_checkpoint.checkpoint.number, 0);
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    let stored = store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    let Added::Stored(stored) = stored else {
        panic!("new")
    };
    assert_eq!(stored.total_mana_used, 200);
    assert_eq!(stored.payload.fee_asset_price_modifier, -75);
    let tips = store.tips();
    assert_eq!(tips.proposed_checkpoint.checkpoint.number, 1);
    assert_eq!(tips.proposed_checkpoint.block.number, 2);
    assert_eq!(tips.checkpointed.checkpoint.number, 0);
    assert!(tips.has_proposed_checkpoint());
    let reader = store.reader();
    let view = reader.view().unwrap();
    assert_eq!(view.proposed_checkpoint(1).unwrap().unwrap(), stored);
    assert_eq!(
        view.proposed_checkpoint_by_slot(5).unwrap().unwrap(),
        stored
    );
    assert_eq!(view.proposed_checkpoint_by_slot(6).unwrap(), None);
    assert_eq!(view.tips().unwrap(), tips);
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
    let reader = store.reader();
    let view = reader.view().unwrap();
    assert!(view.proposed_checkpoints().unwrap().is_empty());
    let tips = store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 2);
    assert_eq!(tips.proposed_checkpoint, tips.checkpointed);
    assert!(!tips.has_proposed_checkpoint());
    assert_eq!(view.checkpoint_by_slot(6).unwrap().unwrap().number, 2);
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
    assert_eq!(err.disposition(), Disposition::RetryLater);
    // Checkpoint 1 is on L1 already: the same proposal again is a duplicate, not an error.
    assert!(matches!(
        store.add_proposed_checkpoint(cp1.proposed()),
        Ok(Added::AlreadyStored(_))
    ));
    assert!(
        store
            .reader()
            .view()
            .unwrap()
            .proposed_checkpoints()
            .unwrap()
            .is_empty()
    );
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
    let reader = store.reader();
    assert!(
        reader
            .view()
            .unwrap()
            .proposed_checkpoint(3)
            .unwrap()
            .is_some()
    );

    let event = store.remove_checkpoints_after(1).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::L1Reorg);
    assert_eq!((event.first_removed_block, event.removed_blocks), (2, 2));
    assert_eq!(event.evicted_checkpoints, vec![3]);
    assert_eq!(event.seq, 1);
    let tips = store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 1);
    assert_eq!(tips.proposed.block.number, 1);
    let view = reader.view().unwrap();
    assert!(view.proposed_checkpoints().unwrap().is_empty());
    assert!(view.checkpoint(2).unwrap().is_none());
    assert!(view.checkpoint_by_slot(6).unwrap().is_none());
    assert_eq!(view.prune_seq().unwrap(), 1);
    store.check_consistency().unwrap();
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
    store.add_proposed_block(cp3.proposed_block(0)).unwrap();
    let cp4 = chain.checkpoint(4, 8, 1, 1);
    let err = store.add_proposed_block(cp4.proposed_block(0)).unwrap_err();
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
    local.next_txs = vec![tx(3, 0)];
    let cp1 = local.checkpoint(1, 125, 1, 1);
    let cp2 = local.checkpoint(2, 126, 1, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    add_blocks(&mut store, &cp2);
    store.add_proposed_checkpoint(cp2.proposed()).unwrap();

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
    // The pool gets the removed tx back with its sender, nothing to recover.
    assert_eq!(pruned.txs, vec![tx(3, 0)]);
    assert_eq!(pruned.txs[0].sender(), tx(3, 0).sender());
    assert_eq!(store.take_prune_events(), vec![pruned]);
    let tips = store.tips();
    assert_eq!(tips.proposed.block.hash, other.blocks[0].hash());
    assert_eq!(tips.checkpointed.block.number, 1);
    let reader = store.reader();
    let view = reader.view().unwrap();
    assert!(view.proposed_checkpoints().unwrap().is_empty());
    assert!(
        view.header_by_hash(&cp2.blocks[0].hash())
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
    // Slot 5 still open (the newest L1 block is in slot 5): keep everything.
    assert_eq!(store.prune_uncheckpointed(5).unwrap(), None);
    assert_eq!(store.tips().proposed_checkpoint.checkpoint.number, 1);
    // An L1 block of slot 6 exists: slot 5 is over without an L1 checkpoint.
    let event = store.prune_uncheckpointed(6).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::UncheckpointedSlot);
    assert_eq!((event.first_removed_block, event.removed_blocks), (1, 2));
    assert_eq!(event.evicted_checkpoints, vec![1]);
    assert_eq!(store.tips().proposed.block.number, 0);
}

#[test]
fn duplicates_are_already_stored_and_conflicts_are_rejected() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    let cp2 = chain.checkpoint(2, 6, 2, 1);
    add_blocks(&mut store, &cp2);
    let tips = store.tips();

    // A checkpointed block again, a proposed block again: duplicates.
    let again = store.add_proposed_block(cp1.proposed_block(1)).unwrap();
    assert_eq!(
        again,
        Added::AlreadyStored(store.reader().view().unwrap().header(2).unwrap().unwrap())
    );
    assert!(matches!(
        store.add_proposed_block(cp2.proposed_block(0)),
        Ok(Added::AlreadyStored(header)) if header.hash == cp2.blocks[0].hash()
    ));
    // Other content at a stored number: rejected, checkpointed or not.
    let mut other = Chain::new().checkpoint(1, 5, 2, 9);
    let err = store
        .add_proposed_block(other.proposed_block(1))
        .unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::CannotOverwriteCheckpointedBlock { number: 2 }
    ));
    assert_eq!(err.disposition(), Disposition::Reject);
    // Over a block no proposed checkpoint covers: it may be an orphan that goes at its
    // deadline, so retry later (once a proposal seals it, rejected: below).
    let mut fork = Chain::from_store(&store, 2);
    other = fork.checkpoint(2, 6, 1, 9);
    let err = store
        .add_proposed_block(other.proposed_block(0))
        .unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::BlockNumberHeldByUncovered { number: 3 }
    ));
    assert_eq!(err.disposition(), Disposition::RetryLater);
    // A block whose parent is not there yet: retry later.
    let mut gap = chain.checkpoint(3, 7, 2, 1);
    gap.blocks.remove(0);
    let err = store.add_proposed_block(gap.proposed_block(0)).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::ParentNotStored {
                number: 6,
                latest: 4
            }
        ),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::RetryLater);
    assert_eq!(store.tips(), tips, "nothing was written");

    // Proposed checkpoints: a duplicate, a different one at the same number, one whose block
    // is missing.
    let stored = store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    assert!(stored.is_new());
    let err = store
        .add_proposed_block(other.proposed_block(0))
        .unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::BlockNumberAlreadyExists { number: 3 }
    ));
    assert_eq!(err.disposition(), Disposition::Reject);
    assert!(matches!(
        store.add_proposed_checkpoint(cp2.proposed()),
        Ok(Added::AlreadyStored(ref p)) if p == stored.get()
    ));
    let mut modified = cp2.proposed();
    modified.payload.fee_asset_price_modifier = 10;
    assert!(matches!(
        store.add_proposed_checkpoint(modified),
        Err(ArchiverError::ProposedCheckpointConflict { number: 2 })
    ));
    let mut next = Chain::from_store(&store, 4);
    let cp3 = next.checkpoint(3, 7, 2, 1);
    store.add_proposed_block(cp3.proposed_block(0)).unwrap();
    let err = store.add_proposed_checkpoint(cp3.proposed()).unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::ProposedCheckpointBlockMissing {
            number: 3,
            block: 6
        }
    ));
    assert_eq!(err.disposition(), Disposition::RetryLater);
}

#[test]
fn a_proposed_checkpoint_seals_its_block_set() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    // The proposer gossiped three blocks of checkpoint 1 but proposed only the first two.
    let prefix = chain.clone().checkpoint(1, 5, 2, 1);
    chain.next_txs = Vec::new();
    let all = chain.checkpoint(1, 5, 3, 1);
    assert_eq!(prefix.blocks[..], all.blocks[..2]);
    add_blocks(&mut store, &all);
    let stored = store.add_proposed_checkpoint(prefix.proposed()).unwrap();
    assert!(stored.is_new());
    let events = store.take_prune_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, PruneKind::OutsideProposedCheckpoint);
    assert_eq!(
        (events[0].first_removed_block, events[0].removed_blocks),
        (3, 1)
    );
    let tips = store.tips();
    assert_eq!(tips.proposed, tips.proposed_checkpoint);
    assert_eq!(tips.proposed.block.number, 2);
    store.check_consistency().unwrap();
    // Nothing joins the sealed checkpoint afterwards.
    assert!(matches!(
        store.add_proposed_block(all.proposed_block(2)),
        Err(ArchiverError::CheckpointAlreadyProposed {
            block: 3,
            checkpoint: 1
        })
    ));
}

#[test]
fn a_checkpoint_header_must_carry_its_blocks_coinbase_and_fee_recipient() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    for change in [
        (|h: &mut tandem_proto::CheckpointHeader| h.coinbase = Address::ZERO)
            as fn(&mut tandem_proto::CheckpointHeader),
        |h| h.fee_recipient = Address::ZERO,
    ] {
        let mut input = cp1.proposed();
        change(&mut input.payload.header);
        assert!(matches!(
            store.add_proposed_checkpoint(input),
            Err(ArchiverError::ProposedCheckpointBlocks { number: 1, reason })
                if reason.contains("coinbase, fee recipient")
        ));
    }
    // A block for another chain is refused at the door.
    let mut foreign = Chain::from_store(&store, 2)
        .checkpoint(2, 6, 1, 1)
        .proposed_block(0);
    foreign.header.chain_id = 9;
    assert!(matches!(
        store.add_proposed_block(foreign),
        Err(ArchiverError::WrongChain {
            block: 3,
            chain_id: 9,
            ..
        })
    ));
}

#[test]
fn a_proposed_checkpoint_whose_body_hash_is_not_its_blocks_is_refused() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    chain.next_txs = vec![tx(1, 0), tx(1, 1)];
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    add_blocks(&mut store, &cp1);
    // Every other field matches; the body hash is that of the same blocks without their txs
    // (so a check that skipped the txs would accept it).
    let mut without_txs = cp1.blocks.clone();
    for block in &mut without_txs {
        block.txs.clear();
    }
    for body_hash in [
        B256::repeat_byte(3),
        tandem_proto::keccak256(tandem_proto::encode_checkpoint_body(&without_txs)),
    ] {
        let mut input = cp1.proposed();
        input.payload.header.body_hash = body_hash;
        let err = store.add_proposed_checkpoint(input).unwrap_err();
        assert!(
            matches!(err, ArchiverError::ProposedCheckpointBlocks { number: 1, reason } if reason.contains("body hash")),
            "{err}"
        );
        assert_eq!(err.disposition(), Disposition::Reject);
        assert_eq!(store.tips().proposed_checkpoint.checkpoint.number, 0);
    }
    assert!(
        store
            .add_proposed_checkpoint(cp1.proposed())
            .unwrap()
            .is_new()
    );
    store.check_consistency().unwrap();
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
    // A tampered L1 body is refused and nothing is written.
    let mut bad = chain.checkpoint(3, 7, 1, 1).l1(12);
    bad.blocks[0].header.state_root = B256::repeat_byte(0xee);
    assert!(matches!(
        store.add_l1_checkpoint(bad),
        Err(ArchiverError::L1CheckpointBlocks { number: 3, .. })
    ));
    assert_eq!(store.tips().checkpointed.checkpoint.number, 2);
    // L1-only blocks have no proposer signature; the gossiped one has.
    let view = store.reader();
    let view = view.view().unwrap();
    assert!(view.block(1).unwrap().unwrap().proposer_signature.is_none());
    assert!(view.block_proposal(1).unwrap().is_none());
    let proposal = view.block_proposal(4).unwrap().unwrap();
    assert_eq!(
        proposal.recover_proposer(&DOMAIN),
        Ok(common::proposer().address())
    );
    assert_eq!(proposal.header, cp2.blocks[0].header);
    assert_eq!(proposal.archive_root, cp2.archive_roots[0]);
}

#[test]
fn block_rules_refuse_bad_blocks_without_writing() {
    let (_dir, mut store) = open();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    let mut wrong_parent = cp1.proposed_block(0);
    wrong_parent.header.last_archive_root = B256::repeat_byte(3);
    assert!(matches!(
        store.add_proposed_block(wrong_parent),
        Err(ArchiverError::BlockArchiveNotConsistent { block: 1 })
    ));
    let mut wrong_index = cp1.proposed_block(0);
    wrong_index.header.index_within_checkpoint = 1;
    assert!(matches!(
        store.add_proposed_block(wrong_index),
        Err(ArchiverError::BlockIndexNotSequential {
            expected: 0,
            got: 1,
            ..
        })
    ));
    let mut wrong_txs = cp1.proposed_block(0);
    wrong_txs.txs.push(tx(1, 0));
    assert!(matches!(
        store.add_proposed_block(wrong_txs),
        Err(ArchiverError::BodyMismatch { block: 1 })
    ));
    assert_eq!(store.tips().proposed.block.number, 0);
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
fn the_orphan_prune_keeps_the_blocks_of_an_l1_checkpoint_awaiting_its_body() {
    let mut chain = Chain::new();
    let on_l1 = chain.clone().checkpoint(1, 5, 1, 9);
    // Local blocks of checkpoint 1 that do not rebuild L1's (another version).
    let local1 = chain.checkpoint(1, 5, 2, 1);
    let local2 = chain.checkpoint(2, 6, 1, 1);
    // Everything is past its deadline.
    let (_dir, mut store) = open();
    add_blocks(&mut store, &local1);
    let outcome = store.apply_l1_event(on_l1.event(false)).unwrap();
    assert!(
        matches!(outcome, L1EventOutcome::Awaiting(Some(_))),
        "{outcome:?}"
    );
    // Checkpoint 1's blocks stay: the awaited body may turn out to be theirs.
    assert_eq!(store.prune_orphans(u64::MAX, |_| 0).unwrap(), None);
    assert_eq!(store.tips().proposed.block.number, 2);

    // Above the awaited checkpoint, orphans go as usual (here on a proposal of checkpoint 1
    // that L1 contradicts).
    let (_dir, mut store) = open();
    add_blocks(&mut store, &local1);
    store.add_proposed_checkpoint(local1.proposed()).unwrap();
    add_blocks(&mut store, &local2);
    store.apply_l1_event(on_l1.event(false)).unwrap();
    let event = store.prune_orphans(u64::MAX, |_| 0).unwrap().unwrap();
    assert_eq!(event.kind, PruneKind::Orphan);
    assert_eq!((event.first_removed_block, event.removed_blocks), (3, 1));
    assert_eq!(store.tips().proposed.block.number, 2);
    store.check_consistency().unwrap();
}

#[test]
fn reopen_keeps_everything_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    let tips = {
        let mut store = open_store(dir.path());
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
    let store = open_store(dir.path());
    assert_eq!(store.tips(), tips);
    assert_eq!(store.tips().finalized.checkpoint.number, 1);
    assert_eq!(store.l1_synced().unwrap().number, 10);
    assert_eq!(store.reader().tips().unwrap(), tips);
    drop(store);
    let other = BlockHeader {
        chain_id: 2,
        ..genesis()
    };
    assert!(matches!(
        ArchiverStore::open(dir.path(), &other, DOMAIN),
        Err(ArchiverError::GenesisMismatch { .. })
    ));
}

#[test]
fn queries_by_number_hash_archive_slot_and_tx() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let mut chain = Chain::new();
    chain.next_txs = vec![tx(1, 0), tx(1, 1)];
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    chain.next_txs = vec![tx(2, 0)];
    let cp2 = chain.checkpoint(2, 7, 1, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    add_blocks(&mut store, &cp2);

    let reader = store.reader();
    let view = reader.view().unwrap();
    let second = &cp1.blocks[1];
    let by_number = view.block(2).unwrap().unwrap();
    assert_eq!(by_number.block, *second);
    assert_eq!(
        view.block_by_hash(&second.hash()).unwrap().unwrap(),
        by_number
    );
    // The validator finds a proposal's parent by its `last_archive_root`.
    let child = &cp2.blocks[0];
    let parent = view
        .header_by_archive(&child.header.last_archive_root)
        .unwrap()
        .unwrap();
    assert_eq!(parent.hash, second.hash());
    assert_eq!(parent.archive_root, cp1.archive_roots[1]);
    assert_eq!(
        view.block_by_archive(&cp1.archive_roots[1])
            .unwrap()
            .unwrap(),
        by_number
    );
    assert_eq!(view.block_hash(3).unwrap(), Some(child.hash()));
    assert_eq!(view.block_hash(4).unwrap(), None);
    // Blocks of a slot: checkpointed, uncheckpointed, none.
    let hashes = |blocks: Vec<tandem_archiver::StoredBlock>| {
        blocks.iter().map(|b| b.block.hash()).collect::<Vec<_>>()
    };
    assert_eq!(
        hashes(view.blocks_of_slot(5).unwrap()),
        cp1.blocks.iter().map(|b| b.hash()).collect::<Vec<_>>()
    );
    assert_eq!(hashes(view.blocks_of_slot(7).unwrap()), vec![child.hash()]);
    assert!(view.blocks_of_slot(6).unwrap().is_empty());
    // Txs: checkpointed (disk index) and uncheckpointed (memory index).
    let found = view.tx(&tx(1, 1).hash()).unwrap().unwrap();
    assert_eq!((found.block.number, found.index), (1, 1));
    assert_eq!(found.tx, *tx(1, 1).tx());
    let found = view.tx(&tx(2, 0).hash()).unwrap().unwrap();
    assert_eq!((found.block.number, found.block.hash), (3, child.hash()));
    assert_eq!(view.tx(&tx(9, 9).hash()).unwrap(), None);
    drop(view);

    // A view keeps its state while the writer prunes and reopens nothing.
    let old = reader.view().unwrap();
    store.prune_uncheckpointed(u64::MAX).unwrap().unwrap();
    let new = reader.view().unwrap();
    assert_eq!(old.tips().unwrap().proposed.block.number, 3);
    assert_eq!(new.tips().unwrap().proposed.block.number, 2);
    assert!(
        old.tx(&tx(2, 0).hash()).unwrap().is_some(),
        "the old view still has it"
    );
    assert!(new.tx(&tx(2, 0).hash()).unwrap().is_none());
    assert!(old.block(3).unwrap().is_some());
    assert!(new.block(3).unwrap().is_none());
    drop((old, new));

    // Reopen: the uncheckpointed index is rebuilt from the stored blocks.
    add_blocks(&mut store, &cp2);
    drop(reader);
    drop(store);
    let store = open_store(dir.path());
    let reader = store.reader();
    let view = reader.view().unwrap();
    assert_eq!(view.tx(&tx(2, 0).hash()).unwrap().unwrap().block.number, 3);
    assert_eq!(view.tx(&tx(1, 0).hash()).unwrap().unwrap().block.number, 1);
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

// ---- property test against a reference model ---------------------------------------------

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
