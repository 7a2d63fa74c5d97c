//! Sandbox Cloudflare API v4, DNS records of a zone: list, get, create, patch and delete under
//! `/client/v4/zones/{zone_id}/dns_records`, in Cloudflare's `{success, errors, messages, result,
//! result_info}` envelope, scoped like an API token limited to one zone.
//!
//! Shapes follow developers.cloudflare.com/api (DNS records "List", "Get", "Create", "Edit",
//! "Delete") and the API deprecation notes: since 2024-11-30 records no longer carry `zone_id`
//! and `zone_name`; since 2024-10-01 DNS validation errors come as their root cause (no `1004`
//! wrapper with an `error_chain`); since 2026-06-30 an update may not change a record's type.
//! Error codes are the ones Cloudflare is seen to answer with (`9106` missing credentials,
//! `6003`/`6111` a malformed `Authorization`, `10000` a zone the token cannot reach, `7003` an id
//! that cannot be routed, `81044` no such record, `9005`/`9007`/`9021`/`9039` bad content or TTL,
//! `81053`/`81054`/`81058` conflicting records, `971` throttling). Where Cloudflare's own code is
//! not on record the sandbox answers `1004`, the DNS records API's validation code, with a
//! message naming the problem.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Caller, Fixture, OwnerFixture, derive_hex, lock, now_rfc3339};

/// The records every zone starts with, as `(label, type)`; `@` is the apex. Contents:
/// `@` A 203.0.113.10, `www` CNAME the apex, `shop` A 203.0.113.20, `mail` MX `mx.<zone>`
/// (priority 10), `@` TXT `v=spf1 -all (owner:<owner>)`. Each carries `(owner:<owner>)` in its
/// `comment`.
pub const SEED_RECORDS: [(&str, &str); 5] = [
    ("@", "A"),
    ("www", "CNAME"),
    ("shop", "A"),
    ("mail", "MX"),
    ("@", "TXT"),
];
/// Record types the sandbox validates and stores; Cloudflare knows more (see [`OTHER_TYPES`]).
pub const SUPPORTED_TYPES: [&str; 5] = ["A", "AAAA", "CNAME", "MX", "TXT"];
/// Types Cloudflare accepts that the sandbox does not model: refused as unsupported, not unknown.
const OTHER_TYPES: [&str; 15] = [
    "CAA",
    "CERT",
    "DNSKEY",
    "DS",
    "HTTPS",
    "LOC",
    "NAPTR",
    "NS",
    "OPENPGPKEY",
    "PTR",
    "SMIMEA",
    "SRV",
    "SSHFP",
    "SVCB",
    "TLSA",
];
/// Types Cloudflare can proxy.
const PROXIABLE_TYPES: [&str; 3] = ["A", "AAAA", "CNAME"];

/// `per_page` bounds and default. Cloudflare's current OpenAPI schema allows 1–5,000,000; the
/// sandbox keeps the stricter 5–5000 of the retired api.cloudflare.com reference, so a client
/// that depends on the looser bounds fails here first.
const MIN_PER_PAGE: usize = 5;
const MAX_PER_PAGE: usize = 5000;
const DEFAULT_PER_PAGE: usize = 100;
/// `ttl`: 1 means automatic, otherwise 60–86400 seconds (non-Enterprise zones).
const MIN_TTL: u64 = 60;
const MAX_TTL: u64 = 86_400;
/// When the seeded records were created and last changed.
const SEEDED_ON: &str = "2024-02-01T10:00:00.000000Z";

