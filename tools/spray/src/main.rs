//! `tandem-spray`: sprays tandem nodes with invalid gossip and reports how they reacted.
//!
//!   tandem-spray --devnet DATA/devnet.json [--json]
//!   tandem-spray --peer /ip4/127.0.0.1/tcp/PORT/p2p/ID --deployment deployment.json
//!   tandem-spray --peer ADDR --chain-id 31337        (no deployment: slot 0, zero rollup)

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use tandem_p2p::Multiaddr;
use tandem_proto::{
    Address, SigningDomain,
    time::{Slot, SlotClock, SystemClock, Timestamp},
};
use tandem_spray::{LiveSlot, SprayConfig, Target, spray};

#[derive(Debug, Parser)]
#[command(about = "Sprays tandem nodes with invalid gossip and reports how they reacted")]
struct Args {
    /// A devnet's devnet.json: sprays every node it lists, on its deployment's network.
    #[arg(long, conflicts_with_all = ["peer", "deployment"])]
    devnet: Option<PathBuf>,
    /// A node to spray (multiaddr with /p2p/<peer id>); repeatable.
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// The deployment file of the nodes' network (chain id, rollup, genesis, slot duration).
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// The chain id, when no deployment is given (messages then claim slot 0).
    #[arg(long, conflicts_with_all = ["devnet", "deployment"])]
    chain_id: Option<u64>,
    /// Bursts of every (topic, category) message.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Seconds to wait for the nodes' subscriptions before spraying anyway.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600))]
    ready_timeout: u64,
    /// Seconds to watch the nodes' reactions after spraying.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3600))]
    watch: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevnetFile {
    deployment_file: PathBuf,
    nodes: Vec<DevnetNode>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevnetNode {
    p2p_addr: String,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(&'static str),
    #[error(transparent)]
    Spray(#[from] tandem_spray::SprayError),
}

fn file_error(path: &std::path::Path, message: impl ToString) -> CliError {
    CliError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The network's domain, the slot whose proposals are being gossiped now, and the clock that
/// moves it on.
fn target_of(path: &std::path::Path) -> Result<(Target, LiveSlot), CliError> {
    let deployment = tandem_l1::Deployment::load(path).map_err(|err| file_error(path, err))?;
    let p = &deployment.params;
    let clock = SlotClock::new(
        Timestamp::from_secs(p.genesis_time),
        Duration::from_secs(p.slot_duration),
        Duration::from_secs(p.l1_slot_duration),
        p.epoch_duration,
    )
    .map_err(|err| file_error(path, err))?;
    let live = LiveSlot {
        slots: clock,
        mode: p.pipelining_mode,
        clock: Arc::new(SystemClock),
    };
    let target = Target {
        domain: SigningDomain {
            chain_id: p.l2_chain_id,
            rollup: deployment.rollup,
        },
        slot: live.now(),
    };
    Ok((target, live))
}

async fn run(args: Args) -> Result<(), CliError> {
    let (peers, (target, live_slot)) = if let Some(path) = &args.devnet {
        let text = std::fs::read_to_string(path).map_err(|err| file_error(path, err))?;
        let devnet: DevnetFile =
            serde_json::from_str(&text).map_err(|err| file_error(path, err))?;
        let mut peers = Vec::new();
        for node in &devnet.nodes {
            peers.push(
                node.p2p_addr
                    .parse::<Multiaddr>()
                    .map_err(|err| file_error(path, format!("{}: {err}", node.p2p_addr)))?,
            );
        }
        // Relative paths in devnet.json are relative to its directory.
        let deployment = path.parent().map_or_else(
            || devnet.deployment_file.clone(),
            |dir| dir.join(&devnet.deployment_file),
        );
        let (target, live) = target_of(&deployment)?;
        (peers, (target, Some(live)))
    } else {
        let target = match (&args.deployment, args.chain_id) {
            (Some(path), _) => {
                let (target, live) = target_of(path)?;
                (target, Some(live))
            }
            (None, Some(chain_id)) => (
                Target {
                    domain: SigningDomain {
                        chain_id,
                        rollup: Address::ZERO,
                    },
                    slot: Slot(0),
                },
                None,
            ),
            (None, None) => {
                return Err(CliError::Usage("give --devnet, --deployment or --chain-id"));
            }
        };
        if args.peer.is_empty() {
            return Err(CliError::Usage("give at least one --peer (or --devnet)"));
        }
        (args.peer.clone(), target)
    };
    let report = spray(SprayConfig {
        peers,
        target,
        live_slot,
        rounds: args.rounds,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        watch: Duration::from_secs(args.watch),
        redial_interval: Duration::from_secs(1),
    })
    .await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|err| CliError::File {
            path: PathBuf::from("-"),
            message: err.to_string(),
        })?;
        println!("{json}");
        return Ok(());
    }
    println!("sprayer {}", report.local_peer);
    for (category, count) in &report.sent {
        println!("  sent {count:>4} {category}");
    }
    println!("  not sent {}", report.not_sent);
    for node in &report.nodes {
        let ms = |at: Option<u64>| at.map_or("never".to_string(), |ms| format!("{ms} ms"));
        match &node.unreachable {
            Some(why) => println!("{}: unreachable ({why})", node.addr),
            None => println!(
                "{}: topics {}; disconnected {}; refused {} redials (first {}); readmitted {}",
                node.addr,
                node.topics.join(","),
                ms(node.disconnected_ms),
                node.refused,
                ms(node.first_refused_ms),
                node.readmitted
            ),
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
