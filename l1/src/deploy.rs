//! Deploying the Rollup contract and the deployment file nodes are configured with.

use std::path::Path;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
};
use serde::{Deserialize, Serialize};
use tandem_proto::{DEFAULT_MAX_CHECKPOINT_BODY_BYTES, time::PipeliningMode};

use crate::{
    bindings::Rollup,
    errors::{L1Error, L1Result},
    fees::{FeeParams, MAX_ETH_PER_FEE_ASSET, MIN_ETH_PER_FEE_ASSET, PRICE_PRECISION},
    propose::max_checkpoint_body_bytes_for,
};

/// Largest committee the contract accepts (the attestation bitmap is one word).
pub const MAX_COMMITTEE_SIZE: u64 = 256;

const MODE_PIPELINED: u64 = 1;
const MODE_NON_PIPELINED: u64 = 2;

fn mode_to_sol(mode: PipeliningMode) -> U256 {
    U256::from(match mode {
        PipeliningMode::Pipelined => MODE_PIPELINED,
        PipeliningMode::NonPipelined => MODE_NON_PIPELINED,
    })
}

/// Protocol parameters fixed at deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupParams {
    /// L1 timestamp (seconds) of the start of slot 0.
    pub genesis_time: u64,
    /// S, seconds.
    pub slot_duration: u64,
    /// E, seconds.
    pub l1_slot_duration: u64,
    /// Slots per epoch.
    pub epoch_duration: u64,
    /// Committee members per epoch (at most 256).
    pub committee_size: u64,
    /// Mana per checkpoint above which fees rise.
    pub mana_target: u64,
    /// Most mana per checkpoint.
    pub mana_limit: u64,
    /// Fee per mana at zero excess, in ETH terms.
    pub min_fee_per_mana: u64,
    /// Denominator of the fee exponent.
    pub fee_update_fraction: u64,
    /// Fee-asset price of the genesis checkpoint (1e12 = 1.0).
    pub initial_eth_per_fee_asset: u64,
    /// L2 chain id bound into every signature.
    pub l2_chain_id: u64,
    /// Archive root after the genesis block.
    pub genesis_archive: B256,
    /// D, milliseconds: the block (sub-slot) duration consensus deadlines depend on.
    pub block_duration_ms: u64,
    /// R, milliseconds: the last-block re-execution budget (the reference uses R = D).
    pub last_block_reexecution_budget_ms: u64,
    /// The network's schedule.
    pub pipelining_mode: PipeliningMode,
    /// Largest checkpoint body `propose` accepts.
    pub max_checkpoint_body_bytes: u64,
    /// Protocol version carried in block headers.
    pub rollup_version: u32,
}

impl RollupParams {
    /// Defaults for a network starting at `genesis_time` (production-like 72 s / 12 s slots).
    pub fn with_genesis(genesis_time: u64) -> Self {
        Self {
            genesis_time,
            slot_duration: 72,
            l1_slot_duration: 12,
            epoch_duration: 32,
            committee_size: 48,
            mana_target: 50_000_000,
            mana_limit: 100_000_000,
            min_fee_per_mana: 1_000,
            fee_update_fraction: 400_000_000,
            initial_eth_per_fee_asset: PRICE_PRECISION,
            l2_chain_id: 1337,
            genesis_archive: tandem_proto::archive::ArchiveTree::new().root(),
            block_duration_ms: 6_000,
            last_block_reexecution_budget_ms: 6_000,
            pipelining_mode: PipeliningMode::Pipelined,
            max_checkpoint_body_bytes: DEFAULT_MAX_CHECKPOINT_BODY_BYTES as u64,
            rollup_version: 1,
        }
    }

