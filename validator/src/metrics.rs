//! Metrics of the validator crate (exported with the node's `tandem_` prefix). Labels are
//! bounded: duty kinds, origins, reasons and outcomes are fixed sets of names. Re-execution
//! verdicts and seconds are the state crate's `state_reexecutions_total{verdict}` and
//! `state_reexecution_seconds`: one name for one thing.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use tandem_state::PoolError;

use crate::{
    protection::Duty,
    state::{FollowerStatus, StallReason},
};

/// Where a returned signature came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignatureOrigin {
    /// Signed now and recorded.
    New,
    /// The duty was recorded with the same digest: the recorded signature was returned.
    Recorded,
}

impl SignatureOrigin {
    const fn label(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Recorded => "recorded",
        }
    }
}

const DUTY_LABELS: [&str; 3] = ["block_proposal", "checkpoint_proposal", "attestation"];

pub(crate) fn signature(duty: Duty, origin: SignatureOrigin) {
    counter!("validator_signatures_total", "duty" => duty.label(), "origin" => origin.label())
        .increment(1);
}

pub(crate) fn slashing_refusal(duty: Duty) {
    counter!("validator_slashing_refusals_total", "duty" => duty.label()).increment(1);
}

pub(crate) fn record_written(elapsed: Duration) {
    histogram!("validator_signing_record_write_seconds").record(elapsed.as_secs_f64());
}

/// Outcome of one refresh pass of the epoch cache.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefreshResult {
    Ok,
    TransientError,
    PermanentError,
}

impl RefreshResult {
    const fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::TransientError => "transient_error",
            Self::PermanentError => "permanent_error",
        }
    }
}

pub(crate) fn epoch_cache_refresh(result: RefreshResult, elapsed: Duration) {
    counter!("validator_epoch_cache_refreshes_total", "result" => result.label()).increment(1);
    histogram!("validator_epoch_cache_refresh_seconds").record(elapsed.as_secs_f64());
}

pub(crate) fn epoch_cache_committee_read() {
    counter!("validator_epoch_cache_committee_reads_total").increment(1);
}

pub(crate) fn epoch_cache_reorged_read(changed: bool) {
    let result = if changed { "changed" } else { "unchanged" };
    counter!("validator_epoch_cache_reorged_reads_total", "result" => result).increment(1);
}

pub(crate) fn epoch_cache_miss() {
    counter!("validator_epoch_cache_misses_total").increment(1);
}

pub(crate) fn epoch_cache_state(epochs: usize, current: u8, next: u8) {
    gauge!("validator_epoch_cache_epochs").set(epochs as f64);
    gauge!("validator_epoch_cache_epoch_state", "epoch" => "current").set(f64::from(current));
    gauge!("validator_epoch_cache_epoch_state", "epoch" => "next").set(f64::from(next));
}

