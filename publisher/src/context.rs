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
    chain::{Broadcast, L1Chain, Refusal},
    config::PublisherConfig,
    error::PublisherError,
    fees::Fees,
    ledger::Ledger,
    lifecycle::Timing,
    record::{Attempt, AttemptKind, AttemptStatus, TxRecord},
    signing::{PublisherKeys, TxBody, sign},
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
/// it is broadcast), as soon as the L1 node accepted a broadcast (before that is written down),
/// and once the acceptance is persisted. Crash tests stop the process at these points; an
/// operator can audit every tx that leaves the node.
pub trait SendHooks: Send + Sync + 'static {
    /// A new attempt was written to the store and is about to be broadcast.
    fn persisted(&self, _tx: &SentTx) {}
    /// The L1 node accepted a broadcast; the store still says "signed".
    fn accepted(&self, _tx: &SentTx) {}
    /// The L1 node accepted a broadcast and the store says so.
    fn broadcast(&self, _tx: &SentTx) {}
}

pub(crate) struct Shared {
    pub(crate) chain: Arc<dyn L1Chain>,
    pub(crate) chain_id: u64,
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
        let l1_slot = self.slot_clock.l1_slot_duration();
        Timing {
            l1_slot: self.l1_slot_secs(),
            stall: c.stall_time.as_secs().max(1),
            max_speed_ups: c.max_speed_ups,
            unseen_dropped: c.tx_unseen_considered_dropped.as_secs().max(1),
            unseen_dropped_propose: c
                .propose_unseen_considered_dropped_for(l1_slot)
                .as_secs()
                .max(1),
            cancel_final: c.cancel_final_timeout.as_secs().max(1),
            confirmations: c.confirmations.max(1),
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
        .map_err(PublisherError::StoreTask)?
    }

    /// Deletes finished records beyond `keep_finished_records`, so the store stays bounded while
    /// the node runs.
    pub(crate) async fn prune(&self) -> Result<(), PublisherError> {
        let store = self.store.clone();
        let keep = self.config.keep_finished_records;
        let pruned = tokio::task::spawn_blocking(move || store.prune_finished(keep))
            .await
            .map_err(PublisherError::StoreTask)??;
        if pruned > 0 {
            tracing::debug!(target: "publisher", pruned, "finished tx records pruned");
        }
        Ok(())
    }

    pub(crate) async fn raw_tx(&self, hash: B256) -> Result<Vec<u8>, PublisherError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.raw_tx(hash))
            .await
            .map_err(PublisherError::StoreTask)?
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
        // The settings keep every fee (the cancel ceiling included) within u64.
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
        if let Err(error) = self
            .persist(record, Some((signed.hash, signed.raw.clone())))
            .await
        {
            record.attempts.pop();
            return Err(error);
        }
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
        let attempt = record
            .attempts
            .get_mut(index)
            .ok_or(PublisherError::Unexpected("no such attempt"))?;
        let seen = *attempt;
        if result == Broadcast::Accepted
            && let Some(hooks) = &self.hooks
        {
            hooks.accepted(&Self::sent(record, &seen));
        }
        let attempt = &mut record.attempts[index];
        let status = match &result {
            Broadcast::Accepted => Some(AttemptStatus::Broadcast),
            // A tx whose fate is unknown (signed before a crash) may have been mined meanwhile:
            // "nonce too low" then means it is on chain, and its receipt decides.
            Broadcast::Refused(Refusal::NonceTooLow) if attempt.status == AttemptStatus::Signed => {
                None
            }
            Broadcast::Refused(_) => Some(AttemptStatus::Refused),
            Broadcast::Unreachable(_) => None,
        };
        // Once accepted, an attempt may sit in some mempool even if a node later drops or refuses
        // it: it stays `Broadcast` (so it is cancelled, never assumed gone). A refused attempt that
        // a node accepts later (the base fee dropped) becomes `Broadcast`.
        let changed = status.is_some_and(|status| {
            status != attempt.status && attempt.status != AttemptStatus::Broadcast
        });
        if let (true, Some(status)) = (changed, status) {
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
            Broadcast::Refused(refusal) => {
                crate::metrics::send_failure(refusal.as_str());
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    tx = %attempt.hash, %refusal, "L1 node refused the tx");
            }
            Broadcast::Unreachable(why) => {
                crate::metrics::send_failure(why.as_str());
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    tx = %attempt.hash, reason = why.as_str(),
                    "no answer from the L1 node to a broadcast; retrying");
            }
        }
        Ok(result)
    }

    /// Reads the balance after a send and reports the runway at `expected_price` (what a
    /// propose pays per gas now, not its cap).
    pub(crate) async fn check_balance(&self, address: Address, gas: u64, expected_price: u128) {
        match self.chain.balance(address).await {
            Ok(wei) => {
                self.ledger().set_balance(address, wei);
                let runway = crate::fees::runway(wei, gas, expected_price);
                let low = runway < u128::from(self.config.low_balance_runway_checkpoints);
                crate::metrics::balance(address, wei, runway, low);
                if low {
                    tracing::warn!(target: "publisher", key = %address, balance_wei = wei,
                        runway_checkpoints = u64::try_from(runway).unwrap_or(u64::MAX),
                        "publisher key is running out of ETH: top it up");
                }
            }
            Err(error) => {
                tracing::warn!(target: "publisher", key = %address, %error, "reading the publisher balance");
            }
        }
    }
}
