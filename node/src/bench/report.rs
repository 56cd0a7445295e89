//! The figures of each run, the side-by-side table and the JSON object.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    measure::RunData,
    stats::{SlotSample, blocks_per_checkpoint, per_slot, percentile, ratio, tps},
};

/// What the timetable promises a run's network (the schedule its nodes follow).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Expected {
    pub(crate) max_blocks_per_checkpoint: u32,
    pub(crate) building_share: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunReport {
    /// `pipelined`, `non_pipelined` or `pipelined_short_r`.
    pub(crate) name: String,
    pub(crate) pipelining_mode: String,
    pub(crate) reexecution_budget_seconds: f64,
    pub(crate) first_slot: u64,
    pub(crate) slots: u64,
    pub(crate) checkpoints_landed: u64,
    pub(crate) blocks_per_checkpoint: Option<f64>,
    pub(crate) expected: Expected,
    pub(crate) building_share: Option<f64>,
    pub(crate) l1_inclusion_delay_p50_seconds: Option<f64>,
    pub(crate) l1_inclusion_delay_p99_seconds: Option<f64>,
    pub(crate) tx_proposed_p50_seconds: Option<f64>,
    pub(crate) tx_proposed_p99_seconds: Option<f64>,
    pub(crate) tx_checkpointed_p50_seconds: Option<f64>,
    pub(crate) tx_checkpointed_p99_seconds: Option<f64>,
    pub(crate) tps: Option<f64>,
    pub(crate) txs_in_window: u64,
    pub(crate) txs_sent: u64,
    pub(crate) txs_rejected: u64,
    pub(crate) txs_not_checkpointed: u64,
    /// Dropped from tracking with too many in flight (the slowest): not in the latencies.
    pub(crate) txs_untracked: u64,
    pub(crate) discards: Option<f64>,
    pub(crate) parent_mismatches: Option<f64>,
    /// The host's 1-minute load average at the window's start and end.
    pub(crate) host_load: Option<(f64, f64)>,
    pub(crate) per_slot: Vec<SlotSample>,
}

impl RunReport {
    pub(crate) fn new(
        name: &str,
        mode: &str,
        reexecution_budget_seconds: f64,
        expected: Expected,
        data: &RunData,
    ) -> Self {
        let slots = per_slot(
            data.first_slot,
            data.slots,
            data.genesis_time,
            data.slot_secs,
            &data.checkpoints,
        );
        let delays: Vec<f64> = slots.iter().filter_map(|s| s.l1_inclusion_delay).collect();
        let window_secs = data.slots as f64 * data.slot_secs as f64;
        let txs_in_window = slots.iter().map(|s| s.txs).sum();
        let metrics = data.metrics;
        Self {
            name: name.to_string(),
            pipelining_mode: mode.to_string(),
            reexecution_budget_seconds,
            first_slot: data.first_slot,
            slots: data.slots,
            checkpoints_landed: delays.len() as u64,
            blocks_per_checkpoint: blocks_per_checkpoint(&slots),
            expected,
            building_share: metrics
                .map(|m| m.building_seconds / window_secs)
                .filter(|share| share.is_finite()),
            l1_inclusion_delay_p50_seconds: percentile(&delays, 50.0),
            l1_inclusion_delay_p99_seconds: percentile(&delays, 99.0),
            tx_proposed_p50_seconds: percentile(&data.proposed_latency, 50.0),
            tx_proposed_p99_seconds: percentile(&data.proposed_latency, 99.0),
            tx_checkpointed_p50_seconds: percentile(&data.checkpointed_latency, 50.0),
            tx_checkpointed_p99_seconds: percentile(&data.checkpointed_latency, 99.0),
            tps: tps(txs_in_window, window_secs),
            txs_in_window,
            txs_sent: data.txs.sent,
            txs_rejected: data.txs.rejected,
            txs_not_checkpointed: data.txs.pending as u64,
            txs_untracked: data.txs.untracked,
            discards: metrics.map(|m| m.discards),
            parent_mismatches: metrics.map(|m| m.parent_mismatches),
            host_load: data.host_load,
            per_slot: slots,
        }
    }
}

/// A figure of the table: its label, how it is printed, and its value in a report.
struct Row {
    label: &'static str,
    key: &'static str,
    value: fn(&RunReport) -> Option<f64>,
    decimals: usize,
    /// Whether a ratio between runs means something.
    compare: bool,
}

