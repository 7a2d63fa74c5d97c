//! `shared-server`: parses arguments, loads config and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use shared_server::cli::{self, Cli, Command};
use shared_server::startup::{self, SHARED};

fn main() -> ExitCode {
    let runtime = match startup::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shared-server: cannot start the async runtime: {e}");
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
            Command::Serve => startup::serve(&config, &SHARED).await,
            _ => cli::run_admin(&cli, &config).await,
        }
    };
    startup::exit_code("shared-server", result.await)
}
