//! The publisher actor and its handle. `enqueue` returns as soon as the request is accepted; each
//! request then runs as its own task (scheduled send, simulation, send, monitoring), so nothing
//! the sequencer calls waits for L1. On start the actor resumes every live record of the store.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::{primitives::Address, providers::DynProvider};
use tandem_l1::ProposeBundle;
use tandem_proto::time::{Clock, Slot, SlotClock};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    chain::{L1Chain, RpcChain},
    config::PublisherConfig,
    context::{SendHooks, Shared},
    error::PublisherError,
    ledger::Ledger,
    monitor,
    record::TxRecord,
    signing::PublisherKeys,
    simulator::Simulator,
    store::TxStore,
    submission::{self, Request, SubmissionHandle, SubmissionOutcome, SubmissionStatus},
};

/// Capacity of the command queue.
pub const COMMAND_QUEUE_CAPACITY: usize = 64;
/// How long a stopping publisher waits for its tasks after interrupting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

type Reply<T> = oneshot::Sender<Result<T, PublisherError>>;

enum Command {
    Enqueue(Request, Reply<SubmissionHandle>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Enqueue(request, _) => write!(f, "Enqueue(slot {})", request.target),
        }
    }
}

/// What the publisher needs.
pub struct PublisherDeps {
    /// Settings.
    pub config: PublisherConfig,
    /// The L1 keys that pay for proposes.
    pub keys: PublisherKeys,
    /// L1 RPC.
    pub provider: DynProvider,
    /// The rollup.
    pub rollup: Address,
    /// Protocol time (genesis, S, E).
    pub slot_clock: SlotClock,
    /// The local clock.
    pub clock: Arc<dyn Clock>,
    /// Directory of the tx store (`<data_dir>/publisher`).
    pub store_path: PathBuf,
    /// Optional send-path observers.
    pub hooks: Option<Arc<dyn SendHooks>>,
}

/// Cloneable access to the publisher.
#[derive(Debug, Clone)]
pub struct PublisherHandle {
    commands: mpsc::Sender<Command>,
    interrupt: CancellationToken,
    simulator: Simulator,
    live: Arc<AtomicUsize>,
}

impl PublisherHandle {
    /// Queues `propose` for `target_slot`; it may land up to `last_valid_slot`. Returns once
    /// queued: await the handle's outcome or drop it.
    pub async fn enqueue(
        &self,
        propose: ProposeBundle,
        target_slot: Slot,
        last_valid_slot: Slot,
    ) -> Result<SubmissionHandle, PublisherError> {
        if self.interrupt.is_cancelled() {
            return Err(PublisherError::Interrupted);
        }
        let checkpoint_number = u64::try_from(propose.args.checkpointNumber)
            .map_err(|_| PublisherError::InvalidRequest("checkpoint number above u64"))?;
        if propose.args.header.slot != target_slot.0 {
            return Err(PublisherError::InvalidRequest(
                "the header's slot is not the target slot",
            ));
        }
        if last_valid_slot < target_slot {
            return Err(PublisherError::InvalidRequest(
                "last valid slot is before the target slot",
            ));
        }
        let request = Request {
            bundle: propose,
            checkpoint_number,
            target: target_slot,
            last_valid: last_valid_slot,
        };
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Enqueue(request, reply))
            .await
            .map_err(|_| PublisherError::Interrupted)?;
        response.await.map_err(|_| PublisherError::Interrupted)?
    }

    /// Stops every wait (scheduling sleeps, receipt polls) at once: their handles resolve with
    /// `Interrupted`, sent txs stay in the store for the next start, and the publisher stops.
    pub fn interrupt(&self) {
        self.interrupt.cancel();
    }

    /// Txs being watched: sent and not yet mined, mined within their window, or cancelling
    /// (resumed ones included).
    pub fn live_txs(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The simulator (cloneable; never queues behind a submission).
    pub fn simulator(&self) -> Simulator {
        self.simulator.clone()
    }
}

/// The publisher actor.
pub struct Publisher {
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    interrupt: CancellationToken,
    resume: Vec<TxRecord>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("keys", &self.shared.keys)
            .field("resume", &self.resume.len())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Opens the tx store, reads the chain id and restores the nonce ledger from live records.
    pub async fn open(deps: PublisherDeps) -> Result<(PublisherHandle, Self), PublisherError> {
        deps.config.validate()?;
        let simulator = Simulator::new(
            deps.provider.clone(),
            deps.rollup,
            deps.keys.addresses().first().copied().unwrap_or_default(),
            deps.config.simulation_method,
        );
        let chain = Arc::new(RpcChain::new(
            deps.provider.clone(),
            deps.rollup,
            simulator.clone(),
        ));
        Self::open_with(deps, chain, simulator).await
    }

