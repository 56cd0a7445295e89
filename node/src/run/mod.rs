//! `tandem run`: builds the node's components and supervises them. The first fatal error, or
//! SIGINT/SIGTERM, cancels everything; then every task is awaited for a bounded time.
//!
//! Order at start: data dir (lock, schema) → keys (a validator without usable keys stops here)
//! → metrics and RPC servers (they answer `/health` at once and `/ready` with why not) → bind to
//! the deployment (retried while L1 is unreachable) → the components ([`components`]) → the
//! health monitor ([`health`]), which decides readiness.

mod components;

pub(crate) use components::l1_provider;
pub(crate) mod health;

use std::{sync::Arc, time::Duration};

use eyre::WrapErr;
use tandem_proto::time::{Clock, PipeliningMode, SlotClock, SystemClock};
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub(crate) use self::components::Services;
use self::health::ReadyReport;
use crate::{
    config::{Config, Role},
    datadir::DataDir,
};

/// How long tasks get to finish after cancellation before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Options of `tandem run` that are not configuration (they describe one start, not the node).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunOptions {
    /// Create the slashing-protection record (or register new keys in it) instead of refusing
    /// a missing one.
    pub(crate) init_slashing_protection: bool,
}

pub(crate) fn run(config: Config, options: RunOptions) -> eyre::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tandem")
        .build()
        .wrap_err("starting the async runtime")?;
    // Opened outside the runtime and released after it shut down: jsonrpsee's and the metrics
    // server's connection tasks hold the stores (through `NodeView`) until the runtime drops.
    let data = DataDir::open(&config.node.data_dir)?;
    let result = runtime.block_on(supervise(config, options, &data));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    drop(data);
    result
}

/// How long the runtime waits for leftover tasks (connections) after the supervisor returned.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(2);

/// The supervised tasks, each with its name (kept by task id, so a panic is reported by name).
#[derive(Default)]
pub(crate) struct Tasks {
    set: JoinSet<eyre::Result<()>>,
    names: std::collections::HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn new() -> Self {
        Self::default()
    }

    /// The next task to end, with its name; a panic is its error.
    async fn join_next(&mut self) -> Option<(&'static str, eyre::Result<()>)> {
        let joined = self.set.join_next_with_id().await?;
        Some(match joined {
            Ok((id, result)) => (self.names.remove(&id).unwrap_or("a task"), result),
            Err(err) => (
                self.names.remove(&err.id()).unwrap_or("a task"),
                Err(eyre::eyre!("panicked or aborted: {err}")),
            ),
        })
    }

