//! Watches one live record until it ends: observes L1, asks [`lifecycle::decide`] for the next
//! step and carries it out (persisting every new attempt before it is broadcast).

use std::{sync::Arc, time::Duration};

use alloy::eips::BlockNumberOrTag;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    chain::{Broadcast, Receipt},
    context::Shared,
    error::PublisherError,
    fees::{Fees, Replacement, replacement_fees},
    lifecycle::{self, Observation, Step, window_closed},
    record::{AttemptKind, AttemptStatus, FinalState, MinedAt, TxRecord, TxState},
    schedule,
    signing::TxBody,
    submission::{Landed, SubmissionOutcome, SubmissionStatus},
};

/// In-memory monitoring state (restarts afresh after a restart).
struct Watch {
    /// L1 time the newest attempt was first seen missing from the node.
    unseen_since: Option<u64>,
    /// L1 time stalls are measured from.
    stall_since: u64,
}

/// Watches `record` to its end. `resumed`: the record comes from the store after a restart, so
/// its newest attempt may never have left the process: it is broadcast again first.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    mut record: TxRecord,
    status: watch::Sender<SubmissionStatus>,
    cancel: CancellationToken,
    resumed: bool,
) -> Result<SubmissionOutcome, PublisherError> {
    let mut state = Watch {
        unseen_since: None,
        stall_since: record.latest().map_or(0, |a| a.signed_at_l1),
    };
    let timing = shared.timing();
    if resumed && record.state != TxState::Mined {
        tracing::info!(target: "publisher", key = %record.key, nonce = record.nonce,
            slot = %record.target_slot, state = ?record.state, "resuming a tx from the store");
        if let Ok(latest) = shared.chain.latest_block().await {
            let closed = window_closed(&record, latest.timestamp, timing.l1_slot);
            // A propose whose window has closed is not re-sent: the next step cancels it.
            if !(closed && record.state == TxState::Pending) {
                rebroadcast(&shared, &mut record).await?;
            }
        }
    }
    loop {
        let observation = match observe(&shared, &record, &mut state).await {
            Ok(observation) => observation,
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    %error, "observing L1 for a tx");
                if schedule::nap(shared.config.receipt_poll_interval, &cancel)
                    .await
                    .is_err()
                {
                    return Ok(SubmissionOutcome::Interrupted);
                }
                continue;
            }
        };
        let step = lifecycle::decide(&record, &observation, &timing);
        if let Some(outcome) = execute(
            &shared,
            &mut record,
            &mut state,
            &observation,
            step,
            &status,
        )
        .await?
        {
            return Ok(outcome);
        }
        if schedule::nap(shared.config.receipt_poll_interval, &cancel)
            .await
            .is_err()
        {
            return Ok(SubmissionOutcome::Interrupted);
        }
    }
}

async fn observe(
    shared: &Shared,
    record: &TxRecord,
    state: &mut Watch,
) -> Result<Observation, PublisherError> {
    let chain = &shared.chain;
    let latest = chain.latest_block().await?;
    let mined_nonce = chain.mined_nonce(record.key).await?;
    let mut mined = None;
    if record.state == TxState::Mined {
        if let Some(at) = record.mined {
            let hash = record.attempts[at.attempt as usize].hash;
            mined = chain
                .receipt(hash, record.checkpoint_number)
                .await?
                .map(|receipt| (at.attempt as usize, receipt));
        }
    } else if mined_nonce > record.nonce {
        for (index, attempt) in record.attempts.iter().enumerate().rev() {
            if attempt.status == AttemptStatus::Refused {
                continue;
            }
            if let Some(receipt) = chain
                .receipt(attempt.hash, record.checkpoint_number)
                .await?
            {
                mined = Some((index, receipt));
                break;
            }
        }
    }
    let mut latest_unseen_for = None;
    if mined.is_none()
        && record.state != TxState::Mined
        && let Some(index) = record.in_mempool()
    {
        if chain.knows(record.attempts[index].hash).await? {
            state.unseen_since = None;
        } else {
            let since = *state.unseen_since.get_or_insert(latest.timestamp);
            latest_unseen_for = Some(latest.timestamp.saturating_sub(since));
        }
    }
    Ok(Observation {
        l1_now: latest.timestamp,
        mined_nonce,
        mined,
        latest_unseen_for,
        higher_nonce_waits: shared.ledger().has_higher(record.key, record.nonce),
        stall_since: state.stall_since,
    })
}

/// Fees a replacement must outbid: the newest attempt's (a refused one included: re-signing the
/// same fees would only repeat the refusal).
fn previous_fees(record: &TxRecord) -> Option<Fees> {
    record.latest().map(|a| Fees {
        max_fee_per_gas: u128::from(a.max_fee_per_gas),
        max_priority_fee_per_gas: u128::from(a.max_priority_fee_per_gas),
    })
}