/// Cloudflare routes, ready to merge into the sandbox app.
pub(crate) fn router(state: Arc<CloudflareState>) -> Router {
    Router::new()
        .route(
            "/client/v4/zones/{zone_id}/dns_records",
            get(list_records).post(create_record),
        )
        .route(
            "/client/v4/zones/{zone_id}/dns_records/{record_id}",
            get(get_record).patch(update_record).delete(delete_record),
        )
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Wire type (Cloudflare's JSON, snake_case)

#[derive(Debug, Clone, PartialEq, Serialize)]
struct DnsRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    proxiable: bool,
    proxied: bool,
    ttl: u64,
    /// MX only; Cloudflare leaves it out for types that do not use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    settings: Map<String, Value>,
    meta: Map<String, Value>,
    comment: Option<String>,
    /// Always holds `owner:<owner>`: the sandbox's own marker, so even a record a client created
    /// without a comment shows whose it is.
    tags: Vec<String>,
    created_on: String,
    modified_on: String,
}

// ---------------------------------------------------------------------------------------------
// In-memory data, every record tagged with its owner

struct Zone {
    owner: String,
    name: String,
}

struct RecordEntry {
    owner: String,
    zone_id: String,
    record: DnsRecord,
}

#[derive(Default)]
struct Data {
    zones: HashMap<String, Zone>,
    records: Vec<RecordEntry>,
    /// Records created through the API so far, for fresh deterministic ids.
    created: usize,
}

/// The Cloudflare sandbox's data. Handlers hold the lock only for one lookup or change.
pub(crate) struct CloudflareState {
    data: Mutex<Data>,
}

impl CloudflareState {
    pub(crate) fn new(fixture: &Fixture) -> CloudflareState {
        let mut data = Data::default();
        for owner in &fixture.owners {
            seed_owner(&mut data, owner);
        }
        CloudflareState {
            data: Mutex::new(data),
        }
    }

    pub(crate) fn record_json(&self, zone_id: &str, record_id: &str) -> Option<Value> {
        let data = lock(&self.data);
        let entry = data
            .records
            .iter()
            .find(|e| e.zone_id == zone_id && e.record.id == record_id)?;
        serde_json::to_value(&entry.record).ok()
    }
}

fn seed_owner(data: &mut Data, fx: &OwnerFixture) {
    let owner = fx.owner.as_str();
    let zone = fx.zone_name.as_str();
    let mark = format!("(owner:{owner})");
    data.zones.insert(
        fx.zone_id.clone(),
        Zone {
            owner: owner.to_owned(),
            name: zone.to_owned(),
        },
    );
    // (content, proxied, ttl, priority, what the record is for)
    let details: [(String, bool, u64, Option<u16>, &str); 5] = [
        ("203.0.113.10".to_owned(), true, 1, None, "Website apex"),
        (zone.to_owned(), true, 1, None, "www alias of the apex"),
        ("203.0.113.20".to_owned(), false, 300, None, "Shop origin"),
        (
            format!("mx.{zone}"),
            false,
            3600,
            Some(10),
            "Mail exchanger",
        ),
        (
            format!("v=spf1 -all {mark}"),
            false,
            3600,
            None,
            "SPF policy",
        ),
    ];
    for (((label, kind), id), (content, proxied, ttl, priority, purpose)) in
        SEED_RECORDS.iter().zip(&fx.dns_record_ids).zip(details)
    {
        let name = if *label == "@" {
            zone.to_owned()
        } else {
            format!("{label}.{zone}")
        };
        data.records.push(RecordEntry {
            owner: owner.to_owned(),
            zone_id: fx.zone_id.clone(),
            record: DnsRecord {
                id: id.clone(),
                name,
                kind: (*kind).to_owned(),
                content,
                proxiable: PROXIABLE_TYPES.contains(kind),
                proxied,
                ttl,
                priority,
                settings: Map::new(),
                meta: Map::new(),
                comment: Some(format!("{purpose} {mark}")),
                tags: vec![owner_tag(owner)],
                created_on: SEEDED_ON.to_owned(),
                modified_on: SEEDED_ON.to_owned(),
            },
        });
    }
}

fn owner_tag(owner: &str) -> String {
    format!("owner:{owner}")
}

// ---------------------------------------------------------------------------------------------
// Errors, in Cloudflare's envelope: {success: false, errors: [{code, message}], messages, result}

#[derive(Debug)]
pub(crate) struct CloudflareError {
    status: StatusCode,
    errors: Vec<Value>,
}

impl CloudflareError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> CloudflareError {
        CloudflareError {
            status,
            errors: vec![json!({"code": code, "message": message.into()})],
        }
    }

    fn invalid(code: u32, message: impl Into<String>) -> CloudflareError {
        CloudflareError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// No `Authorization` header at all.
    fn missing_credentials() -> CloudflareError {
        CloudflareError::invalid(
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )
    }

    /// An `Authorization` header that is not `Bearer <token>` with a token's characters.
    fn malformed_authorization() -> CloudflareError {
        CloudflareError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![json!({
                "code": 6003,
                "message": "Invalid request headers",
                "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
            })],
        }
    }

    /// A well-formed token Cloudflare does not know, and a zone the token may not touch: the
    /// `403` with code `10000` that Cloudflare answers when a token is not scoped for a zone.
    /// (One report has a bogus token answered `400`/`9106`; the sandbox keeps one answer for
    /// both cases, so a foreign zone looks exactly like a revoked token.)
    fn authentication() -> CloudflareError {
        CloudflareError::new(StatusCode::FORBIDDEN, 10000, "Authentication error")
    }

    /// An id that is not 32 hex digits: Cloudflare's router cannot place it.
    fn unroutable(path: &str) -> CloudflareError {
        CloudflareError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![
                json!({"code": 7003, "message": format!("Could not route to {path}, perhaps your object identifier is invalid?")}),
                json!({"code": 7000, "message": "No route for that URI"}),
            ],
        }
    }

    fn record_missing() -> CloudflareError {
        CloudflareError::new(StatusCode::NOT_FOUND, 81044, "Record does not exist.")
    }

    fn malformed_body() -> CloudflareError {
        CloudflareError::invalid(6007, "Malformed JSON in request body")
    }

    /// The body for an injected failure or an unknown route.
    fn for_status(status: StatusCode) -> CloudflareError {
        let (code, message) = match status.as_u16() {
            400 => (1004, "DNS Validation Error"),
            401 | 403 => (10000, "Authentication error"),
            404 => (7000, "No route for that URI"),
            429 => (
                971,
                "Please wait and consider throttling your request speed",
            ),
            s if s >= 500 => (10001, "Internal server error"),
            _ => (1004, status.canonical_reason().unwrap_or("Bad request")),
        };
        CloudflareError::new(status, code, message)
    }
}

impl IntoResponse for CloudflareError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": self.errors,
            "messages": [],
            "result": null,
        });
        (self.status, Json(body)).into_response()
    }
}

/// Cloudflare's error answer for `status`.
pub(crate) fn error_response(status: StatusCode) -> Response {
    CloudflareError::for_status(status).into_response()
}

type Answer<T> = Result<T, CloudflareError>;

/// `{success: true, errors: [], messages: [], result}`.
fn success(result: impl Serialize) -> Json<Value> {
    Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
    }))
}

