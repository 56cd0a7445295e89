//! Gas of `propose`: a full body by committee size, and by the number of validators.

use alloy::primitives::U256;
use tandem_l1::Rollup;

use crate::common::*;

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
        // Slot 1 (epoch 0): its committee is drawn from the epoch-0 snapshot, which holds every
        // validator (all registered before genesis), and `propose` only refreshes that snapshot.
        let slot = 1;
        let epoch = U256::from(slot / EPOCH);
        assert_eq!(
            net.rollup
                .getEpochValidatorCount(epoch)
                .call()
                .await
                .unwrap(),
            U256::from(validators),
            "the committee is drawn from every validator"
        );
        let archive = net.reader.archive_at(0, latest()).await.unwrap();
        let (payload, body) = net.payload(slot, archive, net.min_fee().await, 100, 0);
        let bundle = net.bundle(1, payload, body, 33).await;
        let gas = net.land(&bundle, net.slot_start(slot)).await;
        let view_gas = alloy::providers::Provider::estimate_gas(
            &net.harness.provider(),
            alloy::rpc::types::TransactionRequest::default()
                .to(net.deployment.rollup)
                .input(
                    alloy::sol_types::SolCall::abi_encode(&Rollup::getEpochCommitteeCall { epoch })
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
    // The draw costs the same whatever the number of validators (no copy of the list): what
    // varies is the swap table's probe lengths and the signatures' zero bytes.
    let spread = gases.iter().max().unwrap() - gases.iter().min().unwrap();
    assert!(
        spread < 10_000,
        "propose gas varies by {spread} across validator counts: {gases:?}"
    );
}
