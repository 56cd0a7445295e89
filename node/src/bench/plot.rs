//! `bench pipeline --plot`: blocks per checkpoint and L1 inclusion delay of every target slot
//! of the window, one line per run, as an SVG.

use plotters::prelude::*;

use super::report::RunReport;

/// One colour per run, in the order the runs are given (pipelined, non-pipelined, R < D).
pub(crate) const RUN_COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

const SIZE: (u32, u32) = (960, 720);
const FONT: &str = "sans-serif";

/// The legend name of a run.
fn legend(report: &RunReport) -> String {
    match report.name.as_str() {
        "pipelined" => format!("pipelined (R = {} s)", report.reexecution_budget_seconds),
        "non_pipelined" => "non-pipelined".to_string(),
        _ => format!("pipelined, R = {} s", report.reexecution_budget_seconds),
    }
}

/// Runs of consecutive points (a slot without a value breaks the line).
fn segments(points: impl Iterator<Item = (u64, Option<f64>)>) -> Vec<Vec<(u64, f64)>> {
    let mut out: Vec<Vec<(u64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) => out.last_mut().map_or((), |segment| segment.push((x, y))),
            None if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|segment| !segment.is_empty());
    out
}

type Series = fn(&RunReport) -> Vec<(u64, Option<f64>)>;

fn blocks(report: &RunReport) -> Vec<(u64, Option<f64>)> {
    report
        .per_slot
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, Some(s.blocks as f64)))
        .collect()
}

fn delays(report: &RunReport) -> Vec<(u64, Option<f64>)> {
    report
        .per_slot
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, s.l1_inclusion_delay))
        .collect()
}

/// The SVG of `runs`.
pub(crate) fn render_run(runs: &[RunReport], caption: &str) -> eyre::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(caption, (FONT, 18))?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
        let slots = runs.iter().map(|r| r.per_slot.len()).max().unwrap_or(0) as u64;
        let most_blocks = runs
            .iter()
            .map(|r| u64::from(r.expected.max_blocks_per_checkpoint))
            .chain(
                runs.iter()
                    .flat_map(|r| r.per_slot.iter().map(|s| s.blocks)),
            )
            .max()
            .unwrap_or(1);
        let longest_delay = runs
            .iter()
            .flat_map(|r| r.per_slot.iter().filter_map(|s| s.l1_inclusion_delay))
            .fold(1.0_f64, f64::max);
        let panels: [(&DrawingArea<_, _>, &str, &str, f64, Series); 2] = [
            (
                &top,
                "blocks per checkpoint, by target slot (0 = missed)",
                "blocks",
                most_blocks as f64 + 1.0,
                blocks,
            ),
            (
                &bottom,
                "L1 inclusion delay: including L1 block time - slot start",
                "seconds",
                longest_delay.ceil() + 1.0,
                delays,
            ),
        ];
        for (area, title, unit, top_y, series) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 15))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0u64..slots.max(1), 0f64..top_y)?;
            chart
                .configure_mesh()
                .x_desc("slot of the measured window")
                .y_desc(unit)
                .label_style((FONT, 12))
                .draw()?;
            for (run, color) in runs.iter().zip(RUN_COLORS.iter().cycle()) {
                let points = series(run);
                let mut first = true;
                for segment in segments(points.iter().copied()) {
                    let drawn = chart.draw_series(LineSeries::new(
                        segment.iter().copied(),
                        color.stroke_width(2),
                    ))?;
                    if first {
                        let color = *color;
                        drawn.label(legend(run)).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                        first = false;
                    }
                    chart.draw_series(
                        segment
                            .iter()
                            .map(|point| Circle::new(*point, 3, color.filled())),
                    )?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bench::{report::Expected, stats::SlotSample},
        svg_check::{SvgSummary, summarize},
    };

    fn report(name: &str, r: f64, blocks: &[u64]) -> RunReport {
        let per_slot = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| SlotSample {
                slot: 10 + i as u64,
                blocks: *b,
                txs: b * 3,
                l1_inclusion_delay: (*b > 0).then_some(1.0 + i as f64),
            })
            .collect();
        RunReport {
            name: name.to_string(),
            pipelining_mode: "pipelined".into(),
            reexecution_budget_seconds: r,
            first_slot: 10,
            slots: blocks.len() as u64,
            checkpoints_landed: 0,
            blocks_per_checkpoint: None,
            expected: Expected {
                max_blocks_per_checkpoint: 9,
                building_share: 0.7,
            },
            building_share: None,
            l1_inclusion_delay_p50_seconds: None,
            l1_inclusion_delay_p99_seconds: None,
            tx_proposed_p50_seconds: None,
            tx_proposed_p99_seconds: None,
            tx_checkpointed_p50_seconds: None,
            tx_checkpointed_p99_seconds: None,
            tps: None,
            txs_in_window: 0,
            txs_sent: 0,
            txs_rejected: 0,
            txs_not_checkpointed: 0,
            txs_untracked: 0,
            discards: None,
            parent_mismatches: None,
            host_load: None,
            per_slot,
        }
    }

    #[test]
    fn gaps_break_lines() {
        let points = [
            (0, Some(1.0)),
            (1, None),
            (2, Some(3.0)),
            (3, Some(4.0)),
            (4, None),
        ];
        assert_eq!(
            segments(points.into_iter()),
            vec![vec![(0, 1.0)], vec![(2, 3.0), (3, 4.0)]]
        );
        assert!(segments([(0, None)].into_iter()).is_empty());
    }

    #[test]
    fn the_run_plot_is_well_formed_svg_with_a_line_per_run_and_panel() {
        let runs = [
            report("pipelined", 1.0, &[9, 9, 9, 9]),
            report("non_pipelined", 1.0, &[6, 0, 6, 6]),
            report("pipelined_short_r", 0.5, &[10, 10, 10, 10]),
        ];
        let svg = render_run(&runs, "bench test").unwrap();
        let SvgSummary {
            polylines_by_stroke,
            circles_by_fill,
            texts,
            ..
        } = summarize(&svg).unwrap();
        let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        let [pipelined, baseline, short_r] = RUN_COLORS.map(hex);
        // Per run: a line in each panel and a legend line in each. Non-pipelined's missed slot
        // splits its delay line in two (slot 0, slots 2-3).
        assert_eq!(
            polylines_by_stroke[&pipelined], 4,
            "{polylines_by_stroke:?}"
        );
        assert_eq!(polylines_by_stroke[&baseline], 5, "{polylines_by_stroke:?}");
        assert_eq!(polylines_by_stroke[&short_r], 4, "{polylines_by_stroke:?}");
        // A marker per point: 4 blocks and 4 delays, 4 blocks and 3 delays, 4 and 4.
        assert_eq!(circles_by_fill[&pipelined], 8);
        assert_eq!(circles_by_fill[&baseline], 7);
        assert_eq!(circles_by_fill[&short_r], 8);
        for expected in [
            "bench test",
            "pipelined (R = 1 s)",
            "non-pipelined",
            "pipelined, R = 0.5 s",
            "blocks per checkpoint, by target slot (0 = missed)",
            "L1 inclusion delay: including L1 block time - slot start",
        ] {
            assert!(
                texts.iter().filter(|t| t.as_str() == expected).count() >= 1,
                "{expected:?} missing from {texts:?}"
            );
        }
    }
}
