//! What a run measures and reports (also as `--json`): a cell per measurement, the medians over
//! rounds, each server's fleet figures, the replicas' revocation times, the goals.

use std::time::Duration;

use serde::Serialize;

use crate::args::{RunArgs, StoreKind};

#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub target: String,
    /// `sled` or `postgres` (`-` for the floor and `bench load`).
    pub store: String,
    /// Which round of the run (0 for the floor and `bench load`).
    pub round: usize,
    pub tenants: usize,
    pub tokens: usize,
    pub concurrency: usize,
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub calls: u64,
    pub errors: u64,
    /// Server resident memory after the cell (`VmRSS`), MiB.
    pub rss_mb: f64,
    /// Server peak resident memory so far (`VmHWM`), MiB.
    pub hwm_mb: f64,
    /// Server CPU time during the measured window, % of one core.
    pub server_cpu_pct: f64,
    /// PostgreSQL's CPU time (postmaster and its children) during the window, % of one core;
    /// NaN without a local cluster.
    pub db_cpu_pct: f64,
    /// Load generator CPU time during the measured window, % of one core.
    pub loadgen_cpu_pct: f64,
    /// CPU used by everything else on the machine during the window (other processes, and
    /// interrupt work not charged to any of the above), % of one core. Above ~10% the figures
    /// are disturbed: rerun on a quiet machine.
    pub other_cpu_pct: f64,
}

/// One cell over every round: medians, and PostgreSQL against sled.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub store: StoreKind,
    pub tenants: usize,
    pub concurrency: usize,
    /// calls/s of each round, in order.
    pub rounds: Vec<f64>,
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    /// This cell's calls/s over sled's (PostgreSQL rows, when sled was measured too).
    pub ratio_to_sled: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fleet {
    pub store: StoreKind,
    pub tenants: usize,
    pub tokens: usize,
    /// Offline population of the sled store (tenants + token issue), seconds.
    pub populate_secs: f64,
    /// `shared-server store migrate --to` of that store into a fresh database, seconds
    /// (PostgreSQL only).
    pub migrate_secs: Option<f64>,
    /// Spawn to first `GET /healthz` 200, milliseconds (median of three starts).
    pub startup_ms: f64,
    /// Every start, milliseconds, in order.
    pub startups_ms: Vec<f64>,
    /// Server resident memory after start-up, before any load, MiB.
    pub idle_rss_mb: f64,
    /// Server resident memory after every round (`VmRSS`), MiB.
    pub loaded_rss_mb: f64,
    /// Server peak resident memory (`VmHWM`) after every round, MiB.
    pub hwm_mb: f64,
    /// Mean in-process `TokenAuthority::authenticate` over every token of the sled store, µs
    /// (the same in-memory index serves both stores).
    pub token_check_us: f64,
    /// What the server logged (stderr) over the whole run, bytes per MCP call.
    pub log_bytes_per_call: f64,
}

/// p50 / p95 / max of a few samples, milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    pub fn of(samples: &[Duration]) -> Spread {
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
pub struct Revocations {
    pub revokes: usize,
    /// Sending the revoke to replica A's admin API until it answers.
    pub admin_returns: Spread,
    /// Sending the revoke until each other replica's first refusal, by replica name.
    pub refused: Vec<(String, Spread)>,
    /// Requests sent right after the revoke returned that were not refused.
    pub not_refused_first: usize,
    /// Requests sent right after revoke returned (one per revoke per other replica).
    pub first_requests: usize,
    /// `common::runtime::ops::drill::revoke` through A across all three, once: its revoke-to-refusal
    /// (ms) and the most requests any replica needed.
    pub drill_ms: f64,
    pub drill_attempts: u32,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub rounds: usize,
    pub pinned: bool,
    pub cores: usize,
    /// The CPUs PostgreSQL's postmaster may run on, when the cluster is local.
    pub postgres_cpus: Option<String>,
    pub fleets: Vec<Fleet>,
    pub floor_startup_ms: Option<f64>,
    pub cells: Vec<Cell>,
    pub summaries: Vec<Summary>,
    pub revocations: Option<Revocations>,
    pub goals: Vec<Goal>,
}

#[derive(Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Each (store, tenants, clients) over its rounds: the medians, and PostgreSQL over sled.
pub fn summarise(cells: &[Cell], args: &RunArgs) -> Vec<Summary> {
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

/// The median (the mean of the middle two for an even count); NaN when there is nothing.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
