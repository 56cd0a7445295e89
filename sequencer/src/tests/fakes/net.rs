//! The publisher, gossip and the committee, scripted.

use std::sync::{Arc, Mutex};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{CommitteeSource, SlotDuty};
use tandem_proto::{
    Address, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    time::{Slot, Timestamp},
};
use tandem_publisher::SubmissionOutcome;
use tokio::sync::watch;

use super::TestClock;
use crate::deps::{DepFuture, Gossip, Submitter};

/// The publisher: records what was enqueued; its outcomes never resolve unless `landing`.
#[derive(Default)]
pub(crate) struct FakePublisher {
    pub(crate) enqueued: Mutex<Vec<Slot>>,
    /// Counts enqueues, for a test to wait on.
    pub(crate) enqueues: watch::Sender<usize>,
    pub(crate) interrupted: Mutex<bool>,
    pub(crate) landing: Mutex<bool>,
    /// Enqueueing panics (a pipeline task that dies).
    pub(crate) panics: Mutex<bool>,
}

impl Submitter for FakePublisher {
    fn enqueue(
        &self,
        bundle: tandem_l1::ProposeBundle,
        target: Slot,
    ) -> DepFuture<'_, BoxFuture<'static, SubmissionOutcome>> {
        assert_eq!(bundle.args.header.slot, target.0);
        self.enqueues.send_modify(|count| *count += 1);
        assert!(!*self.panics.lock().unwrap(), "the publisher panics (test)");
        self.enqueued.lock().unwrap().push(target);
        let landing = *self.landing.lock().unwrap();
        async move {
            let outcome: BoxFuture<'static, SubmissionOutcome> = if landing {
                async { SubmissionOutcome::Expired }.boxed()
            } else {
                // A submission sleeping in the publisher until interrupted.
                futures::future::pending().boxed()
            };
            Ok(outcome)
        }
        .boxed()
    }

    fn interrupt(&self) {
        *self.interrupted.lock().unwrap() = true;
    }
}

/// Gossip: records what was published; collecting returns the attestations published here
/// plus `extra`, or waits until the deadline (of the clock) when there are fewer than asked.
pub(crate) struct FakeGossip {
    pub(crate) clock: TestClock,
    pub(crate) blocks: Mutex<Vec<BlockProposal>>,
    pub(crate) checkpoints: Mutex<Vec<CheckpointProposal>>,
    pub(crate) attestations: Mutex<Vec<CheckpointAttestation>>,
    /// Counts attestations published, for a test to wait on.
    pub(crate) published: watch::Sender<usize>,
    pub(crate) collects: Mutex<usize>,
}

impl Gossip for FakeGossip {
    fn publish_block_proposal(&self, proposal: BlockProposal) -> DepFuture<'_, ()> {
        self.blocks.lock().unwrap().push(proposal);
        async { Ok(()) }.boxed()
    }

    fn publish_checkpoint_proposal(&self, proposal: CheckpointProposal) -> DepFuture<'_, ()> {
        self.checkpoints.lock().unwrap().push(proposal);
        async { Ok(()) }.boxed()
    }

    fn publish_attestation(&self, attestation: CheckpointAttestation) -> DepFuture<'_, ()> {
        self.attestations.lock().unwrap().push(attestation);
        self.published.send_modify(|count| *count += 1);
        async { Ok(()) }.boxed()
    }

    fn collect_attestations<'a>(
        &'a self,
        _payload: &'a ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> DepFuture<'a, Vec<CheckpointAttestation>> {
        *self.collects.lock().unwrap() += 1;
        async move {
            let have = self.attestations.lock().unwrap().clone();
            if have.len() < quorum {
                crate::context::sleep_until(&self.clock, deadline).await;
            }
            Ok(self.attestations.lock().unwrap().clone())
        }
        .boxed()
    }
}

/// Members in order; the proposer of slot s is `members[s % n]`; records every slot asked.
pub(crate) struct RecordingCommittee {
    pub(crate) members: Arc<[Address]>,
    pub(crate) asked: Mutex<Vec<Slot>>,
    /// The epoch cache knows no committee.
    pub(crate) unknown: Mutex<bool>,
}

impl CommitteeSource for RecordingCommittee {
    fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        self.asked.lock().unwrap().push(slot);
        if *self.unknown.lock().unwrap() {
            return None;
        }
        Some(SlotDuty {
            proposer: Some(self.members[(slot.0 % self.members.len() as u64) as usize]),
            committee: Arc::clone(&self.members),
            provisional: false,
        })
    }
}
