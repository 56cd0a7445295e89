//! The swarm actor's event handling, and the gossip ingress: per-peer tx rate limit, then the
//! topic's bounded validation queue. Nothing here decompresses or decodes: that happens in
//! validation, where a bad payload costs its forwarder points.

use libp2p::{
    PeerId,
    gossipsub::{self, MessageAcceptance, MessageId},
    swarm::{DialError, ListenError, SwarmEvent},
};

use super::{
    BehaviourEvent, GossipInstance, P2pService,
    exchange::{BlocksExchange, ChainExchange, ProposalsExchange, TxsExchange},
};
use crate::{metrics, topics::GossipKind};

impl P2pService {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen.send_modify(|addrs| addrs.push(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(peer = %peer_id, "connected");
                self.on_connection_established(peer_id, &endpoint);
                metrics::peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.on_connection_closed(peer_id);
                }
                metrics::peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "dial failed");
                // Unreachable or not who it claimed: not worth redialing soon. (Denied by a
                // limit or aborted: it may be fine at the next attempt.)
                if matches!(
                    error,
                    DialError::Transport(_)
                        | DialError::WrongPeerId { .. }
                        | DialError::NoAddresses
                ) {
                    self.on_dial_failed(peer);
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                peer_id,
                ..
            } => {
                tracing::debug!(peer = ?peer_id, %cause, "inbound connection denied");
                self.peering.denied_connections += 1;
                metrics::connection_denied();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => {
                self.on_gossip(event, GossipInstance::Consensus);
            }
            SwarmEvent::Behaviour(BehaviourEvent::TxGossip(event)) => {
                self.on_gossip(event, GossipInstance::Tx);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Txs(event)) => {
                self.on_exchange_event::<TxsExchange>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Blocks(event)) => {
                self.on_exchange_event::<BlocksExchange>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Proposals(event)) => {
                self.on_exchange_event::<ProposalsExchange>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Chain(event)) => {
                self.on_exchange_event::<ChainExchange>(event);
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event, instance: GossipInstance) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                // Messages gossipsub gave up sending to a peer that does not keep up.
                let dropped = failed_messages.priority + failed_messages.non_priority;
                tracing::debug!(peer = %peer_id, dropped, "slow peer");
                self.peering.send_dropped += dropped as u64;
                metrics::gossip_send_dropped(dropped);
                return;
            }
            _ => return,
        };
        // A topic we do not know, or one carried by the other instance, is not a message of ours.
        let kind = self
            .topics
            .kind_of(&message.topic)
            .filter(|kind| GossipInstance::of(*kind) == instance);
        let Some(kind) = kind else {
            self.swarm
                .behaviour_mut()
                .gossip_instance(instance)
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Reject,
                );
            return;
        };
        self.counters(kind).received += 1;
        let now = self.now();
        if kind == GossipKind::Tx && !self.limiters.tx_gossip.allow(propagation_source, 1.0, now) {
            // Over its budget: not provably bad, so ignored without a penalty.
            self.counters(kind).rate_limited += 1;
            metrics::gossip_rate_limited(kind);
            self.ignore(kind, &message_id, &propagation_source);
            return;
        }
        if let Err(full) = self
            .queues
            .push(kind, message_id, propagation_source, message.data, now)
        {
            // Validation is saturated: not the peer's fault, so ignored without a penalty.
            self.counters(kind).queue_dropped += 1;
            metrics::gossip_queue_dropped(kind);
            self.ignore(kind, &full.id, &full.source);
        }
    }

    /// The verdict on a message dropped at ingress.
    fn ignore(&mut self, kind: GossipKind, id: &MessageId, source: &PeerId) {
        self.counters(kind).ignored += 1;
        self.swarm
            .behaviour_mut()
            .gossip(kind)
            .report_message_validation_result(id, source, MessageAcceptance::Ignore);
    }
}