/// The caller's owner, or Cloudflare's answer to the credential presented.
fn authorize<'a>(caller: &'a Caller, headers: &HeaderMap) -> Answer<&'a str> {
    if let Some(owner) = caller.owner.as_deref() {
        return Ok(owner);
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(CloudflareError::missing_credentials());
    };
    // API tokens are letters, digits, `-` and `_`; anything else fails Cloudflare's header check.
    let well_formed = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            let token = token.trim();
            scheme.eq_ignore_ascii_case("bearer")
                && !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    Err(if well_formed {
        CloudflareError::authentication()
    } else {
        CloudflareError::malformed_authorization()
    })
}

/// Cloudflare's object ids: 32 hex digits.
fn is_object_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The zone, if the caller's token reaches it. A foreign zone and one that does not exist get
/// the same answer.
fn own_zone<'a>(data: &'a Data, owner: &str, zone_id: &str) -> Answer<&'a Zone> {
    data.zones
        .get(zone_id)
        .filter(|z| z.owner == owner)
        .ok_or_else(CloudflareError::authentication)
}

fn record_index(data: &Data, owner: &str, zone_id: &str, record_id: &str) -> Answer<usize> {
    data.records
        .iter()
        .position(|e| e.owner == owner && e.zone_id == zone_id && e.record.id == record_id)
        .ok_or_else(CloudflareError::record_missing)
}

// ---------------------------------------------------------------------------------------------
// Handlers

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// A positive integer query parameter within `range`, or `default` when absent.
fn bounded(
    params: &Params,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Answer<usize> {
    match param(params, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                let upper = if *range.end() == usize::MAX {
                    String::new()
                } else {
                    format!(" and at most {}", range.end())
                };
                CloudflareError::invalid(
                    1004,
                    format!(
                        "{name} must be an integer of at least {}{upper}",
                        range.start()
                    ),
                )
            }),
    }
}

/// Filters `name` (exact, case-insensitive), `type` and `content`; pages with `page`/`per_page`.
/// Other Cloudflare filters are not modelled and are ignored, as Cloudflare ignores unknown ones.
async fn list_records(
    State(state): State<Arc<CloudflareState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(zone_id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer<Json<Value>> {
    if !is_object_id(&zone_id) {
        return Err(CloudflareError::unroutable(uri.path()));
    }
    let owner = authorize(&caller, &headers)?;
    let Query(params) =
        query.map_err(|_| CloudflareError::invalid(1004, "Invalid query string"))?;
    let per_page = bounded(
        &params,
        "per_page",
        DEFAULT_PER_PAGE,
        MIN_PER_PAGE..=MAX_PER_PAGE,
    )?;
    let page = bounded(&params, "page", 1, 1..=usize::MAX)?;
    let data = lock(&state.data);
    own_zone(&data, owner, &zone_id)?;
    let name = param(&params, "name").map(|n| n.trim_end_matches('.').to_ascii_lowercase());
    let kind = param(&params, "type").map(str::to_ascii_uppercase);
    let content = param(&params, "content");
    let matching: Vec<&DnsRecord> = data
        .records
        .iter()
        .filter(|e| e.owner == owner && e.zone_id == zone_id)
        .map(|e| &e.record)
        .filter(|r| {
            name.as_deref().is_none_or(|n| r.name == n)
                && kind.as_deref().is_none_or(|k| r.kind == k)
                && content.is_none_or(|c| r.content == c)
        })
        .collect();
    let total = matching.len();
    let records: Vec<&DnsRecord> = matching
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok(Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": records,
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": records.len(),
            "total_count": total,
            "total_pages": total.div_ceil(per_page).max(1),
        },
    })))
}

async fn get_record(
    State(state): State<Arc<CloudflareState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    if !is_object_id(&zone_id) || !is_object_id(&record_id) {
        return Err(CloudflareError::unroutable(uri.path()));
    }
    let owner = authorize(&caller, &headers)?;
    let data = lock(&state.data);
    own_zone(&data, owner, &zone_id)?;
    let index = record_index(&data, owner, &zone_id, &record_id)?;
    Ok(success(&data.records[index].record))
}

async fn create_record(
    State(state): State<Arc<CloudflareState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Answer<Json<Value>> {
    if !is_object_id(&zone_id) {
        return Err(CloudflareError::unroutable(uri.path()));
    }
    let owner = authorize(&caller, &headers)?;
    let mut data = lock(&state.data);
    let zone = own_zone(&data, owner, &zone_id)?.name.clone();
    let body = object_body(&body)?;
    let fields = Fields::parse(&body)?;
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| CloudflareError::invalid(1004, format!("{name} is required")))
    };
    let spec = RecordSpec {
        kind: required(fields.kind, "type")?,
        name: required(fields.name, "name")?,
        content: required(fields.content, "content")?,
        ttl: fields.ttl.unwrap_or(1),
        proxied: fields.proxied.unwrap_or(false),
        priority: fields.priority,
    };
    let valid = spec.validate(&zone)?;
    check_conflicts(&data, &zone_id, &valid, None)?;

    let id = derive_hex("created-dns-record", owner, data.created, 16);
    data.created += 1;
    let now = now_rfc3339();
    let record = DnsRecord {
        id,
        proxiable: PROXIABLE_TYPES.contains(&valid.kind.as_str()),
        name: valid.name,
        kind: valid.kind,
        content: valid.content,
        proxied: valid.proxied,
        ttl: valid.ttl,
        priority: valid.priority,
        settings: Map::new(),
        meta: Map::new(),
        comment: fields.comment.flatten(),
        tags: vec![owner_tag(owner)],
        created_on: now.clone(),
        modified_on: now,
    };
    data.records.push(RecordEntry {
        owner: owner.to_owned(),
        zone_id,
        record: record.clone(),
    });
    Ok(success(record))
}

