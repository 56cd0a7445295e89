//! The publisher's tasks (actor, submission, monitor) against a scripted L1 ([`FakeL1`]), with a
//! manual clock and a real RocksDB store: the failure paths anvil cannot produce on demand
//! (transient RPC errors, a node that lags, answers after a crash).

use std::{path::Path, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use tandem_l1::{ProposeBundle, Rollup};
use tandem_proto::time::{ManualClock, Slot, SlotClock, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::{
    GWEI, Publisher, PublisherConfig, PublisherDeps, PublisherError, PublisherHandle,
    PublisherKeys, SubmissionHandle, SubmissionOutcome, SubmissionStatus, TxStore,
    chain::{Broadcast, Refusal},
    fake_l1::{Call, FakeL1},
    fees::Fees,
    record::{Attempt, AttemptKind, AttemptStatus, FinalState, TxRecord, TxState},
    signing::{TxBody, sign},
    simulator::Simulator,
};

const GENESIS: u64 = 1_000;
const S: u64 = 12;
/// E: one fake L1 block every 2 s.
const E: u64 = 2;
/// Slot 5 is [1060, 1072).
const SLOT: Slot = Slot(5);
const T: u64 = GENESIS + 5 * S;
const WINDOW_END: u64 = T + S;
const ROLLUP: Address = Address::repeat_byte(0x70);
/// Bound of every wait (a hang guard; the conditions come much sooner).
const PATIENCE: Duration = Duration::from_secs(20);

fn slot_clock() -> SlotClock {
    SlotClock::new(
        Timestamp::from_secs(GENESIS),
        Duration::from_secs(S),
        Duration::from_secs(E),
        4,
    )
    .unwrap()
}

fn config() -> PublisherConfig {
    PublisherConfig {
        max_fee_per_gas: 100 * GWEI,
        stall_time: Duration::from_secs(2),
        max_speed_ups: 2,
        receipt_poll_interval: Duration::from_millis(2),
        send_wait_poll_interval: Duration::from_millis(2),
        tx_unseen_considered_dropped: Duration::from_secs(4),
        cancel_final_timeout: Duration::from_secs(8),
        confirmations: 2,
        ..Default::default()
    }
}

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(i + 1)).unwrap()
}

fn bundle(number: u64, slot: Slot) -> ProposeBundle {
    ProposeBundle {
        args: Rollup::ProposeArgs {
            checkpointNumber: U256::from(number),
            header: Rollup::CheckpointHeader {
                slot: slot.0,
                timestamp: slot_clock().slot_start(slot).as_secs(),
                ..Default::default()
            },
            ..Default::default()
        },
        proposer_signature: Default::default(),
        attestations: Vec::new(),
        signers: U256::ZERO,
        body: Bytes::from_static(b"body"),
        skipped: Vec::new(),
        quorum: 0,
    }
}

struct Harness {
    l1: Arc<FakeL1>,
    handle: PublisherHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), PublisherError>>,
}

impl Harness {
    /// A publisher over `l1` on the store in `dir`, its clock at `now`.
    async fn start(
        l1: &Arc<FakeL1>,
        dir: &Path,
        keys: Vec<PrivateKeySigner>,
        config: PublisherConfig,
        now: u64,
    ) -> Self {
        let clock = ManualClock::new(Timestamp::from_secs(now));
        // Never called: the fake stands in for L1; the simulator only needs a provider value.
        let nowhere = ProviderBuilder::new()
            .connect_http("http://127.0.0.1:9".parse().unwrap())
            .erased();
        let simulator = Simulator::new(
            nowhere.clone(),
            ROLLUP,
            keys[0].address(),
            config.simulation_method,
        );
        let deps = PublisherDeps {
            config,
            keys: PublisherKeys::new(keys, &[]).unwrap(),
            provider: nowhere,
            rollup: ROLLUP,
            slot_clock: slot_clock(),
            clock: Arc::new(clock),
            store_path: dir.to_path_buf(),
            hooks: None,
        };
        let chain: Arc<dyn crate::chain::L1Chain> = l1.clone();
        let (handle, actor) = Publisher::open_with(deps, chain, simulator).await.unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(actor.run(cancel.clone()));
        Self {
            l1: l1.clone(),
            handle,
            cancel,
            task,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the publisher stops")
            .unwrap()
            .unwrap();
    }

    /// Waits (bounded) until the publisher watches no tx.
    async fn until_idle(&self) {
        eventually("every tx ended", || self.handle.live_txs() == 0).await;
    }

    /// Waits until the publisher has looked at L1 `polls` more times.
    async fn polls(&self, polls: u32) {
        let from = self.l1.calls(Call::Latest);
        eventually("the publisher polls L1", || {
            self.l1.calls(Call::Latest) >= from + polls
        })
        .await;
    }
}

fn l1_at(timestamp: u64) -> Arc<FakeL1> {
    Arc::new(FakeL1::new(ROLLUP, timestamp))
}

/// Polls `condition` (bounded) until it holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn status(
    handle: &SubmissionHandle,
    what: &str,
    f: impl Fn(&SubmissionStatus) -> bool,
) -> SubmissionStatus {
    let mut watch = handle.watch();
    let status = tokio::time::timeout(PATIENCE, watch.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("never reached: {what}; last {:?}", handle.status()))
        .unwrap();
    status.clone()
}

