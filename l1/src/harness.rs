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

use alloy::primitives::Bytes;
use tandem_proto::{
    CheckpointAttestation, CheckpointProposal, ConsensusPayload, SigningDomain, SigningKey,
};

use crate::{
    bindings::Rollup,
    deploy::{Deployment, RollupParams, deploy},
    errors::{L1Error, L1Result},
    propose::ProposeBundle,
    reader::L1Reader,
};

/// Environment variable naming the anvil binary; otherwise `<workspace>/.tools/bin/anvil`.
pub const ANVIL_ENV: &str = "TANDEM_ANVIL";

/// The EVM hardfork every test anvil runs: today's Ethereum mainnet (EIP-7623 calldata floor
/// pricing, EIP-7702 delegated accounts, EIP-7825 tx gas cap), so gas figures and the
/// direct-call rule are measured under the rules L1 applies.
pub const HARDFORK: &str = "osaka";

/// Receipt polls (50 ms apart) before a landed tx counts as lost.
const RECEIPT_POLLS: usize = 200;

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
        Self::start_on(None, block_time)
    }

    /// [`AnvilHarness::start`] on a given port (e.g. one a node was configured with before L1
    /// existed); `None` picks a free one.
    pub fn start_on(port: Option<u16>, block_time: Option<f64>) -> Self {
        let path = anvil_path();
        assert!(
            path.exists(),
            "anvil not found at {}: run scripts/install-tools.sh (or set {ANVIL_ENV})",
            path.display()
        );
        let mut anvil = Anvil::at(path).arg("--hardfork").arg(HARDFORK);
        if let Some(port) = port {
            anvil = anvil.port(port);
        }
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

    /// A new provider signing with the deployer key, with empty caches.
    pub fn fresh_provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.deployer.clone()))
            .connect_http(self.anvil.endpoint_url())
            .erased()
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

impl AnvilHarness {
    /// Signs `payload` as its slot's proposer, attests with the first `attesters` committee
    /// members (all keys must be in `keys`), and lands it as checkpoint `number` in an L1 block
    /// stamped with the header's timestamp. Returns the gas used.
    pub async fn land_checkpoint(
        &self,
        deployment: &Deployment,
        keys: &[SigningKey],
        number: u64,
        payload: ConsensusPayload,
        body: Bytes,
        attesters: usize,
    ) -> L1Result<u64> {
        let bundle = self
            .sign_checkpoint(deployment, keys, number, payload.clone(), body, attesters)
            .await?;
        self.set_next_block_timestamp(payload.header.timestamp)
            .await?;
        // A fresh provider reads the nonce from the chain: a cached one is wrong after a revert.
        let provider = self.fresh_provider();
        let rollup = Rollup::new(deployment.rollup, provider.clone());
        let tx_hash = *bundle.call(&rollup).send().await?.tx_hash();
        // Poll for the receipt instead of alloy's block heartbeat, which waits for new block
        // heights and so hangs after `anvil_revert` moved the head backwards.
        let mut receipt = None;
        for _ in 0..RECEIPT_POLLS {
            receipt = provider.get_transaction_receipt(tx_hash).await?;
            if receipt.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let receipt = receipt.ok_or(L1Error::Unexpected("propose tx was not mined"))?;
        if !receipt.status() {
            return Err(L1Error::TxReverted(receipt.transaction_hash));
        }
        Ok(receipt.gas_used)
    }

    /// Builds the `propose` bundle of `payload` signed by the slot's proposer and attested by the
    /// first `attesters` committee members.
    pub async fn sign_checkpoint(
        &self,
        deployment: &Deployment,
        keys: &[SigningKey],
        number: u64,
        payload: ConsensusPayload,
        body: Bytes,
        attesters: usize,
    ) -> L1Result<ProposeBundle> {
        let reader = L1Reader::new(self.provider(), deployment.rollup);
        let domain = SigningDomain {
            chain_id: deployment.params.l2_chain_id,
            rollup: deployment.rollup,
        };
        let slot = payload.header.slot;
        let latest = alloy::eips::BlockId::latest();
        let committee = reader
            .committee(slot / deployment.params.epoch_duration, latest)
            .await?
            .members;
        let key_of = |address: Address| keys.iter().find(|key| key.address() == address);
        let proposer = match reader.proposer_of_slot(slot, latest).await? {
            Some(proposer) => {
                key_of(proposer).ok_or(L1Error::Unexpected("the proposer's key was not given"))?
            }
            None => keys.first().ok_or(L1Error::Unexpected("no key given"))?,
        };
        let proposal = CheckpointProposal::sign(payload, None, &domain, proposer);
        let mut attestations = Vec::new();
        for member in committee.iter().take(attesters) {
            let key = key_of(*member).ok_or(L1Error::Unexpected(
                "a committee member's key was not given",
            ))?;
            attestations.push(CheckpointAttestation::sign(&proposal, &domain, key));
        }
        ProposeBundle::new(number, &proposal, &attestations, &committee, &domain, body)
            .map_err(|_| L1Error::Unexpected("attestations do not fit the committee"))
    }
}
