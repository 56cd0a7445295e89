//! The Prometheus exporter: every metric of every crate is served at `/metrics` with the
//! `tandem_` prefix. Installed once per process.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::{Layer, PrefixLayer};

/// Prefix of every exported metric name.
pub(crate) const METRICS_PREFIX: &str = "tandem";

/// Buckets for `*_seconds` histograms: 1 ms to 60 s, dense around slot-scale latencies. Without
/// explicit buckets the exporter renders histograms as summaries.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Buckets for `p2p_proposal_deadline_margin_seconds`: time left before a slot's proposal
/// deadline when a proposal arrives; negative values mean late (inside the 500 ms tolerance or
/// the ignore margin).
const DEADLINE_MARGIN_BUCKETS: &[f64] = &[
    -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0,
];

/// How often histogram buckets are compacted when nobody scrapes.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder's handle, for rendering and upkeep (the recorder is process-global anyway).
static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the global recorder. The exporter's own HTTP listener is not used: it answers
/// every path but `/health` with the metrics, so the node serves `/metrics` itself (see
/// `rpc::http`), next to `/health` and `/ready`.
pub(crate) fn install() -> eyre::Result<()> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)?
        // Full matchers take precedence over suffixes.
        .set_buckets_for_metric(
            Matcher::Full(format!(
                "{METRICS_PREFIX}_p2p_proposal_deadline_margin_seconds"
            )),
            DEADLINE_MARGIN_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(PrefixLayer::new(METRICS_PREFIX).layer(recorder))
        .map_err(|_| eyre::eyre!("a metrics recorder is already installed in this process"))?;
    let _ = HANDLE.set(handle);
    describe();
    Ok(())
}

/// The metrics in the Prometheus text format; `None` when no recorder is installed
/// (`metrics.enabled = false`).
pub(crate) fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// Compacts histogram buckets (when nobody scrapes for a while).
pub(crate) fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// Descriptions and zero values, so dashboards show series from the first scrape.
fn describe() {
    tandem_publisher::describe_metrics();
    tandem_validator::describe_metrics();
    tandem_sequencer::describe_metrics();
    crate::run::health::describe_metrics();
    metrics::describe_gauge!(
        "node_info",
        "Constant 1, labelled with the node's version and role"
    );
    metrics::describe_gauge!("node_current_slot", "L2 slot of the wall clock");
    metrics::describe_gauge!("node_current_epoch", "Epoch of the wall clock's slot");
    metrics::describe_gauge!(
        "node_target_slot",
        "Slot a checkpoint built now would target (slot of the next L1 block, +1 when pipelining)"
    );
    metrics::describe_gauge!(
        "node_ready",
        "1 when /ready says ready: bound to the deployment, synced to L1's head, world state at the archiver's tip, enough peers, clock within 500 ms of L1"
    );
    metrics::describe_gauge!(
        "node_bound",
        "1 once the node is bound to its rollup deployment (constants read from L1 and checked)"
    );
    metrics::gauge!("node_bound").set(0.0);
    metrics::describe_counter!(
        "node_l1_bind_attempts_total",
        "Attempts to read the rollup deployment at start, by result (ok, unreachable, refused)"
    );
}
