//! One measured run over a launched devnet: wait for the first checkpoint, put a steady tx
//! load on, scrape the validators' /metrics at both ends of a window of whole slots, let the
//! last txs land, then read the window's checkpoints and blocks back over JSON-RPC.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use eyre::{WrapErr, bail, eyre};
use serde_json::{Value, json};
use tandem_proto::time::Clock;
use tokio_util::sync::CancellationToken;

use super::stats::{CheckpointSample, MetricTotals};
use crate::{
    accounts::DEVNET_ACCOUNTS,
    client::{NodeClient, quantity},
    devnet::Launched,
    spam::{Sample, SpamStats, SpamSummary},
};

/// Slots the network gets to land its first checkpoint (on top of [`STARTUP_GRACE`]).
const WARMUP_SLOTS: u64 = 10;
/// Node start-up (stores, L1 binding, peers) before any slot can count.
const STARTUP_GRACE: Duration = Duration::from_secs(90);
/// Slots between the load's start and the window's: the pool fills, the pipeline settles.
const LEAD_IN_SLOTS: u64 = 2;
/// Slots after the window during which the last txs may still land (a tx sent at the window's
/// end lands in the checkpoint of the slot after next when pipelined).
const DRAIN_SLOTS: u64 = 3;
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(500);
/// Longest wait for one /metrics page.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one run measured.
pub(crate) struct RunData {
    pub(crate) genesis_time: u64,
    pub(crate) slot_secs: u64,
    /// The window: target slots `first_slot..first_slot + slots`.
    pub(crate) first_slot: u64,
    pub(crate) slots: u64,
    /// The window's landed checkpoints with the txs of their blocks.
    pub(crate) checkpoints: Vec<(CheckpointSample, u64)>,
    /// Seconds from send to the first proposed block holding the tx / to its checkpoint.
    pub(crate) proposed_latency: Vec<f64>,
    pub(crate) checkpointed_latency: Vec<f64>,
    pub(crate) txs: SpamSummary,
    /// The validators' /metrics at the window's ends, summed (`None`: a scrape failed).
    pub(crate) metrics: Option<MetricTotals>,
    /// The host's 1-minute load average at the window's start and end (Linux), to tell how
    /// busy the machine was.
    pub(crate) host_load: Option<(f64, f64)>,
}

/// The 1-minute load average (`/proc/loadavg`); `None` where there is none.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The slot of `now` (`None` before genesis) and the wait until the start of `slot`.
fn slot_of(clock: &impl Clock, genesis: u64, slot_secs: u64) -> Option<u64> {
    clock
        .now()
        .as_secs()
        .checked_sub(genesis)
        .map(|since| since / slot_secs)
}

fn until_slot(clock: &impl Clock, genesis: u64, slot_secs: u64, slot: u64) -> Duration {
    let start_ms = genesis
        .saturating_add(slot.saturating_mul(slot_secs))
        .saturating_mul(1000);
    Duration::from_millis(start_ms.saturating_sub(clock.now().as_millis()))
}

/// Most blocks one checkpoint is believed to hold (the timetables give a few dozen).
const MAX_CHECKPOINT_BLOCKS: u64 = 1_024;

type Load = tokio::task::JoinHandle<eyre::Result<()>>;

/// Fails when a node exited or the tx load stopped (its error is reported by the caller).
fn check_alive(launched: &mut Launched, load: &Load) -> eyre::Result<()> {
    let exited = launched.exited();
    if !exited.is_empty() {
        bail!("{}", exited.join("; "));
    }
    if load.is_finished() {
        bail!("the tx load stopped early");
    }
    Ok(())
}

/// Sleeps until the start of `slot`, checking every [`POLL`] that no node exited.
async fn wait_for_slot(
    launched: &mut Launched,
    load: &Load,
    clock: &impl Clock,
    genesis: u64,
    slot_secs: u64,
    slot: u64,
) -> eyre::Result<()> {
    loop {
        check_alive(launched, load)?;
        let left = until_slot(clock, genesis, slot_secs, slot);
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(POLL)).await;
    }
}

