//! L1 checkpoints whose calldata cannot be used: stored as facts awaiting their body while the
//! cursor moves on, resolved from local blocks, a matching proposal or peers, and bad L1 input
//! refused without losing any of them.

mod common;

use common::{
    add_blocks,
    setup::{GENESIS, SLOT, Setup, slot_clock},
};
use tandem_archiver::{ArchiverError, BodyProblem, L1Outcome, L1SyncStatus, PayloadSource};
use tandem_proto::time::Slot;

#[tokio::test]
async fn an_unreadable_checkpoint_waits_for_its_body_while_the_cursor_moves_on() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 2);
    let cp2 = s.checkpoint(2, 3, 1);
    s.l1.land_at(GENESIS + 2 * SLOT, &cp1, false);
    s.l1.land_at(GENESIS + 3 * SLOT, &cp2, true);
    s.mine_empty_after();
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 0);
    assert_eq!(report.awaiting, 2);
    assert_eq!(
        s.store.l1_synced().unwrap().hash,
        s.l1.head().hash,
        "the cursor moved on"
    );
    let reader = s.store.reader();
    let status = reader.view().unwrap().l1_status().unwrap();
    assert_eq!(
        status,
        L1SyncStatus::Blocked {
            checkpoint: 1,
            slot: 2,
            problem: Some(BodyProblem::CalldataMissing),
            waiting: 2
        }
    );
    let clock = slot_clock();
    assert_eq!(
        reader.view().unwrap().synced_l2_slot(&clock).unwrap(),
        Some(Slot(1))
    );
    assert_eq!(
        s.store.body_wanted().unwrap(),
        Some((1, cp1.payload.header.hash()))
    );
    // Syncing again re-reads nothing and stays blocked.
    let calls = s.l1.calls();
    s.sync().await.unwrap();
    assert_eq!(s.l1.calls() - calls, 3);

    // Bodies from peers: wrong header, tampered body, then the real one.
    let body = tandem_proto::encode_checkpoint_body(&cp1.blocks);
    let err = s
        .store
        .supply_checkpoint_body(1, cp2.payload.header.clone(), &body, 0)
        .unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::SuppliedBodyRejected { number: 1, .. }
    ));
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let err = s
        .store
        .supply_checkpoint_body(1, cp1.payload.header.clone(), &tampered, 0)
        .unwrap_err();
    assert!(
        matches!(err, ArchiverError::SuppliedBodyRejected { number: 1, reason } if reason.contains("body hash"))
    );
    let outcome = s
        .store
        .supply_checkpoint_body(1, cp1.payload.header.clone(), &body, -75)
        .unwrap();
    assert_eq!(
        outcome,
        L1Outcome::Inserted {
            new_blocks: 2,
            pruned: None
        }
    );
    // The queue behind it moves on the next sync (or the actor's next step).
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 1);
    let view = reader.view().unwrap();
    assert_eq!(view.l1_status().unwrap(), L1SyncStatus::Following);
    assert_eq!(view.tips().unwrap().checkpointed.checkpoint.number, 2);
    assert_eq!(
        view.checkpoint(1).unwrap().unwrap().source,
        PayloadSource::Peer
    );
    assert_eq!(
        view.checkpoint(2).unwrap().unwrap().source,
        PayloadSource::L1Calldata
    );
    s.store.check_consistency().unwrap();
}

#[tokio::test]
async fn unreadable_calldata_is_resolved_from_local_blocks_or_the_proposed_checkpoint() {
    // Local blocks from gossip, no proposal: they rebuild L1's header.
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 2);
    add_blocks(&mut s.store, &cp1);
    s.l1.land_at(GENESIS + 2 * SLOT, &cp1, false);
    let report = s.sync().await.unwrap();
    assert_eq!((report.checkpoints, report.awaiting), (1, 0));
    let record = s.checkpoint_record(1);
    assert_eq!(record.source, PayloadSource::LocalBlocks);
    assert_eq!(record.payload.header, cp1.payload.header);

    // A proposed checkpoint matching L1's header hash and archive is promoted.
    let cp2 = s.checkpoint(2, 3, 1);
    add_blocks(&mut s.store, &cp2);
    s.store.add_proposed_checkpoint(cp2.proposed()).unwrap();
    s.l1.land_at(GENESIS + 3 * SLOT, &cp2, false);
    let report = s.sync().await.unwrap();
    assert_eq!(report.checkpoints, 1);
    let record = s.checkpoint_record(2);
    assert_eq!(record.source, PayloadSource::LocalProposal);
    assert_eq!(record.payload, cp2.payload);
}

#[tokio::test]
async fn an_undecodable_body_blocks_without_asking_peers() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 1);
    s.mine_until(GENESIS + 2 * SLOT);
    let mut event = cp1.event(true);
    let calldata = event.calldata.as_mut().unwrap();
    calldata.body = vec![0xff; 10];
    calldata.header.body_hash = tandem_proto::keccak256(&calldata.body);
    event.header_hash = calldata.header.hash();
    s.l1.mine_at(s.l1.head().timestamp + 1, vec![event]);
    let report = s.sync().await.unwrap();
    assert_eq!(report.awaiting, 1);
    let status = s.store.reader().view().unwrap().l1_status().unwrap();
    assert!(matches!(
        status,
        L1SyncStatus::Blocked {
            problem: Some(BodyProblem::Undecodable),
            ..
        }
    ));
    // Any body with the same hash is the same bytes: peers cannot help.
    assert_eq!(s.store.body_wanted().unwrap(), None);
}

#[tokio::test]
async fn an_l1_event_numbered_zero_is_refused_and_loses_nothing() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 1);
    s.l1.land_at(GENESIS + 2 * SLOT, &cp1, false);
    s.mine_empty_after();
    let report = s.sync().await.unwrap();
    assert_eq!(report.awaiting, 1);
    // Only a broken or hostile RPC reports checkpoint 0 (genesis): a typed error, and the L1
    // fact awaiting its body is kept (no rollback to "checkpoint −1").
    let err = s
        .store
        .apply_l1_event(tandem_archiver::L1CheckpointEvent {
            number: 0,
            l1: s.l1.head().reference(),
            ..cp1.event(true)
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::L1CheckpointNotSequential {
                expected: 2,
                got: 0
            }
        ),
        "{err}"
    );
    let reader = s.store.reader();
    let view = reader.view().unwrap();
    assert_eq!(view.awaiting_checkpoints().unwrap().len(), 1);
    assert_eq!(view.tips().unwrap().checkpointed.checkpoint.number, 0);
    drop(view);
    s.store.check_consistency().unwrap();
}
