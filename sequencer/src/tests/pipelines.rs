//! The background pipeline: reference §9 scenario 15 (parent checks) and the non-pipelined
//! path.

use std::sync::Arc;

use tandem_proto::{
    B256,
    time::{PipeliningMode, Slot, Timestamp},
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    CheckpointResult, SequencerEvent,
    context::Ctx,
    job::{BuiltCheckpoint, ParentRef, propose_checkpoint},
    pipeline::{self, DiscardReason, PipelineEnd},
    prepare::{Attempts, Prepared, Snapshot, prepare},
};

/// A checkpoint for slot 3 built on genesis (one block), and the context that built it.
async fn built(f: &Fixture) -> (Arc<Ctx>, BuiltCheckpoint) {
    let (ctx, _) = f.ctx();
    let snap = Snapshot::at(&ctx, tandem_proto::time::Clock::now(&f.clock)).unwrap();
    let Prepared::Job(job) = prepare(&ctx, &mut Attempts::default(), snap).await.unwrap() else {
        panic!("not prepared");
    };
    let built = propose_checkpoint(&ctx, *job).await.unwrap().unwrap();
    ctx.tracker.set(crate::SequencerState::Idle).unwrap();
    (ctx, built)
}

/// Marks `built` as built on a proposed checkpoint 1 (header hash `0x01…`).
fn on_proposed_parent(built: &mut BuiltCheckpoint) {
    built.parent = ParentRef {
        number: 1,
        header_hash: B256::repeat_byte(1),
        proposed: true,
    };
}

/// L1 holds checkpoint 1 with header hash `0x<byte>…`, synced past the build slot.
fn landed_on_l1(f: &Fixture, byte: u8) {
    f.chain.set_tips(0, 0, 1, 1);
    f.chain
        .checkpointed_hashes
        .lock()
        .unwrap()
        .insert(1, B256::repeat_byte(byte));
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
}

fn fixture(mode: PipeliningMode) -> Fixture {
    let mut f = Fixture::new(mode, &[]);
    f.blocks_cap = Some(1);
    *f.publisher.landing.lock().unwrap() = true;
    f
}

/// Runs the pipeline of `built` and returns its end and its discard event, if any.
async fn run(ctx: Arc<Ctx>, built: BuiltCheckpoint) -> (PipelineEnd, Option<DiscardReason>) {
    let mut events = ctx.events.subscribe();
    let end = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        pipeline::run(ctx, built, CancellationToken::new()),
    )
    .await
    .expect("the pipeline ended");
    let discard = drain(&mut events)
        .into_iter()
        .find_map(|event| match event {
            SequencerEvent::PipelineDiscarded { reason, .. } => Some(reason),
            _ => None,
        });
    (end, discard)
}

#[tokio::test(start_paused = true)]
async fn scenario_15_a_proposed_parent_that_never_landed_is_parent_not_on_l1() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    // L1 synced past the build slot (2), still nothing checkpointed.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::ParentNotOnL1));
    assert!(
        f.publisher.enqueued.lock().unwrap().is_empty(),
        "no propose enqueued"
    );
    // Counted by reason, and as a pipeline discard.
    for reason in DiscardReason::ALL {
        let expected = u64::from(reason == DiscardReason::ParentNotOnL1);
        assert_eq!(
            counter(
                &snapshot,
                "sequencer_pipeline_parent_mismatch_total",
                &[("reason", reason.as_str())]
            ),
            expected,
            "{reason:?}"
        );
    }
    assert_eq!(
        counter(&snapshot, "sequencer_pipeline_discards_total", &[]),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "sequencer_checkpoint_outcomes_total",
            &[("result", "discarded")]
        ),
        1
    );
}

/// Review 15 m5: an archiver that cannot be read is its own reason, not a parent mismatch.
#[tokio::test(start_paused = true)]
async fn scenario_15_an_archiver_read_failure_is_reported_as_such() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    landed_on_l1(&f, 1);
    *f.chain.fail_reads.lock().unwrap() = true;
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::ArchiverReadFailed));
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
    assert_eq!(
        counter(
            &snapshot,
            "sequencer_pipeline_parent_mismatch_total",
            &[("reason", "archiver-read-failed")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "sequencer_pipeline_parent_mismatch_total",
            &[("reason", "parent-hash-mismatch")]
        ),
        0
    );
}

