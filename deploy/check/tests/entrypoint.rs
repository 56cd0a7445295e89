//! deploy/docker/entrypoint.sh, run with bash as the image runs it, with a stand-in `tandem` on
//! PATH that prints what it was given (the entrypoint ends by exec'ing it).

use std::{
    path::Path,
    process::{Command, Output},
};

use tandem_deploy_check::repo_root;

/// Runs the entrypoint with `run --config node.toml`, `env` and the data dir `data`.
fn entrypoint(bin: &Path, data: &Path, env: &[(&str, &str)]) -> Output {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    Command::new("bash")
        .arg(repo_root().join("deploy/docker/entrypoint.sh"))
        .args(["run", "--config", "node.toml"])
        .env_clear()
        .env("PATH", path)
        .env("TANDEM__NODE__DATA_DIR", data)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stand_in_tandem(dir: &Path) {
    let script = dir.join("tandem");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'bootnodes=%s\\n' \"${TANDEM__P2P__BOOTNODES:-unset}\"\nprintf 'arg=%s\\n' \"$@\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
}

#[test]
fn bootnodes_resolve_the_key_is_copied_and_slashing_protection_is_initialised_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    stand_in_tandem(&bin);
    let data = tmp.path().join("data");
    let key = tmp.path().join("node.key");
    std::fs::write(&key, "key bytes").unwrap();
    let env = [
        (
            "TANDEM_BOOTNODE_DNS",
            "localhost:40400/12D3KooWa   localhost:40401/12D3KooWb",
        ),
        ("TANDEM_NODE_KEY_FILE", key.to_str().unwrap()),
        ("TANDEM_INIT_SLASHING_PROTECTION_IF_MISSING", "1"),
    ];
    let out = entrypoint(&bin, &data, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "bootnodes=[\"/ip4/127.0.0.1/tcp/40400/p2p/12D3KooWa\", \
         \"/ip4/127.0.0.1/tcp/40401/p2p/12D3KooWb\"]\n\
         arg=run\narg=--config\narg=node.toml\narg=--init-slashing-protection\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("p2p/node.key")).unwrap(),
        "key bytes"
    );
    // Once the record exists the flag is not added again.
    std::fs::create_dir_all(data.join("validator/slashing-protection")).unwrap();
    let out = entrypoint(&bin, &data, &env);
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .ends_with("arg=node.toml\n")
    );
}

#[test]
fn a_bootnode_entry_that_is_not_host_port_peer_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    stand_in_tandem(tmp.path());
    for entry in [
        "localhost:40400",
        "localhost:40400/",
        "localhost/12D3KooWa",
        "localhost:p2p/12D3KooWa",
        ":40400/12D3KooWa",
        "localhost:40400/12D3KooWa/extra",
    ] {
        let out = entrypoint(
            tmp.path(),
            &tmp.path().join("data"),
            &[("TANDEM_BOOTNODE_DNS", entry)],
        );
        assert_eq!(out.status.code(), Some(64), "{entry}");
        assert!(out.stdout.is_empty(), "{entry}: tandem must not start");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!("'{entry}' is not HOST:PORT/PEER_ID")),
            "{entry}: {stderr}"
        );
    }
}
