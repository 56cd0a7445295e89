//! `tandem devnet --emit-compose DIR`: the configs and keys `deploy/compose/docker-compose.yml`
//! runs (anvil, 4 validators, 1 full node, Prometheus, Grafana). The compose file mounts `DIR`
//! read-only at `/devnet` in every service; each node keeps its stores in its own volume at
//! `/data`, and a one-shot `deploy` service writes the deployment into a shared volume.
//!
//! ```text
//! DIR/network.toml             the [protocol] section the rollup is deployed with
//! DIR/deploy.sh                deploys the rollup once (run by the compose `deploy` service)
//! DIR/compose.env              L1 block time for anvil
//! DIR/keys/password            keystore password of every key below
//! DIR/keys/deployer.key        anvil's dev key 0 (the rollup owner)
//! DIR/<node>/node.toml         the node's config (paths are container paths)
//! DIR/<node>/p2p/node.key      its libp2p identity (the entrypoint copies it into /data)
//! DIR/<node>/keys/*.json       validator and publisher keystores (validators)
//! ```
//!
//! Test keys only, readable by every user (the containers run as another uid than the one that
//! wrote them): this is a local network, never a deployment.

use std::{os::unix::fs::PermissionsExt, path::Path};

use alloy::signers::local::PrivateKeySigner;
use eyre::{WrapErr, bail};
use tandem_proto::{Address, SigningKey};

use super::{DEPLOYER_KEY, plan, plan::Profile};

/// The compose network's subnet (also in deploy/compose/docker-compose.yml).
pub(crate) const SUBNET_PREFIX: &str = "172.30.0";
/// Ports every node listens on inside its container.
pub(crate) const P2P_PORT: u16 = 40400;
pub(crate) const RPC_PORT: u16 = 8080;
pub(crate) const METRICS_PORT: u16 = 9464;
/// How the nodes reach anvil.
const L1_RPC_URL: &str = "http://anvil:8545";
/// Where the compose file mounts `DIR`, the shared deployment and each node's data.
const DEVNET_MOUNT: &str = "/devnet";
const DEPLOYMENT_FILE: &str = "/shared/deployment.json";
const DATA_DIR: &str = "/data";
/// The node counts the committed compose file runs.
const VALIDATORS: usize = 4;
const FULLNODES: usize = 1;

/// anvil's dev keys 1..=4 (public test keys, funded by anvil at start): the publishers' L1
/// accounts, so no funding step is needed.
const PUBLISHER_KEYS: [&str; VALIDATORS] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
];

/// One node of the compose stack.
struct ComposeNode {
    name: String,
    role: &'static str,
    ip: String,
    peer: tandem_p2p::PeerId,
}

impl ComposeNode {
    fn p2p_addr(&self) -> String {
        format!("/ip4/{}/tcp/{P2P_PORT}/p2p/{}", self.ip, self.peer)
    }

    fn mount(&self) -> String {
        format!("{DEVNET_MOUNT}/{}", self.name)
    }
}

/// The container address of validator `index` (validators) or full node `index`.
pub(crate) fn node_ip(role: &str, index: usize) -> String {
    let base = if role == "validator" { 10 } else { 20 };
    format!("{SUBNET_PREFIX}.{}", base + index)
}

