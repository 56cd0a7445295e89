//! Gossip processing: decode (stage 1), validate (stage 2), pool admission, and the verdict back
//! to the swarm — exactly one per message. Runs on its own task, owning the pools, so the swarm
//! task never does CPU work beyond snappy.

use std::{collections::HashMap, time::Instant};

use libp2p::{PeerId, gossipsub::MessageAcceptance, gossipsub::MessageId};
use tandem_proto::{
    B256, BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx, Tx, WireMessage,
    time::{Clock, Slot, Timestamp},
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    dispatch::{CONSENSUS_LANE, ConsensusItem, TX_LANE},
    error::PublishError,
    metrics::{self, Verdict},
    pool::{Admission, Equivocation, ProposalPool},
    scoring::judge,
    service::SwarmCommand,
    topics::GossipKind,
    validation::{GossipInvalid, GossipValidator},
    verified::Verified,
};

/// What accepted gossip leads to.
#[derive(Debug)]
pub enum Accepted {
    /// A tx for the pool.
    Tx(Verified<RecoveredTx>),
    /// A block proposal to process.
    Block(Verified<BlockProposal>),
    /// A checkpoint proposal to process, after its last block (when new).
    Checkpoint {
        /// The embedded last block, unless it was seen before.
        last_block: Option<Verified<BlockProposal>>,
        /// The checkpoint.
        checkpoint: Verified<CheckpointProposal>,
    },
    /// An attestation, now in the pool.
    Attestation(Verified<CheckpointAttestation>),
    /// An equivocating message: propagated, not processed (except a new embedded last block).
    Equivocated {
        /// The embedded last block of an equivocating checkpoint, when new.
        last_block: Option<Verified<BlockProposal>>,
    },
}

/// Decoding, validation and pool admission, without any I/O: the processor task runs it and the
/// benchmarks measure it.
#[derive(Debug)]
pub struct GossipPipeline {
    validator: GossipValidator,
    pool: ProposalPool,
    equivocations: Vec<Equivocation>,
}

impl GossipPipeline {
    /// A pipeline with an empty pool.
    pub fn new(validator: GossipValidator) -> Self {
        Self {
            validator,
            pool: ProposalPool::new(),
            equivocations: Vec::new(),
        }
    }

    /// Decodes, validates and admits one message received at `now`.
    pub fn accept(
        &mut self,
        kind: GossipKind,
        data: &[u8],
        now: Timestamp,
    ) -> Result<Accepted, GossipInvalid> {
        match kind {
            GossipKind::Tx => {
                let tx = Tx::from_wire_bytes(data)?;
                Ok(Accepted::Tx(self.validator.validate_tx(tx, now)?))
            }
            GossipKind::BlockProposal => {
                let proposal = BlockProposal::from_wire_bytes(data)?;
                let proposal = self.validator.validate_block_proposal(proposal, now)?;
                Ok(match self.admit_block(&proposal)? {
                    Admission::New => Accepted::Block(proposal),
                    Admission::Equivocation(_) => Accepted::Equivocated { last_block: None },
                })
            }
            GossipKind::CheckpointProposal => {
                let proposal = CheckpointProposal::from_wire_bytes(data)?;
                let (checkpoint, last_block) =
                    self.validator.validate_checkpoint_proposal(proposal, now)?;
                // The embedded block first: an equivocating last block sinks the checkpoint.
                let last_block = match last_block {
                    None => None,
                    Some(block) => match self.admit_block(&block) {
                        Ok(Admission::New) => Some(block),
                        Err(GossipInvalid::Duplicate) => None,
                        Ok(Admission::Equivocation(_)) => {
                            return Err(GossipInvalid::LastBlockEquivocated);
                        }
                        Err(err) => return Err(GossipInvalid::LastBlockInvalid(Box::new(err))),
                    },
                };
                let slot = Slot(checkpoint.payload.header.slot);
                match self.pool.admit_checkpoint_proposal(
                    slot,
                    checkpoint.payload.payload_hash(),
                    checkpoint.signer(),
                ) {
                    Ok(Admission::New) => Ok(Accepted::Checkpoint {
                        last_block,
                        checkpoint,
                    }),
                    Ok(Admission::Equivocation(evidence)) => {
                        self.equivocations.push(evidence);
                        Ok(Accepted::Equivocated { last_block })
                    }
                    Err(err) => Err(err),
                }
            }
            GossipKind::CheckpointAttestation => {
                let attestation = CheckpointAttestation::from_wire_bytes(data)?;
                let attestation = self.validator.validate_attestation(attestation, now)?;
                match self
                    .pool
                    .admit_attestation(&attestation, attestation.signer())?
                {
                    Admission::New => Ok(Accepted::Attestation(attestation)),
                    Admission::Equivocation(evidence) => {
                        self.equivocations.push(evidence);
                        Ok(Accepted::Equivocated { last_block: None })
                    }
                }
            }
        }
    }

