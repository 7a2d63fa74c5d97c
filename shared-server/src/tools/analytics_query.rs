//! `analytics_query`: Plausible Stats API v2 for the tenant's own site. The query is checked
//! against the documented vocabulary first, and `site_id` is always the tenant's, whatever the
//! caller sends.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::plausible::QueryResult;

pub struct AnalyticsQuery;

const METRICS: &[&str] = &[
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "scroll_depth",
    "percentage",
    "conversion_rate",
    "group_conversion_rate",
    "average_revenue",
    "total_revenue",
    "time_on_page",
];
const DIMENSIONS: &[&str] = &[
    "event:goal",
    "event:page",
    "event:hostname",
    "visit:entry_page",
    "visit:exit_page",
    "visit:source",
    "visit:referrer",
    "visit:channel",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:device",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
    "visit:country",
    "visit:region",
    "visit:city",
    "visit:country_name",
    "visit:region_name",
    "visit:city_name",
    "time",
    "time:hour",
    "time:day",
    "time:week",
    "time:month",
];
const DATE_RANGES: &[&str] = &[
    "day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all",
];
const FILTER_OPS: &[&str] = &[
    "is",
    "is_not",
    "contains",
    "contains_not",
    "matches",
    "matches_not",
];
const INCLUDE: &[&str] = &["imports", "time_labels", "total_rows"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Metrics to compute, e.g. ["visitors", "pageviews", "bounce_rate"].
    pub metrics: Vec<String>,
    /// "day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all", or
    /// ["YYYY-MM-DD", "YYYY-MM-DD"].
    pub date_range: Value,
    /// Group by, e.g. ["event:page"] or ["visit:source"], or ["time:day"] for a series.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Plausible filters, e.g. [["contains", "event:page", ["/blog"]]].
    #[serde(default)]
    pub filters: Vec<Value>,
    /// e.g. [["visitors", "desc"]]; each key must be a requested metric or dimension.
    #[serde(default)]
    pub order_by: Vec<Value>,
    /// e.g. {"total_rows": true}.
    #[serde(default)]
    pub include: Option<Map<String, Value>>,
    /// Rows to return, 1-10000 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Rows to skip (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// Ignored: queries always run on this tenant's own Plausible site.
    #[serde(default)]
    pub site_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub site_id: String,
    /// Present when the caller named another site: the query ran on the tenant's own instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(flatten)]
    pub result: QueryResult,
}

fn invalid(msg: String) -> ToolError {
    ToolError::InvalidArguments(msg)
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), ToolError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what}: unknown value `{value}` (allowed: {})",
            allowed.join(", ")
        )))
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn check_dimension(what: &str, d: &str) -> Result<(), ToolError> {
    if d.starts_with("event:props:") && d.len() > "event:props:".len() {
        return Ok(());
    }
    one_of(what, d, DIMENSIONS)
}

fn check_filter(f: &Value, depth: usize) -> Result<(), ToolError> {
    let shape = || {
        invalid(format!(
            "filters: `{f}` is not [operator, dimension, [values]]"
        ))
    };
    if depth > 4 {
        return Err(invalid("filters: nested too deeply".into()));
    }
    let parts = f.as_array().ok_or_else(shape)?;
    let op = parts.first().and_then(Value::as_str).ok_or_else(shape)?;
    match op {
        "and" | "or" => {
            let inner = parts.get(1).and_then(Value::as_array).ok_or_else(shape)?;
            inner.iter().try_for_each(|g| check_filter(g, depth + 1))
        }
        "not" => check_filter(parts.get(1).ok_or_else(shape)?, depth + 1),
        _ => {
            one_of("filters operator", op, FILTER_OPS)?;
            let dim = parts.get(1).and_then(Value::as_str).ok_or_else(shape)?;
            check_dimension("filters dimension", dim)?;
            let values = parts.get(2).and_then(Value::as_array).ok_or_else(shape)?;
            if values.is_empty() || !values.iter().all(|v| v.is_string() || v.is_number()) {
                return Err(shape());
            }
            Ok(())
        }
    }
}

