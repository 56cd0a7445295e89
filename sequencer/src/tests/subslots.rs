//! The block loop's sub-slot timing: late starts, late releases and the sub-slots they cost
//! (reference §1.5: a sub-slot with less than the minimum block left is skipped, deadlines
//! never move), on the ci profile (S/E/D 12/1/1 s, minimum block D / 2).

use std::time::Duration;

use tandem_archiver::L1Ref;
use tandem_proto::time::{PipeliningMode, Slot};
use tokio_util::sync::CancellationToken;

use super::{
    jobs::{run_job, stored_blocks},
    *,
};
use crate::{Sequencer, SequencerEvent};

/// `(first, count, late_ms)` of every `SubSlotsSkipped` event.
fn skips(events: &[SequencerEvent]) -> Vec<(u32, u32, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            SequencerEvent::SubSlotsSkipped {
                first,
                count,
                late_ms,
                ..
            } => Some((*first, *count, *late_ms)),
            _ => None,
        })
        .collect()
}

/// The job can start only once the L1 block at the frame opening is mined and synced (the sync
/// guard), which on a 1 s L1 lands anywhere in the frame's first second: a job reaching the
/// block loop a little after the first sub-slot opened (here 300 ms, plus the archiver's and
/// the loop's polls) must still give that sub-slot its block (the pipelined test's warm-up
/// flake: 7 of 8 blocks).
#[tokio::test(start_paused = true)]
async fn a_job_starting_late_in_the_first_sub_slot_still_builds_every_block() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.ready_for(Slot(3), 40);
    let schedule = f.params().timetable.schedule(Slot(3));
    let late = schedule
        .build_frame_start
        .until(schedule.first_subslot_start)
        .saturating_add(Duration::from_millis(300));
    f.at_frame_opening(Slot(3), late);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, events) = run_job(&f).await;
    built.expect("a checkpoint");
    assert_eq!(skips(&events), vec![]);
    let (stored, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2; max_blocks]);
    assert_eq!(stored[0].header.index_within_checkpoint, 0);
}

/// Reached with less than the minimum block left, sub-slots are skipped (reference §1.5), and
/// the loss is reported with how late the loop came.
#[tokio::test(start_paused = true)]
async fn sub_slots_reached_too_late_are_skipped_and_reported() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.ready_for(Slot(3), 40);
    let schedule = f.params().timetable.schedule(Slot(3));
    // 1.6 D into the first sub-slot: the first is over, the second has 0.4 D left.
    let late = schedule
        .build_frame_start
        .until(schedule.first_subslot_start)
        .saturating_add(D.mul_f64(1.6));
    f.at_frame_opening(Slot(3), late);
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, events) = run_job(&f).await;
    built.expect("a checkpoint");
    assert_eq!(skips(&events), vec![(0, 2, 1_600)]);
    let (stored, _) = stored_blocks(&f);
    assert_eq!(stored.len(), max_blocks - 2);
    assert_eq!(stored[0].header.index_within_checkpoint, 0);
}

/// The worst phase of the second checkpoint after a start: nothing is on L1 yet, so the sync
/// guard waits for the L1 block at the frame opening, mined up to E (1 s) in and synced by the
/// archiver's poll (100 ms) later; here it is seen at frame + 1.3 s (the extra 200 ms stand for
/// prepare's and the job's L1 calls, which take no paused time). That block changes no tip: the
/// loop must wake on the synced L1 block, not on its next poll (1 s here, so that a poll-only
/// loop would start at frame + 2 s, past sub-slot 0, and build 7 of 8).
#[tokio::test(start_paused = true)]
async fn a_job_waiting_for_the_frame_opening_l1_block_starts_when_it_is_synced() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.config.poll_interval = Duration::from_secs(1);
    f.ready_for(Slot(3), 40);
    // Behind: the guard needs the L2 slot before the build slot (2) synced.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(0));
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (handle, actor) = Sequencer::new(f.config.clone(), f.params(), f.deps()).unwrap();
    let mut events = handle.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    let seen = Duration::from_millis(1_300);
    tokio::time::sleep(seen).await;
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(1));
    f.chain.l1_synced.send_replace(Some(L1Ref {
        number: 1,
        ..L1Ref::default()
    }));
    let mut seen_events = Vec::new();
    let proposed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.recv().await.unwrap();
            seen_events.push(event.clone());
            if let SequencerEvent::CheckpointProposed { target, blocks, .. } = event {
                return (target, blocks);
            }
        }
    })
    .await
    .expect("a checkpoint proposed");
    cancel.cancel();
    task.await.unwrap().unwrap();
    let starts: Vec<_> = seen_events
        .iter()
        .filter_map(|event| match event {
            SequencerEvent::Preparing {
                target,
                frame_offset_ms,
                ..
            } => Some((*target, *frame_offset_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![(Slot(3), 1_300)]);
    assert_eq!(skips(&seen_events), vec![]);
    assert_eq!(proposed, (Slot(3), max_blocks));
}

/// A release (sign, store, gossip) overrunning its sub-slot deadline by 300 ms (well past the
/// 100 ms wake-up tolerance the loop had) keeps the next sub-slot: less than D / 2 late.
#[tokio::test(start_paused = true)]
async fn a_release_overrunning_a_sub_slot_deadline_by_less_than_half_a_block_loses_nothing() {
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.ready_for(Slot(3), 40);
    // Block 0 is released in sub-slot 1, right after block 1 is built at its opening.
    *f.chain.store_clock_delay_at.lock().unwrap() =
        Some((0, D.saturating_add(Duration::from_millis(300))));
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, events) = run_job(&f).await;
    built.expect("a checkpoint");
    assert_eq!(skips(&events), vec![]);
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2; max_blocks]);
}

/// A release overrunning into the last sub-slot by more than D / 2 loses it: the loop ends
/// there, and the lost block is reported (event and counter) like any other skipped one.
#[tokio::test(start_paused = true)]
async fn losing_the_last_sub_slot_to_a_late_release_is_reported() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.config.max_txs_per_checkpoint = Some(16);
    f.ready_for(Slot(3), 40);
    // Block 5 is released in sub-slot 6 and ends 600 ms into sub-slot 7 (the last), 400 ms left.
    *f.chain.store_clock_delay_at.lock().unwrap() =
        Some((5, D.saturating_add(Duration::from_millis(600))));
    let max_blocks = f.params().timetable.max_blocks_per_checkpoint() as usize;
    let (_, built, events) = run_job(&f).await;
    built.expect("a checkpoint");
    let last = u32::try_from(max_blocks - 1).unwrap();
    assert_eq!(skips(&events), vec![(last, 1, 600)]);
    assert_eq!(
        counter(&snapshot, "sequencer_subslots_skipped_total", &[]),
        1
    );
    let (_, sizes) = stored_blocks(&f);
    assert_eq!(sizes, vec![2; max_blocks - 1]);
}
