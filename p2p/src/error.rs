//! Errors of the p2p crate.

use std::{io, path::PathBuf};

use libp2p::{Multiaddr, TransportError};

use crate::validation::GossipInvalid;

/// Why the p2p service could not start or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// No all-nodes checkpoint handler was registered; every node must validate and store
    /// checkpoint proposals.
    #[error(
        "no all-nodes checkpoint handler registered: every node must handle checkpoint proposals"
    )]
    MissingAllNodesHandler,
    /// No block proposal handler was registered; without one a node stores no proposed blocks.
    #[error("no block proposal handler registered: every node must handle block proposals")]
    MissingBlockProposalHandler,
    /// The p2p configuration is inconsistent.
    #[error("invalid p2p configuration: {0}")]
    InvalidConfig(&'static str),
    /// A topic's validation queue holds fewer bytes than the topic's largest message: such
    /// messages would always be dropped, without a word.
    #[error(
        "invalid p2p configuration: the {topic} gossip queue holds {bytes} bytes, below the \
         topic's largest message ({largest} bytes compressed); raise it to at least that"
    )]
    QueueBelowLargestMessage {
        /// The topic.
        topic: &'static str,
        /// The configured byte bound.
        bytes: usize,
        /// The topic's largest message as carried.
        largest: usize,
    },
    /// The node key file could not be read or written.
    #[error("node key {path}: {source}")]
    NodeKeyIo {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The node key file does not hold an ed25519 key.
    #[error("node key {path}: not a libp2p ed25519 key ({reason})")]
    NodeKeyInvalid {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// What failed.
        source: TransportError<io::Error>,
    },
    /// The libp2p transport or a behaviour could not be built.
    #[error("cannot build the libp2p swarm: {0}")]
    Build(String),
    /// One of the service's tasks panicked or ended on its own: the service stops rather than
    /// run on half its parts.
    #[error("p2p task {task} failed: {reason}")]
    TaskFailed {
        /// Which task.
        task: &'static str,
        /// The panic message, or why it ended.
        reason: String,
    },
    /// The service stopped.
    #[error("the p2p service stopped")]
    Stopped,
}

/// Why publishing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No peer subscribes to the topic yet.
    #[error("no peers subscribed to the topic")]
    NoPeers,
    /// This exact message was published before.
    #[error("already published")]
    Duplicate,
    /// Larger than the topic allows.
    #[error("message too large for its topic")]
    TooLarge,
    /// Our own message breaks a rule every peer enforces.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Our own message's signature does not recover.
    #[error("the message's signature does not recover")]
    BadSignature,
    /// Peers would reject our own message (and charge this node for it): the gossip
    /// validation every node runs refused it. Not published, not pooled.
    #[error("peers would reject it: {0}")]
    WouldBeRejected(GossipInvalid),
    /// This node already sent a different message for the same duty (a second proposal for a
    /// slot and index, a second attestation for a slot): sending this one would hand every
    /// peer verifiable equivocation evidence against this node's key. Not published, not
    /// pooled.
    #[error("this node already sent a different message for the same duty")]
    OwnEquivocation,
    /// Gossipsub failed otherwise.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// The service stopped.
    #[error("the p2p service stopped")]
    Stopped,
}

/// Why a request to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No connected peer to ask.
    #[error("no connected peer to ask")]
    NoPeers,
    /// Every connected peer already has as many requests from this node as it may take (this
    /// node's own budget per peer); try again later.
    #[error("every peer has as many requests from this node as it may take")]
    Throttled,
    /// The request broke a local rule before being sent.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The peer answered with an error status.
    #[error("peer {peer} answered {status:?}")]
    Refused {
        /// The peer.
        peer: String,
        /// Its answer.
        status: crate::reqresp::ResponseStatus,
    },
    /// The peer's answer broke the protocol (unrequested or out-of-order items).
    #[error("peer {peer} sent a bad response: {reason}")]
    BadResponse {
        /// The peer.
        peer: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The answer is well formed but cannot be checked here (the slot's committee is not known,
    /// or L1 does not have the checkpoint yet). Not the peer's fault.
    #[error("cannot verify the answer of {peer}: {reason}")]
    Unverifiable {
        /// The peer.
        peer: String,
        /// What is missing.
        reason: &'static str,
    },
    /// The transport failed (timeout, closed connection, refused stream).
    #[error("request to {peer} failed: {reason}")]
    Failed {
        /// The peer.
        peer: String,
        /// What failed.
        reason: String,
    },
    /// The service stopped.
    #[error("the p2p service stopped")]
    Stopped,
}