/// Sends the attempt that should be in the mempool again (an older accepted one rather than a
/// newer refused bump).
async fn rebroadcast(shared: &Shared, record: &mut TxRecord) -> Result<Broadcast, PublisherError> {
    let Some(index) = record.in_mempool() else {
        return Ok(Broadcast::Refused("no attempt".into()));
    };
    let raw = shared.raw_tx(record.attempts[index].hash).await?;
    shared.broadcast(record, index, &raw).await
}

/// Signs, persists and broadcasts a replacement; `false` when the cap leaves no room.
async fn replace(
    shared: &Shared,
    record: &mut TxRecord,
    kind: AttemptKind,
    l1_now: u64,
    status: &watch::Sender<SubmissionStatus>,
) -> Result<Option<Broadcast>, PublisherError> {
    let estimate = shared.chain.fee_estimate().await?;
    let replacement = match kind {
        AttemptKind::Propose => Replacement::SpeedUp,
        AttemptKind::Cancel => Replacement::Cancel,
    };
    // Even a refreshed cancel (earlier ones look dropped) outbids them, in case one is not.
    let previous = previous_fees(record);
    let Some(fees) = replacement_fees(previous, estimate, &shared.config, replacement) else {
        return Ok(None);
    };
    let body = match kind {
        AttemptKind::Propose => {
            let propose = record
                .latest_of(AttemptKind::Propose)
                .ok_or(PublisherError::Unexpected("a speed-up without a propose"))?;
            let raw = shared.raw_tx(propose.hash).await?;
            let input = propose_input(&raw)?;
            TxBody {
                chain_id: shared.chain_id,
                nonce: record.nonce,
                to: shared.chain.rollup,
                input,
                gas_limit: propose.gas_limit,
            }
        }
        AttemptKind::Cancel => TxBody::cancel(shared.chain_id, record.nonce, record.key),
    };
    let raw = shared
        .add_attempt(record, kind, &body, fees, l1_now)
        .await?;
    let index = record.attempts.len() - 1;
    let result = shared.broadcast(record, index, &raw).await?;
    let hash = record.attempts[index].hash;
    tracing::info!(target: "publisher", key = %record.key, nonce = record.nonce, ?kind, tx = %hash,
        max_fee_per_gas = fees.max_fee_per_gas, priority_fee = fees.max_priority_fee_per_gas,
        accepted = matches!(result, Broadcast::Accepted), "replacement sent");
    status.send_replace(SubmissionStatus::Sent {
        key: record.key,
        nonce: record.nonce,
        tx_hash: hash,
    });
    if result == Broadcast::Accepted {
        shared
            .check_balance(record.key, record.simulated_gas, fees.max_fee_per_gas)
            .await;
    }
    Ok(Some(result))
}

/// The calldata of a signed propose (a speed-up re-signs the same call).
fn propose_input(raw: &[u8]) -> Result<alloy::primitives::Bytes, PublisherError> {
    use alloy::{consensus::Transaction, eips::eip2718::Decodable2718};
    let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut &raw[..])
        .map_err(|_| PublisherError::Unexpected("a stored raw tx does not decode"))?;
    Ok(envelope.input().clone())
}

const fn result_label(result: &Option<Broadcast>) -> &'static str {
    match result {
        None => "capped",
        Some(Broadcast::Accepted) => "sent",
        Some(Broadcast::Refused(_)) => "refused",
        Some(Broadcast::Unreachable(_)) => "unreachable",
    }
}

