//! The dispatcher: hands accepted proposals to the handlers, off the swarm and validation
//! tasks, so that
//! - blocks of a slot are handled in index order and a checkpoint after its slot's blocks (one
//!   lane per (slot, proposer), one call at a time);
//! - independent work proceeds concurrently (lanes of different slots run side by side), so a
//!   handler waiting for a parent or for txs never blocks the delivery of anything else;
//! - every call ends by the slot's attestation deadline (the future is dropped then);
//! - a block the lane waits for but never received (dropped from a full queue, gossiped before
//!   this node joined) is fetched from peers by (slot, index).
//!
//! A handler that panics fails the dispatcher and with it the service.

mod lane;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use libp2p::PeerId;
use tandem_proto::{
    Address, BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx,
    time::{Clock, Slot, Timestamp},
};
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    deadline,
    error::{P2pError, PublishError},
    events::{HandlerKind, P2pEvent},
    handlers::{Handlers, TxHandler},
    metrics,
    processor::{OwnMessage, ProcessorCommand},
    reqresp::BlockQuery,
    service::SwarmCommand,
    validation::GossipValidator,
    verified::Verified,
};
use lane::{Fetch, Finished, Lane, Push, Work};

/// Most bytes of accepted blocks all lanes together hold while they wait for earlier blocks;
/// beyond it later blocks are dropped (and fetched again when their lane reaches them).
pub const MAX_DISPATCH_BYTES: usize = 192 * 1024 * 1024;

/// How long a lane waits for a missing block to arrive by gossip before asking peers.
pub const MISSING_BLOCK_GRACE: Duration = Duration::from_millis(500);
/// Longest wait between two fetch attempts for one gap (the wait doubles from the grace).
const MAX_FETCH_BACKOFF: Duration = Duration::from_secs(8);
/// How often lanes are checked for expiry and gaps.
const LANE_TICK: Duration = Duration::from_millis(100);
/// Wait between attempts to gossip an attestation while the mesh is empty.
const ATTESTATION_RETRY: Duration = Duration::from_millis(250);

/// An accepted proposal for the dispatcher.
#[derive(Debug)]
pub(crate) enum DispatchItem {
    Block(Verified<BlockProposal>),
    Checkpoint {
        last_index: u32,
        /// `None` when its last block was accepted (and dispatched) before.
        last_block: Option<Verified<BlockProposal>>,
        checkpoint: Verified<CheckpointProposal>,
    },
}

type LaneKey = (Slot, Address);

/// What running work needs besides the handlers.
pub(crate) struct DispatchContext {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) validator: GossipValidator,
    pub(crate) processor: mpsc::Sender<ProcessorCommand>,
    pub(crate) swarm: mpsc::Sender<SwarmCommand>,
    pub(crate) events: broadcast::Sender<P2pEvent>,
}

pub(crate) struct Dispatcher {
    handlers: Handlers,
    items: mpsc::Receiver<DispatchItem>,
    context: Arc<DispatchContext>,
    lanes: BTreeMap<LaneKey, Lane>,
    running: JoinSet<(LaneKey, Finished)>,
    fetches: JoinSet<LaneKey>,
}

impl Dispatcher {
    pub(crate) fn new(
        handlers: Handlers,
        items: mpsc::Receiver<DispatchItem>,
        context: DispatchContext,
    ) -> Self {
        Self {
            handlers,
            items,
            context: Arc::new(context),
            lanes: BTreeMap::new(),
            running: JoinSet::new(),
            fetches: JoinSet::new(),
        }
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<(), P2pError> {
        let mut tick = tokio::time::interval(LANE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                Some(joined) = self.running.join_next(), if !self.running.is_empty() => {
                    let (key, finished) = joined.map_err(|err| failed("handler", &err))?;
                    if let Some(lane) = self.lanes.get_mut(&key) {
                        lane.finish(finished);
                    }
                    self.schedule(key);
                }
                Some(joined) = self.fetches.join_next(), if !self.fetches.is_empty() => {
                    let key = joined.map_err(|err| failed("block fetch", &err))?;
                    if let Some(fetch) = self.lanes.get_mut(&key).and_then(|lane| lane.fetch.as_mut()) {
                        fetch.in_flight = false;
                    }
                }
                item = self.items.recv() => match item {
                    Some(item) => self.add(item),
                    None => return Ok(()),
                },
                _ = tick.tick() => self.maintain(),
            }
        }
    }

