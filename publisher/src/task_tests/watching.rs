//! A sent propose being watched: L1 errors, confirmations, dropped txs, shutdown.

use super::*;

#[tokio::test]
async fn l1_errors_while_watching_are_retried_and_the_publisher_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config(), T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    let (_, _, first) = sent(&handle).await;
    // The speed-up's fee read fails, then the mined block's read: each is retried.
    l1.fail_next(Call::Fees, 3);
    l1.fail_next(Call::Block, 2);
    l1.advance(E);
    let speed_up = status(
        &handle,
        "sped up",
        |s| matches!(s, SubmissionStatus::Sent { tx_hash, .. } if *tx_hash != first),
    )
    .await;
    let SubmissionStatus::Sent { tx_hash, .. } = speed_up else {
        unreachable!()
    };
    assert!(l1.calls(Call::Fees) >= 5, "the failed reads were retried");
    mine_and_close(&l1, tx_hash);
    match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => assert_eq!(landed.tx_hash, tx_hash),
        other => panic!("{other:?}"),
    }
    assert!(!h.task.is_finished(), "the publisher still runs");
    // And takes the next request.
    let next = h.handle.enqueue(bundle(2, Slot(6)), Slot(6), Slot(6)).await;
    assert!(next.is_ok(), "{next:?}");
    h.stop().await;
}

/// Every handle dropped while a task waits: `cancel` must still stop the publisher (it used to
/// wait for the task without watching `cancel`).
#[tokio::test]
async fn shutdown_is_prompt_when_every_handle_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config(), T + 1).await;
    // Slot 9 starts at 1108: the task sleeps on the manual clock, which never moves.
    let submission = h
        .handle
        .enqueue(bundle(1, Slot(9)), Slot(9), Slot(9))
        .await
        .unwrap();
    let Harness {
        handle,
        cancel,
        task,
        ..
    } = h;
    drop(handle);
    drop(submission);
    // Single-threaded runtime: yielding lets the actor see its command channel close.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!task.is_finished(), "a task is still in flight");
    cancel.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the publisher stops on cancel")
        .unwrap()
        .unwrap();
}

/// A propose mined in the window's last block is reported landed only once it has the
/// configured confirmations (3 here, not the default 2).
#[tokio::test]
async fn landed_waits_for_the_configured_confirmations() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let config = PublisherConfig {
        confirmations: 3,
        max_speed_ups: 0,
        ..config()
    };
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config, T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    let (_, _, hash) = sent(&handle).await;
    while l1.state().timestamp + E < WINDOW_END - E {
        l1.advance(E);
    }
    let raw = l1.sent()[0].raw.clone();
    // Stamped 1070: no later block falls in the window.
    let receipt = l1.mine(&raw, E, true);
    assert_eq!(l1.state().timestamp, WINDOW_END - E);
    status(&handle, "mined", |s| {
        matches!(s, SubmissionStatus::Mined { .. })
    })
    .await;
    for confirmations in [1, 2] {
        // Five more looks at L1, or an early end (the bug this test is for).
        let from = l1.calls(Call::Latest);
        eventually("the publisher polls L1", || {
            l1.calls(Call::Latest) >= from + 5
                || matches!(handle.status(), SubmissionStatus::Done(_))
        })
        .await;
        assert!(
            matches!(handle.status(), SubmissionStatus::Mined { .. }),
            "{confirmations} confirmations: {:?}",
            handle.status()
        );
        l1.advance(E);
    }
    match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => {
            assert_eq!(landed.tx_hash, hash);
            assert_eq!(landed.block_number, receipt.block_number);
        }
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

/// A propose the node forgot is sent again once it has been unseen for the configured
/// propose threshold (6 s here) — not at the default (two L1 slots, 4 s) nor at the cancel
/// threshold (4 s in these tests).
#[tokio::test]
async fn a_dropped_propose_is_sent_again_after_the_configured_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let config = PublisherConfig {
        propose_unseen_considered_dropped: Some(Duration::from_secs(6)),
        max_speed_ups: 0,
        ..config()
    };
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config, T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    let (_, _, hash) = sent(&handle).await;
    l1.forget(hash);
    // Unseen from 1060 on.
    h.polls(3).await;
    for _ in 0..2 {
        l1.advance(E);
        h.polls(3).await;
        assert_eq!(l1.sent().len(), 1, "sent again before 6 s unseen");
    }
    l1.advance(E);
    eventually("sent again after 6 s unseen", || l1.sent().len() == 2).await;
    assert_eq!(l1.sent()[1].hash, hash, "the same signed tx");
    h.polls(3).await;
    assert_eq!(l1.sent().len(), 2, "once per unseen period");
    lands(h, handle, hash).await;
}

/// The node shows the key's nonce consumed a moment before it serves the receipt (anvil does,
/// under load): the propose is not blamed on another tx (`NonceTaken`) while the receipt may
/// still come; it lands once it does.
#[tokio::test]
async fn a_nonce_consumed_before_its_receipt_is_served_still_lands() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let config = PublisherConfig {
        max_speed_ups: 0,
        ..config()
    };
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config, T + 1).await;
    let handle = h.handle.enqueue(bundle(1, SLOT), SLOT, SLOT).await.unwrap();
    let (_, _, hash) = sent(&handle).await;
    let raw = l1.sent()[0].raw.clone();
    l1.mine_withholding_receipt(&raw, E, true);
    // One block on top, still no receipt: fewer blocks than the confirmations.
    h.polls(5).await;
    l1.advance(E);
    h.polls(5).await;
    assert!(
        matches!(handle.status(), SubmissionStatus::Sent { .. }),
        "{:?}",
        handle.status()
    );
    l1.index_receipts();
    status(&handle, "mined", |s| {
        matches!(s, SubmissionStatus::Mined { .. })
    })
    .await;
    while l1.state().timestamp + E < WINDOW_END + E {
        l1.advance(E);
    }
    match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => assert_eq!(landed.tx_hash, hash),
        other => panic!("{other:?}"),
    }
    h.stop().await;
}
