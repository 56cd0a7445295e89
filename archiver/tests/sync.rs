//! Following L1 through the `L1Source` trait with a programmable in-memory L1: reorg races, a
//! lagging RPC, re-read checkpoints that differ, events and finality checked by hash, and the
//! senders a rollback needs recovered by the fetch.

mod common;

use common::setup::{GENESIS, SLOT, Setup};
use tandem_archiver::{
    ArchiverError, L1EventOutcome, L1Outcome, L1Step, PayloadSource, PruneKind, RecoveredBlocks,
    apply_l1_step, fetch_l1_update,
};
use tandem_proto::B256;

#[tokio::test]
async fn a_full_node_follows_l1_and_a_synced_range_is_not_read_again() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 2);
    let cp2 = s.checkpoint(2, 3, 1);
    s.l1.land_at(GENESIS + 2 * SLOT, &cp1, true);
    s.l1.land_at(GENESIS + 3 * SLOT, &cp2, true);
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 2);
    assert!(!report.behind);
    assert_eq!(report.synced_to, Some(s.l1.head().number));
    let tips = s.store.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 2);
    assert_eq!(tips.proposed.block.hash, cp2.blocks[0].hash());
    let calls = s.l1.calls();
    let again = s.sync().await.unwrap();
    assert_eq!(again.checkpoints, 0);
    // Only the cursor check, the head, and the finalized block: no range re-read.
    assert_eq!(s.l1.calls() - calls, 3);
    // The checkpoint record keeps L1's calldata.
    let record = s.checkpoint_record(1);
    assert_eq!(record.source, PayloadSource::L1Calldata);
    assert_eq!(record.attestations.len(), 1);
    assert_eq!(record.payload, cp1.payload);
}

#[tokio::test]
async fn a_reorg_between_reading_events_and_the_range_end_stores_nothing() {
    let mut s = Setup::new();
    s.sync().await.unwrap();
    let cursor = s.store.l1_synced().unwrap();
    let cp1 = s.checkpoint(1, 1, 1);
    let landed = s.l1.land(&cp1, true);
    s.mine_empty_after();
    // Calls of the next sync: block(cursor), latest, block(end) (pin), events (old chain: with
    // checkpoint 1), then L1 reorganises the blocks from the landing one, block(start),
    // block(end) again.
    s.l1.reorg_during_sync(4, landed.number, 9);
    let err = s.sync().await.unwrap_err();
    assert!(matches!(err, ArchiverError::L1RangeChanged { .. }), "{err}");
    assert_eq!(s.store.l1_synced(), Some(cursor), "the cursor did not move");
    assert_eq!(
        s.store.tips().checkpointed.checkpoint.number,
        0,
        "the orphaned checkpoint is not stored"
    );
    // The next sync reads the new chain: no checkpoint, the cursor at its head.
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 0);
    assert_eq!(s.store.l1_synced().unwrap().hash, s.l1.head().hash);
}

