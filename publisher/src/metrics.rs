//! The publisher's metrics (exported with the node's `tandem_` prefix). Labels are bounded: tx
//! outcomes, attempt kinds, the contract's error names and the configured publisher addresses.

use alloy::primitives::Address;

use crate::record::AttemptKind;

/// Describes every metric, so dashboards show them from the first scrape. Call once at start.
pub fn describe() {
    metrics::describe_histogram!(
        "publisher_l1_inclusion_delay_seconds",
        "Time from the target slot's start to the L1 block that included the propose"
    );
    metrics::describe_counter!(
        "publisher_txs_total",
        "Propose requests by outcome, once per request when it ends (landed, dropped_at_simulation, expired, reverted, cancelled, not_mined, lost, nonce_taken, send_failed); a request interrupted by a shutdown is counted when its resumed tx ends"
    );
    metrics::describe_counter!(
        "publisher_speed_ups_total",
        "Replacements with bumped fees, by attempt kind and result (sent, resent, refused, unreachable, capped)"
    );
    metrics::describe_counter!(
        "publisher_cancels_total",
        "Same-nonce no-op replacements sent when a target slot ended, by result"
    );
    metrics::describe_counter!(
        "publisher_dropped_at_simulation_total",
        "Proposes never sent because the send-time simulation reverted, by the contract's error"
    );
    metrics::describe_counter!(
        "publisher_send_failures_total",
        "Broadcasts the L1 node refused (by refusal) or that got no answer (unreachable, rate_limited)"
    );
    metrics::describe_counter!(
        "publisher_key_rotations_total",
        "Proposes moved to the next publisher key after a send failure"
    );
    metrics::describe_counter!(
        "publisher_reorged_total",
        "Mined proposes whose receipt disappeared (L1 reorg)"
    );
    metrics::describe_counter!(
        "publisher_dropped_txs_total",
        "Txs rebroadcast after the L1 node no longer knew them"
    );
    metrics::describe_gauge!(
        "publisher_last_gas_used",
        "Gas used by the latest landed propose"
    );
    metrics::describe_counter!("publisher_gas_used_total", "Gas used by landed proposes");
    metrics::describe_gauge!(
        "publisher_effective_gas_price_wei",
        "Effective gas price of the latest landed propose"
    );
    metrics::describe_counter!(
        "publisher_fees_paid_wei_total",
        "Wei paid for landed proposes (gas used x effective gas price)"
    );
    metrics::describe_gauge!("publisher_balance_wei", "Balance of each publisher key");
    metrics::describe_gauge!(
        "publisher_balance_runway_checkpoints",
        "Proposes each publisher key's balance pays for at current gas prices"
    );
    metrics::describe_gauge!(
        "publisher_low_balance",
        "1 when a publisher key's runway is below low_balance_runway_checkpoints"
    );
    metrics::describe_gauge!(
        "publisher_in_flight",
        "Tx records being watched (sent, mined within their window, or cancelling)"
    );
    metrics::describe_histogram!(
        "publisher_simulation_seconds",
        "Latency of a propose simulation, by RPC method"
    );
}

pub(crate) fn outcome(label: &'static str) {
    metrics::counter!("publisher_txs_total", "outcome" => label).increment(1);
}

const fn kind_label(kind: AttemptKind) -> &'static str {
    match kind {
        AttemptKind::Propose => "propose",
        AttemptKind::Cancel => "cancel",
    }
}

pub(crate) fn speed_up(kind: AttemptKind, result: &'static str) {
    metrics::counter!("publisher_speed_ups_total", "kind" => kind_label(kind), "result" => result)
        .increment(1);
}

pub(crate) fn cancel(result: &'static str) {
    metrics::counter!("publisher_cancels_total", "result" => result).increment(1);
}

/// Every `result` label of a replacement (speed-up or cancel): `monitor::Replaced::label`.
pub(crate) const REPLACEMENT_RESULTS: [&str; 5] =
    ["capped", "sent", "resent", "refused", "unreachable"];

/// Reasons a propose is dropped at simulation besides the contract's error names.
const OTHER_SIMULATION_DROPS: [&str; 2] = ["unknown", "GasAboveTxCap"];

