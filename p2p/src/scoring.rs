//! Peer scoring in one place: the verdict and penalty for every validation error, and the
//! gossipsub score parameters as named constants.
//!
//! Numbers follow the reference network: app penalties Low 50 / Mid 10 / High 2 points,
//! disconnect at −50, ban at −100, 10 % decay per minute; the app score enters gossipsub with
//! weight 10, matching its gossip/publish thresholds of −500/−1000. Invalid deliveries weigh −20
//! and decay over 4 slots.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use libp2p::gossipsub::{
    MessageAcceptance, PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams,
};

use crate::{topics::GossipKind, validation::GossipInvalid};

/// How bad a peer's misbehaviour is. "Tolerance" is how many of them we put up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAction {
    /// Ban at once.
    Fatal,
    /// A few of these get a peer disconnected (undecodable data, tampered txs).
    LowToleranceError,
    /// Provable faults an honest but buggy peer could make now and then (bad signature, wrong
    /// proposer).
    MidToleranceError,
    /// Mostly timing or spam (far-off slot, over the pool cap, abusive requests).
    HighToleranceError,
}

impl PeerAction {
    /// Score points lost.
    pub const fn penalty(self) -> f64 {
        match self {
            Self::Fatal => -BAN_THRESHOLD * 2.0,
            Self::LowToleranceError => 50.0,
            Self::MidToleranceError => 10.0,
            Self::HighToleranceError => 2.0,
        }
    }

    /// Metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::LowToleranceError => "low_tolerance",
            Self::MidToleranceError => "mid_tolerance",
            Self::HighToleranceError => "high_tolerance",
        }
    }
}

/// App score at or below which a peer is disconnected.
pub const DISCONNECT_THRESHOLD: f64 = -50.0;
/// App score at or below which a peer is banned.
pub const BAN_THRESHOLD: f64 = -100.0;
/// Fraction of an app score kept per minute (10 % decay).
pub const SCORE_RETAINED_PER_MINUTE: f64 = 0.9;
/// Default ban duration.
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Weight of the app score inside gossipsub's score.
pub const APP_SPECIFIC_WEIGHT: f64 = 10.0;
/// Gossipsub: below this a peer gets no gossip from us.
pub const GOSSIP_THRESHOLD: f64 = DISCONNECT_THRESHOLD * APP_SPECIFIC_WEIGHT;
/// Gossipsub: below this we do not publish to a peer.
pub const PUBLISH_THRESHOLD: f64 = BAN_THRESHOLD * APP_SPECIFIC_WEIGHT;
/// Gossipsub: below this a peer's RPCs are ignored.
pub const GRAYLIST_THRESHOLD: f64 = PUBLISH_THRESHOLD * 1.6;
/// Gossipsub: accept peer exchange only from well-behaved peers.
pub const ACCEPT_PX_THRESHOLD: f64 = 100.0;
/// Gossipsub: median mesh score below which we graft better peers.
pub const OPPORTUNISTIC_GRAFT_THRESHOLD: f64 = 5.0;
/// Weight of one invalid delivery (squared counter) on a topic.
pub const INVALID_MESSAGE_DELIVERIES_WEIGHT: f64 = -20.0;
/// Slots over which invalid deliveries decay to ~1 %.
pub const INVALID_MESSAGE_DECAY_SLOTS: u32 = 4;
/// Most positive score a peer can earn from topics; also the weight of the IP colocation
/// penalty, so one surplus peer on an IP cancels a well-behaved peer's topic score.
pub const TOPIC_SCORE_CAP: f64 = 50.0;
/// Weight of gossipsub's colocation penalty: `(peers on the IP − threshold)²` times this.
pub const IP_COLOCATION_WEIGHT: f64 = -TOPIC_SCORE_CAP;

/// Gossipsub's IP colocation penalty settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Colocation {
    /// Peers behind one IP beyond which the penalty applies.
    pub(crate) threshold: u32,
    /// IPs exempt from it.
    pub(crate) whitelist: HashSet<IpAddr>,
}

/// A validation error's gossipsub verdict and the penalty for the peer that forwarded it.
pub fn judge(error: &GossipInvalid) -> (MessageAcceptance, Option<PeerAction>) {
    use GossipInvalid as E;
    use MessageAcceptance::{Ignore, Reject};
    use PeerAction::{
        HighToleranceError as High, LowToleranceError as Low, MidToleranceError as Mid,
    };
    match error {
        E::Duplicate
        | E::SlightlyEarly { .. }
        | E::SlightlyLate { .. }
        | E::CommitteeUnknown(_)
        | E::TooManyProposers(_) => (Ignore, None),
        // Honest peers validate before forwarding: undecodable data, a bomb or a stripped copy
        // of a proposal is the forwarder's doing.
        E::Snappy(_) | E::Decode(_) | E::MissingLastBlock => (Reject, Some(Low)),
        // The forwarding peer may never have seen the first block: not its fault.
        E::LastBlockEquivocated => (Reject, None),
        E::WrongSlot { .. } | E::PoolCapExceeded(_) | E::NotInCommittee { .. } => {
            (Reject, Some(High))
        }
        E::WrongChain { .. }
        | E::BadSignature(_)
        | E::TooManyTxs { .. }
        | E::IndexTooLarge { .. }
        | E::WrongProposer { .. }
        | E::LastBlockMismatch(_)
        | E::Tx(_) => (Reject, Some(Mid)),
        E::ProposalTxs(
            tandem_proto::ProposalTxsError::TxHashMismatch { .. }
            | tandem_proto::ProposalTxsError::CountMismatch { .. },
        )
        | E::NoCommittee(_)
        | E::BadProposerSignature(_) => (Reject, Some(Low)),
        E::ProposalTxs(_) => (Reject, Some(Mid)),
        E::LastBlockInvalid(inner) => judge(inner),
    }
}

