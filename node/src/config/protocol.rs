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
        PINS.iter()
            .filter_map(|pin| {
                let config = (pin.pinned)(self)?;
                let contract = (pin.deployed)(deployed);
                (config != contract).then_some(Mismatch {
                    key: pin.key,
                    config,
                    contract,
                })
            })
            .collect()
    }

    /// This section with every constant taken from the deployment (the allocation is kept).
    pub(crate) fn bound_to(&self, deployed: &RollupParams) -> Self {
        let mut bound = self.clone();
        for pin in PINS {
            (pin.bind)(&mut bound, deployed);
        }
        bound
    }
}

/// One `[protocol]` key and the deployment constant it pins. [`PINS`] is the one list both
/// [`ProtocolConfig::mismatches`] and [`ProtocolConfig::bound_to`] go through; a test walks every
/// [`RollupParams`] field so a new constant cannot slip past it.
struct Pin {
    /// The dotted key.
    key: &'static str,
    /// The configuration's value, formatted like the deployment's; `None` when unset.
    pinned: fn(&ProtocolConfig) -> Option<String>,
    /// The deployment's value, formatted.
    deployed: fn(&RollupParams) -> String,
    /// Sets the key to the deployment's value.
    bind: fn(&mut ProtocolConfig, &RollupParams),
}

fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn human_secs(secs: u64) -> String {
    human(Duration::from_secs(secs))
}

fn human_millis(ms: u64) -> String {
    human(Duration::from_millis(ms))
}

