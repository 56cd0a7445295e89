//! Records resumed from the store after a restart: txs mined while the node was down, stale
//! proposes, cancels the node still holds or does not mine.

use super::*;

/// A tx the node accepted right before a crash (the store still says "signed") and that was
/// mined while the node was down: its re-broadcast gets "nonce too low", yet it landed.
#[tokio::test]
async fn a_propose_mined_while_the_node_was_down_lands_instead_of_nonce_taken() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(&a, 0, AttemptKind::Propose, 10, T, AttemptStatus::Signed);
    stored_for_slot(
        dir.path(),
        &a,
        TxState::Pending,
        std::slice::from_ref(&propose),
    );
    let l1 = l1_at(T);
    l1.mine(&propose.1, E, true);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), T + 3).await;
    eventually("the resumed tx is sent again", || !l1.sent().is_empty()).await;
    while l1.state().timestamp < WINDOW_END {
        l1.advance(E);
    }
    h.until_idle().await;
    assert!(
        l1.sent()
            .iter()
            .any(|s| s.answer == Broadcast::Refused(Refusal::NonceTooLow)),
        "the resumed tx was sent again and refused"
    );
    h.stop().await;
    let records = records(dir.path());
    assert_eq!(records[0].state, TxState::Final(FinalState::Landed));
    assert_eq!(
        records[0].attempts[0].status,
        AttemptStatus::Signed,
        "a 'nonce too low' for a tx of unknown fate is not a refusal"
    );
}

/// A cancelling record whose cancels were all refused, resumed after its window: only the
/// cancel goes out again, never the stale propose.
#[tokio::test]
async fn a_resumed_cancel_never_sends_the_stale_propose_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(&a, 0, AttemptKind::Propose, 10, T, AttemptStatus::Broadcast);
    let cancel = signed(
        &a,
        0,
        AttemptKind::Cancel,
        15,
        WINDOW_END - E,
        AttemptStatus::Refused,
    );
    stored_for_slot(
        dir.path(),
        &a,
        TxState::Cancelling,
        &[propose.clone(), cancel.clone()],
    );
    let l1 = l1_at(WINDOW_END + 4);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), WINDOW_END + 5).await;
    eventually("the cancel is sent again", || {
        l1.sent().iter().any(|s| s.hash == cancel.0.hash)
    })
    .await;
    h.polls(20).await;
    assert!(
        l1.sent().iter().all(|s| s.hash != propose.0.hash),
        "the propose went out after its window: {:?}",
        l1.sent()
            .iter()
            .map(|s| (s.hash, s.is_cancel))
            .collect::<Vec<_>>()
    );
    l1.mine(&cancel.1, E, false);
    h.until_idle().await;
    h.stop().await;
    assert_eq!(
        records(dir.path())[0].state,
        TxState::Final(FinalState::Cancelled)
    );
}

/// A cancel past its final timeout that the node still holds keeps its nonce (and is sent
/// again as it was, at the fee ceiling) until the node drops it; only then is the nonce given
/// back.
#[tokio::test]
async fn a_cancel_the_node_still_holds_keeps_its_nonce_past_the_final_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(
        &a,
        0,
        AttemptKind::Propose,
        100,
        T,
        AttemptStatus::Broadcast,
    );
    // At the ceiling: 100 gwei cap raised by the 50 % bump.
    let cancel = signed(
        &a,
        0,
        AttemptKind::Cancel,
        150,
        WINDOW_END - E,
        AttemptStatus::Broadcast,
    );
    stored_for_slot(
        dir.path(),
        &a,
        TxState::Cancelling,
        &[propose, cancel.clone()],
    );
    let l1 = l1_at(WINDOW_END + 20);
    l1.pool(&cancel.1);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), WINDOW_END + 21).await;
    h.polls(20).await;
    // Past the 8 s final timeout and stalled: refreshed, but no cancel fits above the ceiling.
    l1.advance(E);
    h.polls(20).await;
    assert_eq!(
        h.handle.live_txs(),
        1,
        "the node holds the cancel: nonce kept"
    );
    let sent = l1.sent();
    assert!(sent.len() >= 2, "{sent:?}");
    assert!(
        sent.iter().all(|s| s.hash == cancel.0.hash),
        "only the highest cancel, as it was signed: {sent:?}"
    );
    l1.forget(cancel.0.hash);
    h.until_idle().await;
    h.stop().await;
    let records = records(dir.path());
    assert_eq!(records[0].state, TxState::Final(FinalState::NotMined));
    assert_eq!(records[0].attempts.len(), 2, "no attempt above the ceiling");
}

