//! `tandem timetable`: the proposer's schedule for one target slot, relative to its start T,
//! pipelined and non-pipelined side by side. Operators use it to choose `block_duration`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use serde_json::{Map, Value, json};
use tandem_proto::time::{ConsensusWindows, PipeliningMode, Slot, SlotSchedule};

use crate::config::{CliOverrides, Config};

#[derive(Debug, Args)]
pub(crate) struct TimetableArgs {
    /// Take protocol constants and budgets from this configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Slot duration S (overrides the configuration).
    #[arg(long, value_parser = humantime::parse_duration)]
    slot: Option<Duration>,
    /// L1 slot duration E (overrides the configuration).
    #[arg(long, value_parser = humantime::parse_duration)]
    l1_slot: Option<Duration>,
    /// Block duration D (overrides the configuration).
    #[arg(long, value_parser = humantime::parse_duration)]
    block: Option<Duration>,
    /// Last-block re-execution budget R (overrides the configuration; default D).
    #[arg(long, value_parser = humantime::parse_duration)]
    reexecution_budget: Option<Duration>,
    /// Gossip propagation budget P (overrides `sequencer.p2p_propagation_time`).
    #[arg(long, value_parser = humantime::parse_duration)]
    propagation: Option<Duration>,
    /// Print one JSON object `{"pipelined": {...}, "non_pipelined": {...}}`.
    #[arg(long)]
    json: bool,
    /// Also draw the schedule of both modes as a Gantt chart into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// The slot the schedule is computed for; any slot gives the same relative times.
const EXAMPLE_TARGET_SLOT: Slot = Slot(1_000);

pub(crate) fn print(args: &TimetableArgs) -> eyre::Result<()> {
    let mut config = crate::cli::load_config(args.config.as_deref(), &CliOverrides::default())?;
    if let Some(slot) = args.slot {
        config.protocol.slot_duration = Some(slot);
    }
    if let Some(l1_slot) = args.l1_slot {
        config.protocol.l1_slot_duration = Some(l1_slot);
    }
    if let Some(block) = args.block {
        config.protocol.block_duration = Some(block);
    }
    if let Some(budget) = args.reexecution_budget {
        config.protocol.last_block_reexecution_budget = Some(budget);
    }
    if let Some(propagation) = args.propagation {
        config.sequencer.p2p_propagation_time = propagation;
    }
    let windows = config.windows()?;
    let pipelined = config.timetable_for(windows.with_mode(PipeliningMode::Pipelined));
    let baseline = config.timetable_for(windows.with_mode(PipeliningMode::NonPipelined));
    // What the same network would build with the reference budget R = D, to show R's effect.
    let reference = ConsensusWindows::new(
        *windows.slot_clock(),
        windows.block_duration(),
        PipeliningMode::Pipelined,
        windows.block_duration(),
    );
    let blocks_if_r_is_d = config
        .timetable_for(reference)
        .ok()
        .map(|t| t.max_blocks_per_checkpoint());
    let txs_per_block = [&pipelined, &baseline].map(|table| {
        table
            .as_ref()
            .ok()
            .map(|table| config.max_txs_per_block(table))
    });
    let baseline_reference = config
        .timetable_for(reference.with_mode(PipeliningMode::NonPipelined))
        .ok()
        .map(|t| t.max_blocks_per_checkpoint());
    let schedules = [
        (
            "pipelined",
            pipelined.map(|t| t.schedule(EXAMPLE_TARGET_SLOT)),
        ),
        (
            "non_pipelined",
            baseline.map(|t| t.schedule(EXAMPLE_TARGET_SLOT)),
        ),
    ];
    let if_r_is_d = [blocks_if_r_is_d, baseline_reference];
    if let Some(path) = &args.plot {
        plot(path, &config, &schedules)?;
    }
    if args.json {
        let mut out = Map::new();
        out.insert(
            "last_block_reexecution_budget_seconds".into(),
            json!(windows.last_block_reexecution_budget().as_secs_f64()),
        );
        for (((name, schedule), reference), txs) in
            schedules.iter().zip(if_r_is_d).zip(txs_per_block)
        {
            let value = match schedule {
                Ok(schedule) => {
                    let mut value = schedule_json(schedule);
                    if let Value::Object(object) = &mut value {
                        object.insert(
                            "max_blocks_per_checkpoint_if_r_equals_d".into(),
                            json!(reference),
                        );
                        object.insert("max_txs_per_block".into(), json!(txs));
                    }
                    value
                }
                Err(err) => json!({ "error": err.to_string() }),
            };
            out.insert((*name).to_string(), value);
        }
        println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    } else {
        print!(
            "{}",
            render_table(&config, &schedules, if_r_is_d, txs_per_block)
        );
    }
    if schedules.iter().all(|(_, schedule)| schedule.is_err()) {
        eyre::bail!("no schedule fits these parameters");
    }
    Ok(())
}

/// Writes the Gantt chart of the schedules that fit.
fn plot(
    path: &std::path::Path,
    config: &Config,
    schedules: &[(
        &str,
        Result<SlotSchedule, tandem_proto::time::TimetableError>,
    )],
) -> eyre::Result<()> {
    let fitting: Vec<&SlotSchedule> = schedules
        .iter()
        .filter_map(|(_, schedule)| schedule.as_ref().ok())
        .collect();
    if fitting.is_empty() {
        eyre::bail!("--plot: no schedule fits these parameters");
    }
    for (mode, schedule) in schedules {
        if let Err(err) = schedule {
            eprintln!("warning: --plot: {mode} is left out, its schedule does not fit: {err}");
        }
    }
    let p = &config.protocol;
    let human = |d| humantime::format_duration(d).to_string();
    // Each mode's own P: the fast profiles clamp it for one mode only.
    let propagation: Vec<String> = fitting
        .iter()
        .map(|s| {
            let p = s
                .checkpoint_proposal_receive_ideal
                .as_millis()
                .saturating_sub(s.checkpoint_proposal_send_time.as_millis());
            format!("{} {}", s.mode.as_str(), human(Duration::from_millis(p)))
        })
        .collect();
    let caption = format!(
        "one slot's schedule: S = {}, E = {}, D = {}, R = {}, P = {}",
        human(p.slot_duration()),
        human(p.l1_slot_duration()),
        human(p.block_duration()),
        human(p.reexecution_budget()),
        propagation.join(", "),
    );
    let svg = crate::timetable_plot::render_gantt(
        &fitting,
        p.slot_duration(),
        p.reexecution_budget(),
        &caption,
    )?;
    std::fs::write(path, svg)
        .map_err(|err| eyre::eyre!("--plot: writing {}: {err}", path.display()))
}

fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// The named deadlines of a schedule, in seconds relative to T.
fn deadlines(s: &SlotSchedule) -> Vec<(&'static str, f64)> {
    let rel = |at| seconds(s.relative_to_t(at));
    vec![
        ("build_frame_start", rel(s.build_frame_start)),
        ("first_subslot_start", rel(s.first_subslot_start)),
        ("start_deadline", rel(s.start_deadline)),
        ("last_block_build_time", rel(s.last_block_build_time)),
        (
            "checkpoint_proposal_send_time",
            rel(s.checkpoint_proposal_send_time),
        ),
        (
            "checkpoint_proposal_receive_ideal",
            rel(s.checkpoint_proposal_receive_ideal),
        ),
        (
            "checkpoint_proposal_receive_deadline",
            rel(s.checkpoint_proposal_receive_deadline),
        ),
        ("l1_publish_ideal_time", rel(s.l1_publish_ideal_time)),
        ("attestation_deadline", rel(s.attestation_deadline)),
    ]
}

fn schedule_json(s: &SlotSchedule) -> Value {
    let mut object = Map::new();
    object.insert(
        "max_blocks_per_checkpoint".into(),
        json!(s.max_blocks_per_checkpoint),
    );
    object.insert("dead_zone_seconds".into(), json!(s.dead_zone.as_secs_f64()));
    object.insert("building_share".into(), json!(s.building_share));
    for (name, value) in deadlines(s) {
        object.insert(name.into(), json!(value));
    }
    let blocks: Vec<f64> = s
        .block_build_deadlines
        .iter()
        .map(|at| seconds(s.relative_to_t(*at)))
        .collect();
    object.insert("block_build_deadlines".into(), json!(blocks));
    Value::Object(object)
}

fn render_table(
    config: &Config,
    schedules: &[(
        &str,
        Result<SlotSchedule, tandem_proto::time::TimetableError>,
    )],
    if_r_is_d: [Option<u32>; 2],
    txs_per_block: [Option<u32>; 2],
) -> String {
    use std::fmt::Write;
    let p = &config.protocol;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "slot S = {}, L1 slot E = {}, block D = {}, last-block re-execution R = {}, propagation P = {}; \
         times relative to the target slot start T (seconds)\n",
        humantime::format_duration(p.slot_duration()),
        humantime::format_duration(p.l1_slot_duration()),
        humantime::format_duration(p.block_duration()),
        humantime::format_duration(p.reexecution_budget()),
        humantime::format_duration(config.sequencer.p2p_propagation_time),
    );
    let _ = writeln!(
        out,
        "{:<38} {:>12} {:>14}",
        "", "pipelined", "non-pipelined"
    );
    for (_, schedule) in schedules {
        if let Err(err) = schedule {
            let _ = writeln!(out, "  error: {err}");
        }
    }
    let cell = |index: usize, f: &dyn Fn(&SlotSchedule) -> String| match &schedules[index].1 {
        Ok(schedule) => f(schedule),
        Err(_) => "-".to_string(),
    };
    let row = |out: &mut String, name: &str, f: &dyn Fn(&SlotSchedule) -> String| {
        let _ = writeln!(out, "{name:<38} {:>12} {:>14}", cell(0, f), cell(1, f));
    };
    row(&mut out, "max_blocks_per_checkpoint", &|s| {
        s.max_blocks_per_checkpoint.to_string()
    });
    let cell = |value: Option<u32>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    // Unset `sequencer.max_txs_per_block` is derived: the most a full checkpoint's body holds.
    let _ = writeln!(
        out,
        "{:<38} {:>12} {:>14}",
        "max_txs_per_block",
        cell(txs_per_block[0]),
        cell(txs_per_block[1])
    );
    if p.reexecution_budget() != p.block_duration() {
        let _ = writeln!(
            out,
            "{:<38} {:>12} {:>14}",
            "max_blocks_per_checkpoint if R = D",
            cell(if_r_is_d[0]),
            cell(if_r_is_d[1])
        );
    }
    row(&mut out, "dead_zone (s)", &|s| {
        format!("{:.1}", s.dead_zone.as_secs_f64())
    });
    row(&mut out, "building_share", &|s| {
        format!("{:.0}%", s.building_share * 100.0)
    });
    let names: Vec<&str> = schedules
        .iter()
        .find_map(|(_, s)| s.as_ref().ok())
        .map(|s| deadlines(s).into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default();
    for (index, name) in names.iter().enumerate() {
        row(&mut out, name, &|s| {
            format!("T{:+.1}", deadlines(s)[index].1)
        });
    }
    let most_blocks = schedules
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .map(|s| s.block_build_deadlines.len())
        .max()
        .unwrap_or(0);
    for k in 0..most_blocks {
        row(&mut out, &format!("block_build_deadline[{k}]"), &|s| {
            s.block_build_deadlines
                .get(k)
                .map(|at| format!("T{:+.1}", seconds(s.relative_to_t(*at))))
                .unwrap_or_else(|| "-".into())
        });
    }
    out
}
