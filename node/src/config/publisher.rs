//! `[publisher]`: the L1 keys that pay for propose txs and how their txs are priced, replaced and
//! watched. Converted into [`tandem_publisher::PublisherConfig`] with units checked.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use eyre::{WrapErr, eyre};
use serde::{Deserialize, Serialize};
use tandem_proto::Address;
use tandem_publisher::{GWEI, PublisherError, PublisherKeys, SimulationMethod};

use super::{Problem, Role};

/// Which RPC the send-time simulation uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SimulationMethodConfig {
    /// `eth_simulateV1` with a block-time override (one call: gas and revert).
    #[default]
    EthSimulateV1,
    /// `eth_call` with a block override, then `eth_estimateGas`.
    EthCall,
}

/// `[publisher]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PublisherConfig {
    /// Encrypted keystores of the L1 accounts paying for propose txs, tried in order and rotated
    /// when L1 refuses a send. Required for a validator; separate from the validator key.
    pub(crate) keystores: Vec<PathBuf>,
    /// File holding the password of those keystores.
    pub(crate) password_file: Option<PathBuf>,
    /// Most a propose pays per gas (base fee + priority fee), gwei.
    pub(crate) max_fee_per_gas_gwei: f64,
    /// Floor of the priority fee, gwei.
    pub(crate) min_priority_fee_gwei: f64,
    /// Padding on the estimated priority fee of a first attempt, percent.
    pub(crate) priority_fee_padding_percent: u32,
    /// Fee increase of each replacement (speed-up or cancel), on the fee cap and the priority
    /// fee, percent; L1 mempools refuse less than
    /// [`MIN_REPLACEMENT_BUMP_PERCENT`](tandem_publisher::MIN_REPLACEMENT_BUMP_PERCENT).
    pub(crate) fee_bump_percent: u32,
    /// Added to the simulated gas of a propose, percent.
    pub(crate) gas_limit_buffer_percent: u32,
    /// A tx not mined this long after its last attempt is sped up (L1 time).
    #[serde(with = "humantime_serde")]
    pub(crate) stall_time: Duration,
    /// Speed-ups per tx (and again per cancel).
    pub(crate) max_speed_ups: u32,
    /// How often receipts and the mempool are checked.
    #[serde(with = "humantime_serde")]
    pub(crate) receipt_poll_interval: Duration,
    /// How often the L1 head is polled while waiting for the L1 block before the target slot.
    #[serde(with = "humantime_serde")]
    pub(crate) send_wait_poll_interval: Duration,
    /// Longest wait for that block before sending anyway (its L1 slot was missed); one L1 slot
    /// when unset.
    #[serde(default, with = "humantime_serde")]
    pub(crate) send_wait_timeout: Option<Duration>,
    /// A cancel the L1 node does not know for this long counts as dropped (L1 time).
    #[serde(with = "humantime_serde")]
    pub(crate) tx_unseen_considered_dropped: Duration,
    /// A propose the L1 node does not know for this long counts as dropped (L1 time); two L1
    /// slots when unset.
    #[serde(default, with = "humantime_serde")]
    pub(crate) propose_unseen_considered_dropped: Option<Duration>,
    /// A cancel not mined this long after it was first sent is given up and its nonce reused
    /// once the L1 node knows no tx of it (L1 time).
    #[serde(with = "humantime_serde")]
    pub(crate) cancel_final_timeout: Duration,
    /// L1 blocks (the including one counted) a mined propose needs after its window closed
    /// before it is reported landed.
    pub(crate) confirmations: u64,
    /// Warn when a key's balance pays for fewer proposes than this at current gas prices.
    pub(crate) low_balance_runway_checkpoints: u64,
    /// RPC of the send-time simulation.
    pub(crate) simulation_method: SimulationMethodConfig,
    /// Finished tx records kept in the publisher's store for audits.
    pub(crate) keep_finished_records: usize,
}

fn gwei(wei: u128) -> f64 {
    wei as f64 / GWEI as f64
}