/// A speed-up the node refused (its fees looked too low to this node) can still be mined
/// through another: the record finds its receipt and lands, rather than blaming an unknown tx
/// for the nonce (`NonceTaken`).
#[tokio::test]
async fn a_refused_attempt_that_was_mined_lands_instead_of_nonce_taken() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(&a, 0, AttemptKind::Propose, 10, T, AttemptStatus::Broadcast);
    let refused = signed(
        &a,
        0,
        AttemptKind::Propose,
        15,
        T + E,
        AttemptStatus::Refused,
    );
    stored_for_slot(
        dir.path(),
        &a,
        TxState::Pending,
        &[propose, refused.clone()],
    );
    let l1 = l1_at(T);
    l1.mine(&refused.1, E, true);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), T + 3).await;
    while l1.state().timestamp < WINDOW_END {
        l1.advance(E);
    }
    h.until_idle().await;
    h.stop().await;
    let records = records(dir.path());
    assert_eq!(records[0].state, TxState::Final(FinalState::Landed));
    assert_eq!(
        records[0].mined.map(|mined| mined.attempt),
        Some(1),
        "the refused speed-up is what was mined"
    );
}

/// A cancel the node holds but does not mine is bumped at every stall — sped up, then refreshed
/// past its final timeout because the node still holds the nonce — each time by the full bump
/// on the previous cancel, up to the ceiling (the cap raised by one bump); once no bump fits
/// under it the highest cancel is sent again as signed. Mined, it frees the nonce.
#[tokio::test]
async fn a_stuck_cancel_escalates_to_the_ceiling_then_is_resent_until_mined() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(&a, 0, AttemptKind::Propose, 10, T, AttemptStatus::Broadcast);
    stored_for_slot(
        dir.path(),
        &a,
        TxState::Pending,
        std::slice::from_ref(&propose),
    );
    // The window has closed; the node holds the propose (and every cancel it is sent).
    let l1 = l1_at(WINDOW_END);
    l1.pool(&propose.1);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), WINDOW_END + 1).await;
    let cancels = |l1: &FakeL1| {
        let mut fees: Vec<(B256, u128)> = Vec::new();
        for sent in l1.sent().into_iter().filter(|s| s.is_cancel) {
            if fees.iter().all(|(hash, _)| *hash != sent.hash) {
                fees.push((sent.hash, sent.max_fee_per_gas));
            }
        }
        fees
    };
    let resent = |l1: &FakeL1, hash: B256| l1.sent().iter().filter(|s| s.hash == hash).count();
    // One L1 block (2 s: a stall) at a time, until the highest cancel goes out a second time.
    let mut highest = None;
    for _ in 0..30 {
        h.polls(3).await;
        let signed = cancels(&l1);
        if let Some(&(hash, _)) = signed.last()
            && resent(&l1, hash) >= 2
        {
            highest = Some(hash);
            break;
        }
        l1.advance(E);
    }
    let highest = highest.expect("the highest cancel is sent again");
    let fees: Vec<u128> = cancels(&l1).into_iter().map(|(_, fee)| fee).collect();
    // From the 10 gwei propose: ×1.5 each time (two speed-ups, then refreshes); ×1.5 again
    // would pass the 150 gwei ceiling.
    let ladder: Vec<u128> = [
        15_000_000_000,
        22_500_000_000,
        33_750_000_000,
        50_625_000_000,
        75_937_500_000,
        113_906_250_000,
    ]
    .to_vec();
    assert_eq!(fees, ladder);
    let raw = l1
        .sent()
        .into_iter()
        .find(|s| s.hash == highest)
        .unwrap()
        .raw;
    l1.mine(&raw, E, false);
    h.until_idle().await;
    h.stop().await;
    let records = records(dir.path());
    assert_eq!(records[0].state, TxState::Final(FinalState::Cancelled));
    assert_eq!(records[0].attempts.len(), 1 + ladder.len());
    assert_eq!(
        records[0].mined.map(|mined| mined.attempt as usize),
        Some(ladder.len())
    );
}