/// `PATCH`: the given fields replace the stored ones (`comment: null` clears the comment); the
/// result is validated as a whole, like a new record.
async fn update_record(
    State(state): State<Arc<CloudflareState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path((zone_id, record_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer<Json<Value>> {
    if !is_object_id(&zone_id) || !is_object_id(&record_id) {
        return Err(CloudflareError::unroutable(uri.path()));
    }
    let owner = authorize(&caller, &headers)?;
    let mut data = lock(&state.data);
    let zone = own_zone(&data, owner, &zone_id)?.name.clone();
    let index = record_index(&data, owner, &zone_id, &record_id)?;
    let body = object_body(&body)?;
    let fields = Fields::parse(&body)?;
    let current = &data.records[index].record;
    if let Some(kind) = &fields.kind
        && !kind.eq_ignore_ascii_case(&current.kind)
    {
        // The 2026-06-30 end of life for in-place type changes names no error code.
        return Err(CloudflareError::invalid(
            1004,
            "Changing the type of an existing DNS record is not supported; delete the record and create a new one.",
        ));
    }
    let spec = RecordSpec {
        kind: current.kind.clone(),
        name: fields.name.unwrap_or_else(|| current.name.clone()),
        content: fields.content.unwrap_or_else(|| current.content.clone()),
        ttl: fields.ttl.unwrap_or(current.ttl),
        proxied: fields.proxied.unwrap_or(current.proxied),
        priority: fields.priority.or(current.priority),
    };
    let comment = match fields.comment {
        None => current.comment.clone(),
        Some(comment) => comment,
    };
    let valid = spec.validate(&zone)?;
    check_conflicts(&data, &zone_id, &valid, Some(&record_id))?;

    let record = &mut data.records[index].record;
    record.name = valid.name;
    record.content = valid.content;
    record.ttl = valid.ttl;
    record.proxied = valid.proxied;
    record.priority = valid.priority;
    record.comment = comment;
    record.modified_on = now_rfc3339();
    Ok(success(&*record))
}

async fn delete_record(
    State(state): State<Arc<CloudflareState>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    if !is_object_id(&zone_id) || !is_object_id(&record_id) {
        return Err(CloudflareError::unroutable(uri.path()));
    }
    let owner = authorize(&caller, &headers)?;
    let mut data = lock(&state.data);
    own_zone(&data, owner, &zone_id)?;
    let index = record_index(&data, owner, &zone_id, &record_id)?;
    let removed = data.records.remove(index);
    Ok(success(json!({ "id": removed.record.id })))
}

// ---------------------------------------------------------------------------------------------
// Request bodies and record validation

/// The JSON object body of a write. Cloudflare reads the body as JSON whatever its declared type.
fn object_body(body: &[u8]) -> Answer<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CloudflareError::malformed_body()),
    }
}

/// The writable fields present in a body, each checked for its JSON type. `comment` is
/// `Some(None)` when sent as `null`. Other fields (`tags`, `settings`, …) are not modelled.
#[derive(Debug, Default)]
struct Fields {
    kind: Option<String>,
    name: Option<String>,
    content: Option<String>,
    ttl: Option<u64>,
    proxied: Option<bool>,
    priority: Option<u16>,
    comment: Option<Option<String>>,
}

impl Fields {
    fn parse(body: &Map<String, Value>) -> Answer<Fields> {
        let string = |name: &str| -> Answer<Option<String>> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(CloudflareError::invalid(
                    1004,
                    format!("{name} must be a string"),
                )),
            }
        };
        let ttl = match body.get("ttl") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().ok_or_else(invalid_ttl)?),
        };
        let proxied = match body.get("proxied") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(CloudflareError::invalid(1004, "proxied must be a boolean"));
            }
        };
        let priority = match body.get("priority") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| {
                        CloudflareError::invalid(
                            1004,
                            "priority must be an integer between 0 and 65535",
                        )
                    })?,
            ),
        };
        let comment = match body.get("comment") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => {
                return Err(CloudflareError::invalid(1004, "comment must be a string"));
            }
        };
        Ok(Fields {
            kind: string("type")?,
            name: string("name")?,
            content: string("content")?,
            ttl,
            proxied,
            priority,
            comment,
        })
    }
}

fn invalid_ttl() -> CloudflareError {
    CloudflareError::invalid(
        9021,
        format!(
            "Invalid TTL. Must be between {MIN_TTL} and {MAX_TTL} seconds, or 1 for automatic."
        ),
    )
}

/// A record as asked for, before validation.
struct RecordSpec {
    kind: String,
    name: String,
    content: String,
    ttl: u64,
    proxied: bool,
    priority: Option<u16>,
}

/// A record as Cloudflare would store it: type uppercase, names lowercase and fully qualified,
/// content normalized.
#[derive(Debug, Clone, PartialEq)]
struct ValidRecord {
    kind: String,
    name: String,
    content: String,
    ttl: u64,
    proxied: bool,
    priority: Option<u16>,
}

