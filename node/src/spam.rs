//! `tandem spam`: signed transfers from the funded devnet accounts at a steady rate, through
//! `tandem_sendTx`; reports accepted / rejected (by reason) and inclusion latency (time from
//! the send until a block at the node's proposed tip holds the tx, then until that block is
//! checkpointed).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::{Value, json};
use tandem_proto::{Address, B256, SigningDomain, Tx, TxPayload, WireMessage};
use tokio_util::sync::CancellationToken;

use crate::{
    accounts::{DEVNET_ACCOUNTS, devnet_key},
    client::{CallError, NodeClient, quantity},
};

mod track;
pub(crate) use track::Sample;

/// Most sent txs whose inclusion is tracked at once (the oldest are dropped from tracking).
const TRACKED_TXS: usize = 4_096;
/// How often the tracker reads the node's tips: the resolution of the latencies.
const TRACK_INTERVAL: Duration = Duration::from_millis(250);
/// Fee cap of every transfer: far above the devnet's fee, far below the balances.
const MAX_FEE_PER_MANA: u128 = 1_000_000_000;

#[derive(Debug, Args)]
pub(crate) struct SpamArgs {
    /// JSON-RPC URL of a node (repeat to spread the txs over several).
    #[arg(long, required = true)]
    rpc: Vec<String>,
    /// Transfers per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Funded devnet accounts to send from.
    #[arg(long, default_value_t = DEVNET_ACCOUNTS)]
    accounts: usize,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

/// Counters and latencies of a spam run.
#[derive(Debug, Default)]
pub(crate) struct SpamStats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    sent: u64,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    unreachable: u64,
    proposed: Vec<Sample>,
    checkpointed: Vec<Sample>,
    tracked: VecDeque<Tracked>,
    /// Txs dropped from tracking because [`TRACKED_TXS`] were in flight (the slowest).
    untracked: u64,
    /// Passes whose tips could not be read.
    failed_polls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    hash: B256,
    sent: Instant,
    proposed: bool,
}

/// A one-line summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SpamSummary {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) checkpointed: usize,
    pub(crate) proposed_p50: Option<Duration>,
    pub(crate) checkpointed_p50: Option<Duration>,
    pub(crate) pending: usize,
    /// Dropped from tracking (too many in flight): missing from the latencies.
    pub(crate) untracked: u64,
    /// Tracker passes whose tips could not be read.
    pub(crate) failed_polls: u64,
}

fn p50(samples: &[Sample]) -> Option<Duration> {
    let mut sorted: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

impl SpamStats {
    pub(crate) fn summary(&self) -> SpamSummary {
        let inner = self.inner.lock().expect("stats lock");
        SpamSummary {
            sent: inner.sent,
            accepted: inner.accepted,
            rejected: inner.rejected.values().sum(),
            checkpointed: inner.checkpointed.len(),
            proposed_p50: p50(&inner.proposed),
            checkpointed_p50: p50(&inner.checkpointed),
            pending: inner.tracked.len(),
            untracked: inner.untracked,
            failed_polls: inner.failed_polls,
        }
    }

    /// The latency samples so far: send → proposed, send → checkpointed.
    pub(crate) fn latencies(&self) -> (Vec<Sample>, Vec<Sample>) {
        let inner = self.inner.lock().expect("stats lock");
        (inner.proposed.clone(), inner.checkpointed.clone())
    }

    pub(crate) fn rejections(&self) -> BTreeMap<String, u64> {
        self.inner.lock().expect("stats lock").rejected.clone()
    }
}

impl std::fmt::Display for SpamSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms =
            |d: Option<Duration>| d.map_or_else(|| "-".into(), |d| format!("{} ms", d.as_millis()));
        write!(
            f,
            "sent {} accepted {} rejected {} | proposed p50 {} | checkpointed {} (p50 {}) | not yet checkpointed {}",
            self.sent,
            self.accepted,
            self.rejected,
            ms(self.proposed_p50),
            self.checkpointed,
            ms(self.checkpointed_p50),
            self.pending
        )
    }
}