/// Gossipsub peer-score parameters for our four topics, for a network with `slot_duration`.
pub(crate) fn peer_score_params(
    topics: impl IntoIterator<Item = (GossipKind, TopicHash)>,
    slot_duration: Duration,
    colocation: Colocation,
) -> PeerScoreParams {
    let decay_interval = Duration::from_secs(1);
    let invalid_decay =
        decay_per_interval(slot_duration * INVALID_MESSAGE_DECAY_SLOTS, decay_interval);
    let topics: HashMap<TopicHash, TopicScoreParams> = topics
        .into_iter()
        .map(|(kind, hash)| {
            let params = TopicScoreParams {
                topic_weight: topic_weight(kind),
                // Mesh-delivery scoring (P3) stays off: with one proposal per slot and small
                // committees a quiet mesh is normal, and P3 would punish honest peers.
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                first_message_deliveries_weight: 1.0,
                first_message_deliveries_decay: decay_per_interval(
                    slot_duration * 4,
                    decay_interval,
                ),
                first_message_deliveries_cap: 20.0,
                time_in_mesh_weight: 0.01,
                time_in_mesh_quantum: slot_duration,
                time_in_mesh_cap: 10.0,
                invalid_message_deliveries_weight: INVALID_MESSAGE_DELIVERIES_WEIGHT,
                invalid_message_deliveries_decay: invalid_decay,
                ..TopicScoreParams::default()
            };
            (hash, params)
        })
        .collect();
    PeerScoreParams {
        topics,
        topic_score_cap: TOPIC_SCORE_CAP,
        app_specific_weight: APP_SPECIFIC_WEIGHT,
        // Many peer ids behind one IP (a Sybil) cost each of them points.
        ip_colocation_factor_weight: IP_COLOCATION_WEIGHT,
        ip_colocation_factor_threshold: f64::from(colocation.threshold),
        ip_colocation_factor_whitelist: colocation.whitelist,
        // A peer our send queue could not keep up with is not misbehaving (under tx spam the
        // queue that overflows is ours), and any negative score prunes it from our meshes: its
        // messages then go by IHAVE/IWANT, whose late answers count as broken promises (P7),
        // until an honest peer sinks below the publish threshold and a proposer cannot publish.
        // Slow-peer drops stay visible in `p2p_gossip_send_dropped_total`.
        slow_peer_weight: 0.0,
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: decay_per_interval(slot_duration * 10, decay_interval),
        decay_interval,
        decay_to_zero: 0.01,
        retain_score: slot_duration * 10,
        ..PeerScoreParams::default()
    }
}

/// Gossipsub score thresholds (see the module docs).
pub(crate) fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: ACCEPT_PX_THRESHOLD,
        opportunistic_graft_threshold: OPPORTUNISTIC_GRAFT_THRESHOLD,
    }
}

const fn topic_weight(kind: GossipKind) -> f64 {
    match kind {
        GossipKind::CheckpointProposal | GossipKind::BlockProposal => 0.5,
        GossipKind::CheckpointAttestation => 0.3,
        GossipKind::Tx => 0.2,
    }
}

/// The per-interval factor that leaves 1 % of a counter after `horizon`.
fn decay_per_interval(horizon: Duration, interval: Duration) -> f64 {
    let ticks = (horizon.as_secs_f64() / interval.as_secs_f64()).max(1.0);
    0.01f64.powf(1.0 / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::{SignatureError, WireError, time::Slot};

    #[test]
    fn verdicts() {
        let decode = GossipInvalid::Decode(WireError::MissingField {
            message: "Tx",
            field: "signature",
        });
        assert_eq!(
            judge(&decode),
            (
                MessageAcceptance::Reject,
                Some(PeerAction::LowToleranceError)
            )
        );
        let late = GossipInvalid::SlightlyLate {
            slot: Slot(1),
            by: Duration::from_millis(100),
        };
        assert_eq!(judge(&late), (MessageAcceptance::Ignore, None));
        assert_eq!(
            judge(&GossipInvalid::Duplicate),
            (MessageAcceptance::Ignore, None)
        );
        let nested = GossipInvalid::LastBlockInvalid(Box::new(GossipInvalid::BadSignature(
            SignatureError::Unrecoverable,
        )));
        assert_eq!(
            judge(&nested),
            (
                MessageAcceptance::Reject,
                Some(PeerAction::MidToleranceError)
            )
        );
    }

    #[test]
    fn thresholds_are_consistent() {
        let thresholds = peer_score_thresholds();
        assert!(thresholds.gossip_threshold > thresholds.publish_threshold);
        assert!(thresholds.publish_threshold > thresholds.graylist_threshold);
        let decay = decay_per_interval(Duration::from_secs(4 * 72), Duration::from_secs(1));
        assert!((decay.powf(288.0) - 0.01).abs() < 1e-9);
        let topics = crate::topics::Topics::new(1);
        let params = peer_score_params(
            GossipKind::ALL.map(|kind| (kind, topics.hash(kind).clone())),
            Duration::from_secs(72),
            Colocation {
                threshold: 8,
                whitelist: HashSet::new(),
            },
        );
        assert!(params.ip_colocation_factor_weight < 0.0);
        assert_eq!(params.ip_colocation_factor_threshold, 8.0);
        assert_eq!(params.slow_peer_weight, 0.0);
        params.validate().unwrap();
        thresholds.validate().unwrap();
    }
}
