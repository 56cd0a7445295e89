//! Who we are connected to: penalties and their decisions, refusing banned and low-score peers
//! on reconnect, refreshing gossipsub's copy of the app score as it decays, and discovery —
//! Kademlia random walks from the bootnodes, dialing discovered peers until the reserved
//! outbound slots are filled with peers of this node's own choosing.

use std::collections::{HashMap, HashSet};

use libp2p::{
    Multiaddr, PeerId, Swarm,
    core::ConnectedPoint,
    identify, kad,
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
};

use super::{Behaviour, P2pService};
use crate::{
    config::P2pConfig,
    metrics,
    peers::{PeerDecision, PeerManager},
    scoring::PeerAction,
};

/// Discovered peers remembered as dial candidates.
const MAX_CANDIDATES: usize = 1024;
/// A random walk every this many maintenance ticks even when outbound slots are full, to keep
/// the routing table fresh.
const WALK_EVERY_TICKS: u64 = 12;
/// A candidate whose dial failed `n` times in a row waits `2^min(n, this)` maintenance ticks
/// before it is dialed again (64 ticks, about 5 minutes at the default 5 s interval).
const MAX_BACKOFF_DOUBLINGS: u32 = 6;

/// A peer discovery found, and when it may be dialed.
struct Candidate {
    addrs: Vec<Multiaddr>,
    /// When it was last discovered (a sequence number): a full map evicts the stalest.
    discovered: u64,
    /// Dials that failed since it last connected.
    failures: u32,
    /// The maintenance tick from which it may be dialed again (after a failure).
    retry_tick: u64,
}

impl Candidate {
    fn backed_off(&self, tick: u64) -> bool {
        tick < self.retry_tick
    }
}

/// What discovery did so far (for the status and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// Peers remembered as dial candidates.
    pub candidates: usize,
    /// Candidates not dialed for now because their last dials failed.
    pub backed_off: usize,
    /// Dials discovery started.
    pub dials: u64,
    /// Dials to a candidate that failed (unreachable, or another peer id at its address).
    pub dial_failures: u64,
    /// Random walks started.
    pub walks: u64,
    /// Maintenance ticks so far (the unit backoffs are counted in).
    pub ticks: u64,
}

/// Connection bookkeeping of the swarm actor.
pub(super) struct Peering {
    pub(super) peers: PeerManager,
    /// Direction of each connected peer's first connection (true: we dialed).
    directions: HashMap<PeerId, bool>,
    /// Peers refused at the connection level (on the block list) because of their score.
    refused: HashSet<PeerId>,
    /// Dial candidates: a failed dial backs one off (it is never forgotten for that: it may be
    /// the only peer this node knows besides its bootnodes), a full map evicts failed ones
    /// first and then the stalest, a walk refreshes their addresses.
    candidates: HashMap<PeerId, Candidate>,
    /// Connected peers that have not completed identify yet: a candidate that closes the
    /// connection before that (a peer at its inbound cap accepts the handshake, then drops
    /// it) was not reached, and its backoff is not reset.
    unconfirmed: HashSet<PeerId>,
    discovered: u64,
    walking: bool,
    /// Salt of the random order candidates are tried in.
    salt: PeerId,
    ticks: u64,
    dials: u64,
    dial_failures: u64,
    walks: u64,
    outbound_target: usize,
    discovery: bool,
    pub(super) denied_connections: u64,
    /// Messages gossipsub dropped for slow peers.
    pub(super) send_dropped: u64,
}

impl Peering {
    pub(super) fn new(config: &P2pConfig) -> Self {
        Self {
            peers: PeerManager::new(config.ban_duration),
            directions: HashMap::new(),
            refused: HashSet::new(),
            candidates: HashMap::new(),
            unconfirmed: HashSet::new(),
            discovered: 0,
            walking: false,
            salt: PeerId::random(),
            ticks: 0,
            dials: 0,
            dial_failures: 0,
            walks: 0,
            outbound_target: config.effective_outbound_peers() as usize,
            discovery: config.discovery,
            denied_connections: 0,
            send_dropped: 0,
        }
    }

