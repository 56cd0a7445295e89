//! `tandem devnet` end to end: anvil, deployment, four validators and a full node that peer,
//! follow L1 and answer RPC; a tx sent to the full node reaches a validator's pool over gossip;
//! `tandem status` reads a node; a restarted validator rejoins and attests again; SIGINT stops
//! every child; a re-run resumes the same chain. [`chain`]: checkpoints land on L1.

mod chain;

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
                let answer = http_post(addr(&urls[node]), "/", &request.to_string())
                    .ok_or_else(|| format!("node {node} did not answer tandem_sendTx"))?;
                let answer: Value = serde_json::from_str(body_of(&answer))
                    .map_err(|err| format!("tandem_sendTx to node {node}: {err}"))?;
                if answer["result"]["outcome"] != "added" {
                    return Err(format!("tandem_sendTx to node {node}: {answer}"));
                }
                nonces[node] += 1;
                sent.push(Sent {
                    hash: tx.hash(),
                    node,
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

/// Attestations a node signed since it started.
fn attestations_signed(node: &Value) -> f64 {
    sample(
        &metrics_of(node),
        "tandem_validator_signatures_total{duty=\"attestation\",origin=\"new\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn devnet_nodes_peer_follow_l1_gossip_txs_rejoin_and_stop_on_sigint_then_resume() {
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
        if seen["status"] == "pending" {
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
    assert_eq!(status["tips"]["proposed"]["block"]["number"], "0x0");
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

    // Txs keep the proposers building, so committees attest. Restart a validator that just
    // attested (it is in this epoch's committee): stop it, start it again from its config
    // without init mode; it reopens its stores and its signing record, rejoins with 4 peers
    // and attests again.
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n["rpcUrl"].as_str().unwrap().to_string())
        .collect();
    let sender = TxSender::start(urls, 1, Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(60);
    let restarted = loop {
        if let Some(node) = nodes[..4]
            .iter()
            .find(|node| attestations_signed(node) > 0.0)
        {
            break node.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no validator attested within 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let pid = restarted["pid"].as_u64().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(restarted["pid"].as_u64().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "{} did not stop",
            restarted["name"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut again = spawn(
        tandem()
            .args(["run", "--config"])
            .arg(restarted["config"].as_str().unwrap()),
    );
    let ready = wait_for_http(
        addr(restarted["rpcUrl"].as_str().unwrap()),
        "/ready",
        "readiness after a restart",
        Duration::from_secs(60),
        |r| r.starts_with("HTTP/1.1 200"),
    );
    let report: Value = serde_json::from_str(body_of(&ready)).unwrap();
    assert_eq!(report["peers"], 4, "{report}");
    // A new process: its counter starts at 0, so any attestation is one signed after the
    // restart. Within two epochs (4 slots of 12 s each) it is on a committee again.
    let deadline = Instant::now() + Duration::from_secs(100);
    while attestations_signed(&restarted) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} did not attest after its restart: {}",
            restarted["name"],
            metrics_of(&restarted)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let exit = stop(&mut again);
    assert!(exit.success(), "restarted {}: {exit:?}", restarted["name"]);
    drop(sender.finish());

    let l1_head_before = l1_head(nodes[0]["rpcUrl"].as_str().unwrap());

    // SIGINT: the devnet stops every child and exits cleanly.
    let exit = interrupt(&mut running);
    let log = running.stderr();
    assert!(exit.success(), "exit {exit:?}: {log}");
    for node in &nodes {
        let pid = node["pid"].as_u64().unwrap();
        assert!(!alive(pid), "{} (pid {pid}) still runs", node["name"]);
        let node_log = std::fs::read_to_string(node["logFile"].as_str().unwrap()).unwrap();
        // Exactly one stop each: the devnet's SIGINT drained every node it still ran.
        // The restarted validator's one is the test's SIGTERM (its devnet child had exited;
        // its restarted instance logged to the test's pipe), so its drain is checked above.
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