/// The checkpointed tip's checkpoint as node `client` sees it.
async fn checkpointed_tip(client: &NodeClient) -> Option<CheckpointSample> {
    let answer: Value = client
        .call("tandem_getCheckpoint", vec![json!("checkpointed")])
        .await
        .ok()?;
    CheckpointSample::from_json(&answer)
}

async fn scrape(
    http: &alloy::transports::http::reqwest::Client,
    url: &str,
) -> Option<MetricTotals> {
    let response = http.get(url).timeout(SCRAPE_TIMEOUT).send().await.ok()?;
    let text = response.error_for_status().ok()?.text().await.ok()?;
    Some(MetricTotals::from_metrics(&text))
}

async fn scrape_validators(
    http: &alloy::transports::http::reqwest::Client,
    urls: &[String],
) -> Vec<Option<MetricTotals>> {
    futures::future::join_all(urls.iter().map(|url| scrape(http, url))).await
}

/// Runs the load and the window of `slots` slots on `launched`; `tx_rate` transfers per
/// second spread over every node.
pub(crate) async fn measure(
    launched: &mut Launched,
    clock: &impl Clock,
    slots: u64,
    tx_rate: f64,
) -> eyre::Result<RunData> {
    let deployment = tandem_l1::Deployment::load(&launched.file().deployment_file)?;
    let genesis = deployment.params.genesis_time;
    let slot_secs = deployment.params.slot_duration.max(1);
    let clients = launched
        .file()
        .nodes
        .iter()
        .map(|node| NodeClient::new(&node.rpc_url))
        .collect::<eyre::Result<Vec<_>>>()?;
    let observer = clients
        .first()
        .cloned()
        .ok_or_else(|| eyre!("the devnet has no nodes"))?;
    let metrics_urls: Vec<String> = launched
        .validators()
        .map(|node| node.metrics_url.clone())
        .collect();

    // The load starts first: a checkpoint without txs is not published, so the first one
    // lands only once txs come.
    let send = CancellationToken::new();
    let track = CancellationToken::new();
    let stats = Arc::new(SpamStats::default());
    // A dropped measurement (Ctrl-C) stops the load too, not only the nodes.
    let _stop_load = (send.clone().drop_guard(), track.clone().drop_guard());
    let generator = tokio::spawn(crate::spam::generate_then_track(
        clients,
        tx_rate,
        DEVNET_ACCOUNTS,
        Arc::clone(&stats),
        send.clone(),
        track.clone(),
    ));
    let outcome = async {
        // Warm-up: the first checkpoint on L1 (the nodes are bound, peered and proposing).
        let warmup = STARTUP_GRACE + Duration::from_secs(WARMUP_SLOTS.saturating_mul(slot_secs));
        let deadline = clock
            .now()
            .as_millis()
            .saturating_add(u64::try_from(warmup.as_millis()).unwrap_or(u64::MAX));
        loop {
            check_alive(launched, &generator)?;
            if checkpointed_tip(&observer)
                .await
                .is_some_and(|c| c.number >= 1)
            {
                break;
            }
            if clock.now().as_millis() > deadline {
                eyre::bail!(
                    "no checkpoint landed within {} (see the nodes' logs in {})",
                    humantime::format_duration(warmup),
                    launched
                        .file()
                        .deployment_file
                        .parent()
                        .map_or_else(String::new, |d| d.display().to_string())
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let now_slot = slot_of(clock, genesis, slot_secs).ok_or_else(|| eyre!("before genesis"))?;
        let first_slot = now_slot.saturating_add(LEAD_IN_SLOTS);
        let end_slot = first_slot.saturating_add(slots);
        wait_for_slot(launched, &generator, clock, genesis, slot_secs, first_slot).await?;
        let http = alloy::transports::http::reqwest::Client::new();
        let before = scrape_validators(&http, &metrics_urls).await;
        // Latencies observed from here on (warm-up txs waited for the first checkpoint).
        let window_start = Instant::now();
        let load_before = load_average();
        wait_for_slot(launched, &generator, clock, genesis, slot_secs, end_slot).await?;
        let after = scrape_validators(&http, &metrics_urls).await;
        let window_end = Instant::now();
        let host_load = load_before.zip(load_average());
        send.cancel();
        // Drain: the window's last checkpoint is on L1 and every tracked tx is checkpointed,
        // or the drain slots are over.
        let drain_end = end_slot.saturating_add(DRAIN_SLOTS);
        loop {
            check_alive(launched, &generator)?;
            let last_landed = checkpointed_tip(&observer).await.map(|c| c.slot);
            let settled = last_landed.is_some_and(|slot| slot.saturating_add(1) >= end_slot)
                && stats.summary().pending == 0;
            if settled || until_slot(clock, genesis, slot_secs, drain_end).is_zero() {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        track.cancel();
        let checkpoints = window_checkpoints(&observer, first_slot, end_slot).await?;
        let metrics = MetricTotals::delta(&before, &after);
        Ok::<_, eyre::Report>((
            first_slot,
            checkpoints,
            metrics,
            host_load,
            window_start..window_end,
        ))
    }
    .await;
    send.cancel();
    track.cancel();
    match generator.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err.wrap_err("the tx load")),
        Err(err) => bail!("the tx load stopped: {err}"),
    }
    let (first_slot, checkpoints, metrics, host_load, window) = outcome?;
    let (proposed, checkpointed) = stats.latencies();
    // The txs sent in the window, the same set for both figures (warm-up and lead-in txs
    // waited for the first checkpoint).
    let seconds = |samples: Vec<Sample>| {
        samples
            .iter()
            .filter(|s| window.contains(&s.sent))
            .map(|s| s.latency.as_secs_f64())
            .collect()
    };
    Ok(RunData {
        genesis_time: genesis,
        slot_secs,
        first_slot,
        slots,
        checkpoints,
        proposed_latency: seconds(proposed),
        checkpointed_latency: seconds(checkpointed),
        txs: stats.summary(),
        metrics,
        host_load,
    })
}

/// The landed checkpoints of target slots `first..end`, newest first walked back from the
/// checkpointed tip, each with the txs of its blocks.
async fn window_checkpoints(
    client: &NodeClient,
    first: u64,
    end: u64,
) -> eyre::Result<Vec<(CheckpointSample, u64)>> {
    let tip = checkpointed_tip(client)
        .await
        .ok_or_else(|| eyre!("{}: no checkpointed tip", client.url()))?;
    let mut found = Vec::new();
    let mut number = tip.number;
    while number >= 1 {
        let answer: Value = client
            .call("tandem_getCheckpoint", vec![json!(format!("0x{number:x}"))])
            .await
            .wrap_err_with(|| format!("{}: checkpoint {number}", client.url()))?;
        let checkpoint = CheckpointSample::from_json(&answer).ok_or_else(|| {
            eyre!(
                "{}: checkpoint {number} is not on L1: {answer}",
                client.url()
            )
        })?;
        if checkpoint.slot < first {
            break;
        }
        if checkpoint.slot < end {
            // An answer's count drives a loop of calls: a bad one must not mean billions.
            if checkpoint.block_count > MAX_CHECKPOINT_BLOCKS {
                bail!(
                    "{}: checkpoint {number} claims {} blocks; expected at most {MAX_CHECKPOINT_BLOCKS}",
                    client.url(),
                    checkpoint.block_count
                );
            }
            let mut txs = 0u64;
            let blocks = checkpoint.start_block
                ..checkpoint
                    .start_block
                    .saturating_add(checkpoint.block_count);
            for block in blocks {
                let answer: Value = client
                    .call(
                        "tandem_getBlock",
                        vec![json!(format!("0x{block:x}")), json!(false)],
                    )
                    .await
                    .wrap_err_with(|| format!("{}: block {block}", client.url()))?;
                let count = quantity(&answer["txCount"])
                    .ok_or_else(|| eyre!("{}: block {block} without txCount", client.url()))?;
                txs = txs.saturating_add(count);
            }
            found.push((checkpoint, txs));
        }
        number -= 1;
    }
    Ok(found)
}
