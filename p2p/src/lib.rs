//! Gossip and request/response over libp2p: typed topics, two-stage gossip validation, proposal
//! and attestation pools with equivocation detection, peer scoring, and the registry of the
//! handlers that receive validated proposals.
//!
//! Tasks: the swarm actor ([`P2pService`]) owns the swarm and does nothing CPU-heavy beyond
//! snappy; a processor task decodes, validates and pools gossip and sends exactly one verdict
//! per message back to the swarm; two handler lanes (consensus, txs) run the registered
//! [`Handlers`]. Everything else talks to the service through [`P2pHandle`].

mod committee;
mod config;
mod dispatch;
mod error;
mod handlers;
mod keys;
mod metrics;
mod peers;
mod pool;
mod processor;
pub mod reqresp;
pub mod scoring;
mod service;
mod topics;
mod transform;
mod validation;
mod verified;

pub use committee::{CommitteeSource, SlotDuty, StaticCommittee};
pub use config::{
    DEFAULT_GOSSIP_QUEUE_CAPACITY, DEFAULT_HANDLER_QUEUE_CAPACITY, NetworkParams, P2pConfig,
    SWARM_COMMAND_CAPACITY,
};
pub use error::{P2pError, PublishError, RequestError};
pub use handlers::{
    AllNodesCheckpointHandler, BlockProposalHandler, Handlers, HandlersBuilder, TxHandler,
    ValidatorCheckpointHandler,
};
pub use keys::load_or_create_node_key;
pub use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
pub use peers::{MAX_TRACKED_PEERS, PeerDecision, PeerManager};
pub use pool::{
    Admission, Equivocation, MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER, MAX_BLOCK_PROPOSALS_PER_KEY,
    MAX_CHECKPOINT_PROPOSALS_PER_SLOT, POOL_RETAINED_SLOTS, ProposalPool,
};
pub use processor::{Accepted, GossipPipeline, P2pEvent};
pub use service::{NetworkStatus, P2pDeps, P2pHandle, P2pService, PeerReputation};
pub use topics::{GossipKind, GossipTopic, TOPIC_PREFIX, TOPIC_VERSION, TopicError};
pub use validation::{
    GossipInvalid, GossipValidator, KNOWN_TXS_CAPACITY, LATE_OR_EARLY_IGNORE_MARGIN, TxRules,
};
pub use verified::Verified;
