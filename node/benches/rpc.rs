//! JSON-RPC throughput of a real node on a real chain: `tandem devnet --validators 1
//! --fullnodes 0 --profile ci` (this build of the binary, its own anvil), the validator pinned to
//! one core with `taskset`; a load generator on the other cores keeps `CONNECTIONS` HTTP/1.1
//! keep-alive connections busy with one method at a time and counts answered requests per
//! second.
//!
//! The block read is a real block of `BLOCK_TXS` transfers the validator built: its sequencer is
//! told (through the `TANDEM__SEQUENCER__*` variables its devnet child inherits) to wait for that
//! many txs and to put one block in each checkpoint. 1,000 txs do not fit one checkpoint's body
//! (`max_checkpoint_body_bytes`, 120 KiB: ~860 transfers), so the largest round figure that fits
//! is used. The node's own background work (L1 polling, health checks, p2p maintenance, its
//! sequencer) shares its core.
//!
//! `cargo bench -p tandem-node --bench rpc` (needs anvil: scripts/install-tools.sh), or
//! `TANDEM_BIN=target/release/tandem cargo bench --profile dev -p tandem-node --bench rpc`.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

const CONNECTIONS: usize = 8;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);

/// The devnet: SIGINT on drop, so it stops its node and anvil (a kill would orphan them).
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Reads one HTTP response (headers, then `content-length` bytes); returns the body.
fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    buffer.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let headers = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    while buffer.len() < header_end + length {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Some(buffer[header_end..header_end + length].to_vec())
}