impl RecordSpec {
    /// Checks in Cloudflare's order: type, name, content, TTL, priority, proxying.
    fn validate(self, zone: &str) -> Answer<ValidRecord> {
        let kind = self.kind.trim().to_ascii_uppercase();
        if !SUPPORTED_TYPES.contains(&kind.as_str()) {
            let message = if OTHER_TYPES.contains(&kind.as_str()) {
                format!(
                    "The sandbox supports only {} records",
                    SUPPORTED_TYPES.join(", ")
                )
            } else {
                "DNS record type is invalid.".to_owned()
            };
            return Err(CloudflareError::invalid(1004, message));
        }
        let name = qualify(&self.name, zone)
            .ok_or_else(|| CloudflareError::invalid(1004, "DNS name is invalid."))?;
        let content = self.content.trim();
        let content = match kind.as_str() {
            "A" => content
                .parse::<Ipv4Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| {
                    CloudflareError::invalid(
                        9005,
                        "Content for A record must be a valid IPv4 address.",
                    )
                })?,
            "AAAA" => content
                .parse::<Ipv6Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| {
                    CloudflareError::invalid(
                        9006,
                        "Content for AAAA record must be a valid IPv6 address.",
                    )
                })?,
            "CNAME" => {
                let target = hostname(content).ok_or_else(|| {
                    CloudflareError::invalid(9007, "Content for CNAME record is invalid.")
                })?;
                if target == name {
                    return Err(CloudflareError::invalid(
                        9039,
                        "CNAME content cannot reference itself.",
                    ));
                }
                target
            }
            "MX" => hostname(content).ok_or_else(|| {
                CloudflareError::invalid(1004, "Content for MX record is invalid.")
            })?,
            _ => {
                if content.is_empty() || content.chars().count() > 2048 {
                    return Err(CloudflareError::invalid(
                        1004,
                        "Content for TXT record is invalid.",
                    ));
                }
                content.to_owned()
            }
        };
        if self.ttl != 1 && !(MIN_TTL..=MAX_TTL).contains(&self.ttl) {
            return Err(invalid_ttl());
        }
        let priority = if kind == "MX" {
            Some(self.priority.ok_or_else(|| {
                CloudflareError::invalid(1004, "Priority is required for MX records.")
            })?)
        } else {
            None
        };
        let proxiable = PROXIABLE_TYPES.contains(&kind.as_str());
        if self.proxied && !proxiable {
            return Err(CloudflareError::invalid(
                9004,
                "This record type cannot be proxied.",
            ));
        }
        Ok(ValidRecord {
            kind,
            name,
            content,
            // A proxied record's TTL is Cloudflare's to choose: always "automatic".
            ttl: if self.proxied { 1 } else { self.ttl },
            proxied: self.proxied,
            priority,
        })
    }
}

/// The record name as Cloudflare stores it: `@` is the apex, and a name that does not end in
/// the zone is taken as relative to it (`www` → `www.<zone>`, `x.other.example` →
/// `x.other.example.<zone>`), so a record can never leave its zone. `None` if not a DNS name.
fn qualify(name: &str, zone: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let full = if name == "@" || name == zone {
        zone.to_owned()
    } else if name.ends_with(&format!(".{zone}")) {
        name
    } else if name.is_empty() {
        return None;
    } else {
        format!("{name}.{zone}")
    };
    valid_name(&full, true).then_some(full)
}

/// A target host name (CNAME, MX), lowercase without the trailing dot.
fn hostname(text: &str) -> Option<String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    (name.contains('.') && valid_name(&name, false)).then_some(name)
}

