//! One propose request, from enqueue to outcome: wait for the send time, simulate against real L1
//! at the target slot's start, sign and persist, send (rotating keys on refusal), then hand the
//! record to the monitor.

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, Bytes};
use tandem_l1::ProposeBundle;
use tandem_proto::time::{Slot, Timestamp};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    chain::{Broadcast, Refusal},
    context::Shared,
    error::PublisherError,
    fees::{self, FeeEstimate, GasLimit, expected_price, initial_fees},
    lifecycle::{window_closed, window_reached},
    monitor,
    record::{AttemptKind, AttemptStatus, FinalState, TxRecord, TxState},
    revert::Revert,
    schedule::{self, L1Head, SendSchedule, SendTime},
    signing::TxBody,
};

/// Highest gas limit of one tx (EIP-7825).
pub const MAX_TX_GAS_LIMIT: u64 = 1 << 24;

/// First sends of one key refused as "nonce too low" (the nonce moved on since it was read)
/// before the next key is tried.
const NONCE_TOO_LOW_RETRIES: u32 = 3;

/// A landed propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// The mined tx.
    pub tx_hash: B256,
    /// Its L1 block.
    pub block_number: u64,
    /// That block's timestamp.
    pub block_timestamp: u64,
    /// From the target slot's start to that block.
    pub inclusion_delay: Duration,
    /// Gas used.
    pub gas_used: u64,
    /// Effective gas price, wei.
    pub effective_gas_price: u128,
}

/// Why a propose was never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulationDrop {
    /// The contract would revert with this error.
    Revert(Revert),
    /// The call would revert with data that is not one of the contract's errors.
    UnknownRevert(Bytes),
    /// The propose needs more gas than one tx may carry (EIP-7825).
    GasAboveTxCap {
        /// Simulated gas plus the 63/64 reserve.
        needed: u64,
        /// The per-tx gas limit.
        cap: u64,
    },
}

/// Why no key could send a propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The L1 node refused the last key's tx.
    Refused(Refusal),
    /// The last key could not sign the tx (the error is logged).
    Signing,
    /// The last key has no nonce left.
    NoNonce,
}

/// How a submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmissionOutcome {
    /// Mined with the `CheckpointProposed` event and canonical when its window closed.
    Landed(Landed),
    /// The send-time simulation says it would revert: never sent.
    DroppedAtSimulation(SimulationDrop),
    /// Its window closed before it could be sent.
    Expired,
    /// Mined without the event (reverted on chain).
    Reverted {
        /// The mined tx.
        tx_hash: B256,
    },
    /// Not mined in its window; a cancel took the nonce.
    Cancelled,
    /// Not mined in its window, and the cancel was not mined either; the nonce was given back.
    NotMined,
    /// Mined, then reorged out when it could no longer be sent again.
    Lost,
    /// The nonce was taken by a tx the publisher did not send.
    NonceTaken,
    /// Every publisher key's send was refused.
    SendFailed {
        /// What happened to the last key tried.
        reason: SendFailure,
    },
    /// The publisher was interrupted; a sent tx stays in the store and is tracked after restart.
    Interrupted,
}

impl SubmissionOutcome {
    /// Label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Landed(_) => "landed",
            Self::DroppedAtSimulation(_) => "dropped_at_simulation",
            Self::Expired => "expired",
            Self::Reverted { .. } => "reverted",
            Self::Cancelled => "cancelled",
            Self::NotMined => "not_mined",
            Self::Lost => "lost",
            Self::NonceTaken => "nonce_taken",
            Self::SendFailed { .. } => "send_failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Where a submission stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmissionStatus {
    /// Waiting for its send time.
    Scheduled,
    /// Being simulated against L1.
    Simulating,
    /// Sent (or re-sent, or replaced) as this tx.
    Sent {
        /// The sending key.
        key: Address,
        /// Its nonce.
        nonce: u64,
        /// The newest attempt.
        tx_hash: B256,
    },
    /// Mined; watched for reorgs until its window closes.
    Mined {
        /// The mined tx.
        tx_hash: B256,
        /// Its L1 block.
        block_number: u64,
    },
    /// Finished.
    Done(SubmissionOutcome),
}

