//! `isolated-server`: parses arguments, loads config, starts logging and hands over to the
//! shared runtime with this crate's catalog.

use std::process::ExitCode;

use clap::Parser;
use isolated_server::cli::{self, Cli, Command};
use shared_server::startup::Application;
use shared_server::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("isolated-server: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => {
            telemetry::init(config.log_json);
            serve(&config).await
        }
        _ => cli::run_admin(&cli, &config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isolated-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &common::config::Config) -> anyhow::Result<()> {
    let app = Application::build(config, &isolated_server::ISOLATED).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    app.run().await
}
