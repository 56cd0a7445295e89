//! The chain store: blocks, checkpoints mined on L1, proposed checkpoints (gossiped and
//! validated, not on L1 yet) and the chain tips, on RocksDB.
//!
//! [`ArchiverStore`] enforces the insertion rules (a block for checkpoint N+1 is accepted on top
//! of proposed checkpoint N; proposed checkpoints are strictly sequential), reconciles with L1
//! (promote a matching proposed checkpoint, evict diverging ones, write blocks from the L1 body
//! for a node that never saw them, roll back on an L1 reorg) and prunes blocks whose checkpoint
//! can no longer land. Every removal returns a [`PruneEvent`] the world state and the tx pool
//! roll back with.
//!
//! Not here yet (see the open archiver issue): the single-writer actor with its inbound queue,
//! the L1 sync loop driving these operations, and the crash-kill test.

mod error;
mod records;
mod store;

pub use error::ArchiverError;
pub use records::{CheckpointRecord, L1Ref, ProposedCheckpoint, RecordError, StoredBlock};
pub use store::{
    ArchiverStore, L1CheckpointInput, L1Outcome, ProposedCheckpointInput, PruneEvent, PruneKind,
};