/// Describes every validator metric (handlers, state service, signer, epoch cache) and zeroes
/// the signer's and the epoch cache's counters, so dashboards show those series from the first
/// scrape (registering a counter with zero never resets one; no gauge is set here, so calling it
/// late changes no value). Call after installing the recorder; [`crate::StateService::new`]
/// calls it too.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "validator_block_proposals_total",
        "Block proposals handled, by result (valid, already_stored, or the refusal reason)"
    );
    metrics::describe_histogram!(
        "validator_block_proposal_seconds",
        "Block proposal handed to the handler to stored and submitted for application"
    );
    metrics::describe_counter!(
        "validator_checkpoint_validation_total",
        "Checkpoint proposals validated by the all-nodes handler, by result"
    );
    metrics::describe_counter!(
        "validator_proposer_faults_total",
        "Slashable faults of signed proposals found after gossip (re-execution, checkpoint \
         rebuild), by proposal kind and reason; the proposer's address is in the log"
    );
    metrics::describe_histogram!(
        "validator_checkpoint_proposal_to_proposed_seconds",
        "Checkpoint proposal received to stored as a proposed checkpoint"
    );
    metrics::describe_counter!(
        "validator_attestations_total",
        "Validator-handler decisions per (proposal, local key), by result"
    );
    metrics::describe_gauge!(
        "validator_ready",
        "1 when the world state follows the archiver's proposed chain to its tip"
    );
    metrics::describe_counter!(
        "validator_reconcile_failures_total",
        "Reconcile steps of the chain follower that failed without a fatal error (the node is \
         not ready until a step succeeds)"
    );
    metrics::describe_counter!(
        "validator_follower_stalls_total",
        "Times the chain follower stopped on an archiver block it could not apply, by reason"
    );
    metrics::describe_counter!(
        "validator_follower_blocks_applied_total",
        "Blocks applied to the world state, by source (given = executed by a handler or the \
         sequencer, executed_here = executed by the follower)"
    );
    metrics::describe_counter!(
        "validator_follower_rolled_back_blocks_total",
        "Blocks rolled back to follow the archiver"
    );
    metrics::describe_counter!(
        "validator_gossip_txs_dropped_total",
        "Gossiped txs dropped because the state service's queue was full"
    );
    metrics::describe_counter!(
        "validator_gossip_txs_refused_total",
        "Gossiped txs the pool refused, by reason"
    );
    metrics::describe_counter!(
        "validator_prune_events_missed_total",
        "Prune events the state service missed (it reconciled by block hash instead)"
    );
    metrics::describe_counter!(
        "validator_signatures_total",
        "Duty signatures returned by the slashing-protected signer, by duty (block_proposal, \
         checkpoint_proposal, attestation) and origin (new, recorded: the same duty and digest \
         signed again)"
    );
    metrics::describe_counter!(
        "validator_slashing_refusals_total",
        "Duties the slashing-protection record refused to sign (conflicting digest, attestation \
         behind the latest one, below the pruning watermark), by duty"
    );
    metrics::describe_histogram!(
        "validator_signing_record_write_seconds",
        "Time to write and fsync one signed duty to the slashing-protection record"
    );
    metrics::describe_counter!(
        "validator_epoch_cache_refreshes_total",
        "Refresh passes of the epoch cache against L1, by result (ok, transient_error, \
         permanent_error)"
    );
    metrics::describe_histogram!(
        "validator_epoch_cache_refresh_seconds",
        "Duration of one refresh pass of the epoch cache"
    );
    metrics::describe_counter!(
        "validator_epoch_cache_committee_reads_total",
        "Committee reads from L1 (getEpochCommitteeAndSeed)"
    );
    metrics::describe_counter!(
        "validator_epoch_cache_reorged_reads_total",
        "Cached committees re-read because the L1 block they were read at left the canonical \
         chain, by result (changed, unchanged)"
    );
    metrics::describe_counter!(
        "validator_fee_unavailable_total",
        "Checkpoint-opening blocks refused as fee_unavailable: L1 unreadable (after bounded, \
         timed-out retries) or behind the archiver, so the node neither validates nor attests \
         that checkpoint"
    );
    metrics::describe_counter!(
        "validator_epoch_cache_misses_total",
        "Duty lookups for a slot whose epoch is not cached (gossip for it is ignored)"
    );
    metrics::describe_gauge!(
        "validator_epoch_cache_epochs",
        "Epochs held by the epoch cache"
    );
    metrics::describe_gauge!(
        "validator_epoch_cache_epoch_state",
        "Committee state of the current and next epoch: 0 unknown, 1 provisional (read before \
         L1 fixed it, re-read every pass), 2 fixed"
    );
    for duty in DUTY_LABELS {
        for origin in [SignatureOrigin::New, SignatureOrigin::Recorded] {
            counter!("validator_signatures_total", "duty" => duty, "origin" => origin.label())
                .increment(0);
        }
        counter!("validator_slashing_refusals_total", "duty" => duty).increment(0);
    }
    for result in [
        RefreshResult::Ok,
        RefreshResult::TransientError,
        RefreshResult::PermanentError,
    ] {
        counter!("validator_epoch_cache_refreshes_total", "result" => result.label()).increment(0);
    }
}

pub(crate) fn block_proposal(result: &'static str, elapsed: Duration) {
    metrics::counter!("validator_block_proposals_total", "result" => result).increment(1);
    metrics::histogram!("validator_block_proposal_seconds").record(elapsed.as_secs_f64());
}

pub(crate) fn checkpoint_validation(result: &'static str) {
    metrics::counter!("validator_checkpoint_validation_total", "result" => result).increment(1);
}

/// The slashable reasons (`BlockRejection`/`CheckpointRejection::is_slashable`), registered at
/// zero; a reason added there without being listed here only lacks its zero series.
const SLASHABLE_REASONS: [(&str, &[&str]); 2] = [
    (
        "block",
        &[
            "duplicate_txs",
            "parent_block_wrong_slot",
            "invalid_embedded_txs",
            "global_variables_mismatch",
            "fee_per_mana_mismatch",
            "failed_txs",
            "state_mismatch",
        ],
    ),
    (
        "checkpoint",
        &[
            "invalid_fee_asset_price_modifier",
            "no_blocks_for_slot",
            "too_many_blocks_in_checkpoint",
            "body_too_large",
            "checkpoint_header_mismatch",
            "archive_mismatch",
            "last_block_invalid",
        ],
    ),
];