const PINS: &[Pin] = &[
    Pin {
        key: "protocol.chain_id",
        pinned: |c| c.chain_id.map(|v| v.to_string()),
        deployed: |d| d.l2_chain_id.to_string(),
        bind: |c, d| c.chain_id = Some(d.l2_chain_id),
    },
    Pin {
        key: "protocol.rollup_version",
        pinned: |c| c.rollup_version.map(|v| v.to_string()),
        deployed: |d| d.rollup_version.to_string(),
        bind: |c, d| c.rollup_version = Some(d.rollup_version),
    },
    Pin {
        key: "protocol.genesis_time",
        pinned: |c| c.genesis_time.map(|v| v.to_string()),
        deployed: |d| d.genesis_time.to_string(),
        bind: |c, d| c.genesis_time = Some(d.genesis_time),
    },
    Pin {
        key: "protocol.slot_duration",
        pinned: |c| c.slot_duration.map(human),
        deployed: |d| human_secs(d.slot_duration),
        bind: |c, d| c.slot_duration = Some(Duration::from_secs(d.slot_duration)),
    },
    Pin {
        key: "protocol.l1_slot_duration",
        pinned: |c| c.l1_slot_duration.map(human),
        deployed: |d| human_secs(d.l1_slot_duration),
        bind: |c, d| c.l1_slot_duration = Some(Duration::from_secs(d.l1_slot_duration)),
    },
    Pin {
        key: "protocol.block_duration",
        pinned: |c| c.block_duration.map(human),
        deployed: |d| human_millis(d.block_duration_ms),
        bind: |c, d| c.block_duration = Some(Duration::from_millis(d.block_duration_ms)),
    },
    Pin {
        key: "protocol.epoch_duration",
        pinned: |c| c.epoch_duration.map(|v| v.to_string()),
        deployed: |d| d.epoch_duration.to_string(),
        bind: |c, d| c.epoch_duration = Some(d.epoch_duration),
    },
    Pin {
        key: "protocol.committee_size",
        pinned: |c| c.committee_size.map(|v| v.to_string()),
        deployed: |d| d.committee_size.to_string(),
        bind: |c, d| c.committee_size = Some(d.committee_size),
    },
    Pin {
        key: "protocol.pipelining_mode",
        pinned: |c| c.pipelining_mode.map(|m| m.to_string()),
        deployed: |d| d.pipelining_mode.to_string(),
        bind: |c, d| c.pipelining_mode = Some(d.pipelining_mode),
    },
    Pin {
        key: "protocol.last_block_reexecution_budget",
        pinned: |c| c.last_block_reexecution_budget.map(human),
        deployed: |d| human_millis(d.last_block_reexecution_budget_ms),
        bind: |c, d| {
            c.last_block_reexecution_budget =
                Some(Duration::from_millis(d.last_block_reexecution_budget_ms));
        },
    },
    Pin {
        key: "protocol.max_checkpoint_body_bytes",
        pinned: |c| c.max_checkpoint_body_bytes.map(|v| v.to_string()),
        deployed: |d| d.max_checkpoint_body_bytes.to_string(),
        bind: |c, d| c.max_checkpoint_body_bytes = Some(d.max_checkpoint_body_bytes),
    },
];

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
    /// Longest wait between attempts to reach L1 at start (the wait starts at 1 s and doubles).
    #[serde(with = "humantime_serde")]
    pub(crate) max_retry_interval: Duration,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            rollup_address: None,
            deployment_file: None,
            chain_id: None,
            max_retry_interval: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::B256;

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

    /// Every deployment constant is either pinned by a `[protocol]` key (a differing value is
    /// reported under that key, and binding takes it) or deliberately not configurable. The
    /// destructuring is exhaustive: a new `RollupParams` field does not compile until it is
    /// classified here.
    #[test]
    fn every_deployment_constant_is_pinned_or_deliberately_not_configurable() {
        let RollupParams {
            genesis_time,
            slot_duration,
            l1_slot_duration,
            epoch_duration,
            committee_size,
            mana_target,
            mana_limit,
            min_fee_per_mana,
            fee_update_fraction,
            initial_eth_per_fee_asset,
            l2_chain_id,
            genesis_archive,
            block_duration_ms,
            last_block_reexecution_budget_ms,
            pipelining_mode,
            max_checkpoint_body_bytes,
            rollup_version,
        } = deployed();
        let other_mode = match pipelining_mode {
            PipeliningMode::Pipelined => PipeliningMode::NonPipelined,
            PipeliningMode::NonPipelined => PipeliningMode::Pipelined,
        };
        // (key, the deployment with only that constant changed).
        let pinned: Vec<(&str, RollupParams)> = vec![
            (
                "protocol.genesis_time",
                RollupParams {
                    genesis_time: genesis_time + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.slot_duration",
                RollupParams {
                    slot_duration: slot_duration * 2,
                    ..deployed()
                },
            ),
            (
                "protocol.l1_slot_duration",
                RollupParams {
                    l1_slot_duration: l1_slot_duration + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.epoch_duration",
                RollupParams {
                    epoch_duration: epoch_duration + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.committee_size",
                RollupParams {
                    committee_size: committee_size + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.chain_id",
                RollupParams {
                    l2_chain_id: l2_chain_id + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.block_duration",
                RollupParams {
                    block_duration_ms: block_duration_ms + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.last_block_reexecution_budget",
                RollupParams {
                    last_block_reexecution_budget_ms: last_block_reexecution_budget_ms + 1,
                    ..deployed()
                },
            ),
            (
                "protocol.pipelining_mode",
                RollupParams {
                    pipelining_mode: other_mode,
                    ..deployed()
                },
            ),
            (
                "protocol.max_checkpoint_body_bytes",
                RollupParams {
                    max_checkpoint_body_bytes: max_checkpoint_body_bytes - 1,
                    ..deployed()
                },
            ),
            (
                "protocol.rollup_version",
                RollupParams {
                    rollup_version: rollup_version + 1,
                    ..deployed()
                },
            ),
        ];
        // Fee parameters are the contract's alone: a node uses whatever the deployment says.
        // The genesis archive is checked through `genesis_allocation` (binding.rs).
        let not_configurable: Vec<RollupParams> = vec![
            RollupParams {
                mana_target: mana_target + 1,
                ..deployed()
            },
            RollupParams {
                mana_limit: mana_limit + 1,
                ..deployed()
            },
            RollupParams {
                min_fee_per_mana: min_fee_per_mana + 1,
                ..deployed()
            },
            RollupParams {
                fee_update_fraction: fee_update_fraction + 1,
                ..deployed()
            },
            RollupParams {
                initial_eth_per_fee_asset: initial_eth_per_fee_asset + 1,
                ..deployed()
            },
            RollupParams {
                genesis_archive: B256::repeat_byte(0xee),
                ..deployed()
            },
        ];
        assert_ne!(genesis_archive, B256::repeat_byte(0xee));
        assert_eq!(pinned.len(), PINS.len(), "a pin without a test case");

        let bound = ProtocolConfig::default().bound_to(&deployed());
        for (key, changed) in &pinned {
            let keys: Vec<&str> = bound.mismatches(changed).iter().map(|m| m.key).collect();
            assert_eq!(keys, [*key], "changing the constant of {key}");
            // Binding to the changed deployment takes the new value.
            assert!(
                bound.bound_to(changed).mismatches(changed).is_empty(),
                "{key}"
            );
        }
        for changed in &not_configurable {
            assert!(bound.mismatches(changed).is_empty(), "{changed:?}");
        }
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
