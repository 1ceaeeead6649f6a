use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = worker::cli::Cli::parse();
    match worker::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