fn load(rpc: SocketAddr, body: &str) -> f64 {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {rpc}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (request, counting, stop, answered) = (
                request.clone(),
                Arc::clone(&counting),
                Arc::clone(&stop),
                Arc::clone(&answered),
            );
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(rpc).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut buffer = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(request.as_bytes()).unwrap();
                    let body = read_response(&mut stream, &mut buffer).expect("an answer");
                    assert!(
                        body.starts_with(b"{\"jsonrpc\":\"2.0\""),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
                    assert!(
                        !body.windows(7).any(|w| w == b"\"error\""),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
                    if counting.load(Ordering::Relaxed) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(WARMUP);
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(MEASURE);
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    answered.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

/// Transfers in the block read by `tandem_getBlock`.
const BLOCK_TXS: usize = 800;
/// Devnet accounts sending them (the pool takes at most 64 txs per sender).
const SENDERS: usize = 50;

/// One HTTP request on a new connection; the response body.
fn post(rpc: SocketAddr, body: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect(rpc).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {rpc}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buffer = Vec::new();
    let body = read_response(&mut stream, &mut buffer).expect("an answer");
    serde_json::from_slice(&body).unwrap()
}

fn call(rpc: SocketAddr, method: &str, params: serde_json::Value) -> serde_json::Value {
    let request =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer = post(rpc, &request.to_string());
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

fn quantity(value: &serde_json::Value) -> u64 {
    u64::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Devnet account `index`'s key, derived as `tandem devnet` derives it.
fn devnet_key(index: usize) -> tandem_proto::SigningKey {
    (0u32..)
        .find_map(|counter| {
            tandem_proto::SigningKey::from_bytes(
                &tandem_proto::keccak256(format!("tandem devnet account {index} {counter}")).0,
            )
            .ok()
        })
        .unwrap()
}

/// Sends `BLOCK_TXS` transfers and returns the number of the block that holds them.
fn fill_a_block(rpc: SocketAddr) -> u64 {
    use tandem_proto::WireMessage;
    let info = call(rpc, "tandem_nodeInfo", serde_json::json!([]));
    let domain = tandem_proto::SigningDomain {
        chain_id: quantity(&info["deployment"]["l2ChainId"]),
        rollup: info["deployment"]["rollup"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    };
    let keys: Vec<_> = (0..SENDERS).map(devnet_key).collect();
    for i in 0..BLOCK_TXS {
        let tx = tandem_proto::Tx::sign(
            tandem_proto::TxPayload {
                chain_id: domain.chain_id,
                nonce: (i / SENDERS) as u64,
                to: tandem_proto::Address::repeat_byte(0x77),
                amount: 1,
                max_fee_per_mana: 1_000_000_000,
                mana_limit: tandem_state::TX_MANA,
            },
            &domain,
            &keys[i % SENDERS],
        );
        let raw = format!("0x{}", alloy::hex::encode(tx.to_wire_bytes()));
        let sent = call(rpc, "tandem_sendTx", serde_json::json!([raw]));
        assert_eq!(sent["outcome"], "added", "{sent}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tips = call(rpc, "tandem_getL2Tips", serde_json::json!([]));
        let tip = quantity(&tips["proposed"]["block"]["number"]);
        for number in 1..=tip {
            let block = call(
                rpc,
                "tandem_getBlock",
                serde_json::json!([format!("{number:#x}"), false]),
            );
            if quantity(&block["txCount"]) as usize == BLOCK_TXS {
                return number;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no block of {BLOCK_TXS} txs within 120 s (tips {tips})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() {
    // `TANDEM_BIN` measures another build of the node (e.g. the release binary while this
    // harness is built in the dev profile).
    let tandem =
        std::env::var("TANDEM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tandem").into());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let min_txs = BLOCK_TXS.to_string();
    let _devnet = Devnet(
        Command::new(&tandem)
            .args([
                "devnet",
                "--validators",
                "1",
                "--fullnodes",
                "0",
                "--profile",
                "ci",
                "--tx-rate",
                "0",
                "--anvil",
            ])
            .arg(tandem_l1::harness::anvil_path())
            .arg("--data-dir")
            .arg(&data)
            .env("TANDEM__SEQUENCER__MAX_BLOCKS_PER_CHECKPOINT", "1")
            .env("TANDEM__SEQUENCER__MIN_TXS_PER_BLOCK", &min_txs)
            .env("TANDEM__NODE__LOG_FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (rpc, pid) = loop {
        let file = std::fs::read_to_string(data.join("devnet.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if let Some(node) = file.as_ref().map(|file| &file["nodes"][0])
            && let Some(pid) = node["pid"].as_u64()
        {
            let url = node["rpcUrl"].as_str().unwrap();
            let rpc: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
            break (rpc, pid);
        }
        assert!(Instant::now() < deadline, "no devnet.json with a pid");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The node (every thread) on core 0; this process (the load) elsewhere.
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset (util-linux) runs");
    assert!(pinned.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = TcpStream::connect(rpc).ok().and_then(|mut stream| {
            write!(
                stream,
                "GET /ready HTTP/1.1\r\nHost: {rpc}\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            Some(response.starts_with("HTTP/1.1 200"))
        });
        if ready == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the node never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let full = fill_a_block(rpc);
    let tips = r#"{"jsonrpc":"2.0","id":1,"method":"tandem_getL2Tips","params":[]}"#;
    let genesis = r#"{"jsonrpc":"2.0","id":1,"method":"tandem_getBlock","params":["0x0",true]}"#;
    let hashes = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tandem_getBlock","params":["{full:#x}",false]}}"#
    );
    let txs = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tandem_getBlock","params":["{full:#x}",true]}}"#
    );
    println!(
        "rpc (node on 1 core, {CONNECTIONS} keep-alive connections, {}s each):",
        MEASURE.as_secs()
    );
    println!(
        "  tandem_getL2Tips                      {:>9.0} requests/s",
        load(rpc, tips)
    );
    println!(
        "  tandem_getBlock(genesis, txs)         {:>9.0} requests/s",
        load(rpc, genesis)
    );
    println!(
        "  tandem_getBlock({BLOCK_TXS}-tx block, hashes) {:>9.0} requests/s",
        load(rpc, &hashes)
    );
    println!(
        "  tandem_getBlock({BLOCK_TXS}-tx block, txs)    {:>9.0} requests/s",
        load(rpc, &txs)
    );
}
