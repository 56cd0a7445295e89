//! The publisher against a real anvil mining every second.

#[path = "../common/mod.rs"]
mod common;
mod fees;
mod simulation;

use std::time::{Duration, Instant};

use alloy::eips::BlockId;
use alloy::{
    network::TransactionBuilder,
    primitives::{B256, Bytes, U256},
    providers::{Provider, ext::AnvilApi},
    rpc::types::TransactionRequest,
};
use common::{Net, fast_config, wait_status};
use tandem_l1::{Rollup, RollupError};
use tandem_proto::time::Slot;
use tandem_publisher::{
    AttemptKind, AttemptStatus, FinalState, GWEI, PublisherError, Revert, SimulationAt,
    SimulationDrop, SubmissionOutcome, SubmissionStatus, TxState, TxStore,
};

const WAIT: Duration = Duration::from_secs(40);

/// A net with slots of `slot_secs` and a running publisher (fast settings) on its first
/// publisher key, its store in the returned temp dir (keep it alive).
async fn one_key(
    slot_secs: u64,
) -> (
    Net,
    tempfile::TempDir,
    alloy::signers::local::PrivateKeySigner,
    common::Running,
) {
    let net = Net::start(slot_secs, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
    (net, dir, key, publisher)
}

async fn outcome(handle: tandem_publisher::SubmissionHandle) -> SubmissionOutcome {
    tokio::time::timeout(WAIT, handle.outcome())
        .await
        .expect("the submission ends")
}

/// Enqueues a propose for `target` (only) on top of L1's tip.
async fn enqueue_on_tip(
    net: &Net,
    publisher: &common::Running,
    target: Slot,
) -> tandem_publisher::SubmissionHandle {
    let bundle = net.bundle_on_tip(target).await;
    publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap()
}

/// Enters a slot with `room` left, optionally pauses L1 mining, and enqueues a propose for that
/// very slot (so it is sent at once).
async fn propose_now(
    net: &Net,
    publisher: &common::Running,
    room: Duration,
    pause_mining: bool,
) -> (Slot, tandem_publisher::SubmissionHandle) {
    let target = net
        .enter_slot_with_room(Duration::from_millis(100), room)
        .await;
    if pause_mining {
        net.set_interval_mining(0).await;
    }
    let handle = enqueue_on_tip(net, publisher, target).await;
    (target, handle)
}

/// Waits until the propose is mined; returns its block.
async fn mined(handle: &tandem_publisher::SubmissionHandle) -> u64 {
    match wait_status(handle, WAIT, |s| {
        matches!(s, SubmissionStatus::Mined { .. })
    })
    .await
    {
        SubmissionStatus::Mined { block_number, .. } => block_number,
        _ => unreachable!(),
    }
}

/// Snapshots L1, then proposes for a slot entered with `room` left and waits until the propose
/// is mined: the target slot, the handle, and the snapshot that reverts the propose's block.
async fn mined_after_snapshot(
    net: &Net,
    publisher: &common::Running,
    room: Duration,
) -> (Slot, tandem_publisher::SubmissionHandle, U256) {
    let snapshot = net.harness.provider().anvil_snapshot().await.unwrap();
    let (target, handle) = propose_now(net, publisher, room, false).await;
    mined(&handle).await;
    (target, handle, snapshot)
}

/// Waits until the propose is sent; returns the tx.
async fn sent(handle: &tandem_publisher::SubmissionHandle) -> B256 {
    match wait_status(handle, WAIT, |s| matches!(s, SubmissionStatus::Sent { .. })).await {
        SubmissionStatus::Sent { tx_hash, .. } => tx_hash,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_propose_enqueued_in_the_build_slot_lands_in_the_first_block_of_the_target_slot() {
    let (net, dir, _, publisher) = one_key(4).await;
    // Enter a build slot early enough that T - E is still ahead.
    let build = net
        .enter_slot_with_room(Duration::from_millis(200), Duration::from_secs(2))
        .await;
    let target = build.next();
    let handle = enqueue_on_tip(&net, &publisher, target).await;
    // Returned before its send time (T - E, two seconds ahead): nothing is sent yet.
    assert_eq!(handle.status(), SubmissionStatus::Scheduled);
    let landed = match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => landed,
        other => panic!("{other:?}"),
    };
    let t = net.slot_start_secs(target);
    assert_eq!(landed.block_timestamp, t, "first block of the target slot");
    assert!(net.block_timestamp(landed.block_number - 1).await < t);
    assert_eq!(landed.inclusion_delay, Duration::ZERO);
    assert_eq!(net.tip().await, 1);
    publisher.stop().await;

    let store = TxStore::open(dir.path()).unwrap();
    let records = store.records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, TxState::Final(FinalState::Landed));
    assert_eq!(records[0].attempts.len(), 1, "no speed-up was needed");
}

#[tokio::test]
async fn a_reorged_propose_is_sent_again_while_its_slot_lasts() {
    let (net, dir, _, publisher) = one_key(8).await;
    let provider = net.harness.provider();
    let (target, handle, snapshot) =
        mined_after_snapshot(&net, &publisher, Duration::from_secs(6)).await;
    assert!(provider.anvil_revert(snapshot).await.unwrap());
    let landed = match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => landed,
        other => panic!("{other:?}"),
    };
    assert_eq!(net.tip().await, 1, "sent again and mined");
    // Anvil's revert also takes its clock back: the propose must wait for L1 to re-enter the
    // slot instead of landing (and reverting) before it.
    assert!(landed.block_timestamp >= net.slot_start_secs(target));
    assert!(landed.block_timestamp < net.slot_start_secs(target.next()));
    publisher.stop().await;
    let records = TxStore::open(dir.path()).unwrap().records().unwrap();
    assert_eq!(records[0].reorgs, 1);
    assert_eq!(records[0].state, TxState::Final(FinalState::Landed));
}