#[tokio::test]
async fn a_block_the_rpc_does_not_serve_yet_is_retried_not_a_reorg() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 1, 1);
    let landed = s.l1.land_at(GENESIS + SLOT, &cp1, true);
    s.sync().await.unwrap();
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 1);
    let tips = s.store.tips();

    // The RPC lags: it does not serve the cursor block, nor the checkpoint's block.
    s.l1.hide_block(landed.number, true);
    let err = s.sync().await.unwrap_err();
    assert!(matches!(err, ArchiverError::L1BlockUnavailable { number } if number == landed.number));
    assert_eq!(s.store.tips(), tips, "nothing rolled back");

    // A real reorg whose walk-back meets a block the RPC does not serve: retry, no rollback.
    s.l1.hide_block(landed.number, false);
    s.mine_empty_after();
    s.mine_empty_after();
    s.sync().await.unwrap();
    let cursor = s.store.l1_synced().unwrap();
    assert_eq!(cursor.number, landed.number + 2);
    s.l1.reorg_from(landed.number + 1);
    for offset in 1..=2 {
        s.l1.remine(landed.timestamp + offset, Vec::new(), 3);
    }
    s.l1.hide_block(landed.number, true);
    let err = s.sync().await.unwrap_err();
    assert!(
        matches!(err, ArchiverError::L1BlockUnavailable { number } if number == landed.number),
        "{err}"
    );
    assert_eq!(s.store.tips(), tips);
    assert_eq!(s.store.l1_synced(), Some(cursor));
    // Served again: checkpoint 1's block is canonical, only the cursor moves back and on.
    s.l1.hide_block(landed.number, false);
    let report = s.sync().await.unwrap();
    assert!(report.prunes.is_empty());
    assert_eq!(s.store.tips(), tips);
    assert_eq!(s.store.l1_synced().unwrap().hash, s.l1.head().hash);

    // L1 reorganises to a *shorter* chain without checkpoint 1's block: while it is shorter
    // than the cursor, the cursor block is not served and nothing moves; once it is longer, the
    // cursor's hash shows the reorg.
    let cursor = s.store.l1_synced().unwrap();
    s.l1.reorg_from(landed.number);
    let err = s.sync().await.unwrap_err();
    assert!(matches!(err, ArchiverError::L1BlockUnavailable { number } if number == cursor.number));
    assert_eq!(s.store.tips(), tips);
    while s.l1.head().number < cursor.number {
        s.l1.remine(s.l1.head().timestamp + 1, Vec::new(), 4);
    }
    let report = s.sync().await.unwrap();
    assert_eq!(report.prunes.len(), 1);
    assert_eq!(report.prunes[0].kind, PruneKind::L1Reorg);
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 0);
    assert_eq!(s.store.l1_synced().unwrap().hash, s.l1.head().hash);
}

#[tokio::test]
async fn a_re_read_checkpoint_that_differs_is_a_reorg_and_replaces_the_stored_one() {
    let mut s = Setup::new();
    let mut other = s.chain.clone();
    let cp1 = s.checkpoint(1, 2, 1);
    s.mine_until(GENESIS + 2 * SLOT);
    s.sync().await.unwrap();
    // The store learned checkpoint 1 in L1 block X (say from a sync whose cursor did not move
    // past it before a restart); L1 now has another checkpoint 1 in a later block, while the
    // cursor block itself is unchanged.
    let x = s.l1.head().number + 1;
    let stale = cp1.event(true);
    let applied = s
        .store
        .apply_l1_event(tandem_archiver::L1CheckpointEvent {
            l1: tandem_archiver::L1Ref {
                number: x,
                hash: B256::repeat_byte(0xab),
                timestamp: GENESIS + 2 * SLOT + 1,
            },
            ..stale
        })
        .unwrap();
    assert!(matches!(
        applied,
        L1EventOutcome::Applied(L1Outcome::Inserted { .. })
    ));
    let replacement = other.checkpoint(1, 2, 2, 9);
    s.mine_empty_after();
    s.l1.land(&replacement, true);
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.prunes.len(), 1);
    assert_eq!(report.prunes[0].kind, PruneKind::L1Reorg);
    assert_eq!(
        s.store.tips().checkpointed.checkpoint.hash,
        replacement.payload.header.hash()
    );
    assert_eq!(
        s.store.tips().proposed.block.hash,
        replacement.blocks[1].hash()
    );

    // Below the finalized checkpoint the same is fatal.
    s.store.set_finalized(1).unwrap();
    let mut third = s.chain.clone();
    let different = third.checkpoint(1, 2, 1, 4);
    let err = s
        .store
        .apply_l1_event(tandem_archiver::L1CheckpointEvent {
            l1: s.l1.head().reference(),
            ..different.event(true)
        })
        .unwrap_err();
    assert!(
        matches!(err, ArchiverError::ReorgBelowFinalized { .. }),
        "{err}"
    );
    assert!(err.is_fatal());
}

#[tokio::test]
async fn an_event_whose_l1_block_is_not_canonical_voids_its_range() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 1);
    s.mine_until(GENESIS + 2 * SLOT);
    // The log query is answered from another fork: the event names a block of that fork at a
    // height the canonical chain has too, with the same end block either side.
    let at = s.l1.head().number - 1;
    s.l1.add_off_chain_event(at, cp1.event(true));
    // Ranges before it are used; its own range is not, nor anything after it.
    let report = s.sync().await.unwrap();
    assert!(report.behind);
    assert_eq!(report.checkpoints, 0);
    assert!(s.store.l1_synced().unwrap().number < at);
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 0);
    let err = s.sync().await.unwrap_err();
    assert!(matches!(err, ArchiverError::L1RangeChanged { .. }), "{err}");
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 0);
}

