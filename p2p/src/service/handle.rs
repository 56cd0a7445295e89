//! [`P2pHandle`]: how the rest of the node talks to the p2p service.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tandem_proto::{
    B256, Block, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload, Tx,
    WireMessage,
    time::{Clock, Slot, Timestamp},
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{NetworkStatus, PeerReputation, SwarmCommand};
use crate::{
    error::{P2pError, PublishError, RequestError},
    processor::{OwnMessage, P2pEvent, ProcessorCommand},
    reqresp::BlocksByRangeRequest,
    topics::GossipKind,
};

/// The handle other components use: publish, collect attestations, fetch txs and blocks.
#[derive(Clone)]
pub struct P2pHandle {
    pub(super) swarm: mpsc::Sender<SwarmCommand>,
    pub(super) processor: mpsc::Sender<ProcessorCommand>,
    pub(super) events: broadcast::Sender<P2pEvent>,
    pub(super) listen: watch::Receiver<Vec<Multiaddr>>,
    pub(super) local_peer_id: PeerId,
    pub(super) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle")
            .field("local_peer_id", &self.local_peer_id)
            .finish_non_exhaustive()
    }
}

impl P2pHandle {
    /// This node's peer id.
    pub const fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on, once it does (`/p2p/<id>` not included).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let mut listen = self.listen.clone();
        let addrs = listen
            .wait_for(|addrs| !addrs.is_empty())
            .await
            .map_err(|_| P2pError::Stopped)?;
        Ok(addrs.clone())
    }

    /// Equivocations and proposal sightings.
    pub fn subscribe(&self) -> broadcast::Receiver<P2pEvent> {
        self.events.subscribe()
    }

    /// Gossips a tx.
    pub async fn publish_tx(&self, tx: &Tx) -> Result<(), PublishError> {
        self.publish_bytes(GossipKind::Tx, tx.to_wire_bytes()).await
    }

    /// Gossips this node's block proposal (pooled first, so a later copy is a duplicate).
    pub async fn publish_block_proposal(
        &self,
        proposal: BlockProposal,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::BlockProposal(Box::new(proposal)))
            .await
    }

    /// Gossips this node's checkpoint proposal.
    pub async fn publish_checkpoint_proposal(
        &self,
        proposal: CheckpointProposal,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::CheckpointProposal(Box::new(proposal)))
            .await
    }

    /// Gossips an attestation (it also counts in this node's pool).
    pub async fn publish_attestation(
        &self,
        attestation: CheckpointAttestation,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::Attestation(Box::new(attestation)))
            .await
    }

    /// Attestations for `payload` (one per attester, own included), returned as soon as there
    /// are `quorum` of them or at `deadline` with whatever arrived.
    pub async fn collect_attestations(
        &self,
        payload: &ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> Result<Vec<CheckpointAttestation>, P2pError> {
        let slot = Slot(payload.header.slot);
        let payload_hash = payload.payload_hash();
        let (reply, quorum_reached) = oneshot::channel();
        self.processor
            .send(ProcessorCommand::AwaitQuorum {
                slot,
                payload_hash,
                quorum,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        let wait = self.clock.now().until(deadline);
        if let Ok(Ok(attestations)) = tokio::time::timeout(wait, quorum_reached).await {
            return Ok(attestations);
        }
        ask(&self.processor, |reply| ProcessorCommand::Attestations {
            slot,
            payload_hash,
            reply,
        })
        .await
        .ok_or(P2pError::Stopped)
    }

    /// Fetches txs by hash from `peer`, or from some connected peer. Returns those the peer had;
    /// every one was requested and none repeats.
    pub async fn request_txs(
        &self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
    ) -> Result<Vec<Tx>, RequestError> {
        ask(&self.swarm, |reply| SwarmCommand::RequestTxs {
            peer,
            hashes,
            reply,
        })
        .await
        .ok_or(RequestError::Stopped)?
    }

    /// Fetches blocks `from .. from + count` from `peer` or some connected peer: consecutive,
    /// starting at `from`, possibly fewer.
    pub async fn request_blocks(
        &self,
        peer: Option<PeerId>,
        from: u64,
        count: u32,
    ) -> Result<Vec<Block>, RequestError> {
        ask(&self.swarm, |reply| SwarmCommand::RequestBlocks {
            peer,
            request: BlocksByRangeRequest { from, count },
            reply,
        })
        .await
        .ok_or(RequestError::Stopped)?
    }

    /// Dials `addr`.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), RequestError> {
        ask(&self.swarm, |reply| SwarmCommand::Dial { addr, reply })
            .await
            .ok_or(RequestError::Stopped)?
    }

    /// Connected peers and mesh sizes.
    pub async fn status(&self) -> Result<NetworkStatus, P2pError> {
        ask(&self.swarm, |reply| SwarmCommand::Status { reply })
            .await
            .ok_or(P2pError::Stopped)
    }

    /// `peer`'s standing.
    pub async fn peer_reputation(&self, peer: PeerId) -> Result<PeerReputation, P2pError> {
        ask(&self.swarm, |reply| SwarmCommand::PeerReputation {
            peer,
            reply,
        })
        .await
        .ok_or(P2pError::Stopped)
    }

    /// Publishes arbitrary bytes on a topic, bypassing every local check: for tests of how
    /// peers treat bad gossip.
    #[cfg(feature = "test-utils")]
    pub async fn publish_raw(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.publish_bytes(kind, bytes).await
    }

    async fn publish_bytes(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        ask(&self.swarm, |reply| SwarmCommand::Publish {
            kind,
            bytes,
            reply,
        })
        .await
        .ok_or(PublishError::Stopped)?
    }

    async fn publish_own(&self, message: OwnMessage) -> Result<(), PublishError> {
        ask(&self.processor, |reply| ProcessorCommand::PublishOwn {
            message,
            reply,
        })
        .await
        .ok_or(PublishError::Stopped)?
    }
}

/// Sends a command carrying a reply channel and waits for the reply; `None` when the service
/// stopped before answering.
async fn ask<C, T>(
    commands: &mpsc::Sender<C>,
    command: impl FnOnce(oneshot::Sender<T>) -> C,
) -> Option<T> {
    let (reply, response) = oneshot::channel();
    commands.send(command(reply)).await.ok()?;
    response.await.ok()
}
