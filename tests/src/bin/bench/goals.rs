//! The goals a run is held against: throughput, p99 latency, resident memory, start-up, token
//! check, PostgreSQL against sled, and revocation across replicas.

use crate::args::StoreKind;
use crate::results::{Goal, Report, Summary};

pub fn goals(r: &Report) -> Vec<Goal> {
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
