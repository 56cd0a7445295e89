//! The publisher against a real anvil mining every second.

mod common;

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

async fn outcome(handle: tandem_publisher::SubmissionHandle) -> SubmissionOutcome {
    tokio::time::timeout(WAIT, handle.outcome())
        .await
        .expect("the submission ends")
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
    let bundle = net.bundle_on_tip(target).await;
    let handle = publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap();
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

/// Waits until the propose is sent; returns the tx.
async fn sent(handle: &tandem_publisher::SubmissionHandle) -> B256 {
    match wait_status(handle, WAIT, |s| matches!(s, SubmissionStatus::Sent { .. })).await {
        SubmissionStatus::Sent { tx_hash, .. } => tx_hash,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_propose_enqueued_in_the_build_slot_lands_in_the_first_block_of_the_target_slot() {
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![net.publisher_key(0)])
        .await;
    // Enter a build slot early enough that T - E is still ahead.
    let build = net
        .enter_slot_with_room(Duration::from_millis(200), Duration::from_secs(2))
        .await;
    let target = build.next();
    let bundle = net.bundle_on_tip(target).await;
    let handle = publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap();
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
async fn an_unmineable_propose_is_bumped_then_cancelled_and_its_nonce_is_reused() {
    let net = Net::start(6, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let address = key.address();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
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
    let bundle = net.bundle_on_tip(next).await;
    let handle = publisher.handle.enqueue(bundle, next, next).await.unwrap();
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
    let net = Net::start(6, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let address = key.address();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
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

#[tokio::test]
async fn a_propose_whose_parent_never_landed_is_dropped_at_simulation() {
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
    let target = net.current_slot().next();
    // Checkpoint 2 on a parent (checkpoint 1) that only ever existed as a proposal.
    let genesis_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let parent_archive = common::archive_after(genesis_archive, Slot(target.0 - 1));
    let bundle = net.bundle(2, target, parent_archive).await;
    let handle = publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap();
    assert_eq!(
        outcome(handle).await,
        SubmissionOutcome::DroppedAtSimulation(SimulationDrop::Revert(Revert::from(
            RollupError::InvalidCheckpointNumber(Rollup::InvalidCheckpointNumber {
                expected: U256::from(1),
                got: U256::from(2),
            })
        )))
    );
    assert_eq!(net.nonce(key.address()).await, 0, "nothing was sent");
    publisher.stop().await;
    assert!(
        TxStore::open(dir.path())
            .unwrap()
            .records()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reorged_propose_is_sent_again_while_its_slot_lasts() {
    let net = Net::start(8, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![net.publisher_key(0)])
        .await;
    let provider = net.harness.provider();
    let snapshot = provider.anvil_snapshot().await.unwrap();
    let (target, handle) = propose_now(&net, &publisher, Duration::from_secs(6), false).await;
    mined(&handle).await;
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
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
    let provider = net.harness.provider();
    let snapshot = provider.anvil_snapshot().await.unwrap();
    let (target, handle) = propose_now(&net, &publisher, Duration::from_secs(3), false).await;
    mined(&handle).await;
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
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![net.publisher_key(0)])
        .await;
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
    let net = Net::start(8, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let key = net.publisher_key(0);
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![key.clone()])
        .await;
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
    let bundle = net.bundle_on_tip(target).await;
    let handle = publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap();
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

#[tokio::test]
async fn both_simulation_methods_agree_and_honour_the_pipelining_plan() {
    use tandem_publisher::SimulationMethod::{CallWithOverrides, SimulateV1};

    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let (publisher, parent, slot) = pipelining_parent(&net, dir.path()).await;
    let simulator = publisher.handle.simulator();
    let at = net.slot_start_secs(slot);
    let latest = SimulationAt::on_l1(BlockId::latest());
    let a = simulator
        .simulate_propose_with(SimulateV1, &parent, at, latest)
        .await
        .unwrap();
    let b = simulator
        .simulate_propose_with(CallWithOverrides, &parent, at, latest)
        .await
        .unwrap();
    assert!(a.gas_used > 100_000);
    // eth_estimateGas reports the limit it needs: at least the gas used, within the 64/63 reserve
    // plus refunds.
    assert!(
        b.gas_used >= a.gas_used && b.gas_used < a.gas_used * 11 / 10,
        "{a:?} {b:?}"
    );

    // Checkpoint 2 on the proposed (not landed) checkpoint 1: only the plan makes it valid.
    let child_slot = slot.next();
    let child = child_of(&net, &parent, child_slot).await;
    let (base, plan) = net.plan_on_genesis(&parent).await;
    let planned = SimulationAt::planned(&base, &plan);
    let bare = SimulationAt::on_l1(base.l1_block.id());
    let child_at = net.slot_start_secs(child_slot);
    for method in [SimulateV1, CallWithOverrides] {
        let err = simulator
            .simulate_propose_with(method, &child, child_at, bare)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.revert(),
                Some(RollupError::InvalidCheckpointNumber(e))
                    if e.expected == U256::from(1) && e.got == U256::from(2)
            ),
            "{method:?}: {err}"
        );
        simulator
            .simulate_propose_with(method, &child, child_at, planned)
            .await
            .unwrap_or_else(|err| panic!("{method:?}: {err}"));
    }
    let proposer = net
        .reader
        .proposer_at(child_at, base.l1_block.id())
        .await
        .unwrap()
        .unwrap();
    let can = simulator
        .can_propose_at(
            tandem_proto::time::Timestamp::from_secs(child_at),
            parent.args.archive,
            proposer,
            planned,
        )
        .await
        .unwrap();
    assert_eq!(can.next_checkpoint, 2);
    assert_eq!(can.slot, child_slot);
    let wrong_archive = simulator
        .can_propose_at(
            tandem_proto::time::Timestamp::from_secs(child_at),
            B256::repeat_byte(9),
            proposer,
            planned,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_archive.revert(), Some(RollupError::InvalidArchive(_))),
        "{wrong_archive}"
    );
    publisher.stop().await;
}

/// A running publisher and checkpoint 1 for a slot two ahead (only ever proposed: the parent a
/// pipelined checkpoint 2 builds on).
async fn pipelining_parent(
    net: &Net,
    dir: &std::path::Path,
) -> (common::Running, tandem_l1::ProposeBundle, Slot) {
    let publisher = net
        .publisher(dir, fast_config(), vec![net.publisher_key(0)])
        .await;
    let slot = Slot(net.current_slot().0 + 2);
    let genesis_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let parent = net.bundle(1, slot, genesis_archive).await;
    (publisher, parent, slot)
}

/// Checkpoint 2 for `slot` on top of `parent` (checkpoint 1), paying L1's current min fee.
async fn child_of(
    net: &Net,
    parent: &tandem_l1::ProposeBundle,
    slot: Slot,
) -> tandem_l1::ProposeBundle {
    let fee = net
        .reader
        .mana_min_fee(None, BlockId::latest())
        .await
        .unwrap();
    net.bundle_with_fee(
        2,
        slot,
        parent.args.archive,
        fee,
        Bytes::from(vec![1u8; 64]),
    )
    .await
}

#[tokio::test]
async fn validate_header_accepts_the_built_header_and_names_what_a_tampered_one_breaks() {
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let (publisher, parent, slot) = pipelining_parent(&net, dir.path()).await;
    let simulator = publisher.handle.simulator();
    let child_slot = slot.next();
    let child = child_of(&net, &parent, child_slot).await;
    // As the sequencer checks it before gossiping: under the plan (the parent only proposed),
    // at a time inside the target slot.
    let (base, plan) = net.plan_on_genesis(&parent).await;
    let planned = SimulationAt::planned(&base, &plan);
    let inside = tandem_proto::time::Timestamp::from_secs(net.slot_start_secs(child_slot) + 1);
    let valid = simulator
        .validate_header(&child.args, &child.body, inside, planned)
        .await
        .unwrap();
    assert_eq!(
        valid.header_hash,
        tandem_l1::header_from_sol(&child.args.header).hash()
    );
    assert_eq!(valid.fee_header.mana_used, child.args.header.totalManaUsed);

    // The parent is only proposed: without the plan, L1 expects checkpoint 1.
    let err = simulator
        .validate_header(
            &child.args,
            &child.body,
            inside,
            SimulationAt::on_l1(base.l1_block.id()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.revert(), Some(RollupError::InvalidCheckpointNumber(e)) if e.expected == U256::from(1)),
        "{err}"
    );
    // A header on another archive.
    let mut tampered = child.args.clone();
    tampered.header.lastArchiveRoot = B256::repeat_byte(0xee);
    let err = simulator
        .validate_header(&tampered, &child.body, inside, planned)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.revert(),
            Some(RollupError::InvalidArchive(e))
                if e.expected == parent.args.archive && e.got == B256::repeat_byte(0xee)
        ),
        "{err}"
    );
    // A body that is not the one the header commits to.
    let err = simulator
        .validate_header(&child.args, &Bytes::from(vec![2u8; 64]), inside, planned)
        .await
        .unwrap_err();
    assert!(
        matches!(err.revert(), Some(RollupError::InvalidBodyHash(e)) if e.expected == child.args.header.bodyHash),
        "{err}"
    );
    // The right header at a time outside its slot.
    let err = simulator
        .validate_header(
            &child.args,
            &child.body,
            tandem_proto::time::Timestamp::from_secs(net.slot_start_secs(child_slot.next())),
            planned,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.revert(), Some(RollupError::InvalidSlot(_))),
        "{err}"
    );
    publisher.stop().await;
}
