//! `[protocol]` and `[l1]`: the deployment a node is bound to.
//!
//! Protocol constants live in the rollup contract. `[protocol]` keys are optional pins: a key that
//! is set must equal the contract's value (the node refuses to start otherwise, naming the key and
//! both values); a key that is not set takes the contract's value at start. Offline commands
//! (`timetable`, `config check`) use the defaults below for unset keys.

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tandem_l1::RollupParams;
use tandem_proto::{Address, DEFAULT_MAX_CHECKPOINT_BODY_BYTES, time::PipeliningMode};

/// `[protocol]`: constants all nodes of a network share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ProtocolConfig {
    /// L2 chain id, bound into every signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain_id: Option<u64>,
    /// Rollup version carried in block headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rollup_version: Option<u32>,
    /// L1 timestamp (seconds) of the start of slot 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) genesis_time: Option<u64>,
    /// L2 slot duration S; a multiple of `l1_slot_duration`.
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) slot_duration: Option<Duration>,
    /// L1 block interval E.
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) l1_slot_duration: Option<Duration>,
    /// Block (sub-slot) duration D; consensus deadlines depend on it.
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) block_duration: Option<Duration>,
    /// Slots per epoch (one committee per epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) epoch_duration: Option<u64>,
    /// Committee members per epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) committee_size: Option<u64>,
    /// `pipelined` or `non_pipelined`: the network's schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pipelining_mode: Option<PipeliningMode>,
    /// R: time validators have to re-execute the last block after the checkpoint proposal
    /// arrives (pipelined proposal deadline `T − E − R`). Defaults to D.
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) last_block_reexecution_budget: Option<Duration>,
    /// Largest checkpoint body one `propose` tx may carry, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_checkpoint_body_bytes: Option<u64>,
    /// Accounts and balances of the genesis block. Every node of a network must list the same
    /// ones: the genesis archive the contract was deployed with is computed from them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) genesis_allocation: Vec<GenesisAccount>,
}

/// One account of the genesis allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenesisAccount {
    /// The account.
    pub(crate) address: Address,
    /// Its balance of the fee asset; a decimal string (TOML integers stop at 2^63).
    #[serde(with = "decimal_u128")]
    pub(crate) balance: u128,
}

mod decimal_u128 {
    use super::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u128, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Int(value) => Ok(u128::from(value)),
            Raw::Text(text) => text.trim().parse().map_err(|_| {
                serde::de::Error::custom(format!("{text:?} is not a decimal amount below 2^128"))
            }),
        }
    }
}

/// Defaults of unset keys, for commands that do not read the contract.
const DEFAULT_CHAIN_ID: u64 = 1337;
const DEFAULT_ROLLUP_VERSION: u32 = 1;
const DEFAULT_SLOT: Duration = Duration::from_secs(72);
const DEFAULT_L1_SLOT: Duration = Duration::from_secs(12);
const DEFAULT_BLOCK: Duration = Duration::from_secs(6);
const DEFAULT_EPOCH: u64 = 32;
const DEFAULT_COMMITTEE: u64 = 48;

impl ProtocolConfig {
    /// L2 chain id.
    pub(crate) fn chain_id(&self) -> u64 {
        self.chain_id.unwrap_or(DEFAULT_CHAIN_ID)
    }

    /// Rollup version.
    pub(crate) fn rollup_version(&self) -> u32 {
        self.rollup_version.unwrap_or(DEFAULT_ROLLUP_VERSION)
    }

    /// S.
    pub(crate) fn slot_duration(&self) -> Duration {
        self.slot_duration.unwrap_or(DEFAULT_SLOT)
    }

    /// E.
    pub(crate) fn l1_slot_duration(&self) -> Duration {
        self.l1_slot_duration.unwrap_or(DEFAULT_L1_SLOT)
    }

    /// D.
    pub(crate) fn block_duration(&self) -> Duration {
        self.block_duration.unwrap_or(DEFAULT_BLOCK)
    }

    /// Slots per epoch.
    pub(crate) fn epoch_duration(&self) -> u64 {
        self.epoch_duration.unwrap_or(DEFAULT_EPOCH)
    }

    /// Committee size.
    pub(crate) fn committee_size(&self) -> u64 {
        self.committee_size.unwrap_or(DEFAULT_COMMITTEE)
    }

    /// The network's schedule.
    pub(crate) fn pipelining_mode(&self) -> PipeliningMode {
        self.pipelining_mode.unwrap_or(PipeliningMode::Pipelined)
    }

    /// R, D when not set.
    pub(crate) fn reexecution_budget(&self) -> Duration {
        self.last_block_reexecution_budget
            .unwrap_or_else(|| self.block_duration())
    }

    /// The body cap.
    pub(crate) fn max_checkpoint_body_bytes(&self) -> u64 {
        self.max_checkpoint_body_bytes
            .unwrap_or(DEFAULT_MAX_CHECKPOINT_BODY_BYTES as u64)
    }

    /// The genesis allocation as (address, balance) pairs.
    pub(crate) fn allocation(&self) -> Vec<(Address, u128)> {
        self.genesis_allocation
            .iter()
            .map(|account| (account.address, account.balance))
            .collect()
    }

