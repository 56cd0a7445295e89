//! A devnet started for a measurement (`tandem bench`): the steps of `tandem devnet` (anvil,
//! deployment, configs, node processes) without its summary loop and tx generator, on a fresh
//! data dir, stopped by [`Launched::stop`].

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, FromArgMatches};
use eyre::{WrapErr, bail};
use tandem_proto::time::PipeliningMode;

use super::{
    Devnet, DevnetArgs, children,
    children::Running,
    plan::{DevnetFile, NodeEntry},
};

/// What a measured devnet is: the `tandem devnet` flags a benchmark run sets.
#[derive(Debug, Clone)]
pub(crate) struct BenchNetwork {
    pub(crate) profile: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) validators: usize,
    pub(crate) fullnodes: usize,
    pub(crate) pipelining_mode: PipeliningMode,
    pub(crate) reexecution_budget: Option<Duration>,
    pub(crate) anvil: Option<PathBuf>,
}

impl BenchNetwork {
    /// The devnet's arguments, parsed from flags like the command line's (flags added to
    /// `DevnetArgs` later keep their defaults).
    fn args(&self) -> eyre::Result<DevnetArgs> {
        let mut argv: Vec<OsString> = vec![
            "devnet".into(),
            "--profile".into(),
            self.profile.clone().into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
            "--validators".into(),
            self.validators.to_string().into(),
            "--fullnodes".into(),
            self.fullnodes.to_string().into(),
            "--tx-rate".into(),
            "0".into(),
            "--pipelining-mode".into(),
            self.pipelining_mode.as_str().into(),
        ];
        if let Some(budget) = self.reexecution_budget {
            argv.push("--reexecution-budget".into());
            argv.push(humantime::format_duration(budget).to_string().into());
        }
        if let Some(anvil) = &self.anvil {
            argv.push("--anvil".into());
            argv.push(anvil.clone().into());
        }
        let command = DevnetArgs::augment_args(clap::Command::new("devnet"));
        let matches = command
            .try_get_matches_from(argv)
            .wrap_err("the benchmark's devnet flags")?;
        Ok(DevnetArgs::from_arg_matches(&matches)?)
    }
}

/// A running devnet: anvil (when it is the devnet's own) and the node processes.
pub(crate) struct Launched {
    devnet: Devnet,
    anvil: Option<Running>,
    clock: Option<super::l1::L1Clock>,
    nodes: Vec<Running>,
}

impl Launched {
    /// Starts anvil, deploys the rollup with the network's schedule, writes the configs and
    /// starts the nodes. The data dir must not hold a devnet yet: a measurement starts from
    /// genesis.
    pub(crate) async fn start(network: &BenchNetwork) -> eyre::Result<Self> {
        let args = network.args()?;
        let devnet = Devnet::start(&args)?;
        if !devnet.first_run {
            bail!(
                "{} already holds a devnet; a benchmark run needs a fresh data dir",
                devnet.data.display()
            );
        }
        let mut launched = Self {
            devnet,
            anvil: None,
            clock: None,
            nodes: Vec::new(),
        };
        let started = launched.start_children(&args).await;
        if let Err(err) = started {
            launched.stop().await;
            return Err(err);
        }
        Ok(launched)
    }

    async fn start_children(&mut self, args: &DevnetArgs) -> eyre::Result<()> {
        self.anvil = self.devnet.start_anvil(args).await?;
        self.devnet.file.anvil_pid = self.anvil.as_ref().and_then(Running::pid);
        let provider = self.devnet.wait_for_l1().await?;
        self.clock = self.devnet.start_l1_clock()?;
        self.devnet.deploy(&provider).await?;
        self.devnet.write_configs()?;
        self.nodes = self.devnet.launch_nodes()?;
        self.devnet.file.save(&self.devnet.data)
    }

    /// `devnet.json`'s contents: the nodes' URLs and roles, L1, the deployment file.
    pub(crate) fn file(&self) -> &DevnetFile {
        &self.devnet.file
    }

    /// The validators' entries.
    pub(crate) fn validators(&self) -> impl Iterator<Item = &NodeEntry> {
        self.devnet
            .file
            .nodes
            .iter()
            .filter(|node| node.validator.is_some())
    }

    /// Nodes that exited, each with how and where its log is.
    pub(crate) fn exited(&mut self) -> Vec<String> {
        let logs: Vec<PathBuf> = self
            .devnet
            .file
            .nodes
            .iter()
            .map(|n| n.log_file.clone())
            .collect();
        self.nodes
            .iter_mut()
            .zip(logs)
            .filter_map(|(node, log)| {
                node.check()
                    .map(|status| format!("{} exited ({status}); see {}", node.name, log.display()))
            })
            .collect()
    }

    /// Stops the nodes, then anvil (each with its grace period), and records that nothing
    /// runs any more in `devnet.json`.
    pub(crate) async fn stop(mut self) {
        children::stop_all(&mut self.nodes, None).await;
        drop(self.clock.take());
        children::stop_all(&mut [], self.anvil.as_mut()).await;
        self.devnet.file.anvil_pid = None;
        for node in &mut self.devnet.file.nodes {
            node.pid = None;
        }
        if let Err(err) = self.devnet.file.save(&self.devnet.data) {
            eprintln!("warning: {err:#}");
        }
    }
}
