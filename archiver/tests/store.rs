//! The archiver store on a real RocksDB: insertion rules and outcomes, tips and L1
//! reconciliation, with the reference scenarios 16–22.

mod common;

use common::{Chain, DOMAIN, add_blocks, open_store, tx};
use tandem_archiver::{Added, ArchiverError, ArchiverStore, Disposition, L1Outcome, PruneKind};
use tandem_proto::{Address, B256};

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
