//! The statistics of a benchmark run, from what the nodes answered: checkpoints and their
//! blocks (JSON-RPC), counters and state timers (/metrics), tx latencies (the load generator).

use serde::Serialize;
use serde_json::Value;

use crate::client::quantity;

/// The `p`-th percentile (0 < p ≤ 100) by nearest rank: the smallest sample with at least
/// `p` % of the samples at or below it. `None` without samples.
pub(crate) fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // `ceil(p/100 · n)` is in 1..=n for p in (0, 100].
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The mean; `None` without values.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// `a / b`; `None` when either is unknown or `b` is zero.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// Transactions per second over a window; `None` for an empty window.
pub(crate) fn tps(txs: u64, window_secs: f64) -> Option<f64> {
    (window_secs > 0.0).then(|| txs as f64 / window_secs)
}

/// A checkpoint on L1, as `tandem_getCheckpoint` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointSample {
    pub(crate) number: u64,
    pub(crate) slot: u64,
    pub(crate) start_block: u64,
    pub(crate) block_count: u64,
    /// Timestamp of the L1 block that included it.
    pub(crate) l1_timestamp: u64,
}

impl CheckpointSample {
    /// From a `tandem_getCheckpoint` answer; `None` for a checkpoint that is only proposed
    /// (no L1 block) or an answer without these fields.
    pub(crate) fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            number: quantity(&value["number"])?,
            slot: quantity(&value["slot"])?,
            start_block: quantity(&value["startBlock"])?,
            block_count: quantity(&value["blockCount"])?,
            l1_timestamp: quantity(&value["l1Timestamp"])?,
        })
    }
}

/// One target slot of the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct SlotSample {
    pub(crate) slot: u64,
    /// Blocks of its checkpoint; 0 when none landed.
    pub(crate) blocks: u64,
    /// Txs in those blocks.
    pub(crate) txs: u64,
    /// L1 inclusion delay: the including L1 block's timestamp minus the slot's start, in
    /// seconds; `None` when no checkpoint landed.
    pub(crate) l1_inclusion_delay: Option<f64>,
}

/// The window's slots `first..first + count`, each with its landed checkpoint (if any) and
/// that checkpoint's tx count. Checkpoints outside the window are ignored.
pub(crate) fn per_slot(
    first: u64,
    count: u64,
    genesis_time: u64,
    slot_secs: u64,
    checkpoints: &[(CheckpointSample, u64)],
) -> Vec<SlotSample> {
    (first..first.saturating_add(count))
        .map(|slot| {
            let landed = checkpoints.iter().find(|(c, _)| c.slot == slot);
            let start = genesis_time.saturating_add(slot.saturating_mul(slot_secs));
            SlotSample {
                slot,
                blocks: landed.map_or(0, |(c, _)| c.block_count),
                txs: landed.map_or(0, |(_, txs)| *txs),
                l1_inclusion_delay: landed.map(|(c, _)| c.l1_timestamp as f64 - start as f64),
            }
        })
        .collect()
}

