//! Sandbox Plausible Stats API v2: `POST /api/v2/query`, with Plausible's request schema, error
//! bodies (`{"error": "…"}`) and answer shape (`results`, `meta`, `query`), scoped like a Stats
//! API key whose account can read one site.
//!
//! Shapes follow plausible.io/docs/stats-api and its example responses. Where the page is silent,
//! Plausible's own source decides: `AuthorizePublicAPI` for the auth answers, the query JSON
//! schema and `JSONSchema.format_errors` for validation messages, `QueryResult` for the echoed
//! query. Numbers are made up but deterministic: a hash of owner and row, scaled by range length.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Caller, Fixture, bearer_token, civil_from_days};

/// The metrics the Stats API documents; anything else is a validation error.
pub const METRICS: [&str; 14] = [
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

/// The documented `date_range` shorthands; a `["YYYY-MM-DD", "YYYY-MM-DD"]` pair also works.
pub const DATE_RANGES: [&str; 10] = [
    "day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all",
];

/// Event and visit dimensions, as listed by the query schema (`simple_filter_dimensions`).
const SIMPLE_DIMENSIONS: [&str; 26] = [
    "event:name",
    "event:page",
    "event:hostname",
    "visit:source",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:screen",
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
    "visit:entry_page",
    "visit:exit_page",
    "visit:entry_page_hostname",
    "visit:exit_page_hostname",
];
const GOAL_DIMENSION: &str = "event:goal";
const PROPS_PREFIX: &str = "event:props:";
const TIME_DIMENSIONS: [&str; 5] = ["time", "time:month", "time:week", "time:day", "time:hour"];
const FILTER_OPERATORS: [&str; 6] = [
    "is",
    "is_not",
    "contains",
    "contains_not",
    "matches",
    "matches_not",
];
/// Top-level keys of a query object; the schema allows no others.
const QUERY_KEYS: [&str; 8] = [
    "site_id",
    "metrics",
    "date_range",
    "dimensions",
    "filters",
    "order_by",
    "include",
    "pagination",
];
const INCLUDE_FLAGS: [&str; 3] = ["imports", "time_labels", "total_rows"];
/// Plausible's documented default page: `{"limit": 10000, "offset": 0}`.
const DEFAULT_LIMIT: u64 = 10_000;
/// Rows one query may produce before paging, so an hourly breakdown over "all" stays cheap.
const MAX_ROWS: usize = 20_000;
/// Day every sandbox site's stats start, which `"all"` counts from (the Webflow site's birthday).
const STATS_START: (i64, u32, u32) = (2021, 3, 15);
/// Paths served for `event:page`, `visit:entry_page` and `visit:exit_page`, each tagged.
const PAGE_PATHS: [&str; 5] = ["/home", "/about", "/contact", "/blog/hello", "/blog/launch"];
/// The Stats API's default per-key hourly limit, quoted in its 429 message.
const HOURLY_LIMIT: u32 = 600;

const MISSING_KEY: &str =
    "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
const INVALID_KEY_OR_SITE: &str = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";
const MISSING_SITE_ID: &str =
    "Missing site ID. Please provide the required site_id parameter with your request.";

/// Plausible routes, ready to merge into the sandbox app.
pub(crate) fn router(state: Arc<PlausibleState>) -> Router {
    Router::new()
        .route("/api/v2/query", post(query))
        .with_state(state)
}

/// Which owner each Plausible site (domain) belongs to. Read-only: answers are computed.
pub(crate) struct PlausibleState {
    sites: HashMap<String, String>,
}

impl PlausibleState {
    pub(crate) fn new(fixture: &Fixture) -> PlausibleState {
        PlausibleState {
            sites: fixture
                .owners
                .iter()
                .map(|o| (o.plausible_site.clone(), o.owner.clone()))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, in Plausible's body shape: {"error": "…"}

#[derive(Debug)]
pub(crate) struct PlausibleError {
    status: StatusCode,
    message: String,
}

impl PlausibleError {
    fn new(status: StatusCode, message: impl Into<String>) -> PlausibleError {
        PlausibleError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> PlausibleError {
        PlausibleError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Unknown key, and also a site the key cannot read: Plausible answers both with the same
    /// `401` (`AuthorizePublicAPI`: `find_site` and `verify_site_access` both yield
    /// `:invalid_api_key`), so a foreign site looks exactly like a wrong key or a missing site.
    fn invalid_key_or_site() -> PlausibleError {
        PlausibleError::new(StatusCode::UNAUTHORIZED, INVALID_KEY_OR_SITE)
    }

    /// The message Plausible uses for `status`, for injected failures and unknown routes.
    fn for_status(status: StatusCode) -> PlausibleError {
        let message = match status.as_u16() {
            400 => "Bad request".to_owned(),
            401 => INVALID_KEY_OR_SITE.to_owned(),
            402 => "The account that owns this API key does not have access to Stats API. Please make sure you're using the API key of a subscriber account and that the subscription plan includes Stats API".to_owned(),
            404 => "Not found".to_owned(),
            429 => format!(
                "Too many API requests. Your API key is limited to {HOURLY_LIMIT} requests per hour. Please contact us to request more capacity."
            ),
            s if s >= 500 => "internal server error".to_owned(),
            _ => status
                .canonical_reason()
                .unwrap_or("Bad request")
                .to_owned(),
        };
        PlausibleError::new(status, message)
    }
}

impl IntoResponse for PlausibleError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// Plausible's error answer for `status`.
pub(crate) fn error_response(status: StatusCode) -> Response {
    PlausibleError::for_status(status).into_response()
}

type Answer<T> = Result<T, PlausibleError>;

// ---------------------------------------------------------------------------------------------
// The handler

/// `POST /api/v2/query`, checked in Plausible's order: body parsing (endpoint), then the auth
/// plug (key, `site_id`, site access), then the query schema, then the query's own rules.
async fn query(
    State(state): State<Arc<PlausibleState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<axum::Json<Value>> {
    let params = body_params(&headers, &body)?;
    let Some(owner) = caller.owner.as_deref() else {
        return Err(if bearer_token(&headers).is_some() {
            PlausibleError::invalid_key_or_site()
        } else {
            PlausibleError::new(StatusCode::UNAUTHORIZED, MISSING_KEY)
        });
    };
    let site_id = match params.get("site_id") {
        None | Some(Value::Null) => return Err(PlausibleError::bad_request(MISSING_SITE_ID)),
        Some(Value::String(site)) if state.sites.get(site).map(String::as_str) == Some(owner) => {
            site.clone()
        }
        Some(_) => return Err(PlausibleError::invalid_key_or_site()),
    };
    let goals = dimension_values(GOAL_DIMENSION, owner, &DateRange::default());
    let query =
        Query::parse(&params, site_id, today(), &goals).map_err(PlausibleError::bad_request)?;
    Ok(axum::Json(query.run(owner)))
}

/// The request's parameters. Phoenix parses a body only when it is declared JSON; otherwise the
/// query has no parameters at all, and fails as a request without `site_id`.
fn body_params(headers: &HeaderMap, body: &[u8]) -> Answer<Map<String, Value>> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(PlausibleError::bad_request(
            "Invalid request body: expected a JSON object",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Query parsing and validation

#[derive(Debug, Clone, Default, PartialEq)]
struct DateRange {
    first: i64,
    last: i64,
    /// As the answer's `query.date_range` shows it.
    shown: [String; 2],
}

#[derive(Debug, Clone)]
struct Query {
    site_id: String,
    metrics: Vec<String>,
    range: DateRange,
    /// With `"time"` resolved to the bucket Plausible would pick for the range.
    dimensions: Vec<String>,
    filters: Vec<Value>,
    /// `(metric or dimension, descending)`.
    order_by: Vec<(String, bool)>,
    include: Map<String, Value>,
    limit: u64,
    offset: u64,
}

impl Query {
    /// Validates `params` the way the query schema does (every problem, one per line, as
    /// `#/path: message`), then the rules the schema cannot state.
    fn parse(
        params: &Map<String, Value>,
        site_id: String,
        today: i64,
        owner_goals: &[String],
    ) -> Result<Query, String> {
        let mut errors = Vec::new();
        for key in params.keys() {
            if !QUERY_KEYS.contains(&key.as_str()) {
                errors.push(format!(
                    "#/{key}: Schema does not allow additional properties."
                ));
            }
        }
        let missing: Vec<&str> = ["metrics", "date_range"]
            .into_iter()
            .filter(|key| !params.contains_key(*key))
            .collect();
        match missing.as_slice() {
            [] => {}
            [one] => errors.push(format!("#: Required property {one} was not present.")),
            many => errors.push(format!(
                "#: Required properties {} were not present.",
                many.join(", ")
            )),
        }

        let metrics = params
            .get("metrics")
            .map(|v| {
                string_list(v, "metrics", true, &mut errors, |m| {
                    METRICS.contains(&m).then(|| m.to_owned())
                })
            })
            .unwrap_or_default();
        if matches!(params.get("metrics"), Some(Value::Array(items)) if items.is_empty()) {
            errors.push("#/metrics: Expected a minimum of 1 items but got 0.".to_owned());
        }
        let range = params.get("date_range").and_then(|v| {
            let range = date_range(v, today);
            if range.is_none() {
                errors.push(format!("#/date_range: Invalid date range {}", inspect(v)));
            }
            range
        });
        let dimensions = params
            .get("dimensions")
            .map(|v| string_list(v, "dimensions", false, &mut errors, dimension))
            .unwrap_or_default();
        let filters = match params.get("filters") {
            None => Vec::new(),
            Some(Value::Array(filters)) => {
                for (i, filter) in filters.iter().enumerate() {
                    if !valid_filter(filter) {
                        errors.push(format!("#/filters/{i}: Invalid filter {}", inspect(filter)));
                    }
                }
                filters.clone()
            }
            Some(other) => {
                errors.push(type_mismatch("filters", "Array", other));
                Vec::new()
            }
        };
        let order_by = match params.get("order_by") {
            None => None,
            Some(Value::Array(entries)) => Some(
                entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, entry)| {
                        order_by_entry(entry, i).map_err(|e| errors.push(e)).ok()
                    })
                    .collect::<Vec<_>>(),
            ),
            Some(other) => {
                errors.push(type_mismatch("order_by", "Array", other));
                None
            }
        };
        let include = params
            .get("include")
            .map(|v| include(v, &mut errors))
            .unwrap_or_default();
        let (limit, offset) = params
            .get("pagination")
            .map(|v| pagination(v, &mut errors))
            .unwrap_or((DEFAULT_LIMIT, 0));

        let Some(range) = range.filter(|_| errors.is_empty()) else {
            return Err(errors.join("\n"));
        };

        // Past the schema: rules about how the parts fit together.
        let dimensions: Vec<String> = dimensions
            .into_iter()
            .map(|d| {
                if d == "time" {
                    resolve_time(&range).to_owned()
                } else {
                    d
                }
            })
            .collect();
        let order_by = match order_by {
            Some(entries) => {
                for (name, descending) in &entries {
                    if !metrics.contains(name) && !dimensions.contains(name) {
                        // Elixir prints the parsed entry: metrics are atoms, dimensions strings.
                        let shown = if METRICS.contains(&name.as_str()) {
                            format!(":{name}")
                        } else {
                            inspect(&Value::String(name.clone()))
                        };
                        let direction = if *descending { "desc" } else { "asc" };
                        return Err(format!(
                            "Invalid order_by entry '{{{shown}, :{direction}}}'. Entry is not a queried metric or dimension."
                        ));
                    }
                }
                entries
            }
            // Plausible's default: time buckets ascending, then the first metric descending.
            None => dimensions
                .iter()
                .filter(|d| d.starts_with("time"))
                .map(|d| (d.clone(), false))
                .chain(metrics.first().map(|m| (m.clone(), true)))
                .collect(),
        };
        check_fit(&metrics, &dimensions, &filters, &include, owner_goals)?;
        Ok(Query {
            site_id,
            metrics,
            range,
            dimensions,
            filters,
            order_by,
            include,
            limit,
            offset,
        })
    }
}

/// The rules Plausible checks once the schema passes, with its messages.
fn check_fit(
    metrics: &[String],
    dimensions: &[String],
    filters: &[Value],
    include: &Map<String, Value>,
    goals: &[String],
) -> Result<(), String> {
    let simple_filters: Vec<(&str, &str, &Vec<Value>)> = filters
        .iter()
        .filter_map(|f| match f.as_array().map(Vec::as_slice) {
            Some(
                [
                    Value::String(op),
                    Value::String(dim),
                    Value::Array(clauses),
                    ..,
                ],
            ) => Some((op.as_str(), dim.as_str(), clauses)),
            _ => None,
        })
        .collect();
    for filter in filters {
        let Some(
            [
                Value::String(op),
                Value::String(dim),
                Value::Array(clauses),
                ..,
            ],
        ) = filter.as_array().map(Vec::as_slice)
        else {
            continue;
        };
        let (op, dim) = (&op.as_str(), &dim.as_str());
        if clauses.iter().any(Value::is_i64) && *dim != "visit:city" {
            return Err(format!("Invalid filter '{}'.", inspect(filter)));
        }
        let two_letters = |c: &Value| c.as_str().is_some_and(|c| c.chars().count() == 2);
        if *dim == "visit:country"
            && matches!(*op, "is" | "is_not")
            && !clauses.iter().all(two_letters)
        {
            return Err("Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.".to_owned());
        }
        if *dim == GOAL_DIMENSION && *op == "is" {
            for goal in clauses.iter().filter_map(Value::as_str) {
                if !goals.iter().any(|g| g == goal) {
                    return Err(format!(
                        "The goal `{goal}` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
                    ));
                }
            }
        }
    }
    if include.get("time_labels") == Some(&Value::Bool(true))
        && !dimensions.iter().any(|d| d.starts_with("time"))
    {
        return Err("Invalid include.time_labels: requires a time dimension.".to_owned());
    }
    let goal_query = dimensions.iter().any(|d| d == GOAL_DIMENSION)
        || simple_filters
            .iter()
            .any(|(_, dim, _)| *dim == GOAL_DIMENSION);
    for metric in metrics {
        match metric.as_str() {
            "conversion_rate" | "group_conversion_rate" if !goal_query => {
                return Err(format!(
                    "Metric `{metric}` can only be queried with event:goal filters or dimensions."
                ));
            }
            "views_per_visit" if !dimensions.is_empty() => {
                return Err(
                    "Metric `views_per_visit` cannot be queried with `dimensions`.".to_owned(),
                );
            }
            "views_per_visit"
                if simple_filters
                    .iter()
                    .any(|(_, dim, _)| *dim == "event:page") =>
            {
                return Err(
                    "Metric `views_per_visit` cannot be queried with a filter on `event:page`."
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    // Session metrics are per visit; Plausible refuses them against per-event groupings (the
    // page is the exception it allows).
    let session: Vec<&str> = metrics
        .iter()
        .map(String::as_str)
        .filter(|m| matches!(*m, "bounce_rate" | "views_per_visit" | "visit_duration"))
        .collect();
    let event_dimension = dimensions
        .iter()
        .any(|d| d.starts_with("event:") && d != "event:page" && d != GOAL_DIMENSION);
    if !session.is_empty() && event_dimension {
        return Err(format!(
            "Session metric(s) `{}` cannot be queried along with event dimensions.",
            session.join(", ")
        ));
    }
    Ok(())
}

/// A list of strings, each accepted by `item` (which may normalise it), else schema errors.
fn string_list(
    value: &Value,
    key: &str,
    is_metric: bool,
    errors: &mut Vec<String>,
    item: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let Value::Array(items) = value else {
        errors.push(type_mismatch(key, "Array", value));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, raw) in items.iter().enumerate() {
        match raw.as_str().and_then(&item) {
            Some(parsed) => out.push(parsed),
            None => {
                let what = if is_metric { "metric" } else { "dimension" };
                errors.push(format!("#/{key}/{i}: Invalid {what} {}", inspect(raw)));
            }
        }
    }
    let unique = items
        .iter()
        .enumerate()
        .all(|(i, a)| items[..i].iter().all(|b| a != b));
    if !unique {
        errors.push(format!(
            "#/{key}: Expected items to be unique but they were not."
        ));
    }
    out
}

fn dimension(name: &str) -> Option<String> {
    let known = SIMPLE_DIMENSIONS.contains(&name)
        || TIME_DIMENSIONS.contains(&name)
        || name == GOAL_DIMENSION
        || name
            .strip_prefix(PROPS_PREFIX)
            .is_some_and(|prop| !prop.is_empty());
    known.then(|| name.to_owned())
}

/// A dimension a filter may name: like a grouping one, but not a time bucket.
fn filter_dimension(name: &str) -> bool {
    dimension(name).is_some() && !TIME_DIMENSIONS.contains(&name)
}

/// `[op, dimension, [clauses…]]` (plus an optional modifiers object), or the logical wrappers
/// `["and"|"or", [filters…]]` and `["not", filter]`.
fn valid_filter(filter: &Value) -> bool {
    let Value::Array(parts) = filter else {
        return false;
    };
    match parts.as_slice() {
        [Value::String(op), Value::Array(inner)] if op == "and" || op == "or" => {
            !inner.is_empty() && inner.iter().all(valid_filter)
        }
        [Value::String(op), inner] if op == "not" => valid_filter(inner),
        [
            Value::String(op),
            Value::String(dim),
            Value::Array(clauses),
            rest @ ..,
        ] => {
            let goal_ok = dim != GOAL_DIMENSION || op == "is" || op == "contains";
            FILTER_OPERATORS.contains(&op.as_str())
                && filter_dimension(dim)
                && goal_ok
                && clauses
                    .iter()
                    .all(|c| c.is_string() || c.is_i64() || c.is_u64())
                && matches!(rest, [] | [Value::Object(_)])
        }
        _ => false,
    }
}

/// `[metric or dimension, "asc"|"desc"]`, or the schema error for entry `i`.
fn order_by_entry(entry: &Value, i: usize) -> Result<(String, bool), String> {
    let Some([name, direction]) = entry.as_array().map(Vec::as_slice) else {
        return Err(format!(
            "#/order_by/{i}: Invalid value in order_by {}",
            inspect(entry)
        ));
    };
    let name = name
        .as_str()
        .filter(|n| METRICS.contains(n) || dimension(n).is_some())
        .ok_or_else(|| {
            format!(
                "#/order_by/{i}/0: Invalid value in order_by {}",
                inspect(name)
            )
        })?;
    let descending = match direction.as_str() {
        Some("desc") => true,
        Some("asc") => false,
        _ => return Err(format!("#/order_by/{i}/1: Value is not allowed in enum.")),
    };
    Ok((name.to_owned(), descending))
}

fn include(value: &Value, errors: &mut Vec<String>) -> Map<String, Value> {
    let Value::Object(map) = value else {
        errors.push(type_mismatch("include", "Object", value));
        return Map::new();
    };
    for (key, flag) in map {
        if key == "compare" || key == "comparisons" {
            // Period comparisons are accepted and echoed; the sandbox computes none.
        } else if !INCLUDE_FLAGS.contains(&key.as_str()) {
            errors.push(format!(
                "#/include/{key}: Schema does not allow additional properties."
            ));
        } else if !flag.is_boolean() {
            errors.push(type_mismatch(&format!("include/{key}"), "Boolean", flag));
        }
    }
    map.clone()
}

fn pagination(value: &Value, errors: &mut Vec<String>) -> (u64, u64) {
    let Value::Object(map) = value else {
        errors.push(type_mismatch("pagination", "Object", value));
        return (DEFAULT_LIMIT, 0);
    };
    let mut read = |key: &str, min: u64, default: u64| match map.get(key) {
        None => default,
        Some(v) => match v.as_u64() {
            Some(n) if n >= min => n,
            _ if v.is_i64() => {
                errors.push(format!(
                    "#/pagination/{key}: Expected the value to be >= {min}"
                ));
                default
            }
            _ => {
                errors.push(type_mismatch(&format!("pagination/{key}"), "Integer", v));
                default
            }
        },
    };
    let limit = read("limit", 1, DEFAULT_LIMIT);
    let offset = read("offset", 0, 0);
    for key in map.keys() {
        if key != "limit" && key != "offset" {
            errors.push(format!(
                "#/pagination/{key}: Schema does not allow additional properties."
            ));
        }
    }
    (limit, offset)
}

fn type_mismatch(path: &str, expected: &str, got: &Value) -> String {
    let got = match got {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    };
    format!("#/{path}: Type mismatch. Expected {expected} but got {got}.")
}

/// A JSON value as Elixir's `inspect` prints its decoded form, which Plausible's messages quote.
fn inspect(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inspect).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "%{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{} => {}", inspect(&Value::String(k.clone())), inspect(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Dates (UTC, the sandbox sites' time zone), as day numbers since 1970-01-01

fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (secs / 86_400) as i64
}

/// Inverse of [`civil_from_days`] (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    (next - days_from_civil(year, month, 1)) as u32
}

/// First day of the month `back` months before the month of `day`.
fn month_start(day: i64, back: i64) -> i64 {
    let (year, month, _) = civil_from_days(day);
    let index = year * 12 + i64::from(month) - 1 - back;
    days_from_civil(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32, 1)
}

fn format_day(day: i64) -> String {
    let (year, month, dom) = civil_from_days(day);
    format!("{year:04}-{month:02}-{dom:02}")
}

/// `YYYY-MM-DD`, a real calendar day.
fn parse_day(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: u32 = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    ((1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day))
        .then(|| days_from_civil(year, month, day))
}

/// `YYYY-MM-DDTHH:MM:SS` plus `Z` or `±HH:MM` (fractions allowed): the day part, if well formed.
fn parse_datetime(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let day = parse_day(date)?;
    let digits = |s: &str, max: u32| s.len() == 2 && s.parse::<u32>().is_ok_and(|n| n <= max);
    let (clock, zone_ok) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, true)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let zone = zone.get(1..)?;
        let zone_ok = zone
            .split_once(':')
            .is_some_and(|(h, m)| digits(h, 23) && digits(m, 59));
        (clock, zone_ok)
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, _)| whole);
    let mut parts = clock.split(':');
    let clock_ok = [23, 59, 59]
        .iter()
        .all(|max| parts.next().is_some_and(|p| digits(p, *max)))
        && parts.next().is_none();
    (zone_ok && clock_ok).then_some(day)
}

/// A `date_range` as Plausible resolves it against `today` (UTC).
fn date_range(value: &Value, today: i64) -> Option<DateRange> {
    let whole_days = |first: i64, last: i64| DateRange {
        first,
        last,
        shown: [
            format!("{}T00:00:00+00:00", format_day(first)),
            format!("{}T23:59:59+00:00", format_day(last)),
        ],
    };
    match value {
        Value::String(shorthand) => {
            let (first, last) = match shorthand.as_str() {
                "day" => (today, today),
                "7d" | "28d" | "30d" | "91d" => {
                    let n: i64 = shorthand.trim_end_matches('d').parse().ok()?;
                    (today - n, today - 1)
                }
                "month" => (month_start(today, 0), month_start(today, -1) - 1),
                "6mo" | "12mo" => {
                    let n: i64 = shorthand.trim_end_matches("mo").parse().ok()?;
                    (month_start(today, n), month_start(today, 0) - 1)
                }
                "year" => {
                    let (year, _, _) = civil_from_days(today);
                    (
                        days_from_civil(year, 1, 1),
                        days_from_civil(year + 1, 1, 1) - 1,
                    )
                }
                "all" => {
                    let (y, m, d) = STATS_START;
                    (days_from_civil(y, m, d).min(today), today)
                }
                _ => return None,
            };
            Some(whole_days(first, last))
        }
        Value::Array(pair) => {
            let [Value::String(from), Value::String(to)] = pair.as_slice() else {
                return None;
            };
            if let (Some(first), Some(last)) = (parse_day(from), parse_day(to)) {
                return (first <= last).then(|| whole_days(first, last));
            }
            let (first, last) = (parse_datetime(from)?, parse_datetime(to)?);
            (first <= last).then(|| DateRange {
                first,
                last,
                shown: [from.clone(), to.clone()],
            })
        }
        _ => None,
    }
}

/// The bucket Plausible picks for a bare `"time"`: hours for one day, days up to about a
/// month, months beyond.
fn resolve_time(range: &DateRange) -> &'static str {
    match range.last - range.first + 1 {
        1 => "time:hour",
        2..=40 => "time:day",
        _ => "time:month",
    }
}

/// Every bucket label of a time dimension over `range`, in Plausible's label formats.
fn time_labels(dimension: &str, range: &DateRange) -> Vec<String> {
    let days = range.first..=range.last;
    match dimension {
        "time:hour" => days
            .flat_map(|d| (0..24).map(move |h| format!("{} {h:02}:00:00", format_day(d))))
            .collect(),
        // Weeks start on Monday; the first one is cut at the range start. 1970-01-01 was a
        // Thursday, so day numbers ≡ 4 (mod 7) are Mondays.
        "time:week" => days
            .filter(|d| *d == range.first || d.rem_euclid(7) == 4)
            .map(format_day)
            .collect(),
        "time:month" => {
            let mut labels: Vec<String> = days.map(|d| format_day(month_start(d, 0))).collect();
            labels.dedup();
            labels
        }
        _ => days.map(format_day).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// The values a dimension takes for `owner`. Page-like dimensions are all tagged paths; every
/// other non-time dimension has one tagged value, so a leaked row is findable by substring.
fn dimension_values(dimension: &str, owner: &str, range: &DateRange) -> Vec<String> {
    let mark = format!("(owner:{owner})");
    let plain: &[&str] = match dimension {
        "event:page" | "visit:entry_page" | "visit:exit_page" => {
            return PAGE_PATHS
                .iter()
                .map(|path| format!("{path}-{mark}"))
                .collect();
        }
        d if d.starts_with("time") => return time_labels(d, range),
        "event:goal" => &["Visit /contact", "Outbound Link: Click"],
        "event:name" => &["pageview", "Outbound Link: Click"],
        "event:hostname" | "visit:entry_page_hostname" | "visit:exit_page_hostname" => {
            return vec![
                format!("{owner}.example"),
                format!("www.{owner}.example {mark}"),
            ];
        }
        "visit:source" => &["Google", "Direct / None", "DuckDuckGo"],
        "visit:referrer" => &["https://www.google.com/", "Direct / None"],
        "visit:utm_source" => &["newsletter", "twitter"],
        "visit:utm_medium" => &["email", "social"],
        "visit:utm_campaign" => &["spring-launch", "(not set)"],
        "visit:country" => &["DE", "US", "GB"],
        "visit:country_name" => &["Germany", "United States", "United Kingdom"],
        "visit:region" => &["DE-BE", "US-CA"],
        "visit:region_name" => &["Berlin", "California"],
        "visit:city" | "visit:city_name" => &["Berlin", "San Francisco"],
        "visit:device" => &["Desktop", "Mobile", "Tablet"],
        "visit:screen" => &["Desktop", "Mobile"],
        "visit:browser" => &["Chrome", "Firefox", "Safari"],
        "visit:os" => &["Mac", "Windows", "GNU/Linux", "iOS"],
        _ => &["(none)"],
    };
    let tagged = match dimension {
        "event:goal" => format!("Signup {mark}"),
        "visit:source" => format!("Newsletter {mark}"),
        _ => format!("Other {mark}"),
    };
    plain
        .iter()
        .map(|v| (*v).to_owned())
        .chain(std::iter::once(tagged))
        .collect()
}

/// A deterministic pseudo-random stream seeded from its parts (SHA-256 seed, SplitMix64 steps).
struct Numbers(u64);

impl Numbers {
    fn new(parts: &[&str]) -> Numbers {
        let digest = Sha256::digest(parts.join("\0"));
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        Numbers(u64::from_be_bytes(seed))
    }

    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below.max(1)
    }
}

fn round_to(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// `$1,234.50`.
fn money_long(value: f64) -> String {
    let cents = (value * 100.0).round() as u64;
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("${grouped}.{:02}", cents % 100)
}

/// `$1.2K`, `$3.4M`, `$56`.
fn money_short(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("${:.1}M", value / 1_000_000.0)
    } else if value >= 1_000.0 {
        format!("${:.1}K", value / 1_000.0)
    } else {
        format!("${value:.0}")
    }
}

/// Revenue metrics come as money objects, like Plausible's.
fn money(value: f64) -> Value {
    json!({
        "short": money_short(value),
        "long": money_long(value),
        "value": round_to(value, 2),
        "currency": "USD",
    })
}

/// One result row before paging: its dimension values and every metric Plausible knows.
struct Row {
    dimensions: Vec<String>,
    visitors: u64,
    values: HashMap<&'static str, Value>,
}

impl Row {
    fn new(owner: &str, dimensions: Vec<String>, scale: u64) -> Row {
        let key = dimensions.join("\u{1f}");
        let mut n = Numbers::new(&[owner, &key]);
        let visitors = (3 + n.next(47)) * scale;
        let visits = visitors + visitors * n.next(30) / 100;
        let pageviews = visits + visits * (40 + n.next(160)) / 100;
        let events = pageviews + n.next(12) * scale;
        let revenue = (visitors * (10 + n.next(90))) as f64 / 10.0;
        let converting = visitors * (1 + n.next(20)) / 100;
        let mut values = HashMap::new();
        values.insert("visitors", json!(visitors));
        values.insert("visits", json!(visits));
        values.insert("pageviews", json!(pageviews));
        values.insert(
            "views_per_visit",
            json!(round_to(pageviews as f64 / visits.max(1) as f64, 2)),
        );
        values.insert("bounce_rate", json!(25 + n.next(50)));
        values.insert("visit_duration", json!(20 + n.next(280)));
        values.insert("events", json!(events));
        values.insert("scroll_depth", json!(20 + n.next(75)));
        values.insert("time_on_page", json!(10 + n.next(200)));
        values.insert(
            "conversion_rate",
            json!(round_to(n.next(1_500) as f64 / 100.0, 2)),
        );
        values.insert(
            "group_conversion_rate",
            json!(round_to(n.next(2_500) as f64 / 100.0, 2)),
        );
        values.insert("total_revenue", money(revenue));
        values.insert("average_revenue", money(revenue / converting.max(1) as f64));
        Row {
            dimensions,
            visitors,
            values,
        }
    }

    /// The sort key for one `order_by` entry: a dimension's value or a metric's number.
    fn key(&self, name: &str, dimensions: &[String]) -> SortKey {
        if let Some(i) = dimensions.iter().position(|d| d == name) {
            return SortKey::Text(self.dimensions.get(i).cloned().unwrap_or_default());
        }
        let value = self.values.get(name);
        let number = value
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.get("value").and_then(Value::as_f64))
            })
            .unwrap_or(0.0);
        SortKey::Number(number)
    }
}

enum SortKey {
    Text(String),
    Number(f64),
}

impl SortKey {
    fn cmp(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(_), SortKey::Number(_)) => Ordering::Less,
            (SortKey::Number(_), SortKey::Text(_)) => Ordering::Greater,
        }
    }
}

/// Whether a row passes the query's top-level filters on its own dimensions. Filters on other
/// dimensions, regex matches and logical wrappers are accepted but do not narrow the rows.
fn passes(row: &Row, filters: &[Value], dimensions: &[String]) -> bool {
    filters.iter().all(|filter| {
        let Some(
            [
                Value::String(op),
                Value::String(dim),
                Value::Array(clauses),
                ..,
            ],
        ) = filter.as_array().map(Vec::as_slice)
        else {
            return true;
        };
        let Some(value) = dimensions
            .iter()
            .position(|d| d == dim)
            .and_then(|i| row.dimensions.get(i))
        else {
            return true;
        };
        let clauses: Vec<&str> = clauses.iter().filter_map(Value::as_str).collect();
        match op.as_str() {
            "is" => clauses.contains(&value.as_str()),
            "is_not" => !clauses.contains(&value.as_str()),
            "contains" => clauses.iter().any(|c| value.contains(c)),
            "contains_not" => !clauses.iter().any(|c| value.contains(c)),
            _ => true,
        }
    })
}

impl Query {
    /// The full answer: rows for every combination of dimension values, filtered, sorted,
    /// paged, plus `meta` and the query as executed.
    fn run(&self, owner: &str) -> Value {
        let days = (self.range.last - self.range.first + 1).max(1) as u64;
        let value_lists: Vec<Vec<String>> = self
            .dimensions
            .iter()
            .map(|d| dimension_values(d, owner, &self.range))
            .collect();
        let time_buckets = self
            .dimensions
            .iter()
            .zip(&value_lists)
            .filter(|(d, _)| d.starts_with("time"))
            .map(|(_, values)| values.len() as u64)
            .product::<u64>()
            .max(1);
        let scale = (days / time_buckets).max(1);

        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
        for values in &value_lists {
            combos = combos
                .iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut combo = prefix.clone();
                        combo.push(v.clone());
                        combo
                    })
                })
                .take(MAX_ROWS)
                .collect();
        }
        let mut rows: Vec<Row> = combos
            .into_iter()
            .map(|combo| Row::new(owner, combo, scale))
            .filter(|row| passes(row, &self.filters, &self.dimensions))
            .collect();

        let total_visitors: u64 = rows.iter().map(|r| r.visitors).sum();
        for row in &mut rows {
            let share = row.visitors as f64 * 100.0 / total_visitors.max(1) as f64;
            row.values.insert("percentage", json!(round_to(share, 1)));
        }
        rows.sort_by(|a, b| {
            self.order_by
                .iter()
                .map(|(name, descending)| {
                    let order = a
                        .key(name, &self.dimensions)
                        .cmp(&b.key(name, &self.dimensions));
                    if *descending { order.reverse() } else { order }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });

        let total_rows = rows.len();
        let results: Vec<Value> = rows
            .iter()
            .skip(usize::try_from(self.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(self.limit).unwrap_or(usize::MAX))
            .map(|row| {
                let metrics: Vec<Value> = self
                    .metrics
                    .iter()
                    .map(|m| row.values.get(m.as_str()).cloned().unwrap_or(Value::Null))
                    .collect();
                json!({ "metrics": metrics, "dimensions": row.dimensions })
            })
            .collect();

        let flag = |name: &str| self.include.get(name) == Some(&Value::Bool(true));
        let mut meta = Map::new();
        if flag("imports") {
            meta.insert("imports_included".to_owned(), json!(false));
        }
        if flag("time_labels")
            && let Some(time) = self.dimensions.iter().find(|d| d.starts_with("time"))
        {
            meta.insert(
                "time_labels".to_owned(),
                json!(time_labels(time, &self.range)),
            );
        }
        if flag("total_rows") {
            meta.insert("total_rows".to_owned(), json!(total_rows));
        }
        // The echo keeps only the include flags that are on, as Plausible's does.
        let include: Map<String, Value> = self
            .include
            .iter()
            .filter(|(_, v)| **v != Value::Bool(false))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let order_by: Vec<Value> = self
            .order_by
            .iter()
            .map(|(name, descending)| json!([name, if *descending { "desc" } else { "asc" }]))
            .collect();
        json!({
            "results": results,
            "meta": meta,
            "query": {
                "site_id": self.site_id,
                "metrics": self.metrics,
                "date_range": self.range.shown,
                "filters": self.filters,
                "dimensions": self.dimensions,
                "order_by": order_by,
                "include": include,
                "pagination": {"offset": self.offset, "limit": self.limit},
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::{Reply, get, send, two_owners};
    use crate::sandbox::{Sandbox, Vendor};
    use anyhow::Context as _;

    async fn post_query(
        sandbox: &Sandbox,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Reply> {
        send(sandbox, "POST", "/api/v2/query", token, Some(body)).await
    }

    fn error(reply: &Reply) -> anyhow::Result<String> {
        let body = reply.json()?;
        Ok(body["error"].as_str().context("error string")?.to_owned())
    }

    #[test]
    fn calendar_helpers_agree() {
        for day in [-1, 0, 59, 19_723, 19_782, 20_210] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(parse_day("2024-02-29"), Some(19_782));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2024-1-01"), None);
        assert_eq!(parse_datetime("2024-01-01T12:00:00+02:00"), Some(19_723));
        assert_eq!(parse_datetime("2024-01-01T12:00:00.5Z"), Some(19_723));
        assert_eq!(parse_datetime("2024-01-01T25:00:00Z"), None);
        // 2024-05-15, a Wednesday.
        let today = days_from_civil(2024, 5, 15);
        let range = |v: Value| date_range(&v, today).map(|r| r.shown);
        let shown =
            |a: &str, b: &str| Some([format!("{a}T00:00:00+00:00"), format!("{b}T23:59:59+00:00")]);
        assert_eq!(range(json!("day")), shown("2024-05-15", "2024-05-15"));
        assert_eq!(range(json!("7d")), shown("2024-05-08", "2024-05-14"));
        assert_eq!(range(json!("month")), shown("2024-05-01", "2024-05-31"));
        assert_eq!(range(json!("6mo")), shown("2023-11-01", "2024-04-30"));
        assert_eq!(range(json!("12mo")), shown("2023-05-01", "2024-04-30"));
        assert_eq!(range(json!("year")), shown("2024-01-01", "2024-12-31"));
        assert_eq!(range(json!("all")), shown("2021-03-15", "2024-05-15"));
        assert_eq!(range(json!("5d")), None);
        assert_eq!(range(json!(["2024-02-01", "2024-01-01"])), None);
        let week = date_range(&json!(["2024-05-15", "2024-05-28"]), today);
        let week = week.map(|r| time_labels("time:week", &r));
        assert_eq!(
            week,
            Some(vec![
                "2024-05-15".to_owned(),
                "2024-05-20".to_owned(),
                "2024-05-27".to_owned()
            ])
        );
        assert_eq!(money_long(1234.5), "$1,234.50");
        assert_eq!(money_short(1234.5), "$1.2K");
        assert_eq!(inspect(&json!(["is", 1, null])), r#"["is", 1, nil]"#);
    }

    #[tokio::test]
    async fn each_key_reads_only_its_own_site() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        for (me, other) in [(&acme, &globex), (&globex, &acme)] {
            let reply = post_query(
                &sandbox,
                Some(&me.plausible_token),
                json!({
                    "site_id": me.plausible_site,
                    "metrics": ["visitors", "pageviews"],
                    "date_range": "30d",
                    "dimensions": ["event:page"],
                }),
            )
            .await?;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let body = reply.json()?;
            let results = body["results"].as_array().context("results")?;
            assert_eq!(results.len(), PAGE_PATHS.len());
            for row in results {
                let page = row["dimensions"][0].as_str().context("page")?;
                assert!(page.starts_with('/') && page.contains(&format!("(owner:{})", me.owner)));
                assert!(row["metrics"][0].as_u64().is_some_and(|v| v > 0));
            }
            assert_eq!(body["query"]["site_id"], me.plausible_site.as_str());
            assert!(!reply.body.contains(&format!("owner:{}", other.owner)));

            let foreign = post_query(
                &sandbox,
                Some(&me.plausible_token),
                json!({"site_id": other.plausible_site, "metrics": ["visitors"], "date_range": "7d"}),
            )
            .await?;
            let unknown = post_query(
                &sandbox,
                Some(&me.plausible_token),
                json!({"site_id": "nobody.example", "metrics": ["visitors"], "date_range": "7d"}),
            )
            .await?;
            assert_eq!(foreign.status, 401);
            assert_eq!(error(&foreign)?, INVALID_KEY_OR_SITE);
            assert_eq!(
                foreign.body, unknown.body,
                "foreign and missing must look alike"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn keys_are_checked_before_the_query() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let query =
            json!({"site_id": acme.plausible_site, "metrics": ["visitors"], "date_range": "7d"});
        let missing = post_query(&sandbox, None, query.clone()).await?;
        assert_eq!(
            (missing.status, error(&missing)?.as_str()),
            (401, MISSING_KEY)
        );
        // Another vendor's token for the same owner is unknown to Plausible.
        for token in [
            "pl-sandbox-acme-0000000000000000",
            acme.token.as_str(),
            acme.github_token.as_str(),
        ] {
            let reply = post_query(&sandbox, Some(token), query.clone()).await?;
            assert_eq!(
                (reply.status, error(&reply)?.as_str()),
                (401, INVALID_KEY_OR_SITE)
            );
        }
        let no_site = post_query(
            &sandbox,
            Some(&acme.plausible_token),
            json!({"metrics": ["visitors"], "date_range": "7d"}),
        )
        .await?;
        assert_eq!(
            (no_site.status, error(&no_site)?.as_str()),
            (400, MISSING_SITE_ID)
        );
        let log = sandbox.requests();
        assert_eq!(log[0].token_owner, None);
        assert_eq!(
            log[2].token_owner.as_deref(),
            Some("acme"),
            "webflow token still recorded"
        );
        assert_eq!(Vendor::of_path("/api/v2/query"), Some(Vendor::Plausible));
        Ok(())
    }

    #[tokio::test]
    async fn bad_queries_name_the_bad_value() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let site = acme.plausible_site.as_str();
        let cases = [
            (
                json!({"site_id": site, "metrics": ["visitors", "vistors"], "date_range": "7d"}),
                "#/metrics/1: Invalid metric \"vistors\"",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "8d"}),
                "#/date_range: Invalid date range \"8d\"",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": ["2024-01-01", "2024-13-01"]}),
                "#/date_range: Invalid date range [\"2024-01-01\", \"2024-13-01\"]",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:planet"]}),
                "#/dimensions/0: Invalid dimension \"visit:planet\"",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "filters": [["equals", "event:page", ["/"]]]}),
                "#/filters/0: Invalid filter [\"equals\", \"event:page\", [\"/\"]]",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "filters": ["is"]}),
                "#/filters/0: Invalid filter \"is\"",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "order_by": [["visssss", "desc"]]}),
                "#/order_by/0/0: Invalid value in order_by \"visssss\"",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "order_by": [["visitors", "up"]]}),
                "#/order_by/0/1: Value is not allowed in enum.",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "order_by": [["event:name", "desc"]]}),
                "Invalid order_by entry '{\"event:name\", :desc}'. Entry is not a queried metric or dimension.",
            ),
            (
                json!({"site_id": site, "metrics": ["conversion_rate"], "date_range": "7d"}),
                "Metric `conversion_rate` can only be queried with event:goal filters or dimensions.",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "filters": [["is", "event:goal", ["Signup"]]]}),
                "The goal `Signup` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "include": {"time_labels": true}}),
                "Invalid include.time_labels: requires a time dimension.",
            ),
            (
                json!({"site_id": site, "metrics": ["bounce_rate"], "date_range": "7d", "dimensions": ["event:props:plan"]}),
                "Session metric(s) `bounce_rate` cannot be queried along with event dimensions.",
            ),
            (
                json!({"site_id": site, "metrics": "visitors", "date_range": "7d"}),
                "#/metrics: Type mismatch. Expected Array but got String.",
            ),
            (
                json!({"site_id": site, "metrics": [], "date_range": "7d"}),
                "#/metrics: Expected a minimum of 1 items but got 0.",
            ),
            (
                json!({"site_id": site}),
                "#: Required properties metrics, date_range were not present.",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "period": "7d"}),
                "#/period: Schema does not allow additional properties.",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "pagination": {"limit": 0}}),
                "#/pagination/limit: Expected the value to be >= 1",
            ),
            (
                json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d", "order_by": [["bounce_rate", "desc"]]}),
                "Invalid order_by entry '{:bounce_rate, :desc}'. Entry is not a queried metric or dimension.",
            ),
        ];
        for (query, expected) in cases {
            let reply = post_query(&sandbox, Some(&acme.plausible_token), query.clone()).await?;
            assert_eq!(reply.status, 400, "{query}");
            assert_eq!(error(&reply)?, expected, "{query}");
        }
        // Every schema problem is reported, one per line.
        let reply = post_query(
            &sandbox,
            Some(&acme.plausible_token),
            json!({"site_id": site, "metrics": ["hits"], "date_range": "7d", "dimensions": ["visit:planet"]}),
        )
        .await?;
        assert_eq!(error(&reply)?.lines().count(), 2);

        // A body not declared as JSON carries no parameters, as with Phoenix's parsers.
        let url = format!("{}/api/v2/query", sandbox.base_url());
        common::upstream::install_crypto_provider();
        let untyped = reqwest::Client::builder()
            .build()?
            .post(url)
            .bearer_auth(&acme.plausible_token)
            .body(json!({"site_id": site, "metrics": ["visitors"], "date_range": "7d"}).to_string())
            .send()
            .await?;
        assert_eq!(untyped.status().as_u16(), 400);
        Ok(())
    }

    #[tokio::test]
    async fn answers_echo_the_query_and_page_the_rows() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.plausible_token.as_str());
        let aggregate = post_query(
            &sandbox,
            token,
            json!({"site_id": acme.plausible_site, "metrics": ["visitors", "bounce_rate", "total_revenue"], "date_range": ["2024-01-01", "2024-01-31"]}),
        )
        .await?
        .json()?;
        assert_eq!(aggregate["results"].as_array().map(Vec::len), Some(1));
        assert_eq!(aggregate["results"][0]["dimensions"], json!([]));
        assert_eq!(aggregate["results"][0]["metrics"][2]["currency"], "USD");
        assert_eq!(aggregate["meta"], json!({}));
        assert_eq!(
            aggregate["query"],
            json!({
                "site_id": "acme.example",
                "metrics": ["visitors", "bounce_rate", "total_revenue"],
                "date_range": ["2024-01-01T00:00:00+00:00", "2024-01-31T23:59:59+00:00"],
                "filters": [],
                "dimensions": [],
                "order_by": [["visitors", "desc"]],
                "include": {},
                "pagination": {"offset": 0, "limit": 10_000},
            })
        );
        let again = post_query(
            &sandbox,
            token,
            json!({"site_id": acme.plausible_site, "metrics": ["visitors", "bounce_rate", "total_revenue"], "date_range": ["2024-01-01", "2024-01-31"]}),
        )
        .await?
        .json()?;
        assert_eq!(again, aggregate, "numbers are deterministic");

        let breakdown = |pagination: Value| {
            json!({
                "site_id": acme.plausible_site,
                "metrics": ["visitors", "percentage"],
                "date_range": "28d",
                "dimensions": ["visit:source"],
                "include": {"total_rows": true},
                "pagination": pagination,
            })
        };
        let all = post_query(&sandbox, token, breakdown(json!({})))
            .await?
            .json()?;
        let rows = all["results"].as_array().context("rows")?.clone();
        assert_eq!(all["meta"]["total_rows"], rows.len());
        assert!(rows.iter().any(|r| {
            r["dimensions"][0]
                .as_str()
                .is_some_and(|s| s.contains("(owner:acme)"))
        }));
        let visitors: Vec<u64> = rows
            .iter()
            .filter_map(|r| r["metrics"][0].as_u64())
            .collect();
        assert!(
            visitors.windows(2).all(|w| w[0] >= w[1]),
            "sorted by visitors desc"
        );
        let share: f64 = rows.iter().filter_map(|r| r["metrics"][1].as_f64()).sum();
        assert!((share - 100.0).abs() < 1.0, "{share}");

        let page = post_query(&sandbox, token, breakdown(json!({"limit": 2, "offset": 1})))
            .await?
            .json()?;
        assert_eq!(page["results"], json!(rows[1..3]));
        assert_eq!(page["meta"]["total_rows"], rows.len());
        assert_eq!(
            page["query"]["pagination"],
            json!({"offset": 1, "limit": 2})
        );

        let filtered = post_query(
            &sandbox,
            token,
            json!({
                "site_id": acme.plausible_site,
                "metrics": ["pageviews"],
                "date_range": "7d",
                "dimensions": ["event:page"],
                "filters": [["contains", "event:page", ["/blog"]]],
            }),
        )
        .await?
        .json()?;
        assert_eq!(filtered["results"].as_array().map(Vec::len), Some(2));

        let series = post_query(
            &sandbox,
            token,
            json!({
                "site_id": acme.plausible_site,
                "metrics": ["visitors"],
                "date_range": ["2024-08-13", "2024-08-19"],
                "dimensions": ["time"],
                "include": {"time_labels": true},
            }),
        )
        .await?
        .json()?;
        let days: Vec<&str> = series["results"]
            .as_array()
            .context("series")?
            .iter()
            .filter_map(|r| r["dimensions"][0].as_str())
            .collect();
        assert_eq!(days.first(), Some(&"2024-08-13"));
        assert_eq!(days.len(), 7);
        assert_eq!(
            series["meta"]["time_labels"].as_array().map(Vec::len),
            Some(7)
        );
        assert_eq!(series["query"]["dimensions"], json!(["time:day"]));
        assert_eq!(
            series["query"]["order_by"],
            json!([["time:day", "asc"], ["visitors", "desc"]])
        );
        Ok(())
    }

    #[tokio::test]
    async fn failures_use_plausibles_error_shape() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        sandbox.fail_next(crate::sandbox::Failure::rate_limited(30), 1);
        let query =
            json!({"site_id": acme.plausible_site, "metrics": ["visitors"], "date_range": "7d"});
        let reply = post_query(&sandbox, Some(&acme.plausible_token), query.clone()).await?;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("30"));
        assert!(error(&reply)?.contains("600 requests per hour"));
        let nowhere = get(&sandbox, "/api/v2/nowhere", Some(&acme.plausible_token)).await?;
        assert_eq!(
            (nowhere.status, error(&nowhere)?.as_str()),
            (404, "Not found")
        );
        let recorded = sandbox.requests();
        assert_eq!(
            recorded[0].headers,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("accept".to_owned(), "*/*".to_owned()),
            ]
        );
        Ok(())
    }
}
