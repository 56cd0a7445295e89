//! The job's background pipeline (reference §3.7): own attestation, attestations to quorum or
//! the attestation deadline, then — pipelined — wait until L1 sync has passed the parent's slot
//! and check the parent is on L1 and is the one built on (else discard, with a reason), then
//! hand the propose to the publisher for the target slot and record the outcome. Every wait
//! ends at once when the job is interrupted.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tandem_l1::ProposeBundle;
use tandem_proto::time::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::{
    context::Ctx,
    events::SequencerEvent,
    job::{BuiltCheckpoint, pipelined},
    metrics,
    outcome::CheckpointResult,
    state::SequencerState,
};

/// How often the parent check looks at the archiver's L1 sync (it also wakes on tip changes).
const PARENT_POLL: Duration = Duration::from_millis(200);

/// Why a pipelined checkpoint was discarded before submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscardReason {
    /// L1 sync did not pass the parent's slot by the end of the target slot + 2 E.
    ArchiverSyncTimeout,
    /// Built on a proposed parent that never landed.
    ParentNotOnL1,
    /// A different checkpoint landed with the parent's number.
    ParentHashMismatch,
    /// Built on L1's tip, but a newer checkpoint landed meanwhile.
    UnexpectedParentAppeared,
    /// The archiver could not be read (its L1 sync or the parent): nothing is known about
    /// the parent, so nothing is submitted.
    ArchiverReadFailed,
}

impl DiscardReason {
    /// Every reason.
    pub const ALL: [Self; 5] = [
        Self::ArchiverSyncTimeout,
        Self::ParentNotOnL1,
        Self::ParentHashMismatch,
        Self::UnexpectedParentAppeared,
        Self::ArchiverReadFailed,
    ];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ArchiverSyncTimeout => "archiver-sync-timeout",
            Self::ParentNotOnL1 => "parent-not-on-l1",
            Self::ParentHashMismatch => "parent-hash-mismatch",
            Self::UnexpectedParentAppeared => "unexpected-parent-appeared",
            Self::ArchiverReadFailed => "archiver-read-failed",
        }
    }
}

/// How a background pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipelineEnd {
    /// How the checkpoint ended.
    Finished(CheckpointResult),
    /// Interrupted by shutdown.
    Interrupted,
}

/// Runs `future` unless `interrupt` fires first.
async fn unless<T>(interrupt: &CancellationToken, future: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = interrupt.cancelled() => None,
        value = future => Some(value),
    }
}

/// The pipeline of one built checkpoint.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    built: BuiltCheckpoint,
    interrupt: CancellationToken,
) -> PipelineEnd {
    let end = run_inner(&ctx, &built, &interrupt).await;
    if let PipelineEnd::Finished(result) = end {
        metrics::outcome(result.as_str());
        if result == CheckpointResult::Landed {
            metrics::slot_filled();
        } else {
            metrics::slot_missed();
            if pipelined(&ctx) {
                metrics::pipeline_discard();
            }
        }
        tracing::info!(target: "sequencer", checkpoint = built.number, target_slot = built.target.0,
            result = result.as_str(), "checkpoint finished");
        ctx.emit(SequencerEvent::CheckpointOutcome {
            target: built.target,
            number: built.number,
            result,
        });
    }
    end
}

