//! What every submission task shares: L1 access, keys, the store, the nonce ledger, settings and
//! clocks, plus the small operations they all need (persist, sign-and-persist, broadcast).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use alloy::primitives::{Address, B256};
use tandem_proto::time::{Clock, Slot, SlotClock};

use crate::{
    chain::{Broadcast, Chain},
    config::PublisherConfig,
    error::PublisherError,
    fees::Fees,
    ledger::Ledger,
    lifecycle::Timing,
    record::{Attempt, AttemptKind, AttemptStatus, TxRecord},
    signing::{PublisherKeys, TxBody, sign},
    simulator::Simulator,
    store::TxStore,
};

/// A signed tx the publisher persisted or broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentTx {
    /// The sending key.
    pub key: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Tx hash.
    pub hash: B256,
    /// Propose or cancel.
    pub kind: AttemptKind,
    /// The checkpoint its record proposes.
    pub checkpoint_number: u64,
}

/// Observers of the send path, called synchronously: after a new signed tx is persisted (before
/// it is broadcast) and after the L1 node accepted a broadcast. Crash tests stop the process at
/// these points; an operator can audit every tx that leaves the node.
pub trait SendHooks: Send + Sync + 'static {
    /// A new attempt was written to the store and is about to be broadcast.
    fn persisted(&self, _tx: &SentTx) {}
    /// The L1 node accepted a broadcast.
    fn broadcast(&self, _tx: &SentTx) {}
}

pub(crate) struct Shared {
    pub(crate) chain: Chain,
    pub(crate) chain_id: u64,
    pub(crate) simulator: Simulator,
    pub(crate) keys: PublisherKeys,
    pub(crate) store: Arc<TxStore>,
    pub(crate) ledger: Mutex<Ledger>,
    /// Target slots with a submission queued or in flight.
    pub(crate) active_slots: Mutex<HashSet<Slot>>,
    pub(crate) config: PublisherConfig,
    pub(crate) slot_clock: SlotClock,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hooks: Option<Arc<dyn SendHooks>>,
    /// Records being watched.
    pub(crate) live: Arc<AtomicUsize>,
}

