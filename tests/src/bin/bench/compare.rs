//! `bench compare`: the shared server side by side with what it is held to, in one run, rounds
//! interleaved: the axum floor (`bench floor-server`), a minimal rmcp stateless server
//! (`bench rmcp-server`), and the shared server with a static token on the fast path, the same
//! with `STUDIO_MCP_FAST_PATH=off` (rmcp's transport for everything: the shape before the fast
//! path), with an OAuth access token on its connector door, and with `--postgres` on
//! PostgreSQL — each on a data dir of its own (one tenant). Prints the medians with their
//! ratios to the floor and to bare rmcp, and the goals.

use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::args::RunArgs;
use crate::http::Target;
use crate::measure::{Pids, Window, measure};
use crate::populate::{populate, populate_oauth};
use crate::postgres::Cluster;
use crate::report::row;
use crate::results::{Cell, median};
use crate::run::migrate;
use crate::server::{Probe, Server, check_first_call, pinned_command, server_command};
use crate::system::{clock_ticks, free_port, online_cpus, which};

struct Variant {
    label: &'static str,
    server: Server,
    target: Target,
    tokens: Arc<Vec<String>>,
    _dir: Option<tempfile::TempDir>,
}

const FLOOR: &str = "axum floor";
const BARE: &str = "bare rmcp 3.11";
const FAST: &str = "studio-mcp, static, sled";
const RMCP_ONLY: &str = "studio-mcp, static, sled, fast path off";
const OAUTH: &str = "studio-mcp, OAuth, sled";
const POSTGRES: &str = "studio-mcp, static, PostgreSQL";

