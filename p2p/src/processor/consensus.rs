//! The consensus processor: owns the pools; validates block proposals, checkpoint proposals and
//! attestations (the stateless checks on the blocking pool, several at once, so one large
//! proposal does not hold up a checkpoint's verdict); publishes this node's own messages; wakes
//! quorum waiters; hands accepted proposals to the dispatcher.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use futures::{
    FutureExt, StreamExt,
    future::BoxFuture,
    stream::{FuturesOrdered, FuturesUnordered},
};
use libp2p::{PeerId, gossipsub::MessageAcceptance};
use tandem_proto::{
    BlockProposal, WireMessage,
    time::{Clock, Slot, Timestamp},
};
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use super::{AttestationBook, OwnMessage, ProcessorCommand, blocking_failed, report_verdict};
use crate::{
    dispatch::DispatchItem,
    error::{P2pError, PublishError},
    events::P2pEvent,
    metrics,
    pipeline::{Accepted, GossipPipeline},
    pool::{Admission, Classification, POOL_RETAINED_SLOTS},
    queues::Inbound,
    recent::RecentProposals,
    scoring::judge,
    service::SwarmCommand,
    snappy,
    topics::GossipKind,
    validation::{Checked, GossipInvalid, lock},
    verified::Verified,
};

/// Consensus messages validated at once on the blocking pool.
const MAX_IN_FLIGHT: usize = 4;
/// Own messages larger than this are compressed on the blocking pool.
const COMPRESS_INLINE_LIMIT: usize = 64 * 1024;

type Validation = JoinHandle<(Inbound, Result<Checked, GossipInvalid>, Instant)>;

/// An own message whose checks ran (on the blocking pool, or inline when small).
struct OwnChecked {
    message: OwnMessage,
    kind: GossipKind,
    checked: Result<Checked, GossipInvalid>,
    compressed: Vec<u8>,
    reply: oneshot::Sender<Result<(), PublishError>>,
}

/// Own checks finish in the order they were asked for (a block before the checkpoint that
/// embeds it), while the processor serves everything else.
type OwnCheck = BoxFuture<'static, Result<OwnChecked, tokio::task::JoinError>>;

/// The three consensus queues.
pub(crate) struct ConsensusQueues {
    pub(crate) block_proposal: mpsc::Receiver<Inbound>,
    pub(crate) checkpoint_proposal: mpsc::Receiver<Inbound>,
    pub(crate) attestation: mpsc::Receiver<Inbound>,
}

pub(crate) struct ConsensusProcessor {
    pub(crate) pipeline: GossipPipeline,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) commands: mpsc::Receiver<ProcessorCommand>,
    pub(crate) queues: ConsensusQueues,
    pub(crate) swarm: mpsc::Sender<SwarmCommand>,
    pub(crate) dispatch: mpsc::Sender<DispatchItem>,
    pub(crate) events: broadcast::Sender<P2pEvent>,
    pub(crate) recent: Arc<Mutex<RecentProposals>>,
    /// The admitted attestations, for quorum waiters.
    book: Arc<AttestationBook>,
    last_pruned: Option<Slot>,
}

/// Whether the processor should go on (`false`: a channel it needs closed).
type KeepGoing = Result<bool, P2pError>;

