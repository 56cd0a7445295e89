//! The archiver actor: the single writer of the store. Proposed blocks and checkpoints arrive
//! through a bounded queue and are applied between L1 sync steps, never in the middle of one.
//! Anyone can clone the handle: tips come from a `watch` (no round trip), prune events from a
//! `broadcast` the world state and tx pool subscribe to.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use alloy::providers::Provider;
use tandem_l1::L1Reader;
use tandem_proto::{
    Block, BlockHeader, L2Tips, RecoveredTx,
    time::{Clock, ConsensusWindows, Slot, SlotClock},
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    error::ArchiverError,
    records::{CheckpointRecord, ProposedCheckpoint, StoredBlock},
    store::{ArchiverStore, ProposedCheckpointInput, PruneEvent},
    sync::{SyncConfig, SyncError, SyncReport, sync_step},
};

/// Capacity of the command queue; senders wait when it is full.
pub const COMMAND_QUEUE_CAPACITY: usize = 256;
/// Prune events kept for slow subscribers (they get `Lagged` beyond it).
pub const PRUNE_EVENTS_CAPACITY: usize = 64;

type Reply<T> = oneshot::Sender<Result<T, ArchiverError>>;

enum Command {
    AddBlock(Block, Reply<StoredBlock>),
    AddRecoveredBlock(BlockHeader, Vec<RecoveredTx>, Reply<StoredBlock>),
    AddProposedCheckpoint(ProposedCheckpointInput, Reply<ProposedCheckpoint>),
    Block(u64, Reply<Option<StoredBlock>>),
    Checkpoint(u64, Reply<Option<CheckpointRecord>>),
    ProposedCheckpoint(u64, Reply<Option<ProposedCheckpoint>>),
    SyncNow(oneshot::Sender<Result<SyncReport, SyncError>>),
    ProposalSeen(u64),
}

/// Cloneable access to the archiver.
#[derive(Debug, Clone)]
pub struct ArchiverHandle {
    commands: mpsc::Sender<Command>,
    tips: watch::Receiver<L2Tips>,
    prunes: broadcast::Sender<PruneEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AddBlock(..) => "AddBlock",
            Self::AddRecoveredBlock(..) => "AddRecoveredBlock",
            Self::AddProposedCheckpoint(..) => "AddProposedCheckpoint",
            Self::Block(..) => "Block",
            Self::Checkpoint(..) => "Checkpoint",
            Self::ProposedCheckpoint(..) => "ProposedCheckpoint",
            Self::SyncNow(..) => "SyncNow",
            Self::ProposalSeen(..) => "ProposalSeen",
        })
    }
}

impl ArchiverHandle {
    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ArchiverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ArchiverError::Stopped)?;
        metrics::gauge!("archiver_queue_depth")
            .set((COMMAND_QUEUE_CAPACITY - self.commands.capacity()) as f64);
        rx.await.map_err(|_| ArchiverError::Stopped)?
    }

    /// The current tips (no round trip).
    pub fn tips(&self) -> L2Tips {
        *self.tips.borrow()
    }

    /// A receiver that changes whenever the tips do.
    pub fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.tips.clone()
    }

    /// Prune events from now on.
    pub fn subscribe_prunes(&self) -> broadcast::Receiver<PruneEvent> {
        self.prunes.subscribe()
    }

    /// Queues a validated proposed block.
    pub async fn add_block(&self, block: Block) -> Result<StoredBlock, ArchiverError> {
        self.request(|reply| Command::AddBlock(block, reply)).await
    }

    /// Queues a block executed locally (built or re-executed): its txs' cached hashes are reused.
    pub async fn add_recovered_block(
        &self,
        header: BlockHeader,
        txs: Vec<RecoveredTx>,
    ) -> Result<StoredBlock, ArchiverError> {
        self.request(|reply| Command::AddRecoveredBlock(header, txs, reply))
            .await
    }

    /// Queues a validated proposed checkpoint (its blocks must be stored).
    pub async fn add_proposed_checkpoint(
        &self,
        input: ProposedCheckpointInput,
    ) -> Result<ProposedCheckpoint, ArchiverError> {
        self.request(|reply| Command::AddProposedCheckpoint(input, reply))
            .await
    }

    /// A block by number.
    pub async fn block(&self, number: u64) -> Result<Option<StoredBlock>, ArchiverError> {
        self.request(|reply| Command::Block(number, reply)).await
    }

    /// An L1 checkpoint by number.
    pub async fn checkpoint(&self, number: u64) -> Result<Option<CheckpointRecord>, ArchiverError> {
        self.request(|reply| Command::Checkpoint(number, reply))
            .await
    }

    /// A proposed checkpoint by number.
    pub async fn proposed_checkpoint(
        &self,
        number: u64,
    ) -> Result<Option<ProposedCheckpoint>, ArchiverError> {
        self.request(|reply| Command::ProposedCheckpoint(number, reply))
            .await
    }

    /// Runs a sync step now and returns what it did.
    pub async fn sync_now(&self) -> Result<SyncReport, SyncError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SyncNow(tx))
            .await
            .map_err(|_| ArchiverError::Stopped)?;
        rx.await.map_err(|_| ArchiverError::Stopped)?
    }

    /// Records that a valid checkpoint proposal for `slot` was seen on gossip: the blocks of that
    /// slot then get until the synced deadline before the orphan prune removes them.
    pub async fn note_checkpoint_proposal_seen(&self, slot: Slot) -> Result<(), ArchiverError> {
        self.commands
            .send(Command::ProposalSeen(slot.0))
            .await
            .map_err(|_| ArchiverError::Stopped)
    }
}

