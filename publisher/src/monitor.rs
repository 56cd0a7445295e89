//! Watches one live record until it ends: observes L1, asks [`lifecycle::decide`] for the next
//! step and carries it out (persisting every new attempt before it is broadcast). An error of
//! one RPC call or one step is logged and the loop tries again at the next poll; only a broken
//! store ends the watch with an error.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    chain::{Broadcast, Receipt, Refusal},
    context::Shared,
    error::PublisherError,
    fees::{Fees, Replacement, expected_price, replacement_fees},
    lifecycle::{self, Observation, Step, window_closed},
    record::{AttemptKind, FinalState, MinedAt, TxRecord, TxState},
    schedule,
    signing::TxBody,
    submission::{Landed, SubmissionOutcome, SubmissionStatus},
};

/// In-memory monitoring state (restarts afresh after a restart).
struct Watch {
    /// L1 time the resend candidate was first seen missing from the node.
    unseen_since: Option<u64>,
    /// L1 time stalls are measured from.
    stall_since: u64,
    /// L1 block at which the nonce was first seen consumed without a receipt of ours.
    nonce_taken_since: Option<u64>,
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
        nonce_taken_since: None,
    };
    let timing = shared.timing();
    if resumed && record.state != TxState::Mined {
        tracing::info!(target: "publisher", key = %record.key, nonce = record.nonce,
            slot = %record.target_slot, state = ?record.state, "resuming a tx from the store");
        // Without an L1 head the first observation decides instead (a signed attempt is sent
        // again then).
        if let Ok(latest) = shared.chain.latest_block().await {
            rebroadcast(&shared, &mut record, latest.timestamp, &status).await?;
        }
    }
    loop {
        let step = match observe(&shared, &record, &mut state).await {
            Ok(observation) => {
                let step = lifecycle::decide(&record, &observation, &timing);
                execute(
                    &shared,
                    &mut record,
                    &mut state,
                    &observation,
                    step,
                    &status,
                )
                .await
                .map_err(|error| (error, Some(step)))
            }
            Err(error) => Err((error, None)),
        };
        match step {
            Ok(Some(outcome)) => return Ok(outcome),
            Ok(None) => {}
            Err((error, _)) if error.is_fatal() => return Err(error),
            Err((error, step)) => {
                tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                    slot = %record.target_slot, ?step, %error, "watching a tx; retrying");
            }
        }
        if schedule::nap(shared.config.receipt_poll_interval, &cancel)
            .await
            .is_err()
        {
            return Ok(SubmissionOutcome::Interrupted);
        }
    }
}

