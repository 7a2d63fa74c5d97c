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
//! ```
//!
//! Run it under `taskset -c 1` (as `deploy/bench.sh` does): the servers are pinned to core 0
//! with `taskset -c 0` when `taskset` exists, so load generator and server never share a core
//! (`deploy/bench.sh` pins its throwaway PostgreSQL to core 0 as well: the database's work for a
//! call is the server's cost). The load generator is one thread with a hand-rolled HTTP/1.1
//! client (fixed request bytes, `Content-Length` or chunked responses) so that it costs far less
//! per call than the server.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use common::domain::{TenantId, WebflowId};
use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{IssueRequest, NewTenant};
use common::secrets::{MasterKey, write_private_file};
use common::store::{Store, StoreError};
use common::tenant::TenantSpec;
use common::token::TokenAuthority;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;
/// Token lifetime for the benchmark's tokens (a year, the server's default).
const TOKEN_TTL_SECS: u64 = 365 * 86_400;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "studio-mcp release benchmark (see README, \"Benchmark\")"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the whole benchmark (the default).
    Run(RunArgs),
    /// Serve the floor: a bare axum `POST /echo` JSON endpoint; prints its address on stdout.
    FloorServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Drive any running MCP endpoint with the same `whoami` load (e.g. another implementation,
    /// see deploy/bench-ts/); prints one row per concurrency.
    Load(LoadArgs),
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
struct LoadArgs {
    /// The endpoint, `http://host:port/path`.
    #[arg(long)]
    url: String,
    /// Bearer token(s) to rotate through; repeatable.
    #[arg(long = "token", required_unless_present = "tokens_file")]
    tokens: Vec<String>,
    /// A file of bearer tokens, one a line (as `bench populate` writes).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// The server's pid, for its CPU and resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Row label.
    #[arg(long, default_value = "external")]
    label: String,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
struct RunArgs {
    /// Seconds measured per cell (after `--warmup-secs`).
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Seconds of load before each measurement.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Tenant counts, one fresh data dir each (and one server per store on it).
    #[arg(long, value_delimiter = ',', default_value = "1,10000")]
    tenants: Vec<usize>,
    /// Concurrent clients (one keep-alive connection each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Tokens issued per tenant.
    #[arg(long, default_value_t = 10)]
    tokens_per_tenant: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The `shared-server` binary (default: next to this executable).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Do not pin the servers to core 0.
    #[arg(long)]
    no_pin: bool,
    /// Skip the axum floor.
    #[arg(long)]
    no_floor: bool,
    /// `RUST_LOG` for the server (default: unset, the server's production default).
    #[arg(long)]
    server_rust_log: Option<String>,
    /// Extra environment for the server, `NAME=VALUE`, repeatable (experiments such as
    /// `MALLOC_ARENA_MAX=2`).
    #[arg(long, value_parser = parse_env_pair)]
    server_env: Vec<(String, String)>,
    /// Before each cell, wait up to this long for the machine to be quiet (other work below
    /// 10% of a core), for shared machines where builds come and go. 0: don't wait.
    #[arg(long, default_value_t = 0)]
    wait_quiet_secs: u64,
    /// Rounds of every cell. Within a round each cell is measured on every store back to back
    /// (sled then PostgreSQL, the next round the other way round), so the VM's drift over
    /// minutes, as large as the differences measured, hits both stores alike; a cell reports
    /// the median of its rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The stores to measure: `sled`, `postgres` (PostgreSQL needs `--postgres`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sled,postgres"
    )]
    stores: Vec<StoreKind>,
    /// A PostgreSQL cluster, `postgres://user@host:port/db`: the bench creates (and drops)
    /// databases of its own on it. `deploy/bench.sh` starts a throwaway one when not given one.
    #[arg(long)]
    postgres: Option<String>,
    /// Revocations timed across three replicas on PostgreSQL (0: skip).
    #[arg(long, default_value_t = 30)]
    replicas_revokes: usize,
}

/// Where the shared server keeps its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    Sled,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::FloorServer { listen }) => floor_server(listen),
        Some(Cmd::Run(args)) => run_blocking(args),
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

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Clone, Debug, Serialize)]
struct Cell {
    target: String,
    /// `sled` or `postgres` (`-` for the floor and `bench load`).
    store: String,
    /// Which round of the run (0 for the floor and `bench load`).
    round: usize,
    tenants: usize,
    tokens: usize,
    concurrency: usize,
    calls_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    calls: u64,
    errors: u64,
    /// Server resident memory after the cell (`VmRSS`), MiB.
    rss_mb: f64,
    /// Server peak resident memory so far (`VmHWM`), MiB.
    hwm_mb: f64,
    /// Server CPU time during the measured window, % of one core.
    server_cpu_pct: f64,
    /// PostgreSQL's CPU time (postmaster and its children) during the window, % of one core;
    /// NaN without a local cluster.
    db_cpu_pct: f64,
    /// Load generator CPU time during the measured window, % of one core.
    loadgen_cpu_pct: f64,
    /// CPU used by everything else on the machine during the window (other processes, and
    /// interrupt work not charged to any of the above), % of one core. Above ~10% the figures
    /// are disturbed: rerun on a quiet machine.
    other_cpu_pct: f64,
}

