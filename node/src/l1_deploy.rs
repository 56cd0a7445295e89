//! `tandem l1 deploy`: deploys the Rollup contract and writes the deployment file nodes use.

use std::{path::PathBuf, time::Duration};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use tandem_l1::{RollupParams, deploy};
use tandem_proto::time::PipeliningMode;
use tandem_state::ChainSpec;

use crate::config::CliOverrides;

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// L1 JSON-RPC endpoint.
    #[arg(long)]
    rpc: String,
    /// Deployer key: an encrypted keystore (with --password-file) or a file holding a 0x-hex
    /// private key. The deployer becomes the rollup's owner.
    #[arg(long)]
    key: PathBuf,
    /// Password file of the keystore.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Initial validators, comma-separated addresses.
    #[arg(long, value_delimiter = ',', required = true)]
    validators: Vec<Address>,
    /// Where to write the deployment JSON (refuses to overwrite).
    #[arg(long)]
    out: PathBuf,
    /// Node configuration whose `[protocol]` section gives the constants (and the genesis
    /// allocation the genesis archive is computed from); flags below override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// L1 timestamp of slot 0; default: `protocol.genesis_time`, else two L1 slots after the
    /// latest L1 block.
    #[arg(long)]
    genesis_time: Option<u64>,
    /// Slot duration S.
    #[arg(long, value_parser = humantime::parse_duration)]
    slot_duration: Option<Duration>,
    /// L1 slot duration E.
    #[arg(long, value_parser = humantime::parse_duration)]
    l1_slot_duration: Option<Duration>,
    /// Block duration D.
    #[arg(long, value_parser = humantime::parse_duration)]
    block_duration: Option<Duration>,
    /// Last-block re-execution budget R (default D).
    #[arg(long, value_parser = humantime::parse_duration)]
    last_block_reexecution_budget: Option<Duration>,
    /// `pipelined` or `non_pipelined` (the spelling of `protocol.pipelining_mode`).
    #[arg(long)]
    pipelining_mode: Option<PipeliningMode>,
    /// Slots per epoch.
    #[arg(long)]
    epoch_duration: Option<u64>,
    /// Committee members per epoch (at most 256).
    #[arg(long)]
    committee_size: Option<u64>,
    /// L2 chain id.
    #[arg(long)]
    l2_chain_id: Option<u64>,
    /// Largest checkpoint body, bytes.
    #[arg(long)]
    max_checkpoint_body_bytes: Option<u64>,
    /// Mana per checkpoint above which fees rise; the limit is twice this.
    #[arg(long, default_value_t = 50_000_000)]
    mana_target: u64,
    /// Fee per mana at zero excess.
    #[arg(long, default_value_t = 1_000)]
    min_fee_per_mana: u64,
}

fn millis(duration: Duration, flag: &str) -> eyre::Result<u64> {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 || !duration.subsec_nanos().is_multiple_of(1_000_000) {
        bail!(
            "--{flag}: must be a positive whole number of milliseconds, got {}",
            humantime::format_duration(duration)
        );
    }
    Ok(ms)
}

fn whole_seconds(duration: Duration, flag: &str) -> eyre::Result<u64> {
    if duration.subsec_nanos() != 0 || duration.is_zero() {
        bail!(
            "--{flag}: L1 timestamps are whole seconds, got {}",
            humantime::format_duration(duration)
        );
    }
    Ok(duration.as_secs())
}

fn load_deployer(args: &DeployArgs) -> eyre::Result<PrivateKeySigner> {
    let text = std::fs::read_to_string(&args.key)
        .wrap_err_with(|| format!("--key: reading {}", args.key.display()))?;
    let trimmed = text.trim();
    if let Some(hex) = trimmed.strip_prefix("0x").filter(|hex| hex.len() == 64) {
        let bytes: B256 = hex
            .parse()
            .map_err(|_| eyre!("--key: {} is not 0x-hex", args.key.display()))?;
        return PrivateKeySigner::from_bytes(&bytes)
            .map_err(|_| eyre!("--key: {} is not a valid secp256k1 key", args.key.display()));
    }
    let password_file = args.password_file.as_ref().ok_or_else(|| {
        eyre!(
            "--key {} is a keystore: give --password-file",
            args.key.display()
        )
    })?;
    crate::keys::load_signer(&args.key, password_file)
}

