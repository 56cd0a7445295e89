//! The swarm actor's command handling.

use libp2p::gossipsub::{self, MessageAcceptance};

use super::{P2pService, PeerReputation, SwarmCommand};
use crate::{
    error::{PublishError, RequestError},
    metrics,
    topics::GossipKind,
};

impl P2pService {
    pub(super) fn on_command(&mut self, command: SwarmCommand) {
        match command {
            SwarmCommand::Validated {
                id,
                source,
                kind,
                acceptance,
                penalty,
            } => {
                let counters = self.counters(kind);
                match acceptance {
                    MessageAcceptance::Accept => counters.accepted += 1,
                    MessageAcceptance::Ignore => counters.ignored += 1,
                    MessageAcceptance::Reject => counters.rejected += 1,
                }
                self.swarm
                    .behaviour_mut()
                    .gossip(kind)
                    .report_message_validation_result(&id, &source, acceptance);
                if let Some(action) = penalty {
                    self.penalize(source, action);
                }
            }
            SwarmCommand::Publish { kind, bytes, reply } => {
                let _ = reply.send(self.publish(kind, bytes));
            }
            SwarmCommand::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|err| RequestError::Failed {
                        peer: addr.to_string(),
                        reason: err.to_string(),
                    });
                let _ = reply.send(result);
            }
            SwarmCommand::ReportPeer { peer, action } => self.penalize(peer, action),
            SwarmCommand::RequestTxs {
                peer,
                hashes,
                reply,
            } => self.request_txs(peer, hashes, reply),
            SwarmCommand::RequestBlocks {
                peer,
                request,
                reply,
            } => self.request_blocks(peer, request, reply),
            SwarmCommand::RequestBlockProposals { peer, query, reply } => {
                self.request_block_proposals(peer, query, reply);
            }
            SwarmCommand::RequestProposedChain {
                peer,
                request,
                reply,
            } => self.request_proposed_chain(peer, request, reply),
            SwarmCommand::RespondTxs { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .txs
                    .send_response(channel, response);
            }
            SwarmCommand::RespondBlocks { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blocks
                    .send_response(channel, response);
            }
            SwarmCommand::RespondProposals { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .proposals
                    .send_response(channel, response);
            }
            SwarmCommand::RespondChain { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .chain
                    .send_response(channel, response);
            }
            SwarmCommand::Status { reply } => {
                let _ = reply.send(self.status());
            }
            SwarmCommand::PeerReputation { peer, reply } => {
                let now = self.now();
                let reputation = self.peering.peers.standing(&peer, now);
                let _ = reply.send(PeerReputation {
                    score: reputation.score,
                    banned: reputation.banned,
                    refused: reputation.refused,
                    connected: self.swarm.is_connected(&peer),
                    gossip_score: self.swarm.behaviour().gossipsub.peer_score(&peer),
                });
            }
        }
    }

    fn publish(&mut self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        let topic = self.topics.hash(kind).clone();
        self.swarm
            .behaviour_mut()
            .gossip(kind)
            .publish(topic, bytes)
            .map(|_| ())
            .map_err(|err| {
                metrics::publish_error(kind);
                match err {
                    gossipsub::PublishError::NoPeersSubscribedToTopic => PublishError::NoPeers,
                    gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                    gossipsub::PublishError::MessageTooLarge
                    | gossipsub::PublishError::TransformFailed(_) => PublishError::TooLarge,
                    other => PublishError::Gossipsub(other.to_string()),
                }
            })
    }

    fn status(&self) -> super::NetworkStatus {
        let behaviour = self.swarm.behaviour();
        let mesh_peers = GossipKind::ALL
            .map(|kind| {
                let mesh = behaviour
                    .gossip_ref(kind)
                    .mesh_peers(self.topics.hash(kind));
                (kind, mesh.count())
            })
            .to_vec();
        let gossip = GossipKind::ALL
            .map(|kind| (kind, self.counters.get(&kind).copied().unwrap_or_default()))
            .to_vec();
        let (outbound, inbound) = self.peering.directions();
        super::NetworkStatus {
            connected: self.swarm.connected_peers().copied().collect(),
            outbound,
            inbound,
            mesh_peers,
            gossip,
            denied_connections: self.peering.denied_connections,
            send_dropped: self.peering.send_dropped,
            discovery: self.peering.discovery_status(),
        }
    }
}