/// A queued propose. Await [`SubmissionHandle::outcome`] or drop it: the submission goes on.
#[derive(Debug, Clone)]
pub struct SubmissionHandle {
    status: watch::Receiver<SubmissionStatus>,
}

impl SubmissionHandle {
    pub(crate) fn new(status: watch::Receiver<SubmissionStatus>) -> Self {
        Self { status }
    }

    /// The current status.
    pub fn status(&self) -> SubmissionStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<SubmissionStatus> {
        self.status.clone()
    }

    /// Waits for the outcome (`Interrupted` if the publisher stopped without one).
    pub async fn outcome(mut self) -> SubmissionOutcome {
        match self
            .status
            .wait_for(|status| matches!(status, SubmissionStatus::Done(_)))
            .await
        {
            Ok(status) => match &*status {
                SubmissionStatus::Done(outcome) => outcome.clone(),
                _ => SubmissionOutcome::Interrupted,
            },
            Err(_) => SubmissionOutcome::Interrupted,
        }
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) bundle: ProposeBundle,
    pub(crate) checkpoint_number: u64,
    pub(crate) target: Slot,
    pub(crate) last_valid: Slot,
}

struct ChainHead<'a>(&'a Shared);

impl L1Head for ChainHead<'_> {
    async fn latest_timestamp(&self) -> Result<u64, PublisherError> {
        Ok(self.0.chain.latest_block().await?.timestamp)
    }
}

