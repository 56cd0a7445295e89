//! The test network every topic shares: a deployment on anvil, validator keys, payloads and
//! bundles signed by the slot's proposer and committee.

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, Bytes, keccak256},
    providers::DynProvider,
    rpc::types::{BlockOverrides, state::StateOverride},
};
use tandem_l1::{
    Deployment, L1Error, L1Reader, ProposeBundle, Rollup, RollupParams, harness::AnvilHarness,
};
use tandem_proto::{
    Address as ProtoAddress, CheckpointHeader, ConsensusPayload, SigningDomain, SigningKey, Tx,
    TxPayload, encode_checkpoint_body,
};

pub(crate) const SLOT: u64 = 4;
pub(crate) const EPOCH: u64 = 8;
/// How far ahead of the chain's clock [`setup_with_validators`] puts genesis.
pub(crate) const REGISTRATION_LEAD: u64 = 3_600;

pub(crate) fn latest() -> BlockId {
    BlockId::latest()
}

pub(crate) struct Net {
    pub(crate) harness: AnvilHarness,
    pub(crate) deployment: Deployment,
    pub(crate) reader: L1Reader<DynProvider>,
    pub(crate) rollup: Rollup::RollupInstance<DynProvider>,
    pub(crate) keys: Vec<SigningKey>,
    pub(crate) domain: SigningDomain,
}

pub(crate) fn validator_key(i: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    secret[0] = 0x11;
    SigningKey::from_bytes(&secret).expect("valid key")
}

pub(crate) async fn setup(validators: usize) -> Net {
    let harness = AnvilHarness::start(None);
    let now = harness.latest_timestamp().await.unwrap();
    let mut params = RollupParams::with_genesis(now);
    params.slot_duration = SLOT;
    params.l1_slot_duration = 2;
    params.epoch_duration = EPOCH;
    params.committee_size = validators as u64;
    params.mana_target = 1_000_000;
    params.mana_limit = 2_000_000;
    params.min_fee_per_mana = 1_000;
    params.fee_update_fraction = 5_000_000;
    params.block_duration_ms = 1_000;
    params.last_block_reexecution_budget_ms = 1_000;
    let keys: Vec<SigningKey> = (0..validators).map(validator_key).collect();
    let addresses: Vec<Address> = keys.iter().map(SigningKey::address).collect();
    let deployment = harness.deploy(&params, &addresses).await.unwrap();
    let reader = L1Reader::new(harness.provider(), deployment.rollup);
    let rollup = Rollup::new(deployment.rollup, harness.provider());
    let domain = SigningDomain {
        chain_id: params.l2_chain_id,
        rollup: deployment.rollup,
    };
    Net {
        harness,
        deployment,
        reader,
        rollup,
        keys,
        domain,
    }
}

impl Net {
    pub(crate) fn slot_start(&self, slot: u64) -> u64 {
        self.deployment.params.genesis_time + slot * SLOT
    }

    /// A slot comfortably in the future of the chain's clock.
    pub(crate) async fn future_slot(&self) -> u64 {
        let now = self.harness.latest_timestamp().await.unwrap();
        (now - self.deployment.params.genesis_time) / SLOT + 2
    }

    /// A checkpoint for `slot` on top of `parent_archive` paying `fee_per_mana`.
    pub(crate) fn payload(
        &self,
        slot: u64,
        parent_archive: B256,
        fee_per_mana: u128,
        mana: u64,
        modifier: i64,
    ) -> (ConsensusPayload, Bytes) {
        let sender = validator_key(1000);
        let txs: Vec<Tx> = (0..3)
            .map(|nonce| {
                let payload = TxPayload {
                    chain_id: self.domain.chain_id,
                    nonce,
                    to: ProtoAddress::repeat_byte(0x22),
                    amount: 5,
                    max_fee_per_mana: fee_per_mana,
                    mana_limit: 21_000,
                };
                Tx::sign(payload, &self.domain, &sender)
            })
            .collect();
        let block = tandem_proto::Block {
            header: tandem_proto::BlockHeader {
                slot,
                block_number: slot,
                ..Default::default()
            },
            txs,
        };
        let body = Bytes::from(encode_checkpoint_body(&[block]));
        let header = CheckpointHeader {
            last_archive_root: parent_archive,
            block_headers_hash: keccak256(slot.to_be_bytes()),
            body_hash: keccak256(&body),
            slot,
            timestamp: self.slot_start(slot),
            coinbase: Address::repeat_byte(0xcb),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana,
            total_mana_used: mana,
            accumulated_fees: fee_per_mana * u128::from(mana),
        };
        let archive = keccak256([parent_archive.as_slice(), &slot.to_be_bytes()].concat());
        (
            ConsensusPayload {
                header,
                archive,
                fee_asset_price_modifier: modifier,
            },
            body,
        )
    }

    /// Signs as the slot's proposer and collects attestations from the first `attesters`
    /// committee members.
    pub(crate) async fn bundle(
        &self,
        number: u64,
        payload: ConsensusPayload,
        body: Bytes,
        attesters: usize,
    ) -> ProposeBundle {
        self.harness
            .sign_checkpoint(
                &self.deployment,
                &self.keys,
                number,
                payload,
                body,
                attesters,
            )
            .await
            .unwrap()
    }

