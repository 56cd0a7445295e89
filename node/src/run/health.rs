//! Readiness: one verdict with its reasons, recomputed every [`CHECK_INTERVAL`] by the health
//! monitor and read by `/ready`, `tandem_nodeInfo` and the gauges. Ready means: bound to the
//! deployment, the archiver synced to within one L1 slot (plus its confirmations) of L1's head
//! and not blocked on an L1 checkpoint, the world state at the archiver's tip, at least
//! `p2p.min_peers` peers, the current epoch's committee known, and the clock not certainly off
//! L1's by more than [`MAX_CLOCK_OFFSET`].
//!
//! The monitor gathers [`Facts`] (every L1 and p2p probe bounded by [`probe_timeout`], so a hung
//! L1 turns into "not ready" instead of freezing the last verdict) and [`verdict`] turns them into
//! reasons. A ready node turns not ready only when a reason has held for [`grace`] (one L1 slot,
//! at least 2 s): a block the world state applies 100 ms after the archiver stored it, or one late
//! L1 fetch, is not an outage. A node that is not ready turns ready as soon as no reason holds.
//!
//! Clock offset: each new L1 head is stamped with the local time it was first seen, so
//! `seen − timestamp` = offset + delay (block production, propagation, the RPC provider, our poll;
//! never negative) + truncation (L1 timestamps are whole seconds: anvil stamps a block mined at
//! 12.6 s with 12; Ethereum stamps the slot start exactly). With `s` the smallest value over the
//! last [`OFFSET_SAMPLES`] heads, the offset is at most `s`: `s < −500 ms` proves the clock is
//! behind. "Ahead" is never provable (a late head looks the same), so it is flagged only beyond
//! `500 ms + 1 s + allowance`, the allowance being a third of an L1 slot (on Ethereum heads are
//! routinely seen 1–3 s into the slot; anvil mines on time). The raw `s` is exported as
//! `node_clock_head_delay_min_seconds`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;
use tandem_proto::time::{Clock, Timestamp};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Services;
use crate::config::{Config, Role};

/// Time between readiness checks (and L1 head polls).
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Largest clock offset against L1 that keeps the node ready: consensus windows allow 500 ms.
pub(crate) const MAX_CLOCK_OFFSET: Duration = Duration::from_millis(500);
/// New L1 heads the offset estimate is taken over.
pub(crate) const OFFSET_SAMPLES: usize = 16;
/// L1 block timestamps are whole seconds.
const TIMESTAMP_RESOLUTION_MS: i64 = 1000;
/// Longest wait for one L1 or p2p probe.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an L1 or p2p probe may take: an L1 slot, at most [`MAX_PROBE_TIMEOUT`].
pub(crate) fn probe_timeout(l1_slot: Duration) -> Duration {
    l1_slot.min(MAX_PROBE_TIMEOUT)
}

/// How often L1's head is read: an eighth of an L1 slot, between 100 ms and 1 s (4 requests/s
/// per node to a paid Ethereum RPC would be ~350k a day for nothing).
pub(crate) fn l1_poll_interval(l1_slot: Duration) -> Duration {
    (l1_slot / 8).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// How long a reason must hold before a ready node turns not ready: one L1 slot, at least 2 s.
pub(crate) fn grace(l1_slot: Duration) -> Duration {
    l1_slot.max(Duration::from_secs(2))
}

/// The readiness verdict and the facts behind it (the body of `/ready`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReadyReport {
    /// Everything below holds.
    pub(crate) ready: bool,
    /// Why not, one sentence each; empty when ready.
    pub(crate) reasons: Vec<String>,
    /// L1's latest block number.
    pub(crate) l1_head: Option<u64>,
    /// The newest L1 block the archiver has synced.
    pub(crate) l1_synced: Option<u64>,
    /// The archiver's proposed tip (block number).
    pub(crate) archiver_tip: Option<u64>,
    /// The world state's tip (block number).
    pub(crate) world_state_tip: Option<u64>,
    /// Connected peers.
    pub(crate) peers: Option<usize>,
    /// `p2p.min_peers`.
    pub(crate) min_peers: u32,
    /// Estimated local clock minus L1 time, in milliseconds.
    pub(crate) clock_offset_ms: Option<i64>,
}

