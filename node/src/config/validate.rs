//! Cross-field validation: every rule names the key at fault, and every problem is reported.
//!
//! Rules on the protocol constants run twice: offline against the defaults of unset keys
//! ([`Config::validate`]), and once the node is bound to its deployment, against the contract's
//! constants ([`Config::validate_bound`]).

use std::time::Duration;

use tandem_proto::time::{ReservedPart, Timetable, TimetableError};

use super::{Config, ConfigError, Problem, Role};

/// A key file the configuration names that does not exist (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingFile {
    /// The key naming it.
    pub(crate) key: &'static str,
    /// The file.
    pub(crate) path: std::path::PathBuf,
}

impl MissingFile {
    /// How to create it.
    pub(crate) fn fix(&self) -> String {
        if self.key.ends_with("password_file") {
            format!(
                "write the keystore password into {} (one line)",
                self.path.display()
            )
        } else {
            format!(
                "create it with `tandem keys new --out {} --password-file <file>`",
                self.path.display()
            )
        }
    }

    fn into_problem(self) -> Problem {
        Problem {
            key: self.key,
            message: format!("{} is not a readable file", self.path.display()),
        }
    }
}

fn human_ms(ms: u64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(ms))
}

/// The key of the budget behind each part of the reserved time.
fn key_of(part: ReservedPart) -> &'static str {
    match part {
        ReservedPart::Init => "sequencer.checkpoint_init_time",
        ReservedPart::Prepare => "sequencer.checkpoint_prepare_time",
        ReservedPart::Propagation => "sequencer.p2p_propagation_time",
        ReservedPart::Reexecution => "protocol.last_block_reexecution_budget",
        ReservedPart::L1Publishing => "sequencer.l1_publishing_time",
    }
}

/// Names the key(s) behind a timetable error: the block duration, or the largest of the times
/// the frame reserves (every part is listed with its key in the message).
fn timetable_problem(err: &TimetableError) -> Problem {
    match err {
        TimetableError::ZeroBlockDuration | TimetableError::BlockNotShorterThanSlot { .. } => {
            Problem {
                key: "protocol.block_duration",
                message: err.to_string(),
            }
        }
        TimetableError::NoRoomForBlocks {
            mode,
            slot_ms,
            block_ms,
            reserved,
        } => {
            let (largest, largest_ms) = reserved.largest();
            let key = if *block_ms >= largest_ms {
                "protocol.block_duration"
            } else {
                key_of(largest)
            };
            let mut parts = format!(
                "{} {} + {} {} + 2 × {} {} + {} {}",
                key_of(ReservedPart::Init),
                human_ms(reserved.init_ms),
                key_of(ReservedPart::Prepare),
                human_ms(reserved.prepare_ms),
                key_of(ReservedPart::Propagation),
                human_ms(reserved.propagation_ms),
                key_of(ReservedPart::Reexecution),
                human_ms(reserved.reexecution_ms),
            );
            if reserved.l1_publishing_ms > 0 {
                parts.push_str(&format!(
                    " + {} {}",
                    key_of(ReservedPart::L1Publishing),
                    human_ms(reserved.l1_publishing_ms)
                ));
            }
            Problem {
                key,
                message: format!(
                    "the {mode} schedule has no room for one block of protocol.block_duration {} \
                     in protocol.slot_duration {}: {} is reserved ({parts}; budgets after the \
                     fast-profile clamp)",
                    human_ms(*block_ms),
                    human_ms(*slot_ms),
                    human_ms(reserved.total_ms()),
                ),
            }
        }
        TimetableError::PublishingShorterThanL1Slot {
            propagation_ms,
            l1_publishing_ms,
            l1_slot_ms,
        } => Problem {
            key: "sequencer.l1_publishing_time",
            message: format!(
                "sequencer.l1_publishing_time {} + sequencer.p2p_propagation_time {} is less than \
                 protocol.l1_slot_duration {} (budgets after the fast-profile clamp): in the \
                 non-pipelined schedule a full checkpoint's proposal would reach validators \
                 after its deadline T + S − 2E − R",
                human_ms(*l1_publishing_ms),
                human_ms(*propagation_ms),
                human_ms(*l1_slot_ms),
            ),
        },
    }
}

impl Config {
    /// The timetable this node's sequencer follows (the network's mode), or the problem that
    /// prevents one, naming the key at fault.
    pub(crate) fn timetable(&self) -> Result<Timetable, Problem> {
        let windows = self.windows().map_err(|err| Problem {
            key: "protocol.slot_duration",
            message: err.to_string(),
        })?;
        self.timetable_for(windows)
            .map_err(|err| timetable_problem(&err))
    }

