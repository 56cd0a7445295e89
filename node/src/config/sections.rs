//! The sections of the configuration that are not about the deployment: role and data dir,
//! p2p, sequencer budgets, keys, archiver, RPC and metrics, each with its defaults (the
//! publisher's is in `publisher.rs`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use tandem_proto::{Address, time::SequencerBudgets};

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

/// `[sequencer]`: local budgets; they shape this proposer's schedule, never consensus deadlines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SequencerConfig {
    /// L1 address credited for this node's checkpoints (defaults to the validator address).
    pub(crate) coinbase: Option<Address>,
    /// L2 address receiving fees (defaults to the validator address).
    pub(crate) fee_recipient: Option<Address>,
    /// Sync, proposer check and fork before the first block.
    #[serde(with = "humantime_serde")]
    pub(crate) checkpoint_init_time: Duration,
    /// Shortest block worth building.
    #[serde(with = "humantime_serde")]
    pub(crate) min_block_duration: Duration,
    /// Expected gossip propagation time.
    #[serde(with = "humantime_serde")]
    pub p2p_propagation_time: Duration,
    /// Assembling and signing the checkpoint after its last block.
    #[serde(with = "humantime_serde")]
    pub(crate) checkpoint_prepare_time: Duration,
    /// Time kept for the L1 tx in the non-pipelined mode.
    #[serde(with = "humantime_serde")]
    pub l1_publishing_time: Duration,
    /// Cap on blocks per checkpoint below what the timetable allows.
    pub(crate) max_blocks_per_checkpoint: Option<u32>,
    /// Most txs in one block. Unset: the most that keep a checkpoint of the timetable's full
    /// block count within the deployment's body cap (`Config::max_txs_per_block`), so the
    /// default fits every S, E, D and R.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_txs_per_block: Option<u32>,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        let budgets = SequencerBudgets::default();
        Self {
            coinbase: None,
            fee_recipient: None,
            checkpoint_init_time: budgets.checkpoint_init_time,
            min_block_duration: budgets.min_block_duration,
            p2p_propagation_time: budgets.p2p_propagation_time,
            checkpoint_prepare_time: budgets.checkpoint_prepare_time,
            l1_publishing_time: budgets.l1_publishing_time,
            max_blocks_per_checkpoint: None,
            max_txs_per_block: None,
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
    /// Sign attestations when in the committee.
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
    /// Address to listen on.
    pub(crate) listen_addr: SocketAddr,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
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
