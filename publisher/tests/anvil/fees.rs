//! Fees against a real mempool: a propose priced out is bumped, then cancelled, its nonce
//! reused; one held unmined is sped up and its cancel takes the nonce.

use super::*;

#[tokio::test]
async fn an_unmineable_propose_is_bumped_then_cancelled_and_its_nonce_is_reused() {
    let (net, dir, key, publisher) = one_key(6).await;
    let address = key.address();
    let nonce_before = net.nonce(address).await;

    // Inside the target slot (send at once), with mining paused so the first attempt is in the
    // mempool before the base fee jumps.
    let (target, handle) = propose_now(&net, &publisher, Duration::from_secs(5), true).await;
    sent(&handle).await;

    // From now on every block's base fee is 4x the publisher's cap: nothing it signs can be
    // mined, while L1 keeps mining (and its time keeps moving).
    let provider = net.harness.provider();
    let high = 4 * 100 * GWEI;
    provider
        .anvil_set_next_block_base_fee_per_gas(high)
        .await
        .unwrap();
    net.set_interval_mining(1).await;
    let raise = {
        let provider = provider.clone();
        tokio::spawn(async move {
            let mut seen = provider.get_block_number().await.unwrap();
            loop {
                let number = provider.get_block_number().await.unwrap();
                if number != seen {
                    seen = number;
                    provider
                        .anvil_set_next_block_base_fee_per_gas(high)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    assert_eq!(outcome(handle).await, SubmissionOutcome::NotMined);
    raise.abort();
    let _ = raise.await;
    assert_eq!(net.nonce(address).await, nonce_before, "the nonce is free");

    // Let the base fee drop: a new propose lands with the same nonce.
    provider
        .anvil_set_next_block_base_fee_per_gas(GWEI)
        .await
        .unwrap();
    let next = net.current_slot().next();
    let handle = enqueue_on_tip(&net, &publisher, next).await;
    let landed = outcome(handle).await;
    assert!(matches!(landed, SubmissionOutcome::Landed(_)), "{landed:?}");
    assert_eq!(net.nonce(address).await, nonce_before + 1);
    publisher.stop().await;

    let store = TxStore::open(dir.path()).unwrap();
    let records = store.records().unwrap();
    assert_eq!(records.len(), 2);
    let (stuck, landed) = (&records[0], &records[1]);
    assert_eq!(stuck.state, TxState::Final(FinalState::NotMined));
    assert_eq!(landed.state, TxState::Final(FinalState::Landed));
    assert_eq!(landed.nonce, stuck.nonce, "the freed nonce was reused");
    let proposes: Vec<_> = stuck
        .attempts
        .iter()
        .filter(|a| a.kind == AttemptKind::Propose)
        .collect();
    assert!(proposes.len() >= 2, "bumped: {:?}", stuck.attempts);
    let (first, bump) = (proposes[0], proposes[1]);
    assert_eq!(first.status, AttemptStatus::Broadcast);
    assert!(bump.max_fee_per_gas * 100 >= first.max_fee_per_gas * 150);
    assert!(bump.max_priority_fee_per_gas * 100 >= first.max_priority_fee_per_gas * 150);
    assert!(
        u128::from(bump.max_fee_per_gas) <= 100 * GWEI,
        "a speed-up keeps to the cap"
    );
    let cancel = stuck
        .attempts
        .iter()
        .find(|a| a.kind == AttemptKind::Cancel)
        .expect("cancelled when the target slot ended");
    let window_end = net.slot_start_secs(target.next());
    assert!(cancel.signed_at_l1 + common::L1_SLOT >= window_end);
    let last = stuck.attempts[stuck.attempts.iter().position(|a| a == cancel).unwrap() - 1];
    assert!(cancel.max_fee_per_gas * 100 >= last.max_fee_per_gas * 150);
    assert!(
        cancel.max_priority_fee_per_gas * 100 >= last.max_priority_fee_per_gas * 150,
        "the cancel bumps the priority fee too"
    );
}

/// Keeps blocks of `gas_limit` nearly full with high-tip fillers from the deployer, so a propose
/// never fits next to them (a cancel, 21,000 gas, does) while its fee cap stays above the base
/// fee: a real mempool holding a tx it does not mine.
fn fill_blocks(net: &Net) -> tokio::task::JoinHandle<()> {
    let provider = net.harness.provider();
    let deployer = net.harness.deployer();
    tokio::spawn(async move {
        // 22,000 non-zero calldata bytes: 901,000 gas under the EIP-7623 floor.
        let data = Bytes::from(vec![0xab; 22_000]);
        loop {
            let mined = provider
                .get_transaction_count(deployer)
                .latest()
                .await
                .unwrap();
            let mut pending = provider
                .get_transaction_count(deployer)
                .pending()
                .await
                .unwrap();
            while pending < mined + 3 {
                let filler = TransactionRequest::default()
                    .with_from(deployer)
                    .with_to(deployer)
                    .with_nonce(pending)
                    .with_gas_limit(950_000)
                    .with_max_fee_per_gas(2_000 * GWEI)
                    .with_max_priority_fee_per_gas(1_000 * GWEI)
                    .with_input(data.clone());
                let _pending = provider.send_transaction(filler).await.unwrap();
                pending += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn a_propose_held_unmined_is_sped_up_then_cancelled_and_the_cancel_takes_the_nonce() {
    let (net, dir, key, publisher) = one_key(6).await;
    let address = key.address();
    let nonce_before = net.nonce(address).await;
    let provider = net.harness.provider();
    // A 1 M gas block: a filler (901 k) and our propose (~580 k limit) do not fit together; a
    // filler and a cancel do.
    assert!(provider.anvil_set_block_gas_limit(1_000_000).await.unwrap());
    // Mining paused: the first attempt is priced from empty blocks (no tip) and pooled before
    // any filler; the fillers' tip then dominates the fee history, so every speed-up goes to the
    // cap — still below the fillers' tip, which keeps them first in every block.
    let (target, handle) = propose_now(&net, &publisher, Duration::from_secs(5), true).await;
    let first = sent(&handle).await;
    let fillers = fill_blocks(&net);
    let deployer = net.harness.deployer();
    let deadline = Instant::now() + WAIT;
    while provider
        .get_transaction_count(deployer)
        .pending()
        .await
        .unwrap()
        < provider
            .get_transaction_count(deployer)
            .latest()
            .await
            .unwrap()
            + 2
    {
        assert!(Instant::now() < deadline, "fillers pooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.set_interval_mining(1).await;
    // The mempool accepts the speed-up (it replaces the first attempt).
    wait_status(
        &handle,
        WAIT,
        |s| matches!(s, SubmissionStatus::Sent { tx_hash, .. } if *tx_hash != first),
    )
    .await;
    assert_eq!(outcome(handle).await, SubmissionOutcome::Cancelled);
    fillers.abort();
    let _ = fillers.await;
    assert_eq!(
        net.nonce(address).await,
        nonce_before + 1,
        "the cancel took the nonce"
    );
    assert_eq!(net.tip().await, 0, "the propose never landed");
    publisher.stop().await;

    let records = TxStore::open(dir.path()).unwrap().records().unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.state, TxState::Final(FinalState::Cancelled));
    let proposes: Vec<_> = record
        .attempts
        .iter()
        .filter(|a| a.kind == AttemptKind::Propose)
        .collect();
    assert!(proposes.len() >= 2, "sped up: {:?}", record.attempts);
    assert!(
        proposes
            .iter()
            .all(|a| a.status == AttemptStatus::Broadcast),
        "every speed-up was accepted: {:?}",
        record.attempts
    );
    let cancel = record
        .attempts
        .iter()
        .find(|a| a.kind == AttemptKind::Cancel)
        .expect("a cancel");
    assert_eq!(
        cancel.status,
        AttemptStatus::Broadcast,
        "the cancel was accepted"
    );
    let window_end = net.slot_start_secs(target.next());
    assert!(
        cancel.signed_at_l1 < window_end,
        "cancelled in the window's last block ({} vs {window_end})",
        cancel.signed_at_l1
    );
    let cancel_index = record.attempts.iter().position(|a| a == cancel).unwrap();
    assert_eq!(
        record.mined.map(|mined| mined.attempt as usize),
        Some(cancel_index),
        "the cancel is what was mined"
    );
}