impl ReadyReport {
    /// Before the node is bound to its deployment.
    pub(crate) fn unbound() -> Self {
        Self {
            ready: false,
            reasons: vec![
                "not bound to the rollup deployment yet (L1 unreachable or still starting)".into(),
            ],
            l1_head: None,
            l1_synced: None,
            archiver_tip: None,
            world_state_tip: None,
            peers: None,
            min_peers: 0,
            clock_offset_ms: None,
        }
    }
}

/// Describes the gauges this module sets.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "node_l1_head_block",
        "L1's latest block number, as last polled"
    );
    metrics::describe_gauge!(
        "node_l1_synced_block",
        "Newest L1 block the archiver has synced"
    );
    metrics::describe_gauge!(
        "node_l1_sync_lag_blocks",
        "L1 head minus the archiver's synced L1 block"
    );
    metrics::describe_gauge!(
        "node_synced_block",
        "World-state tip (L2 block number) the chain follower has applied"
    );
    metrics::describe_gauge!(
        "node_clock_offset_seconds",
        "Estimated local clock minus L1 time; not ready when certainly beyond ±0.5 s"
    );
    metrics::describe_gauge!(
        "node_clock_head_delay_min_seconds",
        "Smallest (local time a new L1 head was first seen − its timestamp) over recent heads"
    );
    metrics::describe_gauge!("node_peers", "Connected p2p peers");
    metrics::describe_gauge!(
        "node_min_peers",
        "p2p.min_peers: fewer connected peers make the node not ready"
    );
}

/// Sets the gauges from `report`.
pub(crate) fn publish_gauges(report: &ReadyReport) {
    metrics::gauge!("node_ready").set(if report.ready { 1.0 } else { 0.0 });
    if let Some(head) = report.l1_head {
        metrics::gauge!("node_l1_head_block").set(head as f64);
    }
    if let Some(synced) = report.l1_synced {
        metrics::gauge!("node_l1_synced_block").set(synced as f64);
        if let Some(head) = report.l1_head {
            metrics::gauge!("node_l1_sync_lag_blocks").set(head.saturating_sub(synced) as f64);
        }
    }
    if let Some(tip) = report.world_state_tip {
        metrics::gauge!("node_synced_block").set(tip as f64);
    }
    if let Some(offset) = report.clock_offset_ms {
        metrics::gauge!("node_clock_offset_seconds").set(offset as f64 / 1000.0);
    }
    if let Some(peers) = report.peers {
        metrics::gauge!("node_peers").set(peers as f64);
        // Next to the count (once bound), so alerts compare with each node's own setting.
        metrics::gauge!("node_min_peers").set(f64::from(report.min_peers));
    }
}

/// The clock-offset estimate over recent L1 heads.
#[derive(Debug, Default)]
pub(crate) struct ClockOffset {
    last_head: Option<u64>,
    samples: VecDeque<i64>,
    /// How late after its timestamp a head may normally be seen (beyond the truncation).
    allowance_ms: i64,
}

impl ClockOffset {
    /// An estimate that allows heads to be seen up to `allowance` after their slot.
    pub(crate) fn new(allowance: Duration) -> Self {
        Self {
            allowance_ms: i64::try_from(allowance.as_millis()).unwrap_or(i64::MAX),
            ..Self::default()
        }
    }

    /// Records head `number` with `timestamp` (seconds), seen at `now`. Only the first sighting
    /// of each new head counts.
    pub(crate) fn observe(&mut self, number: u64, timestamp: u64, now: Timestamp) {
        if self.last_head.is_some_and(|last| number <= last) {
            return;
        }
        self.last_head = Some(number);
        let block_ms = i64::try_from(timestamp.saturating_mul(1000)).unwrap_or(i64::MAX);
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        if self.samples.len() == OFFSET_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(now_ms.saturating_sub(block_ms));
    }