/// Whether a propose attempt may still be sent for `record` at L1 time `l1_now`.
fn proposes_allowed(shared: &Shared, record: &TxRecord, l1_now: u64) -> bool {
    record.state == TxState::Pending && !window_closed(record, l1_now, shared.l1_slot_secs())
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
        if let Some(at) = record.mined
            && let Some(attempt) = record.attempts.get(at.attempt as usize)
        {
            mined = chain
                .receipt(attempt.hash, record.checkpoint_number)
                .await?
                .map(|receipt| (at.attempt as usize, receipt));
        }
    } else if mined_nonce > record.nonce {
        // Every attempt, refused ones included: after a restart a tx mined while the node was
        // down is refused as "nonce too low", yet it is ours.
        for (index, attempt) in record.attempts.iter().enumerate().rev() {
            if let Some(receipt) = chain
                .receipt(attempt.hash, record.checkpoint_number)
                .await?
            {
                mined = Some((index, receipt));
                break;
            }
        }
    }
    let unexplained =
        record.state != TxState::Mined && mined.is_none() && mined_nonce > record.nonce;
    let nonce_taken_since = if unexplained {
        Some(*state.nonce_taken_since.get_or_insert(latest.number))
    } else {
        state.nonce_taken_since = None;
        None
    };
    let mut candidate_unseen_for = None;
    let mut node_holds_nonce = false;
    if mined.is_none() && record.state != TxState::Mined {
        let allowed = proposes_allowed(shared, record, latest.timestamp);
        if let Some(index) = record.resend_candidate(allowed) {
            if chain.knows(record.attempts[index].hash).await? {
                state.unseen_since = None;
                node_holds_nonce = true;
            } else {
                let since = *state.unseen_since.get_or_insert(latest.timestamp);
                candidate_unseen_for = Some(latest.timestamp.saturating_sub(since));
            }
        }
        // Before a cancelling record gives its nonce back, no attempt of it may be left in the
        // node (a propose there could still be mined, or dropped later, behind our back).
        if record.state == TxState::Cancelling && !node_holds_nonce {
            for attempt in record.attempts.iter().rev() {
                if chain.knows(attempt.hash).await? {
                    node_holds_nonce = true;
                    break;
                }
            }
        }
    }
    Ok(Observation {
        l1_now: latest.timestamp,
        l1_number: latest.number,
        mined_nonce,
        nonce_taken_since,
        mined,
        candidate_unseen_for,
        node_holds_nonce,
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

fn announce(
    status: &watch::Sender<SubmissionStatus>,
    record: &TxRecord,
    index: usize,
    result: &Broadcast,
) {
    if *result == Broadcast::Accepted {
        status.send_replace(SubmissionStatus::Sent {
            key: record.key,
            nonce: record.nonce,
            tx_hash: record.attempts[index].hash,
        });
    }
}

/// Sends attempt `index` again, as it was signed.
async fn resend(
    shared: &Shared,
    record: &mut TxRecord,
    index: usize,
    status: &watch::Sender<SubmissionStatus>,
) -> Result<Broadcast, PublisherError> {
    let raw = shared.raw_tx(record.attempts[index].hash).await?;
    let result = shared.broadcast(record, index, &raw).await?;
    announce(status, record, index, &result);
    Ok(result)
}

/// Sends the attempt that should be in the mempool again (an older accepted one rather than a
/// newer refused bump; never a propose once its window closed). `None`: nothing to send.
async fn rebroadcast(
    shared: &Shared,
    record: &mut TxRecord,
    l1_now: u64,
    status: &watch::Sender<SubmissionStatus>,
) -> Result<Option<Broadcast>, PublisherError> {
    let allowed = proposes_allowed(shared, record, l1_now);
    match record.resend_candidate(allowed) {
        Some(index) => resend(shared, record, index, status).await.map(Some),
        None => Ok(None),
    }
}

/// What a replacement step did.
enum Replaced {
    /// A new attempt was signed and sent.
    New(Broadcast),
    /// A cancel at the ceiling: the highest cancel was sent again as it was.
    Resent(Broadcast),
    /// No room under the cap: nothing sent.
    Capped,
}

impl Replaced {
    const fn label(&self) -> &'static str {
        match self {
            Self::Capped => "capped",
            Self::New(Broadcast::Accepted) => "sent",
            Self::Resent(Broadcast::Accepted) => "resent",
            Self::New(Broadcast::Refused(_)) | Self::Resent(Broadcast::Refused(_)) => "refused",
            Self::New(Broadcast::Unreachable(_)) | Self::Resent(Broadcast::Unreachable(_)) => {
                "unreachable"
            }
        }
    }
}

/// Signs, persists and broadcasts a replacement with bumped fees. A speed-up with no room under
/// the cap is skipped; a cancel with no room under the ceiling sends the highest cancel again.
async fn replace(
    shared: &Shared,
    record: &mut TxRecord,
    kind: AttemptKind,
    l1_now: u64,
    status: &watch::Sender<SubmissionStatus>,
) -> Result<Replaced, PublisherError> {
    let estimate = shared.chain.fee_estimate().await?;
    let replacement = match kind {
        AttemptKind::Propose => Replacement::SpeedUp,
        AttemptKind::Cancel => Replacement::Cancel,
    };
    // Even a refreshed cancel (earlier ones look dropped) outbids them, in case one is not.
    let previous = previous_fees(record);
    let Some(fees) = replacement_fees(previous, estimate, &shared.config, replacement) else {
        if kind == AttemptKind::Propose {
            return Ok(Replaced::Capped);
        }
        let Some(highest) = record
            .attempts
            .iter()
            .rposition(|a| a.kind == AttemptKind::Cancel)
        else {
            tracing::warn!(target: "publisher", key = %record.key, nonce = record.nonce,
                "no cancel fits under the ceiling (max_fee_per_gas was lowered below a sent propose?)");
            return Ok(Replaced::Capped);
        };
        return resend(shared, record, highest, status)
            .await
            .map(Replaced::Resent);
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
                to: shared.chain.rollup(),
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
    tracing::info!(target: "publisher", key = %record.key, nonce = record.nonce, ?kind,
        tx = %record.attempts[index].hash, max_fee_per_gas = fees.max_fee_per_gas,
        priority_fee = fees.max_priority_fee_per_gas,
        accepted = result == Broadcast::Accepted, "replacement sent");
    announce(status, record, index, &result);
    // After an accepted send, and after a refusal for want of ETH (no accepted send would read
    // the empty key's balance again before the operator's alert needs it).
    if matches!(
        result,
        Broadcast::Accepted | Broadcast::Refused(Refusal::InsufficientFunds)
    ) {
        let gas = match kind {
            AttemptKind::Propose => record.simulated_gas,
            AttemptKind::Cancel => body.gas_limit,
        };
        shared
            .check_balance(record.key, gas, expected_price(fees, estimate))
            .await;
    }
    Ok(Replaced::New(result))
}

/// The calldata of a signed propose (a speed-up re-signs the same call).
fn propose_input(raw: &[u8]) -> Result<alloy::primitives::Bytes, PublisherError> {
    use alloy::{consensus::Transaction, eips::eip2718::Decodable2718};
    let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut &raw[..])
        .map_err(|_| PublisherError::Unexpected("a stored raw tx does not decode"))?;
    Ok(envelope.input().clone())
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
            // Stalls and drops count afresh from the reorg, not from the old attempt.
            state.stall_since = l1_now;
            state.unseen_since = None;
            let l1_slot = shared.l1_slot_secs();
            if lifecycle::window_reached(record, l1_now, l1_slot) {
                rebroadcast(shared, record, l1_now, status).await?;
            }
        }
        Step::SpeedUp(kind) => {
            let result = replace(shared, record, kind, l1_now, status).await?;
            crate::metrics::speed_up(kind, result.label());
            state.stall_since = l1_now;
            state.unseen_since = None;
        }
        Step::Cancel | Step::RefreshCancel => {
            if record.state != TxState::Cancelling {
                record.state = TxState::Cancelling;
                shared.persist(record, None).await?;
                tracing::info!(target: "publisher", slot = %record.target_slot,
                    key = %record.key, nonce = record.nonce, "window closed unmined: cancelling");
            }
            let result = replace(shared, record, AttemptKind::Cancel, l1_now, status).await?;
            crate::metrics::cancel(result.label());
            state.stall_since = l1_now;
            state.unseen_since = None;
        }
        Step::Rebroadcast => {
            if observation.candidate_unseen_for.is_some() {
                crate::metrics::dropped_tx();
            }
            rebroadcast(shared, record, l1_now, status).await?;
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
        .block(receipt.block_number)
        .await?
        .map_or(l1_now, |block| block.timestamp);
    record.mined = Some(MinedAt {
        attempt: u32::try_from(attempt)
            .map_err(|_| PublisherError::Unexpected("attempt index above u32"))?,
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
    let mined = record
        .mined
        .and_then(|mined| Some((mined, record.attempts.get(mined.attempt as usize)?.hash)));
    if end == FinalState::Landed && mined.is_none() {
        return Err(PublisherError::Unexpected("landed without a mined block"));
    }
    record.state = TxState::Final(end);
    shared.persist(record, None).await?;
    shared.ledger().release(record.key, record.nonce);
    shared.live_ended();
    shared.prune().await?;
    let outcome = match (end, mined) {
        (FinalState::Landed, None) => {
            return Err(PublisherError::Unexpected("landed without a mined block"));
        }
        (FinalState::Landed, Some((mined, tx_hash))) => {
            let inclusion_delay =
                Duration::from_secs(mined.block_timestamp.saturating_sub(record.window_start));
            crate::metrics::landed(
                inclusion_delay.as_secs_f64(),
                mined.gas_used,
                mined.effective_gas_price,
            );
            SubmissionOutcome::Landed(Landed {
                tx_hash,
                block_number: mined.block_number,
                block_timestamp: mined.block_timestamp,
                inclusion_delay,
                gas_used: mined.gas_used,
                effective_gas_price: mined.effective_gas_price,
            })
        }
        (FinalState::Reverted, mined) => SubmissionOutcome::Reverted {
            tx_hash: mined.map(|(_, hash)| hash).unwrap_or_default(),
        },
        (FinalState::Cancelled, _) => SubmissionOutcome::Cancelled,
        (FinalState::NotMined | FinalState::NotSent, _) => SubmissionOutcome::NotMined,
        (FinalState::Lost, _) => SubmissionOutcome::Lost,
        (FinalState::NonceTaken, _) => SubmissionOutcome::NonceTaken,
    };
    if end == FinalState::Landed {
        tracing::info!(target: "publisher", slot = %record.target_slot,
            checkpoint = record.checkpoint_number, outcome = end.as_str(), "propose landed");
    } else {
        tracing::warn!(target: "publisher", slot = %record.target_slot,
            checkpoint = record.checkpoint_number, key = %record.key, nonce = record.nonce,
            outcome = end.as_str(), attempts = record.attempts.len(), "propose did not land");
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::Replaced;
    use crate::chain::{Broadcast, Refusal, Unanswered};

    #[test]
    fn every_replacement_result_is_registered_at_zero() {
        let refused = || Broadcast::Refused(Refusal::InsufficientFunds);
        let unreachable = || Broadcast::Unreachable(Unanswered::Transport);
        let all = [
            Replaced::Capped,
            Replaced::New(Broadcast::Accepted),
            Replaced::Resent(Broadcast::Accepted),
            Replaced::New(refused()),
            Replaced::Resent(refused()),
            Replaced::New(unreachable()),
            Replaced::Resent(unreachable()),
        ];
        for replaced in all {
            assert!(
                crate::metrics::REPLACEMENT_RESULTS.contains(&replaced.label()),
                "{} is not registered at zero",
                replaced.label()
            );
        }
    }
}
