//! Validator metrics. Names get the node's `tandem_` prefix; labels are bounded (duty kind,
//! origin, result, which epoch).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::protection::Duty;

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

/// Describes every validator metric and zeroes the counters, so dashboards show the series
/// from the first scrape (registering a counter with zero never resets one). Call after
/// installing the recorder.
pub fn describe_metrics() {
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