    /// The estimate in milliseconds: the middle of `[s − 1 s − allowance, s]`; `None` before the
    /// first head.
    pub(crate) fn estimate_ms(&self) -> Option<i64> {
        self.smallest_delay_ms().map(|smallest| {
            smallest.saturating_sub(TIMESTAMP_RESOLUTION_MS.saturating_add(self.allowance_ms) / 2)
        })
    }

    /// Whether the offset is beyond ±[`MAX_CLOCK_OFFSET`] for sure ("behind": a head stamped in
    /// our future) or beyond what a late head explains ("ahead").
    pub(crate) fn beyond_bound(&self) -> bool {
        let bound = i64::try_from(MAX_CLOCK_OFFSET.as_millis()).unwrap_or(i64::MAX);
        self.smallest_delay_ms().is_some_and(|smallest| {
            smallest < -bound
                || smallest
                    .saturating_sub(TIMESTAMP_RESOLUTION_MS.saturating_add(self.allowance_ms))
                    > bound
        })
    }

    /// The smallest `seen − timestamp` over the window, in milliseconds.
    pub(crate) fn smallest_delay_ms(&self) -> Option<i64> {
        self.samples.iter().copied().min()
    }
}

/// How often L1 sync progress is logged while the archiver is behind.
const PROGRESS_INTERVAL_MS: u64 = 10_000;
/// Behind by more than this many L1 blocks counts as catching up (and is logged).
const CATCHING_UP_BLOCKS: u64 = 4;

/// L1 sync progress while the archiver catches up: L1 blocks and checkpoints, percent of the
/// range since the first sighting, rate and ETA.
#[derive(Debug, Default)]
pub(crate) struct SyncProgress {
    /// (time ms, synced L1 block, checkpointed number) when catching up was first seen.
    start: Option<(u64, u64, u64)>,
    last_log_ms: u64,
}

impl SyncProgress {
    /// The line to log now, if any: at most every [`PROGRESS_INTERVAL_MS`], only while behind.
    pub(crate) fn update(
        &mut self,
        now_ms: u64,
        synced: u64,
        head: u64,
        checkpoint: u64,
    ) -> Option<String> {
        if head.saturating_sub(synced) <= CATCHING_UP_BLOCKS {
            self.start = None;
            return None;
        }
        let (start_ms, start_block, start_checkpoint) =
            *self.start.get_or_insert((now_ms, synced, checkpoint));
        if now_ms < self.last_log_ms.saturating_add(PROGRESS_INTERVAL_MS) || now_ms == start_ms {
            return None;
        }
        self.last_log_ms = now_ms;
        let elapsed = (now_ms - start_ms) as f64 / 1000.0;
        let done = synced.saturating_sub(start_block);
        let total = head.saturating_sub(start_block).max(1);
        let rate = done as f64 / elapsed;
        let eta = if rate > 0.0 {
            humantime::format_duration(Duration::from_secs(
                (head.saturating_sub(synced) as f64 / rate) as u64,
            ))
            .to_string()
        } else {
            "unknown".into()
        };
        Some(format!(
            "L1 sync: block {synced} of {head} ({:.1}%), {} checkpoints synced since start (now at {checkpoint}), {rate:.1} L1 blocks/s, ETA {eta}",
            done as f64 * 100.0 / total as f64,
            checkpoint.saturating_sub(start_checkpoint),
        ))
    }
}

/// Why a node is not ready, by kind (logging compares kinds, not the changing numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ReasonKind {
    L1Unanswered,
    ArchiverNotSynced,
    ArchiverBehind,
    CheckpointBlocked,
    WorldStateBehind,
    TooFewPeers,
    P2pUnanswered,
    CommitteeUnknown,
    ClockUnmeasured,
    ClockOff,
}

/// One reason: its kind and the sentence for operators.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reason {
    pub(crate) kind: ReasonKind,
    pub(crate) text: String,
}

