//! Gossip and request/response over libp2p: typed topics, two-stage gossip validation,
//! proposal and attestation pools with equivocation evidence, peer scoring and discovery, and
//! the dispatch of validated proposals to the node's handlers.
//!
//! Tasks, all started and supervised by [`P2pService::run`]: the swarm actor owns the swarm and
//! routes gossip into per-topic queues bounded by count and bytes; the consensus processor
//! (proposals, attestations, own publishing, quorum waits) and the tx processor validate off the
//! async workers (the blocking pool; txs on a low-priority thread of their own) and send exactly
//! one verdict per message back (the consensus processor on a
//! channel the swarm actor serves first, so its verdicts never queue behind tx verdicts); txs
//! travel on a gossipsub instance of their own, so tx spam never shares a send queue with
//! consensus messages; the dispatcher hands accepted
//! proposals to the [`Handlers`] in per-slot lanes with deadlines; the tx lane feeds the tx
//! handler. Everything else talks to the service through [`P2pHandle`].

mod committee;
mod config;
mod deadline;
mod dispatch;
mod error;
mod events;
mod evidence;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod handlers;
mod keys;
mod metrics;
mod peers;
mod pipeline;
mod pool;
mod processor;
mod queues;
mod recent;
pub mod reqresp;
pub mod scoring;
mod service;
mod snappy;
mod topics;
mod validation;
mod verified;

pub use committee::{CommitteeSource, SlotDuty, StaticCommittee};
pub use config::{
    CONSENSUS_COMMAND_CAPACITY, DEFAULT_HANDLER_QUEUE_CAPACITY, DEFAULT_OUTBOUND_PEERS,
    NetworkParams, P2pConfig, PROCESSOR_COMMAND_CAPACITY, QueueLimit, QueueLimits,
    SWARM_COMMAND_CAPACITY, TX_GOSSIP_RATE_LIMIT,
};
pub use dispatch::{MAX_DISPATCH_BYTES, MISSING_BLOCK_GRACE};
pub use error::{P2pError, PublishError, RequestError};
pub use events::{HandlerKind, P2pEvent};
pub use evidence::{Duty, Equivocation, EvidenceError, SignedMessage};
pub use handlers::{
    AllNodesCheckpointHandler, BlockProposalHandler, Handlers, HandlersBuilder, TxHandler,
    ValidatorCheckpointHandler,
};
pub use keys::load_or_create_node_key;
pub use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
pub use peers::{MAX_TRACKED_PEERS, PeerDecision, PeerManager, Standing};
pub use pipeline::{Accepted, GossipPipeline};
pub use pool::{
    Admission, MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER, MAX_BLOCK_PROPOSALS_PER_KEY,
    MAX_CHECKPOINT_PROPOSALS_PER_SLOT, MAX_PROPOSERS_PER_SLOT, POOL_RETAINED_SLOTS, ProposalPool,
};
pub use service::{
    CollectedAttestation, DiscoveryStatus, NetworkStatus, P2pDeps, P2pHandle, P2pService,
    PeerReputation, TopicCounters,
};
pub use snappy::{SnappyError, compress as compress_gossip_payload};
pub use topics::{
    GossipKind, GossipTopic, TOPIC_PREFIX, TOPIC_VERSION, TopicError, tx_gossip_protocol_prefix,
};
pub use validation::{
    GossipInvalid, GossipValidator, KNOWN_TXS_CAPACITY, LATE_OR_EARLY_IGNORE_MARGIN, TxRules,
};
pub use verified::Verified;
