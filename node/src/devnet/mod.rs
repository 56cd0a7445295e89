//! `tandem devnet`: a local network in one command. Starts anvil from `.tools` (with `--state`,
//! so a re-run resumes L1 too) or uses `--l1-rpc`, deploys the rollup with the genesis
//! allocation of the funded devnet accounts, writes per-node configs and encrypted keys into
//! the data dir, launches the nodes as child processes (logs to files), runs a tx generator,
//! prints a summary every slot, and stops every child on Ctrl-C (or SIGTERM).
//!
//! ```text
//! <data-dir>/devnet.json          every node (name, role, URLs, p2p address, data dir, pid), L1
//! <data-dir>/devnet.lock          one devnet per data dir
//! <data-dir>/network.toml         the [protocol] section the rollup was deployed with
//! <data-dir>/deployment.json      `tandem l1 deploy`'s output
//! <data-dir>/keys/                the keystore password, the deployer key (anvil's dev key 0)
//! <data-dir>/l1/                  anvil's state and log
//! <data-dir>/<node>/              the node's data dir: node.toml, keys/, logs/node.log, stores
//! ```

mod children;
mod compose;
mod l1;
mod launch;
mod plan;
mod summary;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use alloy::providers::Provider;
use clap::Args;
use eyre::{WrapErr, bail};
use tandem_proto::{
    Address,
    time::{Clock, PipeliningMode, SystemClock},
};
use tokio_util::sync::CancellationToken;

use self::{
    children::Running,
    plan::{DevnetFile, NodeConfigInputs, NodeEntry, Ports},
};
pub(crate) use self::{
    launch::{BenchNetwork, Launched},
    plan::Profile,
};
use crate::{accounts::DEVNET_ACCOUNTS, client::NodeClient, signals::StopSignals, spam::SpamStats};

/// anvil's dev account 0: the deployer (a public test key).
const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// What each publisher account gets on a fresh L1: 1,000 ETH.
const PUBLISHER_FUNDS_WEI: &str = "0x3635c9adc5dea00000";
/// The hardfork the contract is built and tested for (`tandem_l1::harness::HARDFORK`, which is
/// behind a test feature).
const ANVIL_HARDFORK: &str = "osaka";
/// How long anvil and the deployment get to come up.
const L1_STARTUP: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Validators (each proposes when elected and attests).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Full nodes.
    #[arg(long, default_value_t = 1)]
    fullnodes: usize,
    /// Transfers per second of the built-in tx generator (0: none).
    #[arg(long, default_value_t = 20.0)]
    tx_rate: f64,
    /// Protocol constants: `devnet` (24 s / 2 s / 2 s) or `ci` (12 s / 1 s / 1 s).
    #[arg(long, default_value = "devnet")]
    profile: String,
    /// Where everything goes; re-running with the same dir resumes the same chain.
    #[arg(long, default_value = "./devnet-data")]
    data_dir: PathBuf,
    /// Use this L1 instead of starting anvil (it must fund the publisher accounts itself
    /// unless it answers `anvil_setBalance`).
    #[arg(long)]
    l1_rpc: Option<String>,
    /// The anvil binary (default: `$TANDEM_ANVIL`, then `./.tools/bin/anvil`, then `anvil`).
    #[arg(long)]
    anvil: Option<PathBuf>,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Write the configs and keys of deploy/compose/docker-compose.yml into this directory
    /// and exit (nothing is started).
    #[arg(long, value_name = "DIR")]
    emit_compose: Option<PathBuf>,
    /// Deploy the rollup on `--l1-rpc`, write every node's config and keys and `devnet.json`,
    /// then exit without starting a node (a harness starts them itself).
    #[arg(long, requires = "l1_rpc")]
    no_launch: bool,
    /// Committee size instead of the profile's (at most the validator count).
    #[arg(long)]
    committee: Option<u64>,
    /// The network's schedule, stored in the rollup contract when it is deployed: `pipelined`
    /// or `non_pipelined` (default: pipelined). A resumed devnet must be given the same (its
    /// nodes refuse a pinned value the contract does not hold).
    #[arg(long)]
    pipelining_mode: Option<PipeliningMode>,
    /// The last-block re-execution budget R, stored in the contract at deployment (default:
    /// D). R < D lets the proposer build longer; `tandem timetable --reexecution-budget` shows
    /// by how much.
    #[arg(long, value_parser = humantime::parse_duration)]
    reexecution_budget: Option<Duration>,
}

/// Most validators a devnet starts: each is a process with its own ports, and the bound
/// keeps a typo from launching thousands.
const MAX_VALIDATORS: usize = crate::accounts::DEVNET_ACCOUNTS;

