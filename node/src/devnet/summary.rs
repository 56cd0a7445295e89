//! The devnet's live summary, once per slot: the slot, each node's tips, peers and readiness,
//! blocks in the last checkpoint and its L1 inclusion delay, and the tx generator's numbers.

use serde_json::{Value, json};

use crate::{
    client::{NodeClient, quantity},
    spam::SpamSummary,
};

/// What one node reports.
pub(crate) struct NodeLine {
    pub(crate) name: String,
    pub(crate) tips: Option<Value>,
    pub(crate) sync: Option<Value>,
    pub(crate) exited: Option<String>,
}

/// Reads one node's tips and sync state (each `None` when it does not answer).
pub(crate) async fn read_node(name: &str, client: &NodeClient) -> NodeLine {
    let (tips, info) = tokio::join!(
        client.call::<Value>("tandem_getL2Tips", vec![]),
        client.call::<Value>("tandem_nodeInfo", vec![]),
    );
    NodeLine {
        name: name.to_string(),
        tips: tips.ok(),
        sync: info.ok().map(|info| info["sync"].clone()),
        exited: None,
    }
}

/// The last checkpoint on L1 as `client` sees it: (number, slot, blocks, L1 timestamp).
pub(crate) async fn last_checkpoint(client: &NodeClient) -> Option<(u64, u64, u64, u64)> {
    let checkpoint: Value = client
        .call("tandem_getCheckpoint", vec![json!("checkpointed")])
        .await
        .ok()?;
    Some((
        quantity(&checkpoint["number"])?,
        quantity(&checkpoint["slot"])?,
        quantity(&checkpoint["blockCount"])?,
        quantity(&checkpoint["l1Timestamp"]).unwrap_or(0),
    ))
}

fn tip(tips: &Value, key: &str) -> String {
    quantity(&tips[key]["block"]["number"]).map_or_else(|| "-".into(), |n| n.to_string())
}

/// The summary block of one slot.
pub(crate) fn render(
    slot: Option<u64>,
    genesis: u64,
    slot_secs: u64,
    nodes: &[NodeLine],
    checkpoint: Option<(u64, u64, u64, u64)>,
    txs: Option<&SpamSummary>,
) -> String {
    let mut out = match slot {
        Some(slot) => format!("── slot {slot} ──"),
        None => "── before genesis ──".to_string(),
    };
    match checkpoint {
        Some((number, checkpoint_slot, blocks, l1_time)) if number > 0 => {
            let slot_start = genesis.saturating_add(checkpoint_slot.saturating_mul(slot_secs));
            out.push_str(&format!(
                " last checkpoint #{number} (slot {checkpoint_slot}): {blocks} blocks, on L1 {}s after its slot start",
                l1_time.saturating_sub(slot_start)
            ));
        }
        _ => out.push_str(" no checkpoint on L1 yet"),
    }
    out.push('\n');
    for node in nodes {
        if let Some(exited) = &node.exited {
            out.push_str(&format!(
                "  {:<12} EXITED ({exited}); see its log\n",
                node.name
            ));
            continue;
        }
        let Some(tips) = &node.tips else {
            out.push_str(&format!("  {:<12} not answering\n", node.name));
            continue;
        };
        let sync = node.sync.clone().unwrap_or(Value::Null);
        let ready = if sync["ready"].as_bool() == Some(true) {
            "ready".to_string()
        } else {
            format!(
                "not ready: {}",
                sync["reasons"]
                    .as_array()
                    .and_then(|r| r.first())
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )
        };
        out.push_str(&format!(
            "  {:<12} proposed {:>5}  proposed-ckpt {:>5}  checkpointed {:>5}  finalized {:>5}  peers {:>2}  {ready}\n",
            node.name,
            tip(tips, "proposed"),
            tip(tips, "proposedCheckpoint"),
            tip(tips, "checkpointed"),
            tip(tips, "finalized"),
            quantity(&sync["peers"]).map_or_else(|| "-".into(), |p| p.to_string()),
        ));
    }
    if let Some(txs) = txs {
        out.push_str(&format!("  txs: {txs}\n"));
    }
    out
}
