//! Errors of the archiver. Every refused insertion names its rule and writes nothing; every error
//! says what its caller should do with it ([`ArchiverError::disposition`]).

use tandem_proto::{B256, TipsInvariantError};

use crate::records::RecordError;

/// What a caller should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Something it needs is not there yet (a parent block, the previous proposed checkpoint,
    /// an L1 block a lagging RPC does not serve yet): try again later; the data may be fine.
    RetryLater,
    /// The data contradicts what is stored or what the rules allow: drop it (a handler may
    /// penalise its sender).
    Reject,
    /// The store is damaged or the chain broke a guarantee (finality): stop the node.
    Fatal,
}

/// Errors of the archiver. Cloneable (L1 errors are shared), so one failure can be reported to
/// every caller waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiverError {
    /// RocksDB failed.
    #[error("archiver database: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored data does not decode or does not add up.
    #[error("archiver database is corrupt: {0}")]
    Corrupt(&'static str),
    /// A stored record does not decode.
    #[error("archiver database is corrupt: {0}")]
    Record(#[from] RecordError),
    /// The tips a change would produce violate their ordering (nothing was written).
    #[error(transparent)]
    Tips(#[from] TipsInvariantError),
    /// The store was created for another genesis.
    #[error("archiver database has genesis {stored}, this chain's genesis is {expected}")]
    GenesisMismatch {
        /// Stored genesis block hash.
        stored: B256,
        /// Configured genesis block hash.
        expected: B256,
    },
    /// A different block is checkpointed at this number.
    #[error("block {number} is checkpointed with different content")]
    CannotOverwriteCheckpointedBlock {
        /// Block number.
        number: u64,
    },
    /// A different proposed block is stored at this number.
    #[error("block number {number} already exists with different content")]
    BlockNumberAlreadyExists {
        /// Block number.
        number: u64,
    },
    /// A different block that no proposed checkpoint covers is stored at this number (it goes
    /// if its checkpoint proposal misses its deadline).
    #[error("block number {number} is held by another block no proposed checkpoint covers yet")]
    BlockNumberHeldByUncovered {
        /// Block number.
        number: u64,
    },
    /// The item's checkpoint is too far above the checkpointed tip: nothing more is held until
    /// L1 settles what is there.
    #[error(
        "checkpoint {checkpoint} is more than {max_depth} above the checkpointed tip {checkpointed}"
    )]
    TooFarAboveCheckpointed {
        /// The checkpoint claimed.
        checkpoint: u64,
        /// The block claiming it, if the item is a block.
        block: Option<u64>,
        /// The checkpointed tip.
        checkpointed: u64,
        /// The limit.
        max_depth: u64,
    },
    /// The block's index within its checkpoint is past the most blocks a checkpoint may have.
    #[error("block {block}: a checkpoint has at most {max} blocks")]
    CheckpointTooManyBlocks {
        /// Block number.
        block: u64,
        /// The limit.
        max: usize,
    },
    /// The block's parent is not stored (yet).
    #[error("block {number}: its parent is not stored (latest block is {latest})")]
    ParentNotStored {
        /// The block's number.
        number: u64,
        /// Latest stored block.
        latest: u64,
    },
    /// Its checkpoint's predecessor is neither checkpointed nor proposed.
    #[error(
        "cannot insert block {block} for checkpoint {checkpoint} given previous checkpoint number is {previous}"
    )]
    BlockCheckpointNumberNotSequential {
        /// Block number.
        block: u64,
        /// Its checkpoint.
        checkpoint: u64,
        /// Highest checkpointed or proposed checkpoint.
        previous: u64,
    },
    /// The block's checkpoint was already proposed with a fixed set of blocks.
    #[error("block {block} claims checkpoint {checkpoint}, which is already proposed")]
    CheckpointAlreadyProposed {
        /// Block number.
        block: u64,
        /// Its checkpoint.
        checkpoint: u64,
    },
    /// `last_archive_root` is not the previous block's archive.
    #[error("block {block} does not build on the previous block's archive")]
    BlockArchiveNotConsistent {
        /// Block number.
        block: u64,
    },
    /// Wrong index within the checkpoint.
    #[error("block {block} has index {got}, expected {expected}")]
    BlockIndexNotSequential {
        /// Block number.
        block: u64,
        /// Expected index.
        expected: u32,
        /// Its index.
        got: u32,
    },
    /// The block does not carry its checkpoint's globals (slot, timestamp, coinbase, fee
    /// recipient, fee), or starts a checkpoint without moving to a later slot.
    #[error("block {block}: its globals do not continue its checkpoint's")]
    BlockGlobalsNotConsistent {
        /// Block number.
        block: u64,
    },
    /// The block is for another chain or rollup version.
    #[error("block {block} is for chain {chain_id} version {rollup_version}")]
    WrongChain {
        /// Block number.
        block: u64,
        /// Its chain id.
        chain_id: u64,
        /// Its rollup version.
        rollup_version: u32,
    },
    /// The txs do not match the header's body hash.
    #[error("block {block}: txs do not match the header's body hash")]
    BodyMismatch {
        /// Block number.
        block: u64,
    },
    /// Not max(checkpointed, highest proposed) + 1.
    #[error("proposed checkpoint {got} is not sequential: expected {expected}")]
    ProposedCheckpointNotSequential {
        /// Expected number.
        expected: u64,
        /// The proposal's number.
        got: u64,
    },
    /// Another checkpoint with this number is already proposed or checkpointed.
    #[error("checkpoint {number} is already stored with different content")]
    ProposedCheckpointConflict {
        /// Checkpoint number.
        number: u64,
    },
    /// A block of the proposed checkpoint is not stored (yet).
    #[error("proposed checkpoint {number}: block {block} is not stored")]
    ProposedCheckpointBlockMissing {
        /// Checkpoint number.
        number: u64,
        /// The first missing block.
        block: u64,
    },
    /// The proposed checkpoint's blocks do not match it.
    #[error("proposed checkpoint {number}: {reason}")]
    ProposedCheckpointBlocks {
        /// Checkpoint number.
        number: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The item's slot has ended: it can no longer become part of the chain.
    #[error("slot {slot} has ended (the next L1 block is in slot {current})")]
    SlotExpired {
        /// The item's slot.
        slot: u64,
        /// Slot of the next L1 block.
        current: u64,
    },
    /// The archiver actor has stopped.
    #[error("the archiver has stopped")]
    Stopped,
    /// Reading L1 failed.
    #[error(transparent)]
    L1(std::sync::Arc<tandem_l1::L1Error>),
    /// The L1 RPC does not serve a block it should have (it lags behind its own head).
    #[error("L1 block {number} is not available from the RPC yet")]
    L1BlockUnavailable {
        /// The block.
        number: u64,
    },
    /// L1 reorganised while a range was being read; nothing of it was stored.
    #[error("L1 changed while blocks {from}..={to} were read")]
    L1RangeChanged {
        /// First block of the range.
        from: u64,
        /// Last block of the range.
        to: u64,
    },
    /// L1 delivered a checkpoint out of order.
    #[error("L1 checkpoint {got} does not follow the last known one (expected {expected})")]
    L1CheckpointNotSequential {
        /// Expected number.
        expected: u64,
        /// L1's number.
        got: u64,
    },
    /// L1's body does not match its header.
    #[error("L1 checkpoint {number}: {reason}")]
    L1CheckpointBlocks {
        /// Checkpoint number.
        number: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// L1 replaced a checkpoint at or below the finalized tip.
    #[error("L1 reorganised finalized checkpoint {checkpoint} (finalized tip is {finalized})")]
    ReorgBelowFinalized {
        /// The checkpoint L1 no longer has.
        checkpoint: u64,
        /// The finalized checkpoint.
        finalized: u64,
    },
    /// A body supplied for a checkpoint waiting for one does not match it.
    #[error("body supplied for L1 checkpoint {number} rejected: {reason}")]
    SuppliedBodyRejected {
        /// Checkpoint number.
        number: u64,
        /// What did not match.
        reason: &'static str,
    },
    /// No L1 checkpoint with this number waits for a body.
    #[error("L1 checkpoint {number} is not waiting for a body")]
    NotAwaitingBody {
        /// Checkpoint number.
        number: u64,
    },
}

impl From<tandem_l1::L1Error> for ArchiverError {
    fn from(err: tandem_l1::L1Error) -> Self {
        Self::L1(std::sync::Arc::new(err))
    }
}

impl ArchiverError {
    /// What to do with this error. No catch-all arm: a new variant must be classified.
    pub const fn disposition(&self) -> Disposition {
        match self {
            Self::Db(_)
            | Self::Corrupt(_)
            | Self::Record(_)
            | Self::Tips(_)
            | Self::GenesisMismatch { .. }
            | Self::ReorgBelowFinalized { .. } => Disposition::Fatal,
            Self::ParentNotStored { .. }
            | Self::BlockNumberHeldByUncovered { .. }
            | Self::TooFarAboveCheckpointed { .. }
            | Self::ProposedCheckpointBlockMissing { .. }
            | Self::Stopped
            | Self::L1(_)
            | Self::L1BlockUnavailable { .. }
            | Self::L1RangeChanged { .. }
            | Self::L1CheckpointNotSequential { .. } => Disposition::RetryLater,
            // A later checkpoint may be fine once its predecessor is proposed.
            Self::BlockCheckpointNumberNotSequential {
                checkpoint,
                previous,
                ..
            } => {
                if *checkpoint > *previous + 1 {
                    Disposition::RetryLater
                } else {
                    Disposition::Reject
                }
            }
            Self::ProposedCheckpointNotSequential { expected, got } => {
                if *got > *expected {
                    Disposition::RetryLater
                } else {
                    Disposition::Reject
                }
            }
            Self::CannotOverwriteCheckpointedBlock { .. }
            | Self::BlockNumberAlreadyExists { .. }
            | Self::CheckpointAlreadyProposed { .. }
            | Self::CheckpointTooManyBlocks { .. }
            | Self::BlockArchiveNotConsistent { .. }
            | Self::BlockIndexNotSequential { .. }
            | Self::BlockGlobalsNotConsistent { .. }
            | Self::WrongChain { .. }
            | Self::BodyMismatch { .. }
            | Self::ProposedCheckpointConflict { .. }
            | Self::ProposedCheckpointBlocks { .. }
            | Self::SlotExpired { .. }
            | Self::L1CheckpointBlocks { .. }
            | Self::SuppliedBodyRejected { .. }
            | Self::NotAwaitingBody { .. } => Disposition::Reject,
        }
    }

    /// Whether the node must stop.
    pub const fn is_fatal(&self) -> bool {
        matches!(self.disposition(), Disposition::Fatal)
    }
}

/// Result of the archiver.
pub type ArchiverResult<T> = Result<T, ArchiverError>;
