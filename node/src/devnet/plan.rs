//! What a devnet is made of, on disk: profiles, ports, keys, the network's `[protocol]`
//! section, per-node configs and `devnet.json`. Re-running with the same data dir reads
//! `devnet.json` back and reuses everything (ports, keys, deployment).

use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    time::Duration,
};

use eyre::{WrapErr, bail, eyre};
use serde::{Deserialize, Serialize};
use tandem_proto::{Address, time::PipeliningMode};

use crate::accounts::{DEVNET_ACCOUNTS, DEVNET_BALANCE, devnet_key};

/// A named set of protocol constants (DESIGN.md "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) name: &'static str,
    pub(crate) slot_secs: u64,
    pub(crate) l1_slot_secs: u64,
    pub(crate) block_ms: u64,
    pub(crate) epoch_slots: u64,
    /// Committee size; `None` = every validator.
    pub(crate) committee: Option<u64>,
    /// `protocol.pipelining_mode` when chosen (`--pipelining-mode`); unset: the default.
    pub(crate) pipelining_mode: Option<PipeliningMode>,
    /// `protocol.last_block_reexecution_budget` when chosen; unset: D.
    pub(crate) reexecution_budget: Option<Duration>,
}

/// The profiles `--profile` accepts.
pub(crate) const PROFILES: &[Profile] = &[
    Profile {
        name: "devnet",
        slot_secs: 24,
        l1_slot_secs: 2,
        block_ms: 2_000,
        epoch_slots: 8,
        committee: None,
        pipelining_mode: None,
        reexecution_budget: None,
    },
    Profile {
        name: "ci",
        slot_secs: 12,
        l1_slot_secs: 1,
        block_ms: 1_000,
        epoch_slots: 4,
        committee: Some(3),
        pipelining_mode: None,
        reexecution_budget: None,
    },
];

impl Profile {
    pub(crate) fn named(name: &str) -> eyre::Result<Self> {
        PROFILES
            .iter()
            .find(|profile| profile.name == name)
            .copied()
            .ok_or_else(|| {
                eyre!(
                    "--profile {name:?}: expected one of {}",
                    PROFILES
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// This profile with the network's schedule chosen (`None` keeps the default).
    pub(crate) fn with_schedule(
        mut self,
        mode: Option<PipeliningMode>,
        reexecution_budget: Option<Duration>,
    ) -> Self {
        self.pipelining_mode = mode;
        self.reexecution_budget = reexecution_budget;
        self
    }

    /// The committee of a network of `validators`.
    pub(crate) fn committee_size(&self, validators: usize) -> u64 {
        let all = validators as u64;
        self.committee.map_or(all, |size| size.min(all))
    }
}

/// A node of the devnet as `devnet.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeEntry {
    pub(crate) name: String,
    /// `validator` or `full_node`.
    pub(crate) role: String,
    pub(crate) rpc_url: String,
    pub(crate) metrics_url: String,
    /// Dialable multiaddr with `/p2p/<peer id>`.
    pub(crate) p2p_addr: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) log_file: PathBuf,
    /// The validator address (validators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) validator: Option<Address>,
    /// The publisher's L1 account (validators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) publisher: Option<Address>,
    /// While running.
    #[serde(default)]
    pub(crate) pid: Option<u32>,
    pub(crate) ports: Ports,
}

/// The ports of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ports {
    pub(crate) p2p: u16,
    pub(crate) rpc: u16,
    pub(crate) metrics: u16,
}

/// `<data-dir>/devnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DevnetFile {
    pub(crate) profile: String,
    pub(crate) l1_rpc_url: String,
    /// Whether the devnet runs its own anvil (and its pid while running).
    pub(crate) anvil_pid: Option<u32>,
    pub(crate) own_l1: bool,
    pub(crate) rollup: Option<Address>,
    pub(crate) deployment_file: PathBuf,
    pub(crate) nodes: Vec<NodeEntry>,
    /// The flag-chosen protocol constants the devnet was planned with; absent in a file from
    /// before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) choices: Option<Choices>,
}

/// What `--committee`, `--pipelining-mode` and `--reexecution-budget` chose for a devnet. The
/// deployment holds them, so a re-run must write the same into every node's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Choices {
    pub(crate) committee_size: u64,
    /// `None`: not pinned (the default, pipelined).
    pub(crate) pipelining_mode: Option<PipeliningMode>,
    /// `None`: not pinned (the default, D).
    pub(crate) reexecution_budget_ms: Option<u64>,
}

