//! p2p metrics. Names get the node's `tandem_` prefix; labels are bounded (topic, result,
//! handler, action).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::{scoring::PeerAction, topics::GossipKind};

/// Registers the rare-event counters at zero for their known label values, so their series
/// exist from the first scrape: panels show 0 rather than no data, and `increase()` alerts see
/// the first event (a series born at 1 hides it).
pub(crate) fn register_zeroes() {
    for kind in GossipKind::ALL {
        counter!("p2p_gossip_queue_dropped_total", "topic" => kind.name()).absolute(0);
        counter!("p2p_gossip_rate_limited_total", "topic" => kind.name()).absolute(0);
    }
    for kind in GossipKind::CONSENSUS {
        counter!("p2p_equivocations_total", "topic" => kind.name()).absolute(0);
    }
    counter!("p2p_handler_dropped_total", "lane" => crate::processor::TX_LANE).absolute(0);
    for reason in ["banned", "disconnected"] {
        counter!("p2p_peers_removed_total", "reason" => reason).absolute(0);
    }
}

/// Final verdict on a gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Ignore,
    Reject,
}

impl Verdict {
    const fn label(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Ignore => "ignore",
            Self::Reject => "reject",
        }
    }
}

/// One verdict: `validation` is the checks alone, `verdict` from receipt by the swarm (queue
/// wait included).
pub(crate) fn gossip_message(
    kind: GossipKind,
    verdict: Verdict,
    validation: Duration,
    since_received: Duration,
) {
    counter!("p2p_gossip_messages_total", "topic" => kind.name(), "result" => verdict.label())
        .increment(1);
    histogram!("p2p_gossip_validation_seconds", "topic" => kind.name())
        .record(validation.as_secs_f64());
    histogram!("p2p_gossip_verdict_seconds", "topic" => kind.name())
        .record(since_received.as_secs_f64());
}

pub(crate) fn gossip_queue_dropped(kind: GossipKind) {
    counter!("p2p_gossip_queue_dropped_total", "topic" => kind.name()).increment(1);
}

pub(crate) fn gossip_queue_depth(kind: GossipKind, depth: usize) {
    gauge!("p2p_gossip_queue_depth", "topic" => kind.name()).set(depth as f64);
}

pub(crate) fn gossip_send_dropped(count: usize) {
    counter!("p2p_gossip_send_dropped_total").increment(count as u64);
}

pub(crate) fn gossip_rate_limited(kind: GossipKind) {
    counter!("p2p_gossip_rate_limited_total", "topic" => kind.name()).increment(1);
}

pub(crate) fn deadline_margin(kind: GossipKind, seconds_before_deadline: f64) {
    histogram!("p2p_proposal_deadline_margin_seconds", "topic" => kind.name())
        .record(seconds_before_deadline);
}

pub(crate) fn equivocation(kind: GossipKind) {
    counter!("p2p_equivocations_total", "topic" => kind.name()).increment(1);
}

pub(crate) fn handler_queue(lane: &'static str, depth: usize) {
    gauge!("p2p_handler_queue_depth", "lane" => lane).set(depth as f64);
}

pub(crate) fn handler_dropped(lane: &'static str) {
    counter!("p2p_handler_dropped_total", "lane" => lane).increment(1);
}

pub(crate) fn handler_duration(handler: &'static str, elapsed: Duration) {
    histogram!("p2p_handler_seconds", "handler" => handler).record(elapsed.as_secs_f64());
}

pub(crate) fn handler_timeout(handler: &'static str) {
    counter!("p2p_handler_timeouts_total", "handler" => handler).increment(1);
}

/// Accepted proposals never handed to a handler (their slot's deadline passed first).
pub(crate) fn handler_expired(count: usize) {
    counter!("p2p_handler_expired_total").increment(count as u64);
}

/// A block a lane could not hold within its byte bounds (it is fetched again when due).
pub(crate) fn dispatch_over_budget() {
    counter!("p2p_dispatch_over_budget_total").increment(1);
}

/// Bytes of blocks the lanes hold.
pub(crate) fn dispatch_bytes(bytes: usize) {
    gauge!("p2p_dispatch_held_bytes").set(bytes as f64);
}

pub(crate) fn dispatch_lanes(count: usize) {
    gauge!("p2p_dispatch_lanes").set(count as f64);
}

pub(crate) fn attestation_not_published() {
    counter!("p2p_attestations_not_published_total").increment(1);
}

pub(crate) fn block_fetch(result: &'static str) {
    counter!("p2p_block_fetches_total", "result" => result).increment(1);
}

pub(crate) fn peers(count: usize) {
    gauge!("p2p_peers").set(count as f64);
}

pub(crate) fn peer_directions(outbound: usize, inbound: usize) {
    gauge!("p2p_peers_by_direction", "direction" => "outbound").set(outbound as f64);
    gauge!("p2p_peers_by_direction", "direction" => "inbound").set(inbound as f64);
}

pub(crate) fn connection_denied() {
    counter!("p2p_connections_denied_total").increment(1);
}

pub(crate) fn discovery_dial_failed() {
    counter!("p2p_discovery_dial_failures_total").increment(1);
}

pub(crate) fn discovery_dial() {
    counter!("p2p_discovery_dials_total").increment(1);
}

pub(crate) fn discovery_walk() {
    counter!("p2p_discovery_walks_total").increment(1);
}

pub(crate) fn penalty(action: PeerAction) {
    counter!("p2p_peer_penalties_total", "action" => action.label()).increment(1);
}

pub(crate) fn peer_removed(reason: &'static str) {
    counter!("p2p_peers_removed_total", "reason" => reason).increment(1);
}

pub(crate) fn request(protocol: &'static str, direction: &'static str, result: &'static str) {
    counter!(
        "p2p_reqresp_requests_total",
        "protocol" => protocol,
        "direction" => direction,
        "result" => result
    )
    .increment(1);
}

pub(crate) fn publish_error(kind: GossipKind) {
    counter!("p2p_publish_errors_total", "topic" => kind.name()).increment(1);
}

#[cfg(test)]
mod tests {
    use metrics_util::{
        CompositeKey, MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    use super::*;

    #[test]
    fn rare_event_counters_start_at_zero() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, register_zeroes);
        let counters: Vec<Series> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => {
                    Some((key.key().name().to_owned(), labels(&key), n))
                }
                _ => None,
            })
            .collect();
        let has = |name: &str, label: (&str, &str)| {
            counters.iter().any(|(n, labels, value)| {
                n == name && *value == 0 && labels == &[(label.0.to_owned(), label.1.to_owned())]
            })
        };
        for kind in GossipKind::ALL {
            assert!(has(
                "p2p_gossip_queue_dropped_total",
                ("topic", kind.name())
            ));
            assert!(has("p2p_gossip_rate_limited_total", ("topic", kind.name())));
        }
        for kind in GossipKind::CONSENSUS {
            assert!(has("p2p_equivocations_total", ("topic", kind.name())));
        }
        assert!(has("p2p_handler_dropped_total", ("lane", "tx")));
        assert!(has("p2p_peers_removed_total", ("reason", "banned")));
        assert!(has("p2p_peers_removed_total", ("reason", "disconnected")));
        assert_eq!(counters.len(), 2 * 4 + 3 + 1 + 2, "{counters:?}");
    }

    /// Name, labels, value.
    type Series = (String, Vec<(String, String)>, u64);

    fn labels(key: &CompositeKey) -> Vec<(String, String)> {
        key.key()
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect()
    }
}