const ROWS: &[Row] = &[
    Row {
        label: "blocks per checkpoint (mean)",
        key: "blocks_per_checkpoint",
        value: |r| r.blocks_per_checkpoint,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "  timetable maximum",
        key: "max_blocks_per_checkpoint",
        value: |r| Some(f64::from(r.expected.max_blocks_per_checkpoint)),
        decimals: 0,
        compare: true,
    },
    Row {
        label: "checkpoints landed (of the slots)",
        key: "checkpoints_landed",
        value: |r| Some(r.checkpoints_landed as f64),
        decimals: 0,
        compare: true,
    },
    Row {
        label: "share of the slot spent building",
        key: "building_share",
        value: |r| r.building_share,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "  timetable",
        key: "building_share_timetable",
        value: |r| Some(r.expected.building_share),
        decimals: 2,
        compare: true,
    },
    Row {
        label: "L1 inclusion delay p50 (s)",
        key: "l1_inclusion_delay_p50_seconds",
        value: |r| r.l1_inclusion_delay_p50_seconds,
        decimals: 1,
        compare: true,
    },
    Row {
        label: "L1 inclusion delay p99 (s)",
        key: "l1_inclusion_delay_p99_seconds",
        value: |r| r.l1_inclusion_delay_p99_seconds,
        decimals: 1,
        compare: true,
    },
    Row {
        label: "tx submit -> proposed block p50 (s)",
        key: "tx_proposed_p50_seconds",
        value: |r| r.tx_proposed_p50_seconds,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "tx submit -> proposed block p99 (s)",
        key: "tx_proposed_p99_seconds",
        value: |r| r.tx_proposed_p99_seconds,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "tx submit -> checkpointed p50 (s)",
        key: "tx_checkpointed_p50_seconds",
        value: |r| r.tx_checkpointed_p50_seconds,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "tx submit -> checkpointed p99 (s)",
        key: "tx_checkpointed_p99_seconds",
        value: |r| r.tx_checkpointed_p99_seconds,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "sustained TPS (checkpointed)",
        key: "tps",
        value: |r| r.tps,
        decimals: 2,
        compare: true,
    },
    Row {
        label: "discards (pipelined, never landed)",
        key: "discards",
        value: |r| r.discards,
        decimals: 0,
        compare: true,
    },
    Row {
        label: "parent mismatches",
        key: "parent_mismatches",
        value: |r| r.parent_mismatches,
        decimals: 0,
        compare: true,
    },
    Row {
        label: "txs not checkpointed at the end",
        key: "txs_not_checkpointed",
        value: |r| Some(r.txs_not_checkpointed as f64),
        decimals: 0,
        compare: true,
    },
    Row {
        label: "txs dropped from tracking",
        key: "txs_untracked",
        value: |r| Some(r.txs_untracked as f64),
        decimals: 0,
        compare: false,
    },
    Row {
        label: "host load average, window start",
        key: "host_load_start",
        value: |r| r.host_load.map(|(start, _)| start),
        decimals: 2,
        compare: false,
    },
    Row {
        label: "host load average, window end",
        key: "host_load_end",
        value: |r| r.host_load.map(|(_, end)| end),
        decimals: 2,
        compare: false,
    },
];

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The column title of a run.
fn title(report: &RunReport) -> String {
    match report.name.as_str() {
        "pipelined" => "pipelined".to_string(),
        "non_pipelined" => "non-pipelined".to_string(),
        _ => format!("pipel. R={}s", report.reexecution_budget_seconds),
    }
}

/// The side-by-side table: every run, then each run's ratio to the non-pipelined one.
pub(crate) fn render_table(runs: &[RunReport]) -> String {
    let baseline = runs.iter().find(|r| r.name == "non_pipelined");
    let others: Vec<&RunReport> = runs.iter().filter(|r| r.name != "non_pipelined").collect();
    let mut out = String::new();
    let _ = write!(out, "{:<38}", "");
    for run in runs {
        let _ = write!(out, " {:>15}", title(run));
    }
    for run in &others {
        let _ = write!(out, " {:>15}", format!("{} / non-p.", short(run)));
    }
    out.push('\n');
    for row in ROWS {
        let _ = write!(out, "{:<38}", row.label);
        for run in runs {
            let _ = write!(out, " {:>15}", cell((row.value)(run), row.decimals));
        }
        for run in &others {
            let value = ratio((row.value)(run), baseline.and_then(|b| (row.value)(b)));
            let value = value.filter(|_| row.compare);
            let _ = write!(out, " {:>15}", cell(value, 2));
        }
        out.push('\n');
    }
    out
}

fn short(report: &RunReport) -> &'static str {
    if report.name == "pipelined" {
        "pipel."
    } else {
        "R<D"
    }
}