/// A poisoned lock only means another task panicked while holding it; the data (sets of numbers)
/// stays consistent, so keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn live_started(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
        crate::metrics::in_flight(1.0);
    }

    pub(crate) fn live_ended(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        crate::metrics::in_flight(-1.0);
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    pub(crate) fn active_slots(&self) -> MutexGuard<'_, HashSet<Slot>> {
        lock(&self.active_slots)
    }

    pub(crate) fn l1_slot_secs(&self) -> u64 {
        self.slot_clock.l1_slot_duration().as_secs().max(1)
    }

    pub(crate) fn timing(&self) -> Timing {
        let c = &self.config;
        Timing {
            l1_slot: self.l1_slot_secs(),
            stall: c.stall_time.as_secs().max(1),
            max_speed_ups: c.max_speed_ups,
            unseen_dropped: c.tx_unseen_considered_dropped.as_secs().max(1),
            cancel_final: c.cancel_final_timeout.as_secs().max(1),
        }
    }

    /// Writes `record` (and a new raw tx) durably, off the async workers.
    pub(crate) async fn persist(
        &self,
        record: &TxRecord,
        new_raw_tx: Option<(B256, Vec<u8>)>,
    ) -> Result<(), PublisherError> {
        let store = self.store.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || {
            store.write(
                &record,
                new_raw_tx
                    .as_ref()
                    .map(|(hash, raw)| (*hash, raw.as_slice())),
            )
        })
        .await
        .map_err(|error| PublisherError::StoreTask(error.to_string()))?
    }

    pub(crate) async fn raw_tx(&self, hash: B256) -> Result<Vec<u8>, PublisherError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.raw_tx(hash))
            .await
            .map_err(|error| PublisherError::StoreTask(error.to_string()))?
    }

    fn sent(record: &TxRecord, attempt: &Attempt) -> SentTx {
        SentTx {
            key: record.key,
            nonce: record.nonce,
            hash: attempt.hash,
            kind: attempt.kind,
            checkpoint_number: record.checkpoint_number,
        }
    }

    /// Signs a new attempt of `record`, appends it and persists both (fsynced) before returning
    /// the raw tx to broadcast.
    pub(crate) async fn add_attempt(
        &self,
        record: &mut TxRecord,
        kind: AttemptKind,
        body: &TxBody,
        fees: Fees,
        l1_now: u64,
    ) -> Result<Vec<u8>, PublisherError> {
        let key = self.keys.get(record.key).ok_or(PublisherError::Unexpected(
            "a record's key is not configured",
        ))?;
        let signed = sign(key, body, fees)?;
        let as_u64 = |fee: u128| {
            u64::try_from(fee).map_err(|_| PublisherError::Unexpected("fee above u64 wei"))
        };
        let attempt = Attempt {
            kind,
            hash: signed.hash,
            max_fee_per_gas: as_u64(fees.max_fee_per_gas)?,
            max_priority_fee_per_gas: as_u64(fees.max_priority_fee_per_gas)?,
            gas_limit: body.gas_limit,
            signed_at_l1: l1_now,
            status: AttemptStatus::Signed,
        };
        record.attempts.push(attempt);
        self.persist(record, Some((signed.hash, signed.raw.clone())))
            .await?;
        if let Some(hooks) = &self.hooks {
            hooks.persisted(&Self::sent(record, &attempt));
        }
        Ok(signed.raw)
    }

    /// Broadcasts attempt `index` of `record` and records what the node said (persisted when the
    /// status changes).
    pub(crate) async fn broadcast(
        &self,
        record: &mut TxRecord,
        index: usize,
        raw: &[u8],
    ) -> Result<Broadcast, PublisherError> {
        let result = self.chain.broadcast(raw).await;
        let status = match &result {
            Broadcast::Accepted => AttemptStatus::Broadcast,
            Broadcast::Refused(_) => AttemptStatus::Refused,
            Broadcast::Unreachable(_) => AttemptStatus::Signed,
        };
        let attempt = record
            .attempts
            .get_mut(index)
            .ok_or(PublisherError::Unexpected("no such attempt"))?;
        // Once accepted, an attempt may sit in some mempool even if a node later drops or refuses
        // it: it stays `Broadcast` (so it is cancelled, never assumed gone). A refused attempt that
        // a node accepts later (the base fee dropped) becomes `Broadcast`.
        let changed = attempt.status != status && attempt.status != AttemptStatus::Broadcast;
        if changed {
            attempt.status = status;
        }
        let attempt = *attempt;
        if changed {
            self.persist(record, None).await?;
        }
        match &result {
            Broadcast::Accepted => {
                if let Some(hooks) = &self.hooks {
                    hooks.broadcast(&Self::sent(record, &attempt));
                }
            }
            Broadcast::Refused(reason) => {
                crate::metrics::send_failure("refused");
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    tx = %attempt.hash, %reason, "L1 node refused the tx");
            }
            Broadcast::Unreachable(reason) => {
                crate::metrics::send_failure("unreachable");
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    tx = %attempt.hash, %reason, "no answer from the L1 node to a broadcast; retrying");
            }
        }
        Ok(result)
    }

    /// Reads the balance after a send and reports the runway at `fee_per_gas`.
    pub(crate) async fn check_balance(&self, address: Address, gas: u64, fee_per_gas: u128) {
        match self.chain.balance(address).await {
            Ok(balance) => {
                let wei = u128::try_from(balance).unwrap_or(u128::MAX);
                self.ledger().set_balance(address, wei);
                let runway = crate::fees::runway(wei, gas, fee_per_gas);
                let low = runway < u128::from(self.config.low_balance_runway_checkpoints);
                crate::metrics::balance(address, wei, runway, low);
                if low {
                    tracing::warn!(target: "publisher", key = %address, balance_wei = wei,
                        runway_checkpoints = runway as u64,
                        "publisher key is running out of ETH: top it up");
                }
            }
            Err(error) => {
                tracing::warn!(target: "publisher", key = %address, %error, "reading the publisher balance");
            }
        }
    }
}
