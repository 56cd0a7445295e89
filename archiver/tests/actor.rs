//! The archiver actor with an in-memory L1: the queue is served while L1 is slow, committed
//! prunes reach subscribers whatever fails after them, fatal errors stop the actor, and bodies
//! of unreadable L1 checkpoints come from peers.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use common::{BuiltCheckpoint, Chain, FakeL1, open_store};
use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    Added, ArchiverActor, ArchiverError, ArchiverHandle, ArchiverResult, ArchiverStore,
    ArchiverTiming, CheckpointBodySource, Disposition, FetchedCheckpointBody, L1Ref, L1SyncStatus,
    PruneKind, SyncConfig, orphan_deadline,
};
use tandem_proto::{
    B256,
    time::{ConsensusWindows, ManualClock, PipeliningMode, Slot, SlotClock, Timestamp},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const GENESIS: u64 = 1_000;
const SLOT: u64 = 4;
const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    handle: ArchiverHandle,
    cancel: CancellationToken,
    task: JoinHandle<ArchiverResult<()>>,
    clock: ManualClock,
    windows: ConsensusWindows,
}

impl Running {
    /// Cancels the actor and checks it stopped cleanly.
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn chain() -> Chain {
    Chain {
        genesis_time: GENESIS,
        slot_duration: SLOT,
        ..Chain::new()
    }
}

fn spawn(
    store: ArchiverStore,
    l1: &FakeL1,
    bodies: Option<Arc<dyn CheckpointBodySource>>,
    poll_interval: Duration,
) -> Running {
    let slot_clock = SlotClock::new(
        Timestamp::from_secs(GENESIS),
        Duration::from_secs(SLOT),
        Duration::from_secs(1),
        8,
    )
    .unwrap();
    // The wall clock sits in slot 1 (items of slot 1 on are accepted) unless a test moves it.
    let clock = ManualClock::new(Timestamp::from_secs(GENESIS + SLOT));
    let windows = ConsensusWindows::new(
        slot_clock,
        Duration::from_secs(1),
        PipeliningMode::Pipelined,
        Duration::from_secs(1),
    );
    let timing = ArchiverTiming {
        clock: Arc::new(clock.clone()),
        slot_clock,
        windows,
        poll_interval,
    };
    let config = SyncConfig {
        deployment_block: 1,
        confirmations: 0,
        batch_size: 10,
        max_batches_per_step: 10,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    let (handle, actor) = ArchiverActor::new(store, Arc::new(l1.clone()), bodies, config, timing);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    Running {
        handle,
        cancel,
        task,
        clock,
        windows,
    }
}

/// An L1 of blocks one second apart, up to the start of slot 1.
fn l1() -> FakeL1 {
    FakeL1::new(10, |n| GENESIS - 6 + n)
}

/// An L1 with checkpoint 1 (slot 2, `blocks` blocks) landed with its calldata, and a store
/// directory: `(dir, l1, its L1 block)`.
fn checkpoint_1_on_l1(blocks: u32) -> (tempfile::TempDir, FakeL1, L1Ref) {
    let l1 = l1();
    let cp1 = chain().checkpoint(1, 2, blocks, 1);
    let landed = l1.land_at(GENESIS + 2 * SLOT, &cp1, true);
    (tempfile::tempdir().unwrap(), l1, landed)
}

async fn add_all(handle: &ArchiverHandle, checkpoint: &BuiltCheckpoint) {
    for i in 0..checkpoint.blocks.len() {
        let added = handle
            .add_block(checkpoint.proposed_block(i))
            .await
            .unwrap();
        assert!(added.is_new());
    }
}

#[tokio::test]
async fn a_slow_l1_does_not_hold_up_queued_blocks_and_ended_slots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let paused = l1.pause();
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_millis(5));
    // The first tick started a fetch that now waits on L1: the queue is still served.
    let mut chain = chain();
    let ended = chain.clone().checkpoint(1, 0, 1, 1);
    let err = running
        .handle
        .add_block(ended.proposed_block(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::SlotExpired {
                slot: 0,
                current: 1
            }
        ),
        "{err}"
    );
    let current = chain.checkpoint(1, 2, 3, 1);
    tokio::time::timeout(DEADLINE, async {
        add_all(&running.handle, &current).await;
        let proposed = running
            .handle
            .add_proposed_checkpoint(current.proposed())
            .await
            .unwrap();
        assert!(proposed.is_new());
    })
    .await
    .expect("served while L1 is stalled");
    // The fetch waits inside its first call: no call has completed.
    assert_eq!(l1.calls(), 0, "L1 is still stalled");
    assert_eq!(
        running.handle.tips().proposed_checkpoint.checkpoint.number,
        1
    );
    // Reads come from the reader, whatever the writer does.
    let view = running.handle.reader().view().unwrap();
    assert_eq!(view.proposed_checkpoint(1).unwrap().unwrap().block_count, 3);
    assert_eq!(view.tips().unwrap(), running.handle.tips());
    drop(view);

