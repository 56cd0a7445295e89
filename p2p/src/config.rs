//! The p2p slice of the node configuration, and the network constants gossip validation needs.

use std::{collections::HashSet, net::IpAddr, path::PathBuf, time::Duration};

use libp2p::Multiaddr;
use tandem_proto::{
    MAX_ATTESTATION_SIZE, MAX_PROPOSAL_SIZE, MAX_TX_SIZE, MAX_TXS_PER_BLOCK, SigningDomain,
    time::ConsensusWindows,
};

use crate::{
    error::P2pError,
    reqresp::{BLOCKS_RATE_LIMIT, RateLimit, TXS_RATE_LIMIT},
    scoring::DEFAULT_BAN_DURATION,
    topics::GossipKind,
    validation::TxRules,
};

/// Capacity of each handler lane's queue (txs; and the consensus dispatcher's input). Full tx
/// lane → the accepted tx is not handled locally (counted in `p2p_handler_dropped_total`); the
/// consensus dispatcher never drops (its producer waits, see `dispatch`).
pub const DEFAULT_HANDLER_QUEUE_CAPACITY: usize = 256;
/// Outbound slots reserved when `outbound_peers` is not set (and `max_peers` is at least twice
/// this).
pub const DEFAULT_OUTBOUND_PEERS: u32 = 10;
/// Capacity of the command channel into the swarm actor.
pub const SWARM_COMMAND_CAPACITY: usize = 1024;
/// Capacity of the consensus processor's own channel into the swarm actor (its verdicts and
/// publishes), which the swarm actor serves first.
pub const CONSENSUS_COMMAND_CAPACITY: usize = 256;
/// Capacity of the command channel into the consensus processor (publishing, quorum waits).
pub const PROCESSOR_COMMAND_CAPACITY: usize = 256;

/// How much one topic's validation queue may hold. Full (either bound) → the message is
/// ignored (counted in `p2p_gossip_queue_dropped_total{topic}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimit {
    /// Most queued messages.
    pub messages: usize,
    /// Most queued bytes (compressed, as received).
    pub bytes: usize,
}

/// One validation queue per topic, so tx spam cannot push out consensus messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Txs: many small messages.
    pub tx: QueueLimit,
    /// Block proposals: few, up to 10 MiB each.
    pub block_proposal: QueueLimit,
    /// Checkpoint proposals: about one per slot (their last block rides along).
    pub checkpoint_proposal: QueueLimit,
    /// Attestations: one per committee member per slot.
    pub attestation: QueueLimit,
}

impl QueueLimits {
    /// The limits of `kind`'s queue.
    pub const fn get(&self, kind: GossipKind) -> QueueLimit {
        match kind {
            GossipKind::Tx => self.tx,
            GossipKind::BlockProposal => self.block_proposal,
            GossipKind::CheckpointProposal => self.checkpoint_proposal,
            GossipKind::CheckpointAttestation => self.attestation,
        }
    }
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            tx: QueueLimit {
                messages: 4096,
                bytes: 32 * MAX_TX_SIZE,
            },
            // Room for several of the largest proposals at once.
            block_proposal: QueueLimit {
                messages: 64,
                bytes: 4 * MAX_PROPOSAL_SIZE,
            },
            checkpoint_proposal: QueueLimit {
                messages: 16,
                bytes: 3 * MAX_PROPOSAL_SIZE,
            },
            attestation: QueueLimit {
                messages: 2048,
                bytes: 256 * MAX_ATTESTATION_SIZE,
            },
        }
    }
}

/// Per-peer budget for gossiped txs: `burst` at once, `per_second` refill. Over budget → the tx
/// is ignored without penalty (counted in `p2p_gossip_rate_limited_total`). A burst of a full
/// 1 MiB block's worth of txs (~6,000) and twice the throughput of 6,000-tx blocks every 6 s,
/// so an honest peer relaying the whole network's txs stays within it.
pub const TX_GOSSIP_RATE_LIMIT: RateLimit = RateLimit {
    burst: 6000.0,
    per_second: 2000.0,
};

