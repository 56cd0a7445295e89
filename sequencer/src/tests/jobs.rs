//! The job's blocking part: reference §9 scenarios 8, 11, 12, 13, and the block loop.

use std::time::Duration;

use tandem_proto::time::{PipeliningMode, Slot};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    AbortReason, CheckpointResult, Sequencer, SequencerEvent,
    job::propose_checkpoint,
    pipeline::{self, PipelineEnd},
    prepare::{Attempts, Prepared, Snapshot, prepare},
};

/// The blocks stored in our archiver, and their tx counts.
pub(super) fn stored_blocks(f: &Fixture) -> (Vec<tandem_archiver::ProposedBlock>, Vec<usize>) {
    let stored = f.chain.stored_blocks.lock().unwrap().clone();
    let sizes = stored.iter().map(|block| block.txs.len()).collect();
    (stored, sizes)
}

/// Prepares and runs the job for the slot the clock is in (paused time: the clock moves only
/// while the job waits); the loop's state is idle afterwards.
pub(super) async fn run_job(
    f: &Fixture,
) -> (
    std::sync::Arc<crate::context::Ctx>,
    Option<crate::job::BuiltCheckpoint>,
    Vec<SequencerEvent>,
) {
    let (ctx, mut events) = f.ctx();
    let snap = Snapshot::at(&ctx, tandem_proto::time::Clock::now(&f.clock)).unwrap();
    let Prepared::Job(job) = prepare(&ctx, &mut Attempts::default(), snap).await.unwrap() else {
        panic!("not prepared: {:?}", drain(&mut events));
    };
    let built = propose_checkpoint(&ctx, *job).await.unwrap();
    ctx.tracker.set(crate::SequencerState::Idle).unwrap();
    let events = drain(&mut events);
    (ctx, built, events)
}

#[tokio::test(start_paused = true)]
async fn scenario_08_the_build_start_offset_is_minus_e_at_the_frame_opening() {
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.chain.put_header(1, 1, 4);
    f.chain.put_proposed(1, 1, 1, 4);
    f.chain.set_tips(1, 1, 1, 0);
    let header = f.chain.headers.lock().unwrap()[&1].clone();
    *f.world.tip_override.lock().unwrap() = Some(tandem_state::StateTip {
        number: 1,
        hash: header.hash,
        state_root: tandem_proto::B256::ZERO,
        archive_root: header.archive_root,
    });
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(3));
    f.at_frame_opening(Slot(5), Duration::ZERO);
    let (ctx, mut events) = f.ctx();
    let snap = Snapshot::at(&ctx, tandem_proto::time::Clock::now(&f.clock)).unwrap();
    let Prepared::Job(job) = prepare(&ctx, &mut Attempts::default(), snap).await.unwrap() else {
        panic!("not prepared");
    };
    // The fake world has no block 1 to fork: the job fails after reporting its start.
    assert!(propose_checkpoint(&ctx, *job).await.is_err());
    let preparing = drain(&mut events)
        .into_iter()
        .find_map(|event| match event {
            SequencerEvent::Preparing {
                build_start_offset_ms,
                had_proposed_parent,
                simulated_checkpointed,
                pipeline_depth,
                ..
            } => Some((
                build_start_offset_ms,
                had_proposed_parent,
                simulated_checkpointed,
                pipeline_depth,
            )),
            _ => None,
        })
        .unwrap();
    assert_eq!(preparing, (Some(-(E.as_millis() as i64)), true, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_backlog_gives_every_sub_slot_a_block_signed_stored_and_gossiped_in_order() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.ready_for(Slot(3), 40);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, events) = run_job(&f).await;
    let built = built.expect("a checkpoint");

    // Scenario 4's event: built on L1's tip, nothing laid over it.
    assert!(events.iter().any(|event| matches!(
        event,
        SequencerEvent::Preparing {
            had_proposed_parent: false,
            simulated_checkpointed: 0,
            pipeline_depth: 0,
            build_start_offset_ms: None,
            ..
        }
    )));
    let stored = f.chain.stored_blocks.lock().unwrap().clone();
    assert_eq!(stored.len(), max_blocks, "one block per sub-slot");
    let sizes: Vec<usize> = stored.iter().map(|block| block.txs.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 16, "{sizes:?}");
    assert_eq!(sizes, vec![2; max_blocks], "spread evenly");
    for (index, block) in stored.iter().enumerate() {
        assert_eq!(block.header.block_number, index as u64 + 1);
        assert_eq!(block.header.index_within_checkpoint, index as u32);
        assert_eq!(block.header.slot, 3);
        assert_eq!(block.header.checkpoint_number, 1);
        assert_eq!(block.header.coinbase, key(1).address());
        assert_eq!(block.header.fee_per_mana, FEE);
    }
    // All but the last gossiped alone; the last rides in the checkpoint proposal.
    let gossiped = f.gossip.blocks.lock().unwrap().clone();
    assert_eq!(gossiped.len(), max_blocks - 1);
    let checkpoints = f.gossip.checkpoints.lock().unwrap().clone();
    assert_eq!(checkpoints.len(), 1);
    let last = checkpoints[0].last_block.clone().expect("the last block");
    assert_eq!(last.header, stored[max_blocks - 1].header);
    assert_eq!(last.recover_proposer(&domain()).unwrap(), key(1).address());
    assert_eq!(
        checkpoints[0].recover_proposer(&domain()).unwrap(),
        key(1).address()
    );
    // Stored as our proposed checkpoint, validated against L1 before gossip.
    let input = f.chain.stored_checkpoints.lock().unwrap()[0].clone();
    assert_eq!((input.number, input.start_block), (1, 1));
    assert_eq!(input.block_count, max_blocks as u64);
    assert_eq!(input.payload, built.proposal.payload);
    let calls = f.l1.calls.lock().unwrap().clone();
    assert!(calls.contains(&"validate_header"));
    // Every block went to the state service first.
    assert_eq!(f.world.submitted.lock().unwrap().len(), max_blocks);
}

