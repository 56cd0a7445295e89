//! How a job and its background pipeline end, as enums with stable labels (metrics, logs and
//! events use the same strings).

use tandem_publisher::SubmissionOutcome;

/// Why a job ended without gossiping a checkpoint proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbortReason {
    /// The fee per mana could not be read from L1 under the plan.
    FeeReadFailed,
    /// The world state's fork is not at the tip prepare checked.
    WorldStateMoved,
    /// No block was built.
    CheckpointEmpty,
    /// `validateHeader` under the plan refused the checkpoint.
    HeaderValidationFailed,
    /// Our archiver refused a block or the checkpoint.
    StoreFailed,
    /// The send deadline (the proposal's receive deadline less P) passed before it went out.
    PastSendDeadline,
    /// A dependency failed (the error is logged and returned to the loop).
    Failed,
    /// The sequencer is stopping.
    Interrupted,
}

impl AbortReason {
    /// Every reason.
    pub const ALL: [Self; 8] = [
        Self::FeeReadFailed,
        Self::WorldStateMoved,
        Self::CheckpointEmpty,
        Self::HeaderValidationFailed,
        Self::StoreFailed,
        Self::PastSendDeadline,
        Self::Failed,
        Self::Interrupted,
    ];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FeeReadFailed => "fee_read_failed",
            Self::WorldStateMoved => "world_state_moved",
            Self::CheckpointEmpty => "checkpoint_empty",
            Self::HeaderValidationFailed => "header_validation_failed",
            Self::StoreFailed => "store_failed",
            Self::PastSendDeadline => "past_send_deadline",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// How a gossiped checkpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointResult {
    /// It landed on L1.
    Landed,
    /// The epoch cache had no committee for the target slot.
    NoCommittee,
    /// Too few attestations by the attestation deadline.
    NoQuorum,
    /// Discarded before submission: its parent did not land as built on.
    Discarded,
    /// Kept from the publisher by `skip_publishing_slots` (test hook).
    SkippedByTestHook,
    /// The propose could not be packed.
    BundleFailed,
    /// The publisher refused the propose.
    EnqueueFailed,
    /// The send-time simulation said it would revert.
    DroppedAtSimulation,
    /// Its window closed before it could be sent.
    Expired,
    /// Mined without the event.
    Reverted,
    /// Not mined in its window; a cancel took the nonce.
    Cancelled,
    /// Not mined in its window, nor the cancel.
    NotMined,
    /// Mined, then reorged out.
    Lost,
    /// The nonce was taken by a tx the publisher did not send.
    NonceTaken,
    /// Every publisher key's send was refused.
    SendFailed,
}

impl CheckpointResult {
    /// The publisher's outcome; `None` when it was interrupted (shutdown, not an outcome).
    pub(crate) const fn of_submission(outcome: &SubmissionOutcome) -> Option<Self> {
        Some(match outcome {
            SubmissionOutcome::Landed(_) => Self::Landed,
            SubmissionOutcome::DroppedAtSimulation(_) => Self::DroppedAtSimulation,
            SubmissionOutcome::Expired => Self::Expired,
            SubmissionOutcome::Reverted { .. } => Self::Reverted,
            SubmissionOutcome::Cancelled => Self::Cancelled,
            SubmissionOutcome::NotMined => Self::NotMined,
            SubmissionOutcome::Lost => Self::Lost,
            SubmissionOutcome::NonceTaken => Self::NonceTaken,
            SubmissionOutcome::SendFailed { .. } => Self::SendFailed,
            SubmissionOutcome::Interrupted => return None,
        })
    }

    /// Metric label (the publisher's outcomes keep the publisher's labels).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Landed => "landed",
            Self::NoCommittee => "no_committee",
            Self::NoQuorum => "no_quorum",
            Self::Discarded => "discarded",
            Self::SkippedByTestHook => "skipped_by_test_hook",
            Self::BundleFailed => "bundle_failed",
            Self::EnqueueFailed => "enqueue_failed",
            Self::DroppedAtSimulation => "dropped_at_simulation",
            Self::Expired => "expired",
            Self::Reverted => "reverted",
            Self::Cancelled => "cancelled",
            Self::NotMined => "not_mined",
            Self::Lost => "lost",
            Self::NonceTaken => "nonce_taken",
            Self::SendFailed => "send_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publishers_outcomes_keep_the_publishers_labels() {
        for outcome in [
            SubmissionOutcome::Expired,
            SubmissionOutcome::Cancelled,
            SubmissionOutcome::NotMined,
            SubmissionOutcome::Lost,
            SubmissionOutcome::NonceTaken,
        ] {
            let result = CheckpointResult::of_submission(&outcome).unwrap();
            assert_eq!(result.as_str(), outcome.as_str());
        }
        assert_eq!(
            CheckpointResult::of_submission(&SubmissionOutcome::Interrupted),
            None
        );
    }
}