pub(crate) fn check_validators(validators: usize) -> eyre::Result<()> {
    if !(1..=MAX_VALIDATORS).contains(&validators) {
        bail!("--validators {validators}: expected 1..={MAX_VALIDATORS}");
    }
    Ok(())
}

pub(crate) fn run(args: &DevnetArgs) -> eyre::Result<()> {
    check_validators(args.validators)?;
    if let Some(dir) = &args.emit_compose {
        let profile = Profile::named(&args.profile)?
            .with_schedule(args.pipelining_mode, args.reexecution_budget);
        compose::emit(dir, &profile, args.validators, args.fullnodes)?;
        println!("compose configs written to {}", dir.display());
        return Ok(());
    }
    // One thread: children get SIGTERM when the thread that spawned them ends (PDEATHSIG),
    // so that thread must be the main one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(Devnet::start(args)?.run(args))
}

struct Devnet {
    data: PathBuf,
    profile: Profile,
    file: DevnetFile,
    first_run: bool,
    _lock: std::fs::File,
}

fn os(values: &[&str]) -> Vec<OsString> {
    values.iter().map(OsString::from).collect()
}

impl Devnet {
    fn start(args: &DevnetArgs) -> eyre::Result<Self> {
        let mut profile = Profile::named(&args.profile)?
            .with_schedule(args.pipelining_mode, args.reexecution_budget);
        if let Some(size) = args.committee {
            if size == 0 || size > args.validators as u64 {
                bail!(
                    "--committee {size}: must be between 1 and --validators ({})",
                    args.validators
                );
            }
            profile.committee = Some(size);
        }
        std::fs::create_dir_all(&args.data_dir)
            .wrap_err_with(|| format!("--data-dir: creating {}", args.data_dir.display()))?;
        let data = std::fs::canonicalize(&args.data_dir)?;
        let lock = crate::datadir::lock_file(&data.join("devnet.lock"), &data)?;
        let (file, first_run) = match DevnetFile::load(&data)? {
            Some(file) => {
                plan::check_same(
                    &file,
                    &mut profile,
                    args.validators,
                    args.fullnodes,
                    args.committee,
                )?;
                (file, false)
            }
            None => {
                let file = Self::plan(&data, &profile, args)?;
                // Saved before anything is deployed: a devnet killed later resumes with these
                // keys and ports instead of planning new ones that the deployment does not know.
                file.save(&data)?;
                (file, true)
            }
        };
        Ok(Self {
            data,
            profile,
            file,
            first_run,
            _lock: lock,
        })
    }

    /// Ports, keys, p2p identities and config paths of a new devnet.
    fn plan(data: &Path, profile: &Profile, args: &DevnetArgs) -> eyre::Result<DevnetFile> {
        let password_file = plan::password_file(data)?;
        let password = crate::keys::read_password_file(&password_file)?;
        let mut nodes = Vec::new();
        let mut picker = plan::PortPicker::default();
        let roles = std::iter::repeat_n("validator", args.validators)
            .chain(std::iter::repeat_n("full_node", args.fullnodes));
        let (mut validators, mut fullnodes) = (0, 0);
        for role in roles {
            let name = if role == "validator" {
                validators += 1;
                format!("validator-{}", validators - 1)
            } else {
                fullnodes += 1;
                format!("fullnode-{}", fullnodes - 1)
            };
            let dir = data.join(&name);
            std::fs::create_dir_all(&dir)?;
            let ports = Ports {
                p2p: picker.pick()?,
                rpc: picker.pick()?,
                metrics: picker.pick()?,
            };
            let peer = tandem_p2p::load_or_create_node_key(
                &crate::config::P2pConfig::node_key_path(&dir),
            )?
            .public()
            .to_peer_id();
            let (validator, publisher) = if role == "validator" {
                let validator =
                    crate::keys::create_keystore(&plan::validator_keystore(&dir), &password)?;
                let publisher =
                    crate::keys::create_keystore(&plan::publisher_keystore(&dir), &password)?;
                (Some(validator.address()), Some(publisher.address()))
            } else {
                (None, None)
            };
            nodes.push(NodeEntry {
                rpc_url: format!("http://127.0.0.1:{}", ports.rpc),
                metrics_url: format!("http://127.0.0.1:{}/metrics", ports.metrics),
                p2p_addr: format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", ports.p2p),
                config: dir.join("node.toml"),
                log_file: dir.join("logs").join("node.log"),
                data_dir: dir,
                name,
                role: role.to_string(),
                validator,
                publisher,
                pid: None,
                ports,
            });
        }
        let (own_l1, l1_rpc_url) = match &args.l1_rpc {
            Some(url) => (false, url.clone()),
            None => (true, format!("http://127.0.0.1:{}", picker.pick()?)),
        };
        Ok(DevnetFile {
            profile: profile.name.to_string(),
            l1_rpc_url,
            anvil_pid: None,
            own_l1,
            rollup: None,
            deployment_file: data.join("deployment.json"),
            nodes,
            choices: Some(plan::Choices::of(profile, args.validators)),
        })
    }

