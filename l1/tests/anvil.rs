//! The Rollup contract and the l1 crate against a real anvil.

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, Bytes, I256, U256, keccak256},
    providers::DynProvider,
    rpc::types::{BlockOverrides, state::StateOverride},
};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use tandem_l1::{
    Deployment, FeeHeader, L1Error, L1Reader, ProposeBundle, Rollup, RollupError, RollupParams,
    harness::AnvilHarness,
    overrides::{ProposedParent, SimulationPlan},
    signature_to_sol,
};
use tandem_proto::{
    Address as ProtoAddress, CheckpointHeader, CheckpointProposal, ConsensusPayload, SigningDomain,
    SigningKey, Tx, TxPayload, archive::ArchiveTree, encode_checkpoint_body,
};

/// A change to a valid payload or body that must make `propose` revert.
type Mutation = Box<dyn Fn(&mut ConsensusPayload, &mut Bytes)>;

const SLOT: u64 = 4;
const EPOCH: u64 = 8;

fn latest() -> BlockId {
    BlockId::latest()
}

struct Net {
    harness: AnvilHarness,
    deployment: Deployment,
    reader: L1Reader<DynProvider>,
    rollup: Rollup::RollupInstance<DynProvider>,
    keys: Vec<SigningKey>,
    domain: SigningDomain,
}

fn validator_key(i: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    secret[0] = 0x11;
    SigningKey::from_bytes(&secret).expect("valid key")
}

