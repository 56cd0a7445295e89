//! `tandem`: the node binary. Parses the CLI, loads configuration, and runs the chosen command.

mod binding;
mod cli;
mod config;
mod keys;
mod l1_deploy;
mod metrics;
mod run;
mod timetable;

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
