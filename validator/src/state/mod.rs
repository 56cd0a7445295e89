//! The state service: the one owner of the world state and the tx pool on every node, and the
//! only writer of both.
//!
//! - Others read through [`StateReader`] (forks are O(1), reads take a lock for one read) and
//!   submit through [`StateHandle`]: executed blocks (from the block handler and the sequencer,
//!   keyed by block hash, applied without executing again), txs from RPC and gossip, and
//!   protection of a proposal's txs.
//! - Its chain follower keeps both equal to the archiver's proposed chain, level-triggered: on
//!   every change of the archiver's tips (and every prune event, and a slow timer as a safety
//!   net) it compares block hashes with the archiver's store, rolls back to the common ancestor
//!   and applies what it lacks — from the executed blocks it was given, or by executing blocks
//!   itself (blocks the archiver took from L1 bodies, on a node that never saw the gossip; and
//!   after a restart). Prune events only wake it up and return their txs to the pool; a missed
//!   one costs nothing.
//! - A block whose execution does not give its header stops the follower ([`FollowerStatus::
//!   Stalled`], not ready, a metric, an error log) — never a silent divergence — until the
//!   archiver no longer holds that block.
//! - Mined txs leave the pool; txs of blocks rolled back return to it.
//! - At start (and after a crash) the first reconcile brings world state and archiver to one
//!   tip: every world-state write is one atomic block, every archiver write too, so comparing
//!   hashes is all it takes.

mod follower;
mod reader;
mod status;
#[cfg(test)]
mod tests;

pub use reader::StateReader;
use status::FollowerStats;
pub use status::{FollowerCounts, FollowerStatus, Readiness, StallReason};

use std::{
    num::NonZeroUsize,
    sync::{Arc, RwLock},
    time::Duration,
};

use tandem_proto::{B256, RecoveredTx, SigningDomain, Tx};
use tandem_state::{
    AddOutcome, ExecutedBlock, PoolConfig, PoolError, ProtectionGuard, Protections, TxPool,
    WorldState,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    archive::ChainArchive,
    error::{ValidatorError, ValidatorResult},
    metrics,
};
use follower::Follower;

/// Capacity of the state service's command queue (executed blocks, RPC txs, protections);
/// senders wait when it is full.
pub const STATE_COMMAND_CAPACITY: usize = 1024;
/// Capacity of the gossiped-tx queue; a tx arriving when it is full is dropped (and counted):
/// gossip must never wait for the pool.
pub const GOSSIP_TX_QUEUE_CAPACITY: usize = 16_384;
/// Executed blocks kept until the archiver stores them (a proposal's block waits here between
/// re-execution and the archiver's write).
pub const EXECUTED_BLOCKS_CAPACITY: usize = 256;
/// Gossiped txs added to the pool per lock.
const GOSSIP_TX_BATCH: usize = 512;
/// How often the follower reconciles without being woken (a safety net: wake-ups are level
/// triggers, a missed one must not leave the node behind).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of the state service.
#[derive(Debug, Clone, Copy)]
pub struct StateServiceConfig {
    /// The chain's signing domain (recovering tx senders).
    pub domain: SigningDomain,
    /// Pool limits.
    pub pool: PoolConfig,
    /// Threads recovering the tx senders of a block the follower executes itself.
    pub recovery_threads: NonZeroUsize,
}

impl StateServiceConfig {
    /// Defaults for `domain`: the default pool, one recovery thread per core.
    pub fn new(domain: SigningDomain) -> Self {
        Self {
            domain,
            pool: PoolConfig::default(),
            recovery_threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// What a reconcile step left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// More work: step again.
    More,
    /// In step with the archiver (or stalled with a status): a complete reconcile.
    Done,
    /// The step failed (not fatal): retried on the next change.
    Failed,
}

enum Command {
    Executed(
        Box<ExecutedBlock>,
        Vec<RecoveredTx>,
        Option<ProtectionGuard>,
    ),
    AddTx(RecoveredTx, oneshot::Sender<Result<AddOutcome, PoolError>>),
    Protection(B256, ProtectionGuard),
    Reconcile(oneshot::Sender<FollowerStatus>),
}

/// Cloneable access to the state service.
#[derive(Clone)]
pub struct StateHandle {
    commands: mpsc::Sender<Command>,
    gossip: mpsc::Sender<RecoveredTx>,
    reader: StateReader,
    status: watch::Receiver<FollowerStatus>,
    domain: SigningDomain,
    stats: Arc<FollowerStats>,
    protections: Protections,
}

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl StateHandle {
    /// Reads of the world state and the pool.
    pub const fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// The follower's status (the node's readiness).
    pub fn readiness(&self) -> Readiness {
        Readiness(self.status.clone())
    }

    /// The follower's counters since start.
    pub fn follower_counts(&self) -> FollowerCounts {
        self.stats.counts()
    }

    async fn send(&self, command: Command) -> ValidatorResult<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ValidatorError::StateServiceStopped)
    }

