//! Fakes behind the sequencer's traits (one file per trait family), the test clock, a
//! fixture wiring them, and a local metrics recorder.

mod chain;
mod clock;
mod fixture;
mod l1;
mod net;
mod world;

use std::{cell::RefCell, collections::HashMap, time::Duration};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tandem_proto::{
    Address, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ConsensusWindows, PipeliningMode, SequencerBudgets, SlotClock, Timestamp, Timetable},
};
use tandem_state::ChainSpec;
use tokio::sync::broadcast;

pub(crate) use chain::FakeChain;
pub(crate) use clock::TestClock;
pub(crate) use fixture::Fixture;
pub(crate) use l1::{FakeL1, fee_params};
pub(crate) use net::{FakeGossip, FakePublisher, RecordingCommittee};
pub(crate) use world::FakeWorld;

use crate::SequencerEvent;

pub(crate) const CHAIN_ID: u64 = 31_337;
/// The ci profile: S 12 s, E 1 s, D 1 s, 4 slots per epoch.
pub(crate) const S: Duration = Duration::from_secs(12);
pub(crate) const E: Duration = Duration::from_secs(1);
pub(crate) const D: Duration = Duration::from_secs(1);
pub(crate) const GENESIS: Timestamp = Timestamp(1_000_000_000);
pub(crate) const FEE: u128 = 10;

pub(crate) fn slot_clock() -> SlotClock {
    SlotClock::new(GENESIS, S, E, 4).unwrap()
}

pub(crate) fn timetable(mode: PipeliningMode) -> Timetable {
    let windows = ConsensusWindows::new(slot_clock(), D, mode, D);
    Timetable::new(windows, SequencerBudgets::default()).unwrap()
}

pub(crate) fn domain() -> SigningDomain {
    SigningDomain {
        chain_id: CHAIN_ID,
        rollup: Address::repeat_byte(0xaa),
    }
}

pub(crate) fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32]).unwrap()
}

pub(crate) fn user(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[0x50 + i; 32]).unwrap()
}

pub(crate) fn spec() -> ChainSpec {
    ChainSpec {
        chain_id: CHAIN_ID,
        rollup_version: 1,
        genesis_allocation: (0..4).map(|i| (user(i).address(), 1u128 << 80)).collect(),
    }
}

pub(crate) fn transfer(user_index: u8, nonce: u64) -> RecoveredTx {
    transfer_paying(user_index, nonce, FEE)
}

/// A transfer offering `max_fee_per_mana` (below [`FEE`] it fails in the builder).
pub(crate) fn transfer_paying(user_index: u8, nonce: u64, max_fee_per_mana: u128) -> RecoveredTx {
    let tx = Tx::sign(
        TxPayload {
            chain_id: CHAIN_ID,
            nonce,
            to: Address::repeat_byte(0x77),
            amount: 1,
            max_fee_per_mana,
            mana_limit: tandem_state::TX_MANA,
        },
        &domain(),
        &user(user_index),
    );
    tandem_state::validate_stateless(tx, &domain()).unwrap()
}

/// Drains the events received so far.
pub(crate) fn drain(events: &mut broadcast::Receiver<SequencerEvent>) -> Vec<SequencerEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

/// A recorder for one test's metrics (`metrics::set_default_local_recorder` on the test's
/// thread: the unit tests run on a current-thread runtime), and its counters.
pub(crate) fn recorder() -> (DebuggingRecorder, Counters) {
    let recorder = DebuggingRecorder::new();
    let counters = Counters {
        snapshotter: recorder.snapshotter(),
        totals: RefCell::default(),
    };
    (recorder, counters)
}

/// A counter's name and its labels, sorted.
type CounterKey = (String, Vec<(String, String)>);

/// Counter totals of a [`DebuggingRecorder`] (its snapshots drain the counters: the totals
/// add them up).
pub(crate) struct Counters {
    snapshotter: Snapshotter,
    totals: RefCell<HashMap<CounterKey, u64>>,
}

impl Counters {
    fn total(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.borrow_mut();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            if let DebugValue::Counter(count) = value {
                let key = key.key();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                labels.sort();
                *totals.entry((key.name().to_owned(), labels)).or_default() += count;
            }
        }
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        wanted.sort();
        totals.get(&(name.to_owned(), wanted)).copied().unwrap_or(0)
    }
}

/// The value of counter `name` with exactly `labels` (0 when never touched).
pub(crate) fn counter(counters: &Counters, name: &str, labels: &[(&str, &str)]) -> u64 {
    counters.total(name, labels)
}
