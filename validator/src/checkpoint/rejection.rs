//! Verdicts on checkpoint proposals (reference §6.5, §7.2).

use tandem_archiver::ArchiverError;
use tandem_proto::B256;

/// A checkpoint proposal the all-nodes handler accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointAccepted {
    /// Validated and stored as proposed checkpoint `number`.
    Stored {
        /// Checkpoint number.
        number: u64,
    },
    /// Validated; the identical proposed checkpoint was stored already.
    AlreadyStored {
        /// Checkpoint number.
        number: u64,
    },
    /// This node's own proposal, stored by its sequencer before it was gossiped: not
    /// validated again.
    Own,
}

/// A refused checkpoint proposal. [`CheckpointRejection::as_str`] is the result label of
/// `validator_checkpoint_validation_total`; slashable ones name a provable fault of the
/// proposer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckpointRejection {
    /// The fee-asset price modifier is outside ±100 bps.
    #[error("fee-asset price modifier {modifier} bps is out of bounds")]
    InvalidFeeAssetPriceModifier {
        /// The modifier.
        modifier: i64,
    },
    /// No stored block has the proposal's archive by the deadline.
    #[error("no stored block has archive {archive}")]
    LastBlockNotFound {
        /// The proposal's archive.
        archive: B256,
    },
    /// The block handler refused the last block.
    #[error("the last block was refused: {reason}")]
    LastBlockInvalid {
        /// The block's refusal reason.
        reason: &'static str,
        /// Whether that refusal is slashable.
        slashable: bool,
    },
    /// L1 already holds the checkpoint of this slot.
    #[error("checkpoint {number} of this slot is already on L1")]
    CheckpointAlreadyPublished {
        /// The L1 checkpoint.
        number: u64,
    },
    /// The block with the proposal's archive is of another slot.
    #[error("the block with the proposal's archive is of slot {block_slot}")]
    NoBlocksForSlot {
        /// That block's slot.
        block_slot: u64,
    },
    /// More blocks than a checkpoint may hold.
    #[error("{count} blocks, at most {max}")]
    TooManyBlocksInCheckpoint {
        /// Blocks.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// The stored blocks do not form one checkpoint (numbering, indices, slot).
    #[error("stored block {number} does not belong to the checkpoint")]
    BlocksInconsistent {
        /// The block.
        number: u64,
    },
    /// The body is larger than one L1 tx may carry.
    #[error("body is {size} bytes, at most {max}")]
    BodyTooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A header field differs from the one rebuilt from the stored blocks.
    #[error("header field {field} differs from the one rebuilt from the blocks")]
    CheckpointHeaderMismatch {
        /// The first differing field.
        field: &'static str,
    },
    /// The archive differs from the one after the last stored block.
    #[error("archive {claimed} is not the one after the last block ({rebuilt})")]
    ArchiveMismatch {
        /// The proposal's.
        claimed: B256,
        /// After the last block.
        rebuilt: B256,
    },
    /// The previous checkpoint was not stored by the deadline, so this one cannot be.
    #[error("the previous checkpoint is not stored")]
    PreviousCheckpointMissing,
    /// The archiver refused the proposed checkpoint.
    #[error("the archiver refused the checkpoint: {0}")]
    StoreRefused(ArchiverError),
}

impl CheckpointRejection {
    /// The result label.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidFeeAssetPriceModifier { .. } => "invalid_fee_asset_price_modifier",
            Self::LastBlockNotFound { .. } => "last_block_not_found",
            Self::LastBlockInvalid { .. } => "last_block_invalid",
            Self::CheckpointAlreadyPublished { .. } => "checkpoint_already_published",
            Self::NoBlocksForSlot { .. } => "no_blocks_for_slot",
            Self::TooManyBlocksInCheckpoint { .. } => "too_many_blocks_in_checkpoint",
            Self::BlocksInconsistent { .. } => "blocks_inconsistent",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::CheckpointHeaderMismatch { .. } => "checkpoint_header_mismatch",
            Self::ArchiveMismatch { .. } => "archive_mismatch",
            Self::PreviousCheckpointMissing => "previous_checkpoint_missing",
            Self::StoreRefused(_) => "store_refused",
        }
    }

    /// Whether the proposer provably broke a rule. No catch-all arm.
    pub const fn is_slashable(&self) -> bool {
        match self {
            Self::InvalidFeeAssetPriceModifier { .. }
            | Self::NoBlocksForSlot { .. }
            | Self::TooManyBlocksInCheckpoint { .. }
            | Self::BodyTooLarge { .. }
            | Self::CheckpointHeaderMismatch { .. }
            | Self::ArchiveMismatch { .. } => true,
            Self::LastBlockInvalid { slashable, .. } => *slashable,
            Self::LastBlockNotFound { .. }
            | Self::CheckpointAlreadyPublished { .. }
            | Self::BlocksInconsistent { .. }
            | Self::PreviousCheckpointMissing
            | Self::StoreRefused(_) => false,
        }
    }
}