    /// Every pinned key that disagrees with the deployment's value.
    pub(crate) fn mismatches(&self, deployed: &RollupParams) -> Vec<Mismatch> {
        let mut found = Vec::new();
        let mut check = |key: &'static str, pinned: Option<String>, contract: String| {
            if let Some(config) = pinned
                && config != contract
            {
                found.push(Mismatch {
                    key,
                    config,
                    contract,
                });
            }
        };
        let secs = |s: u64| humantime::format_duration(Duration::from_secs(s)).to_string();
        let millis = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
        let duration = |d: Option<Duration>| d.map(|d| humantime::format_duration(d).to_string());
        check(
            "protocol.chain_id",
            self.chain_id.map(|v| v.to_string()),
            deployed.l2_chain_id.to_string(),
        );
        check(
            "protocol.rollup_version",
            self.rollup_version.map(|v| v.to_string()),
            deployed.rollup_version.to_string(),
        );
        check(
            "protocol.genesis_time",
            self.genesis_time.map(|v| v.to_string()),
            deployed.genesis_time.to_string(),
        );
        check(
            "protocol.slot_duration",
            duration(self.slot_duration),
            secs(deployed.slot_duration),
        );
        check(
            "protocol.l1_slot_duration",
            duration(self.l1_slot_duration),
            secs(deployed.l1_slot_duration),
        );
        check(
            "protocol.block_duration",
            duration(self.block_duration),
            millis(deployed.block_duration_ms),
        );
        check(
            "protocol.epoch_duration",
            self.epoch_duration.map(|v| v.to_string()),
            deployed.epoch_duration.to_string(),
        );
        check(
            "protocol.committee_size",
            self.committee_size.map(|v| v.to_string()),
            deployed.committee_size.to_string(),
        );
        check(
            "protocol.pipelining_mode",
            self.pipelining_mode.map(|m| m.to_string()),
            deployed.pipelining_mode.to_string(),
        );
        check(
            "protocol.last_block_reexecution_budget",
            duration(self.last_block_reexecution_budget),
            millis(deployed.last_block_reexecution_budget_ms),
        );
        check(
            "protocol.max_checkpoint_body_bytes",
            self.max_checkpoint_body_bytes.map(|v| v.to_string()),
            deployed.max_checkpoint_body_bytes.to_string(),
        );
        found
    }

    /// This section with every constant taken from the deployment (the allocation is kept).
    pub(crate) fn bound_to(&self, deployed: &RollupParams) -> Self {
        Self {
            chain_id: Some(deployed.l2_chain_id),
            rollup_version: Some(deployed.rollup_version),
            genesis_time: Some(deployed.genesis_time),
            slot_duration: Some(Duration::from_secs(deployed.slot_duration)),
            l1_slot_duration: Some(Duration::from_secs(deployed.l1_slot_duration)),
            block_duration: Some(Duration::from_millis(deployed.block_duration_ms)),
            epoch_duration: Some(deployed.epoch_duration),
            committee_size: Some(deployed.committee_size),
            pipelining_mode: Some(deployed.pipelining_mode),
            last_block_reexecution_budget: Some(Duration::from_millis(
                deployed.last_block_reexecution_budget_ms,
            )),
            max_checkpoint_body_bytes: Some(deployed.max_checkpoint_body_bytes),
            genesis_allocation: self.genesis_allocation.clone(),
        }
    }
}

/// A `[protocol]` key whose value differs from the deployment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The key.
    pub(crate) key: &'static str,
    /// What the configuration says.
    pub(crate) config: String,
    /// What the contract says.
    pub(crate) contract: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the configuration says {}, the rollup contract says {}",
            self.key, self.config, self.contract
        )
    }
}

/// `[l1]`: where the deployment is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct L1Config {
    /// JSON-RPC endpoint of the L1 node.
    pub(crate) rpc_url: String,
    /// Address of the rollup contract (or give `deployment_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rollup_address: Option<Address>,
    /// Deployment file written by `tandem l1 deploy` (rollup address and deployment block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deployment_file: Option<PathBuf>,
    /// When set, the L1 node must report this chain id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain_id: Option<u64>,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            rollup_address: None,
            deployment_file: None,
            chain_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed() -> RollupParams {
        let mut params = RollupParams::with_genesis(1_000);
        params.slot_duration = 24;
        params.l1_slot_duration = 2;
        params.block_duration_ms = 2_000;
        params.last_block_reexecution_budget_ms = 1_000;
        params
    }

    #[test]
    fn unset_keys_follow_the_deployment_and_set_ones_must_match() {
        let unset = ProtocolConfig::default();
        assert!(unset.mismatches(&deployed()).is_empty());
        let bound = unset.bound_to(&deployed());
        assert!(bound.mismatches(&deployed()).is_empty());
        assert_eq!(bound.slot_duration(), Duration::from_secs(24));
        assert_eq!(bound.reexecution_budget(), Duration::from_secs(1));

        let pinned = ProtocolConfig {
            slot_duration: Some(Duration::from_secs(72)),
            block_duration: Some(Duration::from_secs(2)),
            pipelining_mode: Some(PipeliningMode::NonPipelined),
            ..ProtocolConfig::default()
        };
        let found = pinned.mismatches(&deployed());
        let text: Vec<String> = found.iter().map(Mismatch::to_string).collect();
        assert_eq!(
            text,
            [
                "protocol.slot_duration: the configuration says 1m 12s, the rollup contract says 24s",
                "protocol.pipelining_mode: the configuration says non_pipelined, the rollup contract says pipelined",
            ]
        );
    }

    #[test]
    fn balances_parse_from_strings_and_integers() {
        let table: toml::Table = toml::from_str(
            r#"
            genesis_allocation = [
                { address = "0x1111111111111111111111111111111111111111", balance = "340282366920938463463374607431768211455" },
                { address = "0x2222222222222222222222222222222222222222", balance = 5 },
            ]
            "#,
        )
        .unwrap();
        let config: ProtocolConfig = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(config.genesis_allocation[0].balance, u128::MAX);
        assert_eq!(config.genesis_allocation[1].balance, 5);
        let bad: Result<ProtocolConfig, _> = toml::from_str(
            "genesis_allocation = [{ address = \"0x1111111111111111111111111111111111111111\", balance = \"-1\" }]",
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("not a decimal amount")
        );
    }
}
