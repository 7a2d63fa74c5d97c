//! `isolated-server`: parses arguments, loads config and hands over to the runtime in `common` with
//! this crate's catalog.

use std::process::ExitCode;

use clap::Parser;
use common::runtime::server::startup;
use isolated_server::ISOLATED;
use isolated_server::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Run from anywhere against any deployment: no config, data dir or admin token.
    if let Command::Doctor(args) = &cli.command {
        return common::runtime::ops::doctor::main(args);
    }
    let result = cli::load_config(&cli).and_then(|config| {
        startup::runtime(config.worker_threads)?.block_on(async {
            match cli.command {
                Command::Serve => startup::serve(&config, &ISOLATED).await,
                Command::Store(ref command) => {
                    common::runtime::ops::store::run(
                        &config,
                        cli.global.admin_url.as_deref(),
                        ISOLATED.name,
                        command,
                    )
                    .await
                }
                _ => cli::run_admin(&cli, &config).await,
            }
        })
    });
    startup::exit_code("isolated-server", result)
}