/// Writes everything the compose stack needs into `dir` (which must not hold one already).
pub(crate) fn emit(
    dir: &Path,
    profile: &Profile,
    validators: usize,
    fullnodes: usize,
) -> eyre::Result<()> {
    if validators != VALIDATORS || fullnodes != FULLNODES {
        bail!(
            "--emit-compose: deploy/compose/docker-compose.yml runs {VALIDATORS} validators and \
             {FULLNODES} full node; leave --validators and --fullnodes at their defaults"
        );
    }
    if dir.join("network.toml").exists() {
        bail!(
            "--emit-compose: {} already holds a compose devnet (new keys would not match its \
             volumes); remove it, and `docker compose down -v`, to start over",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
    let password_file = plan::password_file(dir)?;
    readable(&password_file)?;
    let password = crate::keys::read_password_file(&password_file)?;
    let deployer = dir.join("keys").join("deployer.key");
    write(&deployer, &format!("{DEPLOYER_KEY}\n"))?;

    let mut nodes = Vec::new();
    let mut validator_addresses = Vec::new();
    let roles = std::iter::repeat_n("validator", validators)
        .chain(std::iter::repeat_n("full_node", fullnodes));
    let (mut v, mut f) = (0, 0);
    for role in roles {
        let (name, index) = if role == "validator" {
            v += 1;
            (format!("validator-{}", v - 1), v - 1)
        } else {
            f += 1;
            (format!("fullnode-{}", f - 1), f - 1)
        };
        let node_dir = dir.join(&name);
        let key_path = node_dir.join("p2p").join("node.key");
        let peer = tandem_p2p::load_or_create_node_key(&key_path)?
            .public()
            .to_peer_id();
        readable(&key_path)?;
        if role == "validator" {
            let validator =
                crate::keys::create_keystore(&node_dir.join("keys/validator.json"), &password)?;
            readable(&node_dir.join("keys/validator.json"))?;
            import_keystore(
                &node_dir.join("keys/publisher.json"),
                PUBLISHER_KEYS[index],
                &password,
            )?;
            validator_addresses.push(validator.address());
        }
        nodes.push(ComposeNode {
            ip: node_ip(role, index),
            name,
            role,
            peer,
        });
    }

    let protocol = plan::protocol_section(profile, validators);
    write(&dir.join("network.toml"), &protocol)?;
    write(&dir.join("deploy.sh"), &deploy_script(&validator_addresses))?;
    write(
        &dir.join("compose.env"),
        &format!(
            "# Written by `tandem devnet --emit-compose` (profile {}).\nL1_BLOCK_TIME={}\n",
            profile.name, profile.l1_slot_secs
        ),
    )?;
    let poll_ms = (profile.l1_slot_secs * 1000 / 4).max(100);
    for node in &nodes {
        let bootnodes: Vec<String> = nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(ComposeNode::p2p_addr)
            .collect();
        let text = node_config(node, &protocol, &bootnodes, poll_ms);
        write(&dir.join(&node.name).join("node.toml"), &text)?;
    }
    Ok(())
}

fn node_config(node: &ComposeNode, protocol: &str, bootnodes: &[String], poll_ms: u64) -> String {
    let bootnodes = bootnodes
        .iter()
        .map(|addr| format!("{addr:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let min_peers = (VALIDATORS + FULLNODES - 1).min(4);
    let mut text = format!(
        "# Written by `tandem devnet --emit-compose`: {name} of deploy/compose/docker-compose.yml.\n\
         # Paths are container paths ({DEVNET_MOUNT} is the emitted directory).\n\
         [node]\nrole = \"{role}\"\ndata_dir = \"{DATA_DIR}\"\n\n{protocol}\n\
         [l1]\nrpc_url = \"{L1_RPC_URL}\"\ndeployment_file = \"{DEPLOYMENT_FILE}\"\n\n\
         [p2p]\nlisten_addr = \"0.0.0.0:{P2P_PORT}\"\nbootnodes = [{bootnodes}]\nmin_peers = {min_peers}\n\n\
         [archiver]\nl1_poll_interval = \"{poll_ms}ms\"\n\n\
         [rpc]\nlisten_addr = \"0.0.0.0:{RPC_PORT}\"\n\n\
         [metrics]\nlisten_addr = \"0.0.0.0:{METRICS_PORT}\"\n",
        name = node.name,
        role = node.role,
    );
    if node.role == "validator" {
        let mount = node.mount();
        text.push_str(&format!(
            "\n[validator]\nkeystore = \"{mount}/keys/validator.json\"\npassword_file = \"{DEVNET_MOUNT}/keys/password\"\n\n\
             [publisher]\nkeystores = [\"{mount}/keys/publisher.json\"]\npassword_file = \"{DEVNET_MOUNT}/keys/password\"\n"
        ));
    }
    text
}

fn deploy_script(validators: &[Address]) -> String {
    let list = validators
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "#!/bin/sh\n\
         # Written by `tandem devnet --emit-compose`: deploys the rollup once; the deployment\n\
         # volume keeps the file across restarts (anvil keeps its state in its own volume).\n\
         set -eu\n\
         if [ -f {DEPLOYMENT_FILE} ]; then\n  echo \"deploy: {DEPLOYMENT_FILE} exists\"\n  exit 0\nfi\n\
         exec tandem l1 deploy --rpc {L1_RPC_URL} --key {DEVNET_MOUNT}/keys/deployer.key \\\n  \
         --config {DEVNET_MOUNT}/network.toml --validators {list} --out {DEPLOYMENT_FILE}\n"
    )
}

/// Writes the keystore of a known key (anvil's dev keys are public: importing them is the
/// point).
fn import_keystore(path: &Path, hex_key: &str, password: &str) -> eyre::Result<Address> {
    let bytes = alloy::hex::decode(hex_key)?;
    let key = SigningKey::from_bytes(
        &bytes
            .as_slice()
            .try_into()
            .wrap_err("a dev key is 32 bytes")?,
    )?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("publisher.json");
    PrivateKeySigner::encrypt_keystore(dir, &mut rand::thread_rng(), bytes, password, Some(name))
        .map_err(|err| eyre::eyre!("writing keystore {}: {err}", path.display()))?;
    readable(path)?;
    Ok(key.address())
}

fn write(path: &Path, text: &str) -> eyre::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).wrap_err_with(|| format!("writing {}", path.display()))?;
    readable(path)
}

/// World-readable: the containers' user is not the user that emitted the files.
fn readable(path: &Path) -> eyre::Result<()> {
    let mode = if path.extension().is_some_and(|ext| ext == "sh") {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .wrap_err_with(|| format!("setting permissions of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{CliOverrides, Config, Role};

    /// The emitted directory's path for a container path under [`DEVNET_MOUNT`].
    fn host_path(dir: &Path, container: &Path) -> Option<PathBuf> {
        container
            .strip_prefix(DEVNET_MOUNT)
            .ok()
            .map(|rest| dir.join(rest))
    }

    const COMPOSE: &str = include_str!("../../../deploy/compose/docker-compose.yml");

    fn load(path: &Path) -> Config {
        Config::load(Some(path), Vec::new(), &CliOverrides::default())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    #[test]
    fn publisher_keys_are_anvils_funded_dev_accounts() {
        let expected = [
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        ];
        let dir = tempfile::tempdir().unwrap();
        for (index, (key, address)) in PUBLISHER_KEYS.iter().zip(expected).enumerate() {
            let path = dir.path().join(format!("{index}.json"));
            let imported = import_keystore(&path, key, "pw").unwrap();
            assert_eq!(imported, address.parse::<Address>().unwrap());
            let loaded = crate::keys::load_keystore(&path, &{
                let pw = dir.path().join("pw");
                std::fs::write(&pw, "pw").unwrap();
                pw
            })
            .unwrap();
            assert_eq!(loaded.address(), imported);
        }
    }

    #[test]
    fn emitted_configs_check_and_match_the_compose_file() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::named("devnet").unwrap();
        emit(dir.path(), &profile, 4, 1).unwrap();
        let names = [
            "validator-0",
            "validator-1",
            "validator-2",
            "validator-3",
            "fullnode-0",
        ];
        let mut peers = Vec::new();
        for name in names {
            let key = dir.path().join(name).join("p2p/node.key");
            peers.push(
                tandem_p2p::load_or_create_node_key(&key)
                    .unwrap()
                    .public()
                    .to_peer_id(),
            );
        }
        for (index, name) in names.iter().enumerate() {
            let config = load(&dir.path().join(name).join("node.toml"));
            let (problems, missing) = config.check();
            assert_eq!(problems, Vec::new(), "{name}");
            // Every key file is a container path whose emitted file exists.
            for gap in &missing {
                let host = host_path(dir.path(), &gap.path).unwrap_or_else(|| {
                    panic!("{name}: {} is not under /devnet", gap.path.display())
                });
                assert!(host.is_file(), "{name}: {} missing", host.display());
            }
            assert_eq!(
                config.node.role == Role::Validator,
                name.starts_with("validator"),
                "{name}"
            );
            assert_eq!(config.p2p.listen_addr.port(), P2P_PORT);
            assert_eq!(config.rpc.listen_addr.port(), RPC_PORT);
            assert_eq!(config.metrics.listen_addr.port(), METRICS_PORT);
            // Bootnodes: every other node, at the address the compose file gives it.
            let mut expected: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, other_name)| {
                    let role = if other_name.starts_with("validator") {
                        "validator"
                    } else {
                        "full_node"
                    };
                    let role_index = if role == "validator" {
                        other
                    } else {
                        other - 4
                    };
                    format!(
                        "/ip4/{}/tcp/{P2P_PORT}/p2p/{}",
                        node_ip(role, role_index),
                        peers[other]
                    )
                })
                .collect();
            expected.sort();
            let mut got = config.p2p.bootnodes.clone();
            got.sort();
            assert_eq!(got, expected, "{name}");
        }
        // The compose file gives each node the address its peers dial and mounts its config.
        for (index, name) in names.iter().enumerate() {
            let (role, role_index) = if index < 4 {
                ("validator", index)
            } else {
                ("full_node", index - 4)
            };
            let block = service_block(COMPOSE, name)
                .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"));
            assert!(
                block.contains(&format!("ipv4_address: {}", node_ip(role, role_index))),
                "{name}: {block}"
            );
            assert!(
                block.contains(&format!("{DEVNET_MOUNT}/{name}/node.toml")),
                "{name}: {block}"
            );
        }
        assert!(COMPOSE.contains(&format!("subnet: {SUBNET_PREFIX}.0/24")));
        // Emitting twice into one dir is refused (the keys would not match the volumes).
        assert!(emit(dir.path(), &profile, 4, 1).is_err());
        assert!(emit(&dir.path().join("other"), &profile, 3, 1).is_err());
    }

    /// The lines of service `name` in a compose file (up to the next service).
    fn service_block<'a>(compose: &'a str, name: &str) -> Option<&'a str> {
        let header = format!("\n  {name}:\n");
        let start = compose.find(&header)? + header.len();
        let rest = &compose[start..];
        let end = rest
            .match_indices('\n')
            .find(|(at, _)| {
                let line = &rest[at + 1..];
                line.starts_with("  ") && !line.starts_with("   ") || !line.starts_with(' ')
            })
            .map_or(rest.len(), |(at, _)| at);
        Some(&rest[..end])
    }

    /// The `TANDEM__*` variables a StatefulSet sets (`- name:` then `value:` lines), with
    /// `$(POD_NAME)` as Kubernetes expands it for `pod`.
    fn statefulset_env(manifest: &str, pod: &str) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut lines = manifest.lines().map(str::trim);
        while let Some(line) = lines.next() {
            let Some(name) = line.strip_prefix("- name: TANDEM__") else {
                continue;
            };
            let value = lines
                .next()
                .and_then(|l| l.strip_prefix("value: "))
                .unwrap_or_else(|| panic!("TANDEM__{name}: no `value:` line after it"));
            let value = value.trim_matches('\'').replace("$(POD_NAME)", pod);
            env.push((format!("TANDEM__{name}"), value));
        }
        env
    }

    #[test]
    fn kubernetes_configs_check() {
        for (name, text, manifest, pod) in [
            (
                "validator.toml",
                include_str!("../../../deploy/k8s/config/validator.toml"),
                include_str!("../../../deploy/k8s/validator.yaml"),
                "tandem-validator-2",
            ),
            (
                "fullnode.toml",
                include_str!("../../../deploy/k8s/config/fullnode.toml"),
                include_str!("../../../deploy/k8s/fullnode.yaml"),
                "tandem-fullnode-0",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            // As the pod runs it: the StatefulSet's environment over the ConfigMap's TOML.
            let env = statefulset_env(manifest, pod);
            let config = Config::load(Some(&path), env.clone(), &CliOverrides::default())
                .unwrap_or_else(|err| panic!("{name} with {env:?}: {err}"));
            if config.node.role == Role::Validator {
                // Each pod reads its own entries of the Secret (see deploy/README.md).
                assert_eq!(env.len(), 2, "{env:?}");
                assert_eq!(
                    config.validator.keystore,
                    Some(PathBuf::from(format!("/keys/{pod}.validator.json")))
                );
                assert_eq!(
                    config.publisher.keystores,
                    [PathBuf::from(format!("/keys/{pod}.publisher.json"))]
                );
            } else {
                assert_eq!(env, Vec::new());
            }
            let (problems, missing) = config.check();
            assert_eq!(problems, Vec::new(), "{name}");
            // Key files come from Secrets mounted at /keys.
            for gap in &missing {
                assert!(
                    gap.path.starts_with("/keys"),
                    "{name}: {}",
                    gap.path.display()
                );
            }
            assert_eq!(config.node.data_dir, Path::new("/data"), "{name}");
            assert_eq!(config.p2p.listen_addr.port(), P2P_PORT, "{name}");
            assert_eq!(config.rpc.listen_addr.port(), RPC_PORT, "{name}");
            assert_eq!(config.metrics.listen_addr.port(), METRICS_PORT, "{name}");
        }
    }
}