    /// Hands over a block executed on a fork of its parent (re-executed by the block handler,
    /// or built by the sequencer), with its txs. Submit it *before* storing the block in the
    /// archiver: the follower then applies it without executing it again.
    pub async fn submit_executed(
        &self,
        executed: ExecutedBlock,
        txs: Vec<RecoveredTx>,
    ) -> ValidatorResult<()> {
        self.send(Command::Executed(Box::new(executed), txs, None))
            .await
    }

    /// Hands over the protection of a block's txs once the archiver stored the block (submitted
    /// with [`StateHandle::submit_executed`] before): held until the block is applied (its txs
    /// then leave the pool), rolled back or evicted; dropped at once when the block is applied
    /// already or was never submitted. Until then the caller's guard protects them.
    pub async fn hand_over_protection(&self, block: B256, protection: ProtectionGuard) {
        // A stopped service drops the guard with the command: nothing is left to protect for.
        let _ = self.send(Command::Protection(block, protection)).await;
    }

    /// Adds a tx from RPC: the stateless rules and its signature here, then the pool.
    pub async fn submit_tx(&self, tx: Tx) -> ValidatorResult<AddOutcome> {
        let recovered = tandem_state::validate_stateless(tx, &self.domain)
            .map_err(ValidatorError::InvalidTx)?;
        self.add_recovered_tx(recovered).await
    }

    /// Adds a tx whose signature was checked.
    pub async fn add_recovered_tx(&self, tx: RecoveredTx) -> ValidatorResult<AddOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::AddTx(tx, reply)).await?;
        Ok(outcome
            .await
            .map_err(|_| ValidatorError::StateServiceStopped)??)
    }

    /// Queues a gossiped tx for the pool without waiting; `false` when the queue is full (the
    /// tx is dropped and counted).
    pub fn offer_gossip_tx(&self, tx: RecoveredTx) -> bool {
        let queued = self.gossip.try_send(tx).is_ok();
        if !queued {
            metrics::gossip_tx_dropped();
        }
        queued
    }

    /// Protects the txs a proposal uses (pooled now or later) from eviction and replacement
    /// until the guard is dropped; counted per holder, so two proposals using one tx each
    /// keep it protected until both are done. Takes effect at once (no message to the
    /// service).
    pub fn protect(&self, hashes: Vec<B256>) -> ProtectionGuard {
        self.protections.protect(hashes)
    }

    /// Reconciles with the archiver now and returns the status once nothing is left to do.
    pub async fn reconcile(&self) -> ValidatorResult<FollowerStatus> {
        let (reply, status) = oneshot::channel();
        self.send(Command::Reconcile(reply)).await?;
        status
            .await
            .map_err(|_| ValidatorError::StateServiceStopped)
    }
}

/// The actor; see the module docs.
pub struct StateService {
    follower: Follower,
    commands: mpsc::Receiver<Command>,
    gossip: mpsc::Receiver<RecoveredTx>,
    archive: Arc<dyn ChainArchive>,
    waiters: Vec<oneshot::Sender<FollowerStatus>>,
}

impl StateService {
    /// Takes ownership of an opened world state; the follower reconciles it with `archive` as
    /// soon as [`StateService::run`] starts.
    pub fn new(
        world: WorldState,
        config: StateServiceConfig,
        archive: Arc<dyn ChainArchive>,
    ) -> (StateHandle, Self) {
        let (tip_tx, tip_rx) = watch::channel(world.tip());
        let (status_tx, status_rx) = watch::channel(FollowerStatus::Starting);
        let world = Arc::new(RwLock::new(world));
        let pool = TxPool::new(config.pool);
        let protections = pool.protections().clone();
        let pool = Arc::new(RwLock::new(pool));
        let (commands_tx, commands) = mpsc::channel(STATE_COMMAND_CAPACITY);
        let (gossip_tx, gossip) = mpsc::channel(GOSSIP_TX_QUEUE_CAPACITY);
        let reader = StateReader {
            world: Arc::clone(&world),
            pool: Arc::clone(&pool),
            tip: tip_rx,
        };
        let handle = StateHandle {
            commands: commands_tx,
            gossip: gossip_tx,
            reader,
            status: status_rx,
            domain: config.domain,
            stats: Arc::default(),
            protections,
        };
        let follower = Follower::new(
            world,
            pool,
            Arc::clone(&archive),
            config,
            tip_tx,
            status_tx,
            Arc::clone(&handle.stats),
        );
        metrics::describe_metrics();
        metrics::register_zeroes();
        metrics::not_ready();
        (
            handle,
            Self {
                follower,
                commands,
                gossip,
                archive,
                waiters: Vec::new(),
            },
        )
    }