/// Runs a new request to its outcome. `Err` only for a broken store (fatal).
pub(crate) async fn run(
    shared: Arc<Shared>,
    request: Request,
    status: watch::Sender<SubmissionStatus>,
    cancel: CancellationToken,
) -> Result<SubmissionOutcome, PublisherError> {
    let window_start = shared.slot_clock.slot_start(request.target).as_secs();
    let window_end = shared
        .slot_clock
        .slot_start(request.last_valid.next())
        .as_secs();
    let schedule = SendSchedule {
        target_start: Timestamp::from_secs(window_start),
        l1_slot: shared.slot_clock.l1_slot_duration(),
        poll_interval: shared.config.send_wait_poll_interval,
        wait_timeout: shared
            .config
            .send_wait_timeout_for(shared.slot_clock.l1_slot_duration()),
    };
    let send_time = match schedule::wait_for_send_time(
        shared.clock.as_ref(),
        &ChainHead(&shared),
        schedule,
        &cancel,
    )
    .await
    {
        Ok(send_time) => send_time,
        Err(_) => return Ok(SubmissionOutcome::Interrupted),
    };
    tracing::debug!(target: "publisher", slot = %request.target, reason = send_time.as_str(), "send time");
    status.send_replace(SubmissionStatus::Simulating);

    // Simulate at the target slot's start, on real L1 (no pipelining overrides). Transport
    // trouble is retried until the window closes; a revert drops the request.
    let mut probe = TxRecord {
        id: 0,
        key: Address::ZERO,
        nonce: 0,
        checkpoint_number: request.checkpoint_number,
        target_slot: request.target,
        last_valid_slot: request.last_valid,
        window_start,
        window_end,
        state: TxState::Pending,
        attempts: Vec::new(),
        simulated_gas: 0,
        reorgs: 0,
        mined: None,
    };
    let l1_slot = shared.l1_slot_secs();
    let simulated = loop {
        let latest = match shared.chain.latest_block().await {
            Ok(latest) => latest,
            Err(error) => {
                tracing::warn!(target: "publisher", %error, "reading the L1 head before simulating");
                if past_window(&shared, &probe) {
                    return Ok(expired(&probe));
                }
                if schedule::nap(shared.config.send_wait_poll_interval, &cancel)
                    .await
                    .is_err()
                {
                    return Ok(SubmissionOutcome::Interrupted);
                }
                continue;
            }
        };
        if window_closed(&probe, latest.timestamp, l1_slot) {
            return Ok(expired(&probe));
        }
        let at = window_start.max(latest.timestamp.saturating_add(1));
        tracing::trace!(target: "publisher", slot = %request.target, at, block = latest.number,
            "simulating the propose");
        // Pinned to the block just read (by hash): the check and its window test see one state.
        match shared
            .chain
            .simulate_propose(&request.bundle, at, latest)
            .await
        {
            Ok(simulated) => break simulated,
            Err(PublisherError::Revert(revert)) => {
                crate::metrics::dropped_at_simulation(revert.name());
                tracing::warn!(target: "publisher", slot = %request.target,
                    checkpoint = request.checkpoint_number, reason = %revert,
                    "propose dropped: it would revert on L1");
                return Ok(SubmissionOutcome::DroppedAtSimulation(
                    SimulationDrop::Revert(revert),
                ));
            }
            Err(PublisherError::UnknownRevert(data)) => {
                crate::metrics::dropped_at_simulation("unknown");
                tracing::warn!(target: "publisher", slot = %request.target, %data,
                    "propose dropped: it would revert on L1 with undecoded data");
                return Ok(SubmissionOutcome::DroppedAtSimulation(
                    SimulationDrop::UnknownRevert(data),
                ));
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(target: "publisher", %error, "send-time simulation failed; retrying");
                if schedule::nap(shared.config.send_wait_poll_interval, &cancel)
                    .await
                    .is_err()
                {
                    return Ok(SubmissionOutcome::Interrupted);
                }
            }
            Err(error) => {
                // A definite answer that is no revert (e.g. the block just read is gone): the
                // next try reads a newer block, until the window closes.
                tracing::error!(target: "publisher", %error, "send-time simulation failed; retrying on a newer block");
                if schedule::nap(shared.config.send_wait_poll_interval, &cancel)
                    .await
                    .is_err()
                {
                    return Ok(SubmissionOutcome::Interrupted);
                }
            }
        }
    };
    probe.simulated_gas = simulated.gas_used;
    let gas_limit = match fees::gas_limit(
        simulated.gas_used,
        shared.config.gas_limit_buffer_percent,
        MAX_TX_GAS_LIMIT,
    ) {
        GasLimit::Buffered(limit) => limit,
        GasLimit::Trimmed(limit) => {
            tracing::warn!(target: "publisher", slot = %request.target, gas_used = simulated.gas_used,
                gas_limit = limit, "the gas buffer is trimmed to the per-tx gas limit");
            limit
        }
        GasLimit::TooHigh { needed } => {
            crate::metrics::dropped_at_simulation("GasAboveTxCap");
            tracing::warn!(target: "publisher", slot = %request.target, needed,
                cap = MAX_TX_GAS_LIMIT, "propose dropped: it needs more gas than one tx may carry");
            return Ok(SubmissionOutcome::DroppedAtSimulation(
                SimulationDrop::GasAboveTxCap {
                    needed,
                    cap: MAX_TX_GAS_LIMIT,
                },
            ));
        }
    };
    let calldata = crate::simulator::propose_calldata(&request.bundle);

    let send = FirstSend {
        template: probe,
        calldata,
        gas_limit,
        send_time,
    };
    let record = match send_first(&shared, send, &status, &cancel).await? {
        Ok(record) => record,
        Err(outcome) => return Ok(outcome),
    };
    monitor::watch(shared, record, status, cancel, false).await
}

/// Whether the local clock says the window is over (used when L1 cannot be read).
fn past_window(shared: &Shared, record: &TxRecord) -> bool {
    shared.clock.now() >= Timestamp::from_secs(record.window_end)
}

fn expired(record: &TxRecord) -> SubmissionOutcome {
    tracing::warn!(target: "publisher", slot = %record.target_slot,
        checkpoint = record.checkpoint_number, "target slot ended before the propose could be sent");
    SubmissionOutcome::Expired
}

