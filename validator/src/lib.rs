//! The validator side of a tandem node.
//!
//! - Slashing protection ([`ProtectedSigner`]): the signer every duty signature of the node goes
//!   through (block proposals, checkpoint proposals, attestations), backed by an fsynced,
//!   locked RocksDB record. The sequencer and the validator handler sign through
//!   [`DutySigner`].
//! - The epoch cache ([`EpochCache`], filled by [`EpochCacheActor`]): committee per epoch and proposer per slot read from L1,
//!   served from memory as p2p's [`tandem_p2p::CommitteeSource`].
//!
//! The proposal handlers, the state service and the chain follower build on these.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod epochs;
mod error;
mod metrics;
mod protection;

pub use epochs::{
    CachedEpoch, CommitteeL1, EpochCache, EpochCacheActor, EpochCacheConfig, EpochCacheHandle,
    EpochCacheStatus, EpochState, MAX_EPOCH_CACHE_INTERVAL, MAX_RETAINED_PAST_EPOCHS,
    MIN_EPOCH_CACHE_INTERVAL,
};
pub use error::{ValidatorError, ValidatorResult};
pub use metrics::describe_metrics;
pub use protection::{Duty, DutySigner, OpenMode, ProtectedSigner, SignedDuty};