    /// Serves commands and follows the archiver until cancelled. Returns a fatal error (the
    /// world state or the archiver damaged, the archiver gone).
    pub async fn run(mut self, cancel: CancellationToken) -> ValidatorResult<()> {
        let result = self.serve(&cancel).await;
        if let Err(err) = &result {
            tracing::error!(target: "validator::state", error = %err, "state service stopped");
        }
        result
    }

    async fn serve(&mut self, cancel: &CancellationToken) -> ValidatorResult<()> {
        let mut tips = self.archive.watch_tips();
        let mut prunes = self.archive.subscribe_prunes();
        let mut timer = tokio::time::interval(RECONCILE_INTERVAL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reconcile first: after a restart the world state may be anywhere relative to the
        // archiver.
        let mut dirty = true;
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if dirty {
                // Executed blocks queued before the archiver stored them must be known before
                // the follower looks at the store, or it would execute them a second time.
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
                let step = self.follower.step().await;
                let settled = self.settle(step)?;
                dirty = settled == Settled::More;
                // Never hog the worker between steps, whatever a step reports.
                tokio::task::yield_now().await;
                self.finish_step(settled);
                continue;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                // Commands before wake-ups: an executed block must be cached before the store
                // change that announces it is looked at.
                command = self.commands.recv() => match command {
                    Some(command) => dirty = self.handle(command),
                    // Every handle is gone: nobody can use the state any more.
                    None => return Ok(()),
                },
                changed = tips.changed() => {
                    changed.map_err(|_| tandem_archiver::ArchiverError::Stopped)?;
                    dirty = true;
                }
                event = prunes.recv() => {
                    match event {
                        Ok(event) => self.follower.on_prune(event),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(target: "validator::state", missed, "missed prune events; reconciling by block hash");
                            metrics::prune_events_missed(missed);
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(tandem_archiver::ArchiverError::Stopped.into());
                        }
                    }
                    dirty = true;
                }
                Some(first) = self.gossip.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < GOSSIP_TX_BATCH {
                        match self.gossip.try_recv() {
                            Ok(tx) => batch.push(tx),
                            Err(_) => break,
                        }
                    }
                    self.follower.add_gossip_txs(batch);
                }
                _ = timer.tick() => dirty = true,
            }
        }
    }

    /// The outcome of a reconcile step: whether more work is left. A fatal error stops the
    /// service; any other marks the node not ready (the world state may no longer follow the
    /// archiver) until a later step succeeds and sets the status again — the timer retries.
    /// After a step that left no more work: pruned txs back to the pool (only after a
    /// complete reconcile: after a failed step the world state may still hold the pruned
    /// blocks, and their txs would look mined), and the reconcile waiters answered.
    fn finish_step(&mut self, settled: Settled) {
        if settled == Settled::More {
            return;
        }
        if settled == Settled::Done {
            self.follower.return_pruned_txs();
        }
        let status = self.follower.status();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(status.clone());
        }
    }

    fn settle(&mut self, step: ValidatorResult<bool>) -> ValidatorResult<Settled> {
        match step {
            Ok(true) => Ok(Settled::More),
            Ok(false) => Ok(Settled::Done),
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => {
                self.follower.step_failed(&err);
                Ok(Settled::Failed)
            }
        }
    }

    /// Handles a command; `true` when the follower should look at the store again.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Executed(executed, txs, protection) => {
                self.follower.cache_executed(*executed, txs, protection);
                true
            }
            Command::AddTx(tx, reply) => {
                let _ = reply.send(self.follower.add_tx(tx));
                false
            }
            Command::Protection(block, protection) => {
                self.follower.keep_protection(block, protection);
                false
            }
            Command::Reconcile(reply) => {
                self.waiters.push(reply);
                true
            }
        }
    }
}