/// The first attempt of a propose, ready to sign.
struct FirstSend {
    /// The record without key, nonce and attempts.
    template: TxRecord,
    calldata: Bytes,
    gas_limit: u64,
    /// Why the schedule let it go.
    send_time: SendTime,
}

/// What L1 says right before a first send.
struct Prepared {
    l1_now: u64,
    pending_nonce: u64,
    estimate: FeeEstimate,
}

/// Reads what a first send with `key` needs. L1 read errors are retried until the window closes
/// (they say nothing about the key); the send waits while L1 time is behind the window — the
/// next block could come before the target slot and the propose would revert there. A schedule
/// that already found the L1 slot before `T` missed allows that one slot: the next block is
/// stamped `T` or later.
async fn prepare(
    shared: &Shared,
    send: &FirstSend,
    key: Address,
    cancel: &CancellationToken,
) -> Result<Result<Prepared, SubmissionOutcome>, PublisherError> {
    let l1_slot = shared.l1_slot_secs();
    let missed_allowance = match send.send_time {
        SendTime::PreviousBlockMissed => l1_slot,
        SendTime::InsideTargetSlot | SendTime::AfterPreviousBlock => 0,
    };
    loop {
        if cancel.is_cancelled() {
            return Ok(Err(SubmissionOutcome::Interrupted));
        }
        let read = async {
            let latest = shared.chain.latest_block().await?;
            let pending_nonce = shared.chain.pending_nonce(key).await?;
            let estimate = shared.chain.fee_estimate().await?;
            Ok::<_, PublisherError>((latest, pending_nonce, estimate))
        };
        match read.await {
            Ok((latest, pending_nonce, estimate)) => {
                if window_closed(&send.template, latest.timestamp, l1_slot) {
                    return Ok(Err(expired(&send.template)));
                }
                let l1_now = latest.timestamp;
                if window_reached(
                    &send.template,
                    l1_now.saturating_add(missed_allowance),
                    l1_slot,
                ) {
                    return Ok(Ok(Prepared {
                        l1_now,
                        pending_nonce,
                        estimate,
                    }));
                }
                tracing::debug!(target: "publisher", slot = %send.template.target_slot, l1_now,
                    "L1 time is behind the target slot; waiting for its next block");
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::warn!(target: "publisher", %key, %error, "reading L1 before sending; retrying");
                if past_window(shared, &send.template) {
                    return Ok(Err(expired(&send.template)));
                }
            }
        }
        if schedule::nap(shared.config.send_wait_poll_interval, cancel)
            .await
            .is_err()
        {
            return Ok(Err(SubmissionOutcome::Interrupted));
        }
    }
}

/// Ends a first attempt the node refused: nothing of it is in a mempool, the nonce goes back.
async fn not_sent(shared: &Shared, record: &mut TxRecord) -> Result<(), PublisherError> {
    if let Some(attempt) = record.attempts.first_mut() {
        attempt.status = AttemptStatus::Refused;
    }
    record.state = TxState::Final(FinalState::NotSent);
    shared.persist(record, None).await?;
    shared.ledger().release(record.key, record.nonce);
    shared.live_ended();
    shared.prune().await
}