    /// Checks what the contract's constructor checks (so a deployment file the contract could
    /// not have accepted is refused too); names the first parameter at fault.
    pub fn validate(&self) -> L1Result<()> {
        let bad = |field, problem| Err(L1Error::InvalidParams { field, problem });
        if self.slot_duration == 0 || self.l1_slot_duration == 0 {
            return bad("slot_duration", "must be greater than zero");
        }
        if !self.slot_duration.is_multiple_of(self.l1_slot_duration) {
            return bad("slot_duration", "must be a multiple of l1_slot_duration");
        }
        if self.epoch_duration == 0 {
            return bad("epoch_duration", "must be greater than zero");
        }
        if self.committee_size == 0 || self.committee_size > MAX_COMMITTEE_SIZE {
            return bad("committee_size", "must be in 1..=256");
        }
        if self.mana_target == 0 || self.mana_limit < self.mana_target {
            return bad(
                "mana_limit",
                "must be at least mana_target, which must be non-zero",
            );
        }
        if self.min_fee_per_mana == 0 {
            return bad("min_fee_per_mana", "must be greater than zero");
        }
        if self.fee_update_fraction == 0 {
            return bad("fee_update_fraction", "must be greater than zero");
        }
        if !(MIN_ETH_PER_FEE_ASSET..=MAX_ETH_PER_FEE_ASSET)
            .contains(&self.initial_eth_per_fee_asset)
        {
            return bad("initial_eth_per_fee_asset", "must be in 1e6..=1e18");
        }
        if self.l2_chain_id == 0 {
            return bad("l2_chain_id", "must be non-zero");
        }
        let slot_ms = self.slot_duration.saturating_mul(1000);
        if self.block_duration_ms == 0 || self.block_duration_ms >= slot_ms {
            return bad("block_duration_ms", "must be in 1..slot_duration");
        }
        if self.last_block_reexecution_budget_ms == 0
            || self.last_block_reexecution_budget_ms >= slot_ms
        {
            return bad(
                "last_block_reexecution_budget_ms",
                "must be in 1..slot_duration",
            );
        }
        // The contract's rule: a full body with a quorum of attestations fits one mempool tx.
        let committee = usize::try_from(self.committee_size).unwrap_or(usize::MAX);
        let body = usize::try_from(self.max_checkpoint_body_bytes).unwrap_or(usize::MAX);
        if body == 0 || body > max_checkpoint_body_bytes_for(committee) {
            return bad(
                "max_checkpoint_body_bytes",
                "must be at least 1, and a full body plus a quorum of attestations must fit the \
                 128 KiB mempool tx limit (lower the cap or the committee size)",
            );
        }
        Ok(())
    }

    /// The parameters as read back from the contract's `getConfig()`.
    pub(crate) fn from_config(config: &Rollup::Config) -> L1Result<Self> {
        let u64_of =
            |value: U256, what| u64::try_from(value).map_err(|_| L1Error::Unexpected(what));
        let pipelining_mode = match u64_of(config.pipeliningMode, "mode above u64")? {
            MODE_PIPELINED => PipeliningMode::Pipelined,
            MODE_NON_PIPELINED => PipeliningMode::NonPipelined,
            _ => {
                return Err(L1Error::Unexpected(
                    "unknown pipelining mode in the contract",
                ));
            }
        };
        Ok(Self {
            genesis_time: u64_of(config.genesisTime, "genesis time above u64")?,
            slot_duration: u64_of(config.slotDuration, "slot duration above u64")?,
            l1_slot_duration: u64_of(config.l1SlotDuration, "L1 slot duration above u64")?,
            epoch_duration: u64_of(config.epochDuration, "epoch duration above u64")?,
            committee_size: u64_of(config.committeeSize, "committee size above u64")?,
            mana_target: u64_of(config.manaTarget, "mana target above u64")?,
            mana_limit: u64_of(config.manaLimit, "mana limit above u64")?,
            min_fee_per_mana: u64_of(config.minFeePerMana, "min fee above u64")?,
            fee_update_fraction: u64_of(config.feeUpdateFraction, "fee fraction above u64")?,
            initial_eth_per_fee_asset: u64_of(config.initialEthPerFeeAsset, "price above u64")?,
            l2_chain_id: u64_of(config.l2ChainId, "chain id above u64")?,
            genesis_archive: config.genesisArchive,
            block_duration_ms: u64_of(config.blockDurationMs, "block duration above u64")?,
            last_block_reexecution_budget_ms: u64_of(
                config.lastBlockReexecutionBudgetMs,
                "re-execution budget above u64",
            )?,
            pipelining_mode,
            max_checkpoint_body_bytes: u64_of(config.maxCheckpointBodyBytes, "body cap above u64")?,
            rollup_version: u32::try_from(config.rollupVersion)
                .map_err(|_| L1Error::Unexpected("rollup version above u32"))?,
        })
    }

    /// The fee parameters.
    pub const fn fee_params(&self) -> FeeParams {
        FeeParams {
            mana_target: self.mana_target,
            min_fee_per_mana: self.min_fee_per_mana,
            fee_update_fraction: self.fee_update_fraction,
        }
    }

    /// The contract's constructor argument (deploy through [`deploy`], which validates first).
    pub fn to_sol_config(&self) -> Rollup::Config {
        Rollup::Config {
            genesisTime: U256::from(self.genesis_time),
            slotDuration: U256::from(self.slot_duration),
            l1SlotDuration: U256::from(self.l1_slot_duration),
            epochDuration: U256::from(self.epoch_duration),
            committeeSize: U256::from(self.committee_size),
            manaTarget: U256::from(self.mana_target),
            manaLimit: U256::from(self.mana_limit),
            minFeePerMana: U256::from(self.min_fee_per_mana),
            feeUpdateFraction: U256::from(self.fee_update_fraction),
            initialEthPerFeeAsset: U256::from(self.initial_eth_per_fee_asset),
            l2ChainId: U256::from(self.l2_chain_id),
            genesisArchive: self.genesis_archive,
            blockDurationMs: U256::from(self.block_duration_ms),
            lastBlockReexecutionBudgetMs: U256::from(self.last_block_reexecution_budget_ms),
            pipeliningMode: mode_to_sol(self.pipelining_mode),
            maxCheckpointBodyBytes: U256::from(self.max_checkpoint_body_bytes),
            rollupVersion: U256::from(self.rollup_version),
        }
    }
}