fn reason(kind: ReasonKind, text: impl Into<String>) -> Reason {
    Reason {
        kind,
        text: text.into(),
    }
}

/// What one check saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// This check's L1 head answer (number, timestamp s); `None` when L1 did not answer in time.
    pub(crate) l1_answer: Option<(u64, u64)>,
    /// The newest head seen so far (number, timestamp s).
    pub(crate) l1_head: Option<(u64, u64)>,
    /// The archiver's newest synced L1 block (number, timestamp s).
    pub(crate) l1_synced: Option<(u64, u64)>,
    /// `Some((checkpoint, waiting))` when the archiver is blocked on an L1 checkpoint.
    pub(crate) blocked: Option<(u64, u64)>,
    /// The chain follower's status when it is not at the archiver's tip.
    pub(crate) follower_lag: Option<String>,
    pub(crate) archiver_tip: u64,
    pub(crate) world_state_tip: u64,
    /// Connected peers; `None` when p2p did not answer in time.
    pub(crate) peers: Option<usize>,
    /// `None` for a full node (it needs no committee).
    pub(crate) committee_known: Option<bool>,
    /// Clock offset estimate (ms) and whether it is beyond the bound.
    pub(crate) clock: Option<(i64, bool)>,
}

/// The fixed parts of the rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) min_peers: u32,
    pub(crate) l1_slot: Duration,
    pub(crate) l1_confirmations: u64,
}

/// The reasons `facts` give for not being ready (empty: ready).
pub(crate) fn verdict(facts: &Facts, rules: &Rules) -> Vec<Reason> {
    use ReasonKind::*;
    let mut reasons = Vec::new();
    if facts.l1_answer.is_none() {
        reasons.push(reason(
            L1Unanswered,
            format!(
                "L1 does not answer (latest block unreadable within {})",
                humantime::format_duration(probe_timeout(rules.l1_slot))
            ),
        ));
    }
    match (facts.l1_head, facts.l1_synced) {
        (Some((head, head_time)), Some((synced, synced_time))) => {
            // The archiver stays `confirmations` blocks back on purpose.
            let allowed = rules.l1_slot.saturating_mul(
                u32::try_from(rules.l1_confirmations.saturating_add(1)).unwrap_or(u32::MAX),
            );
            let behind = Duration::from_secs(head_time.saturating_sub(synced_time));
            if behind > allowed {
                reasons.push(reason(
                    ArchiverBehind,
                    format!(
                        "archiver behind L1: synced L1 block {synced} is {} behind the head {head} \
                         (allowed {})",
                        humantime::format_duration(behind),
                        humantime::format_duration(allowed)
                    ),
                ));
            }
        }
        (Some((head, _)), None) => reasons.push(reason(
            ArchiverNotSynced,
            format!("archiver has not synced L1 yet (head {head})"),
        )),
        (None, _) => {}
    }
    if let Some((checkpoint, waiting)) = facts.blocked {
        reasons.push(reason(
            CheckpointBlocked,
            format!(
                "L1 checkpoint {checkpoint} cannot be applied yet (its body is missing or \
                 invalid); {waiting} checkpoint(s) wait"
            ),
        ));
    }
    if let Some(status) = &facts.follower_lag {
        reasons.push(reason(
            WorldStateBehind,
            format!("world state not at the archiver's tip: {status}"),
        ));
    } else if facts.world_state_tip != facts.archiver_tip {
        reasons.push(reason(
            WorldStateBehind,
            format!(
                "world state at block {}, archiver at {}",
                facts.world_state_tip, facts.archiver_tip
            ),
        ));
    }
    match facts.peers {
        Some(count) if count < rules.min_peers as usize => reasons.push(reason(
            TooFewPeers,
            format!("{count} peer(s), p2p.min_peers is {}", rules.min_peers),
        )),
        Some(_) => {}
        None => reasons.push(reason(P2pUnanswered, "p2p service not answering")),
    }
    if facts.committee_known == Some(false) {
        reasons.push(reason(
            CommitteeUnknown,
            "the current epoch's committee is not known yet (L1)",
        ));
    }
    match facts.clock {
        None => reasons.push(reason(
            ClockUnmeasured,
            "clock offset not measured yet (no L1 head seen)",
        )),
        Some((ms, true)) => reasons.push(reason(
            ClockOff,
            format!(
                "clock offset about {ms} ms against L1 block times is beyond ±500 ms (fix the \
                 host's time sync)"
            ),
        )),
        Some((_, false)) => {}
    }
    reasons
}