/// One of the bench binary's own servers (`floor-server`, `rmcp-server`).
async fn own_server(
    label: &'static str,
    subcommand: &str,
    path: &str,
    pin: bool,
) -> anyhow::Result<Variant> {
    let exe = std::env::current_exe()?;
    let mut command = pinned_command(&exe, pin);
    command
        .args([subcommand, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start(
        &mut command,
        &dir.path().join("server.log"),
        &Probe::Printed,
    )
    .await
    .with_context(|| label.to_owned())?;
    let target = Target {
        addr: server.addr,
        host: server.addr.to_string(),
        path: path.to_owned(),
    };
    Ok(Variant {
        label,
        server,
        target,
        tokens: Arc::new(vec!["bench".to_owned()]),
        _dir: Some(dir),
    })
}

/// The shared server on a data dir of its own with one tenant: `oauth` loads it through its
/// connector door with OAuth access tokens, `env` adds settings, `database` puts it on
/// PostgreSQL (migrated from the populated dir).
async fn shared(
    label: &'static str,
    args: &RunArgs,
    pin: bool,
    oauth: bool,
    env: &[(&str, &str)],
    database: Option<&str>,
) -> anyhow::Result<Variant> {
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("shared-server"),
    };
    if !server_bin.is_file() {
        bail!("{} not found: build it first", server_bin.display());
    }
    let dir = tempfile::Builder::new()
        .prefix("studio-mcp-bench-compare-")
        .tempdir()?;
    let port = free_port()?;
    let connector_port = free_port()?;
    let public_url = format!("http://127.0.0.1:{port}");
    let connector_url = format!("http://localhost:{connector_port}/mcp");
    let mut tokens = populate(dir.path(), &public_url, 1, args.tokens_per_tenant)?;
    if oauth {
        tokens = populate_oauth(dir.path(), &connector_url, 1)?;
    }
    let mut command = server_command(&server_bin, pin, args);
    command
        .env("STUDIO_MCP_DATA_DIR", dir.path())
        .env("STUDIO_MCP_PUBLIC_URL", &public_url)
        .env("STUDIO_MCP_CONNECTOR_URL", &connector_url)
        .env(
            "STUDIO_MCP_CONNECTOR_LISTEN",
            format!("127.0.0.1:{connector_port}"),
        );
    if let Some(database) = database {
        let mut migration = server_command(&server_bin, pin, args);
        migration
            .args(["store", "migrate", "--to", database])
            .env("STUDIO_MCP_DATA_DIR", dir.path())
            .env("STUDIO_MCP_PUBLIC_URL", &public_url);
        migrate(&mut migration).await?;
        command
            .env("STUDIO_MCP_STORE", database)
            .env("STUDIO_MCP_REPLICA_NAME", "bench-compare");
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .arg("serve")
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "STUDIO_MCP_ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()?),
        );
    let target = if oauth {
        Target {
            addr: ([127, 0, 0, 1], connector_port).into(),
            host: format!("localhost:{connector_port}"),
            path: "/mcp".to_owned(),
        }
    } else {
        Target {
            addr: ([127, 0, 0, 1], port).into(),
            host: format!("127.0.0.1:{port}"),
            path: "/mcp".to_owned(),
        }
    };
    let log = dir.path().join("server.log");
    let probe = Probe::Health(([127, 0, 0, 1], port).into(), format!("127.0.0.1:{port}"));
    let (server, _) = Server::start(&mut command, &log, &probe)
        .await
        .with_context(|| label.to_owned())?;
    let tokens = Arc::new(tokens);
    check_first_call(&target, &tokens, "\"tenant\"").await?;
    Ok(Variant {
        label,
        server,
        target,
        tokens,
        _dir: Some(dir),
    })
}

pub async fn compare(args: RunArgs) -> anyhow::Result<()> {
    let pin = !args.no_pin && online_cpus() >= 2 && which("taskset");
    let ticks = clock_ticks();
    let mut variants = vec![
        own_server(FLOOR, "floor-server", "/echo", pin).await?,
        own_server(BARE, "rmcp-server", "/mcp", pin).await?,
        shared(FAST, &args, pin, false, &[], None).await?,
        shared(
            RMCP_ONLY,
            &args,
            pin,
            false,
            &[("STUDIO_MCP_FAST_PATH", "off")],
            None,
        )
        .await?,
        shared(OAUTH, &args, pin, true, &[], None).await?,
    ];
    let mut database = None;
    if let Some(url) = &args.postgres {
        let cluster = Cluster::connect(url)?;
        let name = format!("bench_compare_{}", std::process::id());
        let url = cluster.create_database(&name)?;
        variants.push(shared(POSTGRES, &args, pin, false, &[], Some(&url)).await?);
        database = Some((cluster, name));
    }
    let mut cells: Vec<(usize, Cell)> = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("bench compare: round {round} of {}", args.rounds);
        for &concurrency in &args.concurrency {
            // Each round starts from another variant, so drift over minutes hits all alike.
            let n = variants.len();
            for k in 0..n {
                let i = (k + round) % n;
                let v = &variants[i];
                let cell = measure(
                    v.label,
                    &v.target,
                    &v.tokens,
                    Pids {
                        server: Some(v.server.pid()),
                        db: None,
                    },
                    concurrency,
                    Window::from(&args),
                    ticks,
                    1,
                )
                .await?;
                eprintln!("{}", row(&cell));
                cells.push((i, cell));
            }
        }
    }
    let median = |i: usize, concurrency: usize, field: fn(&Cell) -> f64| {
        median(
            cells
                .iter()
                .filter(|(j, c)| *j == i && c.concurrency == concurrency)
                .map(|(_, c)| field(c))
                .collect(),
        )
    };
    let index = |label: &str| variants.iter().position(|v| v.label == label);
    println!();
    println!(
        "| target | clients | calls/s | p50 ms | p99 ms | ÷ floor | ÷ bare rmcp | errors |  (medians of {} rounds)",
        args.rounds
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &concurrency in &args.concurrency {
        let floor = median(0, concurrency, |c| c.calls_per_sec);
        let bare = median(1, concurrency, |c| c.calls_per_sec);
        for (i, v) in variants.iter().enumerate() {
            let rate = median(i, concurrency, |c| c.calls_per_sec);
            let errors: u64 = cells
                .iter()
                .filter(|(j, c)| *j == i && c.concurrency == concurrency)
                .map(|(_, c)| c.errors)
                .sum();
            println!(
                "| {} | {concurrency} | {rate:.0} | {:.3} | {:.3} | {:.2} | {:.2} | {errors} |",
                v.label,
                median(i, concurrency, |c| c.p50_ms),
                median(i, concurrency, |c| c.p99_ms),
                rate / floor,
                rate / bare,
            );
        }
    }
    println!();
    println!("| goal | measured | met |");
    println!("|---|---|---|");
    let goal = |goal: String, measured: String, met: bool| {
        println!(
            "| {goal} | {measured} | {} |",
            if met { "yes" } else { "NO" }
        );
    };
    if let Some(fast) = index(FAST) {
        for &concurrency in args.concurrency.iter().filter(|&&c| c >= 16) {
            let rate = median(fast, concurrency, |c| c.calls_per_sec);
            let floor = median(0, concurrency, |c| c.calls_per_sec);
            let bare = median(1, concurrency, |c| c.calls_per_sec);
            goal(
                format!("≥ 0.5 of the floor at {concurrency} clients"),
                format!("{:.2}", rate / floor),
                rate / floor >= 0.5,
            );
            goal(
                format!("≥ 1.0 of bare rmcp at {concurrency} clients"),
                format!("{:.2}", rate / bare),
                rate / bare >= 1.0,
            );
        }
        if let Some(&top) = args.concurrency.iter().max() {
            let ours = median(fast, top, |c| c.p99_ms);
            let bare = median(1, top, |c| c.p99_ms);
            goal(
                format!("p99 at {top} clients ≤ bare rmcp's"),
                format!("{ours:.3} ms vs {bare:.3} ms"),
                ours <= bare,
            );
        }
        if args.concurrency.contains(&1) {
            let ours = median(fast, 1, |c| c.p50_ms);
            let bare = median(1, 1, |c| c.p50_ms);
            goal(
                "p50 at 1 client ≤ bare rmcp's".to_owned(),
                format!("{ours:.3} ms vs {bare:.3} ms"),
                ours <= bare,
            );
        }
        for (other, bound, what) in [
            (OAUTH, 0.95, "OAuth within 5% of static"),
            (POSTGRES, 0.90, "PostgreSQL within 10% of sled"),
        ] {
            let Some(j) = index(other) else { continue };
            let worst = args
                .concurrency
                .iter()
                .map(|&c| median(j, c, |c| c.calls_per_sec) / median(fast, c, |c| c.calls_per_sec))
                .fold(f64::INFINITY, f64::min);
            goal(
                what.to_owned(),
                format!("lowest ratio {worst:.3}"),
                worst >= bound,
            );
        }
    }
    for v in variants {
        v.server.stop().await;
    }
    if let Some((cluster, name)) = database {
        cluster.drop_database(&name);
    }
    Ok(())
}
