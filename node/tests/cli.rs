//! The `tandem` binary as operators and scripts use it.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

fn tandem() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    // The test environment must not leak overrides into the binary.
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("tandem runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn timetable_json_reports_block_counts_for_both_modes() {
    let output = run(tandem().args([
        "timetable",
        "--slot",
        "72s",
        "--l1-slot",
        "12s",
        "--block",
        "6s",
        "--json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["pipelined"]["max_blocks_per_checkpoint"], 10);
    assert_eq!(json["non_pipelined"]["max_blocks_per_checkpoint"], 8);
    assert_eq!(json["pipelined"]["dead_zone_seconds"], 11.0);
    assert_eq!(json["pipelined"]["attestation_deadline"], 48.0);
    assert_eq!(
        json["pipelined"]["checkpoint_proposal_receive_deadline"],
        -18.0
    );
    let share = json["pipelined"]["building_share"].as_f64().unwrap();
    assert!((share - 60.0 / 72.0).abs() < 1e-9);
}

#[test]
fn timetable_table_is_printed_side_by_side() {
    let output = run(tandem().args([
        "timetable",
        "--slot",
        "72s",
        "--l1-slot",
        "12s",
        "--block",
        "6s",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|line| line.starts_with("max_blocks_per_checkpoint"))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells, ["max_blocks_per_checkpoint", "10", "8"]);
}

#[test]
fn bad_config_names_the_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "[protocol]\nblock_duration = \"6x\"\n").unwrap();
    let output = run(tandem().args(["config", "check"]).arg(&path));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("node.toml: protocol.block_duration:"), "{err}");
    assert!(err.contains("6x"), "{err}");

    std::fs::write(&path, "[metrics]\nlisten = \"x\"\n").unwrap();
    let output = run(tandem().args(["config", "check"]).arg(&path));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("unknown field `listen`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bootnodes_without_a_peer_id_are_refused_and_p2p_id_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = run(tandem()
        .args(["keys", "p2p-id", "--data-dir"])
        .arg(&data_dir));
    assert!(first.status.success(), "{}", stderr(&first));
    let peer_id = stdout(&first).trim().to_string();
    assert!(peer_id.starts_with("12D3KooW"), "{peer_id}");
    assert!(data_dir.join("p2p").join("node.key").is_file());
    let again = run(tandem()
        .args(["keys", "p2p-id", "--data-dir"])
        .arg(&data_dir));
    assert_eq!(stdout(&again).trim(), peer_id);

    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "[p2p]\nbootnodes = [\"/ip4/10.0.0.1/tcp/40400\", \"not an address\"]\n",
    )
    .unwrap();
    let output = run(tandem().args(["config", "check"]).arg(&path));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("p2p.bootnodes") && err.contains("lacks /p2p/"),
        "{err}"
    );
    assert!(
        err.contains("\"not an address\" is not a multiaddr"),
        "{err}"
    );

    std::fs::write(
        &path,
        format!("[p2p]\nbootnodes = [\"/ip4/10.0.0.1/tcp/40400/p2p/{peer_id}\"]\n"),
    )
    .unwrap();
    let output = run(tandem().args(["config", "check"]).arg(&path));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn config_dump_applies_environment_overrides() {
    let output = run(tandem()
        .args(["config", "dump"])
        .env("TANDEM__P2P__MAX_PEERS", "77"));
    assert!(output.status.success(), "{}", stderr(&output));
    let dumped: toml::Table = stdout(&output).parse().expect("dump is TOML");
    assert_eq!(dumped["p2p"]["max_peers"].as_integer(), Some(77));
}