/// Hysteresis over [`verdict`]: a ready node stays ready until a reason has held for `grace`.
#[derive(Debug)]
pub(crate) struct Hysteresis {
    grace_ms: u64,
    ready: bool,
    failing_since: BTreeMap<ReasonKind, u64>,
}

impl Hysteresis {
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            ready: false,
            failing_since: BTreeMap::new(),
        }
    }

    /// Whether the node is ready at `now_ms` with these raw `reasons`.
    pub(crate) fn update(&mut self, reasons: &[Reason], now_ms: u64) -> bool {
        self.failing_since
            .retain(|kind, _| reasons.iter().any(|r| r.kind == *kind));
        for r in reasons {
            self.failing_since.entry(r.kind).or_insert(now_ms);
        }
        self.ready = if self.ready {
            self.failing_since
                .values()
                .all(|since| now_ms.saturating_sub(*since) < self.grace_ms)
        } else {
            reasons.is_empty()
        };
        self.ready
    }
}

/// Computes readiness and publishes it.
pub(crate) struct HealthMonitor {
    services: Arc<Services>,
    clock: Arc<dyn Clock>,
    out: watch::Sender<ReadyReport>,
    rules: Rules,
    validator: bool,
    offset: ClockOffset,
    head: Option<(u64, u64)>,
    progress: SyncProgress,
    hysteresis: Hysteresis,
    /// When L1 was last read (ms) and its answer; reused until [`l1_poll_interval`] passed.
    last_l1_probe: Option<(u64, Option<(u64, u64)>)>,
}

impl HealthMonitor {
    pub(crate) fn new(
        config: &Config,
        services: &Arc<Services>,
        clock: Arc<dyn Clock>,
        out: watch::Sender<ReadyReport>,
    ) -> Self {
        let l1_slot = config.protocol.l1_slot_duration();
        Self {
            services: Arc::clone(services),
            clock,
            out,
            rules: Rules {
                min_peers: config.p2p.min_peers,
                l1_slot,
                l1_confirmations: config.archiver.l1_confirmations,
            },
            validator: config.node.role == Role::Validator,
            offset: ClockOffset::new(l1_slot / 3),
            head: None,
            progress: SyncProgress::default(),
            hysteresis: Hysteresis::new(grace(l1_slot)),
            last_l1_probe: None,
        }
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> eyre::Result<()> {
        let mut interval = super::every(CHECK_INTERVAL);
        let mut previous_kinds: Vec<ReasonKind> = Vec::new();
        let mut was_ready = false;
        while super::tick(&mut interval, &cancel).await {
            let facts = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                facts = self.gather() => facts,
            };
            let reasons = verdict(&facts, &self.rules);
            let ready = self
                .hysteresis
                .update(&reasons, self.clock.now().as_millis());
            let kinds: Vec<ReasonKind> = reasons.iter().map(|r| r.kind).collect();
            if ready != was_ready || (!ready && kinds != previous_kinds) {
                if ready {
                    info!(target: "node", "ready");
                } else {
                    let texts: Vec<&str> = reasons.iter().map(|r| r.text.as_str()).collect();
                    info!(target: "node", reasons = ?texts, "not ready");
                }
            }
            if kinds.contains(&ReasonKind::ClockOff)
                && !previous_kinds.contains(&ReasonKind::ClockOff)
            {
                warn!(
                    target: "node",
                    offset_ms = facts.clock.map(|(ms, _)| ms),
                    "the local clock is off L1's by more than 500 ms: consensus windows allow \
                     500 ms; fix the host's time sync (NTP)"
                );
            }
            previous_kinds = kinds;
            was_ready = ready;
            let report = ReadyReport {
                ready,
                reasons: if ready {
                    Vec::new()
                } else {
                    reasons.into_iter().map(|r| r.text).collect()
                },
                l1_head: facts.l1_head.map(|(number, _)| number),
                l1_synced: facts.l1_synced.map(|(number, _)| number),
                archiver_tip: Some(facts.archiver_tip),
                world_state_tip: Some(facts.world_state_tip),
                peers: facts.peers,
                min_peers: self.rules.min_peers,
                clock_offset_ms: facts.clock.map(|(ms, _)| ms),
            };
            publish_gauges(&report);
            if let Some(delay) = self.offset.smallest_delay_ms() {
                metrics::gauge!("node_clock_head_delay_min_seconds").set(delay as f64 / 1000.0);
            }
            self.out.send_replace(report);
        }
        Ok(())
    }

