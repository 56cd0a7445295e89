//! The archiver actor: the single writer of the store.
//!
//! Proposed blocks and checkpoints arrive through a bounded queue. L1 is read by a separate task
//! ([`crate::fetch_l1_update`]) while the actor keeps serving the queue; the steps it returns are
//! applied one store write at a time, alternating with queued items, so a slow L1 delays a
//! gossiped block by at most one write. Completions (a fetch, a WAL sync, a body from peers)
//! and the ticker are served before the queue: they are cheap and only plan work, so a queue
//! that never empties cannot starve them. Every tick runs the prunes, whether L1 answers or
//! not. Every committed prune is broadcast right after its write, whatever happens next. Reads
//! go through [`ArchiverReader`], never through the queue. A fatal error (corruption, a
//! finalized checkpoint reorganised away) stops the actor: `run` returns it for the node's
//! supervisor.

mod handle;
mod zeroes;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use tandem_proto::{
    L2Tips,
    time::{Clock, ConsensusWindows, SlotClock, Timestamp},
};
use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub use self::handle::{
    ArchiverHandle, COMMAND_QUEUE_CAPACITY, CheckpointBodySource, FetchedCheckpointBody,
    PRUNE_EVENTS_CAPACITY,
};
use self::handle::{Command, Reply};
use crate::{
    error::{ArchiverError, ArchiverResult},
    prune::PruneEvent,
    records::L1Ref,
    store::ArchiverStore,
    sync::{
        L1Source, L1Step, L1Update, PruneContext, SyncConfig, SyncReport, apply_l1_step,
        fetch_l1_update,
    },
};

/// Slots behind the current one whose checkpoint-proposal sightings are kept.
const PROPOSALS_SEEN_RETAINED_SLOTS: u64 = 4;

/// Most slots held from the orphan prune at once (the lowest slot's hold goes first): catch-up
/// holds one slot at a time, a few are in flight at most.
pub const MAX_ORPHAN_HOLDS: usize = 16;

/// Longest a hold may last from the moment it is taken; a longer `until` is cut to it, so a
/// caller cannot keep a slot's orphans for ever.
pub const MAX_ORPHAN_HOLD: Duration = Duration::from_secs(300);

/// Timing the actor needs.
#[derive(Clone)]
pub struct ArchiverTiming {
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Slot arithmetic of the network.
    pub slot_clock: SlotClock,
    /// Consensus deadlines of the network.
    pub windows: ConsensusWindows,
    /// Time between L1 syncs (and body fetch retries).
    pub poll_interval: Duration,
}

/// An L1 sync in progress: its fetch, then its steps.
#[derive(Default)]
struct Cycle {
    fetch: Option<JoinHandle<ArchiverResult<L1Update>>>,
    steps: VecDeque<L1Step>,
    report: SyncReport,
    /// Latest L1 block the fetch saw.
    head: Option<u64>,
    /// `sync_now` callers waiting for this cycle.
    waiters: Vec<Reply<SyncReport>>,
}

/// The actor; see the module docs.
pub struct ArchiverActor {
    store: ArchiverStore,
    source: Arc<dyn L1Source>,
    bodies: Option<Arc<dyn CheckpointBodySource>>,
    sync: SyncConfig,
    timing: ArchiverTiming,
    commands: mpsc::Receiver<Command>,
    tips: watch::Sender<L2Tips>,
    /// The last synced L1 block: it moves without the tips (an L1 block with no checkpoint),
    /// and the sequencer's sync guard waits on it.
    l1_synced: watch::Sender<Option<L1Ref>>,
    prunes: broadcast::Sender<PruneEvent>,
    proposals_seen: BTreeSet<u64>,
    /// Slot → time until which its blocks are not orphan-pruned; bounded by
    /// [`MAX_ORPHAN_HOLDS`], expired holds dropped at each prune.
    orphan_holds: BTreeMap<u64, Timestamp>,
    cycle: Option<Cycle>,
    /// `sync_now` callers waiting for a cycle that starts after their call.
    next_waiters: Vec<Reply<SyncReport>>,
    /// After a command, one L1 step goes first (fairness both ways).
    step_turn: bool,
    body_fetch: Option<JoinHandle<Option<(u64, FetchedCheckpointBody)>>>,
    /// The WAL sync running off this task, after L1 facts were written.
    wal_sync: Option<JoinHandle<ArchiverResult<()>>>,
}

