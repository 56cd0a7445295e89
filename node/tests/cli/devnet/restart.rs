//! Restart a validator of a running devnet: it rejoins with every peer and attests again.

use super::*;

/// Slots per epoch of the `ci` profile.
const EPOCH_SLOTS: u64 = 4;

/// The committees (with their seeds) of epochs `epoch` and `epoch + 1`, read from L1.
fn committees(file: &Value, epoch: u64) -> [tandem_l1::EpochCommittee; 2] {
    let l1: alloy::transports::http::reqwest::Url =
        file["l1RpcUrl"].as_str().unwrap().parse().unwrap();
    let rollup = file["rollup"].as_str().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use alloy::providers::{Provider, ProviderBuilder};
        let reader =
            tandem_l1::L1Reader::new(ProviderBuilder::new().connect_http(l1).erased(), rollup);
        let latest = alloy::eips::BlockId::latest();
        [
            reader.committee(epoch, latest).await.unwrap(),
            reader.committee(epoch + 1, latest).await.unwrap(),
        ]
    })
}

/// The devnet's slot clock: (genesis time, slot seconds).
fn slot_clock(nodes: &[Value]) -> (u64, u64) {
    let info = rpc(
        nodes[0]["rpcUrl"].as_str().unwrap(),
        "tandem_nodeInfo",
        json!([]),
    );
    (
        number(&info["deployment"]["genesisTime"]),
        number(&info["deployment"]["slotDuration"]),
    )
}

fn address_of(node: &Value) -> tandem_proto::Address {
    node["validator"].as_str().unwrap().parse().unwrap()
}

/// A validator on the committees of the current and the next epoch.
fn on_both_committees(file: &Value, nodes: &[Value]) -> Value {
    let (genesis, slot_secs) = slot_clock(nodes);
    let epoch = (now_secs() - genesis) / slot_secs / EPOCH_SLOTS;
    let [now, next] = committees(file, epoch);
    let (now, next) = (now.members, next.members);
    nodes[..4]
        .iter()
        .find(|node| now.contains(&address_of(node)) && next.contains(&address_of(node)))
        .unwrap_or_else(|| panic!("no validator on both committees: {now:?}, {next:?}"))
        .clone()
}

/// How long `node` may take to attest from now: until the end of the first slot, from the one
/// after next (whose build frame has not opened yet), whose committee holds `node` and whose
/// proposer is another validator, plus a slot. A fixed wait is not enough: `node` may itself be
/// the proposer of several slots in a row (it attests its own checkpoints in its sequencer,
/// which this counter does not count). Slots are looked up in the current and the next epoch
/// (the ones whose committees L1 has); if neither has such a slot, the epoch turn is awaited.
fn attest_within(file: &Value, nodes: &[Value], node: &Value) -> Duration {
    let (genesis, slot_secs) = slot_clock(nodes);
    let address = address_of(node);
    for _ in 0..3 {
        let now = now_secs();
        let current_slot = (now - genesis) / slot_secs;
        let epoch = current_slot / EPOCH_SLOTS;
        let committees = committees(file, epoch);
        let first = current_slot + 2;
        let last = (epoch + 2) * EPOCH_SLOTS;
        for slot in first..last {
            let committee = &committees[usize::from(slot / EPOCH_SLOTS > epoch)];
            if committee.members.contains(&address) && committee.proposer_of(slot) != Some(address)
            {
                let slot_end = genesis + (slot + 1) * slot_secs;
                return Duration::from_secs(slot_end - now + slot_secs);
            }
        }
        // Waiting for the wall clock itself: the next epoch's committee is read once it starts.
        let epoch_end = genesis + (epoch + 1) * EPOCH_SLOTS * slot_secs;
        while now_secs() < epoch_end {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    panic!(
        "{} had no other proposer's slot to attest for three epochs",
        node["name"]
    )
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
    let within = attest_within(&file, &nodes, &restarted);
    let deadline = Instant::now() + within;
    while attestations_signed(&restarted) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} did not attest within {within:?}: {}",
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
    // Its stderr goes on in its devnet log file (the devnet's own children write there too):
    // an unread pipe could block its logging, and the log is kept for diagnosis.
    let log_file = std::fs::OpenOptions::new()
        .append(true)
        .open(restarted["logFile"].as_str().unwrap())
        .unwrap();
    let mut again = Running(
        tandem()
            .args(["run", "--config"])
            .arg(restarted["config"].as_str().unwrap())
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
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
    let within = attest_within(&file, &nodes, &restarted);
    let deadline = Instant::now() + within;
    while attestations_signed(&restarted) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} did not attest within {within:?} of its restart: {}",
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
