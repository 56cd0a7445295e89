//! `tandem timetable --plot`: one target slot's schedule as a Gantt chart, every mode given,
//! relative to the target slot's start T; for operators choosing D (and R).

use std::time::Duration;

use plotters::prelude::*;
use tandem_proto::time::{PipeliningMode, SlotSchedule, Timestamp};

const SIZE: (u32, u32) = (1000, 520);
const FONT: &str = "sans-serif";

/// The kinds of bar, each with its legend entry and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Block,
    Prepare,
    Gossip,
    Reexecute,
    Publish,
}

impl Phase {
    const ALL: [Self; 6] = [
        Self::Init,
        Self::Block,
        Self::Prepare,
        Self::Gossip,
        Self::Reexecute,
        Self::Publish,
    ];

    const fn label(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Block => "block (sub-slot of D)",
            Self::Prepare => "assemble checkpoint",
            Self::Gossip => "gossip proposal / attestations (P)",
            Self::Reexecute => "validators re-execute last block (R)",
            Self::Publish => "L1 publish until inclusion",
        }
    }

    const fn color(self) -> RGBColor {
        match self {
            Self::Init => RGBColor(150, 150, 150),
            Self::Block => RGBColor(31, 119, 180),
            Self::Prepare => RGBColor(255, 127, 14),
            Self::Gossip => RGBColor(148, 103, 189),
            Self::Reexecute => RGBColor(214, 39, 40),
            Self::Publish => RGBColor(44, 160, 44),
        }
    }
}

/// One bar: its row, phase and span in seconds relative to T.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bar {
    row: usize,
    phase: Phase,
    from: f64,
    to: f64,
}

fn rel(schedule: &SlotSchedule, at: Timestamp) -> f64 {
    schedule.relative_to_t(at) as f64 / 1000.0
}

/// The bars of `schedule` on rows `first_row` (build), `+1` (checkpoint), `+2` (L1). `slot` is
/// S; `reexecution` is R.
fn bars(
    schedule: &SlotSchedule,
    slot: Duration,
    reexecution: Duration,
    first_row: usize,
) -> Vec<Bar> {
    let at = |t| rel(schedule, t);
    let mut out = vec![Bar {
        row: first_row,
        phase: Phase::Init,
        from: at(schedule.build_frame_start),
        to: at(schedule.first_subslot_start),
    }];
    let mut start = at(schedule.first_subslot_start);
    for deadline in &schedule.block_build_deadlines {
        let end = at(*deadline);
        out.push(Bar {
            row: first_row,
            phase: Phase::Block,
            from: start,
            to: end,
        });
        start = end;
    }
    let send = at(schedule.checkpoint_proposal_send_time);
    let arrive = at(schedule.checkpoint_proposal_receive_ideal);
    let reexecuted = arrive + reexecution.as_secs_f64();
    let publish = at(schedule.l1_publish_ideal_time);
    // Pipelined, the propose lands in the target slot's first L1 block (at T); non-pipelined,
    // by the end of the slot the frame started in.
    let included = match schedule.mode {
        PipeliningMode::Pipelined => 0.0,
        PipeliningMode::NonPipelined => at(schedule.build_frame_start) + slot.as_secs_f64(),
    };
    let checkpoint_row = first_row + 1;
    out.extend([
        Bar {
            row: checkpoint_row,
            phase: Phase::Prepare,
            from: at(schedule.last_block_build_time),
            to: send,
        },
        Bar {
            row: checkpoint_row,
            phase: Phase::Gossip,
            from: send,
            to: arrive,
        },
        Bar {
            row: checkpoint_row,
            phase: Phase::Reexecute,
            from: arrive,
            to: reexecuted,
        },
        Bar {
            row: checkpoint_row,
            phase: Phase::Gossip,
            from: reexecuted,
            to: reexecuted + (arrive - send),
        },
        Bar {
            row: first_row + 2,
            phase: Phase::Publish,
            from: publish,
            to: included,
        },
    ]);
    out.retain(|bar| bar.to > bar.from);
    out
}

/// The mode's name in row labels.
fn mode_name(mode: PipeliningMode) -> &'static str {
    match mode {
        PipeliningMode::Pipelined => "pipelined",
        PipeliningMode::NonPipelined => "non-pipelined",
    }
}

