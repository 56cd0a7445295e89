//! Cross-field validation: every rule names the key at fault, and every problem is reported.

use std::time::Duration;

use tandem_proto::time::Timetable;

use super::{Config, ConfigError, Problem, Role};

impl Config {
    /// The timetable this node's sequencer follows (the network's mode).
    pub(crate) fn timetable(&self) -> Result<Timetable, Problem> {
        let windows = self.windows().map_err(|err| Problem {
            key: "protocol.slot_duration",
            message: err.to_string(),
        })?;
        self.timetable_for(windows).map_err(|err| Problem {
            key: "protocol.block_duration",
            message: err.to_string(),
        })
    }

    /// Checks the rules that span several keys. Reports every problem, not just the first.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key, message: String| problems.push(Problem { key, message });

        if self.protocol.chain_id == Some(0) {
            problem("protocol.chain_id", "must be non-zero".into());
        }
        if self.protocol.last_block_reexecution_budget == Some(Duration::ZERO) {
            problem(
                "protocol.last_block_reexecution_budget",
                "must be greater than zero".into(),
            );
        }
        if let Some(cap) = self.protocol.max_checkpoint_body_bytes {
            let committee = self.protocol.committee_size();
            let limit = tandem_l1::max_checkpoint_body_bytes_for(
                usize::try_from(committee).unwrap_or(usize::MAX),
            );
            if cap == 0 || usize::try_from(cap).map_or(true, |cap| cap > limit) {
                problem(
                    "protocol.max_checkpoint_body_bytes",
                    format!(
                        "{cap} is outside 1..={limit}: a propose tx with a full body and a \
                         quorum of a {committee}-member committee must fit the 128 KiB \
                         mempool tx limit"
                    ),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for account in &self.protocol.genesis_allocation {
            if !seen.insert(account.address) {
                problem(
                    "protocol.genesis_allocation",
                    format!("{} is listed twice", account.address),
                );
            }
        }
        if self.l1.rollup_address.is_some() && self.l1.deployment_file.is_some() {
            problem(
                "l1.rollup_address",
                "give either l1.rollup_address or l1.deployment_file, not both".into(),
            );
        }
        if let Err(err) = self.timetable() {
            problem(err.key, err.message);
        }
        for (key, value) in [
            (
                "sequencer.checkpoint_init_time",
                self.sequencer.checkpoint_init_time,
            ),
            (
                "sequencer.min_block_duration",
                self.sequencer.min_block_duration,
            ),
        ] {
            if value.is_zero() {
                problem(key, "must be greater than zero".into());
            }
        }
        if self.sequencer.max_blocks_per_checkpoint == Some(0) {
            problem(
                "sequencer.max_blocks_per_checkpoint",
                "must be at least 1".into(),
            );
        }
        if self.sequencer.max_txs_per_block == 0 {
            problem("sequencer.max_txs_per_block", "must be at least 1".into());
        }
        self.p2p.problems(&mut problem);
        if self.publisher.fee_bump_percent < 10 {
            problem(
                "publisher.fee_bump_percent",
                format!(
                    "{} is below 10: L1 nodes refuse replacements bumped by less",
                    self.publisher.fee_bump_percent
                ),
            );
        }
        if self.archiver.l1_batch_size == 0 {
            problem("archiver.l1_batch_size", "must be at least 1".into());
        }
        if self.node.role == Role::Validator {
            for (key, path) in [
                ("validator.keystore", &self.validator.keystore),
                ("validator.password_file", &self.validator.password_file),
            ] {
                match path {
                    None => problem(key, "required when node.role = \"validator\"".into()),
                    Some(path) if !path.is_file() => {
                        problem(key, format!("{} is not a readable file", path.display()));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut listeners = vec![("p2p.listen_addr", self.p2p.listen_addr)];
        if self.rpc.enabled {
            listeners.push(("rpc.listen_addr", self.rpc.listen_addr));
        }
        if self.metrics.enabled {
            listeners.push(("metrics.listen_addr", self.metrics.listen_addr));
        }
        for (i, (key, addr)) in listeners.iter().enumerate() {
            for (other_key, other) in &listeners[..i] {
                let same_ip = addr.ip() == other.ip()
                    || addr.ip().is_unspecified()
                    || other.ip().is_unspecified();
                if addr.port() != 0 && addr.port() == other.port() && same_ip {
                    problem(
                        key,
                        format!("port {} is already used by {other_key}", addr.port()),
                    );
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Rules that only matter when the node starts (not for `timetable` or `config dump`).
    pub(crate) fn validate_for_run(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.l1.rollup_address.is_none() && self.l1.deployment_file.is_none() {
            return Err(ConfigError::Invalid(vec![Problem {
                key: "l1.rollup_address",
                message: "required to run (or l1.deployment_file): the node is bound to one \
                          rollup deployment and reads the protocol constants from it"
                    .into(),
            }]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tandem_proto::Address;

    use super::*;

    #[test]
    fn cross_field_rules_report_every_problem() {
        let mut config = Config::default();
        config.protocol.slot_duration = Some(Duration::from_secs(70));
        config.node.role = Role::Validator;
        config.metrics.listen_addr = SocketAddr::from(([127, 0, 0, 1], 7000));
        config.rpc.listen_addr = SocketAddr::from(([127, 0, 0, 1], 7000));
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("not Invalid")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert!(keys.contains(&"protocol.slot_duration"), "{keys:?}");
        assert!(keys.contains(&"validator.keystore"), "{keys:?}");
        assert!(keys.contains(&"validator.password_file"), "{keys:?}");
        assert!(keys.contains(&"metrics.listen_addr"), "{keys:?}");
    }

    #[test]
    fn block_duration_must_leave_room_for_blocks() {
        let mut config = Config::default();
        config.protocol.block_duration = Some(Duration::from_secs(72));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("protocol.block_duration"), "{err}");
    }

    #[test]
    fn run_needs_a_deployment() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        let err = config.validate_for_run().unwrap_err().to_string();
        assert!(err.contains("l1.rollup_address"), "{err}");
        config.l1.rollup_address = Some(Address::repeat_byte(1));
        assert!(config.validate_for_run().is_ok());
        config.l1.deployment_file = Some("deployment.json".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn default_block_size_fits_the_default_body_cap() {
        let config = Config::default();
        let blocks = config.timetable().unwrap().max_blocks_per_checkpoint() as usize;
        let txs = blocks * config.sequencer.max_txs_per_block as usize;
        assert!(
            tandem_proto::checkpoint_body_len(blocks, txs)
                <= tandem_proto::DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
            "{blocks} blocks of {} txs overflow the body cap",
            config.sequencer.max_txs_per_block
        );
    }
}