/// Review 15 M3: 3 txs per block over 8 sub-slots of a 16-tx checkpoint (share 2 each) would
/// drop every sub-slot with a full pool; the minimum is capped by each block's share.
#[tokio::test(start_paused = true)]
async fn a_minimum_above_the_blocks_share_is_capped_by_it_instead_of_building_nothing() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.config.min_txs_per_block = 3;
    f.ready_for(Slot(3), 40);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, _) = run_job(&f).await;
    built.expect("a checkpoint");
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2; max_blocks]);
}

#[tokio::test(start_paused = true)]
async fn when_txs_run_out_the_last_block_built_rides_in_the_checkpoint_proposal() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_block = Some(2);
    // Six txs: three blocks of two, then nothing for the remaining sub-slots.
    f.ready_for(Slot(3), 6);
    let (_, built, _) = run_job(&f).await;
    assert!(built.is_some());
    let stored = f.chain.stored_blocks.lock().unwrap().clone();
    assert_eq!(stored.len(), 3);
    // Never gossiped alone: p2p refuses a checkpoint proposal without its last block.
    assert_eq!(f.gossip.blocks.lock().unwrap().len(), 2);
    let checkpoint = f.gossip.checkpoints.lock().unwrap()[0].clone();
    let last = checkpoint.last_block.expect("the last block");
    assert_eq!(last.header, stored[2].header);
    assert_eq!(checkpoint.payload.archive, last.archive_root);
}

#[tokio::test(start_paused = true)]
async fn scenario_11_an_attestation_timeout_still_returns_the_checkpoint() {
    // Committee of three: quorum 3, only our own attestation arrives.
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[2, 3]);
    f.blocks_cap = Some(1);
    // Slot 3's proposer is members[0] = us.
    f.ready_for(Slot(3), 4);
    let (ctx, built, _) = run_job(&f).await;
    let built = built.expect("the blocking part returned the checkpoint");
    assert_eq!(f.gossip.checkpoints.lock().unwrap().len(), 1);
    let end = pipeline::run(ctx, built, CancellationToken::new()).await;
    assert_eq!(end, PipelineEnd::Finished(CheckpointResult::NoQuorum));
    assert_eq!(f.gossip.attestations.lock().unwrap().len(), 1, "our own");
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_13_a_refused_add_block_aborts_the_checkpoint() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(2);
    // Two blocks of two: the first is stored when the second sub-slot starts building.
    f.config.max_txs_per_block = Some(2);
    f.ready_for(Slot(3), 8);
    *f.chain.refuse_blocks.lock().unwrap() = true;
    let (_, built, events) = run_job(&f).await;
    assert!(built.is_none());
    assert!(events.contains(&SequencerEvent::CheckpointAborted {
        target: Slot(3),
        reason: AbortReason::StoreFailed
    }));
    assert!(f.gossip.blocks.lock().unwrap().is_empty(), "not gossiped");
    assert!(f.gossip.checkpoints.lock().unwrap().is_empty());
    assert_eq!(
        *f.gossip.collects.lock().unwrap(),
        0,
        "no attestations collected"
    );
    assert!(!f.l1.calls.lock().unwrap().contains(&"validate_header"));
}