/// Signs, persists and sends the first attempt, trying keys in the ledger's order; the next key
/// is tried only when the node refuses a send. Returns the live record, or the outcome when it
/// could not be sent.
async fn send_first(
    shared: &Shared,
    send: FirstSend,
    status: &watch::Sender<SubmissionStatus>,
    cancel: &CancellationToken,
) -> Result<Result<TxRecord, SubmissionOutcome>, PublisherError> {
    let keys = shared.ledger().key_order();
    let mut last_failure = SendFailure::NoNonce;
    for (tried, key) in keys.into_iter().enumerate() {
        if tried > 0 {
            crate::metrics::key_rotation();
            tracing::info!(target: "publisher", %key, reason = ?last_failure, "trying the next publisher key");
        }
        // Prepared again (same key) when the node says the nonce just read is already used.
        let mut nonce_too_low = 0;
        loop {
            tracing::trace!(target: "publisher", %key, "preparing the send");
            let prepared = match prepare(shared, &send, key, cancel).await? {
                Ok(prepared) => prepared,
                Err(outcome) => return Ok(Err(outcome)),
            };
            let Some(nonce) = shared.ledger().allocate(key, prepared.pending_nonce) else {
                tracing::error!(target: "publisher", %key, "no nonce left for this key");
                last_failure = SendFailure::NoNonce;
                break;
            };
            let mut record = TxRecord {
                id: shared.store.next_id(),
                key,
                nonce,
                ..send.template.clone()
            };
            let body = TxBody {
                chain_id: shared.chain_id,
                nonce,
                to: shared.chain.rollup(),
                input: send.calldata.clone(),
                gas_limit: send.gas_limit,
            };
            let fees = initial_fees(prepared.estimate, &shared.config);
            let balance_price = expected_price(fees, prepared.estimate);
            let raw = match shared
                .add_attempt(
                    &mut record,
                    AttemptKind::Propose,
                    &body,
                    fees,
                    prepared.l1_now,
                )
                .await
            {
                Ok(raw) => raw,
                Err(error) => {
                    shared.ledger().release(key, nonce);
                    if error.is_fatal() {
                        return Err(error);
                    }
                    tracing::error!(target: "publisher", %key, %error, "cannot sign with this key");
                    last_failure = SendFailure::Signing;
                    break;
                }
            };
            shared.live_started();
            let hash = record.attempts[0].hash;
            match shared.broadcast(&mut record, 0, &raw).await? {
                Broadcast::Refused(Refusal::NonceTooLow)
                    if nonce_too_low < NONCE_TOO_LOW_RETRIES =>
                {
                    // The key's nonce moved on since it was read (another sender?): read again.
                    nonce_too_low += 1;
                    not_sent(shared, &mut record).await?;
                    if schedule::nap(shared.config.send_wait_poll_interval, cancel)
                        .await
                        .is_err()
                    {
                        return Ok(Err(SubmissionOutcome::Interrupted));
                    }
                }
                Broadcast::Refused(refusal) if shared.ledger().has_higher(key, nonce) => {
                    // A concurrent propose of this key holds a higher nonce that waits for this
                    // one: giving this nonce back would strand it. The record keeps the nonce;
                    // the monitor retries the propose with bumped fees and, if the window closes
                    // first, fills the nonce with a cancel.
                    tracing::warn!(target: "publisher", %key, nonce, %refusal,
                        "first send refused while a higher nonce of the key waits: keeping the nonce");
                    return Ok(Ok(record));
                }
                Broadcast::Refused(refusal) => {
                    not_sent(shared, &mut record).await?;
                    if refusal == Refusal::InsufficientFunds {
                        // No accepted send will read this key's balance again: report it now,
                        // so its runway gauge (and the operator's alert) shows the empty key.
                        shared
                            .check_balance(key, record.simulated_gas, balance_price)
                            .await;
                    }
                    last_failure = SendFailure::Refused(refusal);
                    break;
                }
                result @ (Broadcast::Accepted | Broadcast::Unreachable(_)) => {
                    tracing::info!(target: "publisher", slot = %record.target_slot,
                        checkpoint = record.checkpoint_number, %key, nonce, tx = %hash,
                        max_fee_per_gas = fees.max_fee_per_gas, gas_limit = send.gas_limit,
                        accepted = result == Broadcast::Accepted, "propose sent");
                    if result == Broadcast::Accepted {
                        status.send_replace(SubmissionStatus::Sent {
                            key,
                            nonce,
                            tx_hash: hash,
                        });
                        shared
                            .check_balance(key, record.simulated_gas, balance_price)
                            .await;
                    }
                    return Ok(Ok(record));
                }
            }
        }
    }
    tracing::error!(target: "publisher", slot = %send.template.target_slot, reason = ?last_failure,
        "every publisher key failed to send the propose");
    Ok(Err(SubmissionOutcome::SendFailed {
        reason: last_failure,
    }))
}
