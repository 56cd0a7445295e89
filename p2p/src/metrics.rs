//! p2p metrics. Names get the node's `tandem_` prefix; labels are bounded (topic, result,
//! handler, action).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::{scoring::PeerAction, topics::GossipKind};

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

pub(crate) fn gossip_message(kind: GossipKind, verdict: Verdict, validation: Duration) {
    counter!("p2p_gossip_messages_total", "topic" => kind.name(), "result" => verdict.label())
        .increment(1);
    histogram!("p2p_gossip_validation_seconds", "topic" => kind.name())
        .record(validation.as_secs_f64());
}

/// Refused by the snappy transform before reaching validation (gossipsub rejects it itself).
pub(crate) fn gossip_undecodable(kind: GossipKind) {
    counter!("p2p_gossip_messages_total", "topic" => kind.name(), "result" => "reject")
        .increment(1);
}

pub(crate) fn gossip_queue_dropped(kind: GossipKind) {
    counter!("p2p_gossip_queue_dropped_total", "topic" => kind.name()).increment(1);
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

pub(crate) fn peers(count: usize) {
    gauge!("p2p_peers").set(count as f64);
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
