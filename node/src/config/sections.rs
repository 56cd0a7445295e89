//! The sections of the configuration that are not about the deployment: role and data dir,
//! p2p, keys, archiver, RPC and metrics, each with its defaults (the
//! publisher's is in `publisher.rs`, the sequencer's in `sequencer.rs`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// What the node does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// Follows the chain from gossip and L1.
    #[default]
    FullNode,
    /// Also proposes when elected and attests when in the committee.
    Validator,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// `full_node` or `validator`.
    pub(crate) role: Role,
    /// Where the node keeps its databases and its p2p key.
    pub(crate) data_dir: PathBuf,
    /// tracing filter, e.g. `info` or `info,p2p=debug`. `RUST_LOG` wins when set.
    pub(crate) log_filter: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            role: Role::FullNode,
            data_dir: PathBuf::from("./tandem-data"),
            log_filter: "info".into(),
        }
    }
}

/// `[p2p]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct P2pConfig {
    /// TCP address to listen on.
    pub(crate) listen_addr: SocketAddr,
    /// Multiaddrs to announce instead of the listen address (behind NAT).
    pub(crate) announce_addrs: Vec<String>,
    /// Multiaddrs (with `/p2p/<peer id>`) to dial at startup.
    pub(crate) bootnodes: Vec<String>,
    /// Most connected peers.
    pub(crate) max_peers: u32,
    /// Below this many peers the bootnodes are dialed again (every 5 s).
    pub(crate) min_peers: u32,
    /// How long a peer that misbehaved past the ban threshold stays banned.
    #[serde(with = "humantime_serde")]
    pub(crate) ban_duration: Duration,
    /// Find peers beyond the bootnodes (Kademlia, identify). Off: only the bootnodes and peers
    /// that dial in, a fixed topology (the scenario harness routes every link through a proxy).
    pub(crate) discovery: bool,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 40400)),
            announce_addrs: Vec::new(),
            bootnodes: Vec::new(),
            max_peers: 50,
            min_peers: 4,
            ban_duration: Duration::from_secs(24 * 60 * 60),
            discovery: true,
        }
    }
}

impl P2pConfig {
    /// Where the node's libp2p identity lives.
    pub(crate) fn node_key_path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("p2p").join("node.key")
    }

    pub(super) fn problems(&self, mut problem: impl FnMut(&'static str, String)) {
        if self.max_peers == 0 {
            problem("p2p.max_peers", "must be at least 1".into());
        }
        if self.min_peers > self.max_peers {
            problem(
                "p2p.min_peers",
                format!(
                    "{} exceeds p2p.max_peers ({})",
                    self.min_peers, self.max_peers
                ),
            );
        }
        for addr in &self.announce_addrs {
            if let Err(err) = addr.parse::<tandem_p2p::Multiaddr>() {
                problem(
                    "p2p.announce_addrs",
                    format!("{addr:?} is not a multiaddr: {err}"),
                );
            }
        }
        for addr in &self.bootnodes {
            match addr.parse::<tandem_p2p::Multiaddr>() {
                Err(err) => problem(
                    "p2p.bootnodes",
                    format!("{addr:?} is not a multiaddr: {err}"),
                ),
                Ok(parsed) => {
                    if !parsed
                        .iter()
                        .any(|part| matches!(part, tandem_p2p::Protocol::P2p(_)))
                    {
                        problem(
                            "p2p.bootnodes",
                            format!(
                                "{addr:?} lacks /p2p/<peer id> (print it with `tandem keys p2p-id`)"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// `[validator]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ValidatorConfig {
    /// Encrypted Ethereum keystore of the validator key (`tandem keys new`).
    pub(crate) keystore: Option<PathBuf>,
    /// File holding the keystore password.
    pub(crate) password_file: Option<PathBuf>,
    /// Attest to other proposers' checkpoints when in the committee. Off, this node's own
    /// sequencer still signs its own checkpoints (its proposal counts as its attestation).
    pub(crate) attest: bool,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            keystore: None,
            password_file: None,
            attest: true,
        }
    }
}

/// `[archiver]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ArchiverConfig {
    /// L1 blocks to wait before trusting an L1 block's events.
    pub l1_confirmations: u64,
    /// Most L1 blocks per log query.
    pub l1_batch_size: u64,
    /// How often to poll L1 for new blocks.
    #[serde(with = "humantime_serde")]
    pub l1_poll_interval: Duration,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            l1_confirmations: 0,
            l1_batch_size: 1_000,
            l1_poll_interval: Duration::from_secs(1),
        }
    }
}

/// `[rpc]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RpcConfig {
    /// Serve JSON-RPC, `/health` and `/ready`.
    pub(crate) enabled: bool,
    /// Address to listen on (HTTP and WebSocket on the same port).
    pub(crate) listen_addr: SocketAddr,
    /// Largest request body, in bytes; a larger one is refused before it is parsed.
    pub(crate) max_request_bytes: u32,
    /// Largest response body, in bytes.
    pub(crate) max_response_bytes: u32,
    /// Most calls in one batch request.
    pub(crate) max_batch_size: u32,
    /// Most simultaneous connections (HTTP and WebSocket).
    pub(crate) max_connections: u32,
    /// Most subscriptions one WebSocket connection may hold.
    pub(crate) max_subscriptions_per_connection: u32,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // A tx is ~200 bytes; a batch of 100 of them fits many times over.
            max_request_bytes: 256 * 1024,
            // A block with its txs can be large (up to the body cap of its checkpoint).
            max_response_bytes: 16 * 1024 * 1024,
            max_batch_size: 100,
            max_connections: 256,
            max_subscriptions_per_connection: 16,
        }
    }
}

impl RpcConfig {
    pub(super) fn problems(&self, mut problem: impl FnMut(&'static str, String)) {
        for (key, value) in [
            ("rpc.max_request_bytes", self.max_request_bytes),
            ("rpc.max_response_bytes", self.max_response_bytes),
            ("rpc.max_batch_size", self.max_batch_size),
            ("rpc.max_connections", self.max_connections),
            (
                "rpc.max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
        ] {
            if value == 0 {
                problem(key, "must be at least 1".into());
            }
        }
    }
}

#[cfg(test)]
mod rpc_tests {
    use super::*;

    #[test]
    fn every_rpc_limit_must_be_at_least_one() {
        let config = RpcConfig {
            max_request_bytes: 0,
            max_response_bytes: 0,
            max_batch_size: 0,
            max_connections: 0,
            max_subscriptions_per_connection: 0,
            ..RpcConfig::default()
        };
        let mut keys = Vec::new();
        config.problems(|key, message| {
            assert_eq!(message, "must be at least 1");
            keys.push(key);
        });
        assert_eq!(
            keys,
            [
                "rpc.max_request_bytes",
                "rpc.max_response_bytes",
                "rpc.max_batch_size",
                "rpc.max_connections",
                "rpc.max_subscriptions_per_connection",
            ]
        );
        let mut none = true;
        RpcConfig::default().problems(|_, _| none = false);
        assert!(none);
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Serve Prometheus metrics at `/metrics`.
    pub(crate) enabled: bool,
    /// Address to listen on.
    pub(crate) listen_addr: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}