/// The machine-readable object: the runs, each run's ratios to the non-pipelined one, and
/// what each figure is measured from.
pub(crate) fn to_json(context: Value, runs: &[RunReport]) -> Value {
    let baseline = runs.iter().find(|r| r.name == "non_pipelined");
    let mut ratios = Map::new();
    for run in runs.iter().filter(|r| r.name != "non_pipelined") {
        let mut of_run = Map::new();
        for row in ROWS.iter().filter(|row| row.compare) {
            let value = ratio((row.value)(run), baseline.and_then(|b| (row.value)(b)));
            of_run.insert(row.key.to_string(), json!(value));
        }
        ratios.insert(
            format!("{}_over_non_pipelined", run.name),
            Value::Object(of_run),
        );
    }
    json!({
        "context": context,
        "runs": runs,
        "ratios": ratios,
        "measured_from": super::MEASURED_FROM,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bench::stats::{CheckpointSample, MetricTotals},
        spam::SpamSummary,
    };

    fn data(blocks: u64, delay: u64, latency: f64) -> RunData {
        // Genesis 0, S = 10, window slots 3..5; slot 4 missed in every run.
        let checkpoint = |number: u64, slot: u64| {
            (
                CheckpointSample {
                    number,
                    slot,
                    start_block: number * blocks,
                    block_count: blocks,
                    l1_timestamp: slot * 10 + delay,
                },
                blocks * 5,
            )
        };
        RunData {
            genesis_time: 0,
            slot_secs: 10,
            first_slot: 3,
            slots: 3,
            checkpoints: vec![checkpoint(1, 3), checkpoint(2, 5)],
            proposed_latency: vec![latency, latency * 3.0],
            checkpointed_latency: vec![latency * 10.0],
            txs: SpamSummary {
                sent: 100,
                pending: 2,
                untracked: 3,
                ..SpamSummary::default()
            },
            metrics: Some(MetricTotals {
                building_seconds: 15.0,
                discards: 1.0,
                parent_mismatches: 0.0,
            }),
            host_load: None,
        }
    }

    fn expected(blocks: u32) -> Expected {
        Expected {
            max_blocks_per_checkpoint: blocks,
            building_share: 0.5,
        }
    }

    #[test]
    fn reports_compute_the_figures_of_a_run() {
        let report = RunReport::new("pipelined", "pipelined", 1.0, expected(9), &data(9, 1, 0.5));
        assert_eq!(report.checkpoints_landed, 2);
        assert_eq!(report.blocks_per_checkpoint, Some(9.0));
        // 15 s of building over 3 slots of 10 s.
        assert_eq!(report.building_share, Some(0.5));
        assert_eq!(report.l1_inclusion_delay_p50_seconds, Some(1.0));
        assert_eq!(report.tx_proposed_p50_seconds, Some(0.5));
        assert_eq!(report.tx_proposed_p99_seconds, Some(1.5));
        assert_eq!(report.tx_checkpointed_p99_seconds, Some(5.0));
        // 2 checkpoints × 45 txs over 30 s.
        assert_eq!(report.txs_in_window, 90);
        assert_eq!(report.tps, Some(3.0));
        assert_eq!(report.txs_not_checkpointed, 2);
        assert_eq!(report.txs_untracked, 3);
        assert_eq!(report.per_slot[1].blocks, 0);
    }

    #[test]
    fn the_table_and_json_hold_each_ratio_to_the_baseline() {
        let runs = [
            RunReport::new("pipelined", "pipelined", 1.0, expected(9), &data(9, 1, 0.5)),
            RunReport::new(
                "non_pipelined",
                "non_pipelined",
                1.0,
                expected(6),
                &data(6, 9, 1.0),
            ),
        ];
        let table = render_table(&runs);
        let blocks = table
            .lines()
            .find(|l| l.starts_with("blocks per checkpoint"))
            .unwrap();
        let cells: Vec<&str> = blocks.split_whitespace().rev().take(3).collect();
        // pipelined 9, non-pipelined 6, ratio 1.5.
        assert_eq!(cells, vec!["1.50", "6.00", "9.00"]);
        let json = to_json(json!({}), &runs);
        let ratios = &json["ratios"]["pipelined_over_non_pipelined"];
        assert_eq!(ratios["blocks_per_checkpoint"], json!(1.5));
        assert_eq!(ratios["l1_inclusion_delay_p50_seconds"], json!(1.0 / 9.0));
        assert_eq!(ratios["tx_proposed_p50_seconds"], json!(0.5));
        // Equal discards: ratio 1; a zero baseline has no ratio.
        assert_eq!(ratios["discards"], json!(1.0));
        assert_eq!(ratios["parent_mismatches"], Value::Null);
        assert_eq!(json["runs"][1]["name"], json!("non_pipelined"));
    }
}
