//! `tandem bench pipeline`: the same devnet profile run with the network pipelined, not
//! pipelined, and pipelined with R < D, each under the same steady tx load, measured on the
//! running nodes and printed side by side.

mod measure;
mod plot;
mod report;
mod stats;

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use eyre::{WrapErr, bail};
use serde_json::json;
use tandem_proto::time::{Clock, PipeliningMode, SystemClock};

use self::report::{Expected, RunReport};
use crate::{
    config::CliOverrides,
    devnet::{BenchNetwork, Launched, Profile},
    signals::StopSignals,
};

/// How each figure is measured, printed under the table and in `--json`.
pub(crate) const MEASURED_FROM: &[&str] = &[
    "window: --slots whole target slots (wall clock and the deployment's genesis time), starting 2 \
     slots after the first checkpoint landed; the load runs from the nodes' start (a checkpoint \
     without txs is not published) until the window's end",
    "blocks per checkpoint: blockCount of each checkpoint of the window on L1 (tandem_getCheckpoint \
     on validator-0); slots without a landed checkpoint are not averaged in but lower 'checkpoints landed'",
    "share of the slot spent building: time the validators' sequencers spent in waiting_for_txs, \
     creating_block and waiting_until_next_block (tandem_sequencer_state_seconds_sum on every \
     validator's /metrics, difference between the window's ends, summed) over the window's length; \
     the timetable row is max_blocks x D / S",
    "L1 inclusion delay: the including L1 block's timestamp (l1Timestamp) minus the start of the \
     checkpoint's target slot, per landed checkpoint (whole seconds: L1 timestamps are seconds)",
    "tx latency: from just before tandem_sendTx to the first block at validator-0's proposed tip that \
     holds the tx, and to that block being at or below the checkpointed tip (tips polled every 250 ms); \
     txs sent in the window count, seen up to 3 drain slots after it; txs never checkpointed are left out \
     (counted in 'txs not checkpointed at the end'), and so are txs dropped from tracking",
    "sustained TPS: txs in the blocks of the window's landed checkpoints over the window's length; \
     at most the offered --tx-rate (one request in flight at a time, spread over every node: \
     the offered rate drops if the nodes answer slowly, so below capacity this measures the load)",
    "discards / parent mismatches: tandem_sequencer_pipeline_discards_total and \
     tandem_sequencer_pipeline_parent_mismatch_total (all reasons), window difference summed over validators",
    "left out: L1 gas and fees, CPU and memory, attestation timing, anything of full nodes",
];