impl Choices {
    pub(crate) fn of(profile: &Profile, validators: usize) -> Self {
        Self {
            committee_size: profile.committee_size(validators),
            pipelining_mode: profile.pipelining_mode,
            reexecution_budget_ms: profile
                .reexecution_budget
                .map(|budget| u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl DevnetFile {
    pub(crate) fn path(data: &Path) -> PathBuf {
        data.join("devnet.json")
    }

    pub(crate) fn load(data: &Path) -> eyre::Result<Option<Self>> {
        let path = Self::path(data);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: Self = serde_json::from_str(&text)
                    .wrap_err_with(|| format!("{}: not a devnet file", path.display()))?;
                Ok(Some(file))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).wrap_err_with(|| format!("reading {}", path.display())),
        }
    }

    pub(crate) fn save(&self, data: &Path) -> eyre::Result<()> {
        let path = Self::path(data);
        let tmp = data.join("devnet.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .wrap_err_with(|| format!("writing {}", path.display()))
    }
}

/// Free TCP ports on 127.0.0.1 for one plan: each listener stays open until the picker is
/// dropped, so the OS cannot hand the same port out twice (a closed port may come back at the
/// next bind, which once gave a node's p2p and metrics listeners the same port).
#[derive(Debug, Default)]
pub(crate) struct PortPicker {
    held: Vec<TcpListener>,
}

impl PortPicker {
    /// A port no other pick of this picker returned.
    pub(crate) fn pick(&mut self) -> eyre::Result<u16> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        self.held.push(listener);
        Ok(port)
    }
}

/// The `[protocol]` section every node and the deployment share.
pub(crate) fn protocol_section(profile: &Profile, validators: usize) -> String {
    let mut text = format!(
        "[protocol]\nslot_duration = \"{}s\"\nl1_slot_duration = \"{}s\"\nblock_duration = \"{}ms\"\n\
         epoch_duration = {}\ncommittee_size = {}\n",
        profile.slot_secs,
        profile.l1_slot_secs,
        profile.block_ms,
        profile.epoch_slots,
        profile.committee_size(validators),
    );
    // Only when chosen: an unset key binds to whatever the contract holds, so a devnet resumed
    // without the flag still starts.
    if let Some(mode) = profile.pipelining_mode {
        text.push_str(&format!("pipelining_mode = \"{mode}\"\n"));
    }
    if let Some(budget) = profile.reexecution_budget {
        text.push_str(&format!(
            "last_block_reexecution_budget = \"{}\"\n",
            humantime::format_duration(budget)
        ));
    }
    text.push_str("genesis_allocation = [\n");
    for index in 0..DEVNET_ACCOUNTS {
        text.push_str(&format!(
            "  {{ address = \"{}\", balance = \"{DEVNET_BALANCE}\" }},\n",
            devnet_key(index).address()
        ));
    }
    text.push_str("]\n");
    text
}

/// What one node's config needs.
pub(crate) struct NodeConfigInputs<'a> {
    pub(crate) node: &'a NodeEntry,
    pub(crate) protocol: &'a str,
    pub(crate) l1_rpc_url: &'a str,
    pub(crate) deployment_file: &'a Path,
    pub(crate) bootnodes: Vec<String>,
    pub(crate) min_peers: usize,
    pub(crate) password_file: &'a Path,
    pub(crate) l1_poll_ms: u64,
}

/// A node's TOML configuration.
pub(crate) fn node_config(inputs: &NodeConfigInputs<'_>) -> String {
    let node = inputs.node;
    let quoted = |path: &Path| format!("{:?}", path.display().to_string());
    let bootnodes = inputs
        .bootnodes
        .iter()
        .map(|addr| format!("{addr:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "# Written by `tandem devnet`; rewritten on every devnet start.\n\
         [node]\nrole = \"{role}\"\ndata_dir = {data}\n\n{protocol}\n\
         [l1]\nrpc_url = \"{l1}\"\ndeployment_file = {deployment}\n\n\
         [p2p]\nlisten_addr = \"127.0.0.1:{p2p}\"\nbootnodes = [{bootnodes}]\nmin_peers = {min_peers}\n\n\
         [archiver]\nl1_poll_interval = \"{poll}ms\"\n\n\
         [rpc]\nlisten_addr = \"127.0.0.1:{rpc}\"\n\n\
         [metrics]\nlisten_addr = \"127.0.0.1:{metrics}\"\n",
        role = node.role,
        data = quoted(&node.data_dir),
        protocol = inputs.protocol,
        l1 = inputs.l1_rpc_url,
        deployment = quoted(inputs.deployment_file),
        p2p = node.ports.p2p,
        min_peers = inputs.min_peers,
        poll = inputs.l1_poll_ms,
        rpc = node.ports.rpc,
        metrics = node.ports.metrics,
    );
    if node.role == "validator" {
        text.push_str(&format!(
            "\n[validator]\nkeystore = {}\npassword_file = {}\n\n[publisher]\nkeystores = [{}]\npassword_file = {}\n",
            quoted(&validator_keystore(&node.data_dir)),
            quoted(inputs.password_file),
            quoted(&publisher_keystore(&node.data_dir)),
            quoted(inputs.password_file),
        ));
    }
    text
}

pub(crate) fn validator_keystore(node_dir: &Path) -> PathBuf {
    node_dir.join("keys").join("validator.json")
}

pub(crate) fn publisher_keystore(node_dir: &Path) -> PathBuf {
    node_dir.join("keys").join("publisher.json")
}

/// The devnet's keystore password: created once (random), kept in the data dir.
pub(crate) fn password_file(data: &Path) -> eyre::Result<PathBuf> {
    let path = data.join("keys").join("password");
    if !path.exists() {
        std::fs::create_dir_all(data.join("keys"))?;
        let password = alloy::hex::encode(rand::random::<[u8; 16]>());
        std::fs::write(&path, format!("{password}\n"))
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        restrict(&path)?;
    }
    Ok(path)
}

/// Owner-only permissions for a secret.
pub(crate) fn restrict(path: &Path) -> eyre::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .wrap_err_with(|| format!("restricting {}", path.display()))
}

/// Checks a re-run asks for the devnet the data dir holds, and gives `profile` the protocol
/// choices it was planned with: a flag left out keeps the planned value; a flag that differs is
/// refused (the nodes would not bind to the deployment). `committee_flag`: `--committee`.
pub(crate) fn check_same(
    file: &DevnetFile,
    profile: &mut Profile,
    validators: usize,
    fullnodes: usize,
    committee_flag: Option<u64>,
) -> eyre::Result<()> {
    let have_validators = file.nodes.iter().filter(|n| n.role == "validator").count();
    let have_full = file.nodes.len() - have_validators;
    if file.profile != profile.name || have_validators != validators || have_full != fullnodes {
        bail!(
            "the data dir holds a devnet of profile {} with {have_validators} validators and \
             {have_full} full nodes; run it with those, or use another --data-dir",
            file.profile
        );
    }
    let Some(planned) = file.choices else {
        return Ok(());
    };
    let asked = Choices::of(profile, validators);
    let refuse = |flag: &str, asked: String, planned: String| {
        eyre!(
            "{flag} {asked}: the data dir's devnet is deployed with {planned}; leave the flag out \
             (a re-run keeps it) or use another --data-dir"
        )
    };
    if committee_flag.is_some() && asked.committee_size != planned.committee_size {
        return Err(refuse(
            "--committee",
            asked.committee_size.to_string(),
            format!("a committee of {}", planned.committee_size),
        ));
    }
    let mode = |choices: &Choices| choices.pipelining_mode.unwrap_or(PipeliningMode::Pipelined);
    if profile.pipelining_mode.is_some() && mode(&asked) != mode(&planned) {
        return Err(refuse(
            "--pipelining-mode",
            mode(&asked).to_string(),
            format!("{} mode", mode(&planned)),
        ));
    }
    let budget = |choices: &Choices| choices.reexecution_budget_ms.unwrap_or(profile.block_ms);
    if profile.reexecution_budget.is_some() && budget(&asked) != budget(&planned) {
        return Err(refuse(
            "--reexecution-budget",
            format!("{} ms", budget(&asked)),
            format!("a re-execution budget of {} ms", budget(&planned)),
        ));
    }
    profile.committee = Some(planned.committee_size);
    profile.pipelining_mode = planned.pipelining_mode;
    profile.reexecution_budget = planned.reexecution_budget_ms.map(Duration::from_millis);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A closed port comes back at a later bind(0) often enough that 400 bind-and-close picks
    // repeat a few (6 in a trial run); held listeners never do.
    #[test]
    fn a_picker_never_returns_a_port_twice() {
        let mut picker = PortPicker::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            let port = picker.pick().expect("bind 127.0.0.1:0");
            assert!(seen.insert(port), "port {port} picked twice");
        }
    }

