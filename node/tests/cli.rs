//! The `tandem` binary as operators and scripts use it.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::signers::local::PrivateKeySigner;

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
fn timetable_shows_what_a_shorter_reexecution_budget_buys() {
    // 72/12/6 with P = 1.5 s: R = D builds 10 blocks, R = 1 s builds 11.
    let output = run(tandem().args([
        "timetable",
        "--slot",
        "72s",
        "--l1-slot",
        "12s",
        "--block",
        "6s",
        "--reexecution-budget",
        "1s",
        "--propagation",
        "1500ms",
        "--json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["last_block_reexecution_budget_seconds"], 1.0);
    assert_eq!(json["pipelined"]["max_blocks_per_checkpoint"], 11);
    assert_eq!(
        json["pipelined"]["max_blocks_per_checkpoint_if_r_equals_d"],
        10
    );
    assert_eq!(
        json["pipelined"]["checkpoint_proposal_receive_deadline"],
        -13.0
    );
    let table = run(tandem().args([
        "timetable",
        "--reexecution-budget",
        "1s",
        "--propagation",
        "1500ms",
    ]));
    let text = stdout(&table);
    let line = text
        .lines()
        .find(|line| line.starts_with("max_blocks_per_checkpoint if R = D"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[5], "10", "{line}");
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

impl Running {
    /// Everything the node wrote to stderr (call after it exited).
    fn stderr(&mut self) -> String {
        let mut log = String::new();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        log
    }
}

/// Starts `command` in the background, stderr captured.
fn spawn(command: &mut Command) -> Running {
    Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// `tandem run --config config` in the background.
fn spawn_node(config: &Path) -> Running {
    spawn(tandem().args(["run", "--config"]).arg(config))
}

fn write_run_config(dir: &Path, extra: &str, metrics_port: u16) -> PathBuf {
    let path = dir.join("node.toml");
    let text = format!(
        "[node]\ndata_dir = \"{data}\"\n\
         [p2p]\nlisten_addr = \"127.0.0.1:{p2p}\"\n\
         [rpc]\nlisten_addr = \"127.0.0.1:{rpc}\"\n\
         [metrics]\nlisten_addr = \"127.0.0.1:{metrics_port}\"\n{extra}",
        data = dir.join("data").display(),
        p2p = free_port(),
        rpc = free_port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The genesis allocation of the test network.
const ALLOCATION: &str = "genesis_allocation = [{ address = \"0x3333333333333333333333333333333333333333\", balance = \"1000\" }]\n";

/// The `[protocol]` section of the test network: 8 s slots of 2 s L1 blocks.
fn protocol_section(genesis: u64) -> String {
    format!(
        "[protocol]\ngenesis_time = {genesis}\nslot_duration = \"8s\"\nl1_slot_duration = \"2s\"\n\
         block_duration = \"2s\"\nepoch_duration = 4\ncommittee_size = 1\n{ALLOCATION}"
    )
}

/// Writes `signer`'s key as a 0x-hex key file (what `tandem l1 deploy --key` reads).
fn write_key_file(signer: &PrivateKeySigner, path: &Path) -> PathBuf {
    std::fs::write(
        path,
        format!("0x{}\n", alloy::hex::encode(signer.to_bytes())),
    )
    .unwrap();
    path.to_path_buf()
}

/// The validator every test network registers.
const VALIDATOR: &str = "0x1111111111111111111111111111111111111111";

/// `tandem l1 deploy` against `rpc` with the given validators, key file, output file and extra
/// flags (e.g. `--config FILE`, `--slot-duration 24s`).
fn deploy(rpc: &str, validators: &str, key: &Path, out: &Path, extra: &[&OsStr]) -> Output {
    run(tandem()
        .args(["l1", "deploy", "--rpc", rpc, "--validators", validators])
        .args(extra)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out))
}

/// Deploys the test network `config` describes, with anvil's dev key 1, to `out`.
fn deploy_network(anvil: &tandem_l1::harness::AnvilHarness, config: &Path, out: &Path) {
    let dir = out.parent().unwrap();
    let key = write_key_file(&anvil.dev_key(1), &dir.join("deployer.key"));
    let deployed = deploy(
        &anvil.endpoint(),
        VALIDATOR,
        &key,
        out,
        &[OsStr::new("--config"), config.as_os_str()],
    );
    assert!(deployed.status.success(), "{}", stderr(&deployed));
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `/metrics` until `predicate` holds for the body.
fn wait_for_metrics(addr: SocketAddr, what: &str, predicate: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(response) = http_get(addr, "/metrics")
            && predicate(&response)
        {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics with {what} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// Waits for the node to exit by itself.
fn wait_exit(node: &mut Running, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(exit) = node.0.try_wait().unwrap() {
            return exit;
        }
        assert!(
            Instant::now() < deadline,
            "node did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` (a `tandem run`) and returns its stderr once it has exited with a failure;
/// panics if it keeps running for 30 s (a refusal that did not happen).
fn refused(command: &mut Command) -> String {
    let mut node = spawn(command);
    let exit = wait_exit(&mut node, Duration::from_secs(30));
    let err = node.stderr();
    assert!(!exit.success(), "exit status {exit:?}: {err}");
    err
}

fn stop(node: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_exit(node, Duration::from_secs(20))
}

/// A TCP port the test owns from start to end (so no other process can take it), which resets
/// every connection until [`SwitchedProxy::connect_to`] is called and then forwards them there.
/// It stands in for an L1 node that is down, then comes up, without releasing the port.
struct SwitchedProxy {
    port: u16,
    target: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl SwitchedProxy {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_target, accept_stop) = (target.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Some(addr) = *accept_target.lock().unwrap() else {
                    // Down: the client sees its connection reset.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let Ok(upstream) = TcpStream::connect(addr) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Self { port, target, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forwards to the local `endpoint` (`http://localhost:PORT`) from now on.
    fn connect_to(&self, endpoint: &str) {
        let port: u16 = endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("{endpoint} ends in a port"));
        *self.target.lock().unwrap() = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
}

impl Drop for SwitchedProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

#[tokio::test]
async fn run_serves_prefixed_metrics_and_stops_on_sigterm() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let genesis = now_secs() - 800; // 100 slots of 8 s ago
    let metrics_port = free_port();
    let deployment = dir.path().join("deployment.json");
    let section = format!(
        "{}[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n",
        protocol_section(genesis),
        anvil.endpoint(),
        deployment.display()
    );
    let config = write_run_config(dir.path(), &section, metrics_port);
    deploy_network(&anvil, &config, &deployment);

    let mut node = spawn_node(&config);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics_port));
    let body = wait_for_metrics(addr, "the current slot", |body| {
        body.contains("tandem_node_current_slot")
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let slot = sample(&body, "tandem_node_current_slot").expect("current slot sample");
    // Genesis was 800 s ago with 8 s slots; allow generous skew for a slow machine.
    assert!((99.0..=110.0).contains(&slot), "current slot {slot}");
    assert_eq!(sample(&body, "tandem_node_ready"), Some(1.0), "{body}");
    assert!(body.contains("tandem_node_info{"), "{body}");
    assert!(body.contains("role=\"full_node\""), "{body}");

    let exit = stop(&mut node);
    assert!(exit.success(), "exit status {exit:?}");
    assert!(dir.path().join("data").is_dir(), "data dir created");
}

#[test]
fn run_refuses_a_validator_without_keys_and_a_busy_port() {
    // Both refusals happen before the node contacts L1 (nothing listens at the rpc_url).
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let section = format!(
        "[l1]\nrpc_url = \"http://127.0.0.1:{}\"\nrollup_address = \"{VALIDATOR}\"\n",
        free_port()
    );
    let config = write_run_config(dir.path(), &section, metrics_port);
    let err = refused(
        tandem()
            .args(["run", "--role", "validator", "--config"])
            .arg(&config),
    );
    assert!(err.contains("validator.keystore: required"), "{err}");

    // The metrics port is taken: the node reports it and exits non-zero instead of running blind.
    let _taken = TcpListener::bind((Ipv4Addr::LOCALHOST, metrics_port)).unwrap();
    let err = refused(tandem().args(["run", "--config"]).arg(&config));
    assert!(err.contains("metrics.listen_addr"), "{err}");
}

#[tokio::test]
async fn run_waits_for_an_unreachable_l1_and_binds_once_it_is_there() {
    let dir = tempfile::tempdir().unwrap();
    // The port is the proxy's for the whole test: L1 is "down" (connections reset) until anvil
    // runs behind it. Retries are at most 1 s apart, so binding follows L1 within a second.
    let proxy = SwitchedProxy::start();
    let metrics_port = free_port();
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let rollup = anvil.dev_key(1).address().create(0);
    let section = format!(
        "{}[l1]\nrpc_url = \"{}\"\nrollup_address = \"{rollup}\"\nmax_retry_interval = \"1s\"\n",
        protocol_section(now_secs()),
        proxy.url()
    );
    let config = write_run_config(dir.path(), &section, metrics_port);
    let mut node = spawn_node(&config);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics_port));
    let body = wait_for_metrics(addr, "a failed L1 attempt", |body| {
        body.contains("tandem_node_l1_bind_attempts_total{result=\"unreachable\"}")
    });
    assert_eq!(sample(&body, "tandem_node_ready"), Some(0.0), "{body}");
    assert!(
        node.0.try_wait().unwrap().is_none(),
        "the node exited without L1"
    );

    // The rollup is deployed and L1 comes up behind the proxy: the node binds on a later attempt.
    deploy_network(&anvil, &config, &dir.path().join("deployment.json"));
    proxy.connect_to(&anvil.endpoint());
    let body = wait_for_metrics(addr, "the node ready", |body| {
        sample(body, "tandem_node_ready") == Some(1.0)
    });
    assert!(body.contains("tandem_node_current_slot"), "{body}");

    let exit = stop(&mut node);
    assert!(exit.success(), "exit status {exit:?}");
    let log = node.stderr();
    assert!(log.contains("not ready: L1 unreachable"), "{log}");
    assert!(log.contains("bound to the rollup deployment"), "{log}");
}

#[tokio::test]
async fn run_refuses_a_configuration_that_disagrees_with_the_deployment() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let genesis = now_secs();
    let deployment = dir.path().join("deployment.json");
    let l1 = format!(
        "[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n",
        anvil.endpoint(),
        deployment.display()
    );
    let config = write_run_config(
        dir.path(),
        &format!("{}{l1}", protocol_section(genesis)),
        free_port(),
    );
    deploy_network(&anvil, &config, &deployment);

    // Another slot duration, and one more genesis account than the network was deployed with.
    let wrong = protocol_section(genesis)
        .replace("slot_duration = \"8s\"", "slot_duration = \"12s\"")
        .replace(
            "balance = \"1000\" }]",
            "balance = \"1000\" }, { address = \"0x4444444444444444444444444444444444444444\", balance = \"1\" }]",
        );
    let wrong_config = write_run_config(dir.path(), &format!("{wrong}{l1}"), free_port());
    let err = refused(tandem().args(["run", "--config"]).arg(&wrong_config));
    assert!(
        err.contains(
            "protocol.slot_duration: the configuration says 12s, the rollup contract says 8s"
        ),
        "{err}"
    );
    assert!(
        err.contains("protocol.genesis_allocation: its genesis block gives the archive"),
        "{err}"
    );

    // The deployment file of another L1 chain: refused at once, naming both chain ids (not
    // retried as "no code at the address yet").
    let text = std::fs::read_to_string(&deployment).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["l1_chain_id"], 31_337);
    json["l1_chain_id"] = 1.into();
    std::fs::write(&deployment, json.to_string()).unwrap();
    let config = write_run_config(
        dir.path(),
        &format!("{}{l1}", protocol_section(genesis)),
        free_port(),
    );
    let err = refused(tandem().args(["run", "--config"]).arg(&config));
    assert!(
        err.contains(&format!(
            "l1.deployment_file: {} is a deployment on L1 chain 1, the L1 node at {} reports chain 31337",
            deployment.display(),
            anvil.endpoint()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn run_checks_the_budgets_against_the_deployment_after_binding() {
    // The validator's [protocol] pins nothing: offline, its 5 s checkpoint init fits the
    // default 72 s slots. The deployment has 8 s slots, where it leaves no room for a block.
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deployment.json");
    let network = dir.path().join("network.toml");
    std::fs::write(&network, protocol_section(now_secs())).unwrap();
    deploy_network(&anvil, &network, &deployment);

    let keystore = dir.path().join("validator.json");
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2\n").unwrap();
    let created = run(tandem()
        .args(["keys", "new", "--out"])
        .arg(&keystore)
        .arg("--password-file")
        .arg(&password));
    assert!(created.status.success(), "{}", stderr(&created));
    let section = format!(
        "[protocol]\n{ALLOCATION}[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n\
         [sequencer]\ncheckpoint_init_time = \"5s\"\n\
         [validator]\nkeystore = \"{}\"\npassword_file = \"{}\"\n",
        anvil.endpoint(),
        deployment.display(),
        keystore.display(),
        password.display()
    );
    let config = write_run_config(dir.path(), &section, free_port());
    let as_validator = |command: &mut Command| {
        command.env("TANDEM__NODE__ROLE", "validator");
    };
    let mut check = tandem();
    as_validator(check.args(["config", "check"]).arg(&config));
    let checked = run(&mut check);
    assert!(checked.status.success(), "{}", stderr(&checked));

    let mut command = tandem();
    as_validator(&mut command);
    let err = refused(command.args(["run", "--config"]).arg(&config));
    assert!(
        err.contains("the configuration does not fit the deployment's constants"),
        "{err}"
    );
    assert!(
        err.contains(
            "sequencer.checkpoint_init_time: the pipelined schedule has no room for one block of \
             protocol.block_duration 2s in protocol.slot_duration 8s"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn l1_deploy_writes_a_deployment_file() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let deployer = anvil.dev_key(1);
    let key_file = write_key_file(&deployer, &dir.path().join("deployer.key"));
    let out = dir.path().join("deployment.json");
    let validators = format!("{VALIDATOR},0x2222222222222222222222222222222222222222");
    let output = deploy(
        &anvil.endpoint(),
        &validators,
        &key_file,
        &out,
        &[OsStr::new("--slot-duration"), OsStr::new("24s")],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let deployment = tandem_l1::Deployment::load(&out).unwrap();
    assert_eq!(stdout(&output).trim(), deployment.rollup.to_string());
    // The genesis archive is the one of the (empty) allocation's genesis block, never the empty
    // archive.
    let spec = tandem_state::ChainSpec {
        chain_id: 1337,
        rollup_version: 1,
        genesis_allocation: Vec::new(),
    };
    assert_eq!(
        deployment.params.genesis_archive,
        spec.genesis_archive_root()
    );
    assert_ne!(
        deployment.params.genesis_archive,
        tandem_proto::archive::ArchiveTree::new().root()
    );
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

    // A second deploy to the same file is refused; a bad key file is named; the mode has one
    // spelling, the configuration's.
    let output = deploy(&anvil.endpoint(), &validators, &key_file, &out, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    let other = dir.path().join("other.json");
    let output = deploy(
        &anvil.endpoint(),
        &validators,
        &key_file,
        &other,
        &[OsStr::new("--pipelining-mode"), OsStr::new("non-pipelined")],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("expected pipelined or non_pipelined"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&key_file, "not a key").unwrap();
    let output = deploy(&anvil.endpoint(), &validators, &key_file, &other, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--password-file"),
        "{}",
        stderr(&output)
    );
}
