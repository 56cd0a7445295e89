//! A real anvil for tests (feature `test-utils`): started from the pinned binary that
//! `scripts/install-tools.sh` puts in `.tools/bin`, on a free port, killed on drop.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};

use crate::{
    deploy::{Deployment, RollupParams, deploy},
    errors::L1Result,
};

/// Environment variable naming the anvil binary; otherwise `<workspace>/.tools/bin/anvil`.
pub const ANVIL_ENV: &str = "TANDEM_ANVIL";

/// Path of the anvil binary tests use.
pub fn anvil_path() -> PathBuf {
    std::env::var_os(ANVIL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/anvil"))
}

/// A running anvil with a funded deployer wallet.
pub struct AnvilHarness {
    anvil: AnvilInstance,
    provider: DynProvider,
    deployer: PrivateKeySigner,
}

impl std::fmt::Debug for AnvilHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnvilHarness")
            .field("endpoint", &self.anvil.endpoint())
            .finish_non_exhaustive()
    }
}

impl AnvilHarness {
    /// Starts anvil; `block_time` in seconds (fractions allowed), or automine when `None`.
    /// Panics with a pointer to the install script when the binary is missing: tests cannot
    /// run without it.
    pub fn start(block_time: Option<f64>) -> Self {
        let path = anvil_path();
        assert!(
            path.exists(),
            "anvil not found at {}: run scripts/install-tools.sh (or set {ANVIL_ENV})",
            path.display()
        );
        let mut anvil = Anvil::at(path);
        if let Some(block_time) = block_time {
            anvil = anvil.arg("--block-time").arg(block_time.to_string());
        }
        let anvil = anvil.try_spawn().expect("anvil starts");
        let deployer = PrivateKeySigner::from(anvil.keys()[0].clone());
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(anvil.endpoint_url())
            .erased();
        Self {
            anvil,
            provider,
            deployer,
        }
    }

    /// A provider signing with the deployer key.
    pub fn provider(&self) -> DynProvider {
        self.provider.clone()
    }

    /// The HTTP endpoint.
    pub fn endpoint(&self) -> String {
        self.anvil.endpoint()
    }

    /// The deployer (also the rollup owner in [`AnvilHarness::deploy`]).
    pub fn deployer(&self) -> Address {
        self.deployer.address()
    }

    /// Anvil's `index`th funded dev key.
    pub fn dev_key(&self, index: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(self.anvil.keys()[index].clone())
    }

    /// Deploys a rollup owned by the deployer.
    pub async fn deploy(
        &self,
        params: &RollupParams,
        validators: &[Address],
    ) -> L1Result<Deployment> {
        deploy(&self.provider, params, self.deployer(), validators).await
    }

    /// Timestamp of the latest block.
    pub async fn latest_timestamp(&self) -> L1Result<u64> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or(crate::errors::L1Error::Unexpected("no latest block"))?;
        Ok(block.header.timestamp)
    }

    /// Mines one block with exactly this timestamp.
    pub async fn mine_at(&self, timestamp: u64) -> L1Result<()> {
        self.provider
            .anvil_set_next_block_timestamp(timestamp)
            .await?;
        self.provider.evm_mine(None).await?;
        Ok(())
    }

    /// The next mined block (e.g. by a sent tx) gets this timestamp.
    pub async fn set_next_block_timestamp(&self, timestamp: u64) -> L1Result<()> {
        Ok(self
            .provider
            .anvil_set_next_block_timestamp(timestamp)
            .await?)
    }

    /// Gives `address` a balance of `wei`.
    pub async fn fund(&self, address: Address, wei: U256) -> L1Result<()> {
        Ok(self.provider.anvil_set_balance(address, wei).await?)
    }
}
