//! Helpers every test of the binary uses: running `tandem`, test networks on anvil, configs,
//! key files, polling `/metrics`, waiting for the node to exit.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::signers::local::PrivateKeySigner;

pub(crate) fn tandem() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    // The test environment must not leak overrides into the binary.
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM") {
            command.env_remove(key);
        }
    }
    command
}

pub(crate) fn run(command: &mut Command) -> Output {
    command.output().expect("tandem runs")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
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
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Everything the node wrote to stderr (call after it exited).
    pub(crate) fn stderr(&mut self) -> String {
        let mut log = String::new();
        self.0
            .stderr
            .take()
            .expect("stderr is read once, from a process spawned with a piped stderr")
            .read_to_string(&mut log)
            .unwrap();
        log
    }
}

/// Starts `command` in the background, stderr captured.
pub(crate) fn spawn(command: &mut Command) -> Running {
    Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// `tandem run --config config` in the background.
pub(crate) fn spawn_node(config: &Path) -> Running {
    spawn(tandem().args(["run", "--config"]).arg(config))
}

pub(crate) fn write_run_config(dir: &Path, extra: &str, metrics_port: u16) -> PathBuf {
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
pub(crate) const ALLOCATION: &str = "genesis_allocation = [{ address = \"0x3333333333333333333333333333333333333333\", balance = \"1000\" }]\n";

/// The `[protocol]` section of the test network: 8 s slots of 2 s L1 blocks.
pub(crate) fn protocol_section(genesis: u64) -> String {
    format!(
        "[protocol]\ngenesis_time = {genesis}\nslot_duration = \"8s\"\nl1_slot_duration = \"2s\"\n\
         block_duration = \"2s\"\nepoch_duration = 4\ncommittee_size = 1\n{ALLOCATION}"
    )
}

/// Writes `signer`'s key as a 0x-hex key file (what `tandem l1 deploy --key` reads).
pub(crate) fn write_key_file(signer: &PrivateKeySigner, path: &Path) -> PathBuf {
    std::fs::write(
        path,
        format!("0x{}\n", alloy::hex::encode(signer.to_bytes())),
    )
    .unwrap();
    path.to_path_buf()
}

/// The validator every test network registers.
pub(crate) const VALIDATOR: &str = "0x1111111111111111111111111111111111111111";

/// `tandem l1 deploy` against `rpc` with the given validators, key file, output file and extra
/// flags (e.g. `--config FILE`, `--slot-duration 24s`).
pub(crate) fn deploy(
    rpc: &str,
    validators: &str,
    key: &Path,
    out: &Path,
    extra: &[&OsStr],
) -> Output {
    run(tandem()
        .args(["l1", "deploy", "--rpc", rpc, "--validators", validators])
        .args(extra)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out))
}

/// Deploys the test network `config` describes, with anvil's dev key 1, to `out`.
pub(crate) fn deploy_network(anvil: &tandem_l1::harness::AnvilHarness, config: &Path, out: &Path) {
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

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `/metrics` until `predicate` holds for the body.
pub(crate) fn wait_for_metrics(
    addr: SocketAddr,
    what: &str,
    predicate: impl Fn(&str) -> bool,
) -> String {
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

pub(crate) fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// Waits for the node to exit by itself.
pub(crate) fn wait_exit(node: &mut Running, within: Duration) -> std::process::ExitStatus {
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
pub(crate) fn refused(command: &mut Command) -> String {
    let mut node = spawn(command);
    let exit = wait_exit(&mut node, Duration::from_secs(30));
    let err = node.stderr();
    assert!(!exit.success(), "exit status {exit:?}: {err}");
    err
}

pub(crate) fn stop(node: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_exit(node, Duration::from_secs(20))
}

/// The address `[rpc] listen_addr` of the config file at `config` names.
pub(crate) fn rpc_addr_of(config: &Path) -> SocketAddr {
    let table: toml::Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
    table["rpc"]["listen_addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// An HTTP request with a body; the whole response (status line, headers, body).
pub(crate) fn http_post(addr: SocketAddr, path: &str, body: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The body of an HTTP response.
pub(crate) fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Polls `GET path` until `predicate` holds for the whole response.
pub(crate) fn wait_for_http(
    addr: SocketAddr,
    path: &str,
    what: &str,
    within: Duration,
    predicate: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some(response) = http_get(addr, path) {
            if predicate(&response) {
                return response;
            }
            last = Some(response);
        }
        assert!(
            Instant::now() < deadline,
            "no {what} at {addr}{path} within {within:?}; last answer: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
