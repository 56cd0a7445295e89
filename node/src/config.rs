//! The node's TOML configuration: one section per component, real defaults, human durations.
//!
//! Precedence: built-in defaults < file < environment (`TANDEM__SECTION__KEY`) < CLI flags. Every
//! error names where the bad value came from (file or variable), the key, and what was expected.
//! [`Config::validate`] checks cross-field rules before anything starts.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tandem_proto::{
    Address,
    time::{NonPipelinedBudgets, PipelinedBudgets, SlotClock, Timestamp, Timetable},
};

mod publisher;

pub(crate) use publisher::PublisherConfig;

/// Prefix of environment overrides: `TANDEM__P2P__MAX_PEERS=80`.
pub(crate) const ENV_PREFIX: &str = "TANDEM__";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value has the wrong type or an unknown key was used.
    #[error("{origin}: {key}: {message}")]
    Value {
        /// The file or environment variable the value came from.
        origin: String,
        /// Dotted key path (`sequencer.block_duration`).
        key: String,
        /// What was wrong.
        message: String,
    },
    /// An environment override does not have the `TANDEM__SECTION__KEY` shape.
    #[error("{var}: expected {ENV_PREFIX}SECTION__KEY")]
    EnvShape {
        /// The variable.
        var: String,
    },
    /// Cross-field validation failed.
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One failed validation rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub(crate) struct Problem {
    /// The key at fault.
    pub(crate) key: &'static str,
    /// What is wrong and what is expected.
    pub(crate) message: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Role, data directory, logging.
    pub(crate) node: NodeConfig,
    /// Network constants; must match the rollup deployment every node uses.
    pub(crate) protocol: ProtocolConfig,
    /// L1 access.
    pub l1: L1Config,
    /// Gossip networking.
    pub p2p: P2pConfig,
    /// Block building (validators).
    pub(crate) sequencer: SequencerConfig,
    /// Attesting (validators).
    pub(crate) validator: ValidatorConfig,
    /// L1 submission (validators).
    pub(crate) publisher: PublisherConfig,
    /// Chain store and L1 sync.
    pub(crate) archiver: ArchiverConfig,
    /// JSON-RPC server.
    pub(crate) rpc: RpcConfig,
    /// Prometheus endpoint.
    pub(crate) metrics: MetricsConfig,
}

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

/// `[protocol]`: constants all nodes of a network share. They come from the rollup deployment;
/// a node with different values would disagree with its peers on every deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ProtocolConfig {
    /// L2 chain id, bound into every signature.
    pub(crate) chain_id: u64,
    /// Rollup version carried in block headers.
    pub(crate) rollup_version: u32,
    /// L1 timestamp (seconds) of the start of slot 0. Required to run.
    pub(crate) genesis_time: Option<u64>,
    /// L2 slot duration S; a multiple of `l1_slot_duration`.
    #[serde(with = "humantime_serde")]
    pub(crate) slot_duration: Duration,
    /// L1 block interval E.
    #[serde(with = "humantime_serde")]
    pub l1_slot_duration: Duration,
    /// Block (sub-slot) duration D; consensus deadlines depend on it.
    #[serde(with = "humantime_serde")]
    pub(crate) block_duration: Duration,
    /// Slots per epoch (one committee per epoch).
    pub(crate) epoch_duration: u64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            chain_id: 1337,
            rollup_version: 1,
            genesis_time: None,
            slot_duration: Duration::from_secs(72),
            l1_slot_duration: Duration::from_secs(12),
            block_duration: Duration::from_secs(6),
            epoch_duration: 32,
        }
    }
}