/// One cell over every round: medians, and PostgreSQL against sled.
#[derive(Clone, Debug, Serialize)]
struct Summary {
    store: StoreKind,
    tenants: usize,
    concurrency: usize,
    /// calls/s of each round, in order.
    rounds: Vec<f64>,
    calls_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    /// This cell's calls/s over sled's (PostgreSQL rows, when sled was measured too).
    ratio_to_sled: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
struct Fleet {
    store: StoreKind,
    tenants: usize,
    tokens: usize,
    /// Offline population of the sled store (tenants + token issue), seconds.
    populate_secs: f64,
    /// `shared-server store migrate --to` of that store into a fresh database, seconds
    /// (PostgreSQL only).
    migrate_secs: Option<f64>,
    /// Spawn to first `GET /healthz` 200, milliseconds (median of three starts).
    startup_ms: f64,
    /// Every start, milliseconds, in order.
    startups_ms: Vec<f64>,
    /// Server resident memory after start-up, before any load, MiB.
    idle_rss_mb: f64,
    /// Server resident memory after every round (`VmRSS`), MiB.
    loaded_rss_mb: f64,
    /// Server peak resident memory (`VmHWM`) after every round, MiB.
    hwm_mb: f64,
    /// Mean in-process `TokenAuthority::authenticate` over every token of the sled store, µs
    /// (the same in-memory index serves both stores).
    token_check_us: f64,
    /// What the server logged (stderr) over the whole run, bytes per MCP call.
    log_bytes_per_call: f64,
}

/// p50 / p95 / max of a few samples, milliseconds.
#[derive(Clone, Debug, Serialize)]
struct Spread {
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

impl Spread {
    fn of(samples: &[Duration]) -> Spread {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if ms.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
            ms[rank - 1]
        };
        Spread {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        }
    }
}

/// Revoke-to-refusal across three replicas on one PostgreSQL database.
#[derive(Debug, Serialize)]
struct Revocations {
    revokes: usize,
    /// Sending the revoke to replica A's admin API until it answers.
    admin_returns: Spread,
    /// Sending the revoke until each other replica's first refusal, by replica name.
    refused: Vec<(String, Spread)>,
    /// Requests sent right after the revoke returned that were not refused.
    not_refused_first: usize,
    /// Requests sent right after revoke returned (one per revoke per other replica).
    first_requests: usize,
    /// `common::runtime::ops::drill::revoke` through A across all three, once: its revoke-to-refusal
    /// (ms) and the most requests any replica needed.
    drill_ms: f64,
    drill_attempts: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    duration_secs: u64,
    warmup_secs: u64,
    rounds: usize,
    pinned: bool,
    cores: usize,
    /// The CPUs PostgreSQL's postmaster may run on, when the cluster is local.
    postgres_cpus: Option<String>,
    fleets: Vec<Fleet>,
    floor_startup_ms: Option<f64>,
    cells: Vec<Cell>,
    summaries: Vec<Summary>,
    revocations: Option<Revocations>,
    goals: Vec<Goal>,
}

#[derive(Debug, Serialize)]
struct Goal {
    goal: String,
    measured: String,
    met: bool,
}

// ---------------------------------------------------------------------------------------------
// The run

/// Starts timed per server; the median is reported.
const STARTS: usize = 3;

/// One server under load in the rounds: a store, a tenant count.
struct Running {
    store: StoreKind,
    tenants: usize,
    server: Server,
    target: Target,
    tokens: Arc<Vec<String>>,
    log: PathBuf,
    fleet: usize,
}

async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("shared-server"),
    };
    if !server_bin.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p shared-server --bin shared-server)",
            server_bin.display()
        );
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive numbers");
    }
    if args.tenants.is_empty() || args.tenants.contains(&0) || args.tokens_per_tenant == 0 {
        bail!("--tenants and --tokens-per-tenant need positive numbers");
    }
    if args.rounds == 0 {
        bail!("--rounds needs at least 1");
    }
    args.stores.sort();
    args.stores.dedup();
    let uses_pg = args.stores.contains(&StoreKind::Postgres) || args.replicas_revokes > 0;
    let cluster = match (&args.postgres, uses_pg) {
        (Some(url), true) => Some(Cluster::connect(url)?),
        (None, true) => bail!(
            "the postgres store and the replica revocations need --postgres URL (a cluster the \
             bench may create databases on; deploy/bench.sh starts one), or pass --stores sled \
             --replicas-revokes 0"
        ),
        (_, false) => None,
    };
    let cores = online_cpus();
    let pin = !args.no_pin && cores >= 2 && which("taskset");
    let ticks = clock_ticks();
    let postgres_cpus = cluster
        .as_ref()
        .and_then(|c| c.postmaster)
        .and_then(|pid| cpus_of(&format!("/proc/{pid}/status")));
    eprintln!(
        "bench: {} s per cell after {} s warm-up, {} round(s), stores {}; servers {}; load \
         generator on CPUs {}{}",
        args.duration_secs,
        args.warmup_secs,
        args.rounds,
        args.stores
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        if pin {
            "pinned to core 0"
        } else {
            "not pinned"
        },
        cpus_of("/proc/self/status").unwrap_or_else(|| "?".into()),
        match (&cluster, &postgres_cpus) {
            (Some(_), Some(cpus)) => format!("; PostgreSQL on CPUs {cpus}"),
            (Some(_), None) => "; PostgreSQL not local (its CPU is not measured)".into(),
            (None, _) => String::new(),
        }
    );

    let mut report = Report {
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        rounds: args.rounds,
        pinned: pin,
        cores,
        postgres_cpus,
        fleets: Vec::new(),
        floor_startup_ms: None,
        cells: Vec::new(),
        summaries: Vec::new(),
        revocations: None,
        goals: Vec::new(),
    };
    let pids = |server: &Server| Pids {
        server: Some(server.pid()),
        db: cluster.as_ref().and_then(|c| c.postmaster),
    };

    // Every server stays up (idle) through every round; the data dirs and databases until
    // the end.
    let mut dirs = Vec::new();
    let mut databases = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    let outcome: anyhow::Result<()> = async {
        for &tenants in &args.tenants {
            let dir = tempfile::Builder::new()
                .prefix("studio-mcp-bench-")
                .tempdir()?;
            let mcp_port = free_port()?;
            let public_url = format!("http://127.0.0.1:{mcp_port}");
            eprintln!(
                "bench: populating {tenants} tenants × {} tokens in {} …",
                args.tokens_per_tenant,
                dir.path().display()
            );
            let started = Instant::now();
            let tokens = populate(dir.path(), &public_url, tenants, args.tokens_per_tenant)?;
            let populate_secs = started.elapsed().as_secs_f64();
            eprintln!(
                "bench: populated {} tokens in {populate_secs:.1} s; measuring the token check …",
                tokens.len()
            );
            let token_check_us = token_check(dir.path(), &public_url, &tokens)?;
            let tokens = Arc::new(tokens);

            // PostgreSQL gets a copy of the sled store, made while nothing has it open.
            let mut migrated = None;
            if args.stores.contains(&StoreKind::Postgres) {
                let cluster = cluster.as_ref().context("no PostgreSQL cluster")?;
                let name = format!("bench_{tenants}_{}", std::process::id());
                let database = cluster.create_database(&name)?;
                eprintln!("bench: store migrate of {tenants} tenants into {name} …");
                databases.push(name);
                let mut command = server_command(&server_bin, pin, &args);
                command
                    .args(["store", "migrate", "--to", &database])
                    .env("STUDIO_MCP_DATA_DIR", dir.path())
                    .env("STUDIO_MCP_PUBLIC_URL", &public_url);
                let secs = migrate(&mut command).await?;
                eprintln!("bench: migrated in {secs:.2} s");
                migrated = Some((database, secs));
            }

            for &store in &args.stores {
                // Every server of a tenant count serves the same public URL (the tokens'
                // audience); the PostgreSQL one, on its own port, is sent that URL's Host.
                let port = match store {
                    StoreKind::Sled => mcp_port,
                    StoreKind::Postgres => free_port()?,
                };
                let mut command = server_command(&server_bin, pin, &args);
                command
                    .env("STUDIO_MCP_DATA_DIR", dir.path())
                    .env("STUDIO_MCP_PUBLIC_URL", &public_url);
                let mut migrate_secs = None;
                if store == StoreKind::Postgres {
                    let (database, secs) = migrated.as_ref().context("not migrated")?;
                    migrate_secs = Some(*secs);
                    command
                        .env("STUDIO_MCP_STORE", database)
                        .env("STUDIO_MCP_REPLICA_NAME", format!("bench-{tenants}"));
                }
                let admin_port = free_port()?;
                command
                    .arg("serve")
                    .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
                    .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"));
                let target = Target {
                    addr: ([127, 0, 0, 1], port).into(),
                    host: format!("127.0.0.1:{mcp_port}"),
                    path: "/mcp".to_owned(),
                };
                let log = dir.path().join(format!("server-{}.log", store.name()));
                let probe = Probe::Health(target.addr, target.host.clone());
                // Start-up is timed over three starts (the first two stopped again) and the
                // median reported, like any short timing: a single start can catch the disk
                // still writing back what populate wrote.
                let mut starts = Vec::with_capacity(STARTS);
                for _ in 1..STARTS {
                    let (server, startup) = Server::start(&mut command, &log, &probe).await?;
                    server.stop().await;
                    starts.push(startup);
                }
                let (server, startup) = Server::start(&mut command, &log, &probe).await?;
                starts.push(startup);
                let startups_ms: Vec<f64> = starts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
                starts.sort();
                let startup = starts[STARTS / 2];
                let idle = memory(server.pid());
                eprintln!(
                    "bench: shared-server on {} up in {:.1} ms (median of {STARTS} starts: {}), \
                     {:.1} MiB resident",
                    store.name(),
                    startup.as_secs_f64() * 1e3,
                    startups_ms
                        .iter()
                        .map(|ms| format!("{ms:.1}"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    idle.rss_mb
                );
                check_first_call(&target, &tokens, "\"tenant\"").await?;
                report.fleets.push(Fleet {
                    store,
                    tenants,
                    tokens: tokens.len(),
                    populate_secs,
                    migrate_secs,
                    startup_ms: startup.as_secs_f64() * 1e3,
                    startups_ms,
                    idle_rss_mb: idle.rss_mb,
                    loaded_rss_mb: f64::NAN,
                    hwm_mb: f64::NAN,
                    token_check_us,
                    log_bytes_per_call: f64::NAN,
                });
                running.push(Running {
                    store,
                    tenants,
                    server,
                    target,
                    tokens: tokens.clone(),
                    log,
                    fleet: report.fleets.len() - 1,
                });
            }
            dirs.push(dir);
        }

        // The rounds: every cell on every store back to back, the order of the stores turned
        // round each round (sled, postgres, then postgres, sled), so that a drift over the
        // run weighs on both alike.
        for round in 1..=args.rounds {
            eprintln!("bench: round {round} of {}", args.rounds);
            for &tenants in &args.tenants {
                for &concurrency in &args.concurrency {
                    let mut order: Vec<&Running> =
                        running.iter().filter(|r| r.tenants == tenants).collect();
                    if round % 2 == 0 {
                        order.reverse();
                    }
                    for r in order {
                        let mut cell = measure(
                            &format!("whoami {}", r.store.name()),
                            &r.target,
                            &r.tokens,
                            pids(&r.server),
                            concurrency,
                            Window::from(&args),
                            ticks,
                            tenants,
                        )
                        .await
                        .with_context(|| {
                            format!(
                                "{} store, {tenants} tenants, {concurrency} clients",
                                r.store.name()
                            )
                        })?;
                        cell.store = r.store.name().to_owned();
                        cell.round = round;
                        eprintln!("{}", row(&cell));
                        report.cells.push(cell);
                    }
                }
            }
        }
        Ok(())
    }
    .await;

    for r in running {
        let after = memory(r.server.pid());
        let calls: u64 = report
            .cells
            .iter()
            .filter(|c| c.tenants == r.tenants && c.store == r.store.name())
            .map(|c| c.calls)
            .sum();
        r.server.stop().await;
        let log_bytes = std::fs::metadata(&r.log).map_or(0, |m| m.len());
        if let Ok(text) = std::fs::read_to_string(&r.log)
            && text.contains("dropped")
        {
            eprintln!(
                "bench: warning: the {} server with {} tenants dropped audit records (see {})",
                r.store.name(),
                r.tenants,
                r.log.display()
            );
        }
        if let Some(f) = report.fleets.get_mut(r.fleet) {
            f.loaded_rss_mb = after.rss_mb;
            f.hwm_mb = after.hwm_mb;
            f.log_bytes_per_call = log_bytes as f64 / calls.max(1) as f64;
        }
    }
    if let Some(cluster) = &cluster {
        for name in &databases {
            cluster.drop_database(name);
        }
    }
    for dir in dirs {
        if let Err(e) = dir.close() {
            eprintln!("bench: could not remove a temp data dir: {e}");
        }
    }
    outcome?;
    report.summaries = summarise(&report.cells, &args);

    if !args.no_floor {
        let exe = std::env::current_exe()?;
        let mut command = pinned_command(&exe, pin);
        command
            .args(["floor-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped());
        let log_dir = tempfile::tempdir()?;
        let (server, startup) = Server::start(
            &mut command,
            &log_dir.path().join("floor.log"),
            &Probe::Printed,
        )
        .await?;
        report.floor_startup_ms = Some(startup.as_secs_f64() * 1e3);
        let addr = server.addr;
        let target = Target {
            addr,
            host: addr.to_string(),
            path: "/echo".to_owned(),
        };
        let tokens = Arc::new(vec!["floor".to_owned()]);
        for &concurrency in &args.concurrency {
            let cell = measure(
                "axum floor (/echo)",
                &target,
                &tokens,
                pids(&server),
                concurrency,
                Window::from(&args),
                ticks,
                0,
            )
            .await
            .with_context(|| format!("floor, {concurrency} clients"))?;
            eprintln!("{}", row(&cell));
            report.cells.push(cell);
        }
        server.stop().await;
    }

    if let Some(cluster) = &cluster
        && args.replicas_revokes > 0
    {
        report.revocations = Some(revocations(&args, &server_bin, pin, cluster).await?);
    }

    report.goals = goals(&report);
    print_report(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Runs `shared-server store migrate` as `command` says; the seconds it took. sled lets go of
/// the bench's own handle a few milliseconds late: a run refused for that is retried, and only
/// the run that went through is timed.
async fn migrate(command: &mut Command) -> anyhow::Result<f64> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let out = command
            .stdin(Stdio::null())
            .output()
            .context("cannot run shared-server store migrate")?;
        let secs = started.elapsed().as_secs_f64();
        if out.status.success() {
            return Ok(secs);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if attempt < 100 && stderr.contains("is locked by another") {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        bail!(
            "shared-server store migrate failed ({}):\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Each (store, tenants, clients) over its rounds: the medians, and PostgreSQL over sled.
fn summarise(cells: &[Cell], args: &RunArgs) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for &tenants in &args.tenants {
        for &concurrency in &args.concurrency {
            for &store in &args.stores {
                let rounds: Vec<&Cell> = cells
                    .iter()
                    .filter(|c| {
                        c.store == store.name()
                            && c.tenants == tenants
                            && c.concurrency == concurrency
                    })
                    .collect();
                if rounds.is_empty() {
                    continue;
                }
                let of = |f: fn(&Cell) -> f64| median(rounds.iter().map(|c| f(c)).collect());
                out.push(Summary {
                    store,
                    tenants,
                    concurrency,
                    rounds: rounds.iter().map(|c| c.calls_per_sec).collect(),
                    calls_per_sec: of(|c| c.calls_per_sec),
                    p50_ms: of(|c| c.p50_ms),
                    p99_ms: of(|c| c.p99_ms),
                    p999_ms: of(|c| c.p999_ms),
                    errors: rounds.iter().map(|c| c.errors).sum(),
                    ratio_to_sled: None,
                });
            }
        }
    }
    let sled: Vec<(usize, usize, f64)> = out
        .iter()
        .filter(|s| s.store == StoreKind::Sled)
        .map(|s| (s.tenants, s.concurrency, s.calls_per_sec))
        .collect();
    for s in out.iter_mut().filter(|s| s.store != StoreKind::Sled) {
        s.ratio_to_sled = sled
            .iter()
            .find(|(t, c, _)| *t == s.tenants && *c == s.concurrency)
            .map(|(_, _, base)| s.calls_per_sec / base);
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

// ---------------------------------------------------------------------------------------------
// Replicas: revoke-to-refusal

/// The replicas' public URL's host: the tokens' audience, and the `Host` every request names.
const REPLICA_HOST: &str = "studio-mcp.bench";
/// The tenant the revocations are made for.
const REVOKE_TENANT: &str = "bench-revoke";

struct Replica {
    name: &'static str,
    server: Server,
    target: Target,
    admin: AdminClient,
}

/// Three replicas (a, b, c) on one fresh database with the same key files and public URL; a
/// token issued through A, proven on B and C, revoked through A, and the very next request to
/// B and to C (sent the moment the revoke returns) timed until it is refused; `revokes` times.
async fn revocations(
    args: &RunArgs,
    server_bin: &Path,
    pin: bool,
    cluster: &Cluster,
) -> anyhow::Result<Revocations> {
    common::upstream::install_crypto_provider();
    let keys = tempfile::Builder::new()
        .prefix("studio-mcp-bench-replicas-")
        .tempdir()?;
    let hex32 = || hex::encode(rand::random::<[u8; 32]>());
    write_private_file(&keys.path().join("signing.key"), hex32().as_bytes())?;
    write_private_file(&keys.path().join("master.key"), hex32().as_bytes())?;
    let admin_token = format!("adm_{}", hex32());
    write_private_file(&keys.path().join("admin-token"), admin_token.as_bytes())?;
    let name = format!("bench_replicas_{}", std::process::id());
    let database = cluster.create_database(&name)?;

    let mut replicas = Vec::new();
    let outcome = async {
        for name in ["a", "b", "c"] {
            let (port, admin_port) = (free_port()?, free_port()?);
            let data = keys.path().join(name);
            std::fs::create_dir_all(&data)?;
            let mut command = server_command(server_bin, pin, args);
            command
                .arg("serve")
                .env("STUDIO_MCP_STORE", &database)
                .env("STUDIO_MCP_REPLICA_NAME", name)
                .env("STUDIO_MCP_DATA_DIR", &data)
                .env(
                    "STUDIO_MCP_SIGNING_KEY_FILE",
                    keys.path().join("signing.key"),
                )
                .env("STUDIO_MCP_MASTER_KEY_FILE", keys.path().join("master.key"))
                .env(
                    "STUDIO_MCP_ADMIN_TOKEN_FILE",
                    keys.path().join("admin-token"),
                )
                .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
                .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
                .env("STUDIO_MCP_PUBLIC_URL", format!("http://{REPLICA_HOST}"));
            let target = Target {
                addr: ([127, 0, 0, 1], port).into(),
                host: REPLICA_HOST.to_owned(),
                path: "/mcp".to_owned(),
            };
            let log = keys.path().join(format!("{name}.log"));
            let probe = Probe::Health(target.addr, REPLICA_HOST.to_owned());
            let (server, startup) = Server::start(&mut command, &log, &probe).await?;
            eprintln!(
                "bench: replica {name} on PostgreSQL up in {:.1} ms",
                startup.as_secs_f64() * 1e3
            );
            let admin = AdminClient::new(
                format!("http://127.0.0.1:{admin_port}"),
                admin_token.clone(),
            )?;
            replicas.push(Replica {
                name,
                server,
                target,
                admin,
            });
        }
        let [a, b, c] = replicas.as_slice() else {
            bail!("three replicas expected");
        };
        a.admin
            .add_tenant(&NewTenant {
                id: REVOKE_TENANT.into(),
                spec: TenantSpec {
                    name: "Bench revocations".into(),
                    webflow_sites: vec![WebflowId::parse("site", &format!("{:024x}", 1))?],
                    ..Default::default()
                },
            })
            .await?;
        revoke_rounds(a, [b, c], args.replicas_revokes).await
    }
    .await;
    for replica in replicas {
        replica.server.stop().await;
    }
    cluster.drop_database(&name);
    outcome
}

async fn revoke_rounds(
    a: &Replica,
    others: [&Replica; 2],
    revokes: usize,
) -> anyhow::Result<Revocations> {
    let [b, c] = others;
    let mut conn_b = Conn::connect(b.target.addr).await?;
    let mut conn_c = Conn::connect(c.target.addr).await?;
    let mut admin_returns = Vec::with_capacity(revokes);
    let mut refused = [Vec::with_capacity(revokes), Vec::with_capacity(revokes)];
    let mut not_refused_first = 0;
    eprintln!(
        "bench: {revokes} revocations through replica {}, refusals timed on {} and {}",
        a.name, b.name, c.name
    );
    for _ in 0..revokes {
        let issued = a
            .admin
            .issue_token(
                REVOKE_TENANT,
                &IssueRequest {
                    label: Some("bench revoke".into()),
                    ttl_days: Some(1),
                },
            )
            .await
            .context("issuing a token through replica a")?;
        // The token works on B and C first (which also leaves each connection warm).
        accepted(b, &mut conn_b, &issued.token).await?;
        accepted(c, &mut conn_c, &issued.token).await?;
        let sent = Instant::now();
        a.admin
            .revoke(&issued.record.id)
            .await
            .context("revoking through replica a")?;
        admin_returns.push(sent.elapsed());
        // The next request to B and to C, both at once, the moment the revoke returned.
        let (on_b, on_c) = tokio::join!(
            first_refusal(b, &mut conn_b, &issued.token, sent),
            first_refusal(c, &mut conn_c, &issued.token, sent)
        );
        for (samples, (elapsed, attempts)) in refused.iter_mut().zip([on_b?, on_c?]) {
            samples.push(elapsed);
            if attempts > 1 {
                not_refused_first += 1;
            }
        }
    }
    let endpoints: Vec<String> = [a, b, c]
        .iter()
        .map(|r| format!("http://{}{}", r.target.addr, r.target.path))
        .collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let drill = common::runtime::ops::drill::revoke(
        &a.admin,
        &endpoints,
        REVOKE_TENANT,
        Some(REPLICA_HOST),
    )
    .await
    .context("the revocation drill across the replicas")?;
    let [on_b, on_c] = refused;
    Ok(Revocations {
        revokes,
        admin_returns: Spread::of(&admin_returns),
        refused: vec![
            (b.name.to_owned(), Spread::of(&on_b)),
            (c.name.to_owned(), Spread::of(&on_c)),
        ],
        not_refused_first,
        first_requests: revokes * 2,
        drill_ms: drill.revoke_to_refusal.as_secs_f64() * 1e3,
        drill_attempts: drill.attempts_until_refused,
    })
}

/// One `whoami` with `token` on `replica`, which must succeed.
async fn accepted(replica: &Replica, conn: &mut Conn, token: &str) -> anyhow::Result<()> {
    let mut request = Vec::new();
    replica.target.request(&mut request, token);
    let response = conn.call(&request).await?;
    if response.close {
        *conn = Conn::connect(replica.target.addr).await?;
    }
    if response.status != 200 || response.error {
        bail!(
            "a fresh token was refused by replica {} (HTTP {})",
            replica.name,
            response.status
        );
    }
    Ok(())
}

/// Sends `token` to `replica` until it is refused (401); the time since `sent` and the
/// requests it took (1 is what must happen).
async fn first_refusal(
    replica: &Replica,
    conn: &mut Conn,
    token: &str,
    sent: Instant,
) -> anyhow::Result<(Duration, u32)> {
    let mut request = Vec::new();
    replica.target.request(&mut request, token);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = conn.call(&request).await?;
        let elapsed = sent.elapsed();
        if response.close {
            *conn = Conn::connect(replica.target.addr).await?;
        }
        if response.status == 401 {
            return Ok((elapsed, attempts));
        }
        if attempts >= 500 {
            bail!(
                "replica {} still accepted a revoked token after {attempts} requests",
                replica.name
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `bench populate`: a filled data dir kept for profiling by hand, with its tokens in files.
fn populate_kept(
    dir: &Path,
    public_url: &str,
    connector_url: &str,
    tenants: usize,
    per_tenant: usize,
) -> anyhow::Result<()> {
    if dir.exists() {
        bail!("{} exists: populate wants a new dir", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let tokens = populate(dir, public_url, tenants, per_tenant)?;
    let path = dir.join("tokens.txt");
    write_private_file(&path, (tokens.join("\n") + "\n").as_bytes())?;
    let oauth = populate_oauth(dir, connector_url, tenants)?;
    write_private_file(
        &dir.join("oauth-tokens.txt"),
        (oauth.join("\n") + "\n").as_bytes(),
    )?;
    eprintln!(
        "bench: {} OAuth access tokens (one person and grant a tenant, valid a day) in {}; load them on {connector_url}",
        oauth.len(),
        dir.join("oauth-tokens.txt").display()
    );
    eprintln!(
        "bench: {} tokens in {}; serve with STUDIO_MCP_DATA_DIR={} STUDIO_MCP_PUBLIC_URL={public_url} STUDIO_MCP_CONNECTOR_URL={connector_url}",
        tokens.len(),
        path.display(),
        dir.display()
    );
    Ok(())
}

/// `bench load`: the same client against an endpoint someone else started.
async fn load(mut args: LoadArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        args.tokens
            .extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .with_context(|| format!("cannot resolve {authority}"))?;
    let target = Target {
        addr,
        host: authority.to_owned(),
        path: path.to_owned(),
    };
    check_first_call(&target, &args.tokens, "\"result\"").await?;
    let tokens = Arc::new(args.tokens.clone());
    let window = Window {
        warmup_secs: args.warmup_secs,
        duration_secs: args.duration_secs,
        wait_quiet_secs: 0,
    };
    let ticks = clock_ticks();
    let mut cells = Vec::new();
    println!("{}", header());
    for &concurrency in &args.concurrency {
        let cell = measure(
            &args.label,
            &target,
            &tokens,
            Pids {
                server: args.pid,
                db: None,
            },
            concurrency,
            window,
            ticks,
            0,
        )
        .await?;
        println!("{}", row(&cell));
        cells.push(cell);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&cells)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Fills `dir` the way a provisioned server's data dir looks: store, master key, signing key,
/// admin token; `tenants` tenants with one dummy Webflow site each and `per_tenant` tokens each.
/// Returns the tokens interleaved (token 0 of every tenant, then token 1 …), so walking the list
/// in order touches every tenant before any repeats.
fn populate(
    dir: &Path,
    public_url: &str,
    tenants: usize,
    per_tenant: usize,
) -> anyhow::Result<Vec<String>> {
    let store = open_store(&dir.join("store"))?;
    MasterKey::load_or_generate(&dir.join("master.key"))?;
    let authority = TokenAuthority::load_or_generate(&dir.join("signing.key"), public_url)?;
    write_private_file(
        &dir.join("admin-token"),
        b"adm_0000000000000000000000000000000000000000000000000000000000000000",
    )?;
    let now = common::now_unix();
    let mut by_tenant: Vec<Vec<String>> = Vec::with_capacity(tenants);
    let progress = Instant::now();
    for i in 0..tenants {
        let id = TenantId::parse(&format!("bench-{i:05}"))?;
        let site = WebflowId::parse("site", &format!("{:024x}", i + 1))?;
        let tenant = TenantSpec {
            name: format!("Bench tenant {i}"),
            webflow_sites: vec![site],
            ..Default::default()
        }
        .into_tenant(id.clone(), now)
        .map_err(|e| anyhow!(e))?;
        store.add_tenant(tenant)?;
        let mut tokens = Vec::with_capacity(per_tenant);
        for j in 0..per_tenant {
            let issued =
                authority.issue(&store, &id, &format!("bench {j}"), TOKEN_TTL_SECS, now)?;
            tokens.push(issued.token.expose_secret().to_owned());
        }
        by_tenant.push(tokens);
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "bench:   {} tenants after {:.1} s",
                i + 1,
                progress.elapsed().as_secs_f64()
            );
        }
    }
    store.flush()?;
    drop(store);
    let mut tokens = Vec::with_capacity(tenants * per_tenant);
    for j in 0..per_tenant {
        for tenant in &by_tenant {
            if let Some(t) = tenant.get(j) {
                tokens.push(t.clone());
            }
        }
    }
    Ok(tokens)
}

/// One person and one OAuth grant a tenant, made through the store's own grant path (a code
/// redeemed into a grant); returns the access tokens, valid a day.
fn populate_oauth(dir: &Path, connector_url: &str, tenants: usize) -> anyhow::Result<Vec<String>> {
    use common::store::people::{self, AuthCode, Person, Role};
    let store = open_store(&dir.join("store"))?;
    let now = common::now_unix();
    let mut tokens = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let tenant = TenantId::parse(&format!("bench-{i:05}"))?;
        let person = Person {
            id: format!("p_bench{i}"),
            tenant: tenant.clone(),
            name: format!("Bench person {i}"),
            email: None,
            role: Role::Member,
            created_at: now,
            user_handle: format!("00000000-0000-4000-8000-{i:012}"),
            passkeys: Vec::new(),
            last_sign_in_at: None,
        };
        store.people().add_person(&person)?;
        let code = AuthCode {
            client_id: "bench-client".into(),
            client_name: "bench".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: String::new(),
            resource: connector_url.to_owned(),
            scope: "mcp".into(),
            person: person.id.clone(),
            tenant,
            expires_at: now + 60,
        };
        let (_, hash) = people::new_secret("bench_");
        store.people().add_code(&hash, &code, now)?;
        let code = store
            .people()
            .redeem_code(&hash, now, |_| Ok(()))
            .map_err(|e| anyhow!(e.to_string()))?;
        let pair = store
            .people()
            .create_grant(&hash, &code, &person.name, now, 86_400, 86_400)?;
        tokens.push(pair.access_token);
    }
    store.flush()?;
    Ok(tokens)
}

/// `Store::open`, waiting out the lock a just-dropped handle holds for a few milliseconds.
fn open_store(path: &Path) -> anyhow::Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(path) {
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Mean cost of the per-request token check, in process, over every token once (after a short
/// warm-up), on the freshly reopened store: signature, audience, expiry, stored record, tenant.
fn token_check(dir: &Path, public_url: &str, tokens: &[String]) -> anyhow::Result<f64> {
    let store = open_store(&dir.join("store"))?;
    let authority = TokenAuthority::load_or_generate(&dir.join("signing.key"), public_url)?;
    let rounds = tokens.len().max(100_000);
    for token in tokens.iter().take(10_000) {
        authority.authenticate(&store, token)?;
    }
    let started = Instant::now();
    for i in 0..rounds {
        // A stride through the list so consecutive checks hit unrelated records.
        let token = &tokens[(i * 7_919) % tokens.len()];
        std::hint::black_box(authority.authenticate(&store, token)?);
    }
    let mean = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    drop(store);
    Ok(mean)
}

// ---------------------------------------------------------------------------------------------
// Server processes

struct Server {
    child: Child,
    addr: SocketAddr,
}

/// How a started server shows it is ready.
enum Probe {
    /// `GET /healthz` on this address, naming this `Host`, answers 200 `ok…`.
    Health(SocketAddr, String),
    /// It prints its address on stdout (the floor), then `/healthz` answers 200.
    Printed,
}

impl Server {
    /// Spawns `command` and waits until it answers as `probe` says. Returns the time from
    /// spawn to the first good answer.
    async fn start(
        command: &mut Command,
        log: &Path,
        probe: &Probe,
    ) -> anyhow::Result<(Server, Duration)> {
        // sled lets go of its lock file a few milliseconds after the bench's own store handle
        // is dropped (its I/O threads finish first): a start refused for that is retried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(command, log, probe).await {
                Err(e) if attempt < 100 && format!("{e:#}").contains("is locked by another") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        command: &mut Command,
        log: &Path,
        probe: &Probe,
    ) -> anyhow::Result<(Server, Duration)> {
        let stderr = std::fs::File::create(log)?;
        command.stdin(Stdio::null()).stderr(stderr);
        if let Probe::Health(..) = probe {
            command.stdout(Stdio::null());
        }
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let (addr, host) = match probe {
            Probe::Health(addr, host) => (*addr, host.clone()),
            Probe::Printed => {
                let stdout = child.stdout.take().context("no stdout")?;
                let mut line = String::new();
                std::io::BufReader::new(stdout).read_line(&mut line)?;
                let addr: SocketAddr = line
                    .trim()
                    .parse()
                    .with_context(|| format!("floor server printed `{}`", line.trim()))?;
                (addr, addr.to_string())
            }
        };
        let mut server = Server { child, addr };
        loop {
            if healthz(addr, &host).await {
                break;
            }
            if let Some(status) = server.child.try_wait()? {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                bail!("server exited ({status}) before answering:\n{tail}");
            }
            if spawned.elapsed() > Duration::from_secs(60) {
                bail!(
                    "server did not answer /healthz within 60 s (log: {})",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok((server, spawned.elapsed()))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 10 s for a graceful exit, then SIGKILL.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        for _ in 0..1000 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("bench: server {} ignored SIGTERM; killing it", self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind when the benchmark fails half-way.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pinned_command(program: &Path, pin: bool) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `shared-server` (pinned as asked) with none of the caller's `STUDIO_MCP_*` settings (a
/// `STUDIO_MCP_STORE` in the shell must not turn the sled server into a PostgreSQL one), the
/// production log filter unless `--server-rust-log` says otherwise, a rate limit no load
/// reaches, and `--server-env`.
fn server_command(program: &Path, pin: bool, args: &RunArgs) -> Command {
    let mut command = pinned_command(program, pin);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("STUDIO_MCP_")) {
            command.env_remove(name);
        }
    }
    command
        .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000000")
        .env_remove("RUST_LOG");
    if let Some(filter) = &args.server_rust_log {
        command.env("RUST_LOG", filter);
    }
    command.envs(args.server_env.iter().cloned());
    command
}

async fn healthz(addr: SocketAddr, host: &str) -> bool {
    let Ok(mut conn) = Conn::connect(addr).await else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    match conn.call(request.as_bytes()).await {
        // A PostgreSQL replica answers 200 `degraded…` while it has not reached the database.
        Ok(r) => r.status == 200 && conn.buf[r.body].starts_with(b"ok"),
        Err(_) => false,
    }
}

/// One call through the same client as the load, checked in full: stateless (no initialize),
/// answered 200 with the token's tenant in the tool result.
async fn check_first_call(target: &Target, tokens: &[String], expect: &str) -> anyhow::Result<()> {
    let token = tokens.first().context("no tokens")?;
    let mut conn = Conn::connect(target.addr).await?;
    let mut request = Vec::new();
    target.request(&mut request, token);
    let response = conn.call(&request).await?;
    let body = String::from_utf8_lossy(&conn.buf[response.body.clone()]).into_owned();
    if response.status != 200 || !body.contains(expect) || response.error {
        bail!(
            "the first whoami call did not succeed: HTTP {}\n{body}",
            response.status
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The load generator

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn request(&self, out: &mut Vec<u8>, token: &str) {
        out.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{WHOAMI}",
            self.path,
            self.host,
            WHOAMI.len()
        );
    }
}

/// A keep-alive HTTP/1.1 connection; one request in flight at a time.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Response {
    status: u16,
    body: std::ops::Range<usize>,
    /// A JSON-RPC error or a tool result with `isError: true`.
    error: bool,
    close: bool,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    async fn call(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed mid-response");
            }
            if let Some(head) = parse_head(&self.buf)?
                && let Some(end) = head.complete(&self.buf)?
            {
                let body = &self.buf[head.body_start..end];
                let error = head.status == 200
                    && (contains(body, b"\"isError\":true") || contains(body, b"\"error\":"));
                return Ok(Response {
                    status: head.status,
                    body: head.body_start..end,
                    error,
                    close: head.close,
                });
            }
        }
    }
}

struct Head {
    status: u16,
    body_start: usize,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

impl Head {
    /// Where the response ends, once all of it is in `buf`.
    fn complete(&self, buf: &[u8]) -> anyhow::Result<Option<usize>> {
        if let Some(len) = self.length {
            let end = self.body_start + len;
            return Ok((buf.len() >= end).then_some(end));
        }
        if !self.chunked {
            bail!("response without Content-Length or chunked encoding");
        }
        let mut pos = self.body_start;
        loop {
            let Some(line_end) = find(&buf[pos..], b"\r\n").map(|i| pos + i) else {
                return Ok(None);
            };
            let size_text = std::str::from_utf8(&buf[pos..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size `{size_text}`"))?;
            let next = line_end + 2 + size + 2;
            if buf.len() < next {
                return Ok(None);
            }
            if size == 0 {
                return Ok(Some(next));
            }
            pos = next;
        }
    }
}

fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end])?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let mut head = Head {
        status,
        body_start: end + 4,
        length: None,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.length = Some(value.parse()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// What one client task saw during the measured window.
#[derive(Default)]
struct TaskResult {
    latencies_ns: Vec<u64>,
    errors: u64,
}

/// How long each cell runs.
#[derive(Clone, Copy)]
struct Window {
    warmup_secs: u64,
    duration_secs: u64,
    wait_quiet_secs: u64,
}

impl From<&RunArgs> for Window {
    fn from(a: &RunArgs) -> Self {
        Window {
            warmup_secs: a.warmup_secs,
            duration_secs: a.duration_secs,
            wait_quiet_secs: a.wait_quiet_secs,
        }
    }
}

/// The processes whose CPU a cell accounts for.
#[derive(Clone, Copy)]
struct Pids {
    server: Option<u32>,
    /// PostgreSQL's postmaster: it and its children (the backends) are the database's CPU.
    db: Option<u32>,
}

// One call site per kind of run; a struct of eight loose settings would read no better.
#[allow(clippy::too_many_arguments)]
async fn measure(
    label: &str,
    target: &Target,
    tokens: &Arc<Vec<String>>,
    pids: Pids,
    concurrency: usize,
    window: Window,
    ticks: f64,
    tenants: usize,
) -> anyhow::Result<Cell> {
    let args = window;
    let server_pid = pids.server;
    wait_quiet(args.wait_quiet_secs, ticks, server_pid).await;
    // Connect everyone first, so the window measures calls, not handshakes.
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::connect(target.addr).await?);
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let measure_to = measure_from + Duration::from_secs(args.duration_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for (k, conn) in conns.into_iter().enumerate() {
        let target = target.clone();
        let tokens = tokens.clone();
        tasks.spawn(client(
            k,
            concurrency,
            conn,
            target,
            tokens,
            measure_from,
            measure_to,
        ));
    }
    // CPU accounting over (roughly) the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let server_stat = server_pid.map(|pid| format!("/proc/{pid}/stat"));
    let server_cpu0 = server_stat.as_deref().and_then(cpu_ticks);
    let own_cpu0 = cpu_ticks("/proc/self/stat");
    let busy0 = machine_busy_ticks();
    let db0 = pids.db.and_then(db_cpu_ticks);
    let wall0 = Instant::now();
    tokio::time::sleep_until(measure_to.into()).await;
    let server_cpu1 = server_stat.as_deref().and_then(cpu_ticks);
    let own_cpu1 = cpu_ticks("/proc/self/stat");
    let busy1 = machine_busy_ticks();
    let db1 = pids.db.and_then(db_cpu_ticks);
    let wall = wall0.elapsed().as_secs_f64();

    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let result = joined??;
        latencies.extend_from_slice(&result.latencies_ns);
        errors += result.errors;
    }
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e6
    };
    let cpu = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if wall > 0.0 => (b.saturating_sub(a)) as f64 / ticks / wall * 100.0,
        _ => f64::NAN,
    };
    let server_cpu_pct = cpu(server_cpu0, server_cpu1);
    let loadgen_cpu_pct = cpu(own_cpu0, own_cpu1);
    let db_cpu_pct = cpu(db0, db1);
    let other_cpu_pct = (cpu(busy0, busy1)
        - server_cpu_pct.max(0.0)
        - loadgen_cpu_pct
        - if db_cpu_pct.is_nan() { 0.0 } else { db_cpu_pct })
    .max(0.0);
    let mem = server_pid.map_or(
        Memory {
            rss_mb: f64::NAN,
            hwm_mb: f64::NAN,
        },
        memory,
    );
    Ok(Cell {
        target: label.to_owned(),
        store: "-".to_owned(),
        round: 0,
        tenants,
        tokens: if tenants == 0 { 0 } else { tokens.len() },
        concurrency,
        calls_per_sec: (calls - errors.min(calls)) as f64 / args.duration_secs as f64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        calls,
        errors,
        rss_mb: mem.rss_mb,
        hwm_mb: mem.hwm_mb,
        server_cpu_pct,
        db_cpu_pct,
        loadgen_cpu_pct,
        other_cpu_pct,
    })
}

/// Waits (up to `limit_secs`) until everything but this process and the server uses less than
/// 10% of a core over half a second.
async fn wait_quiet(limit_secs: u64, ticks: f64, server: Option<u32>) {
    if limit_secs == 0 {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(limit_secs);
    let server_stat = server.map(|pid| format!("/proc/{pid}/stat"));
    loop {
        let sample = || {
            (
                machine_busy_ticks(),
                server_stat.as_deref().and_then(cpu_ticks),
                cpu_ticks("/proc/self/stat"),
            )
        };
        let (b0, s0, o0) = sample();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (b1, s1, o1) = sample();
        let wall = t0.elapsed().as_secs_f64();
        let delta = |a: Option<u64>, b: Option<u64>| {
            b.unwrap_or(0).saturating_sub(a.unwrap_or(0)) as f64 / ticks / wall * 100.0
        };
        let other = delta(b0, b1) - delta(s0, s1) - delta(o0, o1);
        if other < 10.0 {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("bench: machine still busy ({other:.0}% of a core); measuring anyway");
            return;
        }
    }
}

/// One client: its own connection, one call at a time, walking the token list from its own
/// offset so that together the clients cycle through every tenant.
async fn client(
    k: usize,
    concurrency: usize,
    mut conn: Conn,
    target: Target,
    tokens: Arc<Vec<String>>,
    measure_from: Instant,
    measure_to: Instant,
) -> anyhow::Result<TaskResult> {
    let mut out = TaskResult::default();
    let mut request = Vec::with_capacity(1024);
    let mut n = k;
    loop {
        let token = &tokens[n % tokens.len()];
        n += concurrency;
        target.request(&mut request, token);
        let sent = Instant::now();
        let outcome = conn.call(&request).await;
        let done = Instant::now();
        let in_window = done >= measure_from && done < measure_to;
        match outcome {
            Ok(response) => {
                if in_window {
                    out.latencies_ns.push((done - sent).as_nanos() as u64);
                    if response.status != 200 || response.error {
                        out.errors += 1;
                    }
                }
                if response.close {
                    conn = Conn::connect(target.addr).await?;
                }
            }
            Err(e) => {
                if in_window {
                    out.latencies_ns.push((done - sent).as_nanos() as u64);
                    out.errors += 1;
                }
                conn = Conn::connect(target.addr)
                    .await
                    .with_context(|| format!("reconnecting after `{e:#}`"))?;
            }
        }
        if done >= measure_to {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The floor

/// A bare axum JSON endpoint: parses the JSON-RPC body and answers a small JSON result. Runs on
/// the same runtime flavour as the server (`#[tokio::main]`: one worker per allowed core).
fn floor_server(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::Json;
    use axum::routing::post;
    use serde_json::{Value, json};

    async fn echo(Json(body): Json<Value>) -> Json<Value> {
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        Json(json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}}))
    }

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "{}", listener.local_addr()?)?;
            stdout.flush()?;
            let app = axum::Router::new()
                .route("/echo", post(echo))
                .route("/healthz", axum::routing::get(|| async { "ok" }));
            axum::serve(listener, app).await?;
            Ok(())
        })
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// A percentage, or `-` when it was not measured.
fn pct_or_dash(value: f64) -> String {
    if value.is_nan() {
        "-".to_owned()
    } else {
        format!("{value:.0}%")
    }
}

fn row(c: &Cell) -> String {
    format!(
        "{:<20} {:>3} {:>7} {:>7} {:>5} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>7.1} {:>7.1} {:>7} {:>7} {:>7} {:>7}",
        c.target,
        if c.round == 0 {
            "-".into()
        } else {
            c.round.to_string()
        },
        if c.tenants == 0 {
            "-".into()
        } else {
            c.tenants.to_string()
        },
        if c.tenants == 0 {
            "-".into()
        } else {
            c.tokens.to_string()
        },
        c.concurrency,
        c.calls_per_sec,
        c.p50_ms,
        c.p99_ms,
        c.p999_ms,
        c.errors,
        c.rss_mb,
        c.hwm_mb,
        pct_or_dash(c.server_cpu_pct),
        pct_or_dash(c.db_cpu_pct),
        pct_or_dash(c.loadgen_cpu_pct),
        pct_or_dash(c.other_cpu_pct),
    )
}

fn header() -> String {
    format!(
        "{:<20} {:>3} {:>7} {:>7} {:>5} {:>10} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "target",
        "rnd",
        "tenants",
        "tokens",
        "conc",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "RSS MB",
        "HWM MB",
        "srv CPU",
        "db CPU",
        "gen CPU",
        "other"
    )
}

fn print_report(r: &Report) {
    println!();
    println!("{}", header());
    for c in &r.cells {
        println!("{}", row(c));
    }
    println!();
    println!(
        "whoami, median of {} round(s) (stores back to back within each round):",
        r.rounds
    );
    println!(
        "{:<9} {:>7} {:>7} {:>5} {:>10} {:>8} {:>8} {:>8} {:>7} {:>8}   rounds (calls/s)",
        "store",
        "tenants",
        "tokens",
        "conc",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "pg/sled"
    );
    for s in &r.summaries {
        let tokens = r
            .fleets
            .iter()
            .find(|f| f.tenants == s.tenants)
            .map_or(0, |f| f.tokens);
        println!(
            "{:<9} {:>7} {:>7} {:>5} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>8}   {}",
            s.store.name(),
            s.tenants,
            tokens,
            s.concurrency,
            s.calls_per_sec,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.errors,
            s.ratio_to_sled
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}")),
            s.rounds
                .iter()
                .map(|c| format!("{c:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    println!();
    println!(
        "{:<9} {:>7} {:>7} {:>10} {:>9} {:>11} {:>22} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "store",
        "tenants",
        "tokens",
        "populate s",
        "migrate s",
        "start-up ms",
        "starts ms",
        "RSS idle",
        "RSS load",
        "HWM MB",
        "check µs",
        "log B/call"
    );
    for f in &r.fleets {
        println!(
            "{:<9} {:>7} {:>7} {:>10.1} {:>9} {:>11.1} {:>22} {:>8.1} {:>8.1} {:>8.1} {:>9.2} {:>8.0}",
            f.store.name(),
            f.tenants,
            f.tokens,
            f.populate_secs,
            f.migrate_secs
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
            f.startup_ms,
            f.startups_ms
                .iter()
                .map(|ms| format!("{ms:.0}"))
                .collect::<Vec<_>>()
                .join("/"),
            f.idle_rss_mb,
            f.loaded_rss_mb,
            f.hwm_mb,
            f.token_check_us,
            f.log_bytes_per_call
        );
    }
    if let Some(ms) = r.floor_startup_ms {
        println!("floor server start-up: {ms:.1} ms");
    }
    if let Some(v) = &r.revocations {
        println!();
        println!(
            "revoke-to-refusal, three replicas on one PostgreSQL database, {} revokes through \
             replica a:",
            v.revokes
        );
        println!("{:<28} {:>8} {:>8} {:>8}", "", "p50 ms", "p95 ms", "max ms");
        let line = |what: &str, s: &Spread| {
            println!(
                "{what:<28} {:>8.2} {:>8.2} {:>8.2}",
                s.p50_ms, s.p95_ms, s.max_ms
            );
        };
        line("admin revoke returns", &v.admin_returns);
        for (name, spread) in &v.refused {
            line(&format!("first refusal on replica {name}"), spread);
        }
        println!(
            "requests sent right after revoke returned and not refused: {} of {}",
            v.not_refused_first, v.first_requests
        );
        println!(
            "drill (common::runtime::ops::drill::revoke) across a, b, c: refused {:.2} ms after revoke, \
             at most {} request(s)",
            v.drill_ms, v.drill_attempts
        );
    }
    println!();
    println!(
        "goals ({} cores, servers {}):",
        r.cores,
        match (r.pinned, &r.postgres_cpus) {
            (true, Some(cpus)) =>
                format!("pinned to core 0, PostgreSQL on CPUs {cpus}, load on the rest"),
            (true, None) => "pinned to core 0, load on the rest".to_owned(),
            (false, _) => "not pinned".to_owned(),
        }
    );
    for g in &r.goals {
        println!(
            "  [{}] {:<62} {}",
            if g.met { "met " } else { "MISS" },
            g.goal,
            g.measured
        );
    }
    let noisy = r.cells.iter().map(|c| c.other_cpu_pct).fold(0.0, f64::max);
    if noisy > 10.0 {
        println!(
            "warning: other work used up to {noisy:.0}% of a core during a measurement; \
             the machine was not quiet, rerun for clean figures"
        );
    }
}

fn goals(r: &Report) -> Vec<Goal> {
    let mut goals = Vec::new();
    let max_conc = r.summaries.iter().map(|s| s.concurrency).max().unwrap_or(0);
    let stores: Vec<StoreKind> = {
        let mut s: Vec<StoreKind> = r.summaries.iter().map(|s| s.store).collect();
        s.sort();
        s.dedup();
        s
    };
    for store in stores {
        let name = store.name();
        let top: Vec<&Summary> = r
            .summaries
            .iter()
            .filter(|s| s.store == store && s.concurrency == max_conc)
            .collect();
        if top.is_empty() {
            continue;
        }
        let worst = top
            .iter()
            .map(|s| s.calls_per_sec)
            .fold(f64::INFINITY, f64::min);
        let best = top.iter().map(|s| s.calls_per_sec).fold(0.0, f64::max);
        let p99 = top.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
        goals.push(Goal {
            goal: format!("{name}: ≥ 20,000 whoami calls/s at {max_conc} clients"),
            measured: format!("lowest {worst:.0} calls/s"),
            met: worst >= 20_000.0,
        });
        goals.push(Goal {
            goal: format!("{name}: p99 ≤ 5 ms at {max_conc} clients"),
            measured: format!("highest {p99:.2} ms (median of rounds)"),
            met: p99 <= 5.0,
        });
        if top.len() > 1 {
            goals.push(Goal {
                goal: format!("{name}: throughput flat across tenant counts (within 10%)"),
                measured: format!("lowest/highest median = {:.2}", worst / best),
                met: worst / best >= 0.9,
            });
        }
        if let Some(big) = r
            .fleets
            .iter()
            .filter(|f| f.store == store)
            .max_by_key(|f| f.tenants)
        {
            let rss = r
                .cells
                .iter()
                .filter(|c| c.store == name && c.tenants == big.tenants)
                .map(|c| c.rss_mb.max(c.hwm_mb))
                .fold(big.idle_rss_mb.max(big.hwm_mb), f64::max);
            goals.push(Goal {
                goal: format!(
                    "{name}: < 50 MB resident with {} tenants, {} tokens",
                    big.tenants, big.tokens
                ),
                measured: format!("peak {rss:.1} MiB"),
                met: rss < 50.0,
            });
        }
        let startup = r
            .fleets
            .iter()
            .filter(|f| f.store == store)
            .map(|f| f.startup_ms)
            .fold(0.0, f64::max);
        goals.push(Goal {
            goal: format!("{name}: start-up < 100 ms"),
            measured: format!("slowest median {startup:.1} ms"),
            met: startup < 100.0,
        });
    }
    if !r.summaries.is_empty() {
        let errors: u64 = r.summaries.iter().map(|s| s.errors).sum();
        goals.push(Goal {
            goal: "no failed calls".into(),
            measured: format!("{errors} errors"),
            met: errors == 0,
        });
    }
    let ratios: Vec<&Summary> = r
        .summaries
        .iter()
        .filter(|s| s.ratio_to_sled.is_some())
        .collect();
    if let Some(worst) = ratios.iter().min_by(|a, b| {
        a.ratio_to_sled
            .unwrap_or(f64::NAN)
            .total_cmp(&b.ratio_to_sled.unwrap_or(f64::NAN))
    }) {
        let ratio = worst.ratio_to_sled.unwrap_or(f64::NAN);
        goals.push(Goal {
            goal: "PostgreSQL within 10% of sled in every cell".into(),
            measured: format!(
                "lowest pg/sled {ratio:.3} ({} tenants, {} clients)",
                worst.tenants, worst.concurrency
            ),
            met: ratio >= 0.9,
        });
    }
    if let Some(big) = r
        .fleets
        .iter()
        .filter(|f| f.store == StoreKind::Sled)
        .max_by_key(|f| f.tenants)
        .or_else(|| r.fleets.iter().max_by_key(|f| f.tenants))
    {
        goals.push(Goal {
            goal: format!("token check < 20 µs ({} tokens)", big.tokens),
            measured: format!("{:.2} µs", big.token_check_us),
            met: big.token_check_us < 20.0,
        });
    }
    if let Some(v) = &r.revocations {
        goals.push(Goal {
            goal: "a revoked token is refused by every replica on the next request".into(),
            measured: format!(
                "{} of {} not refused at once; slowest refusal {:.1} ms after revoke sent",
                v.not_refused_first,
                v.first_requests,
                v.refused.iter().map(|(_, s)| s.max_ms).fold(0.0, f64::max)
            ),
            met: v.not_refused_first == 0,
        });
    }
    goals
}

// ---------------------------------------------------------------------------------------------
// Small system helpers

struct Memory {
    rss_mb: f64,
    hwm_mb: f64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Memory {
        rss_mb: field("VmRSS:"),
        hwm_mb: field("VmHWM:"),
    }
}

/// utime + stime of PostgreSQL: the postmaster and its children (backends, writers), in clock
/// ticks.
fn db_cpu_ticks(postmaster: u32) -> Option<u64> {
    let mut total = cpu_ticks(&format!("/proc/{postmaster}/stat"))?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let path = format!("/proc/{pid}/stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        // After the parenthesised command name: state, then the parent's pid.
        let parent = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(postmaster) {
            total += cpu_ticks(&path).unwrap_or(0);
        }
    }
    Some(total)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy (non-idle, non-iowait) clock ticks of the whole machine, from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    let busy = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4);
    Some(busy.map(|(_, v)| v).sum())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The CPUs a process may run on, from its `/proc/<pid>/status`.
fn cpus_of(status_path: &str) -> Option<String> {
    let status = std::fs::read_to_string(status_path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

/// CPUs of the machine (not of this process: the bench itself usually runs pinned to one).
fn online_cpus() -> usize {
    let Ok(text) = std::fs::read_to_string("/sys/devices/system/cpu/online") else {
        return std::thread::available_parallelism().map_or(1, |n| n.get());
    };
    text.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The cluster `--postgres` names: the bench makes and drops databases of its own on it with
/// `psql`, and (when it runs on this machine) accounts for its CPU.
struct Cluster {
    url: String,
    /// The postmaster's pid, from `postmaster.pid` in its data directory (a local cluster
    /// whose directory this user can read).
    postmaster: Option<u32>,
}

impl Cluster {
    fn connect(url: &str) -> anyhow::Result<Cluster> {
        let data_dir = psql(url, "SELECT current_setting('data_directory')")
            .with_context(|| format!("cannot use the PostgreSQL cluster at {}", redact(url)))?;
        let postmaster = std::fs::read_to_string(Path::new(data_dir.trim()).join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(Cluster {
            url: url.to_owned(),
            postmaster,
        })
    }

    /// A new, empty database `name`; its URL.
    fn create_database(&self, name: &str) -> anyhow::Result<String> {
        psql(&self.url, &format!("CREATE DATABASE {name}"))?;
        database_url(&self.url, name)
    }

    /// Drops `name`, closing whatever is still connected; a failure is only reported.
    fn drop_database(&self, name: &str) {
        if let Err(e) = psql(
            &self.url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ) {
            eprintln!("bench: could not drop database {name}: {e:#}");
        }
    }
}

/// Runs one statement with `psql`; its unaligned output.
fn psql(url: &str, statement: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([url, "-X", "-qtAc", statement])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (the PostgreSQL client)")?;
    if !out.status.success() {
        bail!(
            "psql `{statement}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `url` with its database replaced by `name` (user, password, host and options kept).
fn database_url(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|s| base.starts_with(s))
        .context("--postgres must be a postgres:// URL")?;
    let authority = base[scheme.len()..].split('/').next().unwrap_or_default();
    Ok(match query {
        Some(query) => format!("{scheme}{authority}/{name}?{query}"),
        None => format!("{scheme}{authority}/{name}"),
    })
}

/// A URL fit for a message: no password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