/// Registers the rare-event counters at zero for their known label values when the publisher
/// starts, so their series exist from the first scrape: panels show 0 rather than no data, and
/// `increase()` alerts see the first event (a series born at 1 hides it).
pub(crate) fn register_zeroes() {
    // Speed-ups and cancels are rare (a stuck propose) and their counters die with a restarted
    // process: at zero from the start, their panels show 0 and `increase()` sees the first one.
    for result in REPLACEMENT_RESULTS {
        for kind in [AttemptKind::Propose, AttemptKind::Cancel] {
            metrics::counter!("publisher_speed_ups_total", "kind" => kind_label(kind), "result" => result)
                .absolute(0);
        }
        metrics::counter!("publisher_cancels_total", "result" => result).absolute(0);
    }
    let reverts = tandem_l1::RollupError::SELECTORS
        .iter()
        .filter_map(|selector| tandem_l1::RollupError::name_by_selector(*selector));
    for reason in reverts.chain(OTHER_SIMULATION_DROPS) {
        metrics::counter!("publisher_dropped_at_simulation_total", "reason" => reason).absolute(0);
    }
}

pub(crate) fn dropped_at_simulation(reason: &'static str) {
    metrics::counter!("publisher_dropped_at_simulation_total", "reason" => reason).increment(1);
}

pub(crate) fn send_failure(reason: &'static str) {
    metrics::counter!("publisher_send_failures_total", "reason" => reason).increment(1);
}

pub(crate) fn key_rotation() {
    metrics::counter!("publisher_key_rotations_total").increment(1);
}

pub(crate) fn reorged() {
    metrics::counter!("publisher_reorged_total").increment(1);
}

pub(crate) fn dropped_tx() {
    metrics::counter!("publisher_dropped_txs_total").increment(1);
}

pub(crate) fn landed(inclusion_delay_secs: f64, gas_used: u64, effective_gas_price: u128) {
    metrics::histogram!("publisher_l1_inclusion_delay_seconds").record(inclusion_delay_secs);
    metrics::gauge!("publisher_last_gas_used").set(gas_used as f64);
    metrics::counter!("publisher_gas_used_total").increment(gas_used);
    metrics::gauge!("publisher_effective_gas_price_wei").set(effective_gas_price as f64);
    let paid = u128::from(gas_used).saturating_mul(effective_gas_price);
    metrics::counter!("publisher_fees_paid_wei_total")
        .increment(u64::try_from(paid).unwrap_or(u64::MAX));
}

pub(crate) fn balance(address: Address, wei: u128, runway: u128, low: bool) {
    let address = address.to_string();
    metrics::gauge!("publisher_balance_wei", "address" => address.clone()).set(wei as f64);
    metrics::gauge!("publisher_balance_runway_checkpoints", "address" => address.clone())
        .set(runway.min(u128::from(u64::MAX)) as f64);
    metrics::gauge!("publisher_low_balance", "address" => address).set(f64::from(u8::from(low)));
}

pub(crate) fn in_flight(delta: f64) {
    metrics::gauge!("publisher_in_flight").increment(delta);
}

#[cfg(test)]
mod tests {
    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    #[test]
    fn simulation_drops_start_at_zero_for_every_contract_error() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, super::register_zeroes);
        let mut reasons: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(0))
                    if key.key().name() == "publisher_dropped_at_simulation_total" =>
                {
                    key.key()
                        .labels()
                        .find(|label| label.key() == "reason")
                        .map(|label| label.value().to_owned())
                }
                _ => None,
            })
            .collect();
        reasons.sort();
        let mut expected: Vec<String> = tandem_l1::RollupError::SELECTORS
            .iter()
            .filter_map(|selector| tandem_l1::RollupError::name_by_selector(*selector))
            .chain(super::OTHER_SIMULATION_DROPS)
            .map(str::to_owned)
            .collect();
        expected.sort();
        assert!(expected.len() > 2, "the contract has custom errors");
        assert!(reasons.iter().any(|reason| reason == "InvalidArchive"));
        assert_eq!(reasons, expected);
    }

    #[test]
    fn speed_ups_and_cancels_start_at_zero_for_every_result() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, super::register_zeroes);
        let zeroes = |name: &str| {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter(|(key, _, _, value)| {
                    key.key().name() == name && *value == DebugValue::Counter(0)
                })
                .count()
        };
        assert_eq!(
            zeroes("publisher_speed_ups_total"),
            2 * super::REPLACEMENT_RESULTS.len()
        );
        assert_eq!(
            zeroes("publisher_cancels_total"),
            super::REPLACEMENT_RESULTS.len()
        );
    }
}