/// Local p2p settings.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/40400`; port 0 picks a free port).
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses announced to peers instead of the listen addresses (behind NAT).
    pub announce_addrs: Vec<Multiaddr>,
    /// Peers dialed at start and whenever this node has fewer than `min_peers`; also the entry
    /// points of discovery.
    pub bootnodes: Vec<Multiaddr>,
    /// Most established connections.
    pub max_peers: u32,
    /// Connections reserved for peers this node dials itself (inbound peers may use at most
    /// `max_peers − outbound_peers`); discovery dials until this many outbound peers. `None`:
    /// [`DEFAULT_OUTBOUND_PEERS`], at most half of `max_peers` (see
    /// [`Self::effective_outbound_peers`]).
    pub outbound_peers: Option<u32>,
    /// Below this many peers, bootnodes are redialed.
    pub min_peers: u32,
    /// Find peers beyond the bootnodes (Kademlia) and dial them into the outbound slots. Off:
    /// only bootnodes and peers that dial in (a fixed topology).
    pub discovery: bool,
    /// The node key file; `None` uses a fresh key (tests, throwaway nodes).
    pub node_key_path: Option<PathBuf>,
    /// How long a banned peer stays banned.
    pub ban_duration: Duration,
    /// Gossipsub heartbeat.
    pub heartbeat_interval: Duration,
    /// Peer maintenance: ban expiry, score refresh, discovery and dialing.
    pub maintenance_interval: Duration,
    /// Per-topic validation queue bounds.
    pub queues: QueueLimits,
    /// Capacity of each handler lane's queue.
    pub handler_queue_capacity: usize,
    /// Per-peer budget for gossiped txs.
    pub tx_gossip_rate_limit: RateLimit,
    /// Per-peer budget for txs-by-hash requests we serve.
    pub txs_rate_limit: RateLimit,
    /// Per-peer budget for block requests we serve (ranges, proposals, the proposed chain).
    pub blocks_rate_limit: RateLimit,
    /// Peers behind one IP beyond which gossipsub's colocation penalty applies.
    pub ip_colocation_threshold: u32,
    /// IPs exempt from the colocation penalty (a devnet's shared host).
    pub ip_colocation_whitelist: HashSet<IpAddr>,
}

impl P2pConfig {
    /// The outbound slots reserved: the configured number, or when unset
    /// [`DEFAULT_OUTBOUND_PEERS`] capped at half of `max_peers` (so a small `max_peers` keeps
    /// room for inbound peers without the operator having to set both).
    pub fn effective_outbound_peers(&self) -> u32 {
        self.outbound_peers
            .unwrap_or_else(|| DEFAULT_OUTBOUND_PEERS.min(self.max_peers / 2))
    }

    /// Refuses settings the service cannot run with (they would panic a channel or a timer, or
    /// leave no room for inbound peers), naming the setting.
    pub fn validate(&self) -> Result<(), P2pError> {
        if self.max_peers == 0 {
            return Err(P2pError::InvalidConfig("max_peers must be at least 1"));
        }
        if self.effective_outbound_peers() >= self.max_peers {
            return Err(P2pError::InvalidConfig(
                "outbound_peers must be less than max_peers (the rest is for inbound peers)",
            ));
        }
        if self.handler_queue_capacity == 0 {
            return Err(P2pError::InvalidConfig(
                "handler_queue_capacity must be at least 1",
            ));
        }
        if self.maintenance_interval.is_zero() || self.heartbeat_interval.is_zero() {
            return Err(P2pError::InvalidConfig(
                "maintenance_interval and heartbeat_interval must be above zero",
            ));
        }
        if GossipKind::ALL
            .iter()
            .any(|kind| self.queues.get(*kind).messages == 0)
        {
            return Err(P2pError::InvalidConfig(
                "every gossip queue must hold at least one message",
            ));
        }
        for kind in GossipKind::ALL {
            let (bytes, largest) = (self.queues.get(kind).bytes, kind.max_transmit_size());
            if bytes < largest {
                return Err(P2pError::QueueBelowLargestMessage {
                    topic: kind.name(),
                    bytes,
                    largest,
                });
            }
        }
        Ok(())
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen_addrs: vec!["/ip4/0.0.0.0/tcp/40400".parse().expect("valid multiaddr")],
            announce_addrs: Vec::new(),
            bootnodes: Vec::new(),
            max_peers: 50,
            outbound_peers: None,
            min_peers: 1,
            discovery: true,
            node_key_path: None,
            ban_duration: DEFAULT_BAN_DURATION,
            heartbeat_interval: Duration::from_millis(700),
            maintenance_interval: Duration::from_secs(5),
            queues: QueueLimits::default(),
            handler_queue_capacity: DEFAULT_HANDLER_QUEUE_CAPACITY,
            tx_gossip_rate_limit: TX_GOSSIP_RATE_LIMIT,
            txs_rate_limit: TXS_RATE_LIMIT,
            blocks_rate_limit: BLOCKS_RATE_LIMIT,
            ip_colocation_threshold: 8,
            ip_colocation_whitelist: HashSet::new(),
        }
    }
}

