//! The chain store: blocks, checkpoints mined on L1, proposed checkpoints (gossiped and
//! validated, not on L1 yet) and the chain tips, on RocksDB.
//!
//! - [`ArchiverStore`] is the single writer. It enforces the insertion rules (a block for
//!   checkpoint N+1 is accepted on top of proposed checkpoint N; proposed checkpoints are
//!   strictly sequential and seal their block set), reconciles with L1 (promote a matching
//!   proposed checkpoint, evict diverging ones, write blocks from the L1 body for a node that
//!   never saw them, roll back on an L1 reorg, keep L1 checkpoints whose body cannot be used as
//!   facts awaiting it) and prunes blocks whose checkpoint can no longer land. Every removal
//!   commits a [`PruneEvent`] the world state and the tx pool roll back with.
//! - [`ArchiverReader`] reads consistent snapshots of the same database from any thread,
//!   never queueing behind the writer.
//! - [`ArchiverActor`] owns the store: a bounded queue of proposed blocks and checkpoints, and
//!   L1 followed through the narrow [`L1Source`] trait, read in a separate task and applied one
//!   write at a time between queued items.
//!
//! Outcomes a handler can act on: storing what is already stored is [`Added::AlreadyStored`];
//! every error has a [`Disposition`] (retry later, reject, fatal).

mod actor;
mod awaiting;
mod chain;
mod codec;
mod error;
mod fetch;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod inputs;
mod l1_source;
mod proposed;
mod prune;
mod reader;
mod reconcile;
mod records;
mod rules;
mod senders;
mod store;
mod sync;
mod tables;
mod txindex;

pub use actor::{
    ArchiverActor, ArchiverHandle, ArchiverTiming, COMMAND_QUEUE_CAPACITY, CheckpointBodySource,
    FetchedCheckpointBody, MAX_ORPHAN_HOLD, MAX_ORPHAN_HOLDS, PRUNE_EVENTS_CAPACITY,
};
pub use awaiting::{L1EventOutcome, L1SyncStatus};
pub use error::{ArchiverError, ArchiverResult, Disposition};
pub use prune::{PruneEvent, PruneKind};
pub use reader::{ArchiverReader, ReadView, TxInBlock};
pub use records::{
    AwaitingCheckpoint, BodyProblem, CheckpointRecord, L1CheckpointEvent, L1Ref, PayloadSource,
    ProposeCalldata, ProposedCheckpoint, RecordError, StoredBlock, StoredHeader,
};
pub use rules::DEFAULT_MAX_PROPOSED_DEPTH;
pub use senders::RecoveredBlocks;
pub use store::{
    Added, ArchiverStore, L1CheckpointInput, L1Outcome, ProposedBlock, ProposedCheckpointInput,
};
pub use sync::{
    L1Block, L1Future, L1Source, L1Step, L1Update, PruneContext, StepOutcome, SyncConfig,
    SyncReport, apply_l1_step, fetch_l1_update, orphan_deadline, prune, prune_orphans,
    prune_uncheckpointed, sync_step,
};
pub use tables::WalSync;