impl Default for PublisherConfig {
    fn default() -> Self {
        let library = tandem_publisher::PublisherConfig::default();
        Self {
            keystores: Vec::new(),
            password_file: None,
            max_fee_per_gas_gwei: gwei(library.max_fee_per_gas),
            min_priority_fee_gwei: gwei(library.min_priority_fee_per_gas),
            priority_fee_padding_percent: library.priority_fee_padding_percent,
            fee_bump_percent: library.replacement_bump_percent,
            gas_limit_buffer_percent: library.gas_limit_buffer_percent,
            stall_time: library.stall_time,
            max_speed_ups: library.max_speed_ups,
            receipt_poll_interval: library.receipt_poll_interval,
            send_wait_poll_interval: library.send_wait_poll_interval,
            send_wait_timeout: library.send_wait_timeout,
            tx_unseen_considered_dropped: library.tx_unseen_considered_dropped,
            propose_unseen_considered_dropped: library.propose_unseen_considered_dropped,
            cancel_final_timeout: library.cancel_final_timeout,
            confirmations: library.confirmations,
            low_balance_runway_checkpoints: library.low_balance_runway_checkpoints,
            simulation_method: SimulationMethodConfig::EthSimulateV1,
            keep_finished_records: library.keep_finished_records,
        }
    }
}

/// `gwei` as wei, if it is a finite, non-negative amount a fee can have.
fn wei(gwei: f64) -> Option<u128> {
    let wei = (gwei * GWEI as f64).round();
    (gwei.is_finite() && gwei >= 0.0 && wei <= u64::MAX as f64).then_some(wei as u128)
}

/// The TOML key of a library setting.
fn key_of(field: &str) -> &'static str {
    match field {
        "max_fee_per_gas" => "publisher.max_fee_per_gas_gwei",
        "min_priority_fee_per_gas" => "publisher.min_priority_fee_gwei",
        "replacement_bump_percent" => "publisher.fee_bump_percent",
        "stall_time" => "publisher.stall_time",
        "receipt_poll_interval" => "publisher.receipt_poll_interval",
        "send_wait_poll_interval" => "publisher.send_wait_poll_interval",
        "tx_unseen_considered_dropped" => "publisher.tx_unseen_considered_dropped",
        "propose_unseen_considered_dropped" => "publisher.propose_unseen_considered_dropped",
        "cancel_final_timeout" => "publisher.cancel_final_timeout",
        "confirmations" => "publisher.confirmations",
        _ => "publisher",
    }
}