/// Validates the arguments and builds the upstream query for `site_id`.
pub fn build_query(args: &Args, site_id: &str) -> Result<Value, ToolError> {
    if args.metrics.is_empty() || args.metrics.len() > 10 {
        return Err(invalid("metrics: give 1 to 10 metrics".into()));
    }
    for m in &args.metrics {
        one_of("metrics", m, METRICS)?;
    }
    match &args.date_range {
        Value::String(s) => one_of("date_range", s, DATE_RANGES)?,
        Value::Array(pair)
            if pair.len() == 2
                && pair.iter().all(|d| d.as_str().is_some_and(is_date))
                && pair[0].as_str() <= pair[1].as_str() => {}
        other => {
            return Err(invalid(format!(
                "date_range: `{other}` is neither a named range ({}) nor [\"YYYY-MM-DD\", \"YYYY-MM-DD\"] in order",
                DATE_RANGES.join(", ")
            )));
        }
    }
    if args.dimensions.len() > 5 {
        return Err(invalid("dimensions: at most 5".into()));
    }
    for d in &args.dimensions {
        check_dimension("dimensions", d)?;
    }
    for f in &args.filters {
        check_filter(f, 0)?;
    }
    for o in &args.order_by {
        let pair = o.as_array().filter(|p| p.len() == 2);
        let key = pair.and_then(|p| p[0].as_str());
        let dir = pair.and_then(|p| p[1].as_str());
        match (key, dir) {
            (Some(k), Some("asc" | "desc"))
                if args.metrics.iter().any(|m| m == k)
                    || args.dimensions.iter().any(|d| d == k) => {}
            _ => {
                return Err(invalid(format!(
                    "order_by: `{o}` must be [requested metric or dimension, \"asc\" | \"desc\"]"
                )));
            }
        }
    }
    if let Some(include) = &args.include {
        for (k, v) in include {
            one_of("include", k, INCLUDE)?;
            if !v.is_boolean() {
                return Err(invalid(format!("include.{k}: must be true or false")));
            }
        }
    }
    let limit = args.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid(format!(
            "limit must be between 1 and 10000, got {limit}"
        )));
    }
    let mut query = json!({
        "site_id": site_id,
        "metrics": args.metrics,
        "date_range": args.date_range,
        "pagination": {"limit": limit, "offset": args.offset.unwrap_or(0)},
    });
    if !args.dimensions.is_empty() {
        query["dimensions"] = json!(args.dimensions);
    }
    if !args.filters.is_empty() {
        query["filters"] = json!(args.filters);
    }
    if !args.order_by.is_empty() {
        query["order_by"] = json!(args.order_by);
    }
    if let Some(include) = &args.include {
        query["include"] = Value::Object(include.clone());
    }
    Ok(query)
}

impl Tool for AnalyticsQuery {
    const NAME: &'static str = "analytics_query";
    const TITLE: &'static str = "Query site analytics";
    const DESCRIPTION: &'static str = "Query this tenant's Plausible analytics (Stats API v2): metrics such as \
         visitors, pageviews, bounce_rate, visit_duration over a date range, optionally grouped by \
         dimensions (event:page, visit:source, visit:country, time:day…), filtered and ordered. \
         Always runs on the tenant's own site.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Analytics);
    type Args = Args;
    type Output = Output;

    fn available(tenant: &Tenant) -> bool {
        tenant.plausible_site.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site =
            ctx.tenant.plausible_site.as_ref().ok_or_else(|| {
                ToolError::NotPermitted("this tenant has no analytics site".into())
            })?;
        let query = build_query(&args, site.as_str())?;
        let result = ctx.plausible()?.query(&query).await?;
        let note = args
            .site_id
            .as_deref()
            .filter(|asked| !asked.eq_ignore_ascii_case(site.as_str()))
            .map(|_| {
                format!(
                    "site_id ignored: analytics always run on this tenant's site {}",
                    site.as_str()
                )
            });
        Ok(Output {
            site_id: site.as_str().to_owned(),
            note,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_site_is_always_the_tenants() {
        let q = build_query(
            &args(json!({"metrics": ["visitors"], "date_range": "7d", "site_id": "evil.com"})),
            "acme.example",
        )
        .unwrap();
        assert_eq!(q["site_id"], "acme.example");
    }

    #[test]
    fn bad_vocabulary_is_named() {
        let cases = [
            (
                json!({"metrics": ["visitorz"], "date_range": "7d"}),
                "visitorz",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": "fortnight"}),
                "date_range",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": ["2026-02-01", "2026-01-01"]}),
                "date_range",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:shoe"]}),
                "visit:shoe",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["like", "event:page", ["/"]]]}),
                "like",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": "7d", "order_by": [["pageviews", "desc"]]}),
                "order_by",
            ),
            (
                json!({"metrics": ["visitors"], "date_range": "7d", "limit": 0}),
                "limit",
            ),
        ];
        for (v, needle) in cases {
            let err = build_query(&args(v.clone()), "a.example")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{v}: {err}");
        }
        let ok = json!({"metrics": ["visitors", "bounce_rate"], "date_range": ["2026-01-01", "2026-01-31"],
            "dimensions": ["event:page", "event:props:author"], "order_by": [["visitors", "desc"]],
            "filters": [["and", [["contains", "event:page", ["/blog"]], ["not", ["is", "visit:country", ["US"]]]]]],
            "include": {"total_rows": true}});
        build_query(&args(ok), "a.example").unwrap();
    }
}
