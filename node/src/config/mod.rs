//! The node's TOML configuration: one section per component, real defaults, human durations.
//!
//! Precedence: built-in defaults < file < environment (`TANDEM__SECTION__KEY`) < CLI flags. Every
//! error names where the bad value came from (file or variable), the key, and what was expected.
//! [`Config::validate`] checks cross-field rules before anything starts.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tandem_proto::time::{ConsensusWindows, SequencerBudgets, SlotClock, Timestamp, Timetable};

mod protocol;
mod publisher;
mod sections;
mod sequencer;
mod validate;

#[cfg(test)]
pub(crate) use protocol::GenesisAccount;
pub(crate) use protocol::{L1Config, ProtocolConfig};
pub(crate) use publisher::PublisherConfig;
pub(crate) use sections::{
    ArchiverConfig, MetricsConfig, NodeConfig, P2pConfig, Role, RpcConfig, ValidatorConfig,
};
pub(crate) use sequencer::SequencerConfig;

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
            p.slot_duration(),
            p.l1_slot_duration(),
            p.epoch_duration(),
        )
    }

    /// The consensus windows of the configured network.
    pub(crate) fn windows(&self) -> Result<ConsensusWindows, tandem_proto::time::SlotClockError> {
        Ok(ConsensusWindows::new(
            self.slot_clock()?,
            self.protocol.block_duration(),
            self.protocol.pipelining_mode(),
            self.protocol.reexecution_budget(),
        ))
    }

    /// The proposer budgets from `[sequencer]`.
    pub(crate) fn sequencer_budgets(&self) -> SequencerBudgets {
        let s = &self.sequencer;
        SequencerBudgets {
            checkpoint_init_time: s.checkpoint_init_time,
            min_block_duration: s.min_block_duration,
            p2p_propagation_time: s.p2p_propagation_time,
            checkpoint_prepare_time: s.checkpoint_prepare_time,
            l1_publishing_time: s.l1_publishing_time,
        }
    }

    /// Most txs per block with `timetable`: `sequencer.max_txs_per_block` when set, otherwise
    /// [`Config::fitting_txs_per_block`].
    pub(crate) fn max_txs_per_block(&self, timetable: &Timetable) -> u32 {
        self.sequencer
            .max_txs_per_block
            .unwrap_or_else(|| self.fitting_txs_per_block(timetable))
    }

    /// The most txs per block that keep a checkpoint of `timetable`'s full block count within
    /// the body cap (transfers have a fixed packed size, so this is exact).
    pub(crate) fn fitting_txs_per_block(&self, timetable: &Timetable) -> u32 {
        let blocks = usize::try_from(timetable.max_blocks_per_checkpoint())
            .unwrap_or(usize::MAX)
            .max(1);
        let cap = usize::try_from(self.protocol.max_checkpoint_body_bytes()).unwrap_or(usize::MAX);
        u32::try_from(tandem_proto::max_txs_in_checkpoint_body(cap, blocks) / blocks)
            .unwrap_or(u32::MAX)
    }

    /// The timetable of `windows` with this node's budgets and block cap.
    pub(crate) fn timetable_for(
        &self,
        windows: ConsensusWindows,
    ) -> Result<Timetable, tandem_proto::time::TimetableError> {
        let table = Timetable::new(windows, self.sequencer_budgets())?;
        Ok(match self.sequencer.max_blocks_per_checkpoint {
            Some(cap) => table.with_max_blocks_cap(cap),
            None => table,
        })
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
    use std::time::Duration;

    use tandem_proto::Address;

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
                include_str!("../../../deploy/config/fullnode.example.toml"),
            ),
            (
                "validator.example.toml",
                include_str!("../../../deploy/config/validator.example.toml"),
            ),
        ] {
            let path = write(&dir, name, text);
            let config = Config::load(Some(&path), no_env(), &CliOverrides::default())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            // Key files are referenced, not shipped: every other rule holds.
            let (problems, missing) = config.check();
            assert_eq!(problems, Vec::new(), "{name}");
            let keys: Vec<&str> = missing.iter().map(|gap| gap.key).collect();
            if config.node.role == Role::Validator {
                assert_eq!(
                    keys,
                    [
                        "publisher.keystores",
                        "publisher.keystores",
                        "publisher.password_file",
                        "validator.keystore",
                        "validator.password_file"
                    ],
                    "{name}"
                );
            } else {
                assert_eq!(keys, Vec::<&str>::new(), "{name}");
            }
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

    /// What p2p validation and the archiver will be given: the windows the node derives from a
    /// non-pipelined deployment accept proposals inside the target slot, until T + S − 2E − R
    /// (with δ = 500 ms either side), where pipelined windows would already have closed.
    #[test]
    fn a_non_pipelined_deployment_gives_non_pipelined_windows() {
        use tandem_proto::time::{PipeliningMode, Slot, WindowCheck};
        let mut params = tandem_l1::RollupParams::with_genesis(1_000_000);
        params.pipelining_mode = PipeliningMode::NonPipelined;
        let mut config = Config::default();
        config.protocol = config.protocol.bound_to(&params);
        let windows = config.windows().unwrap();
        assert_eq!(windows.mode(), PipeliningMode::NonPipelined);
        let target = Slot(10);
        let t = windows.slot_clock().slot_start(target);
        let at = |offset_ms: i64| Timestamp(t.as_millis().checked_add_signed(offset_ms).unwrap());
        let ms = Duration::from_millis;
        let proposals = windows.checkpoint_proposal(target);
        // Opens at the build frame T − E (−δ), closes at T + 72 − 24 − 6 = T + 42 (+δ).
        assert_eq!(proposals.check(at(-12_600)), WindowCheck::TooEarly(ms(100)));
        assert_eq!(proposals.check(at(-12_500)), WindowCheck::Inside);
        assert_eq!(proposals.check(at(42_500)), WindowCheck::Inside);
        assert_eq!(proposals.check(at(42_600)), WindowCheck::TooLate(ms(100)));
        let attestations = windows.attestation(target);
        assert_eq!(attestations.check(at(48_500)), WindowCheck::Inside);
        assert_eq!(attestations.check(at(48_501)), WindowCheck::TooLate(ms(1)));
        // The same constants pipelined: a proposal at T + 1 s is long past T − E − R.
        let pipelined = windows.with_mode(PipeliningMode::Pipelined);
        assert!(matches!(
            pipelined.checkpoint_proposal(target).check(at(1_000)),
            WindowCheck::TooLate(_)
        ));
        assert_eq!(proposals.check(at(1_000)), WindowCheck::Inside);
    }

    #[test]
    fn dump_round_trips() {
        let mut config = Config::default();
        config.sequencer.coinbase = Some(Address::repeat_byte(1));
        config.protocol.genesis_time = Some(1_700_000_000);
        config.protocol.last_block_reexecution_budget = Some(Duration::from_millis(1_500));
        config.protocol.genesis_allocation = vec![GenesisAccount {
            address: Address::repeat_byte(2),
            balance: u128::MAX,
        }];
        let text = toml::to_string_pretty(&config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "dump.toml", &text);
        assert_eq!(
            Config::load(Some(&path), no_env(), &CliOverrides::default()).unwrap(),
            config
        );
    }
}
