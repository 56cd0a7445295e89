//! `tandem l1 deploy` and the deployment file it writes.

use std::ffi::OsStr;

use crate::common::*;

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