async fn sent(handle: &SubmissionHandle) -> (Address, u64, B256) {
    match status(handle, "sent", |s| {
        matches!(s, SubmissionStatus::Sent { .. })
    })
    .await
    {
        SubmissionStatus::Sent {
            key,
            nonce,
            tx_hash,
        } => (key, nonce, tx_hash),
        _ => unreachable!(),
    }
}

async fn outcome(handle: SubmissionHandle) -> SubmissionOutcome {
    tokio::time::timeout(PATIENCE, handle.outcome())
        .await
        .expect("the submission ends")
}

/// Mines the raw tx with `hash` (as the fake saw it) 2 s after the latest block, then lets L1
/// run past the window with blocks on top: a mined propose lands.
fn mine_and_close(l1: &FakeL1, hash: B256) {
    let raw = l1
        .sent()
        .into_iter()
        .find(|sent| sent.hash == hash)
        .expect("broadcast")
        .raw;
    l1.mine(&raw, E, true);
    while l1.state().timestamp + E < WINDOW_END + E {
        l1.advance(E);
    }
}

/// Mines `hash`, lets the window close, and checks the request landed; stops the publisher.
async fn lands(h: Harness, handle: SubmissionHandle, hash: B256) {
    mine_and_close(&h.l1, hash);
    match outcome(handle).await {
        SubmissionOutcome::Landed(landed) => assert_eq!(landed.tx_hash, hash),
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

/// A signed attempt of `key` and the raw tx.
fn signed(
    key: &PrivateKeySigner,
    nonce: u64,
    kind: AttemptKind,
    max_fee_gwei: u128,
    at: u64,
    status: AttemptStatus,
) -> (Attempt, Vec<u8>) {
    let body = match kind {
        AttemptKind::Propose => TxBody {
            chain_id: 31_337,
            nonce,
            to: ROLLUP,
            input: crate::simulator::propose_calldata(&bundle(1, SLOT)),
            gas_limit: 600_000,
        },
        AttemptKind::Cancel => TxBody::cancel(31_337, nonce, key.address()),
    };
    let fees = Fees {
        max_fee_per_gas: max_fee_gwei * GWEI,
        max_priority_fee_per_gas: GWEI,
    };
    let tx = sign(key, &body, fees).unwrap();
    let attempt = Attempt {
        kind,
        hash: tx.hash,
        max_fee_per_gas: u64::try_from(fees.max_fee_per_gas).unwrap(),
        max_priority_fee_per_gas: u64::try_from(fees.max_priority_fee_per_gas).unwrap(),
        gas_limit: body.gas_limit,
        signed_at_l1: at,
        status,
    };
    (attempt, tx.raw)
}

/// Writes a record of slot `slot` holding `attempts` to the store in `dir` (as a publisher that
/// stopped would have left it).
fn stored(
    dir: &Path,
    key: &PrivateKeySigner,
    nonce: u64,
    slot: Slot,
    state: TxState,
    attempts: &[(Attempt, Vec<u8>)],
) {
    let store = TxStore::open(dir).unwrap();
    let record = TxRecord {
        id: store.next_id(),
        key: key.address(),
        nonce,
        checkpoint_number: 1,
        target_slot: slot,
        last_valid_slot: slot,
        window_start: slot_clock().slot_start(slot).as_secs(),
        window_end: slot_clock().slot_start(slot.next()).as_secs(),
        state,
        attempts: attempts.iter().map(|(attempt, _)| *attempt).collect(),
        simulated_gas: 400_000,
        reorgs: 0,
        mined: None,
    };
    for (attempt, raw) in attempts {
        store.write(&record, Some((attempt.hash, raw))).unwrap();
    }
}

fn records(dir: &Path) -> Vec<TxRecord> {
    TxStore::open(dir).unwrap().records().unwrap()
}

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

/// A tx the node accepted right before a crash (the store still says "signed") and that was
/// mined while the node was down: its re-broadcast gets "nonce too low", yet it landed.
#[tokio::test]
async fn a_propose_mined_while_the_node_was_down_lands_instead_of_nonce_taken() {
    let dir = tempfile::tempdir().unwrap();
    let a = key(0);
    let propose = signed(&a, 0, AttemptKind::Propose, 10, T, AttemptStatus::Signed);
    stored(
        dir.path(),
        &a,
        0,
        SLOT,
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
    stored(
        dir.path(),
        &a,
        0,
        SLOT,
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
    stored(
        dir.path(),
        &a,
        0,
        SLOT,
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

/// Finished records are pruned as they finish, not only at the next start.
#[tokio::test]
async fn finished_records_are_pruned_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = l1_at(T);
    let config = PublisherConfig {
        keep_finished_records: 1,
        ..config()
    };
    let h = Harness::start(&l1, dir.path(), vec![key(0)], config, T + 1).await;
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
    let records = records(dir.path());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].state, TxState::Final(FinalState::NotSent));
}
