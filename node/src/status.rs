//! `tandem status`: one node's tips, sync, peers and last checkpoints, as a table or JSON.

use clap::Args;
use serde_json::{Value, json};

use crate::client::{NodeClient, quantity};

/// Checkpoints listed below the checkpointed tip.
const LAST_CHECKPOINTS: u64 = 5;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// JSON-RPC URL of the node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    rpc: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Gathers the status of the node at `client`.
pub(crate) async fn gather(client: &NodeClient) -> eyre::Result<Value> {
    let info: Value = client
        .call("tandem_nodeInfo", vec![])
        .await
        .map_err(|err| eyre::eyre!("{}: tandem_nodeInfo: {err}", client.url()))?;
    let tips: Value = client
        .call("tandem_getL2Tips", vec![])
        .await
        .unwrap_or(Value::Null);
    let mut checkpoints = Vec::new();
    if let Some(top) = quantity(&tips["checkpointed"]["checkpoint"]["number"]) {
        for number in (top.saturating_sub(LAST_CHECKPOINTS - 1)..=top).rev() {
            if let Ok(checkpoint) = client
                .call::<Value>("tandem_getCheckpoint", vec![json!(format!("{number:#x}"))])
                .await
            {
                checkpoints.push(checkpoint);
            }
        }
    }
    Ok(json!({"rpc": client.url(), "node": info, "tips": tips, "checkpoints": checkpoints}))
}

fn number(value: &Value) -> String {
    quantity(value).map_or_else(|| "-".into(), |n| n.to_string())
}

/// The table `tandem status` prints.
pub(crate) fn table(status: &Value) -> String {
    let node = &status["node"];
    let sync = &node["sync"];
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: String| {
        out.push_str(&format!("{key:<22} {value}\n"));
    };
    line(
        &mut out,
        "node",
        format!(
            "{} {} ({})",
            node["role"].as_str().unwrap_or("?"),
            node["version"].as_str().unwrap_or("?"),
            status["rpc"].as_str().unwrap_or("")
        ),
    );
    line(
        &mut out,
        "peer id",
        node["peerId"].as_str().unwrap_or("-").to_string(),
    );
    line(
        &mut out,
        "rollup",
        node["deployment"]["rollup"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
    );
    line(
        &mut out,
        "ready",
        if sync["ready"].as_bool() == Some(true) {
            "yes".into()
        } else {
            format!(
                "no: {}",
                sync["reasons"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            )
        },
    );
    line(
        &mut out,
        "peers",
        format!(
            "{} (min {})",
            number(&sync["peers"]),
            number(&sync["minPeers"])
        ),
    );
    line(
        &mut out,
        "L1 head / synced",
        format!(
            "{} / {}",
            number(&sync["l1Head"]),
            number(&sync["l1Synced"])
        ),
    );
    line(
        &mut out,
        "clock offset",
        format!("{} ms", sync["clockOffsetMs"]),
    );
    let tips = &status["tips"];
    for (name, key) in [
        ("tip proposed", "proposed"),
        ("tip proposed ckpt", "proposedCheckpoint"),
        ("tip checkpointed", "checkpointed"),
        ("tip finalized", "finalized"),
    ] {
        line(
            &mut out,
            name,
            format!(
                "block {:>6}  checkpoint {:>5}",
                number(&tips[key]["block"]["number"]),
                number(&tips[key]["checkpoint"]["number"])
            ),
        );
    }
    out.push_str("\ncheckpoint  slot    blocks  status        L1 block\n");
    for checkpoint in status["checkpoints"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<11} {:<7} {:<7} {:<13} {}\n",
            number(&checkpoint["number"]),
            number(&checkpoint["slot"]),
            number(&checkpoint["blockCount"]),
            checkpoint["status"].as_str().unwrap_or("-"),
            number(&checkpoint["l1Block"]),
        ));
    }
    out
}

/// `tandem status`.
pub(crate) fn run(args: &StatusArgs) -> eyre::Result<()> {
    let client = NodeClient::new(&args.rpc)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(gather(&client))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", table(&status));
    }
    Ok(())
}
