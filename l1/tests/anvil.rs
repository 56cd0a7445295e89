//! The Rollup contract and the l1 crate against a real anvil.

use alloy::{
    primitives::{Address, B256, Bytes, I256, U256, keccak256},
    providers::DynProvider,
    rpc::types::{BlockOverrides, state::StateOverride},
};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use tandem_l1::{
    Deployment, FeeHeader, L1Error, L1Reader, ProposeBundle, Rollup, RollupParams, RollupRevert,
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
        self.reader.mana_min_fee(None).await.unwrap()
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
    assert_eq!(net.reader.tips().await.unwrap(), (0, 0));
    let slot = net.future_slot().await;
    let genesis_archive = net.reader.archive_at(0).await.unwrap();
    assert_eq!(genesis_archive, ArchiveTree::new().root());
    let (payload, body) = net.payload(slot, genesis_archive, net.min_fee().await, 1_200_000, 25);
    let bundle = net
        .bundle(1, payload.clone(), body.clone(), net.quorum())
        .await;
    net.land(&bundle, net.slot_start(slot)).await;

    assert_eq!(net.reader.tips().await.unwrap(), (1, 0));
    assert_eq!(net.reader.archive_at(1).await.unwrap(), payload.archive);
    let log = net.reader.checkpoint_log(1).await.unwrap();
    assert_eq!(log.header_hash, payload.header.hash());
    assert_eq!(log.slot, slot);
    let fees = net.deployment.params.fee_params();
    let expected_fee_header = fees
        .child_fee_header(
            &net.reader.fee_header_at(0, None).await.unwrap(),
            1_200_000,
            25,
        )
        .unwrap();
    assert_eq!(log.fee_header, expected_fee_header);

    let latest = net.reader.latest_block().await.unwrap();
    let published = net
        .reader
        .checkpoints_proposed(net.deployment.deployment_block, latest)
        .await
        .unwrap();
    assert_eq!(published.len(), 1);
    let checkpoint = &published[0];
    assert_eq!(checkpoint.number, 1);
    assert_eq!(checkpoint.header, payload.header);
    assert_eq!(checkpoint.archive, payload.archive);
    assert_eq!(checkpoint.fee_asset_price_modifier, 25);
    assert_eq!(checkpoint.body, body);
    assert_eq!(checkpoint.attestations.len(), net.quorum());
    assert_eq!(checkpoint.l1_block.timestamp, net.slot_start(slot));
    let committee = net.reader.committee(slot / EPOCH).await.unwrap();
    let payload_digest = net.domain.digest(
        tandem_proto::SignatureKind::CheckpointAttestation,
        payload.payload_hash(),
    );
    for (position, signature) in &checkpoint.attestations {
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
    let archive = net.reader.archive_at(0).await.unwrap();
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
        RollupRevert::InvalidCheckpointNumber { .. }
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
    ];
    for (name, mutate) in cases {
        let (mut payload, mut body) = good();
        mutate(&mut payload, &mut body);
        let bundle = net.bundle(1, payload, body, q).await;
        let got = revert(net.simulate(&bundle, time, None).await);
        let ok = match name {
            "archive" => matches!(got, RollupRevert::InvalidArchive { .. }),
            "slot" => matches!(got, RollupRevert::InvalidSlot { .. }),
            "timestamp" => matches!(got, RollupRevert::InvalidTimestamp { .. }),
            "coinbase" => matches!(got, RollupRevert::InvalidCoinbase),
            "mana" => matches!(got, RollupRevert::ManaLimitExceeded { .. }),
            "fee" => matches!(got, RollupRevert::InvalidManaMinFee { .. }),
            "modifier" => {
                matches!(got, RollupRevert::InvalidFeeAssetPriceModifier(m) if m == I256::try_from(101).unwrap())
            }
            "body" => matches!(got, RollupRevert::InvalidBodyHash { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{name}: got {got:?}");
    }

    // Signature faults.
    let committee = net.reader.committee(slot / EPOCH).await.unwrap();
    let proposer = net.reader.proposer_at(time).await.unwrap().unwrap();
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
        RollupRevert::InvalidProposer { expected, got } if expected == proposer && got == outsider.address()
    ));

    let mut bad_v = bundle.clone();
    bad_v.proposer_signature.v = 29;
    assert_eq!(
        revert(net.simulate(&bad_v, time, None).await),
        RollupRevert::InvalidSignature
    );

    let mut stray_bit = bundle.clone();
    stray_bit.signers |= U256::from(1) << committee.len();
    assert!(matches!(
        revert(net.simulate(&stray_bit, time, None).await),
        RollupRevert::InvalidSignerBitmap { .. }
    ));

    let mut missing = bundle.clone();
    missing.attestations.pop();
    assert!(matches!(
        revert(net.simulate(&missing, time, None).await),
        RollupRevert::AttestationCountMismatch { .. }
    ));

    let mut swapped = bundle.clone();
    swapped.attestations.swap(0, 1);
    assert!(matches!(
        revert(net.simulate(&swapped, time, None).await),
        RollupRevert::InvalidAttestation { committee_index, .. } if committee_index == U256::ZERO
    ));

    let (payload, body) = good();
    let too_few = net.bundle(1, payload, body, q - 1).await;
    assert!(matches!(
        revert(net.simulate(&too_few, time, None).await),
        RollupRevert::InsufficientAttestations { needed, got } if needed == U256::from(q) && got == U256::from(q - 1)
    ));

    // A second checkpoint in the same slot.
    net.land(&bundle, time).await;
    let archive1 = net.reader.archive_at(1).await.unwrap();
    let (payload, body) = net.payload(slot, archive1, net.min_fee().await, 100, 0);
    let same_slot = net.bundle(2, payload, body, q).await;
    assert!(matches!(
        revert(net.simulate(&same_slot, time + 1, None).await),
        RollupRevert::SlotAlreadyInChain { .. }
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
    assert_eq!(err.revert(), Some(&RollupRevert::NotOwner));

    // The remaining errors come from views, registration and deployment.
    let view = |result: Result<_, alloy::contract::Error>| {
        L1Error::from(result.expect_err("reverts"))
            .revert()
            .cloned()
    };
    let genesis = net.deployment.params.genesis_time;
    assert_eq!(
        view(
            net.rollup
                .getSlotAt(U256::from(genesis - 1))
                .call()
                .await
                .map(|_| ())
        ),
        Some(RollupRevert::BeforeGenesis(U256::from(genesis - 1)))
    );
    assert_eq!(
        view(
            net.rollup
                .getCheckpointLog(U256::from(9))
                .call()
                .await
                .map(|_| ())
        ),
        Some(RollupRevert::CheckpointNotFound(U256::from(9)))
    );
    let existing = net.keys[0].address();
    assert_eq!(
        view(
            net.rollup
                .addValidators(vec![existing])
                .call()
                .await
                .map(|_| ())
        ),
        Some(RollupRevert::InvalidValidator(existing))
    );
    let mut bad = net.deployment.params.clone();
    bad.committee_size = 0;
    let err = net.harness.deploy(&bad, &[]).await.unwrap_err();
    assert_eq!(
        err.revert(),
        Some(&RollupRevert::InvalidConfig("committeeSize".into())),
        "{err}"
    );
}

#[tokio::test]
async fn pipelined_simulation_needs_the_plan_overrides() {
    let net = setup(4).await;
    let q = net.quorum();
    let fees = net.deployment.params.fee_params();
    let s1 = net.future_slot().await;
    let s2 = s1 + 1;
    let genesis_archive = net.reader.archive_at(0).await.unwrap();

    // Checkpoint 1: above the mana target and with a price change, so the parent fee header
    // really changes the child's fee.
    let (payload1, body1) = net.payload(s1, genesis_archive, net.min_fee().await, 1_500_000, 60);
    let bundle1 = net.bundle(1, payload1.clone(), body1, q).await;
    net.harness.mine_at(net.slot_start(s1)).await.unwrap();

    // Checkpoint 1 is only proposed. Build checkpoint 2 on it.
    let genesis_fee = net.reader.fee_header_at(0, None).await.unwrap();
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
            .mana_min_fee(Some(overrides.clone()))
            .await
            .unwrap(),
        fee2
    );

    let (payload2, body2) = net.payload(s2, payload1.archive, fee2, 10, 0);
    let bundle2 = net.bundle(2, payload2, body2, q).await;
    let t2 = net.slot_start(s2);
    let proposer2 = net.reader.proposer_at(t2).await.unwrap().unwrap();

    let without = net
        .reader
        .can_propose_at(t2, payload1.archive, proposer2, None)
        .await
        .unwrap_err();
    assert!(
        matches!(without.revert(), Some(RollupRevert::InvalidArchive { .. })),
        "{without}"
    );
    assert_eq!(
        net.reader
            .can_propose_at(t2, payload1.archive, proposer2, Some(overrides.clone()))
            .await
            .unwrap(),
        (s2, 2)
    );
    let without = net.simulate(&bundle2, t2, None).await.unwrap_err();
    assert!(
        matches!(
            without.revert(),
            Some(RollupRevert::InvalidCheckpointNumber { .. })
        ),
        "{without}"
    );
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
        net.reader.fee_header_at(1, Some(overrides)).await.unwrap(),
        plan.parent_fee_header()
    );

    // Checkpoint 1 lands for real; then checkpoint 2 goes through without any override.
    net.land(&bundle1, net.slot_start(s1) + 1).await;
    assert_eq!(
        net.reader.fee_header_at(1, None).await.unwrap(),
        plan.parent_fee_header()
    );
    net.simulate(&bundle2, t2, None)
        .await
        .expect("valid once the parent is on L1");
    net.land(&bundle2, t2).await;
    assert_eq!(net.reader.tips().await.unwrap(), (2, 0));
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
                        Some(RollupRevert::InvalidFeeAssetPriceModifier(_))
                    ),
                    "case {case}: {err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn propose_gas_by_committee_size() {
    let mut previous = 0;
    for size in [4usize, 16, 48] {
        let net = setup(size).await;
        let slot = net.future_slot().await;
        let archive = net.reader.archive_at(0).await.unwrap();
        let (payload, body) = net.payload(slot, archive, net.min_fee().await, 100, 0);
        let bundle = net.bundle(1, payload, body, net.quorum()).await;
        let gas = net.land(&bundle, net.slot_start(slot)).await;
        println!(
            "propose gas, committee {size:>2}, {:>2} attestations: {gas}",
            net.quorum()
        );
        assert!(gas > previous, "gas must grow with the committee");
        assert!(gas < 3_000_000, "committee {size}: {gas} gas");
        previous = gas;
    }
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
