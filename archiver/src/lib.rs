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
//! [`ArchiverActor`] is the single writer: a bounded queue of proposed blocks and checkpoints,
//! applied between [`sync_step`]s that follow L1 (batches of `CheckpointProposed` events with the
//! decoded calldata, reorg detection, finalized tip, prunes).

mod actor;
mod error;
mod records;
mod store;
mod sync;

pub use actor::{
    ArchiverActor, ArchiverHandle, ArchiverTiming, COMMAND_QUEUE_CAPACITY, PRUNE_EVENTS_CAPACITY,
};
pub use error::ArchiverError;
pub use records::{CheckpointRecord, L1Ref, ProposedCheckpoint, RecordError, StoredBlock};
pub use store::{
    ArchiverStore, L1CheckpointInput, L1Outcome, ProposedCheckpointInput, PruneEvent, PruneKind,
};
pub use sync::{SyncConfig, SyncError, SyncReport, orphan_deadline, sync_step};