async fn run_inner(
    ctx: &Ctx,
    built: &BuiltCheckpoint,
    interrupt: &CancellationToken,
) -> PipelineEnd {
    let target = built.target;
    let Ok(collecting) = ctx.tracker.phase(SequencerState::CollectingAttestations) else {
        return PipelineEnd::Interrupted;
    };
    let Some(duty) = ctx.deps.committee.duty(target) else {
        return PipelineEnd::Finished(CheckpointResult::NoCommittee);
    };
    // Our own attestation, for each of our keys in the committee (it counts in our pool).
    for member in duty.committee.iter() {
        if !ctx.deps.signer.addresses().contains(member) {
            continue;
        }
        let Some(signed) =
            unless(interrupt, ctx.deps.signer.attest(*member, &built.proposal)).await
        else {
            return PipelineEnd::Interrupted;
        };
        match signed {
            Ok(attestation) => {
                match unless(interrupt, ctx.deps.gossip.publish_attestation(attestation)).await {
                    None => return PipelineEnd::Interrupted,
                    Some(Err(err)) => {
                        tracing::warn!(target: "sequencer", %err, "gossiping our attestation failed");
                    }
                    Some(Ok(())) => {}
                }
            }
            Err(err) => {
                tracing::warn!(target: "sequencer", %err, "attesting our own checkpoint failed")
            }
        }
    }
    let quorum = if duty.committee.is_empty() {
        0
    } else {
        duty.quorum()
    };
    let started = Instant::now();
    let attestations = if quorum == 0 {
        Vec::new()
    } else {
        let collect = ctx.deps.gossip.collect_attestations(
            &built.proposal.payload,
            quorum,
            built.schedule.attestation_deadline,
        );
        match unless(interrupt, collect).await {
            None => return PipelineEnd::Interrupted,
            Some(Ok(attestations)) => attestations,
            Some(Err(err)) => {
                tracing::warn!(target: "sequencer", %err, "collecting attestations failed");
                Vec::new()
            }
        }
    };
    let elapsed = started.elapsed();
    metrics::attestations_collected(elapsed);
    drop(collecting);
    ctx.emit(SequencerEvent::AttestationsCollected {
        target,
        count: attestations.len(),
        quorum,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    });
    if attestations.len() < quorum {
        tracing::warn!(target: "sequencer", checkpoint = built.number, target_slot = target.0,
            collected = attestations.len(), quorum, "no quorum by the attestation deadline");
        return PipelineEnd::Finished(CheckpointResult::NoQuorum);
    }
    if pipelined(ctx) {
        match unless(interrupt, parent_check(ctx, built)).await {
            None => return PipelineEnd::Interrupted,
            Some(Err(reason)) => {
                metrics::parent_mismatch(reason.as_str());
                tracing::warn!(target: "sequencer", checkpoint = built.number, target_slot = target.0,
                    reason = reason.as_str(), "pipelined checkpoint discarded");
                ctx.emit(SequencerEvent::PipelineDiscarded {
                    target,
                    number: built.number,
                    reason,
                });
                return PipelineEnd::Finished(CheckpointResult::Discarded);
            }
            Some(Ok(())) => {}
        }
    }
    if ctx.config.skip_publishing_slots.contains(&target.0) {
        tracing::warn!(target: "sequencer", checkpoint = built.number, slot = target.0,
            "not submitting: sequencer.skip_publishing_slots (test hook)");
        return PipelineEnd::Finished(CheckpointResult::SkippedByTestHook);
    }
    let Ok(_publishing) = ctx.tracker.phase(SequencerState::PublishingCheckpoint) else {
        return PipelineEnd::Interrupted;
    };
    let bundle = match ProposeBundle::new(
        built.number,
        &built.proposal,
        &attestations,
        &duty.committee,
        &ctx.params.domain,
        built.body.clone(),
    ) {
        Ok(bundle) => bundle,
        Err(err) => {
            tracing::error!(target: "sequencer", %err, "cannot pack the propose");
            return PipelineEnd::Finished(CheckpointResult::BundleFailed);
        }
    };
    let outcome = match unless(interrupt, ctx.deps.publisher.enqueue(bundle, target)).await {
        None => return PipelineEnd::Interrupted,
        Some(Err(err)) => {
            tracing::warn!(target: "sequencer", %err, "the publisher refused the propose");
            return PipelineEnd::Finished(CheckpointResult::EnqueueFailed);
        }
        Some(Ok(outcome)) => outcome,
    };
    match unless(interrupt, outcome).await {
        None => PipelineEnd::Interrupted,
        Some(outcome) => CheckpointResult::of_submission(&outcome)
            .map_or(PipelineEnd::Interrupted, PipelineEnd::Finished),
    }
}

/// Reference §3.7 step 3: wait until L1 sync has passed the build slot (the parent's slot
/// ended or the parent landed), then check the parent.
async fn parent_check(ctx: &Ctx, built: &BuiltCheckpoint) -> Result<(), DiscardReason> {
    let clock = ctx.params.slot_clock();
    let timeout: Timestamp = clock
        .slot_start(built.target)
        .saturating_add(clock.slot_duration())
        .saturating_add(clock.l1_slot_duration().saturating_mul(2));
    let mut tips = ctx.deps.chain.watch_tips();
    loop {
        tips.borrow_and_update();
        // A failed read is retried until the timeout; only the last one decides the reason.
        let read_failed = match ctx.deps.chain.synced_l2_slot() {
            Ok(synced) if synced.is_some_and(|synced| synced >= built.build_slot) => break,
            Ok(_) => false,
            Err(err) => {
                tracing::warn!(target: "sequencer", %err, "reading the archiver's L1 sync failed");
                true
            }
        };
        let now = ctx.now();
        if now >= timeout {
            return Err(if read_failed {
                DiscardReason::ArchiverReadFailed
            } else {
                DiscardReason::ArchiverSyncTimeout
            });
        }
        let nap = now.until(timeout).min(PARENT_POLL);
        tokio::select! {
            Ok(()) = tips.changed() => {}
            () = ctx.sleep_until(now.saturating_add(nap)) => {}
        }
    }
    let checkpointed = ctx.deps.chain.tips().checkpointed.checkpoint.number;
    let parent = built.parent;
    if parent.proposed {
        if checkpointed < parent.number {
            return Err(DiscardReason::ParentNotOnL1);
        }
        match ctx.deps.chain.checkpointed_header_hash(parent.number) {
            Ok(Some(hash)) if hash == parent.header_hash => Ok(()),
            Ok(_) => Err(DiscardReason::ParentHashMismatch),
            Err(err) => {
                tracing::warn!(target: "sequencer", %err, "reading the parent from the archiver failed");
                Err(DiscardReason::ArchiverReadFailed)
            }
        }
    } else if checkpointed > parent.number {
        Err(DiscardReason::UnexpectedParentAppeared)
    } else {
        Ok(())
    }
}