    paused.send(false).unwrap();
    let report = tokio::time::timeout(DEADLINE, running.handle.sync_now())
        .await
        .unwrap()
        .unwrap();
    assert!(!report.behind);
    let handle = running.handle.clone();
    running.stop().await;
    assert!(matches!(
        handle.sync_now().await,
        Err(ArchiverError::Stopped)
    ));
}

#[tokio::test]
async fn a_committed_prune_reaches_subscribers_when_the_step_after_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let mut chain = chain();
    let cp1 = chain.checkpoint(1, 2, 1, 1);
    let cp2 = chain.checkpoint(2, 3, 2, 1);
    l1.land_at(GENESIS + 2 * SLOT, &cp1, true);
    let landed = l1.land_at(GENESIS + 3 * SLOT, &cp2, true);
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    let mut prunes = running.handle.subscribe_prunes();
    running.handle.sync_now().await.unwrap();
    assert_eq!(running.handle.tips().checkpointed.checkpoint.number, 2);

    // L1 reorganises checkpoint 2 away, and (bad data) the new chain carries checkpoint 4:
    // the rollback is committed, then the step after it fails.
    l1.reorg_from(landed.number);
    let mut skipping = Chain {
        genesis_time: GENESIS,
        slot_duration: SLOT,
        ..Chain::from_reader(running.handle.reader(), 1)
    };
    let _cp2b = skipping.checkpoint(2, 3, 1, 5);
    let _cp3b = skipping.checkpoint(3, 4, 1, 5);
    let cp4b = skipping.checkpoint(4, 5, 1, 5);
    l1.remine(landed.timestamp, vec![cp4b.event(true)], 5);
    let err = running.handle.sync_now().await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::L1CheckpointNotSequential {
                expected: 2,
                got: 4
            }
        ),
        "{err}"
    );
    let event = tokio::time::timeout(DEADLINE, prunes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, PruneKind::L1Reorg);
    assert_eq!((event.first_removed_block, event.removed_blocks), (2, 2));
    // A subscriber that missed it finds it in the store: the prune count moved.
    let view = running.handle.reader().view().unwrap();
    assert_eq!(view.prune_seq().unwrap(), event.seq);
    assert_eq!(view.tips().unwrap().checkpointed.checkpoint.number, 1);
    drop(view);
    running.stop().await;
}

#[tokio::test]
async fn a_reorg_below_the_finalized_checkpoint_stops_the_actor() {
    let (dir, l1, landed) = checkpoint_1_on_l1(1);
    l1.mine_empty(landed.timestamp + 1);
    l1.set_finalized(Some(landed.number));
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    running.handle.sync_now().await.unwrap();
    assert_eq!(running.handle.tips().finalized.checkpoint.number, 1);

    l1.set_finalized(None);
    l1.reorg_from(landed.number);
    l1.remine(landed.timestamp, Vec::new(), 7);
    l1.remine(landed.timestamp + 1, Vec::new(), 7);
    assert!(matches!(
        running.handle.sync_now().await,
        Err(ArchiverError::Stopped)
    ));
    let result = tokio::time::timeout(DEADLINE, running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            result,
            Err(ArchiverError::ReorgBelowFinalized {
                checkpoint: 1,
                finalized: 1
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn corruption_found_at_runtime_stops_the_actor() {
    let (dir, l1, landed) = checkpoint_1_on_l1(2);
    {
        let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
        running.handle.sync_now().await.unwrap();
        assert_eq!(running.handle.tips().checkpointed.checkpoint.number, 1);
        running.stop().await;
    }
    // Damage block 2's tx record on disk (the open check reads headers, not checkpointed txs).
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &names).unwrap();
        let txs = db.cf_handle("block_txs").unwrap();
        db.put_cf(txs, 2u64.to_be_bytes(), [1, 2, 3]).unwrap();
    }
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    // An L1 reorg removes checkpoint 1: the rollback reads the damaged record.
    l1.reorg_from(landed.number);
    l1.remine(landed.timestamp, Vec::new(), 7);
    // The answer is not the point: the actor may stop on the damaged record before it replies.
    // What it does is asserted on the task's result below.
    let _ = running.handle.sync_now().await;
    let result = tokio::time::timeout(DEADLINE, running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(ArchiverError::Record(_))),
        "{result:?}"
    );
}

/// Peers that first send a wrong body, then the right one.
struct Peers {
    checkpoint: BuiltCheckpoint,
    wrong: BuiltCheckpoint,
    calls: AtomicU32,
}

impl CheckpointBodySource for Peers {
    fn fetch(
        &self,
        number: u64,
        header_hash: B256,
    ) -> BoxFuture<'_, Option<FetchedCheckpointBody>> {
        async move {
            assert_eq!(
                (number, header_hash),
                (
                    self.checkpoint.number,
                    self.checkpoint.payload.header.hash()
                )
            );
            let sent = if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                &self.wrong
            } else {
                &self.checkpoint
            };
            Some(FetchedCheckpointBody {
                header: sent.payload.header.clone(),
                body: tandem_proto::encode_checkpoint_body(&sent.blocks),
                fee_asset_price_modifier: sent.payload.fee_asset_price_modifier,
            })
        }
        .boxed()
    }
}

