//! The command line: `bench [run]`, `floor-server`, `load`, `populate` and `session`, and their
//! options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "studio-mcp release benchmark (see README, \"Benchmark\")"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the whole benchmark (the default).
    Run(RunArgs),
    /// What trace export costs: export off, on at sampling 1.0 and at 0.01, side by side on
    /// one tenant (sled); uses `run`'s options that apply (`--concurrency`, `--rounds`, …).
    Otel(RunArgs),
    /// The shared server side by side with the axum floor and a minimal rmcp server, in one
    /// run: static and OAuth tokens, the fast path on and off, sled and (with `--postgres`)
    /// PostgreSQL; medians, ratios and goals (uses `run`'s options that apply).
    Compare(RunArgs),
    /// Serve a minimal rmcp 3.11 stateless server (`POST /mcp`, one `whoami` tool); prints its
    /// address on stdout.
    RmcpServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Serve the floor: a bare axum `POST /echo` JSON endpoint; prints its address on stdout.
    FloorServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Drive any running MCP endpoint with the same `whoami` load (e.g. another implementation,
    /// see deploy/bench-ts/); prints one row per concurrency.
    Load(LoadArgs),
    /// Replay an assistant's session of about fifty tool calls against the sandbox upstreams
    /// (realistic latency, Webflow's quota), upstream read cache off and on: upstream
    /// requests, quota waits, wall time, and whether the answers agree.
    Session(SessionArgs),
    /// Fill a data dir the way `run` does and keep it, for profiling a server by hand: writes
    /// `<dir>/tokens.txt` (one token a line) for `load --tokens-file`.
    Populate {
        /// The data dir to create (must not exist yet).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        #[arg(long, default_value_t = 10)]
        tokens_per_tenant: usize,
        /// The public URL the server will be started with (tokens are bound to it).
        #[arg(long)]
        public_url: String,
        /// The connector URL it will be started with (OAuth access tokens are bound to it).
        #[arg(long, default_value = "http://localhost:8789/mcp")]
        connector_url: String,
    },
}

#[derive(Clone, Debug, Args)]
pub struct SessionArgs {
    /// How long the sandbox takes to answer each upstream request.
    #[arg(long, default_value_t = 150)]
    pub latency_ms: u64,
    /// Webflow requests a minute per site token, as the server enforces it.
    #[arg(long, default_value_t = 60)]
    pub webflow_per_min: u64,
}

#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// The endpoint, `http://host:port/path`.
    #[arg(long)]
    pub url: String,
    /// Bearer token(s) to rotate through; repeatable.
    #[arg(long = "token", required_unless_present = "tokens_file")]
    pub tokens: Vec<String>,
    /// A file of bearer tokens, one a line (as `bench populate` writes).
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// The server's pid, for its CPU and resident memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Row label.
    #[arg(long, default_value = "external")]
    pub label: String,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Seconds measured per cell (after `--warmup-secs`).
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Seconds of load before each measurement.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Tenant counts, one fresh data dir each (and one server per store on it).
    #[arg(long, value_delimiter = ',', default_value = "1,10000")]
    pub tenants: Vec<usize>,
    /// Concurrent clients (one keep-alive connection each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Tokens issued per tenant.
    #[arg(long, default_value_t = 10)]
    pub tokens_per_tenant: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The `shared-server` binary (default: next to this executable).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Do not pin the servers to core 0.
    #[arg(long)]
    pub no_pin: bool,
    /// Skip the axum floor.
    #[arg(long)]
    pub no_floor: bool,
    /// `RUST_LOG` for the server (default: unset, the server's production default).
    #[arg(long)]
    pub server_rust_log: Option<String>,
    /// Extra environment for the server, `NAME=VALUE`, repeatable (experiments such as
    /// `MALLOC_ARENA_MAX=2`).
    #[arg(long, value_parser = parse_env_pair)]
    pub server_env: Vec<(String, String)>,
    /// Before each cell, wait up to this long for the machine to be quiet (other work below
    /// 10% of a core), for shared machines where builds come and go. 0: don't wait.
    #[arg(long, default_value_t = 0)]
    pub wait_quiet_secs: u64,
    /// Rounds of every cell. Within a round each cell is measured on every store back to back
    /// (sled then PostgreSQL, the next round the other way round), so the VM's drift over
    /// minutes, as large as the differences measured, hits both stores alike; a cell reports
    /// the median of its rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The stores to measure: `sled`, `postgres` (PostgreSQL needs `--postgres`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sled,postgres"
    )]
    pub stores: Vec<StoreKind>,
    /// A PostgreSQL cluster, `postgres://user@host:port/db`: the bench creates (and drops)
    /// databases of its own on it. `deploy/bench.sh` starts a throwaway one when not given one.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Revocations timed across three replicas on PostgreSQL (0: skip).
    #[arg(long, default_value_t = 30)]
    pub replicas_revokes: usize,
}

/// Where the shared server keeps its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sled,
    Postgres,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sled => "sled",
            StoreKind::Postgres => "postgres",
        }
    }
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}