/// The chain's signing domain, from `tandem_nodeInfo` (waits while the node is starting).
pub(crate) async fn domain_of(
    client: &NodeClient,
    cancel: &CancellationToken,
) -> eyre::Result<Option<SigningDomain>> {
    let mut said_waiting = false;
    loop {
        let answer = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(None),
            answer = client.call::<Value>("tandem_nodeInfo", vec![]) => answer,
        };
        match answer {
            Ok(info) if info.get("deployment").is_some() => {
                let deployment = &info["deployment"];
                let chain_id = quantity(&deployment["l2ChainId"]).ok_or_else(|| {
                    eyre::eyre!("{}: nodeInfo without l2ChainId: {info}", client.url())
                })?;
                let rollup: Address = serde_json::from_value(deployment["rollup"].clone())
                    .map_err(|err| eyre::eyre!("{}: nodeInfo rollup: {err}", client.url()))?;
                return Ok(Some(SigningDomain { chain_id, rollup }));
            }
            Ok(_) | Err(_) => {
                if !said_waiting {
                    eprintln!("waiting for {} to answer and be bound…", client.url());
                    said_waiting = true;
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn account_nonce(client: &NodeClient, address: Address) -> Option<u64> {
    let account: Value = client
        .call("tandem_getAccount", vec![json!(address)])
        .await
        .ok()?;
    quantity(&account["nonce"])
}

/// Highest `--rate`: beyond it the send interval rounds to zero (and one client cannot keep up).
pub(crate) const MAX_RATE: f64 = 10_000.0;

/// `--rate` in `(0, MAX_RATE]`, `--accounts` in `1..=DEVNET_ACCOUNTS` (only those are funded).
pub(crate) fn check_inputs(rate: f64, accounts: usize) -> eyre::Result<()> {
    if !(rate > 0.0 && rate <= MAX_RATE) {
        eyre::bail!("--rate: {rate} is not in (0, {MAX_RATE}] transfers per second");
    }
    if !(1..=DEVNET_ACCOUNTS).contains(&accounts) {
        eyre::bail!(
            "--accounts: {accounts} is not in 1..={DEVNET_ACCOUNTS} (only the devnet's \
             {DEVNET_ACCOUNTS} accounts are funded)"
        );
    }
    Ok(())
}

/// Sends transfers round-robin over `accounts` devnet accounts and `clients`, `rate` per
/// second, until `cancel`; tracks inclusion in `stats`.
pub(crate) async fn generate(
    clients: Vec<NodeClient>,
    rate: f64,
    accounts: usize,
    stats: Arc<SpamStats>,
    cancel: CancellationToken,
) -> eyre::Result<()> {
    generate_then_track(clients, rate, accounts, stats, cancel.clone(), cancel).await
}

/// [`generate`], sending until `cancel` and tracking inclusion until `stop_tracking` (a
/// benchmark keeps tracking after the load stops, so that its last txs count too).
pub(crate) async fn generate_then_track(
    clients: Vec<NodeClient>,
    rate: f64,
    accounts: usize,
    stats: Arc<SpamStats>,
    cancel: CancellationToken,
    stop_tracking: CancellationToken,
) -> eyre::Result<()> {
    check_inputs(rate, accounts)?;
    if clients.is_empty() {
        eyre::bail!("--rpc: give at least one node");
    }
    let Some(domain) = domain_of(&clients[0], &cancel).await? else {
        return Ok(());
    };
    let keys: Vec<_> = (0..accounts).map(devnet_key).collect();
    let mut nonces = Vec::with_capacity(accounts);
    for key in &keys {
        nonces.push(account_nonce(&clients[0], key.address()).await.unwrap_or(0));
    }
    let tracker = tokio::spawn(follow(
        clients[0].clone(),
        Arc::clone(&stats),
        stop_tracking.clone(),
    ));
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        let account = next % accounts;
        let client = &clients[next % clients.len()];
        next = next.wrapping_add(1);
        let tx = Tx::sign(
            TxPayload {
                chain_id: domain.chain_id,
                nonce: nonces[account],
                to: keys[(account + 1) % accounts].address(),
                amount: 1,
                max_fee_per_mana: MAX_FEE_PER_MANA,
                mana_limit: tandem_state::TX_MANA,
            },
            &domain,
            &keys[account],
        );
        let raw = format!("0x{}", alloy::hex::encode(tx.to_wire_bytes()));
        let sent = Instant::now();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            result = client.call::<Value>("tandem_sendTx", vec![json!(raw)]) => result,
        };
        let resync = {
            let mut inner = stats.inner.lock().expect("stats lock");
            inner.sent += 1;
            match result {
                Ok(_) => {
                    inner.accepted += 1;
                    nonces[account] += 1;
                    if inner.tracked.len() == TRACKED_TXS {
                        inner.tracked.pop_front();
                        inner.untracked += 1;
                    }
                    inner.tracked.push_back(Tracked {
                        hash: tx.hash(),
                        sent,
                        proposed: false,
                    });
                    false
                }
                Err(CallError::Refused { message, .. }) => {
                    // The rule without the numbers, so reasons aggregate.
                    let reason: String = message
                        .split(|c: char| c.is_ascii_digit())
                        .next()
                        .unwrap_or(&message)
                        .trim()
                        .to_string();
                    *inner.rejected.entry(reason).or_default() += 1;
                    message.contains("nonce")
                }
                Err(_) => {
                    inner.unreachable += 1;
                    false
                }
            }
        };
        if resync && let Some(chain) = account_nonce(client, keys[account].address()).await {
            nonces[account] = chain;
        }
    }
    stop_tracking.cancelled().await;
    tracker.abort();
    Ok(())
}

/// Polls the node's tips every [`TRACK_INTERVAL`] until `cancel`; see [`track`].
async fn follow(client: NodeClient, stats: Arc<SpamStats>, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(TRACK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tracker = track::Tracker::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let Some(view) = tracker.read(&client).await else {
            stats.inner.lock().expect("stats lock").failed_polls += 1;
            continue;
        };
        let mut inner = stats.inner.lock().expect("stats lock");
        let samples = tracker.step(&view, &mut inner.tracked, Instant::now());
        inner.proposed.extend(samples.proposed);
        inner.checkpointed.extend(samples.checkpointed);
    }
}

/// `tandem spam`.
pub(crate) fn run(args: &SpamArgs) -> eyre::Result<()> {
    check_inputs(args.rate, args.accounts)?;
    let clients = args
        .rpc
        .iter()
        .map(|url| NodeClient::new(url))
        .collect::<eyre::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let stats = Arc::new(SpamStats::default());
        let mut signals = crate::signals::StopSignals::install()?;
        let mut generator = tokio::spawn(generate(
            clients,
            args.rate,
            args.accounts,
            Arc::clone(&stats),
            cancel.clone(),
        ));
        let started = Instant::now();
        let mut report = tokio::time::interval(Duration::from_secs(5));
        report.tick().await;
        let mut finished = None;
        loop {
            tokio::select! {
                () = signals.recv() => break,
                // A generator that stops by itself (bad input, a refused domain) ends the run.
                joined = &mut generator => {
                    finished = Some(joined);
                    break;
                }
                _ = report.tick() => println!("{}", stats.summary()),
                () = async {
                    match args.duration {
                        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(started + d)).await,
                        None => std::future::pending().await,
                    }
                } => break,
            }
        }
        cancel.cancel();
        match finished {
            Some(joined) => joined??,
            None => generator.await??,
        }
        println!("{}", stats.summary());
        for (reason, count) in stats.rejections() {
            println!("  rejected {count}: {reason}");
        }
        Ok(())
    })
}
