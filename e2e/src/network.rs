//! Bringing a network up: anvil, `tandem devnet --no-launch` (deployment, configs, keys), the
//! proxy mesh, each node's config pointed at its proxies, then one `tandem run` per node.

use std::{
    ffi::OsString,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use eyre::{WrapErr, bail, eyre};
use serde_json::Value;

use crate::{
    client,
    process::{Proc, tandem_bin, tool},
    proxy::Mesh,
};

/// anvil's hardfork for the contract (as `tandem devnet` starts it).
const HARDFORK: &str = "osaka";
/// An address nothing listens on: what nodes announce, so no peer can learn a real listen
/// address and dial around the proxies (identify caches announced addresses).
const NOWHERE: &str = "/ip4/127.0.0.1/tcp/9";

/// What network to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Validators (`validator-0` …).
    pub validators: usize,
    /// Full nodes (`fullnode-0` …) after the validators.
    pub fullnodes: usize,
    /// `tandem devnet --profile`: `ci` (S 12 s, E 1 s, D 1 s, committee 3) or `devnet`.
    pub profile: &'static str,
    /// Transfers per second from one `tandem spam` per validator (0: none).
    pub tx_rate: f64,
    /// Nodes not started by [`Network::start`] and given no bootnodes (no one dials them
    /// either): they can learn the chain from L1 only.
    pub isolated: Vec<usize>,
    /// Slots (counted from the slot the nodes are launched in) whose checkpoint no validator
    /// submits to L1 (`sequencer.skip_publishing_slots` on every validator from its first
    /// start): whoever proposes them is a silent publisher, without a restart.
    pub silent_slots: Vec<u64>,
    /// Committee size instead of the profile's (`tandem devnet --committee`).
    pub committee: Option<u64>,
    /// Faults on every link from before the first node starts.
    pub links: Option<crate::proxy::Faults>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            validators: 4,
            fullnodes: 1,
            profile: "ci",
            tx_rate: 8.0,
            isolated: Vec::new(),
            silent_slots: Vec::new(),
            committee: None,
            links: None,
        }
    }
}

/// One node of the network.
#[derive(Debug)]
pub struct Node {
    /// `validator-0`, `fullnode-0`, …
    pub name: String,
    /// `validator` or `full_node`.
    pub role: String,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Metrics server URL (`/metrics` on it).
    pub metrics_url: String,
    /// Its `node.toml`.
    pub config: PathBuf,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its validator address (validators), lower-case 0x-hex.
    pub validator: Option<String>,
    /// Its libp2p peer id.
    pub peer_id: String,
    pub(crate) log: PathBuf,
    pub(crate) proc: Option<Proc>,
    /// Extra environment of its next starts (e.g. `TANDEM__SEQUENCER__SKIP_PUBLISHING_SLOTS`).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) starts: u32,
}

impl Node {
    /// Whether it is a validator.
    pub fn is_validator(&self) -> bool {
        self.role == "validator"
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.proc.is_some()
    }
}

