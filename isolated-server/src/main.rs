//! `isolated-server`: parses arguments, loads config and hands over to the shared runtime with
//! this crate's catalog.

use std::process::ExitCode;

use clap::Parser;
use isolated_server::ISOLATED;
use isolated_server::cli::{self, Cli, Command};
use shared_server::startup;

fn main() -> ExitCode {
    let runtime = match startup::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("isolated-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let config = cli::load_config(&cli)?;
        match cli.command {
            Command::Serve => startup::serve(&config, &ISOLATED).await,
            _ => cli::run_admin(&cli, &config).await,
        }
    };
    startup::exit_code("isolated-server", result.await)
}
