//! Metrics of the validator crate (exported with the node's `tandem_` prefix). Labels are
//! bounded: reasons and outcomes are fixed sets of names. Re-execution verdicts and seconds are
//! the state crate's `state_reexecutions_total{verdict}` and `state_reexecution_seconds`: one
//! name for one thing.

use std::time::Duration;

use tandem_state::PoolError;

use crate::state::{FollowerStatus, StallReason};

/// Registers descriptions (once per process is enough; repeating is harmless).
pub(crate) fn describe() {
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
    metrics::gauge!("validator_ready").set(0.0);
}

pub(crate) fn block_proposal(result: &'static str, elapsed: Duration) {
    metrics::counter!("validator_block_proposals_total", "result" => result).increment(1);
    metrics::histogram!("validator_block_proposal_seconds").record(elapsed.as_secs_f64());
}

pub(crate) fn checkpoint_validation(result: &'static str) {
    metrics::counter!("validator_checkpoint_validation_total", "result" => result).increment(1);
}

pub(crate) fn checkpoint_proposed(elapsed: Duration) {
    metrics::histogram!("validator_checkpoint_proposal_to_proposed_seconds")
        .record(elapsed.as_secs_f64());
}

pub(crate) fn attestation(result: &'static str) {
    metrics::counter!("validator_attestations_total", "result" => result).increment(1);
}

pub(crate) fn follower_status(status: &FollowerStatus) {
    metrics::gauge!("validator_ready").set(if status.is_ready() { 1.0 } else { 0.0 });
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