    /// Funds the publishers and deploys the rollup, unless the deployment exists.
    async fn deploy(&mut self, provider: &alloy::providers::DynProvider) -> eyre::Result<()> {
        let deployment = &self.file.deployment_file;
        if deployment.exists() {
            let loaded = tandem_l1::Deployment::load(deployment)?;
            let code = provider.get_code_at(loaded.rollup).await?;
            if code.is_empty() {
                bail!(
                    "{} names rollup {} but L1 at {} has no contract there (was the L1 state \
                     lost?); remove the data dir to start a new devnet",
                    deployment.display(),
                    loaded.rollup,
                    self.file.l1_rpc_url
                );
            }
            self.file.rollup = Some(loaded.rollup);
            return Ok(());
        }
        for node in &self.file.nodes {
            if let Some(publisher) = node.publisher {
                let funded: Result<serde_json::Value, _> = provider
                    .raw_request("anvil_setBalance".into(), (publisher, PUBLISHER_FUNDS_WEI))
                    .await;
                if let Err(err) = funded {
                    eprintln!(
                        "warning: could not fund publisher {publisher} of {} ({err}): fund it \
                         before it must propose",
                        node.name
                    );
                }
            }
        }
        let validators: Vec<Address> = self.file.nodes.iter().filter_map(|n| n.validator).collect();
        let network = self.data.join("network.toml");
        std::fs::write(
            &network,
            plan::protocol_section(&self.profile, validators.len()),
        )?;
        let key = self.data.join("keys").join("deployer.key");
        std::fs::write(&key, format!("{DEPLOYER_KEY}\n"))?;
        plan::restrict(&key)?;
        let list = validators
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let output = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "l1",
                "deploy",
                "--rpc",
                &self.file.l1_rpc_url,
                "--validators",
                &list,
            ])
            .arg("--key")
            .arg(&key)
            .arg("--config")
            .arg(&network)
            .arg("--out")
            .arg(deployment)
            .output()
            .await?;
        if !output.status.success() {
            bail!(
                "deploying the rollup failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let loaded = tandem_l1::Deployment::load(deployment)?;
        eprintln!(
            "rollup {} deployed (L1 block {}, genesis time {})",
            loaded.rollup, loaded.deployment_block, loaded.params.genesis_time
        );
        self.file.rollup = Some(loaded.rollup);
        Ok(())
    }

    fn write_configs(&self) -> eyre::Result<()> {
        let protocol = plan::protocol_section(
            &self.profile,
            self.file
                .nodes
                .iter()
                .filter(|n| n.validator.is_some())
                .count(),
        );
        let password_file = plan::password_file(&self.data)?;
        let others = self.file.nodes.len().saturating_sub(1);
        for node in &self.file.nodes {
            let bootnodes = self
                .file
                .nodes
                .iter()
                .filter(|other| other.name != node.name)
                .map(|other| other.p2p_addr.clone())
                .collect();
            let text = plan::node_config(&NodeConfigInputs {
                node,
                protocol: &protocol,
                l1_rpc_url: &self.file.l1_rpc_url,
                deployment_file: &self.file.deployment_file,
                bootnodes,
                min_peers: others.min(4),
                password_file: &password_file,
                l1_poll_ms: (self.profile.l1_slot_secs * 1000 / 4).max(100),
            });
            std::fs::write(&node.config, text)
                .wrap_err_with(|| format!("writing {}", node.config.display()))?;
        }
        Ok(())
    }

    fn launch_nodes(&mut self) -> eyre::Result<Vec<Running>> {
        let exe = std::env::current_exe()?;
        let mut running = Vec::new();
        for node in &mut self.file.nodes {
            let mut args = vec![
                OsString::from("run"),
                "--config".into(),
                node.config.clone().into(),
            ];
            if node.role == "validator"
                && !crate::datadir::slashing_protection_dir(&node.data_dir).exists()
            {
                // First start of this validator: there is no record to lose yet.
                args.push("--init-slashing-protection".into());
            }
            let child = children::spawn(&node.name, &exe, &args, &node.log_file)?;
            node.pid = child.pid();
            running.push(child);
        }
        Ok(running)
    }

    async fn run(mut self, args: &DevnetArgs) -> eyre::Result<()> {
        // Before any child exists, and kept to the end: a Ctrl-C at any moment is seen.
        let mut signals = StopSignals::install()?;
        let mut anvil = self.start_anvil(args).await?;
        self.file.anvil_pid = anvil.as_ref().and_then(Running::pid);
        let outcome = self.run_with_l1(args, &mut signals).await;
        if let Some(anvil) = anvil.as_mut() {
            children::stop_all(&mut [], Some(anvil)).await;
        }
        self.file.anvil_pid = None;
        for node in &mut self.file.nodes {
            node.pid = None;
        }
        self.file.save(&self.data)?;
        outcome
    }

    async fn run_with_l1(
        &mut self,
        args: &DevnetArgs,
        signals: &mut StopSignals,
    ) -> eyre::Result<()> {
        let provider = tokio::select! {
            biased;
            () = signals.recv() => return Ok(()),
            provider = self.wait_for_l1() => provider?,
        };
        // Dropped (stopped) when this returns, before anvil is stopped.
        let _clock = self.start_l1_clock()?;
        tokio::select! {
            biased;
            () = signals.recv() => return Ok(()),
            deployed = self.deploy(&provider) => deployed?,
        }
        self.write_configs()?;
        if args.no_launch {
            eprintln!(
                "devnet planned ({}): configs and devnet.json in {}; no node started (--no-launch)",
                self.profile.name,
                self.data.display()
            );
            return Ok(());
        }
        let mut nodes = self.launch_nodes()?;
        self.file.save(&self.data)?;
        eprintln!(
            "devnet {} ({}): {} nodes, L1 {}; devnet.json in {}; Ctrl-C stops it",
            if self.first_run { "started" } else { "resumed" },
            self.profile.name,
            nodes.len(),
            self.file.l1_rpc_url,
            self.data.display()
        );
        let result = self.watch(args, &mut nodes, signals).await;
        eprintln!("stopping {} nodes…", nodes.len());
        children::stop_all(&mut nodes, None).await;
        for node in &mut nodes {
            if let Some(status) = node.exited
                && !status.success()
            {
                eprintln!("{} exited with {status}", node.name);
            }
        }
        result
    }

    /// Runs the tx generator and prints the summary every slot until a signal (or
    /// `--duration`).
    async fn watch(
        &self,
        args: &DevnetArgs,
        nodes: &mut [Running],
        signals: &mut StopSignals,
    ) -> eyre::Result<()> {
        let deployment = tandem_l1::Deployment::load(&self.file.deployment_file)?;
        let clients = self
            .file
            .nodes
            .iter()
            .map(|node| NodeClient::new(&node.rpc_url))
            .collect::<eyre::Result<Vec<_>>>()?;
        let cancel = CancellationToken::new();
        let stats = Arc::new(SpamStats::default());
        let generator = (args.tx_rate > 0.0).then(|| {
            tokio::spawn(crate::spam::generate(
                clients.clone(),
                args.tx_rate,
                DEVNET_ACCOUNTS,
                Arc::clone(&stats),
                cancel.clone(),
            ))
        });
        let genesis = deployment.params.genesis_time;
        let slot_secs = deployment.params.slot_duration.max(1);
        let stop_at = args.duration.map(|d| tokio::time::Instant::now() + d);
        loop {
            let now = SystemClock.now();
            let slot = now
                .as_secs()
                .checked_sub(genesis)
                .map(|since| since / slot_secs);
            let next = genesis + slot.map_or(0, |s| (s + 1) * slot_secs);
            let wait =
                Duration::from_millis((next * 1000).saturating_sub(now.as_millis()).max(200));
            let sleep = tokio::time::sleep(wait);
            tokio::select! {
                biased;
                () = signals.recv() => break,
                () = async {
                    match stop_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => break,
                () = sleep => {}
            }
            // Each call is bounded (`CALL_TIMEOUT`), and a signal still cuts the pass short.
            let reads = futures::future::join_all(
                self.file
                    .nodes
                    .iter()
                    .zip(&clients)
                    .map(|(node, client)| summary::read_node(&node.name, client)),
            );
            let mut lines = tokio::select! {
                biased;
                () = signals.recv() => break,
                lines = reads => lines,
            };
            for (line, child) in lines.iter_mut().zip(nodes.iter_mut()) {
                if let Some(status) = child.check() {
                    line.exited = Some(status.to_string());
                }
            }
            let checkpoint = tokio::select! {
                biased;
                () = signals.recv() => break,
                checkpoint = summary::last_checkpoint(&clients[0]) => checkpoint,
            };
            let txs = generator.as_ref().map(|_| stats.summary());
            let slot = SystemClock
                .now()
                .as_secs()
                .checked_sub(genesis)
                .map(|since| since / slot_secs);
            print!(
                "{}",
                summary::render(slot, genesis, slot_secs, &lines, checkpoint, txs.as_ref())
            );
        }
        cancel.cancel();
        if let Some(generator) = generator {
            let _ = generator.await;
            eprintln!("txs: {}", stats.summary());
            for (reason, count) in stats.rejections() {
                eprintln!("  rejected {count}: {reason}");
            }
        }
        Ok(())
    }
}
