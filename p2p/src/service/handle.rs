//! [`P2pHandle`]: how the rest of the node talks to the p2p service.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload, Tx,
    WireMessage,
    time::{Clock, Slot, Timestamp},
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{Answer, NetworkStatus, PeerReputation, SwarmCommand};
use crate::{
    deadline,
    error::{P2pError, PublishError, RequestError},
    events::P2pEvent,
    processor::{AttestationBook, AttestationList, OwnMessage, ProcessorCommand},
    reqresp::{
        BlockQuery, BlocksByRangeRequest, ChainBlock, ChainPoint, ChainProvider,
        ProposedChainRequest, SegmentFault, ServedBlock, verify_proposals, verify_segment,
    },
    scoring::PeerAction,
    snappy,
    topics::GossipKind,
    validation::GossipValidator,
    verified::Verified,
};

/// An attestation with the committee member who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedAttestation {
    /// The attester (recovered from the signature).
    pub attester: Address,
    /// The attestation.
    pub attestation: CheckpointAttestation,
}

/// The handle other components use: publish, collect attestations, fetch from peers, report
/// peers.
#[derive(Clone)]
pub struct P2pHandle {
    pub(super) swarm: mpsc::Sender<SwarmCommand>,
    pub(super) processor: mpsc::Sender<ProcessorCommand>,
    pub(super) events: broadcast::Sender<P2pEvent>,
    pub(super) listen: watch::Receiver<Vec<Multiaddr>>,
    pub(super) local_peer_id: PeerId,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) validator: GossipValidator,
    pub(super) provider: Arc<dyn ChainProvider>,
    pub(super) book: Arc<AttestationBook>,
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

    /// Equivocations, proposal sightings and dispatch events.
    pub fn subscribe(&self) -> broadcast::Receiver<P2pEvent> {
        self.events.subscribe()
    }

    /// Gossips a tx after the checks every peer runs on it (on the blocking pool: a signature
    /// recovery): one they would reject is refused with [`PublishError::WouldBeRejected`], so
    /// a bad submission never costs this node its peers' trust.
    pub async fn publish_tx(&self, tx: &Tx) -> Result<(), PublishError> {
        let validator = self.validator.clone();
        let now = self.clock.now();
        let tx = tx.clone();
        let frame = tokio::task::spawn_blocking(move || {
            validator.validate_tx(tx.clone(), now)?;
            Ok(snappy::compress(&tx.to_wire_bytes()))
        })
        .await
        .map_err(|_| PublishError::Stopped)?
        .map_err(PublishError::WouldBeRejected)?;
        self.publish_frame(GossipKind::Tx, frame).await
    }

    /// Gossips this node's block proposal, which must carry all its txs (pooled first, so a
    /// later copy is a duplicate).
    pub async fn publish_block_proposal(
        &self,
        proposal: BlockProposal,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::BlockProposal(Box::new(proposal)))
            .await
    }

    /// Gossips this node's checkpoint proposal, which must carry its last block.
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

    /// Attestations for `payload` (own included), with their attesters in the slot's committee
    /// order, ready for L1's `propose`: returned as soon as `quorum` attesters attested, or at
    /// `deadline` (of the injected clock; time spent queueing counts) with whatever arrived —
    /// at once, however busy the service is. An attester counts once, equivocating or not;
    /// attesters off the committee are left out. `Stopped` only when the service stopped.
    pub async fn collect_attestations(
        &self,
        payload: &ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> Result<Vec<CollectedAttestation>, P2pError> {
        let slot = Slot(payload.header.slot);
        let collected = wait_for_quorum(
            self.clock.as_ref(),
            &self.book,
            &self.processor,
            slot,
            payload.payload_hash(),
            quorum,
            deadline,
        )
        .await?;
        Ok(self.in_committee_order(slot, collected))
    }

    fn in_committee_order(
        &self,
        slot: Slot,
        collected: AttestationList,
    ) -> Vec<CollectedAttestation> {
        let committee = self.validator.duty(slot).map(|duty| duty.committee);
        let mut ordered: Vec<(usize, CollectedAttestation)> = collected
            .into_iter()
            .filter_map(|(attester, attestation)| {
                let position = match &committee {
                    Some(committee) => committee.iter().position(|member| *member == attester)?,
                    None => 0,
                };
                Some((
                    position,
                    CollectedAttestation {
                        attester,
                        attestation,
                    },
                ))
            })
            .collect();
        ordered.sort_by_key(|(position, collected)| (*position, collected.attester));
        ordered
            .into_iter()
            .map(|(_, collected)| collected)
            .collect()
    }

    /// Fetches txs by hash from `peer`, or from some connected peer. Returns those the peer had;
    /// every one was requested and none repeats.
    pub async fn request_txs(
        &self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
    ) -> Result<Vec<Tx>, RequestError> {
        let (_, txs) = self
            .answer(|reply| SwarmCommand::RequestTxs {
                peer,
                hashes,
                reply,
            })
            .await?;
        Ok(txs)
    }

    /// Fetches blocks `from .. from + count` from `peer` or some connected peer: consecutive
    /// from `from`, possibly fewer, each checked (see [`ChainBlock`]). Blocks served without a
    /// proposer signature are checked per checkpoint against L1 (through the chain provider),
    /// so a range that starts inside such a checkpoint cannot be checked and is refused
    /// ([`RequestError::Unverifiable`]); one that ends inside it is cut before it.
    pub async fn request_blocks(
        &self,
        peer: Option<PeerId>,
        from: u64,
        count: u32,
    ) -> Result<Vec<ChainBlock>, RequestError> {
        let (peer, served) = self
            .answer(|reply| SwarmCommand::RequestBlocks {
                peer,
                request: BlocksByRangeRequest { from, count },
                reply,
            })
            .await?;
        self.verified_segment(peer, from, None, served).await
    }

    /// Fetches the block proposals matching `query` (a missed gossip message) from `peer` or
    /// some connected peer, each checked like gossip except for its time window.
    pub async fn request_block_proposals(
        &self,
        peer: Option<PeerId>,
        query: BlockQuery,
    ) -> Result<Vec<Verified<BlockProposal>>, RequestError> {
        let (peer, served) = self
            .answer(|reply| SwarmCommand::RequestBlockProposals { peer, query, reply })
            .await?;
        let validator = self.validator.clone();
        let now = self.clock.now();
        let verified =
            tokio::task::spawn_blocking(move || verify_proposals(&validator, served, now))
                .await
                .map_err(|_| RequestError::Stopped)?;
        let blocks = self.judge_answer(peer, verified).await?;
        Ok(blocks
            .into_iter()
            .map(|block| block.with_source(peer))
            .collect())
    }

    /// Fetches the proposed chain after `after` (this node's tip, say) from `peer` or some
    /// connected peer: up to `max_blocks` blocks, each linking to the one before and carrying
    /// its proposer's valid signature (or, for blocks already on L1, checked against L1). A peer
    /// whose chain does not contain `after` answers [`crate::reqresp::ResponseStatus::UnknownAnchor`].
    pub async fn request_proposed_chain(
        &self,
        peer: Option<PeerId>,
        after: ChainPoint,
        max_blocks: u32,
    ) -> Result<Vec<ChainBlock>, RequestError> {
        self.request_proposed_chain_from(peer, after, max_blocks)
            .await
            .map(|(_, blocks)| blocks)
    }

    /// [`Self::request_proposed_chain`], also saying which peer answered (so a caller that
    /// later finds a served block invalid can charge that peer).
    pub async fn request_proposed_chain_from(
        &self,
        peer: Option<PeerId>,
        after: ChainPoint,
        max_blocks: u32,
    ) -> Result<(PeerId, Vec<ChainBlock>), RequestError> {
        let first = after.number.checked_add(1).ok_or(RequestError::Invalid(
            "no block after the last possible one",
        ))?;
        let (peer, served) = self
            .answer(|reply| SwarmCommand::RequestProposedChain {
                peer,
                request: ProposedChainRequest { after, max_blocks },
                reply,
            })
            .await?;
        let blocks = self
            .verified_segment(peer, first, Some(after.archive), served)
            .await?;
        Ok((peer, blocks))
    }

    async fn verified_segment(
        &self,
        peer: PeerId,
        first: u64,
        anchor: Option<B256>,
        served: Vec<ServedBlock>,
    ) -> Result<Vec<ChainBlock>, RequestError> {
        let verified = verify_segment(
            self.validator.clone(),
            Arc::clone(&self.provider),
            first,
            anchor,
            served,
        )
        .await;
        self.judge_answer(peer, verified).await
    }

    /// Penalises a peer whose answer was false; passes an unverifiable one on without blame.
    async fn judge_answer<T>(
        &self,
        peer: PeerId,
        verified: Result<T, SegmentFault>,
    ) -> Result<T, RequestError> {
        match verified {
            Ok(value) => Ok(value),
            Err(SegmentFault::Bad(reason)) => {
                let _ = self.report_peer(peer, PeerAction::MidToleranceError).await;
                Err(RequestError::BadResponse {
                    peer: peer.to_string(),
                    reason,
                })
            }
            Err(SegmentFault::Unverifiable(reason)) => Err(RequestError::Unverifiable {
                peer: peer.to_string(),
                reason,
            }),
        }
    }

    /// Charges `peer` for a fault found after its gossip was accepted (a block that fails
    /// re-execution, say): `action` picks how much.
    pub async fn report_peer(&self, peer: PeerId, action: PeerAction) -> Result<(), P2pError> {
        self.swarm
            .send(SwarmCommand::ReportPeer { peer, action })
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Dials `addr`.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), RequestError> {
        ask(&self.swarm, |reply| SwarmCommand::Dial { addr, reply })
            .await
            .ok_or(RequestError::Stopped)?
    }

    /// Connected peers, mesh sizes and gossip counters.
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

    /// Compresses and publishes a message on a topic, bypassing every local check: for tests
    /// of how peers treat bad gossip (a stripped proposal, say).
    #[cfg(feature = "test-utils")]
    pub async fn publish_raw(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.publish_frame(kind, snappy::compress(&bytes)).await
    }

    /// Publishes bytes exactly as given (no compression): for tests of undecodable frames.
    #[cfg(feature = "test-utils")]
    pub async fn publish_raw_frame(
        &self,
        kind: GossipKind,
        frame: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.publish_frame(kind, frame).await
    }

    async fn publish_frame(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
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

    async fn answer<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Answer<T>>) -> SwarmCommand,
    ) -> Answer<T> {
        ask(&self.swarm, command)
            .await
            .ok_or(RequestError::Stopped)?
    }
}