impl ConsensusProcessor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pipeline: GossipPipeline,
        clock: Arc<dyn Clock>,
        commands: mpsc::Receiver<ProcessorCommand>,
        queues: ConsensusQueues,
        swarm: mpsc::Sender<SwarmCommand>,
        dispatch: mpsc::Sender<DispatchItem>,
        events: broadcast::Sender<P2pEvent>,
        recent: Arc<Mutex<RecentProposals>>,
        book: Arc<AttestationBook>,
    ) -> Self {
        Self {
            pipeline,
            clock,
            commands,
            queues,
            swarm,
            dispatch,
            events,
            recent,
            book,
            last_pruned: None,
        }
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<(), P2pError> {
        let mut in_flight: FuturesUnordered<Validation> = FuturesUnordered::new();
        let mut own_checks: FuturesOrdered<OwnCheck> = FuturesOrdered::new();
        loop {
            self.prune();
            let room = in_flight.len() < MAX_IN_FLIGHT;
            // Commands first (own publishing, quorum waits: the proposer's path), then finished
            // validations, then new gossip, checkpoints before blocks before attestations.
            let keep_going = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                Some(command) = self.commands.recv() => match command {
                    ProcessorCommand::PublishOwn { message, reply } => {
                        if let Some(check) = self.check_own(message, reply) {
                            own_checks.push_back(check);
                        }
                        true
                    }
                    ProcessorCommand::AdmitFetched { block, peer } => {
                        self.admit_fetched(block, peer).await?
                    }
                },
                Some(done) = own_checks.next(), if !own_checks.is_empty() => {
                    let done = done.map_err(|err| blocking_failed("own message check", &err))?;
                    self.on_own_checked(done).await?
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    let (inbound, result, started) =
                        done.map_err(|err| blocking_failed("consensus validation", &err))?;
                    self.on_checked(inbound, result, started).await?
                }
                Some(inbound) = self.queues.checkpoint_proposal.recv(), if room => {
                    in_flight.push(self.check(inbound));
                    true
                }
                Some(inbound) = self.queues.block_proposal.recv(), if room => {
                    in_flight.push(self.check(inbound));
                    true
                }
                Some(inbound) = self.queues.attestation.recv(), if room => {
                    in_flight.push(self.check(inbound));
                    true
                }
            };
            if !keep_going {
                return Ok(());
            }
        }
    }

    /// Starts the stateless checks of one message on the blocking pool.
    fn check(&self, inbound: Inbound) -> Validation {
        metrics::gossip_queue_depth(inbound.kind, self.queue_len(inbound.kind));
        let validator = self.pipeline.validator().clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result =
                validator.check_compressed(inbound.kind, &inbound.data, inbound.received_at);
            (inbound, result, started)
        })
    }

    fn queue_len(&self, kind: GossipKind) -> usize {
        match kind {
            GossipKind::BlockProposal => self.queues.block_proposal.len(),
            GossipKind::CheckpointProposal => self.queues.checkpoint_proposal.len(),
            GossipKind::CheckpointAttestation => self.queues.attestation.len(),
            GossipKind::Tx => 0,
        }
    }

    async fn on_checked(
        &mut self,
        inbound: Inbound,
        checked: Result<Checked, GossipInvalid>,
        started: Instant,
    ) -> KeepGoing {
        let attestation = match &checked {
            Ok(Checked::Attestation(attestation)) => Some(attestation.clone()),
            _ => None,
        };
        let result = checked.and_then(|checked| self.pipeline.admit(checked));
        // Admitted (new, or an equivocator's second, which the pool keeps under its payload
        // too): in the book before the verdict goes out.
        if let (Some(attestation), Ok(Accepted::Attestation(_) | Accepted::Equivocated { .. })) =
            (&attestation, &result)
        {
            self.book.record(attestation.signer(), attestation);
        }
        if !report_verdict(&self.swarm, &inbound, &result, started).await {
            return Ok(false);
        }
        self.publish_equivocations();
        match result {
            Ok(accepted) => self.dispatch(accepted, inbound.source).await,
            Err(_) => Ok(true),
        }
    }

    fn prune(&mut self) {
        let Some(current) = self.pipeline.validator().current_slot(self.clock.now()) else {
            return;
        };
        if self.last_pruned == Some(current) {
            return;
        }
        self.last_pruned = Some(current);
        self.pipeline.pool_mut().prune(current);
        let oldest = Slot(current.0.saturating_sub(POOL_RETAINED_SLOTS));
        lock(&self.recent).prune(oldest);
        self.book.prune(oldest);
    }

    fn publish_equivocations(&mut self) {
        for evidence in self.pipeline.take_equivocations() {
            tracing::warn!(
                kind = %evidence.kind(),
                slot = %evidence.slot(),
                signer = %evidence.signer,
                "equivocation detected"
            );
            metrics::equivocation(evidence.kind());
            let _ = self.events.send(P2pEvent::Equivocation(Box::new(evidence)));
        }
    }

    async fn dispatch(&mut self, accepted: Accepted, source: PeerId) -> KeepGoing {
        let now = self.clock.now();
        let item = match accepted {
            Accepted::Tx(_) => return Ok(true),
            Accepted::Attestation(_) => return Ok(true),
            Accepted::Block(block) => {
                self.record_margin(GossipKind::BlockProposal, Slot(block.header.slot), now);
                lock(&self.recent).insert(Arc::clone(block.message()));
                DispatchItem::Block(block.with_source(source))
            }
            Accepted::Checkpoint {
                last_index,
                last_block,
                checkpoint,
            } => {
                let slot = Slot(checkpoint.payload.header.slot);
                self.record_margin(GossipKind::CheckpointProposal, slot, now);
                let _ = self.events.send(P2pEvent::CheckpointProposalSeen(slot));
                if let Some(block) = &last_block {
                    lock(&self.recent).insert(Arc::clone(block.message()));
                }
                DispatchItem::Checkpoint {
                    last_index,
                    last_block: last_block.map(|block| block.with_source(source)),
                    checkpoint: checkpoint.with_source(source),
                }
            }
            Accepted::Equivocated { last_block: None } => return Ok(true),
            Accepted::Equivocated {
                last_block: Some(block),
            } => {
                lock(&self.recent).insert(Arc::clone(block.message()));
                DispatchItem::Block(block.with_source(source))
            }
        };
        // Waits when the dispatcher is behind rather than lose an accepted proposal: gossipsub
        // would never deliver it again. The dispatcher only queues and spawns, so the wait is
        // short; meanwhile new gossip waits in the bounded topic queues.
        Ok(self.dispatch.send(item).await.is_ok())
    }

    fn record_margin(&self, kind: GossipKind, slot: Slot, now: Timestamp) {
        let deadline = self
            .pipeline
            .validator()
            .windows()
            .checkpoint_proposal_receive_deadline(slot);
        metrics::deadline_margin(kind, deadline.millis_since(now) as f64 / 1000.0);
    }

    /// A block fetched from a peer (a lane's missing block): pooled and dispatched like gossip.
    async fn admit_fetched(&mut self, block: Verified<BlockProposal>, peer: PeerId) -> KeepGoing {
        let admitted = self.pipeline.admit_block(&block);
        self.publish_equivocations();
        if !matches!(admitted, Ok(Admission::New)) {
            return Ok(true);
        }
        let (slot, index) = (
            Slot(block.header.slot),
            block.header.index_within_checkpoint,
        );
        lock(&self.recent).insert(Arc::clone(block.message()));
        let _ = self
            .events
            .send(P2pEvent::BlockFetched { slot, index, peer });
        Ok(self
            .dispatch
            .send(DispatchItem::Block(block.with_source(peer)))
            .await
            .is_ok())
    }

    /// Starts the checks every peer runs on an own message, before anything is pooled: a
    /// message they would reject is refused (a sequencer bug must not cost this node its
    /// peers' trust); what they would only ignore (slightly late, say) still goes out. `None`:
    /// answered at once.
    fn check_own(
        &self,
        message: OwnMessage,
        reply: oneshot::Sender<Result<(), PublishError>>,
    ) -> Option<OwnCheck> {
        let (kind, bytes) = match &message {
            OwnMessage::BlockProposal(block) => (GossipKind::BlockProposal, block.to_wire_bytes()),
            OwnMessage::CheckpointProposal(checkpoint) => {
                (GossipKind::CheckpointProposal, checkpoint.to_wire_bytes())
            }
            OwnMessage::Attestation(attestation) => (
                GossipKind::CheckpointAttestation,
                attestation.to_wire_bytes(),
            ),
        };
        if bytes.len() > kind.max_message_size() {
            let _ = reply.send(Err(PublishError::TooLarge));
            return None;
        }
        let validator = self.pipeline.validator().clone();
        let now = self.clock.now();
        // Attestations cost two signature recoveries, large proposals their tx hashes: never
        // on the processor's worker.
        let inline =
            bytes.len() <= COMPRESS_INLINE_LIMIT && kind != GossipKind::CheckpointAttestation;
        let check = move || OwnChecked {
            checked: validator.check(kind, &bytes, now),
            compressed: snappy::compress(&bytes),
            message,
            kind,
            reply,
        };
        Some(if inline {
            futures::future::ready(Ok(check())).boxed()
        } else {
            tokio::task::spawn_blocking(check).boxed()
        })
    }

    async fn on_own_checked(&mut self, done: OwnChecked) -> KeepGoing {
        let OwnChecked {
            message,
            kind,
            checked,
            compressed,
            reply,
        } = done;
        let signer = match checked {
            Ok(Checked::Tx(tx)) => Some(tx.signer()),
            Ok(Checked::Block(block)) => Some(block.signer()),
            Ok(Checked::Checkpoint { checkpoint, .. }) => Some(checkpoint.signer()),
            Ok(Checked::Attestation(attestation)) => Some(attestation.signer()),
            Err(invalid) if judge(&invalid).0 == MessageAcceptance::Reject => {
                let _ = reply.send(Err(PublishError::WouldBeRejected(invalid)));
                return Ok(true);
            }
            // Peers would only ignore it (slightly late, committee unknown): it still goes out.
            Err(_) => None,
        };
        if let Err(err) = self.admit_own(message, signer) {
            let _ = reply.send(Err(err));
            return Ok(true);
        }
        Ok(self
            .swarm
            .send(SwarmCommand::Publish {
                kind,
                bytes: compressed,
                reply,
            })
            .await
            .is_ok())
    }

    /// Pools this node's own message (checked as peers check it), so a copy coming back is a
    /// duplicate (and an own attestation counts towards quorum). The pool's verdict comes first
    /// and nothing is pooled unless every part of the message would be: peers run the same pool
    /// stage, and an own equivocation, a capped duty or an equivocating last block must never
    /// leave this node. Own proposals are never dispatched: the proposer stored them before
    /// publishing. `signer` is what validation recovered, when it got that far.
    fn admit_own(
        &mut self,
        message: OwnMessage,
        signer: Option<tandem_proto::Address>,
    ) -> Result<(), PublishError> {
        let domain = *self.pipeline.validator().domain();
        let embeds_txs = |block: &tandem_proto::BlockProposal| {
            if block.txs.len() == block.tx_hashes.len() {
                Ok(())
            } else {
                Err(PublishError::Invalid(
                    "a block proposal must carry all its txs",
                ))
            }
        };
        match message {
            OwnMessage::BlockProposal(block) => {
                embeds_txs(&block)?;
                let signer = match signer {
                    Some(signer) => signer,
                    None => block
                        .recover_proposer(&domain)
                        .map_err(|_| PublishError::BadSignature)?,
                };
                let pool = self.pipeline.pool_mut();
                own_verdict(pool.classify_block_proposal(&block, signer))?;
                let _ = pool.admit_block_proposal(&block, signer);
                lock(&self.recent).insert(Arc::new(*block));
            }
            OwnMessage::CheckpointProposal(mut checkpoint) => {
                let block = checkpoint.last_block.take().ok_or(PublishError::Invalid(
                    "a checkpoint proposal must carry its last block",
                ))?;
                embeds_txs(&block)?;
                let signer = match signer {
                    Some(signer) => signer,
                    None => checkpoint
                        .recover_proposer(&domain)
                        .map_err(|_| PublishError::BadSignature)?,
                };
                let pool = self.pipeline.pool_mut();
                // As peers judge it (`GossipPipeline::admit`): the embedded block first, and
                // an already published last block is fine.
                match pool.classify_block_proposal(&block, signer) {
                    Classification::New
                    | Classification::Duplicate
                    | Classification::TooManyProposers(_) => {}
                    Classification::Equivocation => {
                        return Err(PublishError::WouldBeRejected(
                            GossipInvalid::LastBlockEquivocated,
                        ));
                    }
                    Classification::CapExceeded(cap) => {
                        return Err(PublishError::WouldBeRejected(
                            GossipInvalid::LastBlockInvalid(Box::new(
                                GossipInvalid::PoolCapExceeded(cap),
                            )),
                        ));
                    }
                }
                own_verdict(pool.classify_checkpoint_proposal(&checkpoint, signer))?;
                let _ = pool.admit_block_proposal(&block, signer);
                let _ = pool.admit_checkpoint_proposal(&checkpoint, signer);
                lock(&self.recent).insert(Arc::new(block));
            }
            OwnMessage::Attestation(attestation) => {
                let attester = match signer {
                    Some(attester) => attester,
                    None => attestation
                        .recover_attester(&domain)
                        .map_err(|_| PublishError::BadSignature)?,
                };
                let pool = self.pipeline.pool_mut();
                own_verdict(pool.classify_attestation(&attestation, attester))?;
                if let Ok(Admission::New) = pool.admit_attestation(&attestation, attester) {
                    self.book.record(attester, &attestation);
                }
            }
        }
        Ok(())
    }
}