#[tokio::test]
async fn a_propose_reorged_out_after_its_slot_is_reported_lost() {
    let (net, dir, _, publisher) = one_key(4).await;
    let provider = net.harness.provider();
    let (target, handle, snapshot) =
        mined_after_snapshot(&net, &publisher, Duration::from_secs(3)).await;
    // Freeze L1, drop the block, and continue L1 after the slot: the propose cannot come back.
    net.set_interval_mining(0).await;
    assert!(provider.anvil_revert(snapshot).await.unwrap());
    net.harness
        .mine_at(net.slot_start_secs(target.next()) + 1)
        .await
        .unwrap();
    net.set_interval_mining(1).await;
    assert_eq!(outcome(handle).await, SubmissionOutcome::Lost);
    assert_eq!(net.tip().await, 0);
    publisher.stop().await;
    let records = TxStore::open(dir.path()).unwrap().records().unwrap();
    assert_eq!(records[0].state, TxState::Final(FinalState::Lost));
    assert!(
        records[0]
            .attempts
            .iter()
            .any(|a| a.kind == AttemptKind::Cancel),
        "the stale propose was cancelled rather than left to revert"
    );
}

#[tokio::test]
async fn interrupt_ends_the_scheduling_sleep_within_a_second() {
    let (net, _store, _, publisher) = one_key(4).await;
    let target = Slot(net.current_slot().0 + 5);
    let bundle = net.bundle_on_tip(target).await;
    let handle = publisher
        .handle
        .enqueue(bundle.clone(), target, target)
        .await
        .unwrap();
    let interrupted = Instant::now();
    publisher.handle.interrupt();
    assert_eq!(outcome(handle).await, SubmissionOutcome::Interrupted);
    assert!(interrupted.elapsed() < Duration::from_secs(1));
    assert!(matches!(
        publisher.handle.enqueue(bundle, target, target).await,
        Err(PublisherError::Interrupted)
    ));
    tokio::time::timeout(Duration::from_secs(2), publisher.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn interrupt_ends_the_receipt_wait_and_a_restart_resumes_the_tx() {
    let (net, dir, key, publisher) = one_key(8).await;
    let (target, handle) = propose_now(&net, &publisher, Duration::from_secs(6), true).await;
    let bundle = net.bundle_on_tip(target).await;
    let sent = sent(&handle).await;
    let interrupted = Instant::now();
    publisher.handle.interrupt();
    assert_eq!(outcome(handle).await, SubmissionOutcome::Interrupted);
    assert!(interrupted.elapsed() < Duration::from_secs(1));
    publisher.task.await.unwrap().unwrap();

    // The record outlives the process; a new publisher on the same store tracks it and refuses
    // a second propose for the slot.
    let live = TxStore::open(dir.path()).unwrap().live_records().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].attempts[0].hash, sent);
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
    assert!(matches!(
        publisher.handle.enqueue(bundle, target, target).await,
        Err(PublisherError::SlotAlreadyEnqueued(slot)) if slot == target
    ));
    net.set_interval_mining(1).await;
    let provider = net.harness.provider();
    let deadline = Instant::now() + WAIT;
    while provider
        .get_transaction_receipt(sent)
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the resumed tx is mined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + WAIT;
    while publisher.handle.live_txs() > 0 {
        assert!(Instant::now() < deadline, "the resumed tx ends");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.stop().await;
    let records = TxStore::open(dir.path()).unwrap().records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, TxState::Final(FinalState::Landed));
    assert_eq!(net.nonce(key.address()).await, 1);
}

#[tokio::test]
async fn a_refused_send_rotates_to_the_next_key() {
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let broke = net.publisher_key(0);
    let funded = net.publisher_key(1);
    net.harness.fund(broke.address(), U256::ZERO).await.unwrap();
    let publisher = net
        .publisher(
            dir.path(),
            fast_config(),
            vec![broke.clone(), funded.clone()],
        )
        .await;
    let target = net.current_slot().next();
    let handle = enqueue_on_tip(&net, &publisher, target).await;
    let landed = outcome(handle).await;
    assert!(matches!(landed, SubmissionOutcome::Landed(_)), "{landed:?}");
    assert_eq!(net.nonce(broke.address()).await, 0);
    assert_eq!(net.nonce(funded.address()).await, 1);
    publisher.stop().await;
    let records = TxStore::open(dir.path()).unwrap().records().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key, broke.address());
    assert_eq!(records[0].state, TxState::Final(FinalState::NotSent));
    assert_eq!(records[1].key, funded.address());
    assert_eq!(records[1].state, TxState::Final(FinalState::Landed));
}