    /// The names of the tasks still running.
    fn running(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.names.values().copied().collect();
        names.sort_unstable();
        names
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Spawns `future` as the supervised task `name`; its error is reported with the name.
pub(crate) fn spawn<F, E>(tasks: &mut Tasks, name: &'static str, future: F)
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<eyre::Report> + Send + 'static,
{
    let handle = tasks
        .set
        .spawn(async move { future.await.map_err(Into::into) });
    tasks.names.insert(handle.id(), name);
}

/// What the RPC server and the probes see of the node: fixed facts, readiness, and the
/// components once the node is bound to its deployment.
pub(crate) struct NodeView {
    /// `node.role`.
    pub(crate) role: Role,
    /// The latest readiness verdict.
    pub(crate) ready: watch::Receiver<ReadyReport>,
    /// Set once, after binding.
    pub(crate) services: std::sync::OnceLock<Arc<Services>>,
    /// Senders of recently served blocks (`tandem_getBlock` with txs).
    pub(crate) senders: crate::rpc::SenderCache,
}

async fn supervise(config: Config, options: RunOptions, data: &DataDir) -> eyre::Result<()> {
    let cancel = CancellationToken::new();
    let mut tasks = Tasks::new();

    if config.metrics.enabled {
        crate::metrics::install()?;
    }
    let role = match config.node.role {
        Role::Validator => "validator",
        Role::FullNode => "full_node",
    };
    metrics::gauge!("node_info", "version" => env!("CARGO_PKG_VERSION"), "role" => role).set(1.0);

    // Decrypted before anything listens, so a wrong password stops the node at once.
    let keys = components::NodeKeys::load(&config)?;

    let (ready_tx, ready_rx) = watch::channel(ReadyReport::unbound());
    health::publish_gauges(&ready_rx.borrow());
    let view = Arc::new(NodeView {
        role: config.node.role,
        ready: ready_rx,
        services: std::sync::OnceLock::new(),
        senders: crate::rpc::SenderCache::default(),
    });
    if config.metrics.enabled {
        let server = crate::rpc::http::MetricsServer::bind(config.metrics.listen_addr, &view)
            .await
            .wrap_err_with(|| format!("metrics.listen_addr {}", config.metrics.listen_addr))?;
        info!(target: "node", addr = %server.local_addr(), "serving /metrics, /health and /ready");
        spawn(&mut tasks, "metrics server", server.run(cancel.clone()));
        spawn(&mut tasks, "metrics upkeep", metrics_upkeep(cancel.clone()));
    }
    if config.rpc.enabled {
        let server = crate::rpc::RpcServer::start(&config.rpc, Arc::clone(&view))
            .await
            .wrap_err_with(|| format!("rpc.listen_addr {}", config.rpc.listen_addr))?;
        info!(target: "node", addr = %server.local_addr(), "serving JSON-RPC (HTTP and WebSocket), /health and /ready");
        spawn(&mut tasks, "rpc server", server.run(cancel.clone()));
    }
    spawn(&mut tasks, "signals", cancel_on_signal(cancel.clone()));

    info!(target: "node", role, data_dir = %config.node.data_dir.display(), "node starting; binding to the rollup deployment");
    let start = bind_and_build(config, options, keys, data, view, ready_tx, cancel.clone());
    let result = wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, start).await;
    info!(target: "node", "node stopped");
    result
}

/// A component to supervise: its name and its future.
pub(crate) type Component = (
    &'static str,
    futures::future::BoxFuture<'static, eyre::Result<()>>,
);

/// Boxes `future` as the component `name`.
pub(crate) fn component<F, E>(name: &'static str, future: F) -> Component
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<eyre::Report> + Send + 'static,
{
    (
        name,
        Box::pin(async move { future.await.map_err(Into::into) }),
    )
}

/// Binds to the deployment (retrying while L1 is unreachable), then builds the components and
/// returns them for the supervisor to spawn; `None` when cancelled before binding.
async fn bind_and_build(
    mut config: Config,
    options: RunOptions,
    keys: components::NodeKeys,
    data: &DataDir,
    view: Arc<NodeView>,
    ready: watch::Sender<ReadyReport>,
    cancel: CancellationToken,
) -> eyre::Result<Option<Vec<Component>>> {
    let Some(bound) = crate::binding::bind(&config, &cancel).await? else {
        return Ok(None);
    };
    config.protocol = config.protocol.bound_to(&bound.params);
    // The offline check could only use defaults for unset [protocol] keys: run the rules that
    // depend on them again on the contract's values. A mismatch is as final as a disagreeing
    // key (retrying cannot fix it), so the node refuses to start.
    config.validate_bound().wrap_err(
        "the configuration does not fit the deployment's constants (read from the rollup contract)",
    )?;
    metrics::gauge!("node_bound").set(1.0);
    info!(
        target: "node",
        rollup = %bound.rollup,
        l1_chain_id = bound.l1_chain_id,
        l2_chain_id = bound.params.l2_chain_id,
        deployment_block = ?bound.deployment_block,
        mode = %config.protocol.pipelining_mode(),
        "bound to the rollup deployment"
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (services, mut components) =
        components::build(&config, &bound, data, keys, options, &clock, &cancel).await?;
    let services = Arc::new(services);
    let monitor = health::HealthMonitor::new(&config, &services, Arc::clone(&clock), ready);
    components.push(component("health monitor", monitor.run(cancel.clone())));
    let ticker = SlotTicker {
        clock,
        slot_clock: config.slot_clock()?,
        mode: config.protocol.pipelining_mode(),
    };
    components.push(component("slot ticker", ticker.run(cancel.clone())));
    if view.services.set(services).is_err() {
        eyre::bail!("the node's components were built twice");
    }
    Ok(Some(components))
}

/// A periodic loop's timer: missed ticks are delayed, not burst.
pub(crate) fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Waits for the next tick; `false` once `cancel` fired (checked first).
pub(crate) async fn tick(interval: &mut tokio::time::Interval, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        _ = interval.tick() => true,
    }
}

async fn metrics_upkeep(cancel: CancellationToken) -> eyre::Result<()> {
    let mut interval = every(crate::metrics::UPKEEP_INTERVAL);
    while tick(&mut interval, &cancel).await {
        crate::metrics::upkeep();
    }
    Ok(())
}

/// Waits for every task while the start binds and builds. The first error (or a component
/// that ends by itself) cancels the rest; once cancelled every task gets [`SHUTDOWN_GRACE`] to
/// finish. Returns the first error.
async fn wait_all(
    tasks: &mut Tasks,
    cancel: &CancellationToken,
    grace: Duration,
    start: impl Future<Output = eyre::Result<Option<Vec<Component>>>>,
) -> eyre::Result<()> {
    let mut start = std::pin::pin!(start);
    let mut starting = true;
    let mut first_error: Option<eyre::Report> = None;
    let fail = |name: &str, err: eyre::Report, first_error: &mut Option<eyre::Report>| {
        if first_error.is_none() {
            error!(target: "node", task = name, error = %format!("{err:#}"), "fatal error, shutting down");
            *first_error = Some(err.wrap_err(format!("{name} failed")));
        } else {
            error!(target: "node", task = name, error = %format!("{err:#}"), "error while shutting down");
        }
        cancel.cancel();
    };
    while !cancel.is_cancelled() {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            started = &mut start, if starting => {
                starting = false;
                match started {
                    Ok(Some(components)) => {
                        let count = components.len();
                        for (name, future) in components {
                            spawn(tasks, name, future);
                        }
                        info!(target: "node", components = count, "node running");
                    }
                    Ok(None) => {}
                    Err(err) => fail("start", err, &mut first_error),
                }
            }
            Some((name, result)) = tasks.join_next() => {
                match result {
                    Err(err) => fail(name, err, &mut first_error),
                    // Components run until cancelled: one that ends by itself is a failure.
                    // The start's poll can run long enough for the signal task to cancel
                    // and end before this branch sees it: an end after cancellation is
                    // the requested one.
                    Ok(()) if cancel.is_cancelled() => {}
                    Ok(()) => fail(name, eyre::eyre!("ended unexpectedly"), &mut first_error),
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(None) => break,
            Ok(Some((name, result))) => {
                if let Err(err) = result {
                    fail(name, err, &mut first_error);
                }
            }
            Err(_) => {
                let stuck = tasks.running().join(", ");
                error!(target: "node", tasks = %stuck, "tasks did not stop within the grace period; aborting them");
                tasks.set.abort_all();
                while tasks.set.join_next().await.is_some() {}
                // Their stores may not have flushed: not a clean stop.
                let overrun = eyre::eyre!(
                    "did not stop within {}: {stuck}",
                    humantime::format_duration(grace)
                );
                return Err(first_error.map_or(overrun, |err| {
                    err.wrap_err(format!("also: {stuck} did not stop in time"))
                }));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn cancel_on_signal(cancel: CancellationToken) -> eyre::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .wrap_err("installing the SIGTERM handler")?;
    tokio::select! {
        () = cancel.cancelled() => return Ok(()),
        result = tokio::signal::ctrl_c() => result.wrap_err("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    info!(target: "node", "shutdown requested");
    cancel.cancel();
    Ok(())
}

/// Publishes the node's view of time (slot, epoch, target slot) once per L1 block.
struct SlotTicker {
    clock: Arc<dyn Clock>,
    slot_clock: SlotClock,
    mode: PipeliningMode,
}

impl SlotTicker {
    async fn run(self, cancel: CancellationToken) -> eyre::Result<()> {
        let mut last_slot = None;
        loop {
            let now = self.clock.now();
            if let Some(slot) = self.slot_clock.slot_at(now) {
                metrics::gauge!("node_current_slot").set(slot.0 as f64);
                metrics::gauge!("node_current_epoch").set(self.slot_clock.epoch_of(slot).0 as f64);
                if last_slot != Some(slot) {
                    tracing::debug!(target: "node", %slot, epoch = %self.slot_clock.epoch_of(slot), "slot started");
                    last_slot = Some(slot);
                }
            }
            if let Some(target) = self.slot_clock.target_slot(now, self.mode) {
                metrics::gauge!("node_target_slot").set(target.0 as f64);
            }
            let wait = now.until(self.slot_clock.next_l1_block_time(now));
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn waits_for_cancel(cancel: CancellationToken, stopped: Arc<AtomicBool>) -> Component {
        component("steady", async move {
            cancel.cancelled().await;
            stopped.store(true, Ordering::SeqCst);
            Ok::<(), eyre::Report>(())
        })
    }

    #[tokio::test]
    async fn the_first_failure_stops_every_component_and_is_returned_by_name() {
        let cancel = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let components = vec![
            waits_for_cancel(cancel.clone(), Arc::clone(&stopped)),
            component("archiver", async {
                tokio::task::yield_now().await;
                Err::<(), _>(eyre::eyre!("disk full"))
            }),
        ];
        let mut tasks = Tasks::new();
        let err = wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, async {
            Ok(Some(components))
        })
        .await
        .unwrap_err();
        assert_eq!(format!("{err:#}"), "archiver failed: disk full");
        assert!(cancel.is_cancelled());
        assert!(
            stopped.load(Ordering::SeqCst),
            "the other component was not stopped"
        );
        assert!(tasks.is_empty());
    }

    /// A task's end that the supervisor first sees after the cancel is the requested stop, not
    /// a failure: in `tandem run` the signal task cancels and ends while the start is being
    /// polled (binding and building can poll long), which made a SIGTERM during start exit 1.
    /// Deterministic stand-in: the task has ended and the start's poll cancels, so both are
    /// seen in one round of the supervisor's select.
    #[tokio::test]
    async fn a_task_that_ends_while_the_start_cancels_is_a_clean_stop() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        spawn(&mut tasks, "signals", async move {
            flag.store(true, Ordering::SeqCst);
            Ok::<(), eyre::Report>(())
        });
        // Current-thread runtime: once the flag is seen the task has run to its end.
        while !ended.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let start_cancel = cancel.clone();
        let start = std::future::poll_fn(move |_| {
            start_cancel.cancel();
            std::task::Poll::<eyre::Result<Option<Vec<Component>>>>::Pending
        });
        let result = wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, start).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn a_component_that_ends_by_itself_is_a_failure_and_a_failed_start_too() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new();
        let components = vec![component("p2p", async { Ok::<(), eyre::Report>(()) })];
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, async {
                Ok(Some(components))
            }),
        )
        .await
        .expect("the supervisor stops when a component ends")
        .unwrap_err();
        assert_eq!(format!("{err:#}"), "p2p failed: ended unexpectedly");

        let cancel = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        spawn(
            &mut tasks,
            "steady",
            waits_for_cancel(cancel.clone(), Arc::clone(&stopped)).1,
        );
        let err = wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, async {
            Err(eyre::eyre!(
                "protocol.slot_duration: the configuration says 12s"
            ))
        })
        .await
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "start failed: protocol.slot_duration: the configuration says 12s"
        );
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn cancellation_drains_every_component_without_an_error() {
        let cancel = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::new();
        let components = vec![waits_for_cancel(cancel.clone(), Arc::clone(&stopped))];
        let trigger = cancel.clone();
        let start = async move {
            trigger.cancel();
            Ok(Some(components))
        };
        // Cancelled as the start hands its components over: they are spawned and drained
        // (each sees the cancellation and stops), and a drain is not an error.
        wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, start)
            .await
            .unwrap();
        assert!(tasks.is_empty());
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicked_component_is_named() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new();
        let components = vec![component("publisher", async {
            tokio::task::yield_now().await;
            panic!("index out of bounds");
            #[allow(unreachable_code)]
            Ok::<(), eyre::Report>(())
        })];
        let err = wait_all(&mut tasks, &cancel, SHUTDOWN_GRACE, async {
            Ok(Some(components))
        })
        .await
        .unwrap_err();
        assert!(
            format!("{err:#}").starts_with("publisher failed: panicked"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn a_drain_that_overruns_the_grace_is_an_error_naming_the_task() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new();
        let stubborn = component("archiver", async {
            std::future::pending::<()>().await;
            Ok::<(), eyre::Report>(())
        });
        let trigger = cancel.clone();
        let start = async move {
            trigger.cancel();
            Ok(Some(vec![stubborn]))
        };
        let grace = Duration::from_millis(100);
        let err = wait_all(&mut tasks, &cancel, grace, start)
            .await
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "did not stop within 100ms: archiver");
        assert!(tasks.is_empty());
    }
}
