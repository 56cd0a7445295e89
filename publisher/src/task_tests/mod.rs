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

/// [`stored`] for nonce 0 and [`SLOT`].
fn stored_for_slot(
    dir: &Path,
    key: &PrivateKeySigner,
    state: TxState,
    attempts: &[(Attempt, Vec<u8>)],
) {
    stored(dir, key, 0, SLOT, state, attempts);
}

fn records(dir: &Path) -> Vec<TxRecord> {
    TxStore::open(dir).unwrap().records().unwrap()
}

mod first_send;
mod resumed;
mod watching;
