//! The Prometheus exporter: every metric of every crate is served at `/metrics` with the
//! `tandem_` prefix. Installed once per process.

use std::{net::SocketAddr, time::Duration};

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

/// The running exporter: a future serving HTTP and a handle for upkeep.
pub(crate) struct Exporter {
    pub(crate) serve: metrics_exporter_prometheus::ExporterFuture,
    pub(crate) handle: PrometheusHandle,
}

/// Installs the global recorder and binds the HTTP listener. Must run inside a tokio runtime.
pub(crate) fn install(listen: SocketAddr) -> eyre::Result<Exporter> {
    let (recorder, serve) = PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)?
        // Full matchers take precedence over suffixes.
        .set_buckets_for_metric(
            Matcher::Full(format!(
                "{METRICS_PREFIX}_p2p_proposal_deadline_margin_seconds"
            )),
            DEADLINE_MARGIN_BUCKETS,
        )?
        .build()
        .map_err(|err| eyre::eyre!("metrics.listen_addr {listen}: {err}"))?;
    let handle = recorder.handle();
    metrics::set_global_recorder(PrefixLayer::new(METRICS_PREFIX).layer(recorder))
        .map_err(|_| eyre::eyre!("a metrics recorder is already installed in this process"))?;
    describe();
    Ok(Exporter { serve, handle })
}

/// Descriptions and zero values, so dashboards show series from the first scrape.
fn describe() {
    tandem_publisher::describe_metrics();
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
        "1 once the node is bound to its rollup deployment (constants read from L1 and checked)"
    );
    metrics::describe_counter!(
        "node_l1_bind_attempts_total",
        "Attempts to read the rollup deployment at start, by result (ok, unreachable, refused)"
    );
}