async fn setup(validators: usize) -> Net {
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
    fn slot_start(&self, slot: u64) -> u64 {
        self.deployment.params.genesis_time + slot * SLOT
    }

    /// A slot comfortably in the future of the chain's clock.
    async fn future_slot(&self) -> u64 {
        let now = self.harness.latest_timestamp().await.unwrap();
        (now - self.deployment.params.genesis_time) / SLOT + 2
    }

    /// A checkpoint for `slot` on top of `parent_archive` paying `fee_per_mana`.
    fn payload(
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
    async fn bundle(
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

    fn quorum(&self) -> usize {
        self.keys.len() * 2 / 3 + 1
    }

    async fn min_fee(&self) -> u128 {
        self.reader.mana_min_fee(None, latest()).await.unwrap()
    }

    /// Simulates `propose` as if mined at `time`, under `overrides`.
    async fn simulate(
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
    async fn land(&self, bundle: &ProposeBundle, time: u64) -> u64 {
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

#[tokio::test]
async fn propose_checkpoint_one_and_read_it_back() {
    let net = setup(4).await;
    assert_eq!(net.reader.tips(latest()).await.unwrap(), (0, 0));
    let slot = net.future_slot().await;
    let genesis_archive = net.reader.archive_at(0, latest()).await.unwrap();
    assert_eq!(genesis_archive, ArchiveTree::new().root());
    let (payload, body) = net.payload(slot, genesis_archive, net.min_fee().await, 1_200_000, 25);
    let bundle = net
        .bundle(1, payload.clone(), body.clone(), net.quorum())
        .await;
    net.land(&bundle, net.slot_start(slot)).await;

    assert_eq!(net.reader.tips(latest()).await.unwrap(), (1, 0));
    assert_eq!(
        net.reader.archive_at(1, latest()).await.unwrap(),
        payload.archive
    );
    let log = net.reader.checkpoint_log(1, latest()).await.unwrap();
    assert_eq!(log.header_hash, payload.header.hash());
    assert_eq!(log.slot, slot);
    let fees = net.deployment.params.fee_params();
    let expected_fee_header = fees
        .child_fee_header(
            &net.reader.fee_header_at(0, None, latest()).await.unwrap(),
            1_200_000,
            25,
        )
        .unwrap();
    assert_eq!(log.fee_header, expected_fee_header);

    let head = net.reader.latest_block().await.unwrap();
    let published = net
        .reader
        .checkpoints_proposed(net.deployment.deployment_block, head)
        .await
        .unwrap();
    assert_eq!(published.len(), 1);
    let checkpoint = &published[0];
    assert_eq!(checkpoint.number, 1);
    assert_eq!(checkpoint.header, payload.header);
    assert_eq!(checkpoint.archive, payload.archive);
    assert_eq!(checkpoint.fee_asset_price_modifier, 25);
    let calldata = checkpoint
        .calldata
        .as_ref()
        .expect("calldata of a direct propose call");
    assert_eq!(calldata.body, body);
    assert_eq!(calldata.attestations.len(), net.quorum());
    assert_eq!(checkpoint.l1_block.timestamp, net.slot_start(slot));
    let committee = net
        .reader
        .committee(slot / EPOCH, latest())
        .await
        .unwrap()
        .members;
    let payload_digest = net.domain.digest(
        tandem_proto::SignatureKind::CheckpointAttestation,
        payload.payload_hash(),
    );
    for (position, signature) in &calldata.attestations {
        assert_eq!(
            signature.recover(payload_digest),
            Ok(committee[*position as usize])
        );
    }
}

#[tokio::test]
async fn every_custom_error_is_decoded() {
    let net = setup(4).await;
    let slot = net.future_slot().await;
    let time = net.slot_start(slot);
    let archive = net.reader.archive_at(0, latest()).await.unwrap();
    let fee = net.min_fee().await;
    let good = || net.payload(slot, archive, fee, 100, 0);
    let q = net.quorum();

    let (payload, body) = good();
    let bundle = net.bundle(1, payload, body, q).await;
    net.simulate(&bundle, time, None)
        .await
        .expect("the unmodified bundle is valid");

    let revert = |result: Result<(), L1Error>| match result {
        Err(L1Error::Revert(revert)) => revert,
        other => panic!("expected a decoded revert, got {other:?}"),
    };

    let mut wrong_number = bundle.clone();
    wrong_number.args.checkpointNumber = U256::from(2);
    assert!(matches!(
        revert(net.simulate(&wrong_number, time, None).await),
        RollupError::InvalidCheckpointNumber(_)
    ));

    let cases: Vec<(&str, Mutation)> = vec![
        (
            "archive",
            Box::new(|p, _| p.header.last_archive_root = B256::repeat_byte(9)),
        ),
        ("slot", Box::new(|p, _| p.header.slot += 1)),
        ("timestamp", Box::new(|p, _| p.header.timestamp += 1)),
        (
            "coinbase",
            Box::new(|p, _| p.header.coinbase = Address::ZERO),
        ),
        (
            "mana",
            Box::new(|p, _| p.header.total_mana_used = 2_000_001),
        ),
        ("fee", Box::new(|p, _| p.header.fee_per_mana += 1)),
        (
            "modifier",
            Box::new(|p, _| p.fee_asset_price_modifier = 101),
        ),
        (
            "body",
            Box::new(|_, b| *b = Bytes::from_static(b"other body")),
        ),
        (
            "body size",
            Box::new(|p, b| {
                // One byte over the deployment's cap, with a matching hash: only the size is wrong.
                *b = Bytes::from(vec![7u8; 120 * 1024 + 1]);
                p.header.body_hash = keccak256(b);
            }),
        ),
    ];
    for (name, mutate) in cases {
        let (mut payload, mut body) = good();
        mutate(&mut payload, &mut body);
        let bundle = net.bundle(1, payload, body, q).await;
        let got = revert(net.simulate(&bundle, time, None).await);
        let ok = match name {
            "archive" => matches!(got, RollupError::InvalidArchive(_)),
            "slot" => matches!(got, RollupError::InvalidSlot(_)),
            "timestamp" => matches!(got, RollupError::InvalidTimestamp(_)),
            "coinbase" => matches!(got, RollupError::InvalidCoinbase(_)),
            "mana" => matches!(got, RollupError::ManaLimitExceeded(_)),
            "fee" => matches!(got, RollupError::InvalidManaMinFee(_)),
            "modifier" => {
                matches!(&got, RollupError::InvalidFeeAssetPriceModifier(m) if m.modifier_ == I256::try_from(101).unwrap())
            }
            "body" => matches!(got, RollupError::InvalidBodyHash(_)),
            "body size" => {
                matches!(&got, RollupError::BodyTooLarge(e) if e.limit == U256::from(net.deployment.params.max_checkpoint_body_bytes))
            }
            _ => unreachable!(),
        };
        assert!(ok, "{name}: got {got:?}");
    }

    // Signature faults.
    let committee = net
        .reader
        .committee(slot / EPOCH, latest())
        .await
        .unwrap()
        .members;
    let proposer = net
        .reader
        .proposer_at(time, latest())
        .await
        .unwrap()
        .unwrap();
    let outsider = net
        .keys
        .iter()
        .find(|key| key.address() != proposer)
        .unwrap();
    let mut wrong_proposer = bundle.clone();
    let forged = CheckpointProposal::sign(good().0, None, &net.domain, outsider);
    wrong_proposer.proposer_signature = signature_to_sol(&forged.signature);
    assert!(matches!(
        revert(net.simulate(&wrong_proposer, time, None).await),
        RollupError::InvalidProposer(e) if e.expected == proposer && e.got == outsider.address()
    ));

    let mut bad_v = bundle.clone();
    bad_v.proposer_signature.v = 29;
    assert!(matches!(
        revert(net.simulate(&bad_v, time, None).await),
        RollupError::InvalidSignature(_)
    ));

    let mut stray_bit = bundle.clone();
    stray_bit.signers |= U256::from(1) << committee.len();
    assert!(matches!(
        revert(net.simulate(&stray_bit, time, None).await),
        RollupError::InvalidSignerBitmap(_)
    ));

    let mut missing = bundle.clone();
    missing.attestations.pop();
    assert!(matches!(
        revert(net.simulate(&missing, time, None).await),
        RollupError::AttestationCountMismatch(_)
    ));

    let mut swapped = bundle.clone();
    swapped.attestations.swap(0, 1);
    assert!(matches!(
        revert(net.simulate(&swapped, time, None).await),
        RollupError::InvalidAttestation(e) if e.committeeIndex == U256::ZERO
    ));

    let (payload, body) = good();
    let too_few = net.bundle(1, payload, body, q - 1).await;
    assert!(matches!(
        revert(net.simulate(&too_few, time, None).await),
        RollupError::InsufficientAttestations(e) if e.needed == U256::from(q) && e.got == U256::from(q - 1)
    ));

    // A second checkpoint in the same slot.
    net.land(&bundle, time).await;
    let archive1 = net.reader.archive_at(1, latest()).await.unwrap();
    let (payload, body) = net.payload(slot, archive1, net.min_fee().await, 100, 0);
    let same_slot = net.bundle(2, payload, body, q).await;
    assert!(matches!(
        revert(net.simulate(&same_slot, time + 1, None).await),
        RollupError::SlotAlreadyInChain(_)
    ));

    // Owner-only registration.
    let stranger = net.harness.dev_key(3);
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(stranger))
        .connect_http(net.harness.endpoint().parse().unwrap());
    let as_stranger = Rollup::new(net.deployment.rollup, provider);
    let Err(err) = as_stranger
        .addValidators(vec![Address::repeat_byte(5)])
        .call()
        .await
    else {
        panic!("a stranger registered a validator");
    };
    let err = L1Error::from(err);
    assert!(
        matches!(err.revert(), Some(RollupError::NotOwner(_))),
        "{err}"
    );

    // The remaining errors come from views, registration and deployment.
    let view = |result: Result<_, alloy::contract::Error>| {
        L1Error::from(result.expect_err("reverts"))
            .revert()
            .cloned()
            .expect("a custom error")
    };
    let genesis = net.deployment.params.genesis_time;
    assert!(matches!(
        view(
            net.rollup
                .getSlotAt(U256::from(genesis - 1))
                .call()
                .await
                .map(|_| ())
        ),
        RollupError::BeforeGenesis(e) if e.timestamp == U256::from(genesis - 1)
    ));
    assert!(matches!(
        view(
            net.rollup
                .getCheckpointLog(U256::from(9))
                .call()
                .await
                .map(|_| ())
        ),
        RollupError::CheckpointNotFound(e) if e.checkpointNumber == U256::from(9)
    ));
    let existing = net.keys[0].address();
    assert!(matches!(
        view(
            net.rollup
                .addValidators(vec![existing])
                .call()
                .await
                .map(|_| ())
        ),
        RollupError::InvalidValidator(e) if e.validator == existing
    ));
    // Bad parameters are refused before anything is sent, and by the contract if sent anyway.
    for (field, change) in [
        (
            "committee_size",
            Box::new(|p: &mut RollupParams| p.committee_size = 0) as Box<dyn Fn(&mut RollupParams)>,
        ),
        (
            "fee_update_fraction",
            Box::new(|p: &mut RollupParams| p.fee_update_fraction = 0),
        ),
        (
            "max_checkpoint_body_bytes",
            Box::new(|p: &mut RollupParams| p.max_checkpoint_body_bytes = 200_000),
        ),
        (
            "last_block_reexecution_budget_ms",
            Box::new(|p: &mut RollupParams| p.last_block_reexecution_budget_ms = 0),
        ),
    ] {
        let mut bad = net.deployment.params.clone();
        change(&mut bad);
        let err = net.harness.deploy(&bad, &[]).await.unwrap_err();
        assert!(
            matches!(err, L1Error::InvalidParams { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let mut bad = net.deployment.params.clone();
    bad.committee_size = 0;
    let sent = Rollup::deploy_builder(
        net.harness.provider(),
        bad.to_sol_config(),
        Address::ZERO,
        vec![],
    )
    .call()
    .await
    .expect_err("the constructor refuses");
    assert!(
        matches!(L1Error::from(sent).revert(), Some(RollupError::InvalidConfig(e)) if e.field == "committeeSize")
    );
}

#[tokio::test]
async fn pipelined_simulation_needs_the_plan_overrides() {
    let net = setup(4).await;
    let q = net.quorum();
    let fees = net.deployment.params.fee_params();
    let s1 = net.future_slot().await;
    let s2 = s1 + 1;
    let genesis_archive = net.reader.archive_at(0, latest()).await.unwrap();

    // Checkpoint 1: above the mana target and with a price change, so the parent fee header
    // really changes the child's fee.
    let (payload1, body1) = net.payload(s1, genesis_archive, net.min_fee().await, 1_500_000, 60);
    let bundle1 = net.bundle(1, payload1.clone(), body1, q).await;
    net.harness.mine_at(net.slot_start(s1)).await.unwrap();

    // Checkpoint 1 is only proposed. Build checkpoint 2 on it.
    let genesis_fee = net.reader.fee_header_at(0, None, latest()).await.unwrap();
    let parent = ProposedParent {
        number: 1,
        archive: payload1.archive,
        header_hash: payload1.header.hash(),
        slot: s1,
        mana_used: 1_500_000,
        fee_asset_price_modifier: 60,
    };
    let plan = SimulationPlan::new(0, 0, genesis_fee, &[parent], &fees).unwrap();
    assert_eq!(plan.next_checkpoint_number(), 2);
    let overrides = plan.state_override(net.deployment.rollup);
    let fee2 = fees.min_fee_per_mana(&plan.parent_fee_header()).unwrap();
    assert_ne!(
        fee2,
        net.min_fee().await,
        "the parent's fee header must change the fee"
    );
    assert_eq!(
        net.reader
            .mana_min_fee(Some(overrides.clone()), latest())
            .await
            .unwrap(),
        fee2
    );

    let (payload2, body2) = net.payload(s2, payload1.archive, fee2, 10, 0);
    let payload2_hash = payload2.header.hash();
    let bundle2 = net.bundle(2, payload2, body2, q).await;
    let t2 = net.slot_start(s2);
    let proposer2 = net.reader.proposer_at(t2, latest()).await.unwrap().unwrap();

    let without = net
        .reader
        .can_propose_at(t2, payload1.archive, proposer2, None, latest())
        .await
        .unwrap_err();
    assert!(
        matches!(without.revert(), Some(RollupError::InvalidArchive(_))),
        "{without}"
    );
    assert_eq!(
        net.reader
            .can_propose_at(
                t2,
                payload1.archive,
                proposer2,
                Some(overrides.clone()),
                latest()
            )
            .await
            .unwrap(),
        (s2, 2)
    );
    let without = net.simulate(&bundle2, t2, None).await.unwrap_err();
    assert!(
        matches!(
            without.revert(),
            Some(RollupError::InvalidCheckpointNumber(_))
        ),
        "{without}"
    );
    // The header check before gossip (no attestations yet): fails without the plan, passes with
    // it and predicts the fee header propose will store.
    let invalid = net
        .reader
        .validate_header(&bundle2.args, &bundle2.body, t2, None, latest())
        .await
        .unwrap_err();
    assert!(
        matches!(
            invalid.revert(),
            Some(RollupError::InvalidCheckpointNumber(_))
        ),
        "{invalid}"
    );
    let (header_hash, predicted_fee_header) = net
        .reader
        .validate_header(
            &bundle2.args,
            &bundle2.body,
            t2,
            Some(overrides.clone()),
            latest(),
        )
        .await
        .expect("valid under the plan");
    assert_eq!(header_hash, payload2_hash);
    net.simulate(&bundle2, t2, Some(overrides.clone()))
        .await
        .expect("valid under the plan");

    // What the overrides wrote reads back through the views.
    let tips = net
        .rollup
        .getTips()
        .state(overrides.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(
        (tips.checkpointed, tips.proven),
        (U256::from(1), U256::ZERO)
    );
    let archive = net
        .rollup
        .archiveAt(U256::from(1))
        .state(overrides.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(archive, payload1.archive);
    assert_eq!(
        net.reader
            .fee_header_at(1, Some(overrides), latest())
            .await
            .unwrap(),
        plan.parent_fee_header()
    );

    // Checkpoint 1 lands for real; then checkpoint 2 goes through without any override.
    net.land(&bundle1, net.slot_start(s1) + 1).await;
    assert_eq!(
        net.reader.fee_header_at(1, None, latest()).await.unwrap(),
        plan.parent_fee_header()
    );
    net.simulate(&bundle2, t2, None)
        .await
        .expect("valid once the parent is on L1");
    net.land(&bundle2, t2).await;
    assert_eq!(net.reader.tips(latest()).await.unwrap(), (2, 0));
    assert_eq!(
        net.reader
            .checkpoint_log(2, latest())
            .await
            .unwrap()
            .fee_header,
        predicted_fee_header
    );
}

#[tokio::test]
async fn fee_math_matches_the_contract_on_random_inputs() {
    let net = setup(1).await;
    let fees = net.deployment.params.fee_params();
    let mut rng = StdRng::seed_from_u64(0x7a_4d3e);
    // Log-uniform magnitudes reach both the small values and the caps.
    let magnitude = |rng: &mut StdRng| -> u64 { rng.next_u64() >> rng.gen_range(0..64) };
    for case in 0..1_000 {
        let parent = FeeHeader {
            mana_used: magnitude(&mut rng),
            excess_mana: magnitude(&mut rng),
            eth_per_fee_asset: rng
                .gen_range(tandem_l1::MIN_ETH_PER_FEE_ASSET..=tandem_l1::MAX_ETH_PER_FEE_ASSET),
        };
        let mana_used = magnitude(&mut rng);
        let modifier = rng.gen_range(-120i64..=120);

        let on_chain = net
            .rollup
            .computeManaMinFee(parent.pack())
            .call()
            .await
            .unwrap();
        let in_rust = fees.min_fee_per_mana(&parent).unwrap();
        assert_eq!(
            on_chain,
            U256::from(in_rust),
            "case {case}: min fee for {parent:?}"
        );

        let on_chain = net
            .rollup
            .computeChildFeeHeader(
                parent.pack(),
                U256::from(mana_used),
                I256::try_from(modifier).unwrap(),
            )
            .call()
            .await;
        match fees.child_fee_header(&parent, mana_used, modifier) {
            Ok(child) => assert_eq!(
                on_chain.unwrap(),
                child.pack(),
                "case {case}: child of {parent:?}"
            ),
            Err(_) => {
                let err = L1Error::from(on_chain.unwrap_err());
                assert!(
                    matches!(
                        err.revert(),
                        Some(RollupError::InvalidFeeAssetPriceModifier(_))
                    ),
                    "case {case}: {err}"
                );
            }
        }
    }
}

impl Net {
    /// A checkpoint whose body fills the deployment's cap: 10 blocks of real signed txs.
    fn full_payload(
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

/// Registers `count` validators (deterministic keys) in batches that fit one tx each.
async fn setup_with_validators(count: usize, committee: u64) -> Net {
    let mut net = setup(4).await;
    // A new deployment with the wanted committee size; the first 4 keys are registered by it.
    let mut params = net.deployment.params.clone();
    params.committee_size = committee;
    let keys: Vec<SigningKey> = (0..count).map(validator_key).collect();
    let first: Vec<Address> = keys.iter().take(4).map(SigningKey::address).collect();
    net.deployment = net.harness.deploy(&params, &first).await.unwrap();
    net.rollup = Rollup::new(net.deployment.rollup, net.harness.provider());
    net.reader = L1Reader::new(net.harness.provider(), net.deployment.rollup);
    net.domain.rollup = net.deployment.rollup;
    for batch in keys[4..].chunks(250) {
        let addresses: Vec<Address> = batch.iter().map(SigningKey::address).collect();
        let receipt = net
            .rollup
            .addValidators(addresses)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status());
    }
    net.keys = keys;
    net
}

#[tokio::test]
async fn propose_gas_with_a_full_body_by_committee_size() {
    let mut previous = 0;
    for size in [4usize, 16, 48] {
        let net = setup(size).await;
        let slot = net.future_slot().await;
        let archive = net.reader.archive_at(0, latest()).await.unwrap();
        let (payload, body, txs) = net.full_payload(slot, archive, net.min_fee().await);
        let bundle = net.bundle(1, payload, body.clone(), net.quorum()).await;
        let gas = net.land(&bundle, net.slot_start(slot)).await;
        println!(
            "propose gas, full body ({} bytes, {txs} txs), committee {size:>2}, {:>2} attestations: {gas} ({:.0} gas/tx), calldata {} bytes",
            body.len(),
            net.quorum(),
            gas as f64 / txs as f64,
            bundle.calldata_len(),
        );
        assert!(gas > previous, "gas must grow with the committee");
        // EIP-7623: a calldata-heavy tx pays at least 10 gas per token (40 per non-zero byte).
        assert!(gas >= 21_000 + 40 * body.iter().filter(|b| **b != 0).count() as u64 / 2);
        assert!(
            gas < 16_777_216,
            "committee {size}: {gas} gas is above the EIP-7825 tx cap"
        );
        assert!(
            bundle.calldata_len() + tandem_l1::TX_ENVELOPE_BYTES
                <= tandem_l1::MEMPOOL_TX_SIZE_LIMIT
        );
        previous = gas;
    }
}

#[tokio::test]
async fn propose_gas_by_validator_count() {
    let mut gases = Vec::new();
    for validators in [100usize, 1_000, 10_000] {
        let net = setup_with_validators(validators, 48).await;
        let slot = net.future_slot().await;
        let archive = net.reader.archive_at(0, latest()).await.unwrap();
        let (payload, body) = net.payload(slot, archive, net.min_fee().await, 100, 0);
        let bundle = net.bundle(1, payload, body, 33).await;
        let gas = net.land(&bundle, net.slot_start(slot)).await;
        let view_gas = alloy::providers::Provider::estimate_gas(
            &net.harness.provider(),
            alloy::rpc::types::TransactionRequest::default()
                .to(net.deployment.rollup)
                .input(
                    alloy::sol_types::SolCall::abi_encode(&Rollup::getEpochCommitteeCall {
                        epoch: U256::from(slot / EPOCH),
                    })
                    .into(),
                ),
        )
        .await
        .unwrap();
        println!(
            "propose gas, committee 48 (33 attestations) of {validators:>5} validators: {gas}; getEpochCommittee alone: {view_gas}"
        );
        gases.push(gas);
    }
    // The draw costs the same whatever the number of validators (no copy of the list).
    let spread = gases.iter().max().unwrap() - gases.iter().min().unwrap();
    assert!(
        spread < 20_000,
        "propose gas varies by {spread} across validator counts: {gases:?}"
    );
}

#[tokio::test]
async fn committee_proposers_and_seeds_match_the_contract_and_rotate() {
    let net = setup_with_validators(20, 8).await;
    let genesis = net.deployment.params.genesis_time;
    // A snapshot (new seed) per epoch: the owner registers one more validator in each.
    let extra: Vec<SigningKey> = (20..26).map(validator_key).collect();
    for (epoch, key) in (1..=5u64).zip(&extra) {
        net.harness
            .set_next_block_timestamp(genesis + epoch * EPOCH * SLOT + 1)
            .await
            .unwrap();
        let receipt = net
            .rollup
            .addValidators(vec![key.address()])
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status());
    }
    let mut seeds = Vec::new();
    let mut committees = Vec::new();
    for epoch in 0..=7u64 {
        let committee = net.reader.committee(epoch, latest()).await.unwrap();
        assert_eq!(committee.members.len(), 8);
        let mut distinct = committee.members.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8, "epoch {epoch}: members repeat");
        for slot in epoch * EPOCH..(epoch + 1) * EPOCH {
            assert_eq!(
                committee.proposer_of(slot),
                net.reader.proposer_of_slot(slot, latest()).await.unwrap(),
                "slot {slot}"
            );
        }
        assert_eq!(
            net.reader.committee(epoch, latest()).await.unwrap().members,
            net.rollup
                .getEpochCommittee(U256::from(epoch))
                .call()
                .await
                .unwrap()
        );
        seeds.push(committee.seed);
        committees.push(committee.members);
    }
    // Epochs 0..=2 use the genesis snapshot (2-epoch lag); from epoch 3 on each epoch has the
    // seed of the snapshot taken two epochs before it.
    assert_eq!(seeds[0], seeds[1]);
    assert_eq!(seeds[1], seeds[2]);
    for epoch in 3..=7 {
        assert_ne!(
            seeds[epoch],
            seeds[epoch - 1],
            "epoch {epoch} kept the seed"
        );
        assert_ne!(
            committees[epoch],
            committees[epoch - 1],
            "epoch {epoch} kept the committee"
        );
    }
}

/// Runtime bytecode of a relay: forwards its calldata to `target` and bubbles the result up.
fn relay_code(target: Address) -> Bytes {
    let mut code = vec![0x36, 0x5f, 0x5f, 0x37, 0x5f, 0x5f, 0x36, 0x5f, 0x5f, 0x73];
    code.extend_from_slice(target.as_slice());
    code.extend_from_slice(&[
        0x5a, 0xf1, 0x3d, 0x5f, 0x5f, 0x3e, 0x60, 0x2a, 0x57, 0x3d, 0x5f, 0xfd, 0x5b, 0x3d, 0x5f,
        0xf3,
    ]);
    Bytes::from(code)
}

#[tokio::test]
async fn propose_only_accepts_direct_calls_from_externally_owned_accounts() {
    use alloy::{
        network::{EthereumWallet, TransactionBuilder, TransactionBuilder7702},
        providers::{Provider, ProviderBuilder, ext::AnvilApi},
        rpc::types::TransactionRequest,
        signers::SignerSync,
    };
    let net = setup(4).await;
    let slot = net.future_slot().await;
    let archive = net.reader.archive_at(0, latest()).await.unwrap();
    let (payload, body) = net.payload(slot, archive, net.min_fee().await, 100, 0);
    let bundle = net.bundle(1, payload, body, net.quorum()).await;
    let calldata: Bytes = bundle.call(&net.rollup).calldata().clone();
    let not_direct = |err: L1Error| {
        assert!(
            matches!(err.revert(), Some(RollupError::NotDirectCall(_))),
            "expected NotDirectCall, got {err}"
        );
    };

    // Through a relay contract: the body would sit in another contract's input.
    let relay = Address::repeat_byte(0x5e);
    net.harness
        .provider()
        .anvil_set_code(relay, relay_code(net.deployment.rollup))
        .await
        .unwrap();
    let relayed = TransactionRequest::default()
        .to(relay)
        .input(calldata.clone().into());
    let err = net.harness.provider().call(relayed).await.unwrap_err();
    not_direct(L1Error::from(err));

    // From an EIP-7702 delegated account: msg.sender == tx.origin, but the account has code
    // and its txs could run through the delegate.
    let eoa = net.harness.dev_key(5);
    let delegate = relay;
    let nonce = net
        .harness
        .provider()
        .get_transaction_count(eoa.address())
        .await
        .unwrap();
    let authorization = alloy::eips::eip7702::Authorization {
        chain_id: U256::from(net.deployment.l1_chain_id),
        address: delegate,
        nonce,
    };
    let signature = eoa.sign_hash_sync(&authorization.signature_hash()).unwrap();
    let signed = authorization.into_signed(signature);
    let sponsor = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x01))
        .with_authorization_list(vec![signed]);
    let receipt = net
        .harness
        .provider()
        .send_transaction(sponsor)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let code = net
        .harness
        .provider()
        .get_code_at(eoa.address())
        .await
        .unwrap();
    assert_eq!(code.len(), 23, "the EOA carries a delegation designator");
    let as_delegated = ProviderBuilder::new()
        .wallet(EthereumWallet::from(eoa.clone()))
        .connect_http(net.harness.endpoint().parse().unwrap());
    let direct = TransactionRequest::default()
        .with_from(eoa.address())
        .with_to(net.deployment.rollup)
        .with_input(calldata.clone());
    let err = as_delegated.call(direct).await.unwrap_err();
    not_direct(L1Error::from(err));

    // A plain EOA lands it, and the reader finds the body in the tx input.
    net.land(&bundle, net.slot_start(slot)).await;
    let latest_block = net.reader.latest_block().await.unwrap();
    let found = net
        .reader
        .checkpoints_proposed(net.deployment.deployment_block, latest_block)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].calldata.as_ref().unwrap().body, bundle.body);
}

#[tokio::test]
async fn deployment_constants_read_back_from_the_contract() {
    let net = setup(4).await;
    let mut params = net.deployment.params.clone();
    params.pipelining_mode = tandem_proto::time::PipeliningMode::NonPipelined;
    params.last_block_reexecution_budget_ms = 400;
    params.max_checkpoint_body_bytes = 64 * 1024;
    params.rollup_version = 7;
    let deployment = net
        .harness
        .deploy(&params, &[net.keys[0].address()])
        .await
        .unwrap();
    let reader = L1Reader::new(net.harness.provider(), deployment.rollup);
    assert_eq!(reader.config(latest()).await.unwrap(), params);
    assert_eq!(
        net.reader.config(latest()).await.unwrap(),
        net.deployment.params
    );

    // Reads pinned to one block see that block's state, not a later one.
    let base = net
        .reader
        .simulation_base(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap();
    assert_eq!((base.checkpointed, base.proven), (0, 0));
    assert_eq!(base.tip_archive, net.deployment.params.genesis_archive);
    let slot = net.future_slot().await;
    let (payload, body) = net.payload(slot, base.tip_archive, net.min_fee().await, 100, 0);
    let bundle = net.bundle(1, payload, body, net.quorum()).await;
    net.land(&bundle, net.slot_start(slot)).await;
    assert_eq!(net.reader.tips(base.l1_block.id()).await.unwrap(), (0, 0));
    assert_eq!(net.reader.tips(latest()).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn transport_failures_are_transient_and_rpc_answers_are_not() {
    use alloy::providers::Provider;
    let net = setup(1).await;
    // A definite JSON-RPC error answer: a revert, and an unknown method.
    let revert = net.reader.checkpoint_log(5, latest()).await.unwrap_err();
    assert!(
        revert.revert().is_some() && !revert.is_transient(),
        "{revert}"
    );
    let unknown: Result<U256, _> = net
        .harness
        .provider()
        .raw_request("tandem_noSuchMethod".into(), ())
        .await;
    let unknown = L1Error::from(unknown.unwrap_err());
    assert!(!unknown.is_transient(), "{unknown}");

    // The node goes away: the same calls are now transport failures, worth retrying, both a
    // plain RPC call and one alloy wraps in a contract-call error.
    let reader = net.reader.clone();
    drop(net);
    let gone = reader.tips(latest()).await.unwrap_err();
    assert!(gone.is_transient(), "{gone:?}");
    let gone = reader.latest_block().await.unwrap_err();
    assert!(gone.is_transient(), "{gone:?}");
    let wrapped = L1Error::Contract(alloy::contract::Error::TransportError(
        alloy::transports::TransportErrorKind::custom_str("connection refused"),
    ));
    assert!(wrapped.is_transient());
}

#[test]
fn anvil_is_installed_where_the_harness_looks() {
    let path = tandem_l1::harness::anvil_path();
    assert!(
        path.exists(),
        "{} missing: run scripts/install-tools.sh",
        path.display()
    );
}