    /// Reads the facts; the L1 and p2p probes run together, each bounded by [`probe_timeout`].
    async fn gather(&mut self) -> Facts {
        let services = &self.services;
        let timeout = probe_timeout(self.rules.l1_slot);
        let now_ms = self.clock.now().as_millis();
        let poll_ms =
            u64::try_from(l1_poll_interval(self.rules.l1_slot).as_millis()).unwrap_or(u64::MAX);
        let cached = self
            .last_l1_probe
            .filter(|(at, _)| now_ms.saturating_sub(*at) < poll_ms)
            .map(|(_, answer)| answer);
        let l1 = &services.l1;
        let (head, status) = tokio::join!(
            async {
                match cached {
                    Some(answer) => answer,
                    None => tokio::time::timeout(timeout, super::components::l1_head(l1))
                        .await
                        .ok()
                        .flatten(),
                }
            },
            tokio::time::timeout(timeout, services.p2p.status()),
        );
        if cached.is_none() {
            self.last_l1_probe = Some((now_ms, head));
        }
        let l1_answer = head;
        if let Some((number, timestamp)) = l1_answer {
            self.offset.observe(number, timestamp, self.clock.now());
            self.head = Some((number, timestamp));
        }
        let peers = status.ok().and_then(Result::ok).map(|s| s.connected.len());
        let view = services.archiver.reader().view();
        let (synced, l1_status) = match &view {
            Ok(view) => (view.l1_synced().ok().flatten(), view.l1_status().ok()),
            Err(_) => (None, None),
        };
        if let (Some((head, _)), Some(synced)) = (self.head, synced)
            && let Some(line) = self.progress.update(
                self.clock.now().as_millis(),
                synced.number,
                head,
                services.archiver.tips().checkpointed.checkpoint.number,
            )
        {
            info!(target: "node", "{line}");
        }
        let blocked = match l1_status {
            Some(tandem_archiver::L1SyncStatus::Blocked {
                checkpoint,
                waiting,
                ..
            }) => Some((checkpoint, waiting)),
            _ => None,
        };
        let follower = services.state.readiness();
        Facts {
            l1_answer,
            l1_head: self.head,
            l1_synced: synced.map(|s| (s.number, s.timestamp)),
            blocked,
            follower_lag: (!follower.is_ready()).then(|| format!("{:?}", follower.status())),
            archiver_tip: services.archiver.tips().proposed.block.number,
            world_state_tip: services.state.reader().tip().number,
            peers,
            committee_known: self.validator.then(|| services.epochs.status().is_ready()),
            clock: self
                .offset
                .estimate_ms()
                .map(|ms| (ms, self.offset.beyond_bound())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_progress_is_logged_while_behind_with_percent_rate_and_eta() {
        let mut progress = SyncProgress::default();
        // In sync (within 4 blocks): nothing.
        assert_eq!(progress.update(0, 96, 100, 3), None);
        // 1,000 blocks behind at t = 1 s: the start is noted, nothing logged yet.
        assert_eq!(progress.update(1_000, 0, 1_000, 0), None);
        // 10 s later, 500 blocks and 20 checkpoints further.
        assert_eq!(
            progress.update(11_000, 500, 1_000, 20).as_deref(),
            Some(
                "L1 sync: block 500 of 1000 (50.0%), 20 checkpoints synced since start (now at \
                 20), 50.0 L1 blocks/s, ETA 10s"
            )
        );
        // Not again within 10 s; caught up ends it.
        assert_eq!(progress.update(15_000, 700, 1_000, 25), None);
        assert_eq!(progress.update(30_000, 998, 1_000, 40), None);
    }

    #[test]
    fn the_offset_is_the_middle_of_what_the_fastest_sighting_allows() {
        let mut offset = ClockOffset::default();
        assert_eq!(offset.estimate_ms(), None);
        assert!(!offset.beyond_bound());
        // Head 10 stamped 100 s, seen at 100.3 s; a second sighting does not count.
        offset.observe(10, 100, Timestamp(100_300));
        offset.observe(10, 100, Timestamp(100_900));
        assert_eq!(offset.estimate_ms(), Some(-200));
        // Head 11 seen 40 ms after its stamp: the offset is in (−960, 40] ms.
        offset.observe(11, 102, Timestamp(102_040));
        assert_eq!(offset.estimate_ms(), Some(-460));
        assert!(!offset.beyond_bound());
        // A clock 700 ms behind: the block is stamped in our future.
        offset.observe(12, 104, Timestamp(103_300));
        assert_eq!(offset.estimate_ms(), Some(-1_200));
        assert!(offset.beyond_bound());
        // Old samples leave the window: every head now seen 1.6 s after its stamp, so the
        // clock is at least 600 ms ahead.
        for head in 13..13 + OFFSET_SAMPLES as u64 {
            offset.observe(head, head * 2, Timestamp(head * 2_000 + 1_600));
        }
        assert_eq!(offset.estimate_ms(), Some(1_100));
        assert!(offset.beyond_bound());
        // 1.5 s after the stamp could be a 500 ms offset with a truncated timestamp: ready.
        offset.observe(40, 80, Timestamp(81_500));
        assert!(!offset.beyond_bound());
        // A head going backwards (reorg to a shorter chain) is not a new sighting.
        offset.observe(5, 10, Timestamp(0));
        assert_eq!(offset.estimate_ms(), Some(1_000));
    }

    #[test]
    fn on_ethereum_a_late_head_is_not_a_fast_clock_but_a_head_from_the_future_is_a_slow_one() {
        // Prod: E = 12 s, allowance 4 s.
        let mut offset = ClockOffset::new(Duration::from_secs(4));
        // A correct clock, heads seen 1.5–3 s into their slot.
        for (head, late_ms) in [(1u64, 3_000u64), (2, 1_500), (3, 2_200)] {
            offset.observe(head, head * 12, Timestamp(head * 12_000 + late_ms));
        }
        assert_eq!(offset.smallest_delay_ms(), Some(1_500));
        assert!(!offset.beyond_bound());
        // 5.6 s late every time for a whole window: beyond what lateness explains.
        let mut slow = ClockOffset::new(Duration::from_secs(4));
        for head in 1..=OFFSET_SAMPLES as u64 {
            slow.observe(head, head * 12, Timestamp(head * 12_000 + 5_600));
        }
        assert!(slow.beyond_bound());
        // One head stamped 600 ms in our future proves the clock 600 ms behind.
        offset.observe(4, 48, Timestamp(47_400));
        assert!(offset.beyond_bound());
    }

    fn rules() -> Rules {
        Rules {
            min_peers: 2,
            l1_slot: Duration::from_secs(1),
            l1_confirmations: 0,
        }
    }

    /// Every rule holds.
    fn good() -> Facts {
        Facts {
            l1_answer: Some((100, 1_000)),
            l1_head: Some((100, 1_000)),
            l1_synced: Some((99, 999)),
            blocked: None,
            follower_lag: None,
            archiver_tip: 7,
            world_state_tip: 7,
            peers: Some(2),
            committee_known: Some(true),
            clock: Some((-100, false)),
        }
    }

    fn kinds(facts: &Facts, rules: &Rules) -> Vec<ReasonKind> {
        verdict(facts, rules).into_iter().map(|r| r.kind).collect()
    }

    #[test]
    fn each_readiness_rule_names_its_reason() {
        use ReasonKind::*;
        let rules = rules();
        assert_eq!(kinds(&good(), &rules), vec![]);
        type BreakRule = Box<dyn Fn(&mut Facts)>;
        let cases: Vec<(BreakRule, Vec<ReasonKind>)> = vec![
            (Box::new(|f| f.l1_answer = None), vec![L1Unanswered]),
            (Box::new(|f| f.l1_synced = None), vec![ArchiverNotSynced]),
            (
                Box::new(|f| f.l1_synced = Some((98, 998))),
                vec![ArchiverBehind],
            ),
            (
                Box::new(|f| f.blocked = Some((5, 2))),
                vec![CheckpointBlocked],
            ),
            (
                Box::new(|f| f.follower_lag = Some("Behind".into())),
                vec![WorldStateBehind],
            ),
            (Box::new(|f| f.world_state_tip = 6), vec![WorldStateBehind]),
            (Box::new(|f| f.peers = Some(1)), vec![TooFewPeers]),
            (Box::new(|f| f.peers = None), vec![P2pUnanswered]),
            (
                Box::new(|f| f.committee_known = Some(false)),
                vec![CommitteeUnknown],
            ),
            (Box::new(|f| f.clock = None), vec![ClockUnmeasured]),
            (Box::new(|f| f.clock = Some((-900, true))), vec![ClockOff]),
        ];
        for (index, (break_rule, expected)) in cases.into_iter().enumerate() {
            let mut facts = good();
            break_rule(&mut facts);
            assert_eq!(kinds(&facts, &rules), expected, "case {index}");
        }
        // A full node needs no committee.
        let mut full = good();
        full.committee_known = None;
        assert_eq!(kinds(&full, &rules), vec![]);
    }

    #[test]
    fn l1_is_polled_an_eighth_of_a_slot_apart_within_bounds() {
        assert_eq!(
            l1_poll_interval(Duration::from_secs(12)),
            Duration::from_secs(1)
        );
        assert_eq!(
            l1_poll_interval(Duration::from_secs(2)),
            Duration::from_millis(250)
        );
        assert_eq!(
            l1_poll_interval(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn confirmations_widen_the_allowed_l1_lag() {
        let mut facts = good();
        facts.l1_synced = Some((97, 997));
        assert_eq!(kinds(&facts, &rules()), vec![ReasonKind::ArchiverBehind]);
        let deep = Rules {
            l1_confirmations: 2,
            ..rules()
        };
        assert_eq!(kinds(&facts, &deep), vec![]);
    }

    #[test]
    fn a_ready_node_turns_not_ready_only_after_the_grace_and_recovers_at_once() {
        let lag = [reason(ReasonKind::WorldStateBehind, "behind")];
        let mut hysteresis = Hysteresis::new(Duration::from_secs(2));
        // Not ready before the first good check, whatever the grace.
        assert!(!hysteresis.update(&lag, 0));
        assert!(hysteresis.update(&[], 250));
        // A brief lag is not an outage…
        assert!(hysteresis.update(&lag, 500));
        assert!(hysteresis.update(&lag, 2_400));
        assert!(hysteresis.update(&[], 2_650));
        // …a lag that holds for the grace is.
        assert!(hysteresis.update(&lag, 3_000));
        assert!(!hysteresis.update(&lag, 5_000));
        // Ready again as soon as nothing fails.
        assert!(hysteresis.update(&[], 5_250));
    }
}