/// The chart of `schedules` (any of the two modes), three rows each; `caption` names the
/// constants.
pub(crate) fn render_gantt(
    schedules: &[&SlotSchedule],
    slot: Duration,
    reexecution: Duration,
    caption: &str,
) -> eyre::Result<String> {
    let mut all = Vec::new();
    let mut labels = Vec::new();
    for (index, schedule) in schedules.iter().enumerate() {
        all.extend(bars(schedule, slot, reexecution, index * 3));
        let mode = mode_name(schedule.mode);
        labels.push(format!(
            "{mode}: build ({} blocks)",
            schedule.max_blocks_per_checkpoint
        ));
        labels.push(format!("{mode}: checkpoint"));
        labels.push(format!("{mode}: L1"));
    }
    let rows = labels.len();
    let from = all.iter().map(|b| b.from).fold(0.0_f64, f64::min).floor() - 1.0;
    let to = all.iter().map(|b| b.to).fold(0.0_f64, f64::max).ceil() + 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        // Rows top to bottom: the segmented axis counts upwards.
        let row_y = |row: usize| rows - 1 - row;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 16))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(210)
            // An integer range holds its end: `0..rows - 1` is `rows` segments.
            .build_cartesian_2d(from..to, (0..rows.saturating_sub(1)).into_segmented())?;
        let label_of = |value: &SegmentValue<usize>| match value {
            SegmentValue::CenterOf(y) | SegmentValue::Exact(y) if *y < rows => {
                labels[rows - 1 - *y].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("seconds relative to the target slot's start T")
            .y_labels(rows)
            .y_label_formatter(&label_of)
            .label_style((FONT, 12))
            .draw()?;
        for phase in Phase::ALL {
            let color = phase.color();
            let drawn = chart.draw_series(all.iter().filter(|b| b.phase == phase).map(|bar| {
                let mut rect = Rectangle::new(
                    [
                        (bar.from, SegmentValue::Exact(row_y(bar.row))),
                        (bar.to, SegmentValue::Exact(row_y(bar.row) + 1)),
                    ],
                    color.filled(),
                );
                rect.set_margin(6, 6, 1, 1);
                rect
            }))?;
            drawn.label(phase.label()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
            });
        }
        // T, and the slot boundaries around it.
        let s = slot.as_secs_f64();
        for (x, name) in [(-s, "T - S"), (0.0, "T"), (s, "T + S")] {
            if x < from || x > to {
                continue;
            }
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Last)],
                BLACK.stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                name,
                (x, SegmentValue::Last),
                (FONT, 12).into_font(),
            )))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font((FONT, 11))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use tandem_proto::time::{ConsensusWindows, SequencerBudgets, SlotClock, Timetable};

    use super::*;
    use crate::svg_check::summarize;

    fn schedule(mode: PipeliningMode) -> SlotSchedule {
        // The devnet profile: S = 24 s, E = 2 s, D = 2 s, R = D.
        let clock = SlotClock::new(
            Timestamp(0),
            Duration::from_secs(24),
            Duration::from_secs(2),
            8,
        )
        .unwrap();
        let windows =
            ConsensusWindows::new(clock, Duration::from_secs(2), mode, Duration::from_secs(2));
        Timetable::new(windows, SequencerBudgets::default())
            .unwrap()
            .schedule(tandem_proto::time::Slot(10))
    }

    #[test]
    fn bars_follow_the_schedule() {
        let pipelined = schedule(PipeliningMode::Pipelined);
        let bars = bars(
            &pipelined,
            Duration::from_secs(24),
            Duration::from_secs(2),
            0,
        );
        let blocks: Vec<&Bar> = bars.iter().filter(|b| b.phase == Phase::Block).collect();
        assert_eq!(blocks.len() as u32, pipelined.max_blocks_per_checkpoint);
        // Sub-slots are contiguous, D long, and end at the last deadline.
        for pair in blocks.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
            assert!((pair[0].to - pair[0].from - 2.0).abs() < 1e-9);
        }
        let publish = bars.iter().find(|b| b.phase == Phase::Publish).unwrap();
        // Pipelined: sent at T − E, in the first L1 block of the target slot.
        assert_eq!((publish.row, publish.from, publish.to), (2, -2.0, 0.0));
        let reexecute = bars.iter().find(|b| b.phase == Phase::Reexecute).unwrap();
        assert!((reexecute.to - reexecute.from - 2.0).abs() < 1e-9);
        assert!(bars.iter().all(|b| b.to > b.from));
    }

    #[test]
    fn the_gantt_chart_is_well_formed_svg_with_both_modes() {
        let pipelined = schedule(PipeliningMode::Pipelined);
        let baseline = schedule(PipeliningMode::NonPipelined);
        let svg = render_gantt(
            &[&pipelined, &baseline],
            Duration::from_secs(24),
            Duration::from_secs(2),
            "gantt test",
        )
        .unwrap();
        let summary = summarize(&svg).unwrap();
        let bars = bars(
            &pipelined,
            Duration::from_secs(24),
            Duration::from_secs(2),
            0,
        )
        .len()
            + bars(
                &baseline,
                Duration::from_secs(24),
                Duration::from_secs(2),
                3,
            )
            .len();
        // Every bar, one legend swatch per phase, plus plotters' own frames (background,
        // legend box); the exact counts per phase follow.
        assert!(summary.rects >= bars + Phase::ALL.len() + 2, "{summary:?}");
        // Per phase, the bars of both modes and one legend swatch.
        let blocks =
            (pipelined.max_blocks_per_checkpoint + baseline.max_blocks_per_checkpoint) as usize;
        // Gossip out and attestations back, each P long: none where P = 0 (the clamp).
        let gossip: usize = [&pipelined, &baseline]
            .iter()
            .map(|s| {
                if s.checkpoint_proposal_receive_ideal > s.checkpoint_proposal_send_time {
                    2
                } else {
                    0
                }
            })
            .sum();
        for (phase, bars_of_both) in [
            (Phase::Init, 2),
            (Phase::Prepare, 2),
            (Phase::Gossip, gossip),
            (Phase::Reexecute, 2),
            (Phase::Publish, 2),
        ] {
            let RGBColor(r, g, b) = phase.color();
            let fill = format!("#{r:02X}{g:02X}{b:02X}");
            assert_eq!(
                summary.rects_by_fill.get(&fill),
                Some(&(bars_of_both + 1)),
                "{}: {summary:?}",
                phase.label()
            );
        }
        let RGBColor(r, g, b) = Phase::Block.color();
        assert_eq!(
            summary
                .rects_by_fill
                .get(&format!("#{r:02X}{g:02X}{b:02X}")),
            Some(&(blocks + 1)),
            "{summary:?}"
        );
        for expected in [
            "gantt test".to_string(),
            format!(
                "pipelined: build ({} blocks)",
                pipelined.max_blocks_per_checkpoint
            ),
            format!(
                "non-pipelined: build ({} blocks)",
                baseline.max_blocks_per_checkpoint
            ),
            "pipelined: L1".to_string(),
            "T".to_string(),
            Phase::Reexecute.label().to_string(),
        ] {
            assert!(
                summary.texts.contains(&expected),
                "{expected:?} not in {:?}",
                summary.texts
            );
        }
    }
}
