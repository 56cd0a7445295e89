//! `prepare` and `check_sync`: reference §9 scenarios 1–5 and every other guard.

use std::time::Duration;

use tandem_l1::overrides::{TIPS_SLOT, archive_slot, tips_word};
use tandem_proto::{
    B256,
    time::{Clock, PipeliningMode, Slot, Timestamp},
};
use tandem_state::StateTip;

use super::*;
use crate::{
    SequencerEvent,
    metrics::PrecheckReason,
    prepare::{Attempts, JobPlan, Prepared, Snapshot, check_sync, prepare},
};

/// The world state agrees with the archiver's tip block `number`.
fn world_at(f: &Fixture, number: u64) {
    let header = f.chain.headers.lock().unwrap()[&number].clone();
    *f.world.tip_override.lock().unwrap() = Some(StateTip {
        number,
        hash: header.hash,
        state_root: B256::ZERO,
        archive_root: header.archive_root,
    });
}

async fn prepare_at(f: &Fixture, attempts: &mut Attempts) -> (Prepared, Vec<SequencerEvent>) {
    let (ctx, mut events) = f.ctx();
    let snap = Snapshot::at(&ctx, f.clock.now()).unwrap();
    let prepared = prepare(&ctx, attempts, snap).await.unwrap();
    (prepared, drain(&mut events))
}

fn job(prepared: Prepared) -> JobPlan {
    match prepared {
        Prepared::Job(job) => *job,
        other => panic!("expected a job, got {other:?}"),
    }
}