    /// Rules on the protocol constants and on what depends on them. Every role needs
    /// consistent slot and block durations; only a validator builds blocks, so only its
    /// sequencer budgets must leave room for one and its block size must fit the body cap.
    fn protocol_problems(&self, problem: &mut impl FnMut(&'static str, String)) {
        let slot = self.protocol.slot_duration();
        if let Some(budget) = self.protocol.last_block_reexecution_budget
            && (budget.is_zero() || budget >= slot)
        {
            problem(
                "protocol.last_block_reexecution_budget",
                format!(
                    "{} is outside (0, protocol.slot_duration = {})",
                    humantime::format_duration(budget),
                    humantime::format_duration(slot)
                ),
            );
        }
        self.publisher
            .protocol_problems(self.protocol.l1_slot_duration(), &mut *problem);
        let validator = self.node.role == Role::Validator;
        let windows = match self.windows() {
            Ok(windows) => windows,
            Err(err) => return problem("protocol.slot_duration", err.to_string()),
        };
        let table = match self.timetable_for(windows) {
            Ok(table) => table,
            Err(
                err @ (TimetableError::ZeroBlockDuration
                | TimetableError::BlockNotShorterThanSlot { .. }),
            ) => {
                let Problem { key, message } = timetable_problem(&err);
                return problem(key, message);
            }
            // The budgets only shape a validator's own schedule.
            Err(err) => {
                if validator {
                    let Problem { key, message } = timetable_problem(&err);
                    problem(key, message);
                }
                return;
            }
        };
        if !validator {
            return;
        }
        let blocks = table.max_blocks_per_checkpoint();
        let fitting = self.fitting_txs_per_block(&table);
        let cap = self.protocol.max_checkpoint_body_bytes();
        if fitting == 0 {
            problem(
                "protocol.max_checkpoint_body_bytes",
                format!("{cap} bytes do not hold one tx in each of {blocks} blocks"),
            );
        } else if let Some(set) = self.sequencer.max_txs_per_block
            && set > fitting
        {
            problem(
                "sequencer.max_txs_per_block",
                format!(
                    "{set} txs in each of {blocks} blocks overflow the checkpoint body cap of \
                     {cap} bytes (protocol.max_checkpoint_body_bytes): at most {fitting} fit; \
                     leave it unset to use that"
                ),
            );
        }
    }

    /// Re-checks the rules on the protocol constants once the node is bound to its deployment
    /// (the `[protocol]` section then holds the contract's values): the offline check could only
    /// use the defaults of unset keys.
    pub(crate) fn validate_bound(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.protocol_problems(&mut |key, message| problems.push(Problem { key, message }));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Checks the rules that span several keys, key files included. Reports every problem,
    /// not just the first.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let (mut problems, missing) = self.check();
        problems.extend(missing.into_iter().map(MissingFile::into_problem));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every rule: the problems, and separately the key files that do not exist (an example
    /// config names files an operator creates with `tandem keys new`).
    pub(crate) fn check(&self) -> (Vec<Problem>, Vec<MissingFile>) {
        let mut problems = Vec::new();
        let mut missing = Vec::new();
        let mut missing_file = |key: &'static str, path: &std::path::Path| {
            missing.push(MissingFile {
                key,
                path: path.to_path_buf(),
            });
        };
        let mut problem = |key, message: String| problems.push(Problem { key, message });

        if self.protocol.chain_id == Some(0) {
            problem("protocol.chain_id", "must be non-zero".into());
        }
        self.protocol_problems(&mut problem);
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
        if self.l1.max_retry_interval.is_zero() {
            problem("l1.max_retry_interval", "must be greater than zero".into());
        }
        if self.l1.rollup_address.is_some() && self.l1.deployment_file.is_some() {
            problem(
                "l1.rollup_address",
                "give either l1.rollup_address or l1.deployment_file, not both".into(),
            );
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
        if self.sequencer.max_txs_per_block == Some(0) {
            problem("sequencer.max_txs_per_block", "must be at least 1".into());
        }
        self.sequencer.problems(&mut problem);
        self.p2p.problems(&mut problem);
        self.rpc.problems(&mut problem);
        self.publisher.problems(
            self.node.role,
            self.validator.keystore.as_deref(),
            &mut problem,
            &mut missing_file,
        );
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
                    Some(path) if !path.is_file() => missing_file(key, path),
                    Some(_) => {}
                }
            }
        } else if self.validator.keystore.is_some() || self.validator.password_file.is_some() {
            problem(
                "validator.keystore",
                "a full node signs nothing: remove [validator] keystore and password_file, or \
                 set node.role = \"validator\""
                    .into(),
            );
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
        (problems, missing)
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

    use tandem_proto::{Address, checkpoint_body_len, time::PipeliningMode};

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
    fn a_full_node_given_validator_keys_is_refused() {
        let mut config = Config::default();
        assert_eq!(config.node.role, Role::FullNode);
        config.validator.keystore = Some("validator.json".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("validator.keystore") && err.contains("a full node signs nothing"),
            "{err}"
        );
        config.validator.keystore = None;
        config.validator.password_file = Some("password".into());
        assert!(config.validate().is_err());
        config.validator.password_file = None;
        assert!(config.validate().is_ok());
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

    fn validator_on(slot: u64, l1_slot: u64, block_ms: u64, reexecution_ms: u64) -> Config {
        let mut config = Config::default();
        config.node.role = Role::Validator;
        config.protocol.slot_duration = Some(Duration::from_secs(slot));
        config.protocol.l1_slot_duration = Some(Duration::from_secs(l1_slot));
        config.protocol.block_duration = Some(Duration::from_millis(block_ms));
        config.protocol.last_block_reexecution_budget = Some(Duration::from_millis(reexecution_ms));
        config
    }

    #[test]
    fn the_derived_block_size_fills_but_never_overflows_the_body_cap() {
        // The defaults, the README's examples (R = 1 s with P = 1.5 s builds 11 blocks), the
        // fast profiles and the CLI tests' 8/2/2 network, in both modes.
        let mut profiles = vec![
            validator_on(72, 12, 6_000, 6_000),
            validator_on(72, 12, 6_000, 1_000),
            validator_on(36, 4, 6_000, 6_000),
            validator_on(24, 2, 2_000, 2_000),
            validator_on(12, 1, 1_000, 1_000),
            validator_on(8, 2, 2_000, 2_000),
        ];
        profiles[1].sequencer.p2p_propagation_time = Duration::from_millis(1_500);
        let mut checked = 0;
        for mode in [PipeliningMode::Pipelined, PipeliningMode::NonPipelined] {
            for profile in &profiles {
                let mut config = profile.clone();
                config.protocol.pipelining_mode = Some(mode);
                let Ok(table) = config.timetable() else {
                    continue;
                };
                let blocks = table.max_blocks_per_checkpoint() as usize;
                let txs = config.max_txs_per_block(&table) as usize;
                let cap = config.protocol.max_checkpoint_body_bytes() as usize;
                let body = |per_block: usize| checkpoint_body_len(blocks, blocks * per_block);
                assert!(txs > 0 && body(txs) <= cap, "{blocks} blocks of {txs} txs");
                assert!(
                    body(txs + 1) > cap,
                    "{blocks} blocks could hold more than {txs}"
                );
                assert!(
                    config.validate_bound().is_ok(),
                    "{:?}",
                    config.validate_bound()
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} profiles have a timetable");
        // 72/12/6, R = 1 s, P = 1.5 s: 11 blocks of the old default of 80 txs overflow 120 KiB.
        let mut short_r = profiles[1].clone();
        assert_eq!(short_r.timetable().unwrap().max_blocks_per_checkpoint(), 11);
        short_r.sequencer.max_txs_per_block = Some(80);
        let err = short_r.validate_bound().unwrap_err().to_string();
        assert!(
            err.starts_with("sequencer.max_txs_per_block: 80 txs in each of 11 blocks overflow"),
            "{err}"
        );
        // 833 txs fit in 11 blocks: 75 per block.
        short_r.sequencer.max_txs_per_block = None;
        let table = short_r.timetable().unwrap();
        assert_eq!(short_r.max_txs_per_block(&table), 75);
        short_r.sequencer.max_txs_per_block = Some(75);
        assert!(short_r.validate_bound().is_ok());
    }

    #[test]
    fn timetable_problems_name_the_budget_at_fault() {
        // 8/2/2 (fast profile): 5 s of init leaves no room for a 2 s block.
        let mut config = validator_on(8, 2, 2_000, 2_000);
        config.sequencer.checkpoint_init_time = Duration::from_secs(5);
        let ConfigError::Invalid(problems) = config.validate_bound().unwrap_err() else {
            panic!("not Invalid")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "sequencer.checkpoint_init_time");
        assert!(
            problems[0]
                .message
                .contains("protocol.last_block_reexecution_budget 2s"),
            "{}",
            problems[0].message
        );
        // R is the largest part: named instead of the block duration.
        let long_r = validator_on(72, 12, 6_000, 62_000);
        let err = long_r.validate_bound().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "protocol.last_block_reexecution_budget: the pipelined schedule has no room"
            ),
            "{err}"
        );
        // Non-pipelined publishing shorter than E − P.
        let mut publishing = validator_on(72, 12, 6_000, 6_000);
        publishing.protocol.pipelining_mode = Some(PipeliningMode::NonPipelined);
        publishing.sequencer.l1_publishing_time = Duration::from_secs(9);
        let err = publishing.validate_bound().unwrap_err().to_string();
        assert!(err.starts_with("sequencer.l1_publishing_time: "), "{err}");
        // A full node does not build: its sequencer budgets are not checked.
        config.node.role = Role::FullNode;
        assert!(config.validate_bound().is_ok());
    }
}
