//! `shared-server`: parses arguments, loads config and hands over to the runtime in `common`
//! with this crate's spec.

use std::process::ExitCode;

use clap::Parser;
use common::runtime::server::startup;
use shared_server::SHARED;
use shared_server::cli::{self, Cli, Command};

/// With `--features dhat-heap`: every allocation counted (deploy/allocs.sh).
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> ExitCode {
    // Prints the totals to stderr and writes dhat-heap.json when it is dropped, at exit.
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let cli = Cli::parse();
    // Run from anywhere against any deployment: no config, data dir or admin token.
    if let Command::Doctor(args) = &cli.command {
        return common::runtime::ops::doctor::main(args);
    }
    let result = cli::load_config(&cli).and_then(|config| {
        startup::runtime(config.worker_threads)?.block_on(async {
            match cli.command {
                Command::Serve => startup::serve(&config, &SHARED).await,
                Command::Store(ref command) => {
                    cli::run_store(&config, cli.global.admin_url.as_deref(), command).await
                }
                _ => cli::run_admin(&cli, &config).await,
            }
        })
    });
    startup::exit_code("shared-server", result)
}