#[tokio::test(start_paused = true)]
async fn a_header_refused_by_l1_is_never_gossiped() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.ready_for(Slot(3), 2);
    *f.l1.refuse_header.lock().unwrap() = true;
    let (_, built, events) = run_job(&f).await;
    assert!(built.is_none());
    assert!(events.contains(&SequencerEvent::CheckpointAborted {
        target: Slot(3),
        reason: AbortReason::HeaderValidationFailed
    }));
    assert!(f.gossip.checkpoints.lock().unwrap().is_empty());
    assert!(f.chain.stored_checkpoints.lock().unwrap().is_empty());
}

/// Runs the actor until its pipeline waits (`waiting` says when), then stops it: `run` must
/// return at once, in clock time (paused: nothing but the interrupt ends the wait), and the
/// pipeline must not have finished on its own.
async fn stop_while_the_pipeline_waits(
    f: &Fixture,
    waiting: impl std::future::Future<Output = ()>,
) {
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let mut events = handle.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the pipeline got to its wait");
    assert!(!task.is_finished());
    let stopped = tokio::time::Instant::now();
    cancel.cancel();
    tokio::time::timeout(crate::SHUTDOWN_GRACE, task)
        .await
        .expect("stopped within the grace")
        .unwrap()
        .unwrap();
    // Interrupted, not timed out: no clock time passed, and no outcome was reported.
    assert_eq!(stopped.elapsed(), Duration::ZERO);
    assert!(
        !drain(&mut events)
            .iter()
            .any(|event| matches!(event, SequencerEvent::CheckpointOutcome { .. })),
        "the pipeline ended on its own"
    );
    assert!(*f.publisher.interrupted.lock().unwrap());
    assert_eq!(handle.state(), crate::SequencerState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn scenario_12_interrupt_ends_a_pipeline_waiting_for_l1_sync_within_a_second() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    // The archiver never syncs past slot 1: the parent check waits for slot 2.
    f.ready_for(Slot(3), 2);
    // Our own attestation is the quorum: once it is gossiped the pipeline waits for L1 sync.
    let mut attested = f.gossip.published.subscribe();
    stop_while_the_pipeline_waits(&f, async move {
        attested.wait_for(|count| *count > 0).await.unwrap();
    })
    .await;
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_12_interrupt_ends_a_pipeline_whose_publisher_sleeps_within_a_second() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    f.ready_for(Slot(3), 2);
    // L1 synced past the build slot, nothing checkpointed: the genesis parent is fine.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let mut enqueued = f.publisher.enqueues.subscribe();
    stop_while_the_pipeline_waits(&f, async move {
        enqueued.wait_for(|count| *count > 0).await.unwrap();
    })
    .await;
}

/// Review 15 M1: a tx that fails in the builder is no candidate for the rest of the job:
/// the sub-slots after the good txs ran out build nothing (no empty blocks), and the last
/// block built still rides in the checkpoint proposal.
#[tokio::test(start_paused = true)]
async fn a_tx_failing_in_the_builder_is_not_waited_for_and_fills_no_block() {
    let (recorder, counters) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_block = Some(2);
    // Six good txs (three blocks of two); user 3 offers less than the block fee (it fails
    // in the builder), and its next nonce cannot run without it.
    f.ready_for(Slot(3), 0);
    f.world
        .add_txs((0..6).map(|n| transfer((n % 3) as u8, n / 3)));
    f.world
        .add_txs([transfer_paying(3, 0, FEE - 1), transfer_paying(3, 1, FEE)]);
    let (_, built, events) = run_job(&f).await;
    let built = built.expect("a checkpoint");
    let (stored, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2, 2, 2], "no empty block after the good txs");
    assert_eq!(f.world.submitted.lock().unwrap().len(), 3);
    let last = built.proposal.last_block.expect("the last block");
    assert_eq!(last.header, stored[2].header);
    // The last block is never gossiped alone: only the two before it.
    assert_eq!(f.gossip.blocks.lock().unwrap().len(), 2);
    assert!(events.iter().any(|event| matches!(
        event,
        SequencerEvent::CheckpointProposed {
            blocks: 3,
            txs: 6,
            ..
        }
    )));
    // Tried once: the sub-slots after it neither waited for it nor built with it again.
    assert_eq!(counter(&counters, "state_txs_failed_total", &[]), 1);
}