    fn admit_block(&mut self, block: &Verified<BlockProposal>) -> Result<Admission, GossipInvalid> {
        let admission = self.pool.admit_block_proposal(
            Slot(block.header.slot),
            block.header.index_within_checkpoint,
            block.payload_hash(),
            block.signer(),
        )?;
        if let Admission::Equivocation(evidence) = admission {
            self.equivocations.push(evidence);
        }
        Ok(admission)
    }

    /// Equivocations detected since the last call.
    pub fn take_equivocations(&mut self) -> Vec<Equivocation> {
        std::mem::take(&mut self.equivocations)
    }

    /// The pools.
    pub const fn pool(&self) -> &ProposalPool {
        &self.pool
    }

    fn pool_mut(&mut self) -> &mut ProposalPool {
        &mut self.pool
    }
}

/// Something this node learned from gossip that other components may care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P2pEvent {
    /// Someone signed two different messages for one key (slashable evidence).
    Equivocation(Equivocation),
    /// A valid checkpoint proposal for `slot` was seen (the archiver's orphan prune waits
    /// longer for the blocks of such slots).
    CheckpointProposalSeen(Slot),
}

/// A message this node publishes itself.
#[derive(Debug)]
pub(crate) enum OwnMessage {
    BlockProposal(Box<BlockProposal>),
    CheckpointProposal(Box<CheckpointProposal>),
    Attestation(Box<CheckpointAttestation>),
}

/// A gossip message waiting for validation.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
    pub(crate) kind: GossipKind,
    pub(crate) data: Vec<u8>,
}