/// A deployed rollup: what a node needs to find and follow it. Written as JSON by
/// `tandem l1 deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The Rollup contract.
    pub rollup: Address,
    /// L1 block that created it (L1 sync starts here).
    pub deployment_block: u64,
    /// L1 chain id.
    pub l1_chain_id: u64,
    /// Owner (registers validators).
    pub owner: Address,
    /// Validators registered at deployment.
    pub validators: Vec<Address>,
    /// Protocol parameters.
    #[serde(flatten)]
    pub params: RollupParams,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> L1Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| L1Error::DeploymentFile {
            path: path.to_path_buf(),
            source,
        })?;
        let deployment: Self =
            serde_json::from_str(&text).map_err(|source| L1Error::DeploymentFormat {
                path: path.to_path_buf(),
                source,
            })?;
        // A file with parameters the contract could not have accepted is not a deployment.
        deployment.params.validate()?;
        Ok(deployment)
    }

    /// Writes a deployment file (pretty JSON).
    pub fn save(&self, path: &Path) -> L1Result<()> {
        let text =
            serde_json::to_string_pretty(self).map_err(|source| L1Error::DeploymentFormat {
                path: path.to_path_buf(),
                source,
            })?;
        std::fs::write(path, text + "\n").map_err(|source| L1Error::DeploymentFile {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Deploys the Rollup with `owner` and the initial validator set, waits for the receipt.
/// Parameters are validated first ([`RollupParams::validate`]).
pub async fn deploy<P: Provider>(
    provider: &P,
    params: &RollupParams,
    owner: Address,
    validators: &[Address],
) -> L1Result<Deployment> {
    params.validate()?;
    let receipt =
        Rollup::deploy_builder(provider, params.to_sol_config(), owner, validators.to_vec())
            .send()
            .await?
            .get_receipt()
            .await?;
    if !receipt.status() {
        return Err(L1Error::TxReverted(receipt.transaction_hash));
    }
    let rollup = receipt.contract_address.ok_or(L1Error::Unexpected(
        "deployment receipt has no contract address",
    ))?;
    let deployment_block = receipt.block_number.ok_or(L1Error::Unexpected(
        "deployment receipt has no block number",
    ))?;
    Ok(Deployment {
        rollup,
        deployment_block,
        l1_chain_id: provider.get_chain_id().await?,
        owner,
        validators: validators.to_vec(),
        params: params.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(params: RollupParams) -> Deployment {
        Deployment {
            rollup: Address::repeat_byte(1),
            deployment_block: 7,
            l1_chain_id: 31_337,
            owner: Address::repeat_byte(2),
            validators: vec![Address::repeat_byte(3)],
            params,
        }
    }

    fn load_after_saving(params: RollupParams) -> L1Result<Deployment> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.json");
        deployment(params).save(&path).unwrap();
        Deployment::load(&path)
    }

    #[test]
    fn load_refuses_what_the_contract_would_refuse() {
        let good = RollupParams::with_genesis(1_000);
        assert_eq!(
            load_after_saving(good.clone()).unwrap(),
            deployment(good.clone())
        );

        let zero_fraction = RollupParams {
            fee_update_fraction: 0,
            ..good
        };
        assert!(matches!(
            load_after_saving(zero_fraction),
            Err(L1Error::InvalidParams {
                field: "fee_update_fraction",
                ..
            })
        ));
        // The default cap with a committee of 256: a quorum of 171 signatures does not fit.
        let big_committee = RollupParams {
            committee_size: 256,
            ..good
        };
        assert!(matches!(
            load_after_saving(big_committee),
            Err(L1Error::InvalidParams {
                field: "max_checkpoint_body_bytes",
                ..
            })
        ));
    }

    #[test]
    fn the_body_cap_is_exactly_what_fits_one_mempool_tx() {
        for committee in [1usize, 4, 48, 112, 256] {
            let cap = max_checkpoint_body_bytes_for(committee);
            let fits = |body: usize| {
                crate::propose_calldata_len(crate::quorum(committee), body)
                    + crate::TX_ENVELOPE_BYTES
                    <= crate::MEMPOOL_TX_SIZE_LIMIT
            };
            assert!(
                fits(cap) && !fits(cap + 1),
                "committee {committee}: cap {cap}"
            );
            let mut params = RollupParams::with_genesis(1_000);
            params.committee_size = committee as u64;
            params.max_checkpoint_body_bytes = cap as u64;
            assert!(params.validate().is_ok(), "committee {committee}");
            params.max_checkpoint_body_bytes += 1;
            assert!(params.validate().is_err(), "committee {committee}");
        }
        // The default cap holds up to 112 members.
        assert!(max_checkpoint_body_bytes_for(112) >= DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
        assert!(max_checkpoint_body_bytes_for(113) < DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
    }
}