    fn add(&mut self, item: DispatchItem) {
        let (key, slot) = match &item {
            DispatchItem::Block(block) => {
                let slot = Slot(block.header.slot);
                ((slot, block.signer()), slot)
            }
            DispatchItem::Checkpoint { checkpoint, .. } => {
                let slot = Slot(checkpoint.payload.header.slot);
                ((slot, checkpoint.signer()), slot)
            }
        };
        let deadline = self.context.validator.windows().attestation_deadline(slot);
        if self.context.clock.now() > deadline {
            metrics::handler_expired(1);
            return;
        }
        let held: usize = self.lanes.values().map(Lane::bytes).sum();
        let room = MAX_DISPATCH_BYTES.saturating_sub(held);
        let lane = self.lanes.entry(key).or_insert_with(|| Lane::new(deadline));
        let (pushed, checkpoint_queued) = match item {
            DispatchItem::Block(block) => (Some(lane.push_block(block, room)), true),
            DispatchItem::Checkpoint {
                last_index,
                last_block,
                checkpoint,
            } => {
                let pushed = last_block.map(|block| lane.push_block(block, room));
                (pushed, lane.push_checkpoint(last_index, checkpoint))
            }
        };
        match pushed {
            Some(Push::OverBudget) => {
                tracing::debug!(slot = %slot, "lane over its byte bound: block dropped, fetched again when due");
                metrics::dispatch_over_budget();
            }
            Some(Push::TooLate) => {
                tracing::debug!(slot = %slot, "block too late for its lane, not handled");
                metrics::handler_expired(1);
            }
            Some(Push::Queued) | None => {}
        }
        if !checkpoint_queued {
            tracing::debug!(slot = %slot, "checkpoint too late for its lane, not handled");
            metrics::handler_expired(1);
        }
        self.schedule(key);
        metrics::dispatch_lanes(self.lanes.len());
        metrics::dispatch_bytes(self.lanes.values().map(Lane::bytes).sum());
    }

    /// Starts the lane's next piece of work, if it is idle and has one.
    fn schedule(&mut self, key: LaneKey) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        // Past the deadline nothing more starts; maintenance drops the lane.
        if self.context.clock.now() > lane.deadline {
            return;
        }
        let Some(work) = lane.next_work() else {
            return;
        };
        let deadline = lane.deadline;
        let handlers = self.handlers.clone();
        let context = Arc::clone(&self.context);
        self.running.spawn(async move {
            let finished = run_work(&context, &handlers, key.0, deadline, work).await;
            (key, finished)
        });
    }

    /// Drops lanes whose deadline passed and fetches blocks lanes wait for.
    fn maintain(&mut self) {
        let now = self.context.clock.now();
        let expired: Vec<LaneKey> = self
            .lanes
            .iter()
            .filter(|(_, lane)| lane.deadline < now && !lane.is_busy())
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            let Some(lane) = self.lanes.remove(&key) else {
                continue;
            };
            let (blocks, checkpoint) = lane.unhandled();
            if blocks > 0 || checkpoint {
                tracing::warn!(slot = %key.0, proposer = %key.1, blocks, checkpoint, "slot deadline passed with proposals never handled");
                metrics::handler_expired(blocks + usize::from(checkpoint));
                let _ = self.context.events.send(P2pEvent::Unhandled {
                    slot: key.0,
                    proposer: key.1,
                    blocks,
                    checkpoint,
                });
            }
        }
        metrics::dispatch_lanes(self.lanes.len());

        let instant = Instant::now();
        let mut to_fetch = Vec::new();
        for (key, lane) in &mut self.lanes {
            let Some(missing) = lane.missing() else {
                lane.fetch = None;
                continue;
            };
            let fetch = lane.fetch.get_or_insert(Fetch {
                attempts: 0,
                next_at: instant + MISSING_BLOCK_GRACE,
                in_flight: false,
            });
            if fetch.in_flight || fetch.next_at > instant {
                continue;
            }
            // Alternate between the peer that sent later proposals and any peer.
            let peer = if fetch.attempts % 2 == 0 {
                lane.hint
            } else {
                None
            };
            fetch.attempts += 1;
            fetch.in_flight = true;
            let backoff = MISSING_BLOCK_GRACE
                .saturating_mul(1 << fetch.attempts.min(5))
                .min(MAX_FETCH_BACKOFF);
            fetch.next_at = instant + backoff;
            to_fetch.push((*key, missing, peer));
        }
        for (key, missing, peer) in to_fetch {
            let context = Arc::clone(&self.context);
            self.fetches.spawn(async move {
                fetch_missing(&context, key, missing, peer).await;
                key
            });
        }
    }
}

fn failed(task: &'static str, err: &tokio::task::JoinError) -> P2pError {
    P2pError::TaskFailed {
        task,
        reason: err.to_string(),
    }
}

async fn run_work(
    context: &DispatchContext,
    handlers: &Handlers,
    slot: Slot,
    deadline: Timestamp,
    work: Work,
) -> Finished {
    match work {
        Work::Block(block) => {
            let index = block.header.index_within_checkpoint;
            call(
                context,
                HandlerKind::BlockProposal,
                slot,
                deadline,
                handlers.block.on_block_proposal(block, deadline),
            )
            .await;
            Finished::Block { index }
        }
        Work::Checkpoint(checkpoint) => {
            let validator = handlers.validator.as_ref();
            let for_validator = validator.map(|_| checkpoint.clone());
            let stored = call(
                context,
                HandlerKind::AllNodesCheckpoint,
                slot,
                deadline,
                handlers
                    .all_nodes
                    .on_checkpoint_proposal(checkpoint, deadline),
            )
            .await;
            if let (Some(()), Some(validator), Some(checkpoint)) =
                (stored, validator, for_validator)
            {
                let attestations = call(
                    context,
                    HandlerKind::ValidatorCheckpoint,
                    slot,
                    deadline,
                    validator.on_checkpoint_proposal(checkpoint, deadline),
                )
                .await
                .unwrap_or_default();
                for attestation in attestations {
                    publish_attestation(context, slot, deadline, attestation).await;
                }
            }
            Finished::Checkpoint
        }
    }
}

