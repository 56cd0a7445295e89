//! Errors of the archiver: every refused insertion names its rule; nothing is written.

use tandem_proto::{B256, TipsInvariantError};

use crate::records::RecordError;

/// Errors of the archiver.
#[derive(Debug, thiserror::Error)]
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
    /// The tips violate their ordering.
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
    /// The identical block is already checkpointed (callers may treat this as success).
    #[error("block {number} is already checkpointed")]
    AlreadyCheckpointed {
        /// Block number.
        number: u64,
    },
    /// A different block is checkpointed at this number.
    #[error("block {number} is checkpointed with different content")]
    CannotOverwriteCheckpointedBlock {
        /// Block number.
        number: u64,
    },
    /// Not the next block.
    #[error("block {got} is not the next block ({expected})")]
    BlockNumberNotSequential {
        /// Latest + 1.
        expected: u64,
        /// The block's number.
        got: u64,
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
    /// The proposed checkpoint's blocks are missing or do not match it.
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
    /// L1 delivered a checkpoint out of order.
    #[error("L1 checkpoint {got} does not follow the checkpointed tip (expected {expected})")]
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
}
