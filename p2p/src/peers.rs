//! App-level peer reputation: penalties from validation and req/resp, exponential decay, and the
//! disconnect and ban decisions. Pure logic with the clock passed in; the swarm actor applies
//! the decisions.

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;
use tandem_proto::time::Timestamp;

use crate::scoring::{BAN_THRESHOLD, DISCONNECT_THRESHOLD, PeerAction, SCORE_RETAINED_PER_MINUTE};

/// What the swarm should do after a penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDecision {
    /// Keep the peer.
    Keep,
    /// Close its connections; it may come back.
    Disconnect,
    /// The ban starts: close its connections and refuse it until the ban ends.
    Ban {
        /// End of the ban.
        until: Timestamp,
    },
    /// Already banned (a message it sent before the ban, validated late): the ban is not
    /// counted again.
    StillBanned {
        /// End of the ban.
        until: Timestamp,
    },
}

#[derive(Debug, Clone, Copy)]
struct Reputation {
    score: f64,
    updated: Timestamp,
    banned_until: Option<Timestamp>,
}

/// A peer's standing at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Score (0 neutral).
    pub score: f64,
    /// Banned.
    pub banned: bool,
    /// Refused on connect: banned, or score at or below the disconnect threshold.
    pub refused: bool,
}

/// Most peers whose reputation is tracked; beyond it the mildest non-banned records are dropped,
/// so peers cycling through fresh identities cannot grow the table without bound.
pub const MAX_TRACKED_PEERS: usize = 16_384;

/// Reputation of every peer we have penalised.
#[derive(Debug)]
pub struct PeerManager {
    peers: HashMap<PeerId, Reputation>,
    ban_duration: Duration,
}

