//! One cell: `concurrency` clients, each one call at a time on its own connection, over a warm-up
//! and a measured window; latencies, errors, and the CPU of server, database, load generator
//! and everything else over the window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::args::RunArgs;
use crate::http::{Conn, Target};
use crate::results::Cell;
use crate::system::{Memory, cpu_ticks, db_cpu_ticks, machine_busy_ticks, memory};

/// What one client task saw during the measured window.
#[derive(Default)]
struct TaskResult {
    latencies_ns: Vec<u64>,
    errors: u64,
}

/// How long each cell runs.
#[derive(Clone, Copy)]
pub struct Window {
    pub warmup_secs: u64,
    pub duration_secs: u64,
    pub wait_quiet_secs: u64,
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
pub struct Pids {
    pub server: Option<u32>,
    /// PostgreSQL's postmaster: it and its children (the backends) are the database's CPU.
    pub db: Option<u32>,
}

// One call site per kind of run; a struct of eight loose settings would read no better.
#[allow(clippy::too_many_arguments)]
pub async fn measure(
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