/// Blocks per landed checkpoint of the window (slots without one are not averaged in; they
/// are counted as missed).
pub(crate) fn blocks_per_checkpoint(slots: &[SlotSample]) -> Option<f64> {
    let landed: Vec<f64> = slots
        .iter()
        .filter(|s| s.l1_inclusion_delay.is_some())
        .map(|s| s.blocks as f64)
        .collect();
    mean(&landed)
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricSample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

impl MetricSample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a /metrics page (the exporter's output: `name{k="v",…} value` lines,
/// `#` comments). Lines that are not samples are skipped.
pub(crate) fn parse_metrics(text: &str) -> Vec<MetricSample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<MetricSample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(MetricSample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"` (values escape `\`, `"` and newlines).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// The sum of every series named `name` whose `label` (when given) is one of `values`.
pub(crate) fn metric_sum(
    samples: &[MetricSample],
    name: &str,
    label: Option<(&str, &[&str])>,
) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| match label {
            None => true,
            Some((key, values)) => s.label(key).is_some_and(|v| values.contains(&v)),
        })
        .map(|s| s.value)
        .sum()
}

/// Sequencer states that are the build frame's sub-slots: the time `timetable`'s building
/// share counts (`max_blocks · D`).
pub(crate) const BUILDING_STATES: &[&str] = &[
    "waiting_for_txs",
    "creating_block",
    "waiting_until_next_block",
];

/// What one validator's /metrics says, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MetricTotals {
    /// Seconds spent in [`BUILDING_STATES`].
    pub(crate) building_seconds: f64,
    /// `sequencer_pipeline_discards_total`.
    pub(crate) discards: f64,
    /// `sequencer_pipeline_parent_mismatch_total`, all reasons.
    pub(crate) parent_mismatches: f64,
}

impl MetricTotals {
    pub(crate) fn from_metrics(text: &str) -> Self {
        let samples = parse_metrics(text);
        Self {
            building_seconds: metric_sum(
                &samples,
                "tandem_sequencer_state_seconds_sum",
                Some(("state", BUILDING_STATES)),
            ),
            discards: metric_sum(&samples, "tandem_sequencer_pipeline_discards_total", None),
            parent_mismatches: metric_sum(
                &samples,
                "tandem_sequencer_pipeline_parent_mismatch_total",
                None,
            ),
        }
    }

    /// What happened between `before` and `self`, summed over validators (each pair is one
    /// validator's two scrapes). `None` when a scrape is missing.
    pub(crate) fn delta(before: &[Option<Self>], after: &[Option<Self>]) -> Option<Self> {
        if before.len() != after.len() {
            return None;
        }
        let mut total = Self::default();
        for (b, a) in before.iter().zip(after) {
            let (b, a) = ((*b)?, (*a)?);
            total.building_seconds += a.building_seconds - b.building_seconds;
            total.discards += a.discards - b.discards;
            total.parent_mismatches += a.parent_mismatches - b.parent_mismatches;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 9.0, 8.0, 7.0, 6.0];
        // n = 10: p50 → rank 5 → 5; p99 → rank ceil(9.9) = 10 → 10; p10 → rank 1 → 1.
        assert_eq!(percentile(&samples, 50.0), Some(5.0));
        assert_eq!(percentile(&samples, 99.0), Some(10.0));
        assert_eq!(percentile(&samples, 10.0), Some(1.0));
        assert_eq!(percentile(&samples, 11.0), Some(2.0));
        // n = 3: p50 → rank ceil(1.5) = 2 → the middle one.
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[7.5], 99.0), Some(7.5));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&samples, 0.0), None);
        assert_eq!(percentile(&samples, 101.0), None);
    }

    #[test]
    fn ratios_tps_and_means() {
        assert_eq!(ratio(Some(9.0), Some(6.0)), Some(1.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(tps(360, 120.0), Some(3.0));
        assert_eq!(tps(5, 0.0), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
    }

    fn checkpoint(number: u64, slot: u64, blocks: u64, l1_timestamp: u64) -> CheckpointSample {
        CheckpointSample {
            number,
            slot,
            start_block: number * 10,
            block_count: blocks,
            l1_timestamp,
        }
    }

    #[test]
    fn checkpoints_are_read_from_rpc_answers() {
        let answer = json!({
            "number": "0x7", "status": "checkpointed", "slot": "0x2a", "startBlock": "0x40",
            "blockCount": "0xb", "l1Block": "0x99", "l1Timestamp": "0x6553f101",
        });
        assert_eq!(
            CheckpointSample::from_json(&answer),
            Some(CheckpointSample {
                number: 7,
                slot: 42,
                start_block: 64,
                block_count: 11,
                l1_timestamp: 0x6553_f101,
            })
        );
        let proposed = json!({
            "number": "0x8", "status": "proposed", "slot": "0x2b", "startBlock": "0x4b",
            "blockCount": "0xb",
        });
        assert_eq!(CheckpointSample::from_json(&proposed), None);
    }

    #[test]
    fn slots_of_the_window_get_their_checkpoint() {
        // Genesis 1000, S = 12: slot 5 starts at 1060, slot 6 at 1072, slot 7 at 1084.
        let checkpoints = [
            (checkpoint(3, 4, 9, 1049), 40),
            (checkpoint(4, 5, 10, 1061), 50),
            (checkpoint(5, 7, 8, 1093), 30),
            (checkpoint(6, 8, 10, 1097), 60),
        ];
        let slots = per_slot(5, 3, 1000, 12, &checkpoints);
        assert_eq!(
            slots,
            vec![
                SlotSample {
                    slot: 5,
                    blocks: 10,
                    txs: 50,
                    l1_inclusion_delay: Some(1.0)
                },
                SlotSample {
                    slot: 6,
                    blocks: 0,
                    txs: 0,
                    l1_inclusion_delay: None
                },
                SlotSample {
                    slot: 7,
                    blocks: 8,
                    txs: 30,
                    l1_inclusion_delay: Some(9.0)
                },
            ]
        );
        // The missed slot 6 is not averaged in: (10 + 8) / 2.
        assert_eq!(blocks_per_checkpoint(&slots), Some(9.0));
        assert_eq!(blocks_per_checkpoint(&slots[1..2]), None);
    }

    const METRICS: &str = r#"# HELP tandem_sequencer_state_seconds time spent in each sequencer state
# TYPE tandem_sequencer_state_seconds histogram
tandem_sequencer_state_seconds_bucket{state="creating_block",le="0.5"} 3
tandem_sequencer_state_seconds_bucket{state="creating_block",le="+Inf"} 4
tandem_sequencer_state_seconds_sum{state="creating_block"} 2.5
tandem_sequencer_state_seconds_count{state="creating_block"} 4
tandem_sequencer_state_seconds_sum{state="waiting_until_next_block"} 6.25
tandem_sequencer_state_seconds_sum{state="waiting_for_txs"} 0.25
tandem_sequencer_state_seconds_sum{state="idle"} 100
tandem_sequencer_pipeline_discards_total 2
tandem_sequencer_pipeline_parent_mismatch_total{reason="parent_not_on_l1"} 1
tandem_sequencer_pipeline_parent_mismatch_total{reason="parent_replaced"} 3
tandem_node_info{version="0.1.0",role="a \"quoted\", role"} 1
"#;

    #[test]
    fn metrics_pages_are_parsed_and_summed() {
        let samples = parse_metrics(METRICS);
        assert_eq!(samples.len(), 11);
        let info = samples.last().unwrap();
        assert_eq!(info.name, "tandem_node_info");
        assert_eq!(
            info.labels,
            vec![
                ("version".to_string(), "0.1.0".to_string()),
                ("role".to_string(), "a \"quoted\", role".to_string()),
            ]
        );
        assert_eq!(samples[1].value, 4.0);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        let totals = MetricTotals::from_metrics(METRICS);
        assert_eq!(
            totals,
            MetricTotals {
                building_seconds: 9.0,
                discards: 2.0,
                parent_mismatches: 4.0,
            }
        );
        let later = MetricTotals {
            building_seconds: 19.5,
            discards: 2.0,
            parent_mismatches: 5.0,
        };
        assert_eq!(
            MetricTotals::delta(&[Some(totals), Some(totals)], &[Some(later), Some(totals)]),
            Some(MetricTotals {
                building_seconds: 10.5,
                discards: 0.0,
                parent_mismatches: 1.0,
            })
        );
        assert_eq!(MetricTotals::delta(&[None], &[Some(later)]), None);
    }
}
