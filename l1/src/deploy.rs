//! Deploying the Rollup contract and the deployment file nodes are configured with.

use std::path::Path;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
};
use serde::{Deserialize, Serialize};

use crate::{
    bindings::Rollup,
    errors::{L1Error, L1Result},
    fees::{FeeParams, PRICE_PRECISION},
};

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
        }
    }

    /// The fee parameters.
    pub const fn fee_params(&self) -> FeeParams {
        FeeParams {
            mana_target: self.mana_target,
            min_fee_per_mana: self.min_fee_per_mana,
            fee_update_fraction: self.fee_update_fraction,
        }
    }

    fn to_config(&self) -> Rollup::Config {
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
        serde_json::from_str(&text).map_err(|source| L1Error::DeploymentFormat {
            path: path.to_path_buf(),
            source,
        })
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
pub async fn deploy<P: Provider>(
    provider: &P,
    params: &RollupParams,
    owner: Address,
    validators: &[Address],
) -> L1Result<Deployment> {
    let receipt = Rollup::deploy_builder(provider, params.to_config(), owner, validators.to_vec())
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