    #[derive(Deserialize)]
    struct Network {
        protocol: crate::config::ProtocolConfig,
    }

    fn parsed(profile: &Profile) -> crate::config::ProtocolConfig {
        toml::from_str::<Network>(&protocol_section(profile, 4))
            .unwrap()
            .protocol
    }

    fn planned(profile: &Profile) -> DevnetFile {
        let node = |role: &str| NodeEntry {
            name: role.into(),
            role: role.into(),
            rpc_url: String::new(),
            metrics_url: String::new(),
            p2p_addr: String::new(),
            data_dir: PathBuf::new(),
            config: PathBuf::new(),
            log_file: PathBuf::new(),
            validator: None,
            publisher: None,
            pid: None,
            ports: Ports::default(),
        };
        DevnetFile {
            profile: profile.name.into(),
            l1_rpc_url: String::new(),
            anvil_pid: None,
            own_l1: true,
            rollup: None,
            deployment_file: PathBuf::new(),
            nodes: vec![
                node("validator"),
                node("validator"),
                node("validator"),
                node("validator"),
                node("full_node"),
            ],
            choices: Some(Choices::of(profile, 4)),
        }
    }

    #[test]
    fn a_rerun_keeps_the_planned_choices_and_refuses_other_ones() {
        let ci = Profile::named("ci").unwrap();
        let mut first = ci.with_schedule(Some(PipeliningMode::NonPipelined), None);
        first.committee = Some(2);
        let file = planned(&first);

        // Flags left out: the planned choices are written again.
        let mut rerun = ci;
        check_same(&file, &mut rerun, 4, 1, None).unwrap();
        assert_eq!(rerun.committee_size(4), 2);
        assert_eq!(rerun.pipelining_mode, Some(PipeliningMode::NonPipelined));
        assert_eq!(rerun.reexecution_budget, None);
        // The same flags again pass.
        let mut same = first;
        check_same(&file, &mut same, 4, 1, Some(2)).unwrap();

        let mut other_mode = ci.with_schedule(Some(PipeliningMode::Pipelined), None);
        let error = check_same(&file, &mut other_mode, 4, 1, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--pipelining-mode pipelined: the data dir's devnet is deployed with non_pipelined \
             mode; leave the flag out (a re-run keeps it) or use another --data-dir"
        );
        let mut other_committee = ci;
        other_committee.committee = Some(1);
        let error = check_same(&file, &mut other_committee, 4, 1, Some(1)).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "--committee 1: the data dir's devnet is deployed with a committee of 2;"
            ),
            "{error}"
        );
        // The default budget is D: asking for D explicitly is the same devnet.
        let mut d = ci.with_schedule(None, Some(Duration::from_millis(ci.block_ms)));
        check_same(&file, &mut d, 4, 1, None).unwrap();
        let mut half = ci.with_schedule(None, Some(Duration::from_millis(500)));
        assert!(check_same(&file, &mut half, 4, 1, None).is_err());
    }

    #[test]
    fn a_devnet_file_without_choices_still_resumes_with_the_flags_given() {
        let ci = Profile::named("ci").unwrap();
        let mut file = planned(&ci);
        file.choices = None;
        let text = serde_json::to_string(&file).unwrap();
        assert!(!text.contains("choices"), "{text}");
        let file: DevnetFile = serde_json::from_str(&text).unwrap();
        let mut rerun = ci.with_schedule(Some(PipeliningMode::NonPipelined), None);
        check_same(&file, &mut rerun, 4, 1, None).unwrap();
        assert_eq!(rerun.pipelining_mode, Some(PipeliningMode::NonPipelined));
    }

    #[test]
    fn the_schedule_is_pinned_only_when_chosen() {
        let profile = Profile::named("ci").unwrap();
        let default = parsed(&profile);
        assert_eq!(default.pipelining_mode, None);
        assert_eq!(default.last_block_reexecution_budget, None);
        assert_eq!(default.committee_size, Some(3));
        let chosen = parsed(&profile.with_schedule(
            Some(PipeliningMode::NonPipelined),
            Some(Duration::from_millis(500)),
        ));
        assert_eq!(chosen.pipelining_mode, Some(PipeliningMode::NonPipelined));
        assert_eq!(
            chosen.last_block_reexecution_budget,
            Some(Duration::from_millis(500))
        );
        assert_eq!(chosen.genesis_allocation.len(), DEVNET_ACCOUNTS);
    }
}
