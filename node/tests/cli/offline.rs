//! Commands that need no L1: `timetable`, `config`, `keys`.

use crate::common::*;

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
    // 837 txs of 141 bytes fit the default 120 KiB body in 10 blocks, 843 in 8.
    assert_eq!(json["pipelined"]["max_txs_per_block"], 83);
    assert_eq!(json["non_pipelined"]["max_txs_per_block"], 105);
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
    // 833 txs in 11 blocks: the old fixed default of 80 per block would overflow the cap.
    assert_eq!(json["pipelined"]["max_txs_per_block"], 75);
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

/// Every `tandem …` line of the README's "Using the binary" block runs as written (from a
/// directory holding the files the lines name), except those that need a running L1
/// (`run`, `l1 deploy`; tested in `run.rs` and `deploy.rs`).
#[test]
fn the_readme_commands_run_as_written() {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("## Using the binary")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a \"Using the binary\" sh block");
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
    copy_dir(
        &root.join("deploy/config"),
        &dir.path().join("deploy/config"),
    );
    std::fs::write(dir.path().join("node.toml"), "[p2p]\nmax_peers = 20\n").unwrap();
    std::fs::write(dir.path().join("pw"), "correct horse\n").unwrap();
    let mut ran = 0;
    for line in block.lines() {
        let command = line.split(" # ").next().unwrap().trim();
        let Some(args) = command.strip_prefix("tandem ") else {
            continue;
        };
        if args.starts_with("run ") || args.starts_with("l1 ") {
            continue;
        }
        let args: Vec<&str> = args.split_whitespace().collect();
        let output = run(tandem().current_dir(dir.path()).args(&args));
        assert!(
            output.status.success(),
            "`{command}` failed: {}{}",
            stdout(&output),
            stderr(&output)
        );
        ran += 1;
    }
    assert!(ran >= 7, "only {ran} README commands found");
    // The example validator config checks, naming its missing key files with the fix; strict
    // mode refuses them.
    let example = dir.path().join("deploy/config/validator.example.toml");
    let output = run(tandem().args(["config", "check"]).arg(&example));
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(
        warnings.contains(
            "warning: validator.keystore: ./keys/validator.json does not exist yet: create it \
             with `tandem keys new --out ./keys/validator.json --password-file <file>`"
        ),
        "{warnings}"
    );
    let output = run(tandem().args(["config", "check", "--strict"]).arg(&example));
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("validator.keystore: ./keys/validator.json is not a readable file"),
        "{}",
        stderr(&output)
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
