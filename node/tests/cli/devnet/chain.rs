//! A proposing devnet: `tandem devnet --validators 4 --fullnodes 1` on the `ci` profile (S 12 s,
//! E 1 s) lands ≥ 5 checkpoints on L1 with a pipeline depth of 1 on the validators, the full
//! node's checkpointed tip equals the validators', txs sent with `tandem_sendTx` reach
//! `checkpointed` (seen through `getTx`, `getBlock` and `getCheckpoint` on real blocks), and
//! SIGINT leaves no child running.

use super::*;

/// Checkpoints that must land.
const CHECKPOINTS: u64 = 5;

/// The depth gauge of a validator (`None` until its sequencer prepared a checkpoint).
fn pipeline_depth(node: &Value) -> Option<f64> {
    sample(&metrics_of(node), "tandem_sequencer_pipeline_depth")
}

fn checkpointed(tips: &Value) -> u64 {
    number(&tips["checkpointed"]["checkpoint"]["number"])
}

#[test]
fn devnet_lands_checkpoints_pipelined_and_txs_reach_checkpointed() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let mut running = devnet(&data, &[]);
    let file = wait_for_devnet_file(&data);
    let nodes = file["nodes"].as_array().unwrap().clone();
    let anvil_pid = file["anvilPid"].as_u64().unwrap();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n["rpcUrl"].as_str().unwrap().to_string())
        .collect();
    let (validators, full) = (&nodes[..4], &urls[4]);
    for node in &nodes {
        wait_for_http(
            addr(node["rpcUrl"].as_str().unwrap()),
            "/ready",
            "readiness",
            Duration::from_secs(60),
            |r| r.starts_with("HTTP/1.1 200"),
        );
        let info = rpc(
            node["rpcUrl"].as_str().unwrap(),
            "tandem_nodeInfo",
            json!([]),
        );
        assert_eq!(
            info["proposing"],
            node["role"] == "validator",
            "{}: {info}",
            node["name"]
        );
    }
    let ready_after = started.elapsed();

    // Four transfers a second, each account to its own node (the full node's are gossiped).
    let sender = TxSender::start(urls.clone(), 0, Duration::from_millis(250));

    // One tx followed through its statuses on the full node (which never builds: every
    // status it reports comes from gossip or L1).
    let domain = domain_of(full);
    let (tracked, raw) = transfer(&domain, 10, 0);
    let sent = rpc(full, "tandem_sendTx", json!([raw]));
    assert_eq!(sent["outcome"], "added", "{sent}");
    let mut statuses: Vec<String> = Vec::new();

    // Until ≥ 5 checkpoints are on L1: follow the tracked tx and sample the depth gauges.
    let mut depths: Vec<Vec<f64>> = vec![Vec::new(); validators.len()];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut first_landed = None;
    loop {
        let seen = rpc(full, "tandem_getTx", json!([tracked.hash()]));
        let status = seen["status"].as_str().unwrap().to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status);
        }
        for (samples, node) in depths.iter_mut().zip(validators) {
            if let Some(depth) = pipeline_depth(node) {
                samples.push(depth);
            }
        }
        let tips = rpc(&urls[0], "tandem_getL2Tips", json!([]));
        let landed = checkpointed(&tips);
        if landed >= 1 && first_landed.is_none() {
            first_landed = Some(started.elapsed());
        }
        if landed >= CHECKPOINTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{landed} checkpoints on L1 after 90 s (tips {tips}); validator-0 metrics: {}",
            metrics_of(&validators[0])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let five_landed_at = Instant::now();
    let five_landed = started.elapsed();
    let sent = sender.finish();

    // The tracked tx went pending → proposed → checkpointed, never back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let seen = rpc(full, "tandem_getTx", json!([tracked.hash()]));
        let status = seen["status"].as_str().unwrap().to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status.clone());
        }
        // anvil's `finalized` is 64 L1 blocks (64 s) behind: a tx checkpointed early can be
        // finalized by the time this loop runs.
        if status == "checkpointed" || status == "finalized" {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "the tracked tx is {status} (seen {statuses:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let order = ["pending", "proposed", "checkpointed", "finalized"];
    let ranks: Vec<usize> = statuses
        .iter()
        .map(|s| {
            order
                .iter()
                .position(|o| o == s)
                .unwrap_or_else(|| panic!("unknown status {s:?} (seen {statuses:?})"))
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]) && statuses.contains(&"proposed".to_string()),
        "statuses of the tracked tx: {statuses:?}"
    );

    // Its block, by number with the txs and by hash, and its checkpoint, on real data.
    let at = number(&found["block"]["number"]);
    let block = rpc(
        full,
        "tandem_getBlock",
        json!([found["block"]["number"], true]),
    );
    assert_eq!(block["hash"], found["block"]["hash"], "{block}");
    let landed = |status: &Value| status == "checkpointed" || status == "finalized";
    assert!(landed(&block["status"]), "{block}");
    let txs = block["txs"].as_array().unwrap();
    assert_eq!(number(&block["txCount"]) as usize, txs.len());
    let index = number(&found["index"]) as usize;
    assert_eq!(txs[index]["hash"], json!(tracked.hash()), "{block}");
    assert_eq!(
        txs[index]["from"],
        json!(devnet_key(10).address()),
        "{block}"
    );
    let by_hash = rpc(full, "tandem_getBlock", json!([block["hash"], false]));
    assert_eq!(number(&by_hash["number"]), at);
    assert_eq!(by_hash["txs"][index], json!(tracked.hash()));
    let checkpoint = rpc(
        full,
        "tandem_getCheckpoint",
        json!([block["checkpointNumber"]]),
    );
    assert!(landed(&checkpoint["status"]), "{checkpoint}");
    let start = number(&checkpoint["startBlock"]);
    assert!(
        (start..start + number(&checkpoint["blockCount"])).contains(&at),
        "block {at} is not in {checkpoint}"
    );
    assert!(checkpoint["l1Block"].is_string(), "{checkpoint}");
    // Committee of 3: a quorum above 2/3 is all three.
    assert_eq!(number(&checkpoint["attestations"]), 3, "{checkpoint}");

    // Every tx sent at least two slots before the fifth checkpoint landed is checkpointed (or
    // finalized) on the node it was sent to. The devnet runs no generator (`--tx-rate 0`) and
    // each account sends in nonce order to one node, so every `added` tx is includable: none may
    // be lost. Two slots cover a tx that just missed the checkpoint being built (it goes into
    // the next one, which lands a slot later); a short grace covers the archiver's L1 lag.
    let slot = Duration::from_secs(number(
        &rpc(full, "tandem_nodeInfo", json!([]))["deployment"]["slotDuration"],
    ));
    let cut = five_landed_at - 2 * slot;
    let old: Vec<&Sent> = sent.iter().filter(|tx| tx.at < cut).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waiting = old.clone();
    loop {
        waiting.retain(|tx| {
            let seen = rpc(&urls[tx.node], "tandem_getTx", json!([tx.hash]));
            !landed(&seen["status"])
        });
        if waiting.is_empty() {
            break;
        }
        let tips = rpc(&urls[0], "tandem_getL2Tips", json!([]));
        assert!(
            Instant::now() < deadline,
            "{} of {} txs sent over two slots before the fifth checkpoint are not checkpointed, \
             e.g. {} on node {} (tips {tips})",
            waiting.len(),
            old.len(),
            waiting[0].hash,
            waiting[0].node
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The sender ran from readiness: well over a slot of txs is old enough.
    assert!(old.len() >= 20, "only {} txs are old enough", old.len());
    let checked = old.len();

    // Pipelined: a validator building while its parent is still proposed reads depth 1, and
    // none ever builds two above L1.
    let all: Vec<f64> = depths.iter().flatten().copied().collect();
    assert!(all.iter().all(|d| *d <= 1.0), "depth samples {depths:?}");
    assert!(
        depths
            .iter()
            .filter(|samples| samples.last() == Some(&1.0))
            .count()
            >= 1
            && all.contains(&1.0),
        "no validator built on a proposed checkpoint: {depths:?}"
    );

    // The full node's checkpointed tip equals every validator's (each follows L1 itself).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views: Vec<Value> = urls
            .iter()
            .map(|url| rpc(url, "tandem_getL2Tips", json!([]))["checkpointed"].clone())
            .collect();
        if views.iter().all(|view| view == &views[4])
            && number(&views[4]["checkpoint"]["number"]) >= CHECKPOINTS
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkpointed tips differ: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGINT stops every child.
    let exit = interrupt(&mut running);
    let log = running.stderr();
    assert!(exit.success(), "exit {exit:?}: {log}");
    for node in &nodes {
        let pid = node["pid"].as_u64().unwrap();
        assert!(!alive(pid), "{} (pid {pid}) still runs", node["name"]);
    }
    assert!(!alive(anvil_pid), "anvil (pid {anvil_pid}) still runs");
    eprintln!(
        "devnet ready after {ready_after:?}, first checkpoint on L1 after {first_landed:?}, \
         {CHECKPOINTS} after {five_landed:?}; {} txs sent, {checked} old enough ones all checkpointed; whole test {:?}",
        sent.len(),
        started.elapsed()
    );
}
