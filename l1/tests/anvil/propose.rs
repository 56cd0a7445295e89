//! `propose`: a checkpoint lands and reads back, every custom error decodes, only direct calls
//! from externally owned accounts are accepted.

use alloy::primitives::{Address, B256, Bytes, I256, U256, keccak256};
use tandem_l1::{L1Error, Rollup, RollupError, RollupParams, signature_to_sol};
use tandem_proto::{CheckpointProposal, ConsensusPayload, archive::ArchiveTree};

use crate::common::*;

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

/// A change to a valid payload or body that must make `propose` revert.
type Mutation = Box<dyn Fn(&mut ConsensusPayload, &mut Bytes)>;

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
    assert_eq!(net.constructor_refusal(&bad).await, "committeeSize");
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