/// Review 15 M3: the minimum is capped by the block's mana share too (16 transfers' mana
/// over 8 sub-slots: 2 each), not only by its tx share.
#[tokio::test(start_paused = true)]
async fn a_minimum_above_the_blocks_mana_share_is_capped_by_it() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_mana_per_checkpoint = Some(16 * tandem_state::TX_MANA);
    f.config.min_txs_per_block = 3;
    f.ready_for(Slot(3), 40);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, _) = run_job(&f).await;
    built.expect("a checkpoint");
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2; max_blocks]);
}

/// Review 15 M3: once the checkpoint's tx budget is spent (3 txs, one per block), the loop
/// stops instead of committing empty blocks for the remaining sub-slots.
#[tokio::test(start_paused = true)]
async fn a_spent_checkpoint_budget_ends_the_block_loop() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(3);
    f.ready_for(Slot(3), 40);
    let (_, built, _) = run_job(&f).await;
    built.expect("a checkpoint");
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![1, 1, 1]);
    // Proposed at once, not after waiting out the remaining sub-slots.
    let fourth = f.params().timetable.schedule(Slot(3)).block_build_deadlines[3];
    assert!(tandem_proto::time::Clock::now(&f.clock) < fourth);
}

/// Review 15 M2: storing takes real time (a blocking thread) but no clock time, so the
/// outcome does not depend on the machine: every sub-slot still gets its block.
#[tokio::test(start_paused = true)]
async fn slow_storing_takes_no_clock_time() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(3);
    f.config.max_txs_per_block = Some(2);
    *f.chain.store_delay.lock().unwrap() = Some(Duration::from_millis(1_200));
    f.ready_for(Slot(3), 6);
    let (_, built, _) = run_job(&f).await;
    built.expect("a checkpoint");
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2, 2, 2]);
}

/// Review 15 m1: a checkpoint whose header check ends past the send deadline is neither
/// stored nor gossiped.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_past_the_send_deadline_is_not_stored_or_gossiped() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.ready_for(Slot(3), 2);
    let schedule = f.params().timetable.schedule(Slot(3));
    // validateHeader starts after the frame opening and returns after the deadline.
    *f.l1.header_delay.lock().unwrap() = Some(
        schedule
            .build_frame_start
            .until(crate::job::send_deadline(&schedule))
            + Duration::from_millis(1),
    );
    let (_, built, events) = run_job(&f).await;
    assert!(built.is_none());
    assert!(events.contains(&SequencerEvent::CheckpointAborted {
        target: Slot(3),
        reason: AbortReason::PastSendDeadline
    }));
    assert!(f.chain.stored_blocks.lock().unwrap().is_empty());
    assert!(f.chain.stored_checkpoints.lock().unwrap().is_empty());
    assert!(f.gossip.checkpoints.lock().unwrap().is_empty());
}

/// Review-seq minor 1: the send deadline is checked before storing only. A block whose
/// storing ends past it is still gossiped (peers need what we stored); the checkpoint after
/// it is refused before it is stored.
#[tokio::test(start_paused = true)]
async fn a_block_stored_past_the_send_deadline_is_gossiped_but_nothing_after_it_is_stored() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(2);
    f.config.max_txs_per_block = Some(1);
    f.ready_for(Slot(3), 4);
    *f.chain.store_clock_delay.lock().unwrap() = Some(S);
    let (_, built, events) = run_job(&f).await;
    assert!(built.is_none());
    assert!(events.contains(&SequencerEvent::CheckpointAborted {
        target: Slot(3),
        reason: AbortReason::PastSendDeadline
    }));
    assert_eq!(f.gossip.blocks.lock().unwrap().len(), 1);
    assert_eq!(f.chain.stored_blocks.lock().unwrap().len(), 1);
    assert!(f.chain.stored_checkpoints.lock().unwrap().is_empty());
    assert!(f.gossip.checkpoints.lock().unwrap().is_empty());
}