#[tokio::test]
async fn a_checkpoint_whose_calldata_cannot_be_read_is_completed_from_peers() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let mut chain = chain();
    let wrong = chain.clone().checkpoint(1, 2, 1, 8);
    let cp1 = chain.checkpoint(1, 2, 2, 1);
    let cp2 = chain.checkpoint(2, 3, 1, 1);
    l1.land_at(GENESIS + 2 * SLOT, &cp1, false);
    l1.land_at(GENESIS + 3 * SLOT, &cp2, true);
    let peers = Arc::new(Peers {
        checkpoint: cp1.clone(),
        wrong,
        calls: AtomicU32::new(0),
    });
    let running = spawn(
        open_store(dir.path()),
        &l1,
        Some(peers.clone()),
        Duration::from_millis(10),
    );
    let mut tips = running.handle.watch_tips();
    tokio::time::timeout(
        DEADLINE,
        tips.wait_for(|tips| tips.checkpointed.checkpoint.number == 2),
    )
    .await
    .expect("completed from peers")
    .unwrap();
    // Exactly two fetches: the wrong body (refused), then the right one; none after.
    assert_eq!(peers.calls.load(Ordering::SeqCst), 2);
    let view = running.handle.reader().view().unwrap();
    assert_eq!(view.l1_status().unwrap(), L1SyncStatus::Following);
    assert_eq!(
        view.tips().unwrap().proposed.block.hash,
        cp2.blocks[0].hash()
    );
    drop(view);
    let _ = running.clock;
    running.stop().await;
}

#[tokio::test]
async fn duplicates_through_the_queue_are_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    let mut chain = chain();
    let cp1 = chain.checkpoint(1, 2, 1, 1);
    add_all(&running.handle, &cp1).await;
    assert!(matches!(
        running.handle.add_block(cp1.proposed_block(0)).await,
        Ok(Added::AlreadyStored(header)) if header.hash == cp1.blocks[0].hash()
    ));
    running.stop().await;
}

/// Blocks of checkpoint 1 (slot 2) whose proposal never comes, stored while L1 is down. Returns
/// the next proposer's block 1 (checkpoint 1 again, slot 3, on genesis).
async fn orphans_while_l1_is_down(running: &Running, l1: &FakeL1) -> BuiltCheckpoint {
    l1.set_down(true);
    let mut chain = chain();
    let orphans = chain.clone().checkpoint(1, 2, 2, 1);
    add_all(&running.handle, &orphans).await;
    let honest = chain.checkpoint(1, 3, 1, 2);
    // Before the deadline the number is taken: retry later, not a reason to penalise.
    let err = running
        .handle
        .add_block(honest.proposed_block(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArchiverError::BlockNumberHeldByUncovered { number: 1 }),
        "{err}"
    );
    assert_eq!(err.disposition(), Disposition::RetryLater);
    honest
}

/// Moves the wall clock just past the orphan deadline of slot 2's blocks (no proposal seen).
fn pass_orphan_deadline(running: &Running) {
    let deadline = orphan_deadline(&running.windows, Duration::from_secs(1), false, Slot(2));
    running
        .clock
        .set(deadline.saturating_add(Duration::from_millis(1)));
}

#[tokio::test]
async fn orphans_are_pruned_on_every_tick_while_l1_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_millis(5));
    let mut prunes = running.handle.subscribe_prunes();
    let honest = orphans_while_l1_is_down(&running, &l1).await;
    pass_orphan_deadline(&running);
    let event = tokio::time::timeout(DEADLINE, prunes.recv())
        .await
        .expect("pruned without L1")
        .unwrap();
    assert_eq!(event.kind, PruneKind::Orphan);
    assert_eq!((event.first_removed_block, event.removed_blocks), (1, 2));
    let added = running
        .handle
        .add_block(honest.proposed_block(0))
        .await
        .unwrap();
    assert!(added.is_new());
    assert!(matches!(
        running.handle.sync_now().await,
        Err(ArchiverError::L1(_))
    ));
    running.stop().await;
}