    /// Dials the bootnodes and seeds the routing table with them.
    pub(super) fn add_bootnodes(&mut self, swarm: &mut Swarm<Behaviour>, bootnodes: &[Multiaddr]) {
        for addr in bootnodes {
            if let Some(peer) = peer_of(addr).filter(|_| self.discovery) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(err) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %err, "cannot dial bootnode");
            }
        }
    }

    /// (outbound, inbound) connected peers.
    pub(super) fn directions(&self) -> (usize, usize) {
        let outbound = self.directions.values().filter(|dialed| **dialed).count();
        (outbound, self.directions.len() - outbound)
    }

    pub(super) fn discovery_status(&self) -> DiscoveryStatus {
        DiscoveryStatus {
            candidates: self.candidates.len(),
            backed_off: self
                .candidates
                .values()
                .filter(|candidate| candidate.backed_off(self.ticks))
                .count(),
            dials: self.dials,
            dial_failures: self.dial_failures,
            ticks: self.ticks,
            walks: self.walks,
        }
    }
}

/// A candidate's place in this tick's random order.
fn shuffle_key(salt: &PeerId, peer: &PeerId) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    salt.hash(&mut hasher);
    peer.hash(&mut hasher);
    hasher.finish()
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|part| match part {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl P2pService {
    pub(super) fn penalize(&mut self, peer: PeerId, action: PeerAction) {
        metrics::penalty(action);
        let now = self.now();
        let decision = self.peering.peers.report(peer, action, now);
        let score = self.peering.peers.score(&peer, now);
        for gossip in self.swarm.behaviour_mut().gossips() {
            gossip.set_application_score(&peer, score);
        }
        match decision {
            PeerDecision::Keep => {}
            PeerDecision::Disconnect => {
                tracing::info!(%peer, score, "disconnecting misbehaving peer");
                metrics::peer_removed("disconnected");
                self.refuse(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            PeerDecision::Ban { until } => {
                tracing::warn!(%peer, score, until = until.as_secs(), "banning peer");
                metrics::peer_removed("banned");
                self.refuse(peer);
                for gossip in self.swarm.behaviour_mut().gossips() {
                    gossip.blacklist_peer(&peer);
                }
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            PeerDecision::StillBanned { .. } => {
                // Refused and blacklisted when the ban started; a late message changes nothing.
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// Puts `peer` on the block list: its connections are denied until maintenance finds it
    /// acceptable again.
    fn refuse(&mut self, peer: PeerId) {
        self.peering.refused.insert(peer);
        self.peering.candidates.remove(&peer);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
    }

    pub(super) fn maintain(&mut self) {
        let now = self.now();
        for peer in self.peering.peers.expire(now) {
            tracing::info!(%peer, "ban expired");
            for gossip in self.swarm.behaviour_mut().gossips() {
                gossip.remove_blacklisted_peer(&peer);
            }
        }
        // Release refused peers whose score recovered (or whose ban ended).
        let released: Vec<PeerId> = self
            .peering
            .refused
            .iter()
            .copied()
            .filter(|peer| self.peering.peers.is_acceptable(peer, now))
            .collect();
        for peer in released {
            self.peering.refused.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        // Gossipsub keeps its own copy of the app score: refresh it as scores decay.
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in &connected {
            let score = self.peering.peers.score(peer, now);
            for gossip in self.swarm.behaviour_mut().gossips() {
                gossip.set_application_score(peer, score);
            }
        }
        metrics::peers(connected.len());
        let (outbound, inbound) = self.peering.directions();
        metrics::peer_directions(outbound, inbound);
        if connected.len() < self.config.min_peers as usize {
            for addr in self.config.bootnodes.clone() {
                let _ = self.swarm.dial(addr);
            }
        }
        self.discover(outbound);
    }

    /// Dials discovered peers while outbound slots are free, and walks the DHT for more.
    fn discover(&mut self, outbound: usize) {
        if !self.peering.discovery {
            return;
        }
        self.peering.ticks = self.peering.ticks.wrapping_add(1);
        let deficit = self.peering.outbound_target.saturating_sub(outbound);
        if deficit > 0 {
            let local = *self.swarm.local_peer_id();
            let now = self.now();
            let tick = self.peering.ticks;
            let mut eligible: Vec<(u64, PeerId, Vec<Multiaddr>)> = self
                .peering
                .candidates
                .iter()
                .filter(|(peer, candidate)| {
                    **peer != local
                        && !candidate.backed_off(tick)
                        && !self.swarm.is_connected(peer)
                        && !self.peering.refused.contains(*peer)
                        && !self.peering.peers.is_banned(peer, now)
                })
                .map(|(peer, candidate)| {
                    (
                        shuffle_key(&self.peering.salt, peer),
                        *peer,
                        candidate.addrs.clone(),
                    )
                })
                .collect();
            // A fresh random order every tick (a hash under a new random salt), so a few
            // unreachable candidates cannot take every attempt.
            self.peering.salt = PeerId::random();
            eligible.sort_unstable_by_key(|(key, _, _)| *key);
            let picks = eligible
                .into_iter()
                .take(deficit)
                .map(|(_, peer, addrs)| (peer, addrs));
            for (peer, addrs) in picks {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                // A refusal here (already dialing it, say) is no reason to forget it.
                if self.swarm.dial(opts).is_ok() {
                    self.peering.dials += 1;
                    metrics::discovery_dial();
                }
            }
        }
        let due = self.peering.ticks % WALK_EVERY_TICKS == 1;
        if !self.peering.walking && (deficit > 0 || due) {
            self.swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(PeerId::random());
            self.peering.walking = true;
            self.peering.walks += 1;
            metrics::discovery_walk();
        }
    }

    pub(super) fn on_connection_established(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
        let now = self.now();
        if !self.peering.peers.is_acceptable(&peer, now) {
            // Dialed before it was refused, or it won a race with the block list.
            self.refuse(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.peering
            .directions
            .entry(peer)
            .or_insert_with(|| endpoint.is_dialer());
        self.peering.unconfirmed.insert(peer);
        let score = self.peering.peers.score(&peer, now);
        if score != 0.0 {
            for gossip in self.swarm.behaviour_mut().gossips() {
                gossip.set_application_score(&peer, score);
            }
        }
    }

    pub(super) fn on_connection_closed(&mut self, peer: PeerId) {
        // Rate-limit budgets are kept: a reconnect must not refill them.
        self.peering.directions.remove(&peer);
        if self.peering.unconfirmed.remove(&peer) {
            self.on_dial_failed(peer);
        }
    }

    pub(super) fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if self.peering.unconfirmed.remove(&peer_id) {
            self.on_candidate_reached(&peer_id);
        }
        if !self.peering.discovery {
            return;
        }
        if !info.protocols.contains(&self.protocols.kad) {
            return;
        }
        for addr in &info.listen_addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer_id, addr.clone());
        }
        self.remember(peer_id, info.listen_addrs);
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => self.remember(peer, addresses.into_vec()),
            kad::Event::OutboundQueryProgressed { result, step, .. } => {
                if let kad::QueryResult::GetClosestPeers(Ok(found)) = result {
                    for info in found.peers {
                        self.remember(info.peer_id, info.addrs);
                    }
                }
                if step.last {
                    self.peering.walking = false;
                }
            }
            _ => {}
        }
    }

    fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty()
            || peer == *self.swarm.local_peer_id()
            || self.peering.refused.contains(&peer)
        {
            return;
        }
        self.peering.discovered += 1;
        let discovered = self.peering.discovered;
        let candidates = &mut self.peering.candidates;
        if candidates.len() >= MAX_CANDIDATES
            && !candidates.contains_key(&peer)
            && let Some(evicted) = candidates
                .iter()
                .min_by_key(|(_, candidate)| (candidate.failures == 0, candidate.discovered))
                .map(|(peer, _)| *peer)
        {
            candidates.remove(&evicted);
        }
        // Rediscovery refreshes the addresses but not the backoff: the DHT keeps returning a
        // peer that went away long after it stopped answering.
        candidates
            .entry(peer)
            .and_modify(|candidate| {
                candidate.addrs.clone_from(&addrs);
                candidate.discovered = discovered;
            })
            .or_insert(Candidate {
                addrs,
                discovered,
                failures: 0,
                retry_tick: 0,
            });
    }

    /// A candidate we could not reach (gone, connection refused, another peer id at its
    /// address) is backed off, doubling with each failure, so the next attempts pick other
    /// candidates instead of redialing a dead one every tick — but it is kept, and tried again.
    pub(super) fn on_dial_failed(&mut self, peer: PeerId) {
        let tick = self.peering.ticks;
        let Some(candidate) = self.peering.candidates.get_mut(&peer) else {
            return;
        };
        candidate.failures = candidate.failures.saturating_add(1);
        let wait = 1u64 << candidate.failures.min(MAX_BACKOFF_DOUBLINGS);
        candidate.retry_tick = tick.saturating_add(wait);
        self.peering.dial_failures += 1;
        // Out of Kademlia's routing table too, or every lookup would try it again (a walk
        // that hears of it from another peer puts it back, and the next failure takes it out).
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        metrics::discovery_dial_failed();
    }

    /// A candidate that connected and identified itself is good again.
    fn on_candidate_reached(&mut self, peer: &PeerId) {
        if let Some(candidate) = self.peering.candidates.get_mut(peer) {
            candidate.failures = 0;
            candidate.retry_tick = 0;
        }
    }
}
