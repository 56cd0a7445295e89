//! Restart a validator of a running devnet: it rejoins with every peer and attests again.

use super::*;

/// Slots per epoch of the `ci` profile.
const EPOCH_SLOTS: u64 = 4;

/// A validator on the committees of the current and the next epoch, read from L1.
fn on_both_committees(file: &Value, nodes: &[Value]) -> Value {
    let url = nodes[0]["rpcUrl"].as_str().unwrap();
    let info = rpc(url, "tandem_nodeInfo", json!([]));
    let genesis = number(&info["deployment"]["genesisTime"]);
    let slot_secs = number(&info["deployment"]["slotDuration"]);
    let epoch = (now_secs() - genesis) / slot_secs / EPOCH_SLOTS;
    let l1: alloy::transports::http::reqwest::Url =
        file["l1RpcUrl"].as_str().unwrap().parse().unwrap();
    let rollup = file["rollup"].as_str().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let [now, next] = runtime.block_on(async {
        use alloy::providers::{Provider, ProviderBuilder};
        let reader =
            tandem_l1::L1Reader::new(ProviderBuilder::new().connect_http(l1).erased(), rollup);
        let latest = alloy::eips::BlockId::latest();
        [
            reader.committee(epoch, latest).await.unwrap().members,
            reader.committee(epoch + 1, latest).await.unwrap().members,
        ]
    });
    nodes[..4]
        .iter()
        .find(|node| {
            let address: tandem_proto::Address =
                node["validator"].as_str().unwrap().parse().unwrap();
            now.contains(&address) && next.contains(&address)
        })
        .unwrap_or_else(|| panic!("no validator on both committees: {now:?}, {next:?}"))
        .clone()
}

#[test]
fn a_restarted_validator_rejoins_and_attests_again() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let mut running = devnet(&data, &[]);
    let file = wait_for_devnet_file(&data);
    let nodes = file["nodes"].as_array().unwrap().clone();
    for node in &nodes {
        wait_for_http(
            addr(node["rpcUrl"].as_str().unwrap()),
            "/ready",
            "readiness",
            Duration::from_secs(60),
            |r| r.starts_with("HTTP/1.1 200"),
        );
    }

    // Txs keep the proposers building, so committees attest.
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n["rpcUrl"].as_str().unwrap().to_string())
        .collect();
    let sender = TxSender::start(urls, 1, Duration::from_millis(500));

    // The validator to restart sits on this epoch's committee and the next one's (3 of 4
    // each: at least two do), so it has proposals to attest to once it is back whenever the
    // epoch turns.
    let restarted = on_both_committees(&file, &nodes);
    // It attests to another proposer's checkpoint before the restart...
    let deadline = Instant::now() + Duration::from_secs(60);
    while attestations_signed(&restarted) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} did not attest within 60 s: {}",
            restarted["name"],
            metrics_of(&restarted)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // ...stops, starts again from its config without init mode (it reopens its stores and
    // its signing record), rejoins with 4 peers and attests again.
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
    // restart.
    let restarted_at = Instant::now();
    let deadline = restarted_at + Duration::from_secs(45);
    while attestations_signed(&restarted) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} did not attest after its restart: {}",
            restarted["name"],
            metrics_of(&restarted)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{} attested {:?} after its restart was ready ({:?} into the test)",
        restarted["name"],
        restarted_at.elapsed(),
        started.elapsed()
    );
    let exit = stop(&mut again);
    assert!(exit.success(), "restarted {}: {exit:?}", restarted["name"]);
    drop(sender.finish());

    let exit = interrupt(&mut running);
    let log = running.stderr();
    assert!(exit.success(), "exit {exit:?}: {log}");
    for node in &nodes {
        let pid = node["pid"].as_u64().unwrap();
        assert!(!alive(pid), "{} (pid {pid}) still runs", node["name"]);
    }
}
