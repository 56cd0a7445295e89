//! `tandem devnet` end to end: anvil, deployment, four validators and a full node that peer,
//! follow L1 and answer RPC; a tx sent to the full node reaches a validator's pool over gossip;
//! `tandem status` reads a node; SIGINT stops every child; a re-run resumes the same chain.
//! [`chain`]: checkpoints land on L1; [`restart`]: a restarted validator attests again.

mod chain;
mod restart;

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tandem_proto::{SigningDomain, SigningKey, Tx, TxPayload, WireMessage, keccak256};

use crate::common::*;

fn devnet(data: &Path, extra: &[&str]) -> Running {
    spawn(
        tandem()
            .args([
                "devnet",
                "--validators",
                "4",
                "--fullnodes",
                "1",
                "--profile",
                "ci",
                "--tx-rate",
                "0",
                "--anvil",
            ])
            .arg(tandem_l1::harness::anvil_path())
            .arg("--data-dir")
            .arg(data)
            .args(extra),
    )
}

/// `devnet.json` once every node has a pid.
fn wait_for_devnet_file(data: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join("devnet.json"))
            && let Ok(file) = serde_json::from_str::<Value>(&text)
            && file["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().all(|n| n["pid"].is_u64()))
        {
            return file;
        }
        assert!(Instant::now() < deadline, "no devnet.json with pids");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap()
}

