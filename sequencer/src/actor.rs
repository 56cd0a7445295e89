//! The sequencer actor: ticks every poll interval, on every archiver tip change and on every
//! newly synced L1 block; one tick is one clock read, `prepare`, and — when this node builds —
//! the job's blocking part; each gossiped checkpoint gets its own background pipeline.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinSet,
    time::MissedTickBehavior,
};
use tokio_util::sync::CancellationToken;

use tandem_proto::time::Slot;

use crate::{
    config::SequencerConfig,
    context::Ctx,
    deps::{ProtocolParams, SequencerDeps},
    error::{SequencerError, SequencerResult},
    events::{SEQUENCER_EVENTS_CAPACITY, SequencerEvent},
    job::propose_checkpoint,
    pipeline::{self, PipelineEnd},
    prepare::{Attempts, Prepared, Snapshot, prepare},
    state::{SequencerState, StateTracker},
};

/// Capacity of the handle's command queue.
pub const SEQUENCER_COMMAND_CAPACITY: usize = 16;
/// How long shutdown waits for the last pending submission after interrupting it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

enum Command {
    Status(oneshot::Sender<SequencerStatus>),
}

/// What the sequencer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencerStatus {
    /// The loop's state.
    pub state: SequencerState,
    /// The last target slot a job was prepared for (or given up).
    pub last_attempted: Option<Slot>,
}

/// Cloneable access to the sequencer.
#[derive(Debug, Clone)]
pub struct SequencerHandle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<SequencerState>,
    events: broadcast::Sender<SequencerEvent>,
}

impl SequencerHandle {
    /// The loop's state now.
    pub fn state(&self) -> SequencerState {
        *self.state.borrow()
    }

    /// Changes with every state change of the loop.
    pub fn watch_state(&self) -> watch::Receiver<SequencerState> {
        self.state.clone()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SequencerEvent> {
        self.events.subscribe()
    }

    /// State and last attempted slot (answered between ticks).
    pub async fn status(&self) -> SequencerResult<SequencerStatus> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| SequencerError::Interrupted)?;
        answer.await.map_err(|_| SequencerError::Interrupted)
    }
}

/// The actor; see the crate docs.
pub struct Sequencer {
    ctx: Arc<Ctx>,
    commands: mpsc::Receiver<Command>,
    attempts: Attempts,
    /// Parent of every pipeline's interrupt token.
    pipelines: CancellationToken,
    /// Every pipeline still running; reaped each tick so that a failed one is counted when it
    /// fails, all awaited (within one grace) at shutdown.
    running: JoinSet<PipelineEnd>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Sequencer {
    /// A sequencer for `params`' network with `deps`; refuses a bad config.
    pub fn new(
        config: SequencerConfig,
        params: ProtocolParams,
        deps: SequencerDeps,
    ) -> SequencerResult<(SequencerHandle, Self)> {
        config.validate_for(&params)?;
        let (tracker, state) = StateTracker::new();
        let (events, _) = broadcast::channel(SEQUENCER_EVENTS_CAPACITY);
        let (commands_tx, commands) = mpsc::channel(SEQUENCER_COMMAND_CAPACITY);
        crate::metrics::describe_metrics();
        let ctx = Arc::new(Ctx {
            deps,
            config,
            params,
            tracker,
            events: events.clone(),
        });
        Ok((
            SequencerHandle {
                commands: commands_tx,
                state,
                events,
            },
            Self {
                ctx,
                commands,
                attempts: Attempts::default(),
                pipelines: CancellationToken::new(),
                running: JoinSet::new(),
            },
        ))
    }

    /// Runs until `cancel`; then interrupts the last job and the publisher and waits (at most
    /// [`SHUTDOWN_GRACE`]) for the pending submission. Errors of a tick are logged, never fatal.
    pub async fn run(mut self, cancel: CancellationToken) -> SequencerResult<()> {
        self.ctx.tracker.set(SequencerState::Idle)?;
        let mut ticker = tokio::time::interval(self.ctx.config.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tips = self.ctx.deps.chain.watch_tips();
        // The sync guard of the first checkpoint built after a start waits for an L1 block
        // that changes no tip: without this it would be seen only a poll later.
        let mut l1_synced = self.ctx.deps.chain.watch_l1_synced();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(command) = self.commands.recv() => {
                    self.answer(command);
                    continue;
                }
                _ = ticker.tick() => {}
                Ok(()) = tips.changed() => {}
                Ok(()) = l1_synced.changed() => {}
            }
            let ctx = Arc::clone(&self.ctx);
            let result = tokio::select! {
                biased;
                // `select!` drops the tick's future (and its job guard) as soon as this branch
                // completes, before its handler runs: `Stopping` must be set inside the
                // branch's future so that a job cut short reports `interrupted`.
                () = async {
                    cancel.cancelled().await;
                    ctx.tracker.stopping();
                } => break,
                result = self.tick() => result,
            };
            match result {
                Ok(()) => {}
                Err(SequencerError::Interrupted) => break,
                Err(err) => {
                    tracing::error!(target: "sequencer", %err, "sequencer tick failed");
                    // A failed job leaves the loop in its last state: back to idle.
                    self.ctx.tracker.set(SequencerState::Idle)?;
                }
            }
        }
        self.shutdown().await;
        Ok(())
    }

    fn answer(&self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(SequencerStatus {
                    state: self.ctx.tracker.current(),
                    last_attempted: self.attempts.last_attempted,
                });
            }
        }
    }

    /// One tick (reference §3.2).
    async fn tick(&mut self) -> SequencerResult<()> {
        self.reap_pipelines();
        self.ctx.tracker.set(SequencerState::Synchronizing)?;
        let now = self.ctx.now();
        if let Some(snapshot) = Snapshot::at(&self.ctx, now)
            && let Prepared::Job(job) = prepare(&self.ctx, &mut self.attempts, snapshot).await?
            && let Some(built) = propose_checkpoint(&self.ctx, *job).await?
        {
            let interrupt = self.pipelines.child_token();
            self.running
                .spawn(pipeline::run(Arc::clone(&self.ctx), built, interrupt));
        }
        self.ctx.tracker.set(SequencerState::Idle)
    }

    /// Counts the pipelines that ended by a panic or a cancellation since the last tick.
    fn reap_pipelines(&mut self) {
        while let Some(joined) = self.running.try_join_next() {
            pipeline_joined(joined);
        }
    }

    /// Interrupts every pipeline and the publisher, then waits at most [`SHUTDOWN_GRACE`] for
    /// all pipelines; those that do not stop in time are aborted, those that panicked are
    /// reported. Never fails: shutdown must always reach `Stopped`.
    async fn shutdown(&mut self) {
        self.ctx.tracker.stopping();
        self.pipelines.cancel();
        self.ctx.deps.publisher.interrupt();
        let running = &mut self.running;
        let all = async {
            while let Some(joined) = running.join_next().await {
                pipeline_joined(joined);
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!(target: "sequencer", left = self.running.len(),
                "pending submissions did not stop within {SHUTDOWN_GRACE:?}; aborted");
            self.running.abort_all();
        }
        // Stopped is always allowed.
        let _ = self.ctx.tracker.set(SequencerState::Stopped);
    }
}

/// Reports a pipeline task that panicked or was cancelled (it reported no outcome itself).
fn pipeline_joined(joined: Result<PipelineEnd, tokio::task::JoinError>) {
    if let Err(err) = joined {
        crate::metrics::pipeline_task_failed();
        tracing::error!(target: "sequencer", %err, "a pipeline task failed");
    }
}
