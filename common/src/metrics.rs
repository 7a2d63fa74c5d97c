//! Counters and latency histograms, rendered as Prometheus text for the admin listener's
//! `/metrics`. Lock-free on the hot path once a series exists: a read lock and atomics.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::domain::TenantId;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The outcomes a tool call can have (`ToolError::kind` and `ok`); a fixed array per series
/// keeps 10,000 tenants' worth of series small.
const OUTCOMES: [&str; 9] = [
    "ok",
    "invalid_arguments",
    "not_yours",
    "not_permitted",
    "rate_limited",
    "upstream",
    "internal",
    "unknown_tool",
    "other",
];

/// One tenant's tool-call series, per tool: a tenant calls a handful, so a short list beats a
/// map. Kept in the tenant's live state (`tenant_state.rs`), not in [`Metrics`], so a call
/// reaches its series without a per-tenant lookup.
#[derive(Default)]
pub struct TenantCalls(RwLock<Vec<(&'static str, Arc<CallStats>)>>);

#[derive(Default)]
pub(crate) struct CallStats {
    outcomes: [AtomicU64; OUTCOMES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

#[derive(Default)]
pub struct Metrics {
    upstream: RwLock<HashMap<(String, String), AtomicU64>>,
    rate_limited: RwLock<HashMap<String, AtomicU64>>,
    token_refusals: RwLock<HashMap<String, AtomicU64>>,
    oauth_refusals: RwLock<HashMap<String, AtomicU64>>,
    /// Waits before an upstream call, by upstream and reason (`quota`, `retry_after`).
    upstream_waits: RwLock<HashMap<(String, &'static str), AtomicU64>>,
    /// Upstream reads marked cacheable, by upstream and outcome (`hit`, `miss`, `coalesced`).
    upstream_cache: RwLock<HashMap<(String, &'static str), AtomicU64>>,
    /// Answers the read cache let go to stay within its bound, by upstream.
    upstream_cache_evictions: RwLock<HashMap<String, AtomicU64>>,
    /// Requests a store failure stopped, by kind (`unavailable`, `lagging`, `full`, …).
    store_errors: RwLock<HashMap<&'static str, AtomicU64>>,
    /// `mcp.server.operation.duration`: every MCP request, by method, tool and `error.type`.
    operations: RwLock<HashMap<(&'static str, &'static str, &'static str), Durations>>,
    /// Authenticated MCP requests by the front that answered them: the fast path, rmcp.
    fronts: [AtomicU64; 2],
}

/// A histogram with the MCP conventions' buckets ([`crate::trace::DURATION_BUCKETS`]).
#[derive(Default)]
struct Durations {
    buckets: [AtomicU64; crate::trace::DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Durations {
    fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(first) = crate::trace::DURATION_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
        {
            // Cumulative buckets are summed at render time: one increment per observation.
            self.buckets[first].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &RwLock<HashMap<K, AtomicU64>>, key: K) {
    add(map, key, 1);
}

fn add<K: std::hash::Hash + Eq>(map: &RwLock<HashMap<K, AtomicU64>>, key: K, n: u64) {
    if let Ok(read) = map.read()
        && let Some(counter) = read.get(&key)
    {
        counter.fetch_add(n, Relaxed);
        return;
    }
    if let Ok(mut write) = map.write() {
        write.entry(key).or_default().fetch_add(n, Relaxed);
    }
}

/// Escapes a label value for the Prometheus text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A labelled counter map's rows: each key's label set and its count.
fn rows<K>(
    map: &RwLock<HashMap<K, AtomicU64>>,
    labels: impl Fn(&K) -> String,
) -> Vec<(String, u64)> {
    map.read()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (labels(k), n.load(Relaxed)))
                .collect()
        })
        .unwrap_or_default()
}

/// A counter family: its help and type lines, then one line per label set, sorted.
fn counter(out: &mut String, name: &str, help: &str, mut rows: Vec<(String, u64)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    rows.sort();
    for (labels, n) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {n}");
    }
}

impl Metrics {
    /// One tool call, into the calling tenant's own series.
    pub fn record_call(
        &self,
        calls: &TenantCalls,
        tool: &'static str,
        outcome: &str,
        elapsed: Duration,
    ) {
        let stats = Self::call_stats(calls, tool);
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i].fetch_add(1, Relaxed);
            }
        }
        stats.count.fetch_add(1, Relaxed);
        stats.sum_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
        let slot = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len() - 1);
        stats.outcomes[slot].fetch_add(1, Relaxed);
    }

    fn call_stats(calls: &TenantCalls, tool: &'static str) -> Arc<CallStats> {
        if let Ok(read) = calls.0.read()
            && let Some((_, stats)) = read.iter().find(|(name, _)| *name == tool)
        {
            return stats.clone();
        }
        match calls.0.write() {
            Ok(mut write) => match write.iter().find(|(name, _)| *name == tool) {
                Some((_, stats)) => stats.clone(),
                None => {
                    let stats = Arc::<CallStats>::default();
                    write.push((tool, stats.clone()));
                    stats
                }
            },
            Err(_) => Arc::default(),
        }
    }

    /// One MCP request's duration (`mcp_server_operation_duration_seconds`); `tool` and `error`
    /// are empty when they do not apply.
    pub fn record_operation(
        &self,
        method: &'static str,
        tool: &'static str,
        error: &'static str,
        elapsed: Duration,
    ) {
        let key = (method, tool, error);
        if let Ok(read) = self.operations.read()
            && let Some(durations) = read.get(&key)
        {
            durations.record(elapsed);
            return;
        }
        if let Ok(mut write) = self.operations.write() {
            write.entry(key).or_default().record(elapsed);
        }
    }

    fn render_operations(&self, out: &mut String) {
        let name = "mcp_server_operation_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} MCP request duration as observed on the server (OpenTelemetry mcp.server.operation.duration), by method, tool and error type."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let Ok(operations) = self.operations.read() else {
            return;
        };
        let mut keys: Vec<_> = operations.keys().copied().collect();
        keys.sort_unstable();
        for key @ (method, tool, error) in keys {
            let Some(durations) = operations.get(&key) else {
                continue;
            };
            let labels = format!(
                "mcp_method_name=\"{method}\",gen_ai_tool_name=\"{tool}\",error_type=\"{error}\""
            );
            let mut cumulative = 0;
            for (bound, n) in crate::trace::DURATION_BUCKETS
                .iter()
                .zip(&durations.buckets)
            {
                cumulative += n.load(Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let count = durations.count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(
                out,
                "{name}_sum{{{labels}}} {}",
                durations.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }

    /// One upstream answer; `status` 0 means no answer (timeout, unreachable).
    pub fn record_upstream(&self, upstream: &str, status: u16) {
        let class = match status {
            0 => "none".to_owned(),
            s => format!("{}xx", s / 100),
        };
        bump(&self.upstream, (upstream.to_owned(), class));
        if status == 429 {
            bump(&self.upstream, (upstream.to_owned(), "429".to_owned()));
        }
    }

    /// A wait before an upstream call: for the credential's quota, or a 429's `Retry-After`.
    pub fn record_upstream_wait(&self, upstream: &str, reason: &'static str) {
        bump(&self.upstream_waits, (upstream.to_owned(), reason));
    }

    /// A cacheable upstream read: answered from the cache (`hit`), by sharing a request in
    /// flight (`coalesced`), or by a request of its own (`miss`).
    pub fn record_upstream_cache(&self, upstream: &str, outcome: &'static str) {
        bump(&self.upstream_cache, (upstream.to_owned(), outcome));
    }

    /// An answer the read cache evicted to stay within its bound.
    pub fn record_upstream_cache_eviction(&self, upstream: &str) {
        bump(&self.upstream_cache_evictions, upstream.to_owned());
    }

    /// A request a store failure stopped (the tool or the token check could not be answered),
    /// by the error's kind ([`crate::store::StoreError::kind`]).
    /// An authenticated MCP request answered by the fast path (`true`) or by rmcp's transport.
    pub fn record_front(&self, fast: bool) {
        self.fronts[usize::from(!fast)].fetch_add(1, Relaxed);
    }

    pub fn record_store_error(&self, kind: &'static str) {
        bump(&self.store_errors, kind);
    }

    pub fn record_rate_limited(&self, tenant: &str) {
        bump(&self.rate_limited, tenant.to_owned());
    }

    pub fn record_token_refusal(&self, reason: &str) {
        bump(&self.token_refusals, reason.to_owned());
    }

    /// An anonymous OAuth or sign-in request refused (`endpoint:reason`): counted here and
    /// logged sampled, not audited one by one.
    pub fn record_oauth_refusal(&self, refusal: &str) {
        self.record_oauth_refusal_n(refusal, 1);
    }

    pub fn record_oauth_refusal_n(&self, refusal: &str, n: usize) {
        add(
            &self.oauth_refusals,
            refusal.to_owned(),
            u64::try_from(n).unwrap_or(u64::MAX),
        );
    }

    /// The Prometheus text exposition of everything recorded so far; `tenants` are the tenants'
    /// call series (sorted by id).
    pub fn render<'a>(
        &self,
        tenants: impl IntoIterator<Item = (&'a TenantId, &'a TenantCalls)>,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP studio_mcp_tool_calls_total Tool calls by tenant, tool and outcome."
        );
        let _ = writeln!(out, "# TYPE studio_mcp_tool_calls_total counter");
        let tenants: Vec<_> = tenants
            .into_iter()
            .map(|(tenant, calls)| {
                let mut tools = calls.0.read().map(|t| t.clone()).unwrap_or_default();
                tools.sort_by(|a, b| a.0.cmp(b.0));
                (tenant, tools)
            })
            .filter(|(_, tools)| !tools.is_empty())
            .collect();
        for (tenant, tools) in &tenants {
            for (tool, stats) in tools {
                for (outcome, n) in OUTCOMES.iter().zip(&stats.outcomes) {
                    let n = n.load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "studio_mcp_tool_calls_total{{tenant=\"{}\",tool=\"{}\",outcome=\"{outcome}\"}} {n}",
                            label(tenant.as_str()),
                            label(tool),
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP studio_mcp_tool_call_duration_seconds Tool call latency by tenant and tool."
        );
        let _ = writeln!(
            out,
            "# TYPE studio_mcp_tool_call_duration_seconds histogram"
        );
        for (tenant, tools) in &tenants {
            for (tool, stats) in tools {
                let (t, n) = (label(tenant.as_str()), label(tool));
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "studio_mcp_tool_call_duration_seconds_bucket{{tenant=\"{t}\",tool=\"{n}\",le=\"{bound}\"}} {}",
                        stats.buckets[i].load(Relaxed)
                    );
                }
                let count = stats.count.load(Relaxed);
                let _ = writeln!(
                    out,
                    "studio_mcp_tool_call_duration_seconds_bucket{{tenant=\"{t}\",tool=\"{n}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "studio_mcp_tool_call_duration_seconds_sum{{tenant=\"{t}\",tool=\"{n}\"}} {}",
                    stats.sum_us.load(Relaxed) as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "studio_mcp_tool_call_duration_seconds_count{{tenant=\"{t}\",tool=\"{n}\"}} {count}"
                );
            }
        }
        counter(
            &mut out,
            "studio_mcp_upstream_responses_total",
            "Upstream answers by upstream and status class (429 also counted alone).",
            rows(&self.upstream, |(upstream, status)| {
                format!(
                    "upstream=\"{}\",status=\"{}\"",
                    label(upstream),
                    label(status)
                )
            }),
        );
        counter(
            &mut out,
            "studio_mcp_upstream_waits_total",
            "Waits before an upstream call, by upstream and reason (quota: the credential's published quota; retry_after: a 429's Retry-After).",
            rows(&self.upstream_waits, |(upstream, reason)| {
                format!("upstream=\"{}\",reason=\"{reason}\"", label(upstream))
            }),
        );
        counter(
            &mut out,
            "studio_mcp_upstream_cache_lookups_total",
            "Cacheable upstream reads by upstream and outcome (hit: from the read cache; coalesced: shared an identical request in flight; miss: sent upstream).",
            rows(&self.upstream_cache, |(upstream, outcome)| {
                format!("upstream=\"{}\",outcome=\"{outcome}\"", label(upstream))
            }),
        );
        counter(
            &mut out,
            "studio_mcp_upstream_cache_evictions_total",
            "Answers the upstream read cache evicted to stay within its byte bound, by upstream.",
            rows(&self.upstream_cache_evictions, |upstream| {
                format!("upstream=\"{}\"", label(upstream))
            }),
        );
        counter(
            &mut out,
            "studio_mcp_store_errors_total",
            "Requests a store failure stopped, by kind.",
            rows(&self.store_errors, |kind| format!("kind=\"{kind}\"")),
        );
        counter(
            &mut out,
            "studio_mcp_trace_spans_total",
            "Finished trace spans handed to the OTLP exporter, by fate (exported; dropped: queue_full, export_failed). All zero when export is off.",
            crate::trace::EXPORT
                .snapshot()
                .iter()
                .map(|(outcome, n)| (format!("outcome=\"{outcome}\""), *n))
                .collect(),
        );
        counter(
            &mut out,
            "studio_mcp_mcp_requests_total",
            "Authenticated MCP requests by the front that answered them (fast: the stateless JSON fast path; rmcp: rmcp's transport, for everything the fast path leaves to it).",
            ["fast", "rmcp"]
                .iter()
                .zip(&self.fronts)
                .map(|(front, n)| (format!("front=\"{front}\""), n.load(Relaxed)))
                .collect(),
        );
        self.render_operations(&mut out);
        for (name, help, key, map) in [
            (
                "studio_mcp_rate_limit_refusals_total",
                "Tool calls refused by the per-tenant rate limit.",
                "tenant",
                &self.rate_limited,
            ),
            (
                "studio_mcp_token_refusals_total",
                "MCP requests refused at the edge, by reason.",
                "reason",
                &self.token_refusals,
            ),
            (
                "studio_mcp_oauth_refusals_total",
                "Anonymous OAuth and sign-in requests refused (not audited one by one), and waiting registrations dropped, by endpoint and reason.",
                "refusal",
                &self.oauth_refusals,
            ),
        ] {
            counter(
                &mut out,
                name,
                help,
                rows(map, |k| format!("{key}=\"{}\"", label(k))),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let acme = TenantCalls::default();
        m.record_call(&acme, "whoami", "ok", Duration::from_micros(300));
        m.record_call(&acme, "whoami", "ok", Duration::from_millis(3));
        m.record_call(&acme, "whoami", "not_yours", Duration::from_millis(30));
        m.record_upstream("Webflow", 200);
        m.record_upstream("Webflow", 429);
        m.record_rate_limited("acme");
        m.record_token_refusal("revoked");
        let acme_id = TenantId::parse("acme").unwrap();
        let text = m.render([(&acme_id, &acme)]);
        assert!(text.contains(
            "studio_mcp_tool_calls_total{tenant=\"acme\",tool=\"whoami\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains("le=\"0.0005\"} 1"));
        assert!(text.contains("le=\"0.005\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains(
            "studio_mcp_upstream_responses_total{upstream=\"Webflow\",status=\"429\"} 1"
        ));
        assert!(text.contains("studio_mcp_rate_limit_refusals_total{tenant=\"acme\"} 1"));
        assert!(text.contains("studio_mcp_token_refusals_total{reason=\"revoked\"} 1"));
    }

    #[test]
    fn operation_durations_use_the_conventions_buckets_cumulatively() {
        let m = Metrics::default();
        m.record_operation("tools/call", "whoami", "", Duration::from_millis(5));
        m.record_operation("tools/call", "whoami", "", Duration::from_millis(150));
        m.record_operation("tools/list", "", "-32000", Duration::from_secs(400));
        let text = m.render(std::iter::empty());
        let whoami = "mcp_method_name=\"tools/call\",gen_ai_tool_name=\"whoami\",error_type=\"\"";
        for needle in [
            "# TYPE mcp_server_operation_duration_seconds histogram".to_owned(),
            format!("mcp_server_operation_duration_seconds_bucket{{{whoami},le=\"0.01\"}} 1"),
            format!("mcp_server_operation_duration_seconds_bucket{{{whoami},le=\"0.1\"}} 1"),
            format!("mcp_server_operation_duration_seconds_bucket{{{whoami},le=\"0.2\"}} 2"),
            format!("mcp_server_operation_duration_seconds_bucket{{{whoami},le=\"300\"}} 2"),
            format!("mcp_server_operation_duration_seconds_count{{{whoami}}} 2"),
            "error_type=\"-32000\",le=\"300\"} 0".to_owned(),
            "error_type=\"-32000\",le=\"+Inf\"} 1".to_owned(),
            "studio_mcp_trace_spans_total{outcome=\"queue_full\"}".to_owned(),
        ] {
            assert!(text.contains(&needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn waits_and_store_errors_are_counted_by_their_labels() {
        let m = Metrics::default();
        m.record_upstream_wait("Webflow", "quota");
        m.record_upstream_wait("Webflow", "quota");
        m.record_upstream_wait("GitHub", "retry_after");
        m.record_store_error(crate::store::StoreError::Unavailable("down".into()).kind());
        m.record_store_error(crate::store::StoreError::Lagging("replica b".into()).kind());
        let text = m.render(std::iter::empty());
        for needle in [
            "# TYPE studio_mcp_upstream_waits_total counter",
            "studio_mcp_upstream_waits_total{upstream=\"Webflow\",reason=\"quota\"} 2",
            "studio_mcp_upstream_waits_total{upstream=\"GitHub\",reason=\"retry_after\"} 1",
            "# TYPE studio_mcp_store_errors_total counter",
            "studio_mcp_store_errors_total{kind=\"unavailable\"} 1",
            "studio_mcp_store_errors_total{kind=\"lagging\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // What a store error says (a replica's name, a reason) never becomes a label.
        assert!(!text.contains("replica b") && !text.contains("down"));
    }
}