/// A running network; every process is killed when it is dropped, and on a failing test the
/// temp dir with every log is kept and its path printed.
pub struct Network {
    pub(crate) dir: Option<tempfile::TempDir>,
    pub(crate) root: PathBuf,
    pub(crate) anvil: Proc,
    /// Mines anvil's blocks; stopped before anvil is killed.
    pub(crate) l1_clock: Option<crate::l1::L1Clock>,
    /// L1 JSON-RPC URL (anvil).
    pub l1_url: String,
    /// The rollup contract.
    pub rollup: String,
    /// Every node, validators first.
    pub nodes: Vec<Node>,
    pub(crate) mesh: Mesh,
    /// L1 timestamp of slot 0.
    pub genesis: u64,
    /// S, seconds.
    pub slot_secs: u64,
    /// E, seconds.
    pub l1_slot_secs: u64,
    /// The archiver's L1 poll interval the devnet configured.
    pub l1_poll: Duration,
    /// The slot the nodes were launched in.
    pub launch_slot: u64,
    pub(crate) spam: Vec<Proc>,
    pub(crate) spec: Spec,
    pub(crate) started: Instant,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("root", &self.root)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn free_port() -> eyre::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn find_key(value: &Value, keys: &[&str]) -> Option<u64> {
    match value {
        Value::Object(map) => {
            for key in keys {
                if let Some(found) = map.get(*key).and_then(Value::as_u64) {
                    return Some(found);
                }
            }
            map.values().find_map(|v| find_key(v, keys))
        }
        _ => None,
    }
}

impl Network {
    /// Starts anvil, plans and deploys the devnet, and launches every node not in
    /// `spec.isolated`; returns once those nodes are ready.
    pub fn start(spec: Spec) -> eyre::Result<Self> {
        let started = Instant::now();
        let dir = tempfile::Builder::new().prefix("tandem-e2e-").tempdir()?;
        let root = dir.path().to_path_buf();
        eprintln!("scenario dir (logs): {}", root.display());
        let port = free_port()?;
        let l1_url = format!("http://127.0.0.1:{port}");
        let profile_l1 = if spec.profile == "ci" { 1 } else { 2 };
        let anvil = Proc::spawn(
            "anvil",
            &tool("anvil"),
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                // Blocks come from the L1 clock below, one per L1-slot boundary.
                "--no-mining",
                "--hardfork",
                HARDFORK,
            ]
            .map(OsString::from),
            &[],
            &root.join("l1").join("anvil.log"),
        )?;
        crate::wait::until("anvil answers", Duration::from_secs(30), || {
            client::rpc(&l1_url, "eth_chainId", serde_json::json!([]))
        })?;
        let l1_clock = crate::l1::L1Clock::start(&l1_url, profile_l1)?;