/// Slots behind the current one whose checkpoint-proposal sightings are kept.
const PROPOSALS_SEEN_RETAINED_SLOTS: u64 = 4;

/// Timing the actor needs.
#[derive(Clone)]
pub struct ArchiverTiming {
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Slot arithmetic of the network.
    pub slot_clock: SlotClock,
    /// Consensus deadlines of the network.
    pub windows: ConsensusWindows,
    /// Time between sync steps.
    pub poll_interval: Duration,
}

/// The actor; see the module docs.
pub struct ArchiverActor<P> {
    store: ArchiverStore,
    reader: L1Reader<P>,
    sync: SyncConfig,
    timing: ArchiverTiming,
    commands: mpsc::Receiver<Command>,
    tips: watch::Sender<L2Tips>,
    prunes: broadcast::Sender<PruneEvent>,
    proposals_seen: BTreeSet<u64>,
}

impl<P: Provider + Clone> ArchiverActor<P> {
    /// Wraps an opened store.
    pub fn new(
        store: ArchiverStore,
        reader: L1Reader<P>,
        sync: SyncConfig,
        timing: ArchiverTiming,
    ) -> (ArchiverHandle, Self) {
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let (tips, tips_rx) = watch::channel(store.tips());
        let (prunes, _) = broadcast::channel(PRUNE_EVENTS_CAPACITY);
        let handle = ArchiverHandle {
            commands: commands_tx,
            tips: tips_rx,
            prunes: prunes.clone(),
        };
        (
            handle,
            Self {
                store,
                reader,
                sync,
                timing,
                commands,
                tips,
                prunes,
                proposals_seen: BTreeSet::new(),
            },
        )
    }

    /// Serves commands and syncs every poll interval until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), ArchiverError> {
        let mut ticker = tokio::time::interval(self.timing.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                // Commands before periodic work: proposals are time-critical.
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => return Ok(()),
                },
                _ = ticker.tick() => {
                    if let Err(err) = self.sync().await {
                        metrics::counter!("archiver_sync_errors_total").increment(1);
                        tracing::warn!(target: "archiver", error = %err, "L1 sync step failed");
                    }
                }
            }
        }
    }

    async fn sync(&mut self) -> Result<SyncReport, SyncError> {
        let now = self.timing.clock.now();
        // Sightings older than any block that could still be an orphan are not needed.
        if let Some(current) = self.timing.slot_clock.slot_at(now) {
            let keep_from = current.0.saturating_sub(PROPOSALS_SEEN_RETAINED_SLOTS);
            self.proposals_seen = self.proposals_seen.split_off(&keep_from);
        }
        let report = sync_step(
            &mut self.store,
            &self.reader,
            &self.sync,
            &self.timing.windows,
            &self.timing.slot_clock,
            &self.proposals_seen,
            now,
        )
        .await;
        self.publish();
        if let Ok(report) = &report {
            for prune in &report.prunes {
                // No subscriber is fine; lagging ones see `Lagged`.
                let _ = self.prunes.send(prune.clone());
            }
        }
        report
    }

    fn publish(&self) {
        self.tips.send_if_modified(|tips| {
            let changed = *tips != self.store.tips();
            *tips = self.store.tips();
            changed
        });
    }

    fn check_slot(&self, slot: u64) -> Result<(), ArchiverError> {
        let current = self
            .timing
            .slot_clock
            .slot_at_next_l1_block(self.timing.clock.now())
            .map_or(0, |s| s.0);
        if slot < current {
            return Err(ArchiverError::SlotExpired { slot, current });
        }
        Ok(())
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::AddBlock(block, reply) => {
                let result = self
                    .check_slot(block.header.slot)
                    .and_then(|()| self.store.add_proposed_block(block));
                self.publish();
                let _ = reply.send(result);
            }
            Command::AddRecoveredBlock(header, txs, reply) => {
                let result = self
                    .check_slot(header.slot)
                    .and_then(|()| self.store.add_proposed_block_recovered(header, &txs));
                self.publish();
                let _ = reply.send(result);
            }
            Command::AddProposedCheckpoint(input, reply) => {
                let result = self
                    .check_slot(input.payload.header.slot)
                    .and_then(|()| self.store.add_proposed_checkpoint(input));
                self.publish();
                let _ = reply.send(result);
            }
            Command::Block(number, reply) => {
                let _ = reply.send(self.store.block(number));
            }
            Command::Checkpoint(number, reply) => {
                let _ = reply.send(self.store.checkpoint(number));
            }
            Command::ProposedCheckpoint(number, reply) => {
                let _ = reply.send(self.store.proposed_checkpoint(number));
            }
            Command::SyncNow(reply) => {
                let report = self.sync().await;
                let _ = reply.send(report);
            }
            Command::ProposalSeen(slot) => {
                self.proposals_seen.insert(slot);
            }
        }
    }
}