fn rpc(url: &str, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = http_post(addr(url), "/", &request.to_string()).unwrap();
    let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn interrupt(devnet: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-INT", &devnet.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_exit(devnet, Duration::from_secs(60))
}

/// The L1 head a node reports in `tandem_nodeInfo`.
fn l1_head(url: &str) -> u64 {
    let info = rpc(url, "tandem_nodeInfo", json!([]));
    let hex = info["sync"]["l1Head"].as_str().expect("an L1 head");
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
}

/// Devnet account 0's key, derived the way `tandem devnet` derives it.
fn devnet_account() -> SigningKey {
    devnet_key(0)
}

/// Devnet account `index`'s key (`tandem devnet` skips the rare seed that is no key).
fn devnet_key(index: usize) -> SigningKey {
    (0u32..)
        .find_map(|counter| {
            SigningKey::from_bytes(&keccak256(format!("tandem devnet account {index} {counter}")).0)
                .ok()
        })
        .unwrap()
}

/// A quantity of the RPC (`0x`-hex).
fn number(value: &Value) -> u64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a quantity: {value}"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

/// The signing domain a node reports.
fn domain_of(url: &str) -> SigningDomain {
    let info = rpc(url, "tandem_nodeInfo", json!([]));
    SigningDomain {
        chain_id: number(&info["deployment"]["l2ChainId"]),
        rollup: info["deployment"]["rollup"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    }
}

/// A transfer of devnet account `account`, raw for `tandem_sendTx`.
fn transfer(domain: &SigningDomain, account: usize, nonce: u64) -> (Tx, String) {
    let tx = Tx::sign(
        TxPayload {
            chain_id: domain.chain_id,
            nonce,
            to: tandem_proto::Address::repeat_byte(0x55),
            amount: 7,
            max_fee_per_mana: 1_000_000_000,
            mana_limit: tandem_state::TX_MANA,
        },
        domain,
        &devnet_key(account),
    );
    let raw = format!("0x{}", alloy::hex::encode(tx.to_wire_bytes()));
    (tx, raw)
}

/// A tx the [`TxSender`] sent: its hash and the node it went to.
struct Sent {
    hash: tandem_proto::B256,
    node: usize,
    /// When the node answered `added`.
    at: Instant,
}

/// Sends transfers through `tandem_sendTx` in the background, one every `every`, round-robin
/// over `urls`: devnet account `first + k` always to node `k`, so its nonces arrive in order.
struct TxSender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Sent>, String>>>,
}

impl TxSender {
    fn start(urls: Vec<String>, first: usize, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let domain = domain_of(&urls[0]);
            let mut nonces = vec![0u64; urls.len()];
            let mut sent = Vec::new();
            let mut next = Instant::now();
            for i in 0.. {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let node = i % urls.len();
                let (tx, raw) = transfer(&domain, first + node, nonces[node]);
                let request =
                    json!({"jsonrpc": "2.0", "id": 1, "method": "tandem_sendTx", "params": [raw]});
                // A node that is down (being restarted), or up but not bound yet (it answers
                // -32002, "unavailable"), gets this nonce again next round.
                let answer = match http_post(addr(&urls[node]), "/", &request.to_string()) {
                    Some(answer) => serde_json::from_str::<Value>(body_of(&answer))
                        .map_err(|err| format!("tandem_sendTx to node {node}: {err}"))?,
                    None => json!({"error": {"code": -32002}}),
                };
                if answer["error"]["code"] == -32002 {
                    next += every;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    continue;
                }
                // Known: an earlier try got in although its answer was lost.
                let outcome = &answer["result"]["outcome"];
                if outcome != "added" && outcome != "alreadyKnown" {
                    return Err(format!("tandem_sendTx to node {node}: {answer}"));
                }
                nonces[node] += 1;
                sent.push(Sent {
                    hash: tx.hash(),
                    node,
                    at: Instant::now(),
                });
                // A fixed rate, not a fixed pause: the call's own time counts.
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(sent)
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sending; every tx sent, or why sending failed.
    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        let sent = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("the tx sender panicked");
        sent.unwrap_or_else(|err| panic!("{err}"))
    }
}

impl Drop for TxSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A node's metrics now.
fn metrics_of(node: &Value) -> String {
    http_get(addr(node["metricsUrl"].as_str().unwrap()), "/metrics").unwrap_or_default()
}

/// Other proposers' checkpoints a node's validator handler attested to since it started (its
/// sequencer's attestations to its own checkpoints are not counted here).
fn attestations_signed(node: &Value) -> f64 {
    sample(
        &metrics_of(node),
        "tandem_validator_attestations_total{result=\"attested\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn devnet_nodes_peer_follow_l1_gossip_txs_and_stop_on_sigint_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let mut running = devnet(&data, &[]);
    let file = wait_for_devnet_file(&data);
    let nodes = file["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 5);
    let roles: Vec<&str> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "validator",
            "validator",
            "validator",
            "validator",
            "full_node"
        ]
    );
    let anvil_pid = file["anvilPid"]
        .as_u64()
        .expect("the devnet runs its own anvil");

    // Every node ready: bound, synced to L1, world state at the tip, ≥ 4 peers, clock fine.
    for node in &nodes {
        let ready = wait_for_http(
            addr(node["rpcUrl"].as_str().unwrap()),
            "/ready",
            "readiness",
            Duration::from_secs(60),
            |r| r.starts_with("HTTP/1.1 200"),
        );
        let report: Value = serde_json::from_str(body_of(&ready)).unwrap();
        assert_eq!(report["peers"], 4, "{}: {report}", node["name"]);
        // The gauge follows the same verdict (its own poll: each sample is independent).
        wait_for_metrics(
            addr(node["metricsUrl"].as_str().unwrap()),
            "tandem_node_ready 1",
            |body| body.contains("tandem_node_ready 1"),
        );
        let info = rpc(
            node["rpcUrl"].as_str().unwrap(),
            "tandem_nodeInfo",
            json!([]),
        );
        assert_eq!(info["role"], node["role"]);
        assert_eq!(info["deployment"]["rollup"], file["rollup"]);
        assert!(
            node["p2pAddr"]
                .as_str()
                .unwrap()
                .ends_with(info["peerId"].as_str().unwrap()),
            "{info}"
        );
    }

    // A tx sent to the full node reaches a validator's pool through gossip.
    let full = nodes[4]["rpcUrl"].as_str().unwrap();
    let info = rpc(full, "tandem_nodeInfo", json!([]));
    let domain = SigningDomain {
        chain_id: u64::from_str_radix(
            info["deployment"]["l2ChainId"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap(),
        rollup: info["deployment"]["rollup"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    };
    let tx = Tx::sign(
        TxPayload {
            chain_id: domain.chain_id,
            nonce: 0,
            to: tandem_proto::Address::repeat_byte(0x55),
            amount: 7,
            max_fee_per_mana: 1_000_000_000,
            mana_limit: tandem_state::TX_MANA,
        },
        &domain,
        &devnet_account(),
    );
    let raw = format!("0x{}", alloy::hex::encode(tx.to_wire_bytes()));
    let sent = rpc(full, "tandem_sendTx", json!([raw]));
    assert_eq!(sent["outcome"], "added", "{sent}");
    assert_eq!(sent["gossiped"], true, "{sent}");
    let validator = nodes[0]["rpcUrl"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rpc(validator, "tandem_getTx", json!([tx.hash()]));
        // Validators propose: by the time validator-0 is asked, the tx may already be in a
        // block (from gossip of the tx or of the block, or from L1).
        if ["pending", "proposed", "checkpointed", "finalized"]
            .iter()
            .any(|s| seen["status"] == *s)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tx never reached validator-0: {seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // `tandem status` reads a node.
    let output = run(tandem().args(["status", "--json", "--rpc"]).arg(validator));
    assert!(output.status.success(), "{}", stderr(&output));
    let status: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(status["node"]["role"], "validator");
    // The tips are `tandem_getL2Tips`' (the chain moves on between the two reads): L1-derived
    // tips never run ahead of a later read, and the proposed tip is at or above the checkpointed.
    let later = rpc(validator, "tandem_getL2Tips", json!([]));
    let tips = &status["tips"];
    for key in ["checkpointed", "finalized"] {
        assert!(
            number(&tips[key]["block"]["number"]) <= number(&later[key]["block"]["number"]),
            "{key}: status {tips}, later {later}"
        );
    }
    assert!(
        number(&tips["proposed"]["block"]["number"])
            >= number(&tips["checkpointed"]["block"]["number"]),
        "{tips}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = run(tandem().args(["status", "--rpc"]).arg(validator));
        assert!(table.status.success(), "{}", stderr(&table));
        if stdout(&table).contains("ready                  yes") {
            assert!(
                stdout(&table).contains("peers                  4 (min 4)"),
                "{}",
                stdout(&table)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the status table never said ready: {}",
            stdout(&table)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let l1_head_before = l1_head(nodes[0]["rpcUrl"].as_str().unwrap());

    // SIGINT: the devnet stops every child and exits cleanly.
    let exit = interrupt(&mut running);
    let log = running.stderr();
    assert!(exit.success(), "exit {exit:?}: {log}");
    for node in &nodes {
        let pid = node["pid"].as_u64().unwrap();
        assert!(!alive(pid), "{} (pid {pid}) still runs", node["name"]);
        let node_log = std::fs::read_to_string(node["logFile"].as_str().unwrap()).unwrap();
        // Exactly one stop each: the devnet's SIGINT drained every node.
        assert_eq!(
            node_log.matches("node stopped").count(),
            1,
            "{}: {node_log}",
            node["name"]
        );
    }
    assert!(!alive(anvil_pid), "anvil (pid {anvil_pid}) still runs");
    assert!(
        data.join("l1/anvil-state.json").is_file(),
        "anvil kept no state"
    );

    // A re-run resumes the same chain: same rollup, same nodes, L1 further on.
    let mut again = devnet(&data, &[]);
    let resumed = wait_for_devnet_file(&data);
    assert_eq!(resumed["rollup"], file["rollup"]);
    let first = resumed["nodes"][0]["rpcUrl"].as_str().unwrap();
    assert_eq!(first, nodes[0]["rpcUrl"].as_str().unwrap());
    wait_for_http(
        addr(first),
        "/ready",
        "readiness after resume",
        Duration::from_secs(60),
        |r| r.starts_with("HTTP/1.1 200"),
    );
    let info = rpc(first, "tandem_nodeInfo", json!([]));
    assert_eq!(info["deployment"]["rollup"], file["rollup"]);
    // anvil resumed its state: L1 is further on, not restarted from block 0.
    let l1_head_after = l1_head(first);
    assert!(
        l1_head_after > l1_head_before,
        "L1 head {l1_head_after} after resume, {l1_head_before} before the stop"
    );
    let exit = interrupt(&mut again);
    let log = again.stderr();
    assert!(exit.success(), "exit {exit:?}: {log}");
    assert!(log.contains("devnet resumed (ci)"), "{log}");
}
