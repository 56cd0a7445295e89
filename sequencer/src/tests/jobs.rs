//! The job's blocking part: reference §9 scenarios 8, 11, 12, 13, and the block loop.

use std::time::Duration;

use tandem_proto::time::{PipeliningMode, Slot};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    Sequencer, SequencerEvent,
    job::propose_checkpoint,
    pipeline::{self, PipelineEnd},
    prepare::{Attempts, Prepared, Snapshot, prepare},
};

/// Prepares and runs the job for the slot the clock is in (the clock driven while it waits);
/// the loop's state is idle afterwards.
async fn run_job(
    f: &Fixture,
) -> (
    std::sync::Arc<crate::context::Ctx>,
    Option<crate::job::BuiltCheckpoint>,
    Vec<SequencerEvent>,
) {
    let (ctx, mut events, state) = f.ctx_with_state();
    let _clock = f.drive_clock(state);
    let snap = Snapshot::at(&ctx, tandem_proto::time::Clock::now(&f.clock)).unwrap();
    let Prepared::Job(job) = prepare(&ctx, &mut Attempts::default(), snap).await.unwrap() else {
        panic!("not prepared: {:?}", drain(&mut events));
    };
    let built = propose_checkpoint(&ctx, *job).await.unwrap();
    ctx.tracker.set(crate::SequencerState::Idle).unwrap();
    let events = drain(&mut events);
    (ctx, built, events)
}

#[tokio::test]
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

#[tokio::test]
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
#[tokio::test]
async fn a_minimum_above_the_blocks_share_is_capped_by_it_instead_of_building_nothing() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.config.min_txs_per_block = 3;
    f.ready_for(Slot(3), 40);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, _) = run_job(&f).await;
    built.expect("a checkpoint");
    let stored = f.chain.stored_blocks.lock().unwrap().clone();
    let sizes: Vec<usize> = stored.iter().map(|block| block.txs.len()).collect();
    assert_eq!(sizes, vec![2; max_blocks]);
}

#[tokio::test]
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

#[tokio::test]
async fn scenario_11_an_attestation_timeout_still_returns_the_checkpoint() {
    // Committee of three: quorum 3, only our own attestation arrives.
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[2, 3]);
    f.blocks_cap = Some(1);
    // Slot 3's proposer is members[0] = us.
    f.ready_for(Slot(3), 4);
    let (ctx, built, _) = run_job(&f).await;
    let built = built.expect("the blocking part returned the checkpoint");
    assert_eq!(f.gossip.checkpoints.lock().unwrap().len(), 1);
    let _clock = f.drive_clock(f.ctx_with_state().2);
    let end = pipeline::run(ctx, built, CancellationToken::new()).await;
    assert_eq!(end, PipelineEnd::Finished("no_quorum"));
    assert_eq!(f.gossip.attestations.lock().unwrap().len(), 1, "our own");
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test]
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
        reason: "store_failed"
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

#[tokio::test]
async fn a_header_refused_by_l1_is_never_gossiped() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.ready_for(Slot(3), 2);
    *f.l1.refuse_header.lock().unwrap() = true;
    let (_, built, events) = run_job(&f).await;
    assert!(built.is_none());
    assert!(events.contains(&SequencerEvent::CheckpointAborted {
        target: Slot(3),
        reason: "header_validation_failed"
    }));
    assert!(f.gossip.checkpoints.lock().unwrap().is_empty());
    assert!(f.chain.stored_checkpoints.lock().unwrap().is_empty());
}

/// Runs the actor until its pipeline is waiting, then stops it: `run` must return within a
/// second of the cancel.
async fn stop_while_the_pipeline_waits(f: &Fixture, waiting: impl Fn(&SequencerEvent) -> bool) {
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let mut events = handle.subscribe();
    let cancel = CancellationToken::new();
    let clock = f.drive_clock(handle.watch_state());
    let task = tokio::spawn(actor.run(cancel.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if waiting(&events.recv().await.unwrap()) {
                return;
            }
        }
    })
    .await
    .expect("the pipeline got to its wait");
    // The clock stands still from here: nothing but the interrupt can end the wait.
    drop(clock);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished());
    let stopped = std::time::Instant::now();
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("stopped within 1 s")
        .unwrap()
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(1));
    assert!(*f.publisher.interrupted.lock().unwrap());
    assert_eq!(handle.state(), crate::SequencerState::Stopped);
}

#[tokio::test]
async fn scenario_12_interrupt_ends_a_pipeline_waiting_for_l1_sync_within_a_second() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    // The archiver never syncs past slot 1: the parent check waits for slot 2.
    f.ready_for(Slot(3), 2);
    stop_while_the_pipeline_waits(&f, |event| {
        matches!(event, SequencerEvent::AttestationsCollected { .. })
    })
    .await;
    assert!(f.publisher.enqueued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn scenario_12_interrupt_ends_a_pipeline_whose_publisher_sleeps_within_a_second() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.blocks_cap = Some(1);
    f.config.poll_interval = Duration::from_millis(20);
    f.ready_for(Slot(3), 2);
    // L1 synced past the build slot, nothing checkpointed: the genesis parent is fine.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let publisher = f.publisher.clone();
    stop_while_the_pipeline_waits(&f, move |event| {
        matches!(event, SequencerEvent::AttestationsCollected { .. })
            && !publisher.enqueued.lock().unwrap().is_empty()
    })
    .await;
}
