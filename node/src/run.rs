//! `tandem run`: builds the node's components and supervises them. The first fatal error, or
//! SIGINT/SIGTERM, cancels everything; then every task is awaited.

use std::{sync::Arc, time::Duration};

use eyre::WrapErr;
use tandem_proto::time::{Clock, PipeliningMode, SlotClock, SystemClock};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::{Config, Role};

/// How long tasks get to finish after cancellation before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn run(config: Config) -> eyre::Result<()> {
    init_tracing(&config.node.log_filter);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tandem")
        .build()
        .wrap_err("starting the async runtime")?;
    runtime.block_on(supervise(config))
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignore the error of a second init (only possible in tests).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

type Task = JoinSet<eyre::Result<()>>;

async fn supervise(config: Config) -> eyre::Result<()> {
    std::fs::create_dir_all(&config.node.data_dir)
        .wrap_err_with(|| format!("node.data_dir: creating {}", config.node.data_dir.display()))?;

    let cancel = CancellationToken::new();
    let mut tasks: Task = JoinSet::new();

    if config.metrics.enabled {
        let exporter = crate::metrics::install(config.metrics.listen_addr)?;
        info!(target: "node", addr = %config.metrics.listen_addr, "serving metrics at /metrics");
        spawn_metrics(&mut tasks, exporter, cancel.clone());
    }
    let role = match config.node.role {
        Role::Validator => "validator",
        Role::FullNode => "full_node",
    };
    metrics::gauge!("node_info", "version" => env!("CARGO_PKG_VERSION"), "role" => role).set(1.0);

    if config.node.role == Role::Validator {
        let (keystore, password) =
            match (&config.validator.keystore, &config.validator.password_file) {
                (Some(keystore), Some(password)) => (keystore, password),
                _ => eyre::bail!(
                    "validator.keystore and validator.password_file are required for a validator"
                ),
            };
        let key = crate::keys::load_keystore(keystore, password)?;
        info!(target: "node", address = %key.address(), "validator key loaded");
        // Decrypted now, so a wrong password or a shared account stops the node at once.
        let publisher_keys = config.publisher.load_keys(&[key.address()])?;
        info!(target: "node", keys = ?publisher_keys, "publisher keys loaded");
    }

    metrics::gauge!("node_ready").set(0.0);
    tasks.spawn(start_bound(config, cancel.clone()));
    tasks.spawn(cancel_on_signal(cancel.clone()));

    info!(target: "node", role, "node started; binding to the rollup deployment");
    let result = wait_all(&mut tasks, &cancel).await;
    info!(target: "node", "node stopped");
    result
}

/// Binds to the deployment (retrying while L1 is unreachable), then runs what needs the
/// deployment's constants. A deployment that disagrees with the configuration is fatal.
async fn start_bound(mut config: Config, cancel: CancellationToken) -> eyre::Result<()> {
    let Some(bound) = crate::binding::bind(&config, &cancel).await? else {
        return Ok(());
    };
    config.protocol = config.protocol.bound_to(&bound.params);
    // The offline check could only use defaults for unset [protocol] keys: run the rules that
    // depend on them again on the contract's values. A mismatch is as final as a disagreeing
    // key (retrying cannot fix it), so the node refuses to start and names the keys.
    config.validate_bound().wrap_err(
        "the configuration does not fit the deployment's constants (read from the rollup contract)",
    )?;
    let domain = bound.domain();
    info!(
        target: "node",
        rollup = %bound.rollup,
        l1_chain_id = bound.l1_chain_id,
        l2_chain_id = domain.chain_id,
        deployment_block = ?bound.deployment_block,
        mode = %config.protocol.pipelining_mode(),
        "bound to the rollup deployment"
    );
    if config.node.role == Role::Validator
        && let Ok(timetable) = config.timetable()
    {
        info!(
            target: "node",
            blocks_per_checkpoint = timetable.max_blocks_per_checkpoint(),
            txs_per_block = config.max_txs_per_block(&timetable),
            dead_zone = %humantime::format_duration(timetable.dead_zone()),
            "sequencer schedule for the deployment"
        );
    }
    metrics::gauge!("node_ready").set(1.0);
    let ticker = SlotTicker {
        clock: Arc::new(SystemClock),
        slot_clock: config.slot_clock()?,
        mode: config.protocol.pipelining_mode(),
    };
    ticker.run(cancel).await
}

fn spawn_metrics(tasks: &mut Task, exporter: crate::metrics::Exporter, cancel: CancellationToken) {
    let handle = exporter.handle;
    let upkeep_cancel = cancel.clone();
    tasks.spawn(async move {
        let mut interval = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                biased;
                _ = upkeep_cancel.cancelled() => return Ok(()),
                _ = interval.tick() => handle.run_upkeep(),
            }
        }
    });
    let serve = exporter.serve;
    tasks.spawn(async move {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Ok(()),
            result = serve => result.map_err(|err| eyre::eyre!("metrics server failed: {err:?}")),
        }
    });
}

/// Waits for every task. The first error cancels the rest and is returned once all have ended
/// (or the grace period ran out).
async fn wait_all(tasks: &mut Task, cancel: &CancellationToken) -> eyre::Result<()> {
    let mut first_error = None;
    while let Some(joined) = next_or_grace(tasks, cancel).await {
        let result =
            joined.unwrap_or_else(|join_error| Err(eyre::eyre!("task failed: {join_error}")));
        if let Err(err) = result {
            error!(target: "node", error = %format!("{err:#}"), "fatal error, shutting down");
            cancel.cancel();
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn next_or_grace(
    tasks: &mut Task,
    cancel: &CancellationToken,
) -> Option<Result<eyre::Result<()>, tokio::task::JoinError>> {
    if !cancel.is_cancelled() {
        tokio::select! {
            joined = tasks.join_next() => return joined,
            _ = cancel.cancelled() => {}
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, tasks.join_next()).await {
        Ok(joined) => joined,
        Err(_) => {
            error!(target: "node", remaining = tasks.len(), "tasks did not stop within the grace period");
            tasks.abort_all();
            None
        }
    }
}

async fn cancel_on_signal(cancel: CancellationToken) -> eyre::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .wrap_err("installing the SIGTERM handler")?;
    tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
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
                    info!(target: "node", %slot, epoch = %self.slot_clock.epoch_of(slot), "slot started");
                    last_slot = Some(slot);
                }
            }
            if let Some(target) = self.slot_clock.target_slot(now, self.mode) {
                metrics::gauge!("node_target_slot").set(target.0 as f64);
            }
            let wait = now.until(self.slot_clock.next_l1_block_time(now));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