/// Labels of 1–63 letters, digits, `-` or `_`, at most 253 characters in all; a leading `*`
/// label when `wildcard`.
fn valid_name(name: &str, wildcard: bool) -> bool {
    name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (wildcard && i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

/// Cloudflare's rules for records sharing a name: a CNAME stands alone beside A, AAAA and other
/// CNAME records, and no two records may be identical. `exclude` is the record being updated.
fn check_conflicts(
    data: &Data,
    zone_id: &str,
    record: &ValidRecord,
    exclude: Option<&str>,
) -> Answer<()> {
    let same_name: Vec<&DnsRecord> = data
        .records
        .iter()
        .filter(|e| e.zone_id == zone_id && Some(e.record.id.as_str()) != exclude)
        .map(|e| &e.record)
        .filter(|r| r.name == record.name)
        .collect();
    let address = |kind: &str| matches!(kind, "A" | "AAAA");
    if record.kind == "CNAME"
        && same_name
            .iter()
            .any(|r| address(&r.kind) || r.kind == "CNAME")
    {
        return Err(CloudflareError::invalid(
            81053,
            "An A, AAAA, or CNAME record with that host already exists.",
        ));
    }
    if address(&record.kind) && same_name.iter().any(|r| r.kind == "CNAME") {
        return Err(CloudflareError::invalid(
            81054,
            "A CNAME record with that host already exists.",
        ));
    }
    let identical = same_name.iter().any(|r| {
        r.kind == record.kind && r.content == record.content && r.priority == record.priority
    });
    if identical {
        return Err(CloudflareError::invalid(
            81058,
            "An identical record already exists.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::{Reply, get, send, send_with, two_owners};
    use crate::sandbox::{Failure, Sandbox};
    use anyhow::Context as _;

    fn records_path(zone_id: &str) -> String {
        format!("/client/v4/zones/{zone_id}/dns_records")
    }

    fn record_path(zone_id: &str, record_id: &str) -> String {
        format!("/client/v4/zones/{zone_id}/dns_records/{record_id}")
    }

    /// `(code, message)` of the first error, after checking the failure envelope.
    fn first_error(reply: &Reply) -> anyhow::Result<(u64, String)> {
        let body = reply.json()?;
        anyhow::ensure!(body["success"] == false, "not a failure: {}", reply.body);
        anyhow::ensure!(body["result"].is_null() && body["messages"] == json!([]));
        let error = &body["errors"][0];
        Ok((
            error["code"].as_u64().context("code")?,
            error["message"].as_str().context("message")?.to_owned(),
        ))
    }

    async fn create(
        sandbox: &Sandbox,
        zone_id: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<Reply> {
        send(
            sandbox,
            "POST",
            &records_path(zone_id),
            Some(token),
            Some(body),
        )
        .await
    }

    #[test]
    fn names_are_qualified_inside_the_zone() {
        let zone = "acme.example";
        assert_eq!(qualify("@", zone).as_deref(), Some("acme.example"));
        assert_eq!(
            qualify("WWW.acme.example.", zone).as_deref(),
            Some("www.acme.example")
        );
        assert_eq!(qualify("blog", zone).as_deref(), Some("blog.acme.example"));
        assert_eq!(
            qualify("*.shop", zone).as_deref(),
            Some("*.shop.acme.example")
        );
        assert_eq!(
            qualify("www.globex.example", zone).as_deref(),
            Some("www.globex.example.acme.example")
        );
        assert_eq!(qualify("bad name", zone), None);
        assert_eq!(qualify("a..b", zone), None);
        assert_eq!(qualify("", zone), None);
        assert_eq!(
            hostname("Target.Example."),
            Some("target.example".to_owned())
        );
        assert_eq!(hostname("localhost"), None);
    }

    #[tokio::test]
    async fn each_token_lists_only_its_own_zone() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        for (me, other) in [(&acme, &globex), (&globex, &acme)] {
            let reply = get(
                &sandbox,
                &records_path(&me.zone_id),
                Some(&me.cloudflare_token),
            )
            .await?;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let body = reply.json()?;
            assert_eq!(body["success"], true);
            assert_eq!(body["errors"], json!([]));
            let records = body["result"].as_array().context("result")?;
            let ids: Vec<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
            assert_eq!(ids, me.dns_record_ids);
            assert_eq!(
                body["result_info"],
                json!({"page": 1, "per_page": 100, "count": 5, "total_count": 5, "total_pages": 1})
            );
            for record in records {
                let comment = record["comment"].as_str().context("comment")?;
                assert!(
                    comment.ends_with(&format!("(owner:{})", me.owner)),
                    "{comment}"
                );
                assert!(record.get("zone_id").is_none() && record.get("zone_name").is_none());
            }
            assert!(!reply.body.contains(&format!("owner:{}", other.owner)));
            assert!(!reply.body.contains(&other.zone_name));
        }
        let zone = &acme.zone_name;
        let body = get(
            &sandbox,
            &records_path(&acme.zone_id),
            Some(&acme.cloudflare_token),
        )
        .await?
        .json()?;
        let shapes: Vec<(String, String, String, Value)> = body["result"]
            .as_array()
            .context("result")?
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["type"].as_str().unwrap_or_default().to_owned(),
                    r["content"].as_str().unwrap_or_default().to_owned(),
                    r.get("priority").cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (zone.clone(), "A".into(), "203.0.113.10".into(), Value::Null),
                (
                    format!("www.{zone}"),
                    "CNAME".into(),
                    zone.clone(),
                    Value::Null
                ),
                (
                    format!("shop.{zone}"),
                    "A".into(),
                    "203.0.113.20".into(),
                    Value::Null
                ),
                (
                    format!("mail.{zone}"),
                    "MX".into(),
                    format!("mx.{zone}"),
                    json!(10)
                ),
                (
                    zone.clone(),
                    "TXT".into(),
                    "v=spf1 -all (owner:acme)".into(),
                    Value::Null
                ),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn listing_filters_and_pages() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.cloudflare_token.as_str());
        let base = records_path(&acme.zone_id);
        let apex = get(&sandbox, &format!("{base}?name={}", acme.zone_name), token)
            .await?
            .json()?;
        assert_eq!(apex["result_info"]["total_count"], 2);
        let txt = get(
            &sandbox,
            &format!("{base}?name={}&type=txt", acme.zone_name),
            token,
        )
        .await?
        .json()?;
        assert_eq!(txt["result"][0]["id"], acme.dns_record_ids[4].as_str());

        let second = get(&sandbox, &format!("{base}?per_page=5&page=2"), token)
            .await?
            .json()?;
        assert_eq!(second["result"], json!([]));
        assert_eq!(
            second["result_info"],
            json!({"page": 2, "per_page": 5, "count": 0, "total_count": 5, "total_pages": 1})
        );
        for query in ["per_page=4", "per_page=5001", "per_page=x", "page=0"] {
            let reply = get(&sandbox, &format!("{base}?{query}"), token).await?;
            assert_eq!(reply.status, 400, "{query}");
            let (code, message) = first_error(&reply)?;
            assert_eq!(code, 1004, "{query}");
            assert!(message.starts_with(query.split('=').next().unwrap_or_default()));
        }
        Ok(())
    }

    #[tokio::test]
    async fn credentials_are_checked_like_cloudflare() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let path = records_path(&acme.zone_id);
        let missing = get(&sandbox, &path, None).await?;
        assert_eq!(missing.status, 400);
        assert_eq!(first_error(&missing)?.0, 9106);

        for authorization in ["Basic abc", "Bearer not/a token", "Bearer"] {
            let reply = send_with(&sandbox, "GET", &path, Some(authorization), &[], None).await?;
            assert_eq!(reply.status, 400, "{authorization}");
            let body = reply.json()?;
            assert_eq!(body["errors"][0]["code"], 6003);
            assert_eq!(body["errors"][0]["error_chain"][0]["code"], 6111);
        }
        // Unknown, and another vendor's token, are both unknown to Cloudflare.
        for token in ["cf-sandbox-acme-0000000000000000", acme.token.as_str()] {
            let reply = get(&sandbox, &path, Some(token)).await?;
            assert_eq!(reply.status, 403);
            assert_eq!(
                first_error(&reply)?,
                (10000, "Authentication error".to_owned())
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn foreign_zones_and_records_are_refused() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let token = Some(acme.cloudflare_token.as_str());
        let g_record = &globex.dns_record_ids[0];
        let a_record = &acme.dns_record_ids[0];

        // A zone the token cannot reach looks like one that does not exist: 403 / 10000.
        let missing_zone = get(&sandbox, &records_path(&"0".repeat(32)), token).await?;
        for (method, path) in [
            ("GET", records_path(&globex.zone_id)),
            ("GET", record_path(&globex.zone_id, g_record)),
            ("DELETE", record_path(&globex.zone_id, g_record)),
            ("PATCH", record_path(&globex.zone_id, g_record)),
            ("POST", records_path(&globex.zone_id)),
        ] {
            let body = json!({"type": "A", "name": "www", "content": "198.51.100.1"});
            let reply = send(&sandbox, method, &path, token, Some(body)).await?;
            assert_eq!(reply.status, 403, "{method} {path}");
            assert_eq!(reply.body, missing_zone.body, "{method} {path}");
            assert!(!reply.body.contains("globex"));
        }
        // Own zone, foreign record: no such record.
        for method in ["GET", "PATCH", "DELETE"] {
            let reply = send(
                &sandbox,
                method,
                &record_path(&acme.zone_id, g_record),
                token,
                Some(json!({"content": "198.51.100.1"})),
            )
            .await?;
            assert_eq!(reply.status, 404, "{method}");
            assert_eq!(
                first_error(&reply)?,
                (81044, "Record does not exist.".to_owned())
            );
        }
        // Ids that are not 32 hex digits cannot be routed.
        let bad = get(&sandbox, &record_path(&acme.zone_id, "www"), token).await?;
        assert_eq!(bad.status, 400);
        assert_eq!(first_error(&bad)?.0, 7003);

        let untouched = sandbox
            .dns_record(&globex.zone_id, g_record)
            .context("globex record")?;
        assert_eq!(untouched["content"], "203.0.113.10");
        assert!(sandbox.dns_record(&acme.zone_id, a_record).is_some());
        // A name outside the zone stays inside it, as Cloudflare qualifies relative names.
        let created = create(
            &sandbox,
            &acme.zone_id,
            &acme.cloudflare_token,
            json!({"type": "A", "name": format!("www.{}", globex.zone_name), "content": "198.51.100.7"}),
        )
        .await?
        .json()?;
        assert_eq!(
            created["result"]["name"],
            format!("www.{}.{}", globex.zone_name, acme.zone_name)
        );
        Ok(())
    }

    #[tokio::test]
    async fn records_are_created_updated_and_deleted() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.cloudflare_token.as_str());
        let zone = &acme.zone_id;
        let created = create(
            &sandbox,
            zone,
            &acme.cloudflare_token,
            json!({"type": "a", "name": "blog", "content": "198.51.100.5", "ttl": 300, "proxied": false, "comment": "Blog"}),
        )
        .await?;
        assert_eq!(created.status, 200, "{}", created.body);
        let body = created.json()?;
        assert_eq!(
            (&body["success"], &body["errors"]),
            (&json!(true), &json!([]))
        );
        let record = &body["result"];
        let id = record["id"].as_str().context("id")?.to_owned();
        assert!(is_object_id(&id));
        assert_eq!(record["name"], format!("blog.{}", acme.zone_name));
        assert_eq!(
            (&record["type"], &record["ttl"], &record["proxiable"]),
            (&json!("A"), &json!(300), &json!(true))
        );
        assert_eq!(record["tags"], json!(["owner:acme"]));

        let fetched = get(&sandbox, &record_path(zone, &id), token)
            .await?
            .json()?;
        assert_eq!(&fetched["result"], record);
        let listed = get(&sandbox, &records_path(zone), token).await?.json()?;
        assert_eq!(listed["result_info"]["total_count"], 6);

        let patched = send(
            &sandbox,
            "PATCH",
            &record_path(zone, &id),
            token,
            Some(json!({"content": "198.51.100.6", "proxied": true, "comment": null})),
        )
        .await?;
        assert_eq!(patched.status, 200, "{}", patched.body);
        let stored = sandbox.dns_record(zone, &id).context("stored")?;
        assert_eq!(stored["content"], "198.51.100.6");
        assert_eq!(
            (&stored["proxied"], &stored["ttl"]),
            (&json!(true), &json!(1))
        );
        assert!(stored["comment"].is_null());
        assert_eq!(stored["name"], format!("blog.{}", acme.zone_name));

        let retyped = send(
            &sandbox,
            "PATCH",
            &record_path(zone, &id),
            token,
            Some(json!({"type": "CNAME", "content": "elsewhere.example"})),
        )
        .await?;
        assert_eq!(retyped.status, 400);
        assert_eq!(first_error(&retyped)?.0, 1004);

        let deleted = send(&sandbox, "DELETE", &record_path(zone, &id), token, None).await?;
        assert_eq!(deleted.status, 200);
        assert_eq!(
            deleted.json()?,
            json!({"success": true, "errors": [], "messages": [], "result": {"id": id}})
        );
        assert!(sandbox.dns_record(zone, &id).is_none());
        let again = get(&sandbox, &record_path(zone, &id), token).await?;
        assert_eq!(again.status, 404);
        Ok(())
    }

    #[tokio::test]
    async fn invalid_records_name_the_problem() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let zone = &acme.zone_name;
        let cases = [
            (
                json!({"type": "A", "name": "x", "content": "300.1.1.1"}),
                9005,
            ),
            (
                json!({"type": "AAAA", "name": "x", "content": "1.2.3.4"}),
                9006,
            ),
            (
                json!({"type": "CNAME", "name": "x", "content": "not a host"}),
                9007,
            ),
            (
                json!({"type": "CNAME", "name": "x", "content": format!("x.{zone}")}),
                9039,
            ),
            (
                json!({"type": "A", "name": "x", "content": "198.51.100.1", "ttl": 30}),
                9021,
            ),
            (
                json!({"type": "A", "name": "x", "content": "198.51.100.1", "ttl": 86_401}),
                9021,
            ),
            (
                json!({"type": "TXT", "name": "x", "content": "hi", "proxied": true}),
                9004,
            ),
            (
                json!({"type": "MX", "name": "x", "content": format!("mx.{zone}")}),
                1004,
            ),
            (
                json!({"type": "SPF", "name": "x", "content": "v=spf1"}),
                1004,
            ),
            (
                json!({"type": "A", "name": "bad name", "content": "198.51.100.1"}),
                1004,
            ),
            (json!({"type": "A", "content": "198.51.100.1"}), 1004),
            (
                json!({"type": "A", "name": "x", "content": "198.51.100.1", "ttl": "1"}),
                9021,
            ),
            // www is a CNAME: no A beside it, and no second CNAME.
            (
                json!({"type": "A", "name": "www", "content": "198.51.100.1"}),
                81054,
            ),
            (
                json!({"type": "CNAME", "name": "www", "content": "other.example"}),
                81053,
            ),
            // shop has an A record: no CNAME beside it; the same A again is identical.
            (
                json!({"type": "CNAME", "name": "shop", "content": "other.example"}),
                81053,
            ),
            (
                json!({"type": "A", "name": "shop", "content": "203.0.113.20"}),
                81058,
            ),
            (
                json!({"type": "MX", "name": "mail", "content": format!("mx.{zone}"), "priority": 10}),
                81058,
            ),
        ];
        for (body, code) in cases {
            let reply = create(
                &sandbox,
                &acme.zone_id,
                &acme.cloudflare_token,
                body.clone(),
            )
            .await?;
            assert_eq!(reply.status, 400, "{body}: {}", reply.body);
            assert_eq!(first_error(&reply)?.0, code, "{body}: {}", reply.body);
        }
        let not_json = send_with(
            &sandbox,
            "POST",
            &records_path(&acme.zone_id),
            Some(&format!("Bearer {}", acme.cloudflare_token)),
            &[],
            Some(json!([1, 2])),
        )
        .await?;
        assert_eq!(first_error(&not_json)?.0, 6007);
        // A second A record on the same name is fine (round-robin), as is another MX priority.
        for body in [
            json!({"type": "A", "name": "shop", "content": "203.0.113.21"}),
            json!({"type": "MX", "name": "mail", "content": format!("mx2.{zone}"), "priority": 20}),
        ] {
            let reply = create(&sandbox, &acme.zone_id, &acme.cloudflare_token, body).await?;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        // An update may not collide with another record either.
        let shop = &acme.dns_record_ids[2];
        let clash = send(
            &sandbox,
            "PATCH",
            &record_path(&acme.zone_id, shop),
            Some(&acme.cloudflare_token),
            Some(json!({"name": "www"})),
        )
        .await?;
        assert_eq!(first_error(&clash)?.0, 81054);
        assert_eq!(
            listed_count(&sandbox, &acme.zone_id, &acme.cloudflare_token).await?,
            7
        );
        Ok(())
    }

    async fn listed_count(sandbox: &Sandbox, zone_id: &str, token: &str) -> anyhow::Result<u64> {
        let body = get(sandbox, &records_path(zone_id), Some(token))
            .await?
            .json()?;
        body["result_info"]["total_count"]
            .as_u64()
            .context("total_count")
    }

    #[tokio::test]
    async fn failures_use_the_cloudflare_envelope() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let path = records_path(&acme.zone_id);
        let token = Some(acme.cloudflare_token.as_str());
        sandbox.fail_next(Failure::rate_limited(12), 1);
        sandbox.fail_next(Failure::status(502), 1);
        let limited = get(&sandbox, &path, token).await?;
        assert_eq!(
            (limited.status, limited.header("retry-after")),
            (429, Some("12"))
        );
        assert_eq!(first_error(&limited)?.0, 971);
        let broken = get(&sandbox, &path, token).await?;
        assert_eq!(broken.status, 502);
        first_error(&broken)?;
        let nowhere = get(&sandbox, "/client/v4/zones", token).await?;
        assert_eq!((nowhere.status, first_error(&nowhere)?.0), (404, 7000));

        let log = sandbox.requests();
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|r| r.token_owner.as_deref() == Some("acme")));
        Ok(())
    }
}