#[tokio::test]
async fn a_block_colliding_with_an_orphan_past_its_deadline_is_stored_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    // No tick after the first: only the collision can trigger the prune.
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    let honest = orphans_while_l1_is_down(&running, &l1).await;
    // A sync (failing: L1 is down) ends before the clock moves: no cycle runs after it.
    assert!(matches!(
        running.handle.sync_now().await,
        Err(ArchiverError::L1(_))
    ));
    pass_orphan_deadline(&running);
    let mut prunes = running.handle.subscribe_prunes();
    let added = running
        .handle
        .add_block(honest.proposed_block(0))
        .await
        .unwrap();
    assert!(added.is_new());
    let event = prunes.try_recv().expect("the orphans went first");
    assert_eq!(event.kind, PruneKind::Orphan);
    assert_eq!(
        running.handle.tips().proposed.block.hash,
        honest.blocks[0].hash()
    );
    running.stop().await;
}

#[tokio::test]
async fn a_queue_that_never_empties_does_not_starve_the_l1_sync() {
    let (dir, l1, _) = checkpoint_1_on_l1(1);
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    // Producers keep the command queue full (cheap commands, sent without waiting for a
    // reply), as a burst of gossip or a late node fetching the proposed chain would.
    let stop = CancellationToken::new();
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let handle = running.handle.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    handle.note_checkpoint_proposal_seen(Slot(1)).await.unwrap();
                }
            })
        })
        .collect();
    let report = tokio::time::timeout(DEADLINE, running.handle.sync_now())
        .await
        .expect("the sync completes while the queue stays full")
        .unwrap();
    assert_eq!(report.checkpoints, 1);
    assert_eq!(running.handle.tips().checkpointed.checkpoint.number, 1);
    stop.cancel();
    for producer in producers {
        producer.await.unwrap();
    }
    running.stop().await;
}

#[tokio::test]
async fn held_orphans_are_kept_past_their_deadline_until_the_hold_expires() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    // No tick after the first: only the collision triggers the prune.
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_secs(3600));
    let honest = orphans_while_l1_is_down(&running, &l1).await;
    assert!(matches!(
        running.handle.sync_now().await,
        Err(ArchiverError::L1(_))
    ));
    let deadline = orphan_deadline(&running.windows, Duration::from_secs(1), false, Slot(2));
    // Short enough to expire while slot 3's block is still accepted.
    let until = deadline.saturating_add(Duration::from_millis(50));
    running.handle.hold_orphans(Slot(2), until).await.unwrap();
    pass_orphan_deadline(&running);
    // Held: the orphans stay, the number is still taken.
    let err = running
        .handle
        .add_block(honest.proposed_block(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArchiverError::BlockNumberHeldByUncovered { number: 1 }),
        "held orphans were pruned: {err}"
    );
    // The hold expires by itself: then they go.
    running
        .clock
        .set(until.saturating_add(Duration::from_millis(1)));
    let added = running
        .handle
        .add_block(honest.proposed_block(0))
        .await
        .unwrap();
    assert!(added.is_new());
    running.stop().await;
}

#[tokio::test]
async fn an_orphan_hold_is_cut_to_its_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1();
    let running = spawn(open_store(dir.path()), &l1, None, Duration::from_millis(5));
    let mut prunes = running.handle.subscribe_prunes();
    orphans_while_l1_is_down(&running, &l1).await;
    let now = tandem_proto::time::Clock::now(&running.clock);
    running
        .handle
        .hold_orphans(Slot(2), now.saturating_add(Duration::from_secs(86_400)))
        .await
        .unwrap();
    let deadline = orphan_deadline(&running.windows, Duration::from_secs(1), false, Slot(2));
    let cut = now.saturating_add(tandem_archiver::MAX_ORPHAN_HOLD);
    running
        .clock
        .set(deadline.max(cut).saturating_add(Duration::from_millis(1)));
    let event = tokio::time::timeout(DEADLINE, prunes.recv())
        .await
        .expect("a day-long hold outlived its maximum")
        .unwrap();
    assert_eq!(event.kind, PruneKind::Orphan);
    assert_eq!((event.first_removed_block, event.removed_blocks), (1, 2));
    running.stop().await;
}