fn refusal(events: &[SequencerEvent]) -> Option<PrecheckReason> {
    events.iter().find_map(|event| match event {
        SequencerEvent::PrecheckFailed { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn scenario_01_a_tick_targets_the_slot_of_the_next_l1_block_plus_one() {
    // Committee [us, other]: the proposer of odd slots is the other key.
    let f = Fixture::new(PipeliningMode::Pipelined, &[2]);
    // 0.5 s before slot 6 starts: the wall clock is in slot 5, the next L1 block is slot 6's.
    let slot_6 = slot_clock().slot_start(Slot(6));
    f.clock
        .set(slot_6.saturating_sub(Duration::from_millis(500)));
    assert_eq!(slot_clock().slot_at(f.clock.now()), Some(Slot(5)));
    let mut attempts = Attempts::default();
    let (prepared, _) = prepare_at(&f, &mut attempts).await;
    assert!(matches!(prepared, Prepared::Nothing), "{prepared:?}");
    // The proposer lookup used 7 (= 6 + 1), not 6 (= wall-clock slot + 1), from one read.
    assert_eq!(*f.committee.asked.lock().unwrap(), vec![Slot(7)]);
    assert!(f.l1.calls.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn scenario_02_a_proposed_parent_is_laid_over_l1_in_the_plan() {
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.chain.put_header(1, 1, 4);
    let parent = f.chain.put_proposed(1, 1, 1, 4);
    f.chain.set_tips(1, 1, 1, 0);
    world_at(&f, 1);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(3));
    f.at_frame_opening(Slot(5), Duration::ZERO);
    let mut attempts = Attempts::default();
    let (prepared, _) = prepare_at(&f, &mut attempts).await;
    let job = job(prepared);
    assert_eq!(job.checkpoint_number, 2);
    assert!(job.had_proposed_parent());
    let calls = f.l1.can_propose.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (time, archive, proposer, plan) = &calls[0];
    // Simulated in the target slot, against the parent's archive from its proposal.
    assert_eq!(slot_clock().slot_at(*time), Some(Slot(5)));
    assert_eq!(*archive, parent.payload.archive);
    assert_eq!(*proposer, key(1).address());
    // L1's tip (0) becomes 1: the tips word (proven kept at 0) and archives[1].
    assert_eq!(plan.next_checkpoint_number(), 2);
    let diff = plan.storage_diff();
    assert!(diff.contains(&(B256::with_last_byte(TIPS_SLOT as u8), tips_word(1, 0))));
    assert!(diff.contains(&(archive_slot(1), parent.payload.archive)));
    assert_eq!(attempts.last_attempted, Some(Slot(5)));
}

#[tokio::test(start_paused = true)]
async fn scenario_03_the_depth_guard_refuses_before_any_l1_call() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    for n in 1..=3 {
        f.chain.put_header(n, n, n + 1);
    }
    f.chain.put_proposed(2, 2, 1, 3);
    f.chain.put_proposed(3, 3, 1, 4);
    // Confirmed 1, proposed 2 and 3, tip in 3: the next would be 4 > 1 + 2.
    f.chain.set_tips(3, 3, 3, 1);
    world_at(&f, 3);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(4));
    f.at_frame_opening(Slot(6), Duration::ZERO);
    let mut attempts = Attempts::default();
    let (prepared, events) = prepare_at(&f, &mut attempts).await;
    assert!(matches!(prepared, Prepared::Refused), "{prepared:?}");
    assert_eq!(refusal(&events), Some(PrecheckReason::DepthExceeded));
    assert!(f.l1.calls.lock().unwrap().is_empty(), "nothing simulated");
    assert_eq!(precheck_count(&snapshot, PrecheckReason::DepthExceeded), 1);
}

#[tokio::test(start_paused = true)]
async fn scenario_04_without_a_proposed_parent_the_plan_changes_nothing() {
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.chain.put_header(2, 2, 3);
    f.chain.set_tips(2, 2, 2, 2);
    world_at(&f, 2);
    *f.l1.checkpointed.lock().unwrap() = 2;
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(4));
    f.at_frame_opening(Slot(6), Duration::ZERO);
    let mut attempts = Attempts::default();
    let (prepared, _) = prepare_at(&f, &mut attempts).await;
    let job = job(prepared);
    assert!(!job.had_proposed_parent());
    assert_eq!(job.checkpoint_number, 3);
    // Pinned to L1's checkpointed tip: no overrides, the next checkpoint is L1's tip + 1.
    assert!(job.plan.is_empty());
    assert_eq!(job.plan.next_checkpoint_number(), 3);
    let (_, archive, _, _) = f.l1.can_propose.lock().unwrap()[0].clone();
    assert_eq!(archive, f.chain.headers.lock().unwrap()[&2].archive_root);
}

#[tokio::test(start_paused = true)]
async fn scenario_05_the_orphan_guard_waits_for_the_proposed_checkpoint() {
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.chain.put_header(5, 3, 6);
    // Tip block 5 in checkpoint 3, checkpointed 2, no proposed checkpoint 3.
    f.chain.set_tips(5, 3, 2, 2);
    world_at(&f, 5);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(6));
    let (ctx, _) = f.ctx();
    assert_eq!(
        check_sync(&ctx, Slot(7)).unwrap(),
        Err(PrecheckReason::OrphanBlock)
    );
    // Once proposed checkpoint 3 (covering block 5) is there, it is the parent.
    f.chain.put_proposed(3, 5, 1, 6);
    f.chain.set_tips(5, 3, 3, 2);
    let synced = check_sync(&ctx, Slot(7)).unwrap().unwrap();
    assert_eq!(synced.checkpoint_number, 3);
    assert_eq!(synced.checkpointed, 2);
    assert_eq!(synced.proposed_parent.unwrap().number, 3);
}

#[tokio::test(start_paused = true)]
async fn every_other_guard_refuses_with_its_reason_counted_once_per_slot() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    f.chain.put_header(1, 1, 4);
    f.chain.put_proposed(1, 1, 1, 4);
    f.chain.set_tips(1, 1, 1, 0);
    world_at(&f, 1);
    f.at_frame_opening(Slot(5), Duration::ZERO);
    let mut attempts = Attempts::default();

    // L1 sync behind the slot before the build slot (4): synced to 2.
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(2));
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::ArchiverBehind));
    // The same refusal on the next tick is not counted (or reported) again.
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), None);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(3));

    // World state behind the archiver.
    *f.world.tip_override.lock().unwrap() = None;
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::WorldStateBehind));
    world_at(&f, 1);

    // Tips say proposed 1, but it cannot be read.
    let parent = f.chain.proposed.lock().unwrap().remove(&1).unwrap();
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::IncoherentTips));
    f.chain.proposed.lock().unwrap().insert(1, parent);

    // canProposeAt answers another slot, then another checkpoint number.
    *f.l1.answer.lock().unwrap() = Some(tandem_publisher::ProposeSlot {
        slot: Slot(4),
        next_checkpoint: 2,
    });
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::SlotMismatch));
    *f.l1.answer.lock().unwrap() = Some(tandem_publisher::ProposeSlot {
        slot: Slot(5),
        next_checkpoint: 3,
    });
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(
        refusal(&events),
        Some(PrecheckReason::CheckpointNumberMismatch)
    );
    assert_eq!(
        attempts.last_attempted, None,
        "refusals retry on the next tick"
    );
    *f.l1.answer.lock().unwrap() = None;

    // The tip block is of the target slot already.
    f.chain.put_header(1, 1, 5);
    f.chain.set_tips(1, 1, 1, 0);
    world_at(&f, 1);
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::SlotAlreadyTaken));
    f.chain.put_header(1, 1, 4);
    f.chain.set_tips(1, 1, 1, 0);
    world_at(&f, 1);

    // Past the start deadline: refused, and the slot is given up.
    let deadline = timetable(PipeliningMode::Pipelined)
        .schedule(Slot(5))
        .start_deadline;
    f.clock.set(Timestamp(deadline.0 + 1));
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::PastStartDeadline));
    assert_eq!(attempts.last_attempted, Some(Slot(5)));
    // Attempted: nothing more for this slot, not even a proposer lookup.
    f.committee.asked.lock().unwrap().clear();
    let (prepared, _) = prepare_at(&f, &mut attempts).await;
    assert!(matches!(prepared, Prepared::Nothing));
    assert!(f.committee.asked.lock().unwrap().is_empty());
    // Each refusal counted once under its reason (the repeated one too).
    for reason in [
        PrecheckReason::ArchiverBehind,
        PrecheckReason::WorldStateBehind,
        PrecheckReason::IncoherentTips,
        PrecheckReason::SlotMismatch,
        PrecheckReason::CheckpointNumberMismatch,
        PrecheckReason::SlotAlreadyTaken,
        PrecheckReason::PastStartDeadline,
    ] {
        assert_eq!(precheck_count(&snapshot, reason), 1, "{reason:?}");
    }
    assert_eq!(precheck_count(&snapshot, PrecheckReason::DepthExceeded), 0);
}