impl PeerManager {
    /// A manager banning for `ban_duration`.
    pub fn new(ban_duration: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            ban_duration,
        }
    }

    /// Applies `action` to `peer` at `now`.
    pub fn report(&mut self, peer: PeerId, action: PeerAction, now: Timestamp) -> PeerDecision {
        let ban_duration = self.ban_duration;
        let reputation = self.peers.entry(peer).or_insert(Reputation {
            score: 0.0,
            updated: now,
            banned_until: None,
        });
        if let Some(until) = reputation.banned_until
            && until > now
        {
            // The score stays pinned while banned.
            return PeerDecision::StillBanned { until };
        }
        decay(reputation, now);
        reputation.score -= action.penalty();
        let score = reputation.score;
        if self.peers.len() > MAX_TRACKED_PEERS {
            self.shrink(peer, now);
        }
        if score <= BAN_THRESHOLD {
            let until = now.saturating_add(ban_duration);
            // `shrink` never drops the peer being reported.
            if let Some(reputation) = self.peers.get_mut(&peer) {
                reputation.banned_until = Some(until);
            }
            PeerDecision::Ban { until }
        } else if score <= DISCONNECT_THRESHOLD {
            PeerDecision::Disconnect
        } else {
            PeerDecision::Keep
        }
    }

    /// Drops expired and decayed records, then the mildest non-banned ones (never `keep`) until
    /// the table is 10 % under its cap.
    fn shrink(&mut self, keep: PeerId, now: Timestamp) {
        self.expire(now);
        let target = MAX_TRACKED_PEERS - MAX_TRACKED_PEERS / 10;
        if self.peers.len() <= target {
            return;
        }
        let mut mild: Vec<(f64, PeerId)> = self
            .peers
            .iter()
            .filter(|(peer, reputation)| {
                // Banned and refused peers are kept: forgetting them would let them back in.
                **peer != keep
                    && reputation.banned_until.is_none()
                    && reputation.score > DISCONNECT_THRESHOLD
            })
            .map(|(peer, reputation)| (reputation.score.abs(), *peer))
            .collect();
        mild.sort_by(|a, b| a.0.total_cmp(&b.0));
        let excess = self.peers.len() - target;
        for (_, peer) in mild.into_iter().take(excess) {
            self.peers.remove(&peer);
        }
    }

    /// Number of peers with a reputation record.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// `peer`'s score at `now` (0 for unknown peers).
    pub fn score(&mut self, peer: &PeerId, now: Timestamp) -> f64 {
        self.peers.get_mut(peer).map_or(0.0, |reputation| {
            if reputation.banned_until.is_none_or(|until| until <= now) {
                decay(reputation, now);
            }
            reputation.score
        })
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Timestamp) -> bool {
        self.peers
            .get(peer)
            .and_then(|reputation| reputation.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Whether `peer` may be connected at `now` (not banned, and its score is above the
    /// disconnect threshold): a disconnected peer is refused until its score recovers.
    pub fn is_acceptable(&mut self, peer: &PeerId, now: Timestamp) -> bool {
        !self.is_banned(peer, now) && self.score(peer, now) > DISCONNECT_THRESHOLD
    }

    /// `peer`'s standing at `now`.
    pub fn standing(&mut self, peer: &PeerId, now: Timestamp) -> Standing {
        let refused = !self.is_acceptable(peer, now);
        Standing {
            score: self.score(peer, now),
            banned: self.is_banned(peer, now),
            refused,
        }
    }

    /// Ends expired bans (their score restarts at the disconnect threshold so the peer gets a
    /// short leash) and forgets peers whose score decayed back to ~0. Returns the unbanned.
    pub fn expire(&mut self, now: Timestamp) -> Vec<PeerId> {
        let mut unbanned = Vec::new();
        self.peers.retain(|peer, reputation| {
            if let Some(until) = reputation.banned_until {
                if until > now {
                    return true;
                }
                reputation.banned_until = None;
                reputation.score = DISCONNECT_THRESHOLD / 2.0;
                reputation.updated = now;
                unbanned.push(*peer);
                return true;
            }
            decay(reputation, now);
            reputation.score.abs() > 0.01
        });
        unbanned
    }
}

fn decay(reputation: &mut Reputation, now: Timestamp) {
    let minutes = now.millis_since(reputation.updated) as f64 / 60_000.0;
    if minutes > 0.0 {
        reputation.score *= SCORE_RETAINED_PER_MINUTE.powf(minutes);
        reputation.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_disconnect_then_ban_then_expire() {
        let mut peers = PeerManager::new(Duration::from_secs(3600));
        let peer = PeerId::random();
        let t0 = Timestamp::from_secs(1_000);
        for _ in 0..4 {
            assert_eq!(
                peers.report(peer, PeerAction::MidToleranceError, t0),
                PeerDecision::Keep
            );
        }
        assert_eq!(
            peers.report(peer, PeerAction::MidToleranceError, t0),
            PeerDecision::Disconnect
        );
        assert!(!peers.is_acceptable(&peer, t0));
        let ban = peers.report(peer, PeerAction::LowToleranceError, t0);
        let until = t0.saturating_add(Duration::from_secs(3600));
        assert_eq!(ban, PeerDecision::Ban { until });
        assert!(peers.is_banned(&peer, t0));
        // Pinned while banned: no further decay or penalty changes the outcome, and the ban
        // starts only once (the swarm counts a ban per `Ban`).
        for action in [
            PeerAction::LowToleranceError,
            PeerAction::HighToleranceError,
        ] {
            assert_eq!(
                peers.report(peer, action, until.saturating_sub(Duration::from_secs(1))),
                PeerDecision::StillBanned { until }
            );
        }
        assert_eq!(peers.expire(until), vec![peer]);
        assert!(!peers.is_banned(&peer, until));
        assert!(peers.is_acceptable(&peer, until));
    }

    #[test]
    fn scores_decay_ten_percent_per_minute() {
        let mut peers = PeerManager::new(Duration::from_secs(60));
        let peer = PeerId::random();
        let t0 = Timestamp::from_secs(0);
        peers.report(peer, PeerAction::LowToleranceError, t0);
        assert_eq!(peers.score(&peer, t0), -50.0);
        let later = t0.saturating_add(Duration::from_secs(60));
        assert!((peers.score(&peer, later) + 45.0).abs() < 1e-9);
        // After long enough the peer is forgotten.
        let much_later = t0.saturating_add(Duration::from_secs(2 * 3600));
        assert!(peers.expire(much_later).is_empty());
        assert!(peers.peers.is_empty());
        assert!(!peers.is_banned(&peer, much_later));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_bans() {
        let mut peers = PeerManager::new(Duration::from_secs(3600));
        let now = Timestamp::from_secs(10);
        let banned = PeerId::random();
        peers.report(banned, PeerAction::Fatal, now);
        for _ in 0..MAX_TRACKED_PEERS + 10 {
            peers.report(PeerId::random(), PeerAction::HighToleranceError, now);
        }
        assert!(peers.tracked() <= MAX_TRACKED_PEERS);
        assert!(peers.is_banned(&banned, now));
        let last = PeerId::random();
        assert_eq!(
            peers.report(last, PeerAction::MidToleranceError, now),
            PeerDecision::Keep
        );
        assert_eq!(peers.score(&last, now), -10.0);
    }

    #[test]
    fn fatal_bans_at_once() {
        let mut peers = PeerManager::new(Duration::from_secs(60));
        let peer = PeerId::random();
        assert!(matches!(
            peers.report(peer, PeerAction::Fatal, Timestamp::from_secs(5)),
            PeerDecision::Ban { .. }
        ));
    }
}