/// Network constants: every node of a network uses the same.
#[derive(Debug, Clone, Copy)]
pub struct NetworkParams {
    /// Chain id and rollup address signatures are bound to; the chain id names the topics.
    pub domain: SigningDomain,
    /// Consensus acceptance windows (from genesis, S, E, D); handler deadlines are their
    /// attestation deadlines.
    pub windows: ConsensusWindows,
    /// L2 slot duration (drives score decay and the duplicate cache).
    pub slot_duration: Duration,
    /// Stateless tx rules.
    pub tx_rules: TxRules,
    /// Most txs one block may hold.
    pub max_txs_per_block: usize,
}

impl NetworkParams {
    /// Parameters with the protocol's default block tx limit.
    pub const fn new(
        domain: SigningDomain,
        windows: ConsensusWindows,
        slot_duration: Duration,
        tx_rules: TxRules,
    ) -> Self {
        Self {
            domain,
            windows,
            slot_duration,
            tx_rules,
            max_txs_per_block: MAX_TXS_PER_BLOCK,
        }
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    #[test]
    fn outbound_slots_are_derived_from_a_small_max_peers_unless_set() {
        let small = P2pConfig {
            max_peers: 5,
            ..P2pConfig::default()
        };
        assert_eq!(small.effective_outbound_peers(), 2);
        assert!(small.validate().is_ok());
        assert_eq!(
            P2pConfig::default().effective_outbound_peers(),
            DEFAULT_OUTBOUND_PEERS
        );
        let one = P2pConfig {
            max_peers: 1,
            ..P2pConfig::default()
        };
        assert_eq!(one.effective_outbound_peers(), 0);
        assert!(one.validate().is_ok());
        let explicit = P2pConfig {
            max_peers: 5,
            outbound_peers: Some(4),
            ..P2pConfig::default()
        };
        assert_eq!(explicit.effective_outbound_peers(), 4);
        assert!(explicit.validate().is_ok());
    }

    #[test]
    fn settings_that_would_panic_or_starve_the_service_are_refused() {
        assert!(P2pConfig::default().validate().is_ok());
        let refused =
            |config: P2pConfig| matches!(config.validate(), Err(P2pError::InvalidConfig(_)));
        assert!(refused(P2pConfig {
            handler_queue_capacity: 0,
            ..P2pConfig::default()
        }));
        assert!(refused(P2pConfig {
            maintenance_interval: Duration::ZERO,
            ..P2pConfig::default()
        }));
        assert!(refused(P2pConfig {
            heartbeat_interval: Duration::ZERO,
            ..P2pConfig::default()
        }));
        // An explicit outbound reservation that leaves no inbound slot, and no peers at all.
        assert!(refused(P2pConfig {
            max_peers: 10,
            outbound_peers: Some(10),
            ..P2pConfig::default()
        }));
        assert!(refused(P2pConfig {
            max_peers: 0,
            ..P2pConfig::default()
        }));
        let mut queues = QueueLimits::default();
        queues.attestation.messages = 0;
        assert!(refused(P2pConfig {
            queues,
            ..P2pConfig::default()
        }));
    }

    #[test]
    fn a_queue_smaller_than_its_topics_largest_message_is_refused() {
        for kind in GossipKind::ALL {
            let largest = kind.max_transmit_size();
            let with_bytes = |bytes| {
                let mut config = P2pConfig::default();
                match kind {
                    GossipKind::Tx => config.queues.tx.bytes = bytes,
                    GossipKind::BlockProposal => config.queues.block_proposal.bytes = bytes,
                    GossipKind::CheckpointProposal => {
                        config.queues.checkpoint_proposal.bytes = bytes;
                    }
                    GossipKind::CheckpointAttestation => config.queues.attestation.bytes = bytes,
                }
                config.validate()
            };
            assert!(with_bytes(largest).is_ok(), "{kind:?}");
            let err = with_bytes(largest - 1).unwrap_err();
            assert!(
                matches!(
                    err,
                    P2pError::QueueBelowLargestMessage { topic, bytes, largest: reported }
                        if topic == kind.name() && bytes == largest - 1 && reported == largest
                ),
                "{kind:?}: {err}"
            );
            assert!(err.to_string().contains(kind.name()), "{err}");
        }
    }
}
