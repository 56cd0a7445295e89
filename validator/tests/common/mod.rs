//! Shared fixtures for the validator's tests: a network on a shared `ManualClock` whose slot-10
//! proposal window is open at the start, funded users, nodes (real archiver and world state on
//! RocksDB in a temp dir, the state service, the handlers, optionally a real libp2p swarm on
//! 127.0.0.1), a proposer that builds real blocks on its own world state, the node's real
//! slashing-protected signer in a temp dir, and ([`duties`]) duties signed through it with a
//! chosen digest variant.
// Each test binary uses part of the fixtures: unused items and re-exports are expected.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod anvil;
pub mod duties;
mod net;
mod node;
mod proposal;
mod stores;

pub use net::*;
pub use node::*;
pub use proposal::*;
pub use stores::*;

use std::{path::Path, sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    ArchiverActor, ArchiverHandle, ArchiverReader, ArchiverStore, ArchiverTiming, L1Block,
    L1CheckpointEvent, L1Future, L1Source, ProposedBlock, ProposedCheckpointInput, SyncConfig,
};
use tandem_l1::{FeeHeader, FeeParams};
use tandem_p2p::{
    GossipKind, HandlersBuilder, Multiaddr, NetworkParams, P2pConfig, P2pDeps, P2pHandle,
    P2pService, PeerId, RequestError, StaticCommittee, TxRules,
    reqresp::{ChainBlock, ChainPoint},
    scoring::PeerAction,
};
use tandem_proto::{
    Address, B256, BlockProposal, CheckpointProposal, ConsensusPayload,
    DEFAULT_MAX_CHECKPOINT_BODY_BYTES, RecoveredTx, SignatureKind, SigningDomain, SigningKey, Tx,
    TxPayload,
    archive::ArchiveTree,
    time::{Clock, ConsensusWindows, ManualClock, PipeliningMode, Slot, SlotClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, CheckpointBodyBudget, ExecutedBlock, PoolConfig, TxPool,
    WorldState, WorldStateConfig, build_block, validate_stateless,
};
use tandem_validator::{
    AllNodesCheckpointProcessor, ArchiverChainProvider, AttestingProcessor, BlockProposalProcessor,
    CheckpointRules, FeeOracle, OpenMode, PeerNetwork, ProtectedSigner, StateHandle, StateService,
    StateServiceConfig, TxGossipHandler, ValidatorContext, ValidatorEvent, ValidatorResult,
};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