impl ArchiverActor {
    /// Wraps an opened store. `bodies` fetches bodies of L1 checkpoints whose calldata could not
    /// be read (none: such checkpoints wait for local data only).
    pub fn new(
        store: ArchiverStore,
        source: Arc<dyn L1Source>,
        bodies: Option<Arc<dyn CheckpointBodySource>>,
        sync: SyncConfig,
        timing: ArchiverTiming,
    ) -> (ArchiverHandle, Self) {
        let mut store = store;
        // L1 facts are made durable after each sync, off the actor: the queue never waits for
        // an fsync.
        store.defer_l1_syncs();
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let (tips, tips_rx) = watch::channel(store.tips());
        let (l1_synced, l1_synced_rx) = watch::channel(store.l1_synced());
        let (prunes, _) = broadcast::channel(PRUNE_EVENTS_CAPACITY);
        let handle = ArchiverHandle {
            commands: commands_tx,
            tips: tips_rx,
            l1_synced: l1_synced_rx,
            prunes: prunes.clone(),
            reader: store.reader(),
        };
        (
            handle,
            Self {
                store,
                source,
                bodies,
                sync,
                timing,
                commands,
                tips,
                l1_synced,
                prunes,
                proposals_seen: BTreeSet::new(),
                orphan_holds: BTreeMap::new(),
                cycle: None,
                next_waiters: Vec::new(),
                step_turn: false,
                body_fetch: None,
                wal_sync: None,
            },
        )
    }

