//! `bench`: the release-mode benchmark. Starts `shared-server serve` as its own process on a
//! pre-populated data dir (1 and 10,000 tenants, 10 tokens each) on the sled store and, copied
//! there by `shared-server store migrate`, on PostgreSQL; drives real MCP `tools/call whoami`
//! requests over keep-alive HTTP/1.1 at several concurrencies, both stores in turn within each
//! round, and reports calls/s, p50/p99/p99.9 latency, the PostgreSQL/sled ratio, the server's
//! resident memory and CPU (and the database's), start-up time, the migration time and the
//! in-process token check cost, beside a bare axum JSON endpoint (`bench floor-server`, also its
//! own process) measured in the same run as the floor. Last, three replicas on one PostgreSQL
//! database: a token revoked through one, timed until the others refuse it.
//!
//! ```text
//! bench [run] [--duration-secs 5] [--tenants 1,10000] [--concurrency 1,16,64] [--rounds 3]
//!             [--stores sled,postgres] [--postgres postgres://…] [--replicas-revokes 30]
//!             [--json out.json]
//! bench floor-server [--listen 127.0.0.1:0]     # prints its bound address on stdout
//! bench load --url http://127.0.0.1:PORT/mcp --token T [--pid PID]   # any running endpoint
//! bench session [--latency-ms 150] [--webflow-per-min 60]   # an assistant's session, cache off/on
//! ```
//!
//! Run it under `taskset -c 1` (as `deploy/bench.sh` does): the servers are pinned to core 0
//! with `taskset -c 0` when `taskset` exists, so load generator and server never share a core
//! (`deploy/bench.sh` pins its throwaway PostgreSQL to core 0 as well: the database's work for a
//! call is the server's cost). The load generator is one thread with a hand-rolled HTTP/1.1
//! client (fixed request bytes, `Content-Length` or chunked responses) so that it costs far less
//! per call than the server.
//!
//! The modules: `args` (the command line); `run` (the whole run) with `populate` (data dirs, the
//! token check), `server` (server processes), `http` and `measure` (the load generator) and
//! `replicas` (revoke-to-refusal); `floor`, `load` and `session` (the other subcommands;
//! `session` replays an assistant's session against the sandbox, upstream read cache off and
//! on); `results`, `report` and `goals` (what a run finds, its printout, the targets it is held
//! to); `system` and `postgres` (`/proc`, `psql`).

mod args;
mod bare_rmcp;
mod compare;
mod floor;
mod goals;
mod http;
mod load;
mod measure;
mod otel;
mod populate;
mod postgres;
mod replicas;
mod report;
mod results;
mod run;
mod server;
mod session;
mod system;

use std::process::ExitCode;

use clap::{Args as _, FromArgMatches as _, Parser as _};

use crate::args::{Cli, Cmd, RunArgs};
use crate::floor::floor_server;
use crate::load::load;
use crate::populate::populate_kept;
use crate::run::run;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::FloorServer { listen }) => floor_server(listen),
        Some(Cmd::RmcpServer { listen }) => bare_rmcp::rmcp_server(listen),
        Some(Cmd::Compare(args)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(compare::compare(args))),
        Some(Cmd::Run(args)) => run_blocking(args),
        Some(Cmd::Otel(args)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(otel::otel(args))),
        Some(Cmd::Populate {
            dir,
            tenants,
            tokens_per_tenant,
            public_url,
            connector_url,
        }) => populate_kept(
            &dir,
            &public_url,
            &connector_url,
            tenants,
            tokens_per_tenant,
        ),
        Some(Cmd::Session(args)) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(session::session(args))),
        Some(Cmd::Load(args)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(load(args))),
        None => default_run_args().and_then(run_blocking),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bench` with no subcommand behaves as `bench run` with its defaults.
fn default_run_args() -> anyhow::Result<RunArgs> {
    let command = RunArgs::augment_args(clap::Command::new("run"));
    let matches = command.try_get_matches_from(["run"])?;
    Ok(RunArgs::from_arg_matches(&matches)?)
}

fn run_blocking(args: RunArgs) -> anyhow::Result<()> {
    // One thread: the load generator owns one core (see the module docs).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
