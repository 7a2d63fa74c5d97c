//! `sandbox`: runs the sandbox upstreams as a process for the demo, printing one JSON line
//! `{"base_url": …, "fixture": …}` on stdout once it is listening, then serving until SIGINT/SIGTERM.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use tests::sandbox::{Fixture, Sandbox};

/// Sandbox upstreams (Webflow, …) serving deterministic per-owner fixtures.
#[derive(Debug, Parser)]
#[command(name = "sandbox")]
struct Args {
    /// Address to listen on; port 0 picks a free port (reported in `base_url`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Comma-separated owners (tenant ids) to build fixtures for.
    #[arg(long, value_delimiter = ',', default_value = "acme,globex")]
    owners: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr: stdout carries only the one JSON line a caller waits for.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sandbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let owners = check_owners(&args.owners)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args.listen, &owners))
}

/// Owners end up in tokens, ids and `owner:<id>` markers, so they must be simple slugs.
fn check_owners(owners: &[String]) -> anyhow::Result<Vec<&str>> {
    let owners: Vec<&str> = owners
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    anyhow::ensure!(!owners.is_empty(), "--owners needs at least one owner");
    for owner in &owners {
        anyhow::ensure!(
            owner
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "owner {owner:?} must use only a-z, 0-9 and '-'"
        );
    }
    Ok(owners)
}

async fn serve(listen: SocketAddr, owners: &[&str]) -> anyhow::Result<()> {
    let sandbox = Sandbox::bind(listen, Fixture::new(owners)).await?;
    let ready = serde_json::json!({
        "base_url": sandbox.base_url(),
        "fixture": sandbox.fixture(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}").context("writing the ready line")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    tracing::info!(base_url = %sandbox.base_url(), "sandbox listening");

    shutdown_signal().await?;
    tracing::info!("sandbox stopping");
    drop(sandbox);
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