pub(crate) fn run(args: &DeployArgs) -> eyre::Result<()> {
    if args.out.exists() {
        bail!(
            "--out: {} already exists; refusing to overwrite a deployment",
            args.out.display()
        );
    }
    let deployer = load_deployer(args)?;
    let config = crate::cli::load_config(args.config.as_deref(), &CliOverrides::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deployment = runtime.block_on(async {
        let url = args
            .rpc
            .parse()
            .map_err(|_| eyre!("--rpc: {} is not a URL", args.rpc))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(url);
        let protocol = &config.protocol;
        let l1_slot = whole_seconds(
            args.l1_slot_duration
                .unwrap_or_else(|| protocol.l1_slot_duration()),
            "l1-slot-duration",
        )?;
        let genesis_time = match args.genesis_time.or(protocol.genesis_time) {
            Some(time) => time,
            None => {
                let latest = provider
                    .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                    .await
                    .wrap_err_with(|| format!("--rpc {}: reading the latest block", args.rpc))?
                    .ok_or_else(|| eyre!("--rpc {}: no latest block", args.rpc))?;
                latest.header.timestamp + 2 * l1_slot
            }
        };
        let mut params = RollupParams::with_genesis(genesis_time);
        params.slot_duration = whole_seconds(
            args.slot_duration
                .unwrap_or_else(|| protocol.slot_duration()),
            "slot-duration",
        )?;
        params.l1_slot_duration = l1_slot;
        let block = args
            .block_duration
            .unwrap_or_else(|| protocol.block_duration());
        params.block_duration_ms = millis(block, "block-duration")?;
        params.last_block_reexecution_budget_ms = millis(
            args.last_block_reexecution_budget
                .or(protocol.last_block_reexecution_budget)
                .unwrap_or(block),
            "last-block-reexecution-budget",
        )?;
        params.pipelining_mode = args
            .pipelining_mode
            .unwrap_or_else(|| protocol.pipelining_mode());
        params.epoch_duration = args
            .epoch_duration
            .unwrap_or_else(|| protocol.epoch_duration());
        params.committee_size = args
            .committee_size
            .unwrap_or_else(|| protocol.committee_size());
        params.l2_chain_id = args.l2_chain_id.unwrap_or_else(|| protocol.chain_id());
        params.rollup_version = protocol.rollup_version();
        params.max_checkpoint_body_bytes = args
            .max_checkpoint_body_bytes
            .unwrap_or_else(|| protocol.max_checkpoint_body_bytes());
        params.mana_target = args.mana_target;
        params.mana_limit = args.mana_target.saturating_mul(2);
        params.min_fee_per_mana = args.min_fee_per_mana;
        // The genesis archive follows from the genesis block of the configured allocation, so
        // every node started with the same [protocol] section agrees with the contract.
        params.genesis_archive = ChainSpec {
            chain_id: params.l2_chain_id,
            rollup_version: params.rollup_version,
            genesis_allocation: protocol.allocation(),
        }
        .genesis_archive_root();
        params.validate()?;
        deploy(&provider, &params, deployer.address(), &args.validators)
            .await
            .wrap_err_with(|| format!("deploying the rollup through {}", args.rpc))
    })?;
    deployment.save(&args.out)?;
    println!("{}", deployment.rollup);
    eprintln!(
        "rollup {} deployed in L1 block {}, genesis time {}, genesis archive {}; wrote {}",
        deployment.rollup,
        deployment.deployment_block,
        deployment.params.genesis_time,
        deployment.params.genesis_archive,
        args.out.display()
    );
    Ok(())
}