#[test]
fn keys_new_writes_a_keystore_and_prints_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("validator.json");
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2\n").unwrap();
    let output = run(tandem()
        .args(["keys", "new", "--out"])
        .arg(&out)
        .arg("--password-file")
        .arg(&password));
    assert!(output.status.success(), "{}", stderr(&output));
    let address = stdout(&output).trim().to_string();
    assert!(
        address.starts_with("0x") && address.len() == 42,
        "{address}"
    );
    let keystore: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(keystore["version"], 3);

    // Never overwrite a key.
    let output = run(tandem()
        .args(["keys", "new", "--out"])
        .arg(&out)
        .arg("--password-file")
        .arg(&password));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("already exists"));
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Kills the child if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_run_config(dir: &Path, genesis: u64, metrics_port: u16) -> std::path::PathBuf {
    let path = dir.join("node.toml");
    let text = format!(
        "[node]\ndata_dir = \"{data}\"\n\
         [protocol]\ngenesis_time = {genesis}\nslot_duration = \"8s\"\nl1_slot_duration = \"2s\"\nblock_duration = \"2s\"\n\
         [p2p]\nlisten_addr = \"127.0.0.1:{p2p}\"\n\
         [rpc]\nlisten_addr = \"127.0.0.1:{rpc}\"\n\
         [metrics]\nlisten_addr = \"127.0.0.1:{metrics_port}\"\n",
        data = dir.join("data").display(),
        p2p = free_port(),
        rpc = free_port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_serves_prefixed_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let genesis = now - 800; // 100 slots of 8 s ago
    let metrics_port = free_port();
    let config = write_run_config(dir.path(), genesis, metrics_port);
    let child = tandem()
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node = Running(child);

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics_port));
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some(response) = http_get(addr, "/metrics")
            && response.contains("tandem_node_current_slot")
        {
            break response;
        }
        assert!(Instant::now() < deadline, "no metrics within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let slot: f64 = body
        .lines()
        .find_map(|line| line.strip_prefix("tandem_node_current_slot "))
        .expect("current slot sample")
        .trim()
        .parse()
        .unwrap();
    // Genesis was 800 s ago with 8 s slots; allow generous skew for a slow machine.
    assert!((99.0..=110.0).contains(&slot), "current slot {slot}");
    assert!(body.contains("tandem_node_info{"), "{body}");
    assert!(body.contains("role=\"full_node\""), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = node.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "node did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(dir.path().join("data").is_dir(), "data dir created");
}

#[test]
fn run_refuses_a_validator_without_keys_and_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let config = write_run_config(dir.path(), 1, metrics_port);
    let output = run(tandem()
        .args(["run", "--role", "validator", "--config"])
        .arg(&config));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("validator.keystore: required"),
        "{}",
        stderr(&output)
    );

    // The metrics port is taken: the node reports it and exits non-zero instead of running blind.
    let _taken = TcpListener::bind((Ipv4Addr::LOCALHOST, metrics_port)).unwrap();
    let output = run(tandem().args(["run", "--config"]).arg(&config));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("metrics.listen_addr"),
        "{}",
        stderr(&output)
    );
}

/// Runs `tandem l1 deploy` against `rpc` with the given key file, output file and extra flags.
fn deploy(rpc: &str, validators: &str, key: &Path, out: &Path, extra: &[&str]) -> Output {
    run(tandem()
        .args(["l1", "deploy", "--rpc", rpc, "--validators", validators])
        .args(extra)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out))
}

#[tokio::test]
async fn l1_deploy_writes_a_deployment_file() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("deployer.key");
    let deployer = anvil.dev_key(1);
    std::fs::write(
        &key_file,
        format!("0x{}\n", alloy::hex::encode(deployer.to_bytes())),
    )
    .unwrap();
    let out = dir.path().join("deployment.json");
    let validators =
        "0x1111111111111111111111111111111111111111,0x2222222222222222222222222222222222222222";
    let output = deploy(
        &anvil.endpoint(),
        validators,
        &key_file,
        &out,
        &["--slot-duration", "24s"],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let deployment = tandem_l1::Deployment::load(&out).unwrap();
    assert_eq!(stdout(&output).trim(), deployment.rollup.to_string());
    assert_eq!(deployment.owner, deployer.address());
    assert_eq!(deployment.validators.len(), 2);
    assert_eq!(deployment.params.slot_duration, 24);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for key in [
        "rollup",
        "deployment_block",
        "genesis_time",
        "slot_duration",
        "l1_chain_id",
    ] {
        assert!(json.get(key).is_some(), "deployment file lacks {key}");
    }
    let reader = tandem_l1::L1Reader::new(anvil.provider(), deployment.rollup);
    assert_eq!(
        reader.tips(alloy::eips::BlockId::latest()).await.unwrap(),
        (0, 0)
    );

    // A second deploy to the same file is refused; a bad key file is named.
    let output = deploy(&anvil.endpoint(), validators, &key_file, &out, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&key_file, "not a key").unwrap();
    let output = deploy(
        &anvil.endpoint(),
        validators,
        &key_file,
        &dir.path().join("other.json"),
        &[],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--password-file"),
        "{}",
        stderr(&output)
    );
}
