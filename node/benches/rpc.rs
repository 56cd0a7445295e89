//! JSON-RPC throughput of a real node: `tandem run` (this build of the binary) pinned to one
//! core with `taskset`, following a local anvil; a load generator on the other cores keeps
//! `CONNECTIONS` HTTP/1.1 keep-alive connections busy with one method at a time and counts
//! answered requests per second.
//!
//! What it leaves out: the chain is the genesis chain (the block read is the genesis block,
//! without txs; no sequencer exists yet to fill blocks), so `tandem_getBlock` measures the
//! request path plus one snapshot read and a small header, not the encoding of a large block.
//! The node's own background work (L1 polling, health checks, p2p maintenance) shares its core.
//!
//! `cargo bench -p tandem-node --bench rpc` (needs anvil: scripts/install-tools.sh), or
//! `TANDEM_BIN=target/release/tandem cargo bench --profile dev -p tandem-node --bench rpc`.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
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

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
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

fn main() {
    // `TANDEM_BIN` measures another build of the node (e.g. the release binary while this
    // harness is built in the dev profile).
    let tandem =
        std::env::var("TANDEM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tandem").into());
    let tandem = tandem.as_str();
    let anvil = tandem_l1::harness::AnvilHarness::start(Some(1.0));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("deployer.key");
    std::fs::write(
        &key,
        format!("0x{}\n", alloy::hex::encode(anvil.dev_key(1).to_bytes())),
    )
    .unwrap();
    let rpc = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{}\"\nlog_filter = \"warn\"\n[protocol]\ngenesis_time = {now}\n\
             slot_duration = \"8s\"\nl1_slot_duration = \"2s\"\nblock_duration = \"2s\"\n\
             epoch_duration = 4\ncommittee_size = 1\n[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n\
             [p2p]\nlisten_addr = \"127.0.0.1:{}\"\nmin_peers = 0\n[rpc]\nlisten_addr = \"{rpc}\"\n\
             [metrics]\nlisten_addr = \"127.0.0.1:{}\"\n",
            dir.path().join("data").display(),
            anvil.endpoint(),
            dir.path().join("deployment.json").display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let deployed = Command::new(tandem)
        .args(["l1", "deploy", "--rpc", &anvil.endpoint(), "--validators"])
        .arg("0x1111111111111111111111111111111111111111")
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("deployment.json"))
        .output()
        .unwrap();
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    // The node on core 0; this process (the load) elsewhere.
    let _node = Kill(
        Command::new("taskset")
            .args(["-c", "0", tandem, "run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("taskset (util-linux) runs"),
    );
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
    let tips = r#"{"jsonrpc":"2.0","id":1,"method":"tandem_getL2Tips","params":[]}"#;
    let block = r#"{"jsonrpc":"2.0","id":1,"method":"tandem_getBlock","params":["0x0",true]}"#;
    println!(
        "rpc (node on 1 core, {CONNECTIONS} keep-alive connections, {}s each):",
        MEASURE.as_secs()
    );
    println!(
        "  tandem_getL2Tips          {:>9.0} requests/s",
        load(rpc, tips)
    );
    println!(
        "  tandem_getBlock(0x0,true) {:>9.0} requests/s",
        load(rpc, block)
    );
}