/// Benchmarks over a local devnet.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Run the same devnet pipelined, non-pipelined and pipelined with R < D under a steady tx
    /// load and print blocks per checkpoint, building share, L1 inclusion delay, tx latency,
    /// TPS and discards side by side, with each run's ratio to the non-pipelined one.
    ///
    /// Each run is a fresh devnet (anvil, the rollup deployed with that pipelining mode and
    /// re-execution budget R, validators as child processes) in its own directory under
    /// --data-dir (kept, for the nodes' logs). The figures come from the running nodes:
    /// JSON-RPC (tandem_getCheckpoint, tandem_getBlock, tandem_getL2Tips on validator-0), the
    /// validators' /metrics, and the load generator's own send times. A run takes about
    /// (slots + 6) slots plus start-up; the devnet profile with 30 slots takes ~15 minutes a run.
    ///
    /// How each figure is measured is printed under the table (and in `--json` under
    /// "measured_from").
    Pipeline(PipelineArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// Measured slots per run.
    #[arg(long, default_value_t = 30)]
    slots: u64,
    /// Protocol constants: `devnet` (24 s / 2 s / 2 s) or `ci` (12 s / 1 s / 1 s).
    #[arg(long, default_value = "devnet")]
    profile: String,
    /// Transfers per second of the load (the same in every run).
    #[arg(long, default_value_t = 20.0)]
    tx_rate: f64,
    /// Validators of each devnet.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// R of the third run (pipelined, R < D); default D/2.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "skip_short_r")]
    reexecution_budget: Option<Duration>,
    /// Skip the R < D run.
    #[arg(long)]
    skip_short_r: bool,
    /// Each run's devnet goes in a new directory under this one.
    #[arg(long, default_value = "./bench-data")]
    data_dir: PathBuf,
    /// The anvil binary (default: as `tandem devnet`).
    #[arg(long)]
    anvil: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw blocks per slot and L1 inclusion delay per slot of every run into this SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Most slots a run may measure (a day of the devnet profile).
const MAX_SLOTS: u64 = 3_600;

pub(crate) fn run(command: &BenchCommand) -> eyre::Result<()> {
    match command {
        BenchCommand::Pipeline(args) => pipeline(args),
    }
}

/// One run of the benchmark.
struct Variant {
    name: &'static str,
    mode: PipeliningMode,
    /// `None`: R = D.
    reexecution_budget: Option<Duration>,
}

fn variants(args: &PipelineArgs, profile: &Profile) -> eyre::Result<Vec<Variant>> {
    let d = Duration::from_millis(profile.block_ms);
    let mut out = vec![
        Variant {
            name: "pipelined",
            mode: PipeliningMode::Pipelined,
            reexecution_budget: None,
        },
        Variant {
            name: "non_pipelined",
            mode: PipeliningMode::NonPipelined,
            reexecution_budget: None,
        },
    ];
    if !args.skip_short_r {
        let r = args.reexecution_budget.unwrap_or(d / 2);
        if r.is_zero() || r >= d {
            bail!(
                "--reexecution-budget {}: the R < D run needs 0 < R < D = {}",
                humantime::format_duration(r),
                humantime::format_duration(d)
            );
        }
        out.push(Variant {
            name: "pipelined_short_r",
            mode: PipeliningMode::Pipelined,
            reexecution_budget: Some(r),
        });
    }
    Ok(out)
}

/// What the timetable gives the network of `profile` with `variant`'s schedule (the nodes'
/// default sequencer budgets, as the devnet's configs leave them).
fn expected(profile: &Profile, variant: &Variant) -> eyre::Result<Expected> {
    let mut config = crate::cli::load_config(None, &CliOverrides::default())?;
    let p = &mut config.protocol;
    p.slot_duration = Some(Duration::from_secs(profile.slot_secs));
    p.l1_slot_duration = Some(Duration::from_secs(profile.l1_slot_secs));
    p.block_duration = Some(Duration::from_millis(profile.block_ms));
    p.pipelining_mode = Some(variant.mode);
    p.last_block_reexecution_budget = variant.reexecution_budget;
    let table = config
        .timetable_for(config.windows()?)
        .wrap_err_with(|| format!("the {} timetable of profile {}", variant.name, profile.name))?;
    Ok(Expected {
        max_blocks_per_checkpoint: table.max_blocks_per_checkpoint(),
        building_share: table.building_share(),
    })
}

fn pipeline(args: &PipelineArgs) -> eyre::Result<()> {
    if !(1..=MAX_SLOTS).contains(&args.slots) {
        bail!("--slots {}: expected 1..={MAX_SLOTS}", args.slots);
    }
    if !(args.tx_rate > 0.0 && args.tx_rate <= crate::spam::MAX_RATE) {
        bail!(
            "--tx-rate {}: expected a rate in (0, {}] transfers per second",
            args.tx_rate,
            crate::spam::MAX_RATE
        );
    }
    crate::devnet::check_validators(args.validators)?;
    let profile = Profile::named(&args.profile)?;
    let variants = variants(args, &profile)?;
    let expectations = variants
        .iter()
        .map(|variant| expected(&profile, variant))
        .collect::<eyre::Result<Vec<_>>>()?;
    if let Some(plot) = &args.plot {
        if plot.extension().is_none_or(|ext| ext != "svg") {
            bail!("--plot {}: expected a .svg file", plot.display());
        }
        check_writable(plot)?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .wrap_err_with(|| format!("--data-dir: creating {}", args.data_dir.display()))?;
    // One thread: the devnet's children get SIGTERM when the thread that spawned them ends.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = SystemClock.now().as_secs();
    let context = json!({
        "profile": profile.name,
        "slot_seconds": profile.slot_secs,
        "l1_slot_seconds": profile.l1_slot_secs,
        "block_seconds": profile.block_ms as f64 / 1000.0,
        "slots": args.slots,
        "tx_rate": args.tx_rate,
        "validators": args.validators,
    });
    let reports = runtime.block_on(async {
        let mut signals = StopSignals::install()?;
        let mut reports = Vec::new();
        let mut kept: Vec<std::path::PathBuf> = Vec::new();
        for (variant, expected) in variants.iter().zip(expectations) {
            let network = BenchNetwork {
                profile: args.profile.clone(),
                data_dir: args.data_dir.join(format!("{started}-{}", variant.name)),
                validators: args.validators,
                fullnodes: 0,
                pipelining_mode: variant.mode,
                reexecution_budget: variant.reexecution_budget,
                anvil: args.anvil.clone(),
            };
            eprintln!(
                "run {}: {} slots of profile {} at {} tx/s in {}",
                variant.name,
                args.slots,
                profile.name,
                args.tx_rate,
                network.data_dir.display()
            );
            let data = one_run(&network, args, &mut signals)
                .await
                .wrap_err_with(|| {
                    let kept: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
                    if kept.is_empty() {
                        format!("run {}", variant.name)
                    } else {
                        format!(
                            "run {} (the finished runs are kept in {})",
                            variant.name,
                            kept.join(", ")
                        )
                    }
                })?;
            let r = variant
                .reexecution_budget
                .unwrap_or(Duration::from_millis(profile.block_ms));
            let report = RunReport::new(
                variant.name,
                variant.mode.as_str(),
                r.as_secs_f64(),
                expected,
                &data,
            );
            if !args.json {
                eprintln!("{}", report::render_table(std::slice::from_ref(&report)));
            }
            // Kept at once: a later run that fails does not lose this one.
            let path = network.data_dir.join("report.json");
            let json = report::to_json(context.clone(), std::slice::from_ref(&report));
            match serde_json::to_string_pretty(&json).map(|text| std::fs::write(&path, text)) {
                Ok(Ok(())) => kept.push(path),
                Ok(Err(err)) => eprintln!("warning: writing {}: {err}", path.display()),
                Err(err) => eprintln!("warning: {}: {err}", path.display()),
            }
            reports.push(report);
        }
        Ok::<_, eyre::Report>(reports)
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::to_json(context, &reports))?
        );
    } else {
        println!(
            "profile {} (S = {} s, E = {} s, D = {} ms), {} validators, {} slots per run, {} tx/s\n",
            profile.name,
            profile.slot_secs,
            profile.l1_slot_secs,
            profile.block_ms,
            args.validators,
            args.slots,
            args.tx_rate
        );
        print!("{}", report::render_table(&reports));
        println!("\nmeasured from:");
        for line in MEASURED_FROM {
            println!("  - {line}");
        }
    }
    // Last, after the results are out: a failed plot must not lose the runs.
    if let Some(path) = &args.plot {
        let written = plot::render_run(&reports, &plot_caption(args, &profile)).and_then(|svg| {
            std::fs::write(path, svg)
                .wrap_err_with(|| format!("--plot: writing {}", path.display()))
        });
        if let Err(error) = written {
            eprintln!("warning: no plot: {error:#}");
        }
    }
    Ok(())
}

/// Fails before any run if `--plot`'s file cannot be created (for example its directory is
/// missing), rather than after the minutes of measurement.
fn check_writable(plot: &std::path::Path) -> eyre::Result<()> {
    if plot.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(plot)
            .wrap_err_with(|| format!("--plot {}: cannot write it", plot.display()))?;
        return Ok(());
    }
    std::fs::write(plot, "")
        .wrap_err_with(|| format!("--plot {}: cannot create it", plot.display()))?;
    std::fs::remove_file(plot)
        .wrap_err_with(|| format!("--plot {}: removing the probe", plot.display()))
}

fn plot_caption(args: &PipelineArgs, profile: &Profile) -> String {
    format!(
        "tandem bench pipeline: profile {} (S={}s, E={}s, D={}ms), {} validators, {} tx/s",
        profile.name,
        profile.slot_secs,
        profile.l1_slot_secs,
        profile.block_ms,
        args.validators,
        args.tx_rate
    )
}

/// Launches one devnet, measures it, and stops it whatever happened (a signal included).
async fn one_run(
    network: &BenchNetwork,
    args: &PipelineArgs,
    signals: &mut StopSignals,
) -> eyre::Result<measure::RunData> {
    let mut launched = tokio::select! {
        biased;
        // Dropping a half-started devnet kills its children.
        () = signals.recv() => bail!("interrupted"),
        launched = Launched::start(network) => launched?,
    };
    let data = tokio::select! {
        biased;
        () = signals.recv() => Err(eyre::eyre!("interrupted")),
        data = measure::measure(&mut launched, &SystemClock, args.slots, args.tx_rate) => data,
    };
    launched.stop().await;
    data
}