/// Registers the proposer-fault counters at zero when the follower starts, so their series
/// exist from the first scrape: panels show 0 rather than no data, and `increase()` alerts see
/// the first fault (a series born at 1 hides it).
pub(crate) fn register_zeroes() {
    for (proposal, reasons) in SLASHABLE_REASONS {
        for reason in reasons {
            counter!("validator_proposer_faults_total", "proposal" => proposal, "reason" => *reason)
                .absolute(0);
        }
    }
}

/// A slashable fault of a proposer, found after gossip accepted (and relayed) its signed
/// proposal: recorded against the proposer (its address is in the structured log with the
/// evidence), never charged to the peer that relayed it.
pub(crate) fn proposer_fault(proposal: &'static str, reason: &'static str) {
    metrics::counter!("validator_proposer_faults_total", "proposal" => proposal, "reason" => reason)
        .increment(1);
}

pub(crate) fn checkpoint_proposed(elapsed: Duration) {
    metrics::histogram!("validator_checkpoint_proposal_to_proposed_seconds")
        .record(elapsed.as_secs_f64());
}

pub(crate) fn attestation(result: &'static str) {
    metrics::counter!("validator_attestations_total", "result" => result).increment(1);
}

/// The world state does not follow the archiver yet (a new state service).
pub(crate) fn not_ready() {
    metrics::gauge!("validator_ready").set(0.0);
}

pub(crate) fn follower_status(status: &FollowerStatus) {
    metrics::gauge!("validator_ready").set(if status.is_ready() { 1.0 } else { 0.0 });
}

/// A block refused because its required fee could not be derived from L1.
pub(crate) fn fee_unavailable() {
    metrics::counter!("validator_fee_unavailable_total").increment(1);
}

pub(crate) fn reconcile_failed() {
    metrics::counter!("validator_reconcile_failures_total").increment(1);
}

pub(crate) fn follower_mismatch(reason: &StallReason) {
    metrics::counter!("validator_follower_stalls_total", "reason" => reason.as_str()).increment(1);
}

pub(crate) fn follower_applied(source: &'static str) {
    metrics::counter!("validator_follower_blocks_applied_total", "source" => source).increment(1);
}

pub(crate) fn follower_rollback(blocks: u64) {
    metrics::counter!("validator_follower_rolled_back_blocks_total").increment(blocks);
}

pub(crate) fn gossip_tx_dropped() {
    metrics::counter!("validator_gossip_txs_dropped_total").increment(1);
}

pub(crate) fn gossip_tx_refused(err: &PoolError) {
    let reason = match err {
        PoolError::Invalid(_) => "invalid",
        PoolError::ReplacementUnderpriced { .. } => "replacement_underpriced",
        PoolError::ReplacingProtected => "replacing_protected",
        PoolError::SenderFull(_) => "sender_full",
        PoolError::NonceGapTooLarge { .. } => "nonce_gap",
        PoolError::PendingExceedBalance { .. } => "pending_exceed_balance",
        PoolError::PoolFull => "pool_full",
    };
    metrics::counter!("validator_gossip_txs_refused_total", "reason" => reason).increment(1);
}

pub(crate) fn prune_events_missed(missed: u64) {
    metrics::counter!("validator_prune_events_missed_total").increment(missed);
}

#[cfg(test)]
mod zero_tests {
    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    #[test]
    fn proposer_faults_start_at_zero_for_every_slashable_reason() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, super::register_zeroes);
        let mut series: Vec<(String, String)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(0))
                    if key.key().name() == "validator_proposer_faults_total" =>
                {
                    let label = |name: &str| {
                        key.key()
                            .labels()
                            .find(|label| label.key() == name)
                            .map(|label| label.value().to_owned())
                    };
                    Some((label("proposal")?, label("reason")?))
                }
                _ => None,
            })
            .collect();
        series.sort();
        assert_eq!(series.len(), 14);
        assert!(series.contains(&("block".to_owned(), "state_mismatch".to_owned())));
        assert!(series.contains(&("checkpoint".to_owned(), "archive_mismatch".to_owned())));
    }
}