pub(crate) enum ProcessorCommand {
    Gossip(Inbound),
    PublishOwn {
        message: OwnMessage,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    AwaitQuorum {
        slot: Slot,
        payload_hash: B256,
        quorum: usize,
        reply: oneshot::Sender<Vec<CheckpointAttestation>>,
    },
    Attestations {
        slot: Slot,
        payload_hash: B256,
        reply: oneshot::Sender<Vec<CheckpointAttestation>>,
    },
}

pub(crate) struct QuorumWaiter {
    quorum: usize,
    reply: oneshot::Sender<Vec<CheckpointAttestation>>,
}

pub(crate) struct Processor {
    pub(crate) pipeline: GossipPipeline,
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    pub(crate) commands: mpsc::Receiver<ProcessorCommand>,
    pub(crate) swarm: mpsc::Sender<SwarmCommand>,
    pub(crate) consensus_lane: mpsc::Sender<ConsensusItem>,
    pub(crate) tx_lane: mpsc::Sender<Verified<RecoveredTx>>,
    pub(crate) events: broadcast::Sender<P2pEvent>,
    pub(crate) waiters: HashMap<(Slot, B256), Vec<QuorumWaiter>>,
    pub(crate) last_pruned: Option<Slot>,
}

impl Processor {
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        loop {
            let command = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                command = self.commands.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
            };
            self.prune();
            let keep_going = match command {
                ProcessorCommand::Gossip(inbound) => self.on_gossip(inbound).await,
                ProcessorCommand::PublishOwn { message, reply } => {
                    self.on_publish_own(message, reply).await
                }
                ProcessorCommand::AwaitQuorum {
                    slot,
                    payload_hash,
                    quorum,
                    reply,
                } => {
                    let collected = self.pipeline.pool().attestations_for(slot, &payload_hash);
                    if collected.len() >= quorum {
                        let _ = reply.send(collected);
                    } else {
                        self.waiters
                            .entry((slot, payload_hash))
                            .or_default()
                            .push(QuorumWaiter { quorum, reply });
                    }
                    true
                }
                ProcessorCommand::Attestations {
                    slot,
                    payload_hash,
                    reply,
                } => {
                    let _ = reply.send(self.pipeline.pool().attestations_for(slot, &payload_hash));
                    true
                }
            };
            if !keep_going {
                return;
            }
        }
    }

    fn prune(&mut self) {
        let Some(current) = self.pipeline.validator.current_slot(self.clock.now()) else {
            return;
        };
        if self.last_pruned == Some(current) {
            return;
        }
        self.last_pruned = Some(current);
        self.pipeline.pool_mut().prune(current);
        let oldest = Slot(current.0.saturating_sub(crate::pool::POOL_RETAINED_SLOTS));
        self.waiters.retain(|(slot, _), waiters| {
            waiters.retain(|waiter| !waiter.reply.is_closed());
            *slot >= oldest && !waiters.is_empty()
        });
    }

    async fn on_gossip(&mut self, inbound: Inbound) -> bool {
        let started = Instant::now();
        let now = self.clock.now();
        let result = self.pipeline.accept(inbound.kind, &inbound.data, now);
        let (acceptance, penalty) = match &result {
            Ok(_) => (MessageAcceptance::Accept, None),
            Err(err) => {
                tracing::debug!(topic = %inbound.kind, peer = %inbound.source, %err, "gossip not accepted");
                judge(err)
            }
        };
        let verdict = match acceptance {
            MessageAcceptance::Accept => Verdict::Accept,
            MessageAcceptance::Ignore => Verdict::Ignore,
            MessageAcceptance::Reject => Verdict::Reject,
        };
        metrics::gossip_message(inbound.kind, verdict, started.elapsed());
        let report = SwarmCommand::Validated {
            id: inbound.id,
            source: inbound.source,
            acceptance,
            penalty,
        };
        if self.swarm.send(report).await.is_err() {
            return false;
        }
        self.publish_equivocations();
        if let Ok(accepted) = result {
            self.dispatch(accepted, Some(inbound.source), now);
        }
        true
    }

    fn publish_equivocations(&mut self) {
        for evidence in self.pipeline.take_equivocations() {
            tracing::warn!(
                kind = %evidence.kind,
                slot = %evidence.slot,
                signer = %evidence.signer,
                "equivocation detected"
            );
            metrics::equivocation(evidence.kind);
            let _ = self.events.send(P2pEvent::Equivocation(evidence));
        }
    }

    fn dispatch(&mut self, accepted: Accepted, source: Option<PeerId>, now: Timestamp) {
        let with_source = |verified: Verified<BlockProposal>| match source {
            Some(peer) => verified.with_source(peer),
            None => verified,
        };
        match accepted {
            Accepted::Tx(tx) => {
                let tx = match source {
                    Some(peer) => tx.with_source(peer),
                    None => tx,
                };
                if self.tx_lane.try_send(tx).is_err() {
                    metrics::handler_dropped(TX_LANE);
                }
            }
            Accepted::Block(block) => {
                self.record_margin(GossipKind::BlockProposal, Slot(block.header.slot), now);
                self.send_consensus(ConsensusItem::Block(with_source(block)));
            }
            Accepted::Checkpoint {
                last_block,
                checkpoint,
            } => {
                let slot = Slot(checkpoint.payload.header.slot);
                self.record_margin(GossipKind::CheckpointProposal, slot, now);
                let _ = self.events.send(P2pEvent::CheckpointProposalSeen(slot));
                let checkpoint = match source {
                    Some(peer) => checkpoint.with_source(peer),
                    None => checkpoint,
                };
                self.send_consensus(ConsensusItem::Checkpoint {
                    last_block: last_block.map(with_source),
                    checkpoint,
                });
            }
            Accepted::Attestation(attestation) => self.notify_waiters(&attestation),
            Accepted::Equivocated { last_block } => {
                if let Some(block) = last_block {
                    self.send_consensus(ConsensusItem::Block(with_source(block)));
                }
            }
        }
    }

    fn record_margin(&self, kind: GossipKind, slot: Slot, now: Timestamp) {
        let deadline = self
            .pipeline
            .validator
            .checkpoint_proposal_receive_deadline(slot);
        metrics::deadline_margin(kind, deadline.millis_since(now) as f64 / 1000.0);
    }

    fn send_consensus(&self, item: ConsensusItem) {
        if self.consensus_lane.try_send(item).is_err() {
            tracing::warn!(
                "consensus handler lane full; an accepted proposal is not handled locally"
            );
            metrics::handler_dropped(CONSENSUS_LANE);
        }
    }

    fn notify_waiters(&mut self, attestation: &CheckpointAttestation) {
        // Only a proposer waits; everyone else skips hashing the payload.
        if self.waiters.is_empty() {
            return;
        }
        let slot = Slot(attestation.payload.header.slot);
        let key = (slot, attestation.payload.payload_hash());
        let Some(waiters) = self.waiters.remove(&key) else {
            return;
        };
        let collected = self.pipeline.pool().attestations_for(slot, &key.1);
        let pending: Vec<_> = waiters
            .into_iter()
            .filter_map(|waiter| {
                if collected.len() >= waiter.quorum {
                    let _ = waiter.reply.send(collected.clone());
                    None
                } else {
                    Some(waiter)
                }
            })
            .collect();
        if !pending.is_empty() {
            self.waiters.insert(key, pending);
        }
    }

    async fn on_publish_own(
        &mut self,
        message: OwnMessage,
        reply: oneshot::Sender<Result<(), PublishError>>,
    ) -> bool {
        let domain = *self.pipeline.validator.domain();
        let admitted = match &message {
            OwnMessage::BlockProposal(block) => block
                .recover_proposer(&domain)
                .map_err(|_| PublishError::BadSignature)
                .map(|signer| {
                    let _ = self.pipeline.pool_mut().admit_block_proposal(
                        Slot(block.header.slot),
                        block.header.index_within_checkpoint,
                        block.payload_hash(),
                        signer,
                    );
                }),
            OwnMessage::CheckpointProposal(checkpoint) => checkpoint
                .recover_proposer(&domain)
                .map_err(|_| PublishError::BadSignature)
                .map(|signer| {
                    let pool = self.pipeline.pool_mut();
                    if let Some(block) = &checkpoint.last_block {
                        let _ = pool.admit_block_proposal(
                            Slot(block.header.slot),
                            block.header.index_within_checkpoint,
                            block.payload_hash(),
                            signer,
                        );
                    }
                    let _ = pool.admit_checkpoint_proposal(
                        Slot(checkpoint.payload.header.slot),
                        checkpoint.payload.payload_hash(),
                        signer,
                    );
                }),
            OwnMessage::Attestation(attestation) => attestation
                .recover_attester(&domain)
                .map_err(|_| PublishError::BadSignature)
                .map(|attester| {
                    if let Ok(Admission::New) = self
                        .pipeline
                        .pool_mut()
                        .admit_attestation(attestation, attester)
                    {
                        self.notify_waiters(attestation);
                    }
                }),
        };
        if let Err(err) = admitted {
            let _ = reply.send(Err(err));
            return true;
        }
        let (kind, bytes) = match message {
            OwnMessage::BlockProposal(block) => (GossipKind::BlockProposal, block.to_wire_bytes()),
            OwnMessage::CheckpointProposal(checkpoint) => {
                (GossipKind::CheckpointProposal, checkpoint.to_wire_bytes())
            }
            OwnMessage::Attestation(attestation) => (
                GossipKind::CheckpointAttestation,
                attestation.to_wire_bytes(),
            ),
        };
        self.swarm
            .send(SwarmCommand::Publish { kind, bytes, reply })
            .await
            .is_ok()
    }
}