/// The pool's verdict on an own message: a new one may be sent, and one peers would only
/// ignore (a slot with too many proposers already) too, as with the gossip checks.
fn own_verdict(classification: Classification) -> Result<(), PublishError> {
    match classification {
        Classification::New | Classification::TooManyProposers(_) => Ok(()),
        Classification::Duplicate => Err(PublishError::Duplicate),
        Classification::Equivocation => Err(PublishError::OwnEquivocation),
        Classification::CapExceeded(cap) => Err(PublishError::WouldBeRejected(
            GossipInvalid::PoolCapExceeded(cap),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use libp2p::gossipsub::MessageId;
    use tandem_proto::{
        Address, B256, BlockHeader, BlockProposal, SigningDomain, SigningKey, block_body_hash,
        time::{ConsensusWindows, ManualClock, SlotClock},
    };

    use super::*;
    use crate::{
        committee::StaticCommittee,
        config::QueueLimits,
        queues::GossipQueues,
        validation::{GossipValidator, TxRules},
    };

    /// A message that waited in this node's queue past its window is judged by when it came.
    #[tokio::test]
    async fn the_window_is_checked_at_receipt_not_after_queueing() {
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(1_000_000),
            Duration::from_secs(60),
            Duration::from_secs(12),
            32,
        )
        .unwrap();
        let windows = ConsensusWindows::new(
            slot_clock,
            Duration::from_secs(6),
            tandem_proto::time::PipeliningMode::Pipelined,
            Duration::from_secs(6),
        );
        let domain = SigningDomain {
            chain_id: 5,
            rollup: Address::repeat_byte(1),
        };
        let key = SigningKey::from_bytes(&[7; 32]).unwrap();
        let committee = Arc::new(StaticCommittee::new(vec![key.address()]));
        let validator = GossipValidator::new(
            domain,
            windows,
            committee,
            TxRules { min_mana_limit: 0 },
            16,
        );
        let slot = Slot(10);
        let header = BlockHeader {
            chain_id: domain.chain_id,
            slot: slot.0,
            body_hash: block_body_hash(&[]),
            ..BlockHeader::default()
        };
        let block = BlockProposal::sign(header, B256::repeat_byte(3), vec![], &domain, &key);
        let window = windows.block_proposal(slot);
        let clock = ManualClock::new(window.end);

        let (queues, receivers) = GossipQueues::new(&QueueLimits::default());
        let (_commands_tx, commands) = mpsc::channel(1);
        let (swarm_tx, mut swarm_rx) = mpsc::channel(4);
        let (dispatch_tx, mut dispatch_rx) = mpsc::channel(4);
        let processor = ConsensusProcessor::new(
            GossipPipeline::new(validator),
            Arc::new(clock.clone()),
            commands,
            ConsensusQueues {
                block_proposal: receivers.block_proposal,
                checkpoint_proposal: receivers.checkpoint_proposal,
                attestation: receivers.attestation,
            },
            swarm_tx,
            dispatch_tx,
            broadcast::channel(4).0,
            Arc::default(),
            Arc::default(),
        );
        // Received at the last instant of its window; validated a minute later.
        assert!(
            queues
                .push(
                    GossipKind::BlockProposal,
                    MessageId::from(vec![1]),
                    PeerId::random(),
                    snappy::compress(&block.to_wire_bytes()),
                    window.end,
                )
                .is_ok()
        );
        clock.advance(Duration::from_secs(60));
        let cancel = CancellationToken::new();
        let running = tokio::spawn(processor.run(cancel.clone()));

        let Some(SwarmCommand::Validated { acceptance, .. }) = swarm_rx.recv().await else {
            panic!("no verdict");
        };
        assert_eq!(acceptance, MessageAcceptance::Accept);
        let Some(DispatchItem::Block(dispatched)) = dispatch_rx.recv().await else {
            panic!("not dispatched");
        };
        assert_eq!(dispatched.received_at(), window.end);
        cancel.cancel();
        running.await.unwrap().unwrap();
    }
}
