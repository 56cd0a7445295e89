//! Typed, versioned gossip topics: `/tandem/<chain_id>/<version>/<name>`.

use std::{fmt, str::FromStr};

use libp2p::gossipsub::{IdentTopic, TopicHash};
use tandem_proto::{BlockProposal, CheckpointAttestation, CheckpointProposal, Tx, WireMessage};

/// First path segment of every topic.
pub const TOPIC_PREFIX: &str = "tandem";
/// Version of the gossip encoding (prost + snappy). Bumped when any message format changes.
pub const TOPIC_VERSION: u32 = 1;

/// What a gossip topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GossipKind {
    /// Signed L2 transactions.
    Tx,
    /// Blocks of a checkpoint, gossiped as they are built (all but the last).
    BlockProposal,
    /// A proposer's checkpoint with its last block embedded.
    CheckpointProposal,
    /// Committee attestations to a checkpoint proposal.
    CheckpointAttestation,
}

impl GossipKind {
    /// The consensus topics (everything but txs).
    pub const CONSENSUS: [Self; 3] = [
        Self::BlockProposal,
        Self::CheckpointProposal,
        Self::CheckpointAttestation,
    ];

    /// Every kind, in a fixed order.
    pub const ALL: [Self; 4] = [
        Self::Tx,
        Self::BlockProposal,
        Self::CheckpointProposal,
        Self::CheckpointAttestation,
    ];

    /// The topic's last path segment, also the `topic` metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tx => "tx",
            Self::BlockProposal => "block_proposal",
            Self::CheckpointProposal => "checkpoint_proposal",
            Self::CheckpointAttestation => "checkpoint_attestation",
        }
    }

    /// Largest decompressed message accepted on this topic.
    pub const fn max_message_size(self) -> usize {
        match self {
            Self::Tx => Tx::MAX_ENCODED_SIZE,
            Self::BlockProposal => BlockProposal::MAX_ENCODED_SIZE,
            Self::CheckpointProposal => CheckpointProposal::MAX_ENCODED_SIZE,
            Self::CheckpointAttestation => CheckpointAttestation::MAX_ENCODED_SIZE,
        }
    }

    /// Largest compressed message that can decompress to at most [`Self::max_message_size`].
    pub fn max_transmit_size(self) -> usize {
        snap::raw::max_compress_len(self.max_message_size())
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for GossipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A topic of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GossipTopic {
    /// L2 chain id.
    pub chain_id: u64,
    /// Encoding version.
    pub version: u32,
    /// What it carries.
    pub kind: GossipKind,
}

/// Why a topic string is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {topic:?}: {reason}")]
pub struct TopicError {
    topic: String,
    reason: &'static str,
}

impl GossipTopic {
    /// The current-version topic of `kind` on chain `chain_id`.
    pub const fn new(chain_id: u64, kind: GossipKind) -> Self {
        Self {
            chain_id,
            version: TOPIC_VERSION,
            kind,
        }
    }

    /// The gossipsub topic.
    pub fn ident(&self) -> IdentTopic {
        IdentTopic::new(self.to_string())
    }

    /// The gossipsub topic hash.
    pub fn hash(&self) -> TopicHash {
        self.ident().hash()
    }
}

impl fmt::Display for GossipTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/{TOPIC_PREFIX}/{}/{}/{}",
            self.chain_id, self.version, self.kind
        )
    }
}

impl FromStr for GossipTopic {
    type Err = TopicError;

    fn from_str(topic: &str) -> Result<Self, Self::Err> {
        let error = |reason| TopicError {
            topic: topic.to_owned(),
            reason,
        };
        let mut parts = topic.split('/');
        if parts.next() != Some("") || parts.next() != Some(TOPIC_PREFIX) {
            return Err(error("does not start with /tandem/"));
        }
        let chain_id = parts
            .next()
            .and_then(|part| part.parse().ok())
            .ok_or_else(|| error("chain id is not a number"))?;
        let version = parts
            .next()
            .and_then(|part| part.parse().ok())
            .ok_or_else(|| error("version is not a number"))?;
        let name = parts.next().ok_or_else(|| error("no message name"))?;
        let kind = GossipKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| error("unknown message name"))?;
        if parts.next().is_some() {
            return Err(error("trailing path segments"));
        }
        Ok(Self {
            chain_id,
            version,
            kind,
        })
    }
}

/// The protocol prefix of the tx topic's gossipsub instance (`<prefix>/1.1.0`): txs travel on
/// their own substreams, so tx spam never queues in front of consensus messages. The consensus
/// topics use gossipsub's default protocol (`/meshsub/1.2.0`).
pub fn tx_gossip_protocol_prefix(chain_id: u64) -> String {
    format!("/{TOPIC_PREFIX}/{chain_id}/txsub")
}

/// The four topics of one network, with hash lookup for incoming messages.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    topics: [GossipTopic; 4],
    hashes: [TopicHash; 4],
}

impl Topics {
    pub(crate) fn new(chain_id: u64) -> Self {
        let topics = GossipKind::ALL.map(|kind| GossipTopic::new(chain_id, kind));
        let hashes = topics.each_ref().map(GossipTopic::hash);
        Self { topics, hashes }
    }

    pub(crate) fn kind_of(&self, hash: &TopicHash) -> Option<GossipKind> {
        GossipKind::ALL
            .into_iter()
            .find(|kind| &self.hashes[kind.index()] == hash)
    }

    pub(crate) fn hash(&self, kind: GossipKind) -> &TopicHash {
        &self.hashes[kind.index()]
    }

    pub(crate) fn topic(&self, kind: GossipKind) -> &GossipTopic {
        &self.topics[kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_round_trips_and_rejects_foreign_strings() {
        for kind in GossipKind::ALL {
            let topic = GossipTopic::new(31337, kind);
            let rendered = topic.to_string();
            assert_eq!(rendered, format!("/tandem/31337/1/{}", kind.name()));
            assert_eq!(rendered.parse::<GossipTopic>().unwrap(), topic);
        }
        for bad in [
            "",
            "/eth2/1/1/tx",
            "/tandem/x/1/tx",
            "/tandem/1/y/tx",
            "/tandem/1/1/blocks",
            "/tandem/1/1/tx/extra",
            "tandem/1/1/tx",
        ] {
            assert!(bad.parse::<GossipTopic>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn hash_lookup_is_per_chain() {
        let topics = Topics::new(7);
        for kind in GossipKind::ALL {
            assert_eq!(topics.kind_of(topics.hash(kind)), Some(kind));
            assert_eq!(topics.topic(kind).kind, kind);
        }
        let other = Topics::new(8);
        assert_eq!(topics.kind_of(other.hash(GossipKind::Tx)), None);
    }
}
