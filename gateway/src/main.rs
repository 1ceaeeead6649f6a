use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gateway::cli::Cli::parse();
    match gateway::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
