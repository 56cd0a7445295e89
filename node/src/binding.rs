//! Binding the node to its rollup deployment at start: read the protocol constants from the
//! contract, refuse a configuration that disagrees (naming each key and both values), check the
//! genesis block against the contract's genesis archive. An L1 that cannot be reached is retried
//! with backoff while the node stays up and reports itself not ready.

use std::time::Duration;

use alloy::{
    eips::BlockId,
    primitives::Address,
    providers::{DynProvider, Provider},
};
use eyre::{WrapErr, bail, eyre};
use tandem_l1::{Deployment, L1Error, L1Reader, RollupParams};
use tandem_proto::SigningDomain;
use tandem_state::ChainSpec;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

/// First wait after a failed attempt to reach L1; doubles up to `l1.max_retry_interval`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The deployment the node runs against, as read from L1.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    /// The rollup contract.
    pub(crate) rollup: Address,
    /// Its constants.
    pub(crate) params: RollupParams,
    /// The L1 chain id.
    pub(crate) l1_chain_id: u64,
    /// The L1 block the rollup was deployed in, when a deployment file says so.
    pub(crate) deployment_block: Option<u64>,
}

impl Bound {
    /// The signing domain of the deployment: (L2 chain id, rollup address).
    pub(crate) fn domain(&self) -> SigningDomain {
        SigningDomain {
            chain_id: self.params.l2_chain_id,
            rollup: self.rollup,
        }
    }
}

/// One failed attempt: worth retrying, or a definite refusal.
enum Attempt {
    Transient(eyre::Report),
    Fatal(eyre::Report),
}

fn classify(error: L1Error, what: &str) -> Attempt {
    let report = eyre!("{what}: {error}");
    if error.is_transient() {
        Attempt::Transient(report)
    } else {
        Attempt::Fatal(report)
    }
}