#[tokio::test]
async fn finality_goes_by_hash_not_only_by_number() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 1);
    s.mine_until(GENESIS + 2 * SLOT);
    s.sync().await.unwrap();
    // Checkpoint 1 stored as included in a block of another fork at the next height (say an
    // event read from a stale node before this node checked events by hash).
    let x = s.l1.head().number + 1;
    s.store
        .apply_l1_event(tandem_archiver::L1CheckpointEvent {
            l1: tandem_archiver::L1Ref {
                number: x,
                hash: B256::repeat_byte(0xab),
                timestamp: GENESIS + 2 * SLOT + 1,
            },
            ..cp1.event(true)
        })
        .unwrap();
    s.mine_empty_after();
    s.mine_empty_after();
    s.l1.set_finalized(Some(s.l1.head().number));
    s.sync().await.unwrap();
    // L1's finalized chain has another block at that height: checkpoint 1 is not final.
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 1);
    assert_eq!(s.store.tips().finalized.checkpoint.number, 0);
}

#[tokio::test]
async fn a_failed_finalized_read_keeps_the_ranges_read() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 1);
    s.l1.land_at(GENESIS + 2 * SLOT, &cp1, true);
    s.mine_empty_after();
    s.l1.set_finalized(Some(s.l1.head().number));
    s.l1.fail_finalized(true);
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 1);
    assert_eq!(s.store.l1_synced().unwrap().hash, s.l1.head().hash);
    assert_eq!(s.store.tips().finalized.checkpoint.number, 0);
    // The next sync reads no range again (cursor check, head, finalized); once the finalized
    // block is served, checkpoint 1 is final.
    let calls = s.l1.calls();
    s.sync().await.unwrap();
    assert_eq!(s.l1.calls() - calls, 3);
    s.l1.fail_finalized(false);
    s.sync().await.unwrap();
    assert_eq!(s.store.tips().finalized.checkpoint.number, 1);
}

#[tokio::test]
async fn the_fetch_recovers_the_senders_a_rollback_needs_and_the_writer_uses_them() {
    let mut s = Setup::new();
    s.chain.next_txs = vec![common::tx(3, 0), common::tx(3, 1)];
    let cp1 = s.checkpoint(1, 2, 1);
    let landed = s.l1.land_at(GENESIS + 2 * SLOT, &cp1, true);
    s.mine_empty_after();
    s.sync().await.unwrap();
    assert_eq!(s.store.tips().checkpointed.checkpoint.number, 1);
    // L1 reorganises checkpoint 1 away: the fetch plans the rollback with the senders of the
    // checkpointed block it removes (which the store keeps only as bytes).
    s.l1.reorg_from(landed.number);
    s.l1.remine(landed.timestamp, Vec::new(), 7);
    s.l1.remine(landed.timestamp + 1, Vec::new(), 7);
    let update = fetch_l1_update(&s.store.reader(), &s.l1, &s.config)
        .await
        .unwrap();
    let L1Step::Rollback {
        keep: 0, recovered, ..
    } = &update.steps[0]
    else {
        panic!("{:?}", update.steps[0]);
    };
    assert_eq!(
        recovered.get(&cp1.blocks[0].hash()),
        Some(cp1.recovered[0].as_slice())
    );
    // The writer takes what it is given (here senders recovered under another domain, so a
    // recovery on the writer would show).
    let other = tandem_proto::SigningDomain {
        chain_id: 99,
        rollup: tandem_proto::Address::ZERO,
    };
    let given: Vec<_> = cp1.blocks[0]
        .txs
        .iter()
        .map(|tx| tx.clone().into_recovered(&other).unwrap())
        .collect();
    let step = L1Step::Rollback {
        keep: 0,
        marker: None,
        recovered: RecoveredBlocks::from_known([(cp1.blocks[0].hash(), given.clone())]),
    };
    apply_l1_step(&mut s.store, step).unwrap();
    let prunes = s.store.take_prune_events();
    assert_eq!(prunes.len(), 1);
    assert_eq!(prunes[0].txs, given);
    assert_ne!(given, cp1.recovered[0]);
}
