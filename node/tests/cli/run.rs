//! `tandem run` against anvil: metrics and shutdown, refusals, binding after L1 comes up.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    process::Command,
    time::Duration,
};

use crate::common::*;
use crate::proxy::SwitchedProxy;

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
    assert_eq!(sample(&body, "tandem_node_bound"), Some(1.0), "{body}");
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
    // One block a second, as on a real L1: readiness needs fresh heads to measure the clock.
    let anvil = tandem_l1::harness::AnvilHarness::start(Some(1.0));
    let rollup = anvil.dev_key(1).address().create(0);
    let section = format!(
        "{}[l1]\nrpc_url = \"{}\"\nrollup_address = \"{rollup}\"\nmax_retry_interval = \"1s\"\n",
        protocol_section(now_secs()),
        proxy.url()
    );
    let config = write_run_config(dir.path(), &section, metrics_port);
    // Alone on its network: no peers needed to be ready.
    let mut node = spawn(
        tandem()
            .env("TANDEM__P2P__MIN_PEERS", "0")
            .args(["run", "--config"])
            .arg(&config),
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics_port));
    let rpc = rpc_addr_of(&config);
    let body = wait_for_metrics(addr, "a failed L1 attempt", |body| {
        body.contains("tandem_node_l1_bind_attempts_total{result=\"unreachable\"}")
    });
    assert_eq!(sample(&body, "tandem_node_ready"), Some(0.0), "{body}");
    assert_eq!(sample(&body, "tandem_node_bound"), Some(0.0), "{body}");
    assert!(
        node.0.try_wait().unwrap().is_none(),
        "the node exited without L1"
    );
    // Alive but not ready, on both ports, saying why.
    for port in [addr, rpc] {
        let health = http_get(port, "/health").unwrap();
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert_eq!(body_of(&health), r#"{"status":"ok"}"#);
        let ready = http_get(port, "/ready").unwrap();
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        let report: serde_json::Value = serde_json::from_str(body_of(&ready)).unwrap();
        assert_eq!(report["ready"], false);
        assert_eq!(
            report["reasons"][0],
            "not bound to the rollup deployment yet (L1 unreachable or still starting)"
        );
    }

    // The rollup is deployed and L1 comes up behind the proxy: the node binds on a later attempt.
    deploy_network(&anvil, &config, &dir.path().join("deployment.json"));
    proxy.connect_to(&anvil.endpoint());
    // Bound, and the slot ticker (started after binding) running.
    wait_for_metrics(addr, "the node bound", |body| {
        sample(body, "tandem_node_bound") == Some(1.0) && body.contains("tandem_node_current_slot")
    });
    // Synced to L1 (anvil mines a block per second), world state at genesis, clock measured.
    let ready = wait_for_http(rpc, "/ready", "readiness", Duration::from_secs(30), |r| {
        r.starts_with("HTTP/1.1 200")
    });
    let report: serde_json::Value = serde_json::from_str(body_of(&ready)).unwrap();
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["reasons"], serde_json::json!([]), "{report}");
    // Measured; how far it may be off is unit-tested in `run::health` (whole-second L1
    // timestamps put the estimate within ±500 ms of the truth, so no tighter claim holds here).
    assert!(report["clockOffsetMs"].is_i64(), "{report}");
    assert!(report["l1Synced"].as_u64().is_some(), "{report}");
    let body = wait_for_metrics(addr, "the ready gauge", |body| {
        sample(body, "tandem_node_ready") == Some(1.0)
    });
    assert!(
        sample(&body, "tandem_node_l1_head_block").unwrap() >= 1.0,
        "{body}"
    );
    assert!(body.contains("tandem_node_clock_offset_seconds"), "{body}");

    // L1 hangs (accepts, never answers): the verdict must not freeze on "ready". The health
    // probe gives up after min(E, 2 s), the reason holds for the 2 s grace, then 503.
    proxy.hang();
    let outage = wait_for_http(
        rpc,
        "/ready",
        "not ready while L1 hangs",
        Duration::from_secs(20),
        |r| r.starts_with("HTTP/1.1 503"),
    );
    let report: serde_json::Value = serde_json::from_str(body_of(&outage)).unwrap();
    assert!(
        report["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("L1 does not answer")),
        "{report}"
    );
    // L1 is back (its held connections reset, as a restarted L1 node would): ready again.
    proxy.resume();
    wait_for_http(
        rpc,
        "/ready",
        "ready after the outage",
        Duration::from_secs(45),
        |r| r.starts_with("HTTP/1.1 200"),
    );

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

    let [keystore, publisher, password] = validator_keys(dir.path());
    let section = format!(
        "[protocol]\n{ALLOCATION}[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n\
         [sequencer]\ncheckpoint_init_time = \"5s\"\n\
         [validator]\nkeystore = \"{}\"\npassword_file = \"{}\"\n\
         [publisher]\nkeystores = [\"{}\"]\npassword_file = \"{}\"\n",
        anvil.endpoint(),
        deployment.display(),
        keystore.display(),
        password.display(),
        publisher.display(),
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
async fn run_refuses_a_data_dir_of_another_deployment() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deployment.json");
    let network = dir.path().join("network.toml");
    std::fs::write(&network, protocol_section(now_secs())).unwrap();
    deploy_network(&anvil, &network, &deployment);
    // The node's [protocol] is the deployed network's.
    let section = format!(
        "{}[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n",
        std::fs::read_to_string(&network).unwrap(),
        anvil.endpoint(),
        deployment.display()
    );
    let config = write_run_config(dir.path(), &section, free_port());
    let marker = dir.path().join("data").join("datadir.json");
    let first_rollup = {
        let text = std::fs::read_to_string(&deployment).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["rollup"].as_str().unwrap().to_lowercase()
    };
    let mut node = spawn_node(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&marker)
        .unwrap_or_default()
        .to_lowercase()
        .contains(&first_rollup)
    {
        if let Some(exit) = node.0.try_wait().unwrap() {
            panic!(
                "the node exited ({exit:?}) before binding: {}",
                node.stderr()
            );
        }
        // (Its stderr is read only once it exited: reading it now would block.)
        assert!(
            std::time::Instant::now() < deadline,
            "the data dir was not bound within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = stop(&mut node);
    assert!(stopped.success(), "{stopped:?}: {}", node.stderr());

    // Same parameters, same genesis, a new contract: the old stores must not be resumed.
    std::fs::remove_file(&deployment).unwrap();
    deploy_network(&anvil, &network, &deployment);
    let err = refused(tandem().args(["run", "--config"]).arg(&config));
    assert!(
        err.to_lowercase().contains(&format!(
            "belongs to rollup {first_rollup} on l1 chain 31337"
        )),
        "{err}"
    );
    assert!(err.contains("use another data dir"), "{err}");
}

#[tokio::test]
async fn a_validator_without_a_signing_record_refuses_to_start_unless_told_to_create_one() {
    let anvil = tandem_l1::harness::AnvilHarness::start(None);
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deployment.json");
    let network = dir.path().join("network.toml");
    std::fs::write(&network, protocol_section(now_secs())).unwrap();
    deploy_network(&anvil, &network, &deployment);
    let [keystore, publisher, password] = validator_keys(dir.path());
    let section = format!(
        "{}[l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n\
         [validator]\nkeystore = \"{}\"\npassword_file = \"{}\"\n\
         [publisher]\nkeystores = [\"{}\"]\npassword_file = \"{}\"\n",
        std::fs::read_to_string(&network).unwrap(),
        anvil.endpoint(),
        deployment.display(),
        keystore.display(),
        password.display(),
        publisher.display(),
        password.display()
    );
    let config = write_run_config(dir.path(), &section, free_port());
    let err = refused(
        tandem()
            .env("TANDEM__NODE__ROLE", "validator")
            .args(["run", "--config"])
            .arg(&config),
    );
    assert!(
        err.contains("no slashing protection record at")
            && err.contains("--init-slashing-protection"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("data/validator/slashing-protection")
            .join("CURRENT")
            .exists(),
        "a record was created without init mode"
    );
}

/// A validator keystore, a publisher keystore and their password file in `dir`.
fn validator_keys(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let password = dir.join("password");
    std::fs::write(&password, "hunter2\n").unwrap();
    let [keystore, publisher] = ["validator.json", "publisher.json"].map(|name| {
        let path = dir.join(name);
        let created = run(tandem()
            .args(["keys", "new", "--out"])
            .arg(&path)
            .arg("--password-file")
            .arg(&password));
        assert!(created.status.success(), "{}", stderr(&created));
        path
    });
    [keystore, publisher, password]
}