/// Runs one handler call until the deadline, with its metrics.
async fn call<T>(
    context: &DispatchContext,
    handler: HandlerKind,
    slot: Slot,
    deadline: Timestamp,
    work: futures::future::BoxFuture<'static, T>,
) -> Option<T> {
    let started = Instant::now();
    let output = deadline::before(context.clock.as_ref(), deadline, work).await;
    metrics::handler_duration(handler.label(), started.elapsed());
    if output.is_none() {
        tracing::warn!(handler = handler.label(), slot = %slot, "handler cancelled at the slot's attestation deadline");
        metrics::handler_timeout(handler.label());
        let _ = context
            .events
            .send(P2pEvent::HandlerDeadlineMissed { handler, slot });
    }
    output
}

/// Pools and gossips one of this node's attestations, retrying while no peer is on the topic
/// until the deadline; a failure is reported, never dropped silently.
async fn publish_attestation(
    context: &DispatchContext,
    slot: Slot,
    deadline: Timestamp,
    attestation: CheckpointAttestation,
) {
    let attempt = async {
        loop {
            let (reply, result) = oneshot::channel();
            let command = ProcessorCommand::PublishOwn {
                message: OwnMessage::Attestation(Box::new(attestation.clone())),
                reply,
            };
            if context.processor.send(command).await.is_err() {
                return Err(PublishError::Stopped);
            }
            match result.await.unwrap_or(Err(PublishError::Stopped)) {
                Ok(()) | Err(PublishError::Duplicate) => return Ok(()),
                Err(PublishError::NoPeers) => {
                    deadline::sleep_until(
                        context.clock.as_ref(),
                        context.clock.now().saturating_add(ATTESTATION_RETRY),
                    )
                    .await;
                }
                Err(err) => return Err(err),
            }
        }
    };
    let error = match deadline::before(context.clock.as_ref(), deadline, attempt).await {
        Some(Ok(())) => return,
        Some(Err(err)) => err,
        None => PublishError::NoPeers,
    };
    tracing::warn!(slot = %slot, %error, "could not gossip this node's attestation");
    metrics::attestation_not_published();
    let _ = context
        .events
        .send(P2pEvent::AttestationNotPublished { slot, error });
}

/// Asks peers for the blocks `missing` of the lane `key` and hands every valid one to the
/// processor, which pools and dispatches it like gossip.
async fn fetch_missing(
    context: &DispatchContext,
    key: LaneKey,
    missing: std::ops::Range<u32>,
    peer: Option<PeerId>,
) {
    let (slot, proposer) = key;
    // The first index goes to the peer that sent a later proposal; the others to whichever
    // peers have room (the swarm spreads them and keeps within this node's budget per peer).
    let requests = missing.enumerate().map(|(position, index)| async move {
        let (reply, response) = oneshot::channel();
        let command = SwarmCommand::RequestBlockProposals {
            peer: peer.filter(|_| position == 0),
            query: BlockQuery::SlotIndex { slot, index },
            reply,
        };
        if context.swarm.send(command).await.is_err() {
            return;
        }
        let Ok(Ok((from, served))) = response.await else {
            metrics::block_fetch("failed");
            return;
        };
        let validator = context.validator.clone();
        let now = context.clock.now();
        let verified = tokio::task::spawn_blocking(move || {
            served
                .into_iter()
                .filter_map(|served| served.into_proposal())
                .filter_map(|proposal| validator.verify_block(proposal, now).ok())
                .find(|block| block.signer() == proposer)
        })
        .await
        .ok()
        .flatten();
        let Some(block) = verified else {
            metrics::block_fetch("not_found");
            return;
        };
        metrics::block_fetch("found");
        let _ = context
            .processor
            .send(ProcessorCommand::AdmitFetched { block, peer: from })
            .await;
    });
    join_all(requests).await;
}

/// The tx lane: hands accepted txs to the tx handler, one at a time, off the validation task.
pub(crate) async fn run_tx_lane(
    handler: Option<Arc<dyn TxHandler>>,
    mut txs: mpsc::Receiver<Verified<RecoveredTx>>,
    cancel: CancellationToken,
) -> Result<(), P2pError> {
    loop {
        let tx = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            tx = txs.recv() => match tx {
                Some(tx) => tx,
                None => return Ok(()),
            },
        };
        metrics::handler_queue(crate::processor::TX_LANE, txs.len());
        if let Some(handler) = &handler {
            let started = Instant::now();
            handler.on_tx(tx);
            metrics::handler_duration("tx", started.elapsed());
        }
    }
}
