//! One propose request, from enqueue to outcome: wait for the send time, simulate against real L1
//! at the target slot's start, sign and persist, send (rotating keys on refusal), then hand the
//! record to the monitor.

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, Bytes};
use tandem_l1::{ProposeBundle, RollupRevert};
use tandem_proto::time::{Slot, Timestamp};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    chain::Broadcast,
    context::Shared,
    error::PublisherError,
    fees::{self, initial_fees},
    lifecycle::window_closed,
    monitor,
    record::{AttemptKind, FinalState, TxRecord, TxState},
    schedule::{self, L1Head, SendSchedule},
    signing::TxBody,
};

/// Highest gas limit of one tx (EIP-7825).
pub const MAX_TX_GAS_LIMIT: u64 = 1 << 24;

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
    Revert(RollupRevert),
    /// The call would revert with data that is not one of the contract's errors.
    UnknownRevert(Bytes),
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
        /// The last refusal.
        reason: String,
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
            crate::metrics::outcome("expired");
            tracing::warn!(target: "publisher", slot = %request.target, "target slot ended before the propose could be sent");
            return Ok(SubmissionOutcome::Expired);
        }
        let at = window_start.max(latest.timestamp.saturating_add(1));
        tracing::trace!(target: "publisher", slot = %request.target, at, "simulating the propose");
        match shared
            .simulator
            .simulate_propose(&request.bundle, at, None)
            .await
        {
            Ok(simulated) => break simulated,
            Err(PublisherError::Revert(revert)) => {
                crate::metrics::dropped_at_simulation(crate::metrics::revert_name(&revert));
                crate::metrics::outcome("dropped_at_simulation");
                tracing::warn!(target: "publisher", slot = %request.target,
                    checkpoint = request.checkpoint_number, reason = %revert,
                    "propose dropped: it would revert on L1");
                return Ok(SubmissionOutcome::DroppedAtSimulation(
                    SimulationDrop::Revert(revert),
                ));
            }
            Err(PublisherError::UnknownRevert(data)) => {
                crate::metrics::dropped_at_simulation("unknown".to_string());
                crate::metrics::outcome("dropped_at_simulation");
                tracing::warn!(target: "publisher", slot = %request.target, %data,
                    "propose dropped: it would revert on L1 with undecoded data");
                return Ok(SubmissionOutcome::DroppedAtSimulation(
                    SimulationDrop::UnknownRevert(data),
                ));
            }
            Err(error) => {
                tracing::warn!(target: "publisher", %error, "send-time simulation failed; retrying");
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
    let gas_limit = fees::gas_limit(
        simulated.gas_used,
        shared.config.gas_limit_buffer_percent,
        MAX_TX_GAS_LIMIT,
    );
    let calldata = crate::simulator::propose_calldata(&request.bundle);

    let record = match send_first(&shared, probe, calldata, gas_limit, &status, &cancel).await? {
        Ok(record) => record,
        Err(outcome) => return Ok(outcome),
    };
    monitor::watch(shared, record, status, cancel, false).await
}

/// Signs, persists and sends the first attempt, trying keys in the ledger's order until one is
/// not refused. Returns the live record, or the outcome when no key could send.
async fn send_first(
    shared: &Shared,
    template: TxRecord,
    calldata: Bytes,
    gas_limit: u64,
    status: &watch::Sender<SubmissionStatus>,
    cancel: &CancellationToken,
) -> Result<Result<TxRecord, SubmissionOutcome>, PublisherError> {
    let keys = shared.ledger().key_order();
    let mut last_refusal = String::from("no key could be used");
    for (tried, key) in keys.into_iter().enumerate() {
        if cancel.is_cancelled() {
            return Ok(Err(SubmissionOutcome::Interrupted));
        }
        if tried > 0 {
            crate::metrics::key_rotation();
        }
        let prepared = async {
            let latest = shared.chain.latest_block().await?;
            let pending = shared.chain.pending_nonce(key).await?;
            let estimate = shared.chain.fee_estimate().await?;
            Ok::<_, PublisherError>((latest, pending, estimate))
        };
        tracing::trace!(target: "publisher", %key, "preparing the send");
        let (latest, pending, estimate) = match prepared.await {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(target: "publisher", %key, %error, "cannot prepare a send with this key");
                last_refusal = error.to_string();
                continue;
            }
        };
        let Some(nonce) = shared.ledger().allocate(key, pending) else {
            continue;
        };
        let mut record = TxRecord {
            id: shared.store.next_id(),
            key,
            nonce,
            ..template.clone()
        };
        let body = TxBody {
            chain_id: shared.chain_id,
            nonce,
            to: shared.chain.rollup,
            input: calldata.clone(),
            gas_limit,
        };
        let fees = initial_fees(estimate, &shared.config);
        let raw = match shared
            .add_attempt(
                &mut record,
                AttemptKind::Propose,
                &body,
                fees,
                latest.timestamp,
            )
            .await
        {
            Ok(raw) => raw,
            Err(error) => {
                shared.ledger().release(key, nonce);
                return Err(error);
            }
        };
        shared.live_started();
        match shared.broadcast(&mut record, 0, &raw).await? {
            Broadcast::Refused(reason) => {
                record.state = TxState::Final(FinalState::NotSent);
                shared.persist(&record, None).await?;
                shared.ledger().release(key, nonce);
                shared.live_ended();
                crate::metrics::finished(FinalState::NotSent);
                last_refusal = reason;
                continue;
            }
            Broadcast::Accepted | Broadcast::Unreachable(_) => {
                tracing::info!(target: "publisher", slot = %record.target_slot,
                    checkpoint = record.checkpoint_number, %key, nonce, tx = %record.attempts[0].hash,
                    max_fee_per_gas = fees.max_fee_per_gas, gas_limit, "propose sent");
                status.send_replace(SubmissionStatus::Sent {
                    key,
                    nonce,
                    tx_hash: record.attempts[0].hash,
                });
                shared
                    .check_balance(key, record.simulated_gas, fees.max_fee_per_gas)
                    .await;
                return Ok(Ok(record));
            }
        }
    }
    crate::metrics::outcome("send_failed");
    tracing::error!(target: "publisher", slot = %template.target_slot, reason = %last_refusal,
        "every publisher key failed to send the propose");
    Ok(Err(SubmissionOutcome::SendFailed {
        reason: last_refusal,
    }))
}