/// `[l1]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct L1Config {
    /// JSON-RPC endpoint of the L1 node.
    pub(crate) rpc_url: String,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
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

    fn problems(&self, mut problem: impl FnMut(&'static str, String)) {
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
    /// Build for the next slot during the current one (the production mode). `false` runs the
    /// non-pipelined baseline.
    pub(crate) pipelining: bool,
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
    /// Most txs in one block.
    pub(crate) max_txs_per_block: u32,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        let pipelined = PipelinedBudgets::default();
        let baseline = NonPipelinedBudgets::default();
        Self {
            pipelining: true,
            coinbase: None,
            fee_recipient: None,
            checkpoint_init_time: pipelined.checkpoint_init_time,
            min_block_duration: pipelined.min_block_duration,
            p2p_propagation_time: pipelined.p2p_propagation_time,
            checkpoint_prepare_time: pipelined.checkpoint_prepare_time,
            l1_publishing_time: baseline.l1_publishing_time,
            max_blocks_per_checkpoint: None,
            max_txs_per_block: 1_000,
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

/// Overrides from CLI flags; `None` leaves the value alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct CliOverrides {
    /// `--role`.
    pub(crate) role: Option<Role>,
    /// `--data-dir`.
    pub(crate) data_dir: Option<PathBuf>,
    /// `--p2p-listen`.
    pub p2p_listen: Option<SocketAddr>,
    /// `--rpc-listen`.
    pub(crate) rpc_listen: Option<SocketAddr>,
    /// `--metrics-listen`.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// `--genesis-time`.
    pub(crate) genesis_time: Option<u64>,
}

impl Config {
    /// Loads defaults, then `file` (if any), then `TANDEM__*` variables from `env`, then `cli`.
    pub(crate) fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &CliOverrides,
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        let mut config = Self::default();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                file: file.to_path_buf(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|err| ConfigError::Syntax {
                    file: file.to_path_buf(),
                    message: err.to_string().trim_end().to_string(),
                })?;
            config = deserialize(&table, &file.display().to_string())?;
        }
        // Sorted so the first reported error does not depend on the environment's order.
        let overrides: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        for (var, raw) in overrides {
            let path = env_key_path(&var)?;
            insert_path(&mut table, &path, parse_env_value(&raw));
            // Deserialize after each variable so an error names the variable that caused it.
            config = deserialize(&table, &var)?;
        }
        config.apply(cli);
        Ok(config)
    }

    fn apply(&mut self, cli: &CliOverrides) {
        if let Some(role) = cli.role {
            self.node.role = role;
        }
        if let Some(dir) = &cli.data_dir {
            self.node.data_dir.clone_from(dir);
        }
        if let Some(addr) = cli.p2p_listen {
            self.p2p.listen_addr = addr;
        }
        if let Some(addr) = cli.rpc_listen {
            self.rpc.listen_addr = addr;
        }
        if let Some(addr) = cli.metrics_listen {
            self.metrics.listen_addr = addr;
        }
        if let Some(genesis) = cli.genesis_time {
            self.protocol.genesis_time = Some(genesis);
        }
    }

    /// The slot clock of the configured network (genesis 0 when not set, for schedules that only
    /// need relative times).
    pub(crate) fn slot_clock(&self) -> Result<SlotClock, tandem_proto::time::SlotClockError> {
        let p = &self.protocol;
        SlotClock::new(
            Timestamp::from_secs(p.genesis_time.unwrap_or(0)),
            p.slot_duration,
            p.l1_slot_duration,
            p.epoch_duration,
        )
    }

    /// The pipelined budgets from `[sequencer]`.
    pub(crate) fn pipelined_budgets(&self) -> PipelinedBudgets {
        let s = &self.sequencer;
        PipelinedBudgets {
            checkpoint_init_time: s.checkpoint_init_time,
            min_block_duration: s.min_block_duration,
            p2p_propagation_time: s.p2p_propagation_time,
            checkpoint_prepare_time: s.checkpoint_prepare_time,
        }
    }

    /// The non-pipelined budgets from `[sequencer]` (prepare time doubles as assemble time).
    pub(crate) fn non_pipelined_budgets(&self) -> NonPipelinedBudgets {
        let s = &self.sequencer;
        NonPipelinedBudgets {
            checkpoint_init_time: s.checkpoint_init_time,
            min_execution_time: s.min_block_duration,
            p2p_propagation_time: s.p2p_propagation_time,
            checkpoint_assemble_time: s.checkpoint_prepare_time,
            l1_publishing_time: s.l1_publishing_time,
        }
    }

    /// The timetable this node's sequencer follows.
    pub(crate) fn timetable(&self) -> Result<Timetable, Problem> {
        let clock = self.slot_clock().map_err(|err| Problem {
            key: "protocol.slot_duration",
            message: err.to_string(),
        })?;
        let table = if self.sequencer.pipelining {
            Timetable::pipelined(
                clock,
                self.protocol.block_duration,
                self.pipelined_budgets(),
            )
        } else {
            Timetable::non_pipelined(
                clock,
                self.protocol.block_duration,
                self.non_pipelined_budgets(),
            )
        }
        .map_err(|err| Problem {
            key: "protocol.block_duration",
            message: err.to_string(),
        })?;
        Ok(match self.sequencer.max_blocks_per_checkpoint {
            Some(cap) => table.with_max_blocks_cap(cap),
            None => table,
        })
    }

    /// Checks the rules that span several keys. Reports every problem, not just the first.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key, message: String| problems.push(Problem { key, message });

        if self.protocol.chain_id == 0 {
            problem("protocol.chain_id", "must be non-zero".into());
        }
        if let Err(err) = self.timetable() {
            problem(err.key, err.message);
        }
        for (key, value) in [
            (
                "sequencer.checkpoint_init_time",
                self.sequencer.checkpoint_init_time,
            ),
            (
                "sequencer.min_block_duration",
                self.sequencer.min_block_duration,
            ),
        ] {
            if value.is_zero() {
                problem(key, "must be greater than zero".into());
            }
        }
        if self.sequencer.max_blocks_per_checkpoint == Some(0) {
            problem(
                "sequencer.max_blocks_per_checkpoint",
                "must be at least 1".into(),
            );
        }
        if self.sequencer.max_txs_per_block == 0 {
            problem("sequencer.max_txs_per_block", "must be at least 1".into());
        }
        self.p2p.problems(&mut problem);
        self.publisher.problems(
            self.node.role,
            self.protocol.l1_slot_duration,
            self.validator.keystore.as_deref(),
            &mut problem,
        );
        if self.archiver.l1_batch_size == 0 {
            problem("archiver.l1_batch_size", "must be at least 1".into());
        }
        if self.node.role == Role::Validator {
            for (key, path) in [
                ("validator.keystore", &self.validator.keystore),
                ("validator.password_file", &self.validator.password_file),
            ] {
                match path {
                    None => problem(key, "required when node.role = \"validator\"".into()),
                    Some(path) if !path.is_file() => {
                        problem(key, format!("{} is not a readable file", path.display()));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut listeners = vec![("p2p.listen_addr", self.p2p.listen_addr)];
        if self.rpc.enabled {
            listeners.push(("rpc.listen_addr", self.rpc.listen_addr));
        }
        if self.metrics.enabled {
            listeners.push(("metrics.listen_addr", self.metrics.listen_addr));
        }
        for (i, (key, addr)) in listeners.iter().enumerate() {
            for (other_key, other) in &listeners[..i] {
                let same_ip = addr.ip() == other.ip()
                    || addr.ip().is_unspecified()
                    || other.ip().is_unspecified();
                if addr.port() != 0 && addr.port() == other.port() && same_ip {
                    problem(
                        key,
                        format!("port {} is already used by {other_key}", addr.port()),
                    );
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Rules that only matter when the node starts (not for `timetable` or `config dump`).
    pub(crate) fn validate_for_run(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.protocol.genesis_time.is_none() {
            return Err(ConfigError::Invalid(vec![Problem {
                key: "protocol.genesis_time",
                message: "required to run: the L1 timestamp of slot 0 of the rollup deployment"
                    .into(),
            }]));
        }
        Ok(())
    }
}

fn deserialize(table: &toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value).map_err(|err| {
        let key = err.path().to_string();
        ConfigError::Value {
            origin: origin.to_string(),
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            // toml appends "in `path`" on a second line; the key is already in front.
            message: err
                .into_inner()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    })
}

/// `TANDEM__P2P__MAX_PEERS` → `["p2p", "max_peers"]`.
fn env_key_path(var: &str) -> Result<Vec<String>, ConfigError> {
    let rest = &var[ENV_PREFIX.len()..];
    let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(ConfigError::EnvShape {
            var: var.to_string(),
        });
    }
    Ok(path)
}

/// A value written as TOML (`42`, `true`, `["a"]`) keeps its type; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path
        .split_last()
        .expect("env_key_path returns at least two segments");
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn example_configs_parse_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (
                "fullnode.example.toml",
                include_str!("../../deploy/config/fullnode.example.toml"),
            ),
            (
                "validator.example.toml",
                include_str!("../../deploy/config/validator.example.toml"),
            ),
        ] {
            let path = write(&dir, name, text);
            let config = Config::load(Some(&path), no_env(), &CliOverrides::default())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            // Key files are referenced, not shipped: drop them to check every other rule.
            let mut config = config;
            config.node.role = Role::FullNode;
            config
                .validate()
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
    }

    #[test]
    fn bad_duration_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "node.toml", "[protocol]\nblock_duration = \"6x\"\n");
        let err = Config::load(Some(&path), no_env(), &CliOverrides::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: protocol.block_duration: ", path.display())),
            "{text}"
        );
        assert!(text.contains("6x") || text.contains("unit"), "{text}");
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "node.toml", "[p2p]\nmax_peerz = 3\n");
        let err = Config::load(Some(&path), no_env(), &CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("p2p") && err.contains("max_peerz"), "{err}");
        let path = write(&dir, "top.toml", "[nodes]\n");
        let err = Config::load(Some(&path), no_env(), &CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nodes"), "{err}");
    }

    #[test]
    fn precedence_is_file_then_env_then_cli() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "node.toml",
            "[p2p]\nmax_peers = 10\n[node]\ndata_dir = \"/from/file\"\n",
        );
        let env = vec![
            ("TANDEM__P2P__MAX_PEERS".to_string(), "20".to_string()),
            (
                "TANDEM__NODE__DATA_DIR".to_string(),
                "/from/env".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let cli = CliOverrides {
            data_dir: Some("/from/cli".into()),
            ..Default::default()
        };
        let config = Config::load(Some(&path), env, &cli).unwrap();
        assert_eq!(config.p2p.max_peers, 20);
        assert_eq!(config.node.data_dir, PathBuf::from("/from/cli"));
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = vec![(
            "TANDEM__PROTOCOL__SLOT_DURATION".to_string(),
            "soon".to_string(),
        )];
        let err = Config::load(None, env, &CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("TANDEM__PROTOCOL__SLOT_DURATION: protocol.slot_duration: "),
            "{err}"
        );
        let env = vec![("TANDEM__P2P".to_string(), "1".to_string())];
        assert!(matches!(
            Config::load(None, env, &CliOverrides::default()),
            Err(ConfigError::EnvShape { .. })
        ));
    }

    #[test]
    fn cross_field_rules_report_every_problem() {
        let mut config = Config::default();
        config.protocol.slot_duration = Duration::from_secs(70);
        config.node.role = Role::Validator;
        config.metrics.listen_addr = SocketAddr::from(([127, 0, 0, 1], 7000));
        config.rpc.listen_addr = SocketAddr::from(([127, 0, 0, 1], 7000));
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("not Invalid")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert!(keys.contains(&"protocol.slot_duration"), "{keys:?}");
        assert!(keys.contains(&"validator.keystore"), "{keys:?}");
        assert!(keys.contains(&"validator.password_file"), "{keys:?}");
        assert!(keys.contains(&"metrics.listen_addr"), "{keys:?}");
    }

    #[test]
    fn block_duration_must_leave_room_for_blocks() {
        let mut config = Config::default();
        config.protocol.block_duration = Duration::from_secs(72);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("protocol.block_duration"), "{err}");
    }

    #[test]
    fn run_needs_genesis_time() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        let err = config.validate_for_run().unwrap_err().to_string();
        assert!(err.contains("protocol.genesis_time"), "{err}");
    }

    #[test]
    fn dump_round_trips() {
        let mut config = Config::default();
        config.sequencer.coinbase = Some(Address::repeat_byte(1));
        config.protocol.genesis_time = Some(1_700_000_000);
        let text = toml::to_string_pretty(&config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "dump.toml", &text);
        assert_eq!(
            Config::load(Some(&path), no_env(), &CliOverrides::default()).unwrap(),
            config
        );
    }
}
