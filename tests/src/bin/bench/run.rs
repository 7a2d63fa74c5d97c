//! `bench run`: populate a data dir per tenant count, copy it to PostgreSQL, start a server per
//! store on it and time its start-up, measure every cell over the rounds, then the floor and the
//! replicas, and report.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::args::{RunArgs, StoreKind};
use crate::goals::goals;
use crate::http::Target;
use crate::measure::{Pids, Window, measure};
use crate::populate::{populate, token_check};
use crate::postgres::Cluster;
use crate::replicas::revocations;
use crate::report::{print_report, row};
use crate::results::{Fleet, Report, summarise};
use crate::server::{Probe, Server, check_first_call, pinned_command, server_command};
use crate::system::{clock_ticks, cpus_of, free_port, memory, online_cpus, which};

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

pub async fn run(mut args: RunArgs) -> anyhow::Result<()> {
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
pub async fn migrate(command: &mut Command) -> anyhow::Result<f64> {
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