    /// Serves commands and follows L1 until cancelled; returns a fatal error if one happens.
    pub async fn run(mut self, cancel: CancellationToken) -> ArchiverResult<()> {
        zeroes::register_zeroes();
        let mut ticker = tokio::time::interval(self.timing.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = self.serve(&cancel, &mut ticker).await;
        if let Some(cycle) = self.cycle.take()
            && let Some(fetch) = cycle.fetch
        {
            fetch.abort();
        }
        if let Some(fetch) = self.body_fetch.take() {
            fetch.abort();
        }
        // A clean stop leaves everything durable.
        let result = result.and(self.sync_wal_now().await);
        if let Err(err) = &result {
            tracing::error!(target: "archiver", error = %err, "archiver stopped");
        }
        result
    }

    async fn serve(
        &mut self,
        cancel: &CancellationToken,
        ticker: &mut tokio::time::Interval,
    ) -> ArchiverResult<()> {
        loop {
            let has_step = self
                .cycle
                .as_ref()
                .is_some_and(|cycle| cycle.fetch.is_none() && !cycle.steps.is_empty());
            let fetching = self
                .cycle
                .as_ref()
                .is_some_and(|cycle| cycle.fetch.is_some());
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                // Completions and the ticker first: cheap, they only plan work (steps, a fetch,
                // a prune), and a queue that never empties must not starve them.
                fetched = join(self.cycle.as_mut().and_then(|cycle| cycle.fetch.as_mut())),
                    if fetching => self.on_fetched(fetched)?,
                synced = join(self.wal_sync.as_mut()), if self.wal_sync.is_some() => {
                    self.wal_sync = None;
                    match synced {
                        Ok(result) => result?,
                        Err(_) => return Err(ArchiverError::Corrupt("the WAL sync task failed")),
                    }
                    self.maybe_sync_wal();
                }
                body = join(self.body_fetch.as_mut()), if self.body_fetch.is_some() => {
                    self.body_fetch = None;
                    if let Ok(Some((number, body))) = body {
                        self.on_body(number, body)?;
                    }
                }
                _ = ticker.tick() => self.on_tick()?,
                // A step waiting since before the last command goes first: a command waits for
                // at most one L1 write, and L1 is never starved by a busy queue.
                () = std::future::ready(()), if has_step && self.step_turn => {
                    self.step_turn = false;
                    self.apply_step()?;
                }
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.handle(command)?;
                        self.step_turn = true;
                    }
                    None => return Ok(()),
                },
                () = std::future::ready(()), if has_step => self.apply_step()?,
            }
        }
    }

    /// Every poll: the prunes (they need nothing from L1), an L1 sync if none runs, a body
    /// fetch if one is wanted.
    fn on_tick(&mut self) -> ArchiverResult<()> {
        self.prune(crate::sync::prune)?;
        if self.cycle.is_none() {
            self.start_cycle(Vec::new());
        }
        self.maybe_fetch_body()
    }

    /// Runs a prune now (one or two store writes) and publishes what it did; only a fatal error
    /// is returned (others are logged: the next tick tries again).
    fn prune<T>(
        &mut self,
        prune: impl FnOnce(&mut ArchiverStore, &PruneContext<'_>) -> ArchiverResult<T>,
    ) -> ArchiverResult<()> {
        let now = self.timing.clock.now();
        if let Some(current) = self.timing.slot_clock.slot_at(now) {
            // Sightings older than any block that could still be an orphan are not needed.
            let keep_from = current.0.saturating_sub(PROPOSALS_SEEN_RETAINED_SLOTS);
            self.proposals_seen = self.proposals_seen.split_off(&keep_from);
        }
        self.orphan_holds.retain(|_, until| *until > now);
        let context = PruneContext {
            slot_clock: &self.timing.slot_clock,
            windows: &self.timing.windows,
            orphan_prune_tolerance: self.sync.orphan_prune_tolerance,
            proposals_seen: &self.proposals_seen,
            orphan_holds: &self.orphan_holds,
            now,
        };
        let result = prune(&mut self.store, &context);
        self.publish();
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => {
                tracing::warn!(target: "archiver", error = %err, "prune failed; retrying next poll");
                Ok(())
            }
        }
    }

    /// Starts a WAL sync off this task if L1 facts were written since the last one.
    fn maybe_sync_wal(&mut self) {
        if self.wal_sync.is_none()
            && let Some(sync) = self.store.take_wal_sync()
        {
            self.wal_sync = Some(tokio::task::spawn_blocking(move || sync.run()));
        }
    }

    /// Waits for the running WAL sync and runs a last one.
    async fn sync_wal_now(&mut self) -> ArchiverResult<()> {
        if let Some(sync) = self.wal_sync.take() {
            sync.await
                .map_err(|_| ArchiverError::Corrupt("the WAL sync task failed"))??;
        }
        match self.store.take_wal_sync() {
            Some(sync) => tokio::task::spawn_blocking(move || sync.run())
                .await
                .map_err(|_| ArchiverError::Corrupt("the WAL sync task failed"))?,
            None => Ok(()),
        }
    }

    fn start_cycle(&mut self, waiters: Vec<Reply<SyncReport>>) {
        let reader = self.store.reader();
        let source = self.source.clone();
        let config = self.sync;
        let fetch =
            tokio::spawn(async move { fetch_l1_update(&reader, source.as_ref(), &config).await });
        self.cycle = Some(Cycle {
            fetch: Some(fetch),
            waiters,
            ..Cycle::default()
        });
    }

    fn on_fetched(
        &mut self,
        fetched: Result<ArchiverResult<L1Update>, tokio::task::JoinError>,
    ) -> ArchiverResult<()> {
        let Some(cycle) = self.cycle.as_mut() else {
            return Ok(());
        };
        cycle.fetch = None;
        match fetched {
            Ok(Ok(update)) => {
                cycle.report.behind = update.behind;
                cycle.head = Some(update.head);
                cycle.steps = update.steps.into();
                if cycle.steps.is_empty() {
                    self.finish_cycle(Ok(()))?;
                }
                Ok(())
            }
            Ok(Err(err)) if err.is_fatal() => Err(err),
            Ok(Err(err)) => self.finish_cycle(Err(err)),
            Err(join) => {
                // The fetch task panicked or was aborted: report it and try again next tick.
                tracing::error!(target: "archiver", error = %join, "L1 fetch task failed");
                self.finish_cycle(Err(ArchiverError::Stopped))
            }
        }
    }

    fn apply_step(&mut self) -> ArchiverResult<()> {
        let Some(step) = self
            .cycle
            .as_mut()
            .and_then(|cycle| cycle.steps.pop_front())
        else {
            return Ok(());
        };
        let result = apply_l1_step(&mut self.store, step);
        self.publish();
        match result {
            Ok(outcome) => {
                let Some(cycle) = self.cycle.as_mut() else {
                    return Ok(());
                };
                cycle.report.merge(&outcome);
                if outcome.resolve_again {
                    cycle.steps.push_front(L1Step::ResolveAwaiting);
                }
                if cycle.steps.is_empty() {
                    self.finish_cycle(Ok(()))?;
                    self.maybe_fetch_body()?;
                }
                Ok(())
            }
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => self.finish_cycle(Err(err)),
        }
    }

    /// Ends the cycle: prunes (whatever L1 did: a failed sync must not hold them up), reports
    /// to its waiters, and starts the next one if someone waits for it.
    fn finish_cycle(&mut self, result: ArchiverResult<()>) -> ArchiverResult<()> {
        self.prune(crate::sync::prune)?;
        // Prunes of commands handled during the cycle are in its report too: it is what changed.
        let Some(cycle) = self.cycle.take() else {
            return Ok(());
        };
        self.maybe_sync_wal();
        match &result {
            Ok(()) => {
                if let Some(synced) = self.store.l1_synced() {
                    let now = self.timing.clock.now();
                    metrics::gauge!("archiver_l1_sync_lag_seconds")
                        .set(now.as_secs().saturating_sub(synced.timestamp) as f64);
                    metrics::gauge!("archiver_l1_synced_block").set(synced.number as f64);
                    if let Some(head) = cycle.head {
                        metrics::gauge!("archiver_l1_sync_lag_blocks")
                            .set(head.saturating_sub(synced.number) as f64);
                    }
                }
            }
            Err(err) => {
                metrics::counter!("archiver_sync_errors_total").increment(1);
                tracing::warn!(target: "archiver", error = %err, "L1 sync failed; retrying next poll");
            }
        }
        for waiter in cycle.waiters {
            let _ = waiter.send(result.clone().map(|()| cycle.report.clone()));
        }
        if !self.next_waiters.is_empty() {
            let waiters = std::mem::take(&mut self.next_waiters);
            self.start_cycle(waiters);
        }
        Ok(())
    }

    /// Starts fetching the body of the first awaiting L1 checkpoint, if it needs one.
    fn maybe_fetch_body(&mut self) -> ArchiverResult<()> {
        let Some(bodies) = self.bodies.clone() else {
            return Ok(());
        };
        if self.body_fetch.is_some() {
            return Ok(());
        }
        if let Some((number, header_hash)) = self.store.body_wanted()? {
            metrics::counter!("archiver_body_fetches_total").increment(1);
            self.body_fetch = Some(tokio::spawn(async move {
                bodies
                    .fetch(number, header_hash)
                    .await
                    .map(|body| (number, body))
            }));
        }
        Ok(())
    }

    fn on_body(&mut self, number: u64, body: FetchedCheckpointBody) -> ArchiverResult<()> {
        let result = self.store.supply_checkpoint_body(
            number,
            body.header,
            &body.body,
            body.fee_asset_price_modifier,
        );
        self.publish();
        match result {
            Ok(_) => {
                tracing::info!(target: "archiver", checkpoint = number, "checkpoint body from peers applied");
                // The ones queued behind it can go now.
                if self.cycle.is_none() {
                    self.cycle = Some(Cycle {
                        steps: VecDeque::from([L1Step::ResolveAwaiting]),
                        ..Cycle::default()
                    });
                }
                Ok(())
            }
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => {
                metrics::counter!("archiver_body_rejected_total").increment(1);
                tracing::warn!(target: "archiver", checkpoint = number, error = %err, "checkpoint body from peers rejected");
                Ok(())
            }
        }
    }

    /// Publishes the tips and the synced L1 block, and broadcasts the prunes committed since
    /// the last call.
    fn publish(&mut self) {
        let tips = self.store.tips();
        self.tips.send_if_modified(|current| {
            let changed = *current != tips;
            *current = tips;
            changed
        });
        let l1_synced = self.store.l1_synced();
        self.l1_synced.send_if_modified(|current| {
            let changed = *current != l1_synced;
            *current = l1_synced;
            changed
        });
        for prune in self.store.take_prune_events() {
            // No subscriber is fine; lagging ones see `Lagged` and reconcile.
            let _ = self.prunes.send(prune.clone());
            if let Some(cycle) = self.cycle.as_mut() {
                cycle.report.prunes.push(prune);
            }
        }
    }

    fn check_slot(&self, slot: u64) -> ArchiverResult<()> {
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

    /// Handles one command; a fatal store error is returned (and stops the actor) after it was
    /// replied.
    fn handle(&mut self, command: Command) -> ArchiverResult<()> {
        let fatal = match command {
            Command::AddBlock(block, reply) => {
                let tips = self.store.tips();
                let number = block.header.block_number;
                if number > tips.proposed_checkpoint.block.number
                    && number <= tips.proposed.block.number
                {
                    // It collides with a block no proposal covers: if that one's deadline
                    // passed since the last tick, it goes first and this one fits.
                    if let Err(fatal) = self.prune(crate::sync::prune_orphans) {
                        let _ = reply.send(Err(fatal.clone()));
                        return Err(fatal);
                    }
                }
                let result = self
                    .check_slot(block.header.slot)
                    .and_then(|()| self.store.add_proposed_block(block));
                self.publish();
                reply_and_check(reply, result)
            }
            Command::AddProposedCheckpoint(input, reply) => {
                let result = self
                    .check_slot(input.payload.header.slot)
                    .and_then(|()| self.store.add_proposed_checkpoint(input));
                self.publish();
                reply_and_check(reply, result)
            }
            Command::SyncNow(reply) => {
                if self.cycle.is_none() {
                    self.start_cycle(vec![reply]);
                } else {
                    self.next_waiters.push(reply);
                }
                None
            }
            Command::ProposalSeen(slot) => {
                self.proposals_seen.insert(slot);
                None
            }
            Command::HoldOrphans { slot, until, reply } => {
                self.hold_orphans(slot, until);
                let _ = reply.send(Ok(()));
                None
            }
        };
        fatal.map_or(Ok(()), Err)
    }
}

impl ArchiverActor {
    /// Holds `slot`'s blocks from the orphan prune until `until` (at most [`MAX_ORPHAN_HOLD`]
    /// from now; a later hold of the same slot extends it).
    fn hold_orphans(&mut self, slot: u64, until: Timestamp) {
        let now = self.timing.clock.now();
        let until = until.min(now.saturating_add(MAX_ORPHAN_HOLD));
        let hold = self.orphan_holds.entry(slot).or_insert(until);
        *hold = (*hold).max(until);
        while self.orphan_holds.len() > MAX_ORPHAN_HOLDS {
            self.orphan_holds.pop_first();
        }
    }
}

/// The result of a task, if there is one (else pending forever: the select branch is off).
async fn join<T>(task: Option<&mut JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// Replies; returns the error again if it is fatal (the reply gets a copy).
fn reply_and_check<T>(reply: Reply<T>, result: ArchiverResult<T>) -> Option<ArchiverError> {
    let fatal = match &result {
        Err(err) if err.is_fatal() => Some(err.clone()),
        _ => None,
    };
    let _ = reply.send(result);
    fatal
}