/// Review-seq minor 4: one failed read of the archiver's L1 sync is retried (the parent
/// landed as built on: submitted).
#[tokio::test(start_paused = true)]
async fn one_failed_sync_read_is_retried() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    landed_on_l1(&f, 1);
    *f.chain.failing_sync_reads.lock().unwrap() = 1;
    let (end, discard) = run(ctx, built).await;
    assert_eq!(discard, None);
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Expired));
    assert_eq!(*f.publisher.enqueued.lock().unwrap(), vec![Slot(3)]);
    assert_eq!(*f.chain.failing_sync_reads.lock().unwrap(), 0);
}

/// Review-seq minor 4: sync reads failing until the timeout discard as `archiver-read-failed`.
#[tokio::test(start_paused = true)]
async fn sync_reads_failing_until_the_timeout_are_an_archiver_read_failure() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    landed_on_l1(&f, 1);
    *f.chain.failing_sync_reads.lock().unwrap() = u32::MAX;
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::ArchiverReadFailed));
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_15_another_checkpoint_landed_as_the_parent_is_parent_hash_mismatch() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    landed_on_l1(&f, 2);
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::ParentHashMismatch));
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_15_a_checkpoint_landing_above_an_l1_parent_is_unexpected() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, built) = built(&f).await;
    assert!(!built.parent.proposed, "built on L1's tip (genesis)");
    // Meanwhile a checkpoint 1 landed (we were cut off from gossip).
    f.chain.set_tips(0, 0, 1, 1);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::UnexpectedParentAppeared));
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_15_an_archiver_that_never_syncs_times_out() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, built) = built(&f).await;
    // Past the end of the target slot + 2 E: the wait gives up at once.
    let clock = slot_clock();
    f.clock.set(Timestamp(
        clock.slot_start(Slot(4)).0 + 2 * E.as_millis() as u64,
    ));
    let (end, discard) = run(ctx, built).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Discarded));
    assert_eq!(discard, Some(DiscardReason::ArchiverSyncTimeout));
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_15_a_parent_that_landed_as_built_on_is_submitted() {
    let f = fixture(PipeliningMode::Pipelined);
    f.ready_for(Slot(3), 2);
    let (ctx, mut built) = built(&f).await;
    on_proposed_parent(&mut built);
    landed_on_l1(&f, 1);
    let (end, discard) = run(ctx, built).await;
    assert_eq!(discard, None);
    // The fake publisher's outcome: the target slot's window closed.
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Expired));
    assert_eq!(*f.publisher.enqueued.lock().unwrap(), vec![Slot(3)]);
}

#[tokio::test(start_paused = true)]
async fn the_skip_publishing_test_hook_keeps_the_checkpoint_from_the_publisher() {
    let mut f = fixture(PipeliningMode::Pipelined);
    f.config.skip_publishing_slots.insert(3);
    f.ready_for(Slot(3), 2);
    let (ctx, built) = built(&f).await;
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let (end, _) = run(ctx, built).await;
    assert_eq!(
        end,
        PipelineEnd::Finished(CheckpointResult::SkippedByTestHook)
    );
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn non_pipelined_builds_for_the_current_slot_and_submits_without_a_parent_wait() {
    let f = fixture(PipeliningMode::NonPipelined);
    // Non-pipelined frame of slot 3 opens at T − E, inside slot 2's last L1 slot: the next L1
    // block is slot 3's, the target.
    f.ready_for(Slot(3), 2);
    // The archiver has not synced slot 2: a pipelined parent check would wait for it.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let (ctx, built) = built(&f).await;
    assert_eq!(built.target, Slot(3));
    assert_eq!(built.build_slot, Slot(3), "built in its own slot");
    *f.chain.synced_slot.lock().unwrap() = None;
    let (end, discard) = run(ctx, built).await;
    assert_eq!(discard, None);
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::Expired));
    assert_eq!(*f.publisher.enqueued.lock().unwrap(), vec![Slot(3)]);
}