        let data = root.join("devnet");
        let plan_log = root.join("devnet-plan.log");
        let log = std::fs::File::create(&plan_log)?;
        let mut command = std::process::Command::new(tandem_bin());
        command.args(["devnet", "--no-launch", "--tx-rate", "0"]);
        if let Some(size) = spec.committee {
            command.arg("--committee").arg(size.to_string());
        }
        let status = command
            .arg("--profile")
            .arg(spec.profile)
            .arg("--validators")
            .arg(spec.validators.to_string())
            .arg("--fullnodes")
            .arg(spec.fullnodes.to_string())
            .arg("--l1-rpc")
            .arg(&l1_url)
            .arg("--data-dir")
            .arg(&data)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .wrap_err_with(|| {
                format!(
                    "running {} devnet --no-launch (build it: cargo build --workspace --bins; or set TANDEM_BIN)",
                    tandem_bin().display()
                )
            })?;
        if !status.success() {
            bail!(
                "tandem devnet --no-launch failed ({status}): {}",
                std::fs::read_to_string(&plan_log).unwrap_or_default()
            );
        }
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("devnet.json"))?)?;
        let deployment: Value = serde_json::from_str(&std::fs::read_to_string(
            file["deploymentFile"]
                .as_str()
                .ok_or_else(|| eyre!("devnet.json: no deploymentFile"))?,
        )?)?;
        let genesis = find_key(&deployment, &["genesis_time", "genesisTime"])
            .ok_or_else(|| eyre!("deployment.json: no genesis time: {deployment}"))?;
        let slot_secs = find_key(&deployment, &["slot_duration", "slotDuration"])
            .ok_or_else(|| eyre!("deployment.json: no slot duration"))?;
        let l1_slot_secs = find_key(&deployment, &["l1_slot_duration", "l1SlotDuration"])
            .ok_or_else(|| eyre!("deployment.json: no L1 slot duration"))?;
        let rollup = file["rollup"]
            .as_str()
            .ok_or_else(|| eyre!("devnet.json: no rollup"))?
            .to_lowercase();

        let mut nodes = Vec::new();
        for entry in file["nodes"]
            .as_array()
            .ok_or_else(|| eyre!("devnet.json: no nodes"))?
        {
            let text = |key: &str| -> eyre::Result<String> {
                entry[key]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| eyre!("devnet.json: node without {key}: {entry}"))
            };
            let p2p = text("p2pAddr")?;
            let peer_id = p2p
                .rsplit_once("/p2p/")
                .map(|(_, id)| id.to_string())
                .ok_or_else(|| eyre!("{p2p}: no /p2p/"))?;
            nodes.push(Node {
                name: text("name")?,
                role: text("role")?,
                rpc_url: text("rpcUrl")?,
                metrics_url: text("metricsUrl")?.trim_end_matches("/metrics").to_string(),
                config: PathBuf::from(text("config")?),
                data_dir: PathBuf::from(text("dataDir")?),
                validator: entry["validator"].as_str().map(str::to_lowercase),
                peer_id,
                log: PathBuf::from(text("logFile")?),
                proc: None,
                env: Vec::new(),
                starts: 0,
            });
        }
        let p2p_ports: Vec<u16> = file["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["ports"]["p2p"].as_u64().unwrap_or(0) as u16)
            .collect();
        // The nodes do not listen yet: a proxy must not take one of their planned ports.
        let planned: std::collections::HashSet<u16> = file["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|n| ["p2p", "rpc", "metrics"].map(|k| n["ports"][k].as_u64()))
            .flatten()
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        let mesh = Mesh::start(&p2p_ports, &planned)?;
        if let Some(faults) = spec.links {
            for (from, to) in mesh.pairs() {
                mesh.set(from, to, faults);
            }
        }
        let l1_poll = Duration::from_millis((l1_slot_secs * 1000 / 4).max(100));
        let launch_slot = (unix_ms() / 1000).saturating_sub(genesis) / slot_secs.max(1);
        let mut network = Self {
            dir: Some(dir),
            root,
            anvil,
            l1_clock: Some(l1_clock),
            l1_url,
            rollup,
            nodes,
            mesh,
            genesis,
            slot_secs,
            l1_slot_secs,
            l1_poll,
            launch_slot,
            spam: Vec::new(),
            spec,
            started,
        };
        match network.bring_up() {
            Ok(()) => Ok(network),
            Err(err) => {
                // The caller panics on this error after the network is dropped: keep the logs.
                let kept = network.keep_logs();
                Err(err.wrap_err(format!("logs kept in {}", kept.display())))
            }
        }
    }

    /// Keeps the temp dir (its path is returned) instead of deleting it on drop.
    pub fn keep_logs(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.root.clone()
    }

    fn bring_up(&mut self) -> eyre::Result<()> {
        let network = self;
        let launch_slot = network.launch_slot;
        network.rewrite_configs()?;
        if !network.spec.silent_slots.is_empty() {
            let slots: Vec<String> = network
                .spec
                .silent_slots
                .iter()
                .map(|s| (s + launch_slot).to_string())
                .collect();
            let value = format!("[{}]", slots.join(","));
            for node in network.nodes.iter_mut().filter(|n| n.is_validator()) {
                node.env.push((
                    "TANDEM__SEQUENCER__SKIP_PUBLISHING_SLOTS".into(),
                    value.clone(),
                ));
            }
        }
        let launch: Vec<usize> = (0..network.nodes.len())
            .filter(|i| !network.spec.isolated.contains(i))
            .collect();
        for &i in &launch {
            network.launch(i)?;
        }
        network.wait_all_ready(&launch, Duration::from_secs(120))?;
        if network.spec.tx_rate > 0.0 {
            network.start_spam()?;
        }
        eprintln!(
            "network up after {:?}: {} nodes, launched in slot {launch_slot}",
            network.started.elapsed(),
            launch.len()
        );
        Ok(())
    }

    /// Points every node's bootnodes at its proxies and turns discovery off, so each link
    /// runs through the mesh.
    fn rewrite_configs(&self) -> eyre::Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&node.config)?;
            let mut config: toml::Table = toml::from_str(&text)
                .wrap_err_with(|| format!("{}: not TOML", node.config.display()))?;
            let isolated = self.spec.isolated.contains(&i);
            let bootnodes: Vec<toml::Value> = if isolated {
                Vec::new()
            } else {
                self.nodes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i && !self.spec.isolated.contains(j))
                    .map(|(j, peer)| {
                        toml::Value::String(format!(
                            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                            self.mesh.port(i, j),
                            peer.peer_id
                        ))
                    })
                    .collect()
            };
            let p2p = config
                .entry("p2p")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| eyre!("{}: [p2p] is no table", node.config.display()))?;
            let min_peers = if isolated { 0 } else { bootnodes.len().min(4) };
            p2p.insert("bootnodes".into(), toml::Value::Array(bootnodes));
            p2p.insert("discovery".into(), toml::Value::Boolean(false));
            p2p.insert("min_peers".into(), toml::Value::Integer(min_peers as i64));
            p2p.insert(
                "announce_addrs".into(),
                toml::Value::Array(vec![toml::Value::String(NOWHERE.into())]),
            );
            std::fs::write(&node.config, toml::to_string(&config)?)?;
        }
        Ok(())
    }

    /// Starts node `i`'s process (a validator's first start creates its signing record).
    pub(crate) fn launch(&mut self, i: usize) -> eyre::Result<()> {
        let bin = tandem_bin();
        let node = &mut self.nodes[i];
        if node.proc.is_some() {
            bail!("{} already runs", node.name);
        }
        let mut args: Vec<OsString> =
            vec!["run".into(), "--config".into(), node.config.clone().into()];
        if node.is_validator() && node.starts == 0 {
            args.push("--init-slashing-protection".into());
        }
        append_marker(
            &node.log,
            &format!("start {} env {:?}", node.starts, node.env),
        )?;
        node.proc = Some(Proc::spawn(&node.name, &bin, &args, &node.env, &node.log)?);
        node.starts += 1;
        Ok(())
    }

    /// Waits for node `i`'s `/ready`.
    pub fn wait_ready(&mut self, i: usize, within: Duration) -> eyre::Result<()> {
        self.wait_all_ready(&[i], within)
    }

    /// Waits until every node of `nodes` is ready; fails at once when any of them exits (a
    /// node that dies at start leaves its peers short of `p2p.min_peers`, so waiting on them
    /// would only time out with the wrong node named).
    fn wait_all_ready(&mut self, nodes: &[usize], within: Duration) -> eyre::Result<()> {
        let deadline = Instant::now() + within;
        let mut pending: Vec<usize> = nodes.to_vec();
        loop {
            for &i in &pending {
                if let Some(status) = self.nodes[i].proc.as_mut().and_then(Proc::exited) {
                    let log = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    bail!(
                        "{} exited with {status} before it was ready (log {}): {}",
                        self.nodes[i].name,
                        self.nodes[i].log.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    );
                }
            }
            pending.retain(|&i| client::http_get(&self.nodes[i].rpc_url, "/ready").is_err());
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let why: Vec<String> = pending
                    .iter()
                    .map(|&i| {
                        format!(
                            "{}: {:?}",
                            self.nodes[i].name,
                            client::http_get(&self.nodes[i].rpc_url, "/ready")
                        )
                    })
                    .collect();
                bail!("not ready within {within:?}: {}", why.join("; "));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One `tandem spam` over every launched node (round-robin, the devnet's funded accounts).
    fn start_spam(&mut self) -> eyre::Result<()> {
        let mut args: Vec<OsString> = vec![
            "spam".into(),
            "--rate".into(),
            format!("{}", self.spec.tx_rate).into(),
        ];
        for node in self.nodes.iter().filter(|n| n.running()) {
            args.push("--rpc".into());
            args.push(node.rpc_url.clone().into());
        }
        let log = self.root.join("spam.log");
        self.spam
            .push(Proc::spawn("spam", &tandem_bin(), &args, &[], &log)?);
        Ok(())
    }

    /// The temp dir with every log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The current slot by the wall clock.
    pub fn slot_now(&self) -> u64 {
        (unix_ms() / 1000).saturating_sub(self.genesis) / self.slot_secs.max(1)
    }

    /// Unix ms at which `slot` starts.
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        (self.genesis + slot * self.slot_secs) * 1000
    }

    /// The proxy mesh.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }
}

fn append_marker(log: &Path, line: &str) -> eyre::Result<()> {
    use std::io::Write;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(
        file,
        "===== e2e harness: {line} at unix ms {} =====",
        unix_ms()
    )?;
    Ok(())
}

impl Drop for Network {
    fn drop(&mut self) {
        for spam in &mut self.spam {
            spam.kill();
        }
        for node in &mut self.nodes {
            if let Some(mut proc) = node.proc.take() {
                proc.kill();
            }
        }
        drop(self.l1_clock.take());
        self.anvil.kill();
        if std::thread::panicking() {
            eprintln!(
                "scenario failed: logs kept in {}",
                self.keep_logs().display()
            );
        }
    }
}