/// The attestations of `payload_hash` once `quorum` attesters attested it, or those there are
/// at `deadline`. They are read from the book the processor writes as it admits them, never
/// asked of the processor, so one busy at that moment (a verdict flood, a full dispatcher)
/// neither makes the caller late nor turns a partial answer into an error.
async fn wait_for_quorum(
    clock: &dyn Clock,
    book: &AttestationBook,
    processor: &mpsc::Sender<ProcessorCommand>,
    slot: Slot,
    payload_hash: B256,
    quorum: usize,
    deadline: Timestamp,
) -> Result<AttestationList, P2pError> {
    let mut watching = book.watch(slot, payload_hash);
    let reached = deadline::before(clock, deadline, async {
        tokio::select! {
            biased;
            reached = watching.wait_for(|list| list.len() >= quorum) => {
                Some(reached.map(|list| list.clone()))
            }
            () = processor.closed() => None,
        }
    })
    .await;
    match reached {
        Some(Some(Ok(list))) => Ok(list),
        Some(None) => Err(P2pError::Stopped),
        // The deadline, or the slot left the pool: what there is.
        Some(Some(Err(_))) | None => Ok(watching.borrow().clone()),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tandem_proto::time::ManualClock;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);
    /// The slot of the default payload.
    const SLOT: Slot = Slot(0);

    /// An attestation of the default payload by `signer`.
    fn attestation(signer: u8) -> (Address, CheckpointAttestation) {
        (
            Address::repeat_byte(signer),
            CheckpointAttestation::default(),
        )
    }

    fn recorded(book: &AttestationBook, signers: &[u8]) -> AttestationList {
        signers
            .iter()
            .map(|signer| {
                let (attester, attestation) = attestation(*signer);
                book.record(attester, &attestation);
                (attester, attestation)
            })
            .collect()
    }

    fn payload_hash() -> B256 {
        CheckpointAttestation::default().payload.payload_hash()
    }

    fn waiter(
        clock: &ManualClock,
        book: &Arc<AttestationBook>,
        processor: &mpsc::Sender<ProcessorCommand>,
        quorum: usize,
        deadline: Timestamp,
    ) -> tokio::task::JoinHandle<Result<AttestationList, P2pError>> {
        let (clock, book, processor) = (clock.clone(), Arc::clone(book), processor.clone());
        tokio::spawn(async move {
            let hash = payload_hash();
            wait_for_quorum(&clock, &book, &processor, SLOT, hash, quorum, deadline).await
        })
    }

    /// Until `count` waiters watch the test payload (they subscribed: what is recorded from
    /// now on has to wake them).
    async fn subscribed(book: &AttestationBook, count: usize) {
        tokio::time::timeout(PATIENCE, async {
            while book.watchers(SLOT, payload_hash()) < count {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the waiter never subscribed");
    }

    #[tokio::test]
    async fn a_busy_processor_at_the_deadline_still_yields_what_was_collected() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let book = Arc::new(AttestationBook::default());
        // A processor that never reads its commands (stuck behind a full dispatcher, say).
        let (processor, mut commands) = mpsc::channel(1);
        let deadline = Timestamp::from_secs(1_001);
        let expected = recorded(&book, &[1, 2]);
        let waiting = waiter(&clock, &book, &processor, 3, deadline);
        subscribed(&book, 1).await;
        let passed = std::time::Instant::now();
        clock.advance(Duration::from_secs(2));
        // Within a clock poll or so, not after a grace for a processor that does not answer
        // (the processor was never asked), and not an error: the service runs.
        let collected = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("waited past the deadline")
            .unwrap();
        let waited = passed.elapsed();
        assert!(waited < Duration::from_secs(1), "{waited:?}");
        assert!(commands.try_recv().is_err(), "the processor was asked");
        assert_eq!(collected.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_quorum_returns_before_the_deadline() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let book = Arc::new(AttestationBook::default());
        let (processor, _commands) = mpsc::channel(1);
        let waiting = waiter(&clock, &book, &processor, 2, Timestamp::from_secs(2_000));
        // Recorded after the waiter looked: only the wake-up on record can end its wait.
        subscribed(&book, 1).await;
        let expected = recorded(&book, &[1, 2]);
        let collected = tokio::time::timeout(PATIENCE, waiting).await.unwrap();
        assert_eq!(collected.unwrap().unwrap(), expected);
    }

    #[tokio::test]
    async fn only_a_stopped_processor_is_an_error() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let deadline = Timestamp::from_secs(2_000);
        let book = Arc::new(AttestationBook::default());
        let (processor, commands) = mpsc::channel(1);
        let expected = recorded(&book, &[1]);
        // The slot left the pool: what there was, and the processor runs on.
        let waiting = waiter(&clock, &book, &processor, 3, deadline);
        subscribed(&book, 1).await;
        book.prune(Slot(SLOT.0 + 1));
        let pruned = tokio::time::timeout(PATIENCE, waiting).await.unwrap();
        assert_eq!(pruned.unwrap().unwrap(), expected);
        // The processor ended.
        let waiting = waiter(&clock, &book, &processor, 3, deadline);
        drop(commands);
        let stopped = tokio::time::timeout(PATIENCE, waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(stopped, Err(P2pError::Stopped)), "{stopped:?}");
    }
}
