//! Pruning on a real RocksDB: the uncheckpointed-slot prune (scenario 23) by L1 time, the
//! orphan prune and its deadlines, and both running when L1 fails.

mod common;

use common::{
    Chain, add_blocks, open_store,
    setup::{GENESIS, SLOT, Setup},
};
use tandem_archiver::{ArchiverError, ArchiverStore, L1EventOutcome, PruneKind};

fn open() -> (tempfile::TempDir, ArchiverStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    (dir, store)
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

#[tokio::test]
async fn the_uncheckpointed_slot_prune_goes_by_l1_time() {
    let mut s = Setup::new();
    s.config.confirmations = 1;
    let cp1 = s.checkpoint(1, 2, 2);
    add_blocks(&mut s.store, &cp1);
    // Proposed: the orphan prune leaves it alone, only L1 decides.
    s.store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    // L1's head is the first block of slot 3, unconfirmed (confirmations = 1): the newest
    // synced block is slot 2's last.
    s.mine_until(GENESIS + 3 * SLOT);
    // The wall clock says slot 4 (the first L1 block of slot 3 propagates late, or this node's
    // RPC lags): no prune, checkpoint 1 may still be in a block this node has not synced.
    let wall = GENESIS + 4 * SLOT;
    let report = s.sync_at(wall).await.unwrap();
    assert_eq!(
        s.store.l1_synced().unwrap().timestamp,
        GENESIS + 3 * SLOT - 1
    );
    assert!(
        report
            .prunes
            .iter()
            .all(|p| p.kind != PruneKind::UncheckpointedSlot)
    );
    assert_eq!(s.store.tips().proposed.block.number, 2);
    // Slot 3's first block is confirmed: slot 2 is over on L1 without checkpoint 1.
    s.mine_empty_after();
    let report = s.sync_at(wall).await.unwrap();
    let prune = report
        .prunes
        .iter()
        .find(|p| p.kind == PruneKind::UncheckpointedSlot)
        .expect("pruned once L1 moved past the slot");
    assert_eq!((prune.first_removed_block, prune.removed_blocks), (1, 2));
    assert_eq!(s.store.tips().proposed.block.number, 0);
}

#[tokio::test]
async fn prunes_run_when_l1_fails() {
    let mut s = Setup::new();
    let cp1 = s.checkpoint(1, 2, 2);
    add_blocks(&mut s.store, &cp1);
    s.l1.set_down(true);
    // Long past slot 2's deadlines: the blocks are orphans, whatever L1 says.
    let err = s.sync_at(GENESIS + 100 * SLOT).await.unwrap_err();
    assert!(matches!(err, ArchiverError::L1(_)), "{err}");
    let prunes = s.store.take_prune_events();
    assert_eq!(prunes.len(), 1);
    assert_eq!(prunes[0].kind, PruneKind::Orphan);
    assert_eq!(
        (prunes[0].first_removed_block, prunes[0].removed_blocks),
        (1, 2)
    );
    assert_eq!(s.store.tips().proposed.block.number, 0);
}