async fn execute(
    shared: &Shared,
    record: &mut TxRecord,
    state: &mut Watch,
    observation: &Observation,
    step: Step,
    status: &watch::Sender<SubmissionStatus>,
) -> Result<Option<SubmissionOutcome>, PublisherError> {
    let l1_now = observation.l1_now;
    match step {
        Step::Wait => {}
        Step::Mined { attempt, receipt } => {
            note_mined(shared, record, attempt, receipt, l1_now).await?;
            record.state = TxState::Mined;
            shared.persist(record, None).await?;
            tracing::info!(target: "publisher", slot = %record.target_slot,
                checkpoint = record.checkpoint_number, tx = %record.attempts[attempt].hash,
                block = receipt.block_number, "propose mined");
            status.send_replace(SubmissionStatus::Mined {
                tx_hash: record.attempts[attempt].hash,
                block_number: receipt.block_number,
            });
        }
        Step::Reorged => {
            record.reorgs = record.reorgs.saturating_add(1);
            record.state = TxState::Pending;
            shared.persist(record, None).await?;
            crate::metrics::reorged();
            tracing::warn!(target: "publisher", slot = %record.target_slot,
                checkpoint = record.checkpoint_number, "mined propose was reorged out");
            let l1_slot = shared.l1_slot_secs();
            if lifecycle::window_reached(record, l1_now, l1_slot)
                && !window_closed(record, l1_now, l1_slot)
            {
                rebroadcast(shared, record).await?;
                state.unseen_since = None;
            }
        }
        Step::SpeedUp(kind) => {
            let result = replace(shared, record, kind, l1_now, status).await?;
            crate::metrics::speed_up(kind, result_label(&result));
            state.stall_since = l1_now;
            state.unseen_since = None;
        }
        Step::Cancel | Step::RefreshCancel => {
            if record.state != TxState::Cancelling {
                record.state = TxState::Cancelling;
                tracing::info!(target: "publisher", slot = %record.target_slot,
                    key = %record.key, nonce = record.nonce, "window closed unmined: cancelling");
            }
            let result = replace(shared, record, AttemptKind::Cancel, l1_now, status).await?;
            crate::metrics::cancel(result_label(&result));
            state.stall_since = l1_now;
            state.unseen_since = None;
        }
        Step::Rebroadcast => {
            if observation.latest_unseen_for.is_some() {
                crate::metrics::dropped_tx();
            }
            rebroadcast(shared, record).await?;
            // Rebroadcast again only after another unseen period.
            state.unseen_since = Some(l1_now);
        }
        Step::Finish(end) => {
            if let Some((attempt, receipt)) = observation.mined {
                note_mined(shared, record, attempt, receipt, l1_now).await?;
            }
            return finish(shared, record, end).await.map(Some);
        }
    }
    Ok(None)
}

/// Records where attempt `attempt` was mined (unless already recorded for that block).
async fn note_mined(
    shared: &Shared,
    record: &mut TxRecord,
    attempt: usize,
    receipt: Receipt,
    l1_now: u64,
) -> Result<(), PublisherError> {
    if record
        .mined
        .is_some_and(|mined| mined.block_hash == receipt.block_hash)
    {
        return Ok(());
    }
    let block_timestamp = shared
        .chain
        .block(BlockNumberOrTag::Number(receipt.block_number))
        .await?
        .map_or(l1_now, |block| block.timestamp);
    record.mined = Some(MinedAt {
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        block_number: receipt.block_number,
        block_hash: receipt.block_hash,
        block_timestamp,
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
    });
    Ok(())
}

async fn finish(
    shared: &Shared,
    record: &mut TxRecord,
    end: FinalState,
) -> Result<SubmissionOutcome, PublisherError> {
    record.state = TxState::Final(end);
    shared.persist(record, None).await?;
    shared.ledger().release(record.key, record.nonce);
    shared.live_ended();
    crate::metrics::finished(end);
    let outcome = match end {
        FinalState::Landed => {
            let Some(mined) = record.mined else {
                return Err(PublisherError::Unexpected("landed without a mined block"));
            };
            let inclusion_delay =
                Duration::from_secs(mined.block_timestamp.saturating_sub(record.window_start));
            crate::metrics::landed(
                inclusion_delay.as_secs_f64(),
                mined.gas_used,
                mined.effective_gas_price,
            );
            SubmissionOutcome::Landed(Landed {
                tx_hash: record.attempts[mined.attempt as usize].hash,
                block_number: mined.block_number,
                block_timestamp: mined.block_timestamp,
                inclusion_delay,
                gas_used: mined.gas_used,
                effective_gas_price: mined.effective_gas_price,
            })
        }
        FinalState::Reverted => SubmissionOutcome::Reverted {
            tx_hash: record
                .mined
                .map(|mined| record.attempts[mined.attempt as usize].hash)
                .unwrap_or_default(),
        },
        FinalState::Cancelled => SubmissionOutcome::Cancelled,
        FinalState::NotMined | FinalState::NotSent => SubmissionOutcome::NotMined,
        FinalState::Lost => SubmissionOutcome::Lost,
        FinalState::NonceTaken => SubmissionOutcome::NonceTaken,
    };
    let level_warn = !matches!(end, FinalState::Landed);
    if level_warn {
        tracing::warn!(target: "publisher", slot = %record.target_slot,
            checkpoint = record.checkpoint_number, key = %record.key, nonce = record.nonce,
            outcome = end.as_str(), attempts = record.attempts.len(), "propose did not land");
    } else {
        tracing::info!(target: "publisher", slot = %record.target_slot,
            checkpoint = record.checkpoint_number, outcome = end.as_str(), "propose landed");
    }
    Ok(outcome)
}
