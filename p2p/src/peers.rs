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
    /// Close its connections and refuse it until the ban ends.
    Ban {
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
            return PeerDecision::Ban { until };
        }
        decay(reputation, now);
        reputation.score -= action.penalty();
        if reputation.score <= BAN_THRESHOLD {
            let until = now.saturating_add(ban_duration);
            reputation.banned_until = Some(until);
            PeerDecision::Ban { until }
        } else if reputation.score <= DISCONNECT_THRESHOLD {
            PeerDecision::Disconnect
        } else {
            PeerDecision::Keep
        }
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

    /// Whether `peer` may be connected at `now` (its score is above the disconnect threshold).
    pub fn is_acceptable(&mut self, peer: &PeerId, now: Timestamp) -> bool {
        !self.is_banned(peer, now) && self.score(peer, now) > DISCONNECT_THRESHOLD
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
        // Pinned while banned: no further decay or penalty changes the outcome.
        assert_eq!(
            peers.report(
                peer,
                PeerAction::HighToleranceError,
                until.saturating_sub(Duration::from_secs(1))
            ),
            PeerDecision::Ban { until }
        );
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
    fn fatal_bans_at_once() {
        let mut peers = PeerManager::new(Duration::from_secs(60));
        let peer = PeerId::random();
        assert!(matches!(
            peers.report(peer, PeerAction::Fatal, Timestamp::from_secs(5)),
            PeerDecision::Ban { .. }
        ));
    }
}