/// Reads and checks the deployment, retrying while L1 is unreachable. `None` when cancelled
/// before it succeeded; an error when the deployment and the configuration disagree.
pub(crate) async fn bind(
    config: &Config,
    cancel: &CancellationToken,
) -> eyre::Result<Option<Bound>> {
    let (rollup, file) = match (&config.l1.rollup_address, &config.l1.deployment_file) {
        (Some(address), None) => (*address, None),
        (None, Some(path)) => {
            let deployment = Deployment::load(path)
                .wrap_err_with(|| format!("l1.deployment_file {}", path.display()))?;
            (deployment.rollup, Some(deployment))
        }
        _ => bail!("exactly one of l1.rollup_address and l1.deployment_file is required"),
    };
    let provider = crate::run::l1_provider(&config.l1.rpc_url)?;
    let max_backoff = config.l1.max_retry_interval;
    let mut backoff = FIRST_BACKOFF.min(max_backoff);
    loop {
        match attempt(config, &provider, rollup, file.as_ref()).await {
            Ok(bound) => {
                metrics::counter!("node_l1_bind_attempts_total", "result" => "ok").increment(1);
                return Ok(Some(bound));
            }
            Err(Attempt::Fatal(report)) => {
                metrics::counter!("node_l1_bind_attempts_total", "result" => "refused")
                    .increment(1);
                return Err(report);
            }
            Err(Attempt::Transient(report)) => {
                metrics::counter!("node_l1_bind_attempts_total", "result" => "unreachable")
                    .increment(1);
                warn!(
                    target: "node",
                    rpc = %config.l1.rpc_url,
                    retry_in = %humantime::format_duration(backoff),
                    error = %format!("{report:#}"),
                    "not ready: L1 unreachable, cannot read the rollup deployment yet"
                );
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(max_backoff);
    }
}

async fn attempt(
    config: &Config,
    provider: &DynProvider,
    rollup: Address,
    file: Option<&Deployment>,
) -> Result<Bound, Attempt> {
    let l1_chain_id = provider
        .get_chain_id()
        .await
        .map_err(|error| classify(error.into(), "reading the L1 chain id"))?;
    // Checked before anything else: on another chain the rollup address has no code, which
    // would otherwise look like an L1 node still syncing and be retried forever.
    check_l1_chain(config, file, l1_chain_id).map_err(Attempt::Fatal)?;
    let code = provider
        .get_code_at(rollup)
        .await
        .map_err(|error| classify(error.into(), "reading the rollup's code"))?;
    if code.is_empty() {
        // An L1 node still syncing has no code there yet either: keep trying, and say why.
        return Err(Attempt::Transient(eyre!(
            "l1.rollup_address: there is no contract at {rollup} on L1 chain {l1_chain_id} \
             (yet: the L1 node may still be syncing, or the address is wrong)"
        )));
    }
    let reader = L1Reader::new(provider.clone(), rollup);
    let params = reader
        .config(BlockId::latest())
        .await
        .map_err(|error| classify(error, "reading the rollup's constants"))?;
    check(config, &params, file).map_err(Attempt::Fatal)?;
    Ok(Bound {
        rollup,
        params,
        l1_chain_id,
        deployment_block: file.map(|deployment| deployment.deployment_block),
    })
}

/// The L1 node must be on the chain `l1.chain_id` names, and on the chain the deployment file
/// was written for.
fn check_l1_chain(
    config: &Config,
    file: Option<&Deployment>,
    l1_chain_id: u64,
) -> eyre::Result<()> {
    let mut problems = Vec::new();
    if let Some(expected) = config.l1.chain_id
        && expected != l1_chain_id
    {
        problems.push(format!(
            "l1.chain_id: the configuration says {expected}, the L1 node at {} reports {l1_chain_id}",
            config.l1.rpc_url
        ));
    }
    if let Some(deployment) = file
        && deployment.l1_chain_id != l1_chain_id
    {
        let path = config.l1.deployment_file.as_deref().map_or_else(
            || "the deployment file".into(),
            |path| path.display().to_string(),
        );
        problems.push(format!(
            "l1.deployment_file: {path} is a deployment on L1 chain {}, the L1 node at {} reports \
             chain {l1_chain_id}",
            deployment.l1_chain_id, config.l1.rpc_url
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(eyre!(
            "the L1 node is not on the deployment's chain:\n{}",
            problems.join("\n")
        ))
    }
}

/// Everything the configuration pins must agree with the contract; the genesis allocation must
/// produce the contract's genesis archive.
fn check(config: &Config, params: &RollupParams, file: Option<&Deployment>) -> eyre::Result<()> {
    let mut problems: Vec<String> = config
        .protocol
        .mismatches(params)
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some(deployment) = file
        && deployment.params != *params
    {
        problems.push(format!(
            "l1.deployment_file: its parameters differ from those of the rollup at {}",
            deployment.rollup
        ));
    }
    let spec = ChainSpec {
        chain_id: params.l2_chain_id,
        rollup_version: params.rollup_version,
        genesis_allocation: config.protocol.allocation(),
    };
    let genesis_archive = spec.genesis_archive_root();
    if genesis_archive != params.genesis_archive {
        problems.push(format!(
            "protocol.genesis_allocation: its genesis block gives the archive {genesis_archive}, \
             the rollup contract was deployed with {}",
            params.genesis_archive
        ));
    }
    if problems.is_empty() {
        info!(
            target: "node",
            slot = params.slot_duration,
            l1_slot = params.l1_slot_duration,
            block_ms = params.block_duration_ms,
            reexecution_ms = params.last_block_reexecution_budget_ms,
            mode = %params.pipelining_mode,
            body_cap = params.max_checkpoint_body_bytes,
            "protocol constants read from the rollup contract"
        );
        Ok(())
    } else {
        Err(eyre!(
            "the configuration disagrees with the rollup deployment:\n{}",
            problems.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(l1_chain_id: u64) -> Deployment {
        Deployment {
            rollup: Address::repeat_byte(1),
            deployment_block: 3,
            l1_chain_id,
            owner: Address::repeat_byte(2),
            validators: Vec::new(),
            params: RollupParams::with_genesis(1_000),
        }
    }

    #[test]
    fn a_deployment_file_of_another_l1_chain_is_refused_naming_both_ids() {
        let mut config = Config::default();
        config.l1.deployment_file = Some("deployment.json".into());
        assert!(check_l1_chain(&config, Some(&deployment(31_337)), 31_337).is_ok());
        let err = check_l1_chain(&config, Some(&deployment(1)), 31_337)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "l1.deployment_file: deployment.json is a deployment on L1 chain 1, the L1 node at \
                 http://127.0.0.1:8545 reports chain 31337"
            ),
            "{err}"
        );
        // Both checks report together.
        config.l1.chain_id = Some(5);
        let err = check_l1_chain(&config, Some(&deployment(1)), 31_337)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("l1.chain_id: the configuration says 5"),
            "{err}"
        );
        assert!(err.contains("l1.deployment_file:"), "{err}");
        assert!(check_l1_chain(&Config::default(), None, 31_337).is_ok());
    }
}