/// Review 15 m2: a job ended by a failing dependency (`?`) is still reported: the outcome
/// counted, the slot missed, the event sent.
#[tokio::test(start_paused = true)]
async fn a_job_failing_on_a_dependency_is_reported_as_failed() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    // The archiver's tip is block 1, which the world state cannot fork.
    f.chain.put_header(1, 1, 2);
    f.chain.set_tips(1, 1, 1, 1);
    let header = f.chain.headers.lock().unwrap()[&1].clone();
    *f.world.tip_override.lock().unwrap() = Some(tandem_state::StateTip {
        number: 1,
        hash: header.hash,
        state_root: tandem_proto::B256::ZERO,
        archive_root: header.archive_root,
    });
    *f.l1.checkpointed.lock().unwrap() = 1;
    f.ready_for(Slot(3), 0);
    let (ctx, mut events) = f.ctx();
    let snap = Snapshot::at(&ctx, tandem_proto::time::Clock::now(&f.clock)).unwrap();
    let Prepared::Job(job) = prepare(&ctx, &mut Attempts::default(), snap).await.unwrap() else {
        panic!("not prepared: {:?}", drain(&mut events));
    };
    assert!(propose_checkpoint(&ctx, *job).await.is_err());
    assert!(
        drain(&mut events).contains(&SequencerEvent::CheckpointAborted {
            target: Slot(3),
            reason: AbortReason::Failed
        })
    );
    assert_eq!(
        counter(
            &snapshot,
            "sequencer_checkpoint_outcomes_total",
            &[("result", "failed")]
        ),
        1
    );
    assert_eq!(counter(&snapshot, "sequencer_slots_missed_total", &[]), 1);
}

/// Review 15 m4: a pipeline task that panicked is reported at shutdown, which still ends
/// with `Stopped` and `Ok`.
#[tokio::test(start_paused = true)]
async fn shutdown_reports_a_panicked_pipeline_and_still_stops() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    f.ready_for(Slot(3), 2);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    *f.publisher.panics.lock().unwrap() = true;
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    let mut enqueued = f.publisher.enqueues.subscribe();
    tokio::time::timeout(
        Duration::from_secs(30),
        enqueued.wait_for(|count| *count > 0),
    )
    .await
    .expect("the pipeline reached the publisher")
    .unwrap();
    cancel.cancel();
    tokio::time::timeout(crate::SHUTDOWN_GRACE, task)
        .await
        .expect("stopped within the grace")
        .unwrap()
        .unwrap();
    assert_eq!(handle.state(), crate::SequencerState::Stopped);
    assert_eq!(
        counter(&snapshot, "sequencer_pipeline_task_failures_total", &[]),
        1
    );
}

/// Review-seq Major 1: a job cut short by shutdown (waiting for txs that never come) is
/// reported `interrupted`, not `failed`.
#[tokio::test(start_paused = true)]
async fn a_job_cut_short_by_shutdown_is_reported_as_interrupted() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.min_txs_per_block = 1;
    f.config.poll_interval = Duration::from_millis(20);
    f.ready_for(Slot(3), 0);
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let mut events = handle.subscribe();
    let mut state = handle.watch_state();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|state| *state == crate::SequencerState::WaitingForTxs),
    )
    .await
    .expect("the job waits for txs")
    .unwrap();
    cancel.cancel();
    tokio::time::timeout(crate::SHUTDOWN_GRACE, task)
        .await
        .expect("stopped within the grace")
        .unwrap()
        .unwrap();
    assert!(
        drain(&mut events).contains(&SequencerEvent::CheckpointAborted {
            target: Slot(3),
            reason: AbortReason::Interrupted
        })
    );
    let outcome = |result| {
        counter(
            &snapshot,
            "sequencer_checkpoint_outcomes_total",
            &[("result", result)],
        )
    };
    assert_eq!(outcome("interrupted"), 1);
    assert_eq!(outcome("failed"), 0);
}

/// Review-seq minor 5: a pipeline that panics is counted by the next tick, while the
/// sequencer runs on, not only at shutdown.
#[tokio::test(start_paused = true)]
async fn a_panicked_pipeline_is_counted_while_the_sequencer_runs() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    f.ready_for(Slot(3), 2);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    *f.publisher.panics.lock().unwrap() = true;
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    let failures = || counter(&snapshot, "sequencer_pipeline_task_failures_total", &[]);
    // Polled on paused time: each nap lets the actor tick (every 20 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while failures() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(handle.state(), crate::SequencerState::Stopped);
    cancel.cancel();
    tokio::time::timeout(crate::SHUTDOWN_GRACE, task)
        .await
        .expect("stopped within the grace")
        .unwrap()
        .unwrap();
    assert_eq!(failures(), 1, "counted once, not again at shutdown");
}