    /// [`Publisher::open`] over any L1 (unit tests script one).
    pub(crate) async fn open_with(
        deps: PublisherDeps,
        chain: Arc<dyn L1Chain>,
        simulator: Simulator,
    ) -> Result<(PublisherHandle, Self), PublisherError> {
        deps.config.validate()?;
        let store_path = deps.store_path.clone();
        let keep = deps.config.keep_finished_records;
        let store = tokio::task::spawn_blocking(move || {
            let store = TxStore::open(&store_path)?;
            store.prune_finished(keep)?;
            Ok::<_, PublisherError>(store)
        })
        .await
        .map_err(PublisherError::StoreTask)??;
        let chain_id = chain.chain_id().await?;
        let addresses = deps.keys.addresses();
        let mut ledger = Ledger::new(&addresses);
        let mut active = HashSet::new();
        let mut resume = Vec::new();
        for record in store.live_records()? {
            if !addresses.contains(&record.key) {
                tracing::error!(target: "publisher", key = %record.key, nonce = record.nonce,
                    slot = %record.target_slot,
                    "a tx in the store belongs to a key that is no longer configured: add the key back to track it");
                continue;
            }
            ledger.hold(record.key, record.nonce);
            active.insert(record.target_slot);
            resume.push(record);
        }
        let shared = Arc::new(Shared {
            chain,
            chain_id,
            keys: deps.keys,
            store: Arc::new(store),
            ledger: std::sync::Mutex::new(ledger),
            active_slots: std::sync::Mutex::new(active),
            config: deps.config,
            slot_clock: deps.slot_clock,
            clock: deps.clock,
            hooks: deps.hooks,
            live: Arc::new(AtomicUsize::new(0)),
        });
        // Resumed records count as live from now on, before `run` picks them up.
        for _ in &resume {
            shared.live_started();
        }
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let interrupt = CancellationToken::new();
        let handle = PublisherHandle {
            commands: commands_tx,
            interrupt: interrupt.clone(),
            simulator,
            live: shared.live.clone(),
        };
        Ok((
            handle,
            Self {
                shared,
                commands,
                interrupt,
                resume,
            },
        ))
    }

    /// Runs until `cancel` fires or the handle interrupts (or every handle is gone and every
    /// task ended); then interrupts every task and waits for them (at most
    /// [`SHUTDOWN_GRACE`]). Fails only when the tx store breaks or a task panics; an error of one
    /// request is logged and the others go on.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), PublisherError> {
        crate::metrics::register_zeroes();
        let mut tasks: JoinSet<Result<(), PublisherError>> = JoinSet::new();
        for record in std::mem::take(&mut self.resume) {
            let shared = self.shared.clone();
            let token = self.interrupt.child_token();
            let slot = record.target_slot;
            // Nobody awaits a resumed record: its outcome goes to logs and metrics.
            let (status, _) = watch::channel(SubmissionStatus::Scheduled);
            tasks.spawn(async move {
                let outcome = monitor::watch(shared.clone(), record, status, token, true).await;
                shared.active_slots().remove(&slot);
                if let Ok(outcome) = &outcome {
                    count(outcome);
                }
                outcome.map(|_| ())
            });
        }
        let mut handles_gone = false;
        let result = loop {
            if handles_gone && tasks.is_empty() {
                break Ok(());
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(()),
                () = self.interrupt.cancelled() => break Ok(()),
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) if error.is_fatal() => break Err(error),
                    Ok(Err(error)) => {
                        tracing::error!(target: "publisher", %error, "a submission ended with an error");
                    }
                    Err(error) if error.is_panic() => break Err(PublisherError::TaskPanicked(error)),
                    Err(_) => {}
                },
                command = self.commands.recv(), if !handles_gone => match command {
                    Some(Command::Enqueue(request, reply)) => {
                        let _ = reply.send(self.enqueue(&mut tasks, request));
                    }
                    // Every handle is gone: finish what is in flight (`cancel` still stops it).
                    None => handles_gone = true,
                },
            }
        };
        self.interrupt.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(target: "publisher", "submission tasks did not stop in time; aborting them");
            tasks.abort_all();
        }
        result
    }

    fn enqueue(
        &self,
        tasks: &mut JoinSet<Result<(), PublisherError>>,
        request: Request,
    ) -> Result<SubmissionHandle, PublisherError> {
        let shared = &self.shared;
        let next = shared
            .slot_clock
            .slot_at_next_l1_block(shared.clock.now())
            .unwrap_or_default();
        if next > request.last_valid {
            return Err(PublisherError::SlotPassed {
                last_valid: request.last_valid,
                next,
            });
        }
        if !shared.active_slots().insert(request.target) {
            return Err(PublisherError::SlotAlreadyEnqueued(request.target));
        }
        let (status, receiver) = watch::channel(SubmissionStatus::Scheduled);
        let shared = shared.clone();
        let token = self.interrupt.child_token();
        tracing::debug!(target: "publisher", slot = %request.target,
            checkpoint = request.checkpoint_number, "propose queued");
        tasks.spawn(async move {
            let slot = request.target;
            let status_out = status.clone();
            let result = submission::run(shared.clone(), request, status, token).await;
            shared.active_slots().remove(&slot);
            // A fatal error stops the publisher: the request is interrupted, its record (if any)
            // is resumed at the next start.
            let outcome = match &result {
                Ok(outcome) => outcome.clone(),
                Err(_) => SubmissionOutcome::Interrupted,
            };
            count(&outcome);
            status_out.send_replace(SubmissionStatus::Done(outcome));
            result.map(|_| ())
        });
        Ok(SubmissionHandle::new(receiver))
    }
}

/// Counts a request's outcome once. An interrupted request is not counted: its record (if it
/// was sent) is resumed at the next start and counted when it ends.
fn count(outcome: &SubmissionOutcome) {
    if *outcome != SubmissionOutcome::Interrupted {
        crate::metrics::outcome(outcome.as_str());
    }
}
