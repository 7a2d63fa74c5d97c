//! The report on stdout: every cell, the medians over rounds, the fleets, the revocations and
//! the goals.

use crate::results::{Cell, Report, Spread};

/// A percentage, or `-` when it was not measured.
fn pct_or_dash(value: f64) -> String {
    if value.is_nan() {
        "-".to_owned()
    } else {
        format!("{value:.0}%")
    }
}

pub fn row(c: &Cell) -> String {
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

pub fn header() -> String {
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

pub fn print_report(r: &Report) {
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