/// Tip block 1 (slot 4) in proposed checkpoint 1, world state agreeing, L1 synced to 3, the
/// clock at slot 5's frame opening: ready to build checkpoint 2 for slot 5.
fn on_proposed_tip(f: &Fixture) {
    f.chain.put_header(1, 1, 4);
    f.chain.put_proposed(1, 1, 1, 4);
    f.chain.set_tips(1, 1, 1, 0);
    world_at(f, 1);
    *f.chain.synced_slot.lock().unwrap() = Some(Slot(3));
    f.at_frame_opening(Slot(5), Duration::ZERO);
}

fn precheck_count(snapshot: &Counters, reason: PrecheckReason) -> u64 {
    counter(
        snapshot,
        "sequencer_checkpoint_precheck_failed_total",
        &[("reason", reason.as_str())],
    )
}

/// Review 15 m6: ticks flipping between two refusals for one target slot count each reason
/// once; the next target slot counts again.
#[tokio::test(start_paused = true)]
async fn refusals_flipping_between_reasons_count_each_once_per_target_slot() {
    let (recorder, snapshot) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let f = Fixture::new(PipeliningMode::Pipelined, &[]);
    on_proposed_tip(&f);
    let mut attempts = Attempts::default();
    let mut reported = Vec::new();
    for (synced, world_behind) in [(2, false), (3, true), (2, false), (3, true), (2, false)] {
        *f.chain.synced_slot.lock().unwrap() = Some(Slot(synced));
        if world_behind {
            *f.world.tip_override.lock().unwrap() = None;
        } else {
            world_at(&f, 1);
        }
        let (_, events) = prepare_at(&f, &mut attempts).await;
        reported.extend(refusal(&events));
    }
    assert_eq!(
        reported,
        vec![
            PrecheckReason::ArchiverBehind,
            PrecheckReason::WorldStateBehind
        ]
    );
    assert_eq!(precheck_count(&snapshot, PrecheckReason::ArchiverBehind), 1);
    assert_eq!(
        precheck_count(&snapshot, PrecheckReason::WorldStateBehind),
        1
    );
    // Slot 6: the same reason counts again.
    f.at_frame_opening(Slot(6), Duration::ZERO);
    let (_, events) = prepare_at(&f, &mut attempts).await;
    assert_eq!(refusal(&events), Some(PrecheckReason::ArchiverBehind));
    assert_eq!(precheck_count(&snapshot, PrecheckReason::ArchiverBehind), 2);
}

/// The guards not covered above, each counted under its own reason and nothing else.
#[tokio::test(start_paused = true)]
async fn the_remaining_guards_refuse_and_count_their_reason() {
    type Setup = fn(&Fixture);
    let cases: [(PrecheckReason, Setup); 4] = [
        (PrecheckReason::NoCommittee, |f| {
            *f.committee.unknown.lock().unwrap() = true;
        }),
        // Proposed checkpoint 2 exists, but the tip block is in checkpoint 1.
        (PrecheckReason::ProposedCheckpointNotParent, |f| {
            f.chain.put_proposed(2, 2, 1, 5);
            f.chain.set_tips(1, 1, 2, 0);
        }),
        (PrecheckReason::RollupContractCheckFailed, |f| {
            *f.l1.fail_base.lock().unwrap() = true;
        }),
        // The archiver has checkpoint 1 on L1, L1 (reorged) says 0: the plan would need a
        // proposed checkpoint 1, and there is none.
        (PrecheckReason::PlanFailed, |f| {
            f.chain.proposed.lock().unwrap().clear();
            f.chain.set_tips(1, 1, 1, 1);
        }),
    ];
    for (expected, setup) in cases {
        let (recorder, snapshot) = recorder();
        let _local = metrics::set_default_local_recorder(&recorder);
        let f = Fixture::new(PipeliningMode::Pipelined, &[]);
        on_proposed_tip(&f);
        setup(&f);
        let (prepared, events) = prepare_at(&f, &mut Attempts::default()).await;
        assert!(
            matches!(prepared, Prepared::Refused),
            "{expected:?}: {prepared:?}"
        );
        assert_eq!(refusal(&events), Some(expected));
        for reason in PrecheckReason::ALL {
            assert_eq!(
                precheck_count(&snapshot, reason),
                u64::from(reason == expected),
                "{expected:?}: counted {reason:?}"
            );
        }
    }
}
