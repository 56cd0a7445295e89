//! What turns gossip into chain on every node.
//!
//! - [`StateService`]: the one owner (and only writer) of the world state and the tx pool; its
//!   chain follower keeps both equal to the archiver's proposed chain.
//! - [`BlockProposalProcessor`] (p2p's block handler, every node): re-executes a block
//!   proposal on a fork of its parent, hands the executed block to the state service and
//!   stores the block as a proposed block.
//! - [`AllNodesCheckpointProcessor`] (every node): validates a checkpoint proposal against the
//!   stored blocks and only then stores it as a proposed checkpoint.
//! - [`AttestingProcessor`] (validators): attests a validated proposal through a
//!   slashing-protected [`AttestationSigner`].
//! - [`TxGossipHandler`]: gossiped txs into the pool.
//! - [`catch_up`]: a node that starts late fetches the proposed chain from peers and runs it
//!   through the block handler.
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
mod error;
mod metrics;
mod provider;
mod recent;
mod state;
mod txs;
mod wait;

pub use archive::{ChainArchive, PeerNetwork};
pub use attest::{AttestationSigner, AttestingProcessor};
pub use block::{BlockProposalProcessor, BlockRejection, StateMismatch};
pub use catchup::{CatchUpReport, MAX_CATCH_UP_ROUNDS, catch_up};
pub use checkpoint::{
    AllNodesCheckpointProcessor, CheckpointAccepted, CheckpointRejection, CheckpointRules,
    CheckpointVerdict,
};
pub use context::{BlockOutcome, VALIDATOR_EVENTS_CAPACITY, ValidatorContext, ValidatorEvent};
pub use error::{ValidatorError, ValidatorResult};
pub use provider::ArchiverChainProvider;
pub use state::{
    EXECUTED_BLOCKS_CAPACITY, FollowerCounts, FollowerStatus, GOSSIP_TX_QUEUE_CAPACITY, Readiness,
    STATE_COMMAND_CAPACITY, StallReason, StateHandle, StateReader, StateService,
    StateServiceConfig,
};
pub use txs::TxGossipHandler;