    pub(crate) fn quorum(&self) -> usize {
        self.keys.len() * 2 / 3 + 1
    }

    pub(crate) async fn min_fee(&self) -> u128 {
        self.reader.mana_min_fee(None, latest()).await.unwrap()
    }

    /// Simulates `propose` as if mined at `time`, under `overrides`.
    pub(crate) async fn simulate(
        &self,
        bundle: &ProposeBundle,
        time: u64,
        overrides: Option<StateOverride>,
    ) -> Result<(), L1Error> {
        let mut call = bundle.call(&self.rollup);
        if let Some(overrides) = overrides {
            call = call.state(overrides);
        }
        let block = BlockOverrides {
            time: Some(time),
            ..Default::default()
        };
        call.call()
            .with_block_overrides(block)
            .await
            .map(|_| ())
            .map_err(L1Error::from)
    }

    /// Sends `propose` so that it is mined at `time`; returns gas used.
    pub(crate) async fn land(&self, bundle: &ProposeBundle, time: u64) -> u64 {
        self.harness.set_next_block_timestamp(time).await.unwrap();
        let receipt = bundle
            .call(&self.rollup)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "propose reverted");
        receipt.gas_used
    }
}

impl Net {
    /// A checkpoint whose body fills the deployment's cap: 10 blocks of real signed txs.
    pub(crate) fn full_payload(
        &self,
        slot: u64,
        parent_archive: B256,
        fee_per_mana: u128,
    ) -> (ConsensusPayload, Bytes, usize) {
        let cap = usize::try_from(self.deployment.params.max_checkpoint_body_bytes).unwrap();
        let blocks_count = 10;
        let tx_count = tandem_proto::max_txs_in_checkpoint_body(cap, blocks_count);
        let sender = validator_key(1000);
        let mut blocks: Vec<tandem_proto::Block> = (0..blocks_count)
            .map(|i| tandem_proto::Block {
                header: tandem_proto::BlockHeader {
                    slot,
                    block_number: slot * 16 + i as u64,
                    ..Default::default()
                },
                txs: Vec::new(),
            })
            .collect();
        for nonce in 0..tx_count {
            let payload = TxPayload {
                chain_id: self.domain.chain_id,
                nonce: nonce as u64,
                to: ProtoAddress::repeat_byte(0x22),
                amount: 5 + nonce as u128,
                max_fee_per_mana: fee_per_mana,
                mana_limit: 10_000,
            };
            blocks[nonce % blocks_count]
                .txs
                .push(Tx::sign(payload, &self.domain, &sender));
        }
        let body = Bytes::from(encode_checkpoint_body(&blocks));
        assert!(
            body.len() <= cap && body.len() + 141 > cap,
            "body {} for cap {cap}",
            body.len()
        );
        let (mut payload, _) = self.payload(slot, parent_archive, fee_per_mana, 100, 0);
        payload.header.body_hash = keccak256(&body);
        (payload, body, tx_count)
    }
}

impl Net {
    /// Registers `validators` (as the owner) in one tx.
    pub(crate) async fn register(&self, validators: Vec<Address>) {
        let receipt = self
            .rollup
            .addValidators(validators)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "addValidators reverted");
    }

    /// The field the constructor names when it refuses `params` (sent around the Rust checks).
    pub(crate) async fn constructor_refusal(&self, params: &RollupParams) -> String {
        let sent = Rollup::deploy_builder(
            self.harness.provider(),
            params.to_sol_config(),
            Address::ZERO,
            vec![],
        )
        .call()
        .await
        .expect_err("the constructor refuses");
        match L1Error::from(sent).revert() {
            Some(tandem_l1::RollupError::InvalidConfig(e)) => e.field.clone(),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}

/// Registers `count` validators (deterministic keys) in batches that fit one tx each.
pub(crate) async fn setup_with_validators(count: usize, committee: u64) -> Net {
    let mut net = setup(4).await;
    // A new deployment with the wanted committee size whose genesis is still ahead: every
    // registration then lands before genesis, in the epoch-0 snapshot that epochs 0..=2 draw
    // their committees from, however long it takes. The first 4 keys are registered by it.
    let mut params = net.deployment.params.clone();
    params.committee_size = committee;
    params.genesis_time = net.harness.latest_timestamp().await.unwrap() + REGISTRATION_LEAD;
    let keys: Vec<SigningKey> = (0..count).map(validator_key).collect();
    let first: Vec<Address> = keys.iter().take(4).map(SigningKey::address).collect();
    net.deployment = net.harness.deploy(&params, &first).await.unwrap();
    net.rollup = Rollup::new(net.deployment.rollup, net.harness.provider());
    net.reader = L1Reader::new(net.harness.provider(), net.deployment.rollup);
    net.domain.rollup = net.deployment.rollup;
    for batch in keys[4..].chunks(250) {
        net.register(batch.iter().map(SigningKey::address).collect())
            .await;
    }
    let now = net.harness.latest_timestamp().await.unwrap();
    assert!(
        now < params.genesis_time,
        "registration of {count} validators ran past genesis"
    );
    net.keys = keys;
    net
}
