//! The p2p slice of the node configuration, and the network constants gossip validation needs.

use std::{path::PathBuf, time::Duration};

use libp2p::Multiaddr;
use tandem_proto::{MAX_TXS_PER_BLOCK, SigningDomain, time::ConsensusWindows};

use crate::{
    reqresp::{BLOCKS_RATE_LIMIT, RateLimit, TXS_RATE_LIMIT},
    scoring::DEFAULT_BAN_DURATION,
    validation::TxRules,
};

/// Capacity of the queue from the swarm to gossip validation. Full → the message is ignored
/// (counted in `p2p_gossip_queue_dropped_total`).
pub const DEFAULT_GOSSIP_QUEUE_CAPACITY: usize = 4096;
/// Capacity of each handler lane (consensus, txs). Full → the accepted message is not handled
/// locally (counted in `p2p_handler_dropped_total`).
pub const DEFAULT_HANDLER_QUEUE_CAPACITY: usize = 256;
/// Capacity of the command channel into the swarm actor.
pub const SWARM_COMMAND_CAPACITY: usize = 1024;

/// Local p2p settings.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/40400`; port 0 picks a free port).
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses announced to peers instead of the listen addresses (behind NAT).
    pub announce_addrs: Vec<Multiaddr>,
    /// Peers dialed at start and whenever this node has fewer than `min_peers`.
    pub bootnodes: Vec<Multiaddr>,
    /// Most established connections.
    pub max_peers: u32,
    /// Below this many peers, bootnodes are redialed.
    pub min_peers: u32,
    /// The node key file; `None` uses a fresh key (tests, throwaway nodes).
    pub node_key_path: Option<PathBuf>,
    /// How long a banned peer stays banned.
    pub ban_duration: Duration,
    /// Gossipsub heartbeat.
    pub heartbeat_interval: Duration,
    /// See [`DEFAULT_GOSSIP_QUEUE_CAPACITY`].
    pub gossip_queue_capacity: usize,
    /// See [`DEFAULT_HANDLER_QUEUE_CAPACITY`].
    pub handler_queue_capacity: usize,
    /// Per-peer budget for txs-by-hash requests we serve.
    pub txs_rate_limit: RateLimit,
    /// Per-peer budget for blocks-by-range requests we serve.
    pub blocks_rate_limit: RateLimit,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen_addrs: vec!["/ip4/0.0.0.0/tcp/40400".parse().expect("valid multiaddr")],
            announce_addrs: Vec::new(),
            bootnodes: Vec::new(),
            max_peers: 50,
            min_peers: 1,
            node_key_path: None,
            ban_duration: DEFAULT_BAN_DURATION,
            heartbeat_interval: Duration::from_millis(700),
            gossip_queue_capacity: DEFAULT_GOSSIP_QUEUE_CAPACITY,
            handler_queue_capacity: DEFAULT_HANDLER_QUEUE_CAPACITY,
            txs_rate_limit: TXS_RATE_LIMIT,
            blocks_rate_limit: BLOCKS_RATE_LIMIT,
        }
    }
}

/// Network constants: every node of a network uses the same.
#[derive(Debug, Clone, Copy)]
pub struct NetworkParams {
    /// Chain id and rollup address signatures are bound to; the chain id names the topics.
    pub domain: SigningDomain,
    /// Consensus acceptance windows (from genesis, S, E, D).
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
