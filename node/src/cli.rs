//! Command-line interface. Subcommands map one-to-one onto the modules that implement them.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use eyre::WrapErr;

use crate::config::{CliOverrides, Config, Role};

/// tandem: a node for an L2 rollup with pipelined sequencers.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node.
    Run(RunArgs),
    /// Inspect configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the proposer's schedule of one slot, pipelined and non-pipelined side by side.
    Timetable(crate::timetable::TimetableArgs),
    /// Manage validator keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// L1 operations.
    #[command(subcommand)]
    L1(L1Command),
    /// Run a local network: anvil, the rollup, validators and full nodes, a tx generator.
    Devnet(crate::devnet::DevnetArgs),
    /// Send signed transfers from the funded devnet accounts at a steady rate.
    Spam(crate::spam::SpamArgs),
    /// Show a node's tips, sync state, peers and last checkpoints.
    Status(crate::status::StatusArgs),
    /// Measure a local devnet (pipelined against non-pipelined).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum L1Command {
    /// Deploy the Rollup contract and write the deployment file.
    Deploy(crate::l1_deploy::DeployArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides `node.role`.
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// Overrides `node.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `p2p.listen_addr`.
    #[arg(long)]
    p2p_listen: Option<SocketAddr>,
    /// Overrides `rpc.listen_addr`.
    #[arg(long)]
    rpc_listen: Option<SocketAddr>,
    /// Overrides `metrics.listen_addr`.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Overrides `protocol.genesis_time` (L1 timestamp of slot 0, in seconds).
    #[arg(long)]
    genesis_time: Option<u64>,
    /// Create the slashing-protection record (`<data_dir>/validator/slashing-protection`), or
    /// register a new validator key in it, starting past every duty a lost record could have
    /// signed. Without it a validator refuses to start when its record is missing: a missing
    /// record after a data loss is how a validator double-signs.
    #[arg(long)]
    init_slashing_protection: bool,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t)]
    log_format: crate::logging::LogFormat,
}

impl RunArgs {
    fn overrides(&self) -> CliOverrides {
        CliOverrides {
            role: self.role,
            data_dir: self.data_dir.clone(),
            p2p_listen: self.p2p_listen,
            rpc_listen: self.rpc_listen,
            metrics_listen: self.metrics_listen,
            genesis_time: self.genesis_time,
        }
    }
}

fn parse_role(value: &str) -> Result<Role, String> {
    match value {
        "validator" => Ok(Role::Validator),
        "full_node" => Ok(Role::FullNode),
        other => Err(format!(
            "{other:?} is not a role: expected validator or full_node"
        )),
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate a file (with the environment's TANDEM__* overrides applied).
    Check {
        /// The file.
        file: PathBuf,
        /// Treat key files that do not exist as errors (what `tandem run` does); without it
        /// they are warnings with the command that creates them.
        #[arg(long)]
        strict: bool,
    },
    /// Print the effective configuration as TOML: defaults, then the file, then the environment.
    Dump {
        /// Optional file to merge over the defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new key in an encrypted Ethereum keystore and print its address.
    New(crate::keys::NewKeyArgs),
    /// Print this node's libp2p peer id (creating its p2p key in the data dir if missing), for
    /// other nodes' `p2p.bootnodes`.
    P2pId(P2pIdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct P2pIdArgs {
    /// TOML configuration file (for `node.data_dir`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides `node.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Loads the configuration the way every command does: file, then environment, then flags.
pub(crate) fn load_config(
    file: Option<&std::path::Path>,
    cli: &CliOverrides,
) -> eyre::Result<Config> {
    Ok(Config::load(file, std::env::vars(), cli)?)
}

/// `tandem config check`: problems are errors; key files that do not exist are warnings with
/// their fix, or errors with `--strict`.
fn config_check(file: &std::path::Path, strict: bool) -> eyre::Result<()> {
    let config = load_config(Some(file), &CliOverrides::default())?;
    let (mut problems, missing) = config.check();
    for gap in &missing {
        if !strict {
            eprintln!(
                "warning: {}: {} does not exist yet: {}",
                gap.key,
                gap.path.display(),
                gap.fix()
            );
        }
    }
    if strict {
        problems.extend(missing.iter().map(|gap| crate::config::Problem {
            key: gap.key,
            message: format!(
                "{} is not a readable file ({})",
                gap.path.display(),
                gap.fix()
            ),
        }));
    }
    if !problems.is_empty() {
        return Err(crate::config::ConfigError::Invalid(problems))
            .wrap_err_with(|| format!("{} is invalid", file.display()));
    }
    if missing.is_empty() || strict {
        println!("{}: ok", file.display());
    } else {
        println!(
            "{}: ok, except {} key file(s) that do not exist yet (see the warnings; --strict \
             makes them errors)",
            file.display(),
            missing.len()
        );
    }
    Ok(())
}

pub(crate) fn dispatch(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let config = load_config(args.config.as_deref(), &args.overrides())?;
            config.validate_for_run()?;
            crate::logging::init(&config.node.log_filter, args.log_format)?;
            crate::run::run(
                config,
                crate::run::RunOptions {
                    init_slashing_protection: args.init_slashing_protection,
                },
            )
        }
        Command::Config(ConfigCommand::Check { file, strict }) => config_check(&file, strict),
        Command::Config(ConfigCommand::Dump { config }) => {
            let config = load_config(config.as_deref(), &CliOverrides::default())?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Timetable(args) => crate::timetable::print(&args),
        Command::Keys(KeysCommand::New(args)) => crate::keys::new_key(&args),
        Command::Keys(KeysCommand::P2pId(args)) => {
            let overrides = CliOverrides {
                data_dir: args.data_dir,
                ..CliOverrides::default()
            };
            let config = load_config(args.config.as_deref(), &overrides)?;
            crate::keys::print_p2p_id(&config.node.data_dir)
        }
        Command::L1(L1Command::Deploy(args)) => crate::l1_deploy::run(&args),
        Command::Devnet(args) => crate::devnet::run(&args),
        Command::Spam(args) => crate::spam::run(&args),
        Command::Status(args) => crate::status::run(&args),
        Command::Bench(command) => crate::bench::run(&command),
    }
}
