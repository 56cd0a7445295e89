//! From enqueue to the first accepted send: L1 read errors, refusals, L1 time behind the
//! window, and pruning as requests end.

use super::*;

#[tokio::test]
async fn transient_l1_errors_before_the_first_send_are_retried_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    // Reads the first send needs fail a few times: that says nothing about the key.
    l1.fail_next(Call::PendingNonce, 3);
    l1.fail_next(Call::Fees, 2);
    l1.fail_next(Call::Latest, 2);
    let (a, b) = (key(0), key(1));
    let h = Harness::start(&l1, dir.path(), vec![a.clone(), b], config(), T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    let (sender, nonce, hash) = sent(&handle).await;
    assert_eq!(sender, a.address(), "no rotation on read errors");
    assert_eq!(nonce, 0);
    lands(h, handle, hash).await;
    let records = records(dir.path());
    assert_eq!(
        records.len(),
        1,
        "one record, no NotSent one for a rotation"
    );
    assert_eq!(records[0].key, a.address());
}

/// The first send of nonce 0 is refused while nonce 1 of the key (an earlier propose) waits in
/// the mempool: nonce 0 is kept (retried, then filled), not given back.
#[tokio::test]
async fn a_refused_first_send_keeps_its_nonce_while_a_higher_one_waits() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    // Nonce 1 for slot 6, accepted before a restart: the node holds it behind the free nonce 0.
    let waiting = signed(&a, 1, AttemptKind::Propose, 10, T, AttemptStatus::Broadcast);
    stored(
        dir.path(),
        &a,
        1,
        Slot(6),
        TxState::Pending,
        std::slice::from_ref(&waiting),
    );
    let l1 = l1_at(T);
    l1.pool(&waiting.1);
    let h = Harness::start(&l1, dir.path(), vec![a], config(), T + 1).await;
    l1.answer_next(
        0,
        Broadcast::Refused(Refusal::Other {
            code: -32000,
            message: "txpool is full".into(),
        }),
    );
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    eventually("the first send", || l1.sent().iter().any(|s| s.nonce == 0)).await;
    let refused = l1.sent().into_iter().find(|s| s.nonce == 0).unwrap();
    assert!(matches!(refused.answer, Broadcast::Refused(_)));
    l1.advance(E);
    // The speed-up of nonce 0 is the first tx the status reports as sent.
    let (_, nonce, hash) = sent(&handle).await;
    assert_eq!(nonce, 0);
    assert_ne!(hash, refused.hash, "a refused tx is not reported as sent");
    lands(h, handle, hash).await;
}

/// A first send waits while L1 time is behind its window, even though the local clock says
/// the target slot has started.
#[tokio::test]
async fn the_first_send_waits_while_l1_time_is_behind_the_window() {
    let dir = tempfile::tempdir().unwrap();
    // L1 lags three blocks behind T: its next block could be stamped before T.
    let l1 = l1_at(T - 3 * E);
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config(), T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    eventually("simulated", || l1.calls(Call::Simulate) == 1).await;
    h.polls(20).await;
    assert!(l1.sent().is_empty(), "sent while L1 was behind the window");
    l1.advance(E);
    h.polls(10).await;
    assert!(
        l1.sent().is_empty(),
        "the next block would still be before T"
    );
    // A block stamped T - E: the next one is T.
    l1.advance(E);
    let (_, _, hash) = sent(&handle).await;
    assert_eq!(l1.sent().len(), 1);
    lands(h, handle, hash).await;
}

/// Finished records are pruned as they finish (refused first sends and watched records alike),
/// not only at the next start.
#[tokio::test]
async fn finished_records_are_pruned_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let config = PublisherConfig {
        keep_finished_records: 1,
        ..config()
    };
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config.clone(), T + 1).await;
    for number in 1..=3 {
        l1.answer_next(0, Broadcast::Refused(Refusal::InsufficientFunds));
        let handle = h
            .handle
            .enqueue(bundle(number, SLOT), SLOT, SLOT)
            .await
            .unwrap();
        assert_eq!(
            outcome(handle).await,
            SubmissionOutcome::SendFailed {
                reason: crate::SendFailure::Refused(Refusal::InsufficientFunds)
            }
        );
    }
    h.stop().await;
    let kept = records(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].state, TxState::Final(FinalState::NotSent));
    // A watched record that ends (landed) prunes too: opening the store kept the one record
    // (nothing to prune there), the landed one replaces it.
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config, T + 1).await;
    let handle = h.handle.enqueue(bundle(4, SLOT), SLOT, SLOT).await.unwrap();
    let (_, _, hash) = sent(&handle).await;
    lands(h, handle, hash).await;
    let kept = records(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].state, TxState::Final(FinalState::Landed));
}

/// A first send refused for want of ETH reads the key's balance (so its runway gauge and the
/// low-balance alert show the empty key); another refusal does not.
#[tokio::test]
async fn a_send_refused_for_want_of_eth_reads_the_key_balance() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config(), T + 1).await;
    let before = l1.calls(Call::Balance);
    l1.answer_next(0, Broadcast::Refused(Refusal::GasLimitTooHigh));
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    assert!(matches!(
        outcome(handle).await,
        SubmissionOutcome::SendFailed { .. }
    ));
    assert_eq!(
        l1.calls(Call::Balance),
        before,
        "read after another refusal"
    );
    l1.answer_next(0, Broadcast::Refused(Refusal::InsufficientFunds));
    let handle = h.handle.enqueue(bundle(2, SLOT), SLOT, SLOT).await.unwrap();
    assert_eq!(
        outcome(handle).await,
        SubmissionOutcome::SendFailed {
            reason: crate::SendFailure::Refused(Refusal::InsufficientFunds)
        }
    );
    assert_eq!(l1.calls(Call::Balance), before + 1);
    h.stop().await;
}
