//! World state and execution.
//!
//! - [`WorldState`]: accounts (balance, nonce) committed to by a compact sparse Merkle tree,
//!   persisted in RocksDB, with a retained version per recent block, O(1) forks on any retained
//!   block, `apply_block` and `rollback_to` (cost proportional to what is undone).
//! - [`TxPool`]: validated txs, fee-ordered, with nonce gaps held, limits and eviction.
//! - [`build_block`] and [`reexecute`]: the sequencer builds, validators re-execute; both on a
//!   [`Fork`], both produce an [`ExecutedBlock`] the world state applies without executing again.
//!
//! Why this tree: the commitment must not depend on the order accounts were first touched, and
//! updates must cost O(log n), not a rebuild. A naive 256-level sparse Merkle tree costs ~75 µs per
//! update here; a compact one (a leaf sits as high as its key prefix is unique) is canonical and
//! costs ~log2(n) hashes (~20 at a million accounts). Held as a persistent `Arc` tree, every
//! version is shared structurally, which is what makes forks and retained versions cheap. An
//! external Jellyfish Merkle tree would give the same properties plus versioned on-disk nodes, at
//! the price of a large dependency and a storage layout we do not need: the flat account table
//! and undo logs in RocksDB are enough to rebuild the tree at open (~1 s per million accounts).

mod account;
mod builder;
mod exec;
mod fork;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod pool;
mod records;
mod reexec;
mod smt;
mod spec;
mod world;

pub use account::Account;
pub use builder::{
    BlockGlobals, BuildLimits, BuildStop, BuiltBlock, CandidateTxs, CheckpointBodyBudget,
    DEADLINE_CHECK_EVERY, TxSource, block_body_bytes, build_block,
};
pub use exec::{TX_MANA, TxError, max_cost, validate_stateful, validate_stateless};
pub use fork::Fork;
pub use pool::{AddOutcome, BestTxs, PoolConfig, PoolError, ProtectionGuard, Protections, TxPool};
pub use reexec::{ReexecutionError, recover_txs, reexecute};
pub use world::{
    ChainSpec, DEFAULT_HISTORY_MARGIN, ExecutedBlock, StateError, StateTip, WorldState,
    WorldStateConfig,
};
