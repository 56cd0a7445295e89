//! The validator side of a tandem node: what turns gossip into chain on every node, and what
//! a validator signs with.
//!
//! - [`StateService`]: the one owner (and only writer) of the world state and the tx pool; its
//!   chain follower keeps both equal to the archiver's proposed chain.
//! - [`BlockProposalProcessor`] (p2p's block handler, every node): re-executes a block
//!   proposal on a fork of its parent, hands the executed block to the state service and
//!   stores the block as a proposed block.
//! - [`AllNodesCheckpointProcessor`] (every node): validates a checkpoint proposal against the
//!   stored blocks and only then stores it as a proposed checkpoint.
//! - [`AttestingProcessor`] (validators): attests a validated proposal through the
//!   slashing-protected [`DutySigner`].
//! - [`TxGossipHandler`]: gossiped txs into the pool.
//! - [`catch_up`]: a node that starts late fetches the proposed chain from peers and runs it
//!   through the block handler, and the proposed checkpoints served with it through the
//!   all-nodes handler.
//! - Fees ([`FeeBasis`], [`required_fee_per_mana`], over a [`FeeOracle`] such as
//!   [`L1FeeOracle`]): the fee per mana L1 will require of a checkpoint, predicted over proposed
//!   parents as the publisher's simulation plan does; the block handler checks it, the sequencer
//!   builds with it.
//! - Slashing protection ([`ProtectedSigner`]): the signer every duty signature of the node goes
//!   through (block proposals, checkpoint proposals, attestations), backed by an fsynced,
//!   locked RocksDB record. The sequencer and the validator handler sign through
//!   [`DutySigner`].
//! - The epoch cache ([`EpochCache`], filled by [`EpochCacheActor`]): committee per epoch and
//!   proposer per slot read from L1, served from memory as p2p's
//!   [`tandem_p2p::CommitteeSource`].
//!
//! The handlers share a [`ValidatorContext`] (stores, network, clock, windows) and report every
//! verdict as a [`ValidatorEvent`].
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod archive;
mod attest;
mod block;
mod catchup;
mod checkpoint;
mod context;
mod epochs;
mod error;
mod fees;
mod metrics;
mod protection;
mod provider;
mod recent;
mod state;
mod txs;
mod wait;

pub use archive::{ChainArchive, PeerNetwork};
pub use attest::AttestingProcessor;
pub use block::{BlockProposalProcessor, BlockRejection, StateMismatch};
pub use catchup::{CATCH_UP_BLOCK_BUDGET, CatchUpReport, MAX_CATCH_UP_ROUNDS, catch_up};
pub use checkpoint::{
    AllNodesCheckpointProcessor, CheckpointAccepted, CheckpointRejection, CheckpointRules,
    CheckpointVerdict,
};
pub use context::{BlockOutcome, VALIDATOR_EVENTS_CAPACITY, ValidatorContext, ValidatorEvent};
pub use epochs::{
    CachedEpoch, CommitteeL1, EpochCache, EpochCacheActor, EpochCacheConfig, EpochCacheHandle,
    EpochCacheStatus, EpochState, MAX_EPOCH_CACHE_INTERVAL, MAX_RETAINED_PAST_EPOCHS,
    MIN_EPOCH_CACHE_INTERVAL,
};
pub use error::{ValidatorError, ValidatorResult};
pub use fees::{
    FEE_HEADER_CACHE_CAPACITY, FEE_READ_ATTEMPTS, FEE_READ_RETRY_DELAY, FEE_READ_TIMEOUT, FeeBasis,
    FeeOracle, FeeUnknown, L1FeeOracle, MAX_PROPOSED_FEE_DEPTH, required_fee_per_mana,
};
pub use metrics::describe_metrics;
pub use protection::{Duty, DutySigner, OpenMode, ProtectedSigner, SignedDuty};
pub use provider::ArchiverChainProvider;
pub use state::{
    EXECUTED_BLOCKS_CAPACITY, FollowerCounts, FollowerStatus, GOSSIP_TX_QUEUE_CAPACITY, Readiness,
    STATE_COMMAND_CAPACITY, StallReason, StateHandle, StateReader, StateService,
    StateServiceConfig,
};
pub use txs::TxGossipHandler;
