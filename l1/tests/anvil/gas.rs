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
        // EIP-7623 (Prague, kept by osaka): a tx pays at least 21,000 + 10 gas per calldata token,
        // tokens = zero bytes + 4 × non-zero bytes of the whole input. Without it this tx would
        // cost 21,000 + 4 per zero byte + 16 per non-zero byte + execution, well below that
        // floor (execution is ~0.5 M gas, the floor's surplus 6 z + 24 nz is ~1.5 M).
        let calldata = bundle.call(&net.rollup).calldata().clone();
        assert_eq!(calldata.len(), bundle.calldata_len());
        let zero = calldata.iter().filter(|b| **b == 0).count() as u64;
        let nonzero = calldata.len() as u64 - zero;
        let floor = 21_000 + 10 * (zero + 4 * nonzero);
        println!(
            "propose gas, full body ({} bytes, {txs} txs), committee {size:>2}, {:>2} attestations: {gas} ({:.0} gas/tx), calldata {} bytes ({zero} zero), EIP-7623 floor {floor}",
            body.len(),
            net.quorum(),
            gas as f64 / txs as f64,
            calldata.len(),
        );
        assert!(gas > previous, "gas must grow with the committee");
        assert!(
            gas >= floor,
            "committee {size}: {gas} gas is below the EIP-7623 floor {floor}: osaka pricing is off"
        );
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
    // The draw costs the same whatever the number of validators (no copy of the list, which
    // would cost 2,100 gas per validator read). What varies is the seed-dependent probing in the
    // swap table: with more validators than its 128 slots, drawn positions collide (about 25
    // extra probe steps per draw); a single draw varies by up to ~13 k gas across seeds.
    let spread = gases.iter().max().unwrap() - gases.iter().min().unwrap();
    assert!(
        spread < 30_000,
        "propose gas varies by {spread} across validator counts: {gases:?}"
    );
}