impl PublisherConfig {
    /// The library's settings, or the first key that cannot be converted or is out of range.
    pub(crate) fn settings(&self) -> Result<tandem_publisher::PublisherConfig, Problem> {
        let amount = |key: &'static str, value: f64| {
            wei(value).ok_or_else(|| Problem {
                key,
                message: format!("{value} is not a fee in gwei (finite, >= 0, < 1.8e10)"),
            })
        };
        let settings = tandem_publisher::PublisherConfig {
            max_fee_per_gas: amount("publisher.max_fee_per_gas_gwei", self.max_fee_per_gas_gwei)?,
            min_priority_fee_per_gas: amount(
                "publisher.min_priority_fee_gwei",
                self.min_priority_fee_gwei,
            )?,
            priority_fee_padding_percent: self.priority_fee_padding_percent,
            replacement_bump_percent: self.fee_bump_percent,
            gas_limit_buffer_percent: self.gas_limit_buffer_percent,
            stall_time: self.stall_time,
            max_speed_ups: self.max_speed_ups,
            receipt_poll_interval: self.receipt_poll_interval,
            send_wait_poll_interval: self.send_wait_poll_interval,
            send_wait_timeout: self.send_wait_timeout,
            tx_unseen_considered_dropped: self.tx_unseen_considered_dropped,
            propose_unseen_considered_dropped: self.propose_unseen_considered_dropped,
            cancel_final_timeout: self.cancel_final_timeout,
            confirmations: self.confirmations,
            low_balance_runway_checkpoints: self.low_balance_runway_checkpoints,
            simulation_method: match self.simulation_method {
                SimulationMethodConfig::EthSimulateV1 => SimulationMethod::SimulateV1,
                SimulationMethodConfig::EthCall => SimulationMethod::CallWithOverrides,
            },
            keep_finished_records: self.keep_finished_records,
        };
        settings.validate().map_err(|error| match error {
            PublisherError::Config { field, problem } => Problem {
                key: key_of(field),
                message: problem.to_string(),
            },
            other => Problem {
                key: "publisher",
                message: other.to_string(),
            },
        })?;
        Ok(settings)
    }

    /// Decrypts `keystores` with `password_file` (through [`crate::keys::load_signer`], alloy's
    /// local signer) into the publisher's keys, in order; refuses duplicates and any of
    /// `attesters` (publisher and attester keys must be separate L1 accounts).
    pub(crate) fn load_keys(&self, attesters: &[Address]) -> eyre::Result<PublisherKeys> {
        let password = self.password_file.as_deref().ok_or_else(|| {
            eyre!("publisher.password_file is required to decrypt publisher.keystores")
        })?;
        let signers = self
            .keystores
            .iter()
            .map(|keystore| {
                crate::keys::load_signer(keystore, password).wrap_err("publisher.keystores")
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        PublisherKeys::new(signers, attesters).wrap_err("publisher.keystores")
    }

    /// Reports what is wrong with the section for a node of `role` (the rules that do not
    /// depend on the protocol constants).
    pub(crate) fn problems(
        &self,
        role: Role,
        validator_keystore: Option<&Path>,
        mut problem: impl FnMut(&'static str, String),
        mut missing: impl FnMut(&'static str, &Path),
    ) {
        if let Some(validator) = validator_keystore
            && self.keystores.iter().any(|path| path == validator)
        {
            problem(
                "publisher.keystores",
                format!(
                    "{} is the validator keystore: publisher and attester keys must be separate accounts",
                    validator.display()
                ),
            );
        }
        if let Err(err) = self.settings() {
            problem(err.key, err.message);
        }
        if role == Role::Validator {
            if self.keystores.is_empty() {
                problem(
                    "publisher.keystores",
                    "required when node.role = \"validator\": the L1 accounts that pay for propose txs (not the validator key)".into(),
                );
            }
            for path in &self.keystores {
                if !path.is_file() {
                    missing("publisher.keystores", path);
                }
            }
            match &self.password_file {
                None => problem(
                    "publisher.password_file",
                    "required when node.role = \"validator\"".into(),
                ),
                Some(path) if !path.is_file() => missing("publisher.password_file", path),
                Some(_) => {}
            }
        } else if !self.keystores.is_empty() || self.password_file.is_some() {
            problem(
                "publisher.keystores",
                "a full node publishes nothing: remove [publisher] keystores and password_file, \
                 or set node.role = \"validator\""
                    .into(),
            );
        }
    }

    /// Reports what is wrong with the section for an L1 slot of `l1_slot` (checked again once
    /// the node is bound to its deployment and knows the contract's E).
    pub(crate) fn protocol_problems(
        &self,
        l1_slot: Duration,
        mut problem: impl FnMut(&'static str, String),
    ) {
        if let Some(timeout) = self.send_wait_timeout
            && timeout > l1_slot
        {
            problem(
                "publisher.send_wait_timeout",
                format!(
                    "{} is longer than one L1 slot ({}): a propose would miss the first block of its slot",
                    humantime::format_duration(timeout),
                    humantime::format_duration(l1_slot)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented_in_the_validator_example() {
        let example = include_str!("../../../deploy/config/validator.example.toml");
        let section = example
            .split("[publisher]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap();
        let defaults = toml::Value::try_from(PublisherConfig {
            password_file: Some(PathBuf::from("p")),
            send_wait_timeout: Some(Duration::from_secs(1)),
            propose_unseen_considered_dropped: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .unwrap();
        for key in defaults.as_table().unwrap().keys() {
            let set = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(
                section.contains(&set) || section.contains(&commented),
                "publisher.{key} is not in deploy/config/validator.example.toml"
            );
            assert!(
                section.contains(&format!("TANDEM__PUBLISHER__{}", key.to_uppercase())),
                "the env var of publisher.{key} is not documented"
            );
        }
    }

    #[test]
    fn keystores_load_in_order_and_an_attester_key_is_refused() {
        use alloy::signers::local::PrivateKeySigner;
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "publisher pass\n").unwrap();
        let mut addresses = Vec::new();
        let mut keystores = Vec::new();
        for name in ["one.json", "two.json"] {
            let (signer, _) = PrivateKeySigner::new_keystore(
                dir.path(),
                &mut rand::thread_rng(),
                "publisher pass",
                Some(name),
            )
            .unwrap();
            addresses.push(signer.address());
            keystores.push(dir.path().join(name));
        }
        let config = PublisherConfig {
            keystores,
            password_file: Some(password.clone()),
            ..Default::default()
        };
        let keys = config.load_keys(&[]).unwrap();
        assert_eq!(keys.addresses(), addresses);
        let err = config.load_keys(&[addresses[1]]).unwrap_err();
        assert!(
            format!("{err:#}").contains("is also an attester key"),
            "{err:#}"
        );
        std::fs::write(&password, "wrong").unwrap();
        let err = format!("{:#}", config.load_keys(&[]).unwrap_err());
        assert!(
            err.contains("publisher.keystores") && err.contains("cannot decrypt"),
            "{err}"
        );
        let no_password = PublisherConfig {
            password_file: None,
            ..config
        };
        assert!(no_password.load_keys(&[]).is_err());
    }

    #[test]
    fn lists_and_whole_gwei_come_from_the_environment() {
        let env = vec![
            (
                "TANDEM__PUBLISHER__KEYSTORES".to_string(),
                r#"["a.json", "b.json"]"#.to_string(),
            ),
            (
                "TANDEM__PUBLISHER__MAX_FEE_PER_GAS_GWEI".to_string(),
                "150".to_string(),
            ),
        ];
        let config =
            super::super::Config::load(None, env, &super::super::CliOverrides::default()).unwrap();
        assert_eq!(
            config.publisher.keystores,
            vec![PathBuf::from("a.json"), PathBuf::from("b.json")]
        );
        assert_eq!(
            config.publisher.settings().unwrap().max_fee_per_gas,
            150 * GWEI
        );
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        assert_eq!(
            PublisherConfig::default().settings().unwrap(),
            tandem_publisher::PublisherConfig::default()
        );
    }

    #[test]
    fn units_are_converted_and_bad_values_named() {
        let config = PublisherConfig {
            max_fee_per_gas_gwei: 1.5,
            min_priority_fee_gwei: 0.001,
            simulation_method: SimulationMethodConfig::EthCall,
            ..Default::default()
        };
        let settings = config.settings().unwrap();
        assert_eq!(settings.max_fee_per_gas, 1_500_000_000);
        assert_eq!(settings.min_priority_fee_per_gas, 1_000_000);
        assert_eq!(
            settings.simulation_method,
            SimulationMethod::CallWithOverrides
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e12] {
            let config = PublisherConfig {
                max_fee_per_gas_gwei: bad,
                ..Default::default()
            };
            assert_eq!(
                config.settings().unwrap_err().key,
                "publisher.max_fee_per_gas_gwei",
                "{bad}"
            );
        }
        let config = PublisherConfig {
            stall_time: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(config.settings().unwrap_err().key, "publisher.stall_time");
        let config = PublisherConfig {
            confirmations: 0,
            ..Default::default()
        };
        let problem = config.settings().unwrap_err();
        assert_eq!(problem.key, "publisher.confirmations");
        assert_eq!(problem.message, "must be greater than zero");
        let config = PublisherConfig {
            propose_unseen_considered_dropped: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(
            config.settings().unwrap_err().key,
            "publisher.propose_unseen_considered_dropped"
        );
    }

    #[test]
    fn a_validator_needs_publisher_keystores_and_a_sane_send_wait() {
        let mut problems = Vec::new();
        let config = PublisherConfig {
            send_wait_timeout: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        config.protocol_problems(Duration::from_secs(12), |key, message| {
            problems.push((key, message))
        });
        config.problems(
            Role::Validator,
            None,
            |key, message| problems.push((key, message)),
            |_, _| {},
        );
        let keys: Vec<&str> = problems.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            vec![
                "publisher.send_wait_timeout",
                "publisher.keystores",
                "publisher.password_file"
            ]
        );
        let mut problems = Vec::new();
        PublisherConfig::default().problems(
            Role::FullNode,
            None,
            |key, _| problems.push(key),
            |_, _| {},
        );
        PublisherConfig::default()
            .protocol_problems(Duration::from_secs(12), |key, _| problems.push(key));
        assert!(problems.is_empty());
        let mut problems = Vec::new();
        let shared = PublisherConfig {
            keystores: vec![PathBuf::from("keys/validator.json")],
            ..Default::default()
        };
        let mut missing = Vec::new();
        shared.problems(
            Role::Validator,
            Some(Path::new("keys/validator.json")),
            |key, message| problems.push((key, message)),
            |key, path| missing.push((key, path.to_path_buf())),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].1.contains("must be separate"), "{problems:?}");
        assert_eq!(problems[1].0, "publisher.password_file");
        assert_eq!(
            missing,
            vec![("publisher.keystores", PathBuf::from("keys/validator.json"))]
        );
        // A full node given publisher keys is refused: it publishes nothing.
        let mut problems = Vec::new();
        shared.problems(
            Role::FullNode,
            None,
            |key, message| problems.push((key, message)),
            |_, _| {},
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].1.starts_with("a full node publishes nothing"),
            "{problems:?}"
        );
    }
}
