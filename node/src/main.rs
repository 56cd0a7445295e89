//! `tandem`: the node binary. Parses the CLI, loads configuration, and runs the chosen command.

mod accounts;
mod bench;
mod binding;
mod cli;
mod client;
mod config;
mod datadir;
mod devnet;
mod keys;
mod l1_deploy;
mod logging;
mod metrics;
mod rpc;
mod run;
mod signals;
mod spam;
mod status;
mod timetable;
mod timetable_plot;

#[cfg(test)]
mod svg_check;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
