//! Sandbox Stripe API (v1): list invoices and create billing-portal sessions, with Stripe's
//! form-encoded requests, `{"object": "list", …}` answers, `{"error": {…}}` bodies and
//! idempotent requests, scoped like a secret key of an account that holds one customer.
//!
//! Shapes follow docs.stripe.com/api ("List all invoices", "Create a portal session", "Errors",
//! "Idempotent requests", "Authentication"). A customer of another account is answered exactly
//! like one that does not exist (`404 resource_missing`). Idempotency works as Stripe documents
//! it for API v1: once an endpoint has begun executing, the status and body of the first request
//! with a key are saved and replayed to every retry with the same parameters (with
//! `Idempotent-Replayed: true`); a retry with other parameters is an `idempotency_error`;
//! requests that fail authentication or parameter validation save nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Caller, Fixture, OwnerFixture, lock};

/// Statuses of each customer's invoices, in `invoice_ids` order; each is a month older than the
/// next, so a list (newest first) shows them in reverse: draft, open, paid.
pub const INVOICE_STATUSES: [&str; 3] = ["paid", "open", "draft"];
/// Each invoice's amount, in cents.
pub const INVOICE_AMOUNT: i64 = 250_000;

/// Stripe's list `limit`: 1–100, default 10.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// 2025-03-01T09:00:00Z, when the oldest invoice was created; the others follow a month apart.
const FIRST_INVOICE_AT: i64 = 1_740_819_600;
const MONTH_SECS: i64 = 30 * 86_400;
const INVOICE_STATUS_FILTERS: [&str; 5] = ["draft", "open", "paid", "uncollectible", "void"];
const INVOICE_LIST_PARAMS: [&str; 5] = [
    "customer",
    "ending_before",
    "limit",
    "starting_after",
    "status",
];
const PORTAL_SESSION_PARAMS: [&str; 5] = [
    "configuration",
    "customer",
    "locale",
    "on_behalf_of",
    "return_url",
];
const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const NO_API_KEY: &str = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";
const UNRECOGNIZED_URL: &str = "Unrecognized request URL. Please see https://stripe.com/docs or we can help at https://support.stripe.com/.";

/// Stripe routes, ready to merge into the sandbox app.
pub(crate) fn router(state: Arc<StripeState>) -> Router {
    Router::new()
        .route("/v1/invoices", get(list_invoices))
        .route("/v1/billing_portal/sessions", post(create_portal_session))
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Stripe names every request (`Request-Id: req_…`); a replay also names the original one.
#[derive(Debug, Clone)]
struct RequestId(String);

async fn request_id(
    State(state): State<Arc<StripeState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let id = object_id("req", 14, "request", "", n as usize);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// `<prefix>_<len alphanumerics>`, derived from kind, owner and index like every sandbox id.
pub(crate) fn object_id(prefix: &str, len: usize, kind: &str, owner: &str, index: usize) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + len);
    out.push_str(prefix);
    out.push('_');
    let mut round = 0usize;
    while out.len() < prefix.len() + 1 + len {
        let digest = Sha256::digest(format!("stripe:{kind}\0{owner}\0{index}\0{round}"));
        for byte in digest {
            if out.len() == prefix.len() + 1 + len {
                break;
            }
            out.push(char::from(
                ALPHANUMERIC[usize::from(byte) % ALPHANUMERIC.len()],
            ));
        }
        round += 1;
    }
    out
}

/// The API key a request presents: `Authorization: Bearer <key>`, or HTTP Basic with the key as
/// the user name (what `curl -u sk_test_…:` sends), as Stripe accepts both.
pub(crate) fn api_key(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!credential.is_empty()).then_some(Cow::Borrowed(credential));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(credential)?).ok()?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| Cow::Owned(user.to_owned()))
}

/// Standard base64 with optional padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A key as Stripe shows it in errors: its `sk_test_` style prefix and last four characters,
/// the rest starred; a short key is starred whole. Never the key itself.
fn masked(key: &str) -> String {
    let prefix_len = [
        "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
    ]
    .iter()
    .find(|p| key.starts_with(**p))
    .map_or(0, |p| p.len());
    let rest = key.chars().count() - prefix_len;
    let shown = if rest > 8 { 4 } else { 0 };
    let tail: String = key.chars().skip(prefix_len + rest - shown).collect();
    format!("{}{}{tail}", &key[..prefix_len], "*".repeat(rest - shown))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------------------------
// In-memory data, every record tagged with its owner (the account)

struct InvoiceRecord {
    owner: String,
    customer: String,
    status: &'static str,
    created: i64,
    id: String,
    invoice: Value,
}

/// A saved idempotent result: what was asked, and what was answered.
struct Saved {
    fingerprint: String,
    status: StatusCode,
    body: Value,
    request_id: String,
}

#[derive(Default)]
struct Data {
    /// customer id → owner.
    customers: HashMap<String, String>,
    /// Newest first, Stripe's list order.
    invoices: Vec<InvoiceRecord>,
    /// owner → billing-portal sessions created.
    sessions: HashMap<String, usize>,
    /// (owner, idempotency key) → first result.
    idempotent: HashMap<(String, String), Saved>,
}

/// The Stripe sandbox's data. Handlers hold the lock for a whole request, so two retries with
/// one key cannot both execute.
pub(crate) struct StripeState {
    data: Mutex<Data>,
    /// Requests served so far, numbering their `Request-Id`s.
    requests: AtomicU64,
}

impl StripeState {
    pub(crate) fn new(fixture: &Fixture) -> StripeState {
        let mut data = Data::default();
        for owner in &fixture.owners {
            seed_owner(&mut data, owner);
        }
        data.invoices
            .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        StripeState {
            data: Mutex::new(data),
            requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn sessions_created(&self, owner: &str) -> usize {
        lock(&self.data).sessions.get(owner).copied().unwrap_or(0)
    }
}

fn title_case(owner: &str) -> String {
    let mut chars = owner.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn seed_owner(data: &mut Data, fx: &OwnerFixture) {
    let owner = fx.owner.as_str();
    let mark = format!("(owner:{owner})");
    let name = title_case(owner);
    let account = object_id("acct", 16, "account", owner, 0);
    // Stripe numbers invoices `<customer prefix>-<sequence>`; drafts have no number yet.
    let prefix: String = owner
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect::<String>()
        .to_ascii_uppercase()
        + &object_id("x", 4, "invoice-prefix", owner, 0)[2..].to_ascii_uppercase();
    data.customers
        .insert(fx.stripe_customer.clone(), owner.to_owned());
    for (i, (id, status)) in fx.invoice_ids.iter().zip(INVOICE_STATUSES).enumerate() {
        let created = FIRST_INVOICE_AT + MONTH_SECS * i as i64;
        let finalized = status != "draft";
        let paid = status == "paid";
        let secret = object_id("test", 40, "invoice-link", owner, i)[5..].to_owned();
        let month = ["March", "April", "May"].get(i).copied().unwrap_or("June");
        let invoice = json!({
            "id": id,
            "object": "invoice",
            "account_country": "DE",
            "account_name": format!("Web Studio (sandbox) {mark}"),
            "amount_due": INVOICE_AMOUNT,
            "amount_paid": if paid { INVOICE_AMOUNT } else { 0 },
            "amount_remaining": if paid { 0 } else { INVOICE_AMOUNT },
            "attempt_count": i64::from(paid),
            "attempted": paid,
            "auto_advance": !finalized,
            "billing_reason": "manual",
            "collection_method": "send_invoice",
            "created": created,
            "currency": "eur",
            "customer": fx.stripe_customer,
            "customer_email": format!("billing@{owner}.example"),
            "customer_name": format!("{name} Co {mark}"),
            "description": format!("Webflow retainer, {month} 2025 {mark}"),
            "due_date": finalized.then_some(created + MONTH_SECS),
            "hosted_invoice_url": finalized.then(|| format!("https://invoice.stripe.com/i/{account}/test_{secret}?s=ap")),
            "invoice_pdf": finalized.then(|| format!("https://pay.stripe.com/invoice/{account}/test_{secret}/pdf?s=ap")),
            "lines": {
                "object": "list",
                "data": [],
                "has_more": false,
                "total_count": 0,
                "url": format!("/v1/invoices/{id}/lines"),
            },
            "livemode": false,
            "metadata": {},
            "number": finalized.then(|| format!("{prefix}-{:04}", i + 1)),
            "period_end": created,
            "period_start": created - MONTH_SECS,
            "status": status,
            "subtotal": INVOICE_AMOUNT,
            "total": INVOICE_AMOUNT,
        });
        data.invoices.push(InvoiceRecord {
            owner: owner.to_owned(),
            customer: fx.stripe_customer.clone(),
            status,
            created,
            id: id.clone(),
            invoice,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, in Stripe's body shape: {"error": {type, message, code?, param?, doc_url?}}

#[derive(Debug)]
pub(crate) struct StripeError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
}

impl StripeError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> StripeError {
        StripeError {
            status,
            kind,
            message: message.into(),
            code: None,
            param: None,
        }
    }

    fn invalid_request(message: impl Into<String>) -> StripeError {
        StripeError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    fn with_code(self, code: &'static str) -> StripeError {
        StripeError {
            code: Some(code),
            ..self
        }
    }

    fn with_param(self, param: &str) -> StripeError {
        StripeError {
            param: Some(param.to_owned()),
            ..self
        }
    }

    fn no_api_key() -> StripeError {
        StripeError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            NO_API_KEY,
        )
    }

    fn invalid_api_key(key: &str) -> StripeError {
        StripeError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!("Invalid API Key provided: {}", masked(key)),
        )
    }

    /// An object the key's account does not hold, whether it exists elsewhere or not.
    fn no_such(what: &str, id: &str, param: &str) -> StripeError {
        StripeError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {what}: '{id}'"),
        )
        .with_code("resource_missing")
        .with_param(param)
    }

    fn unknown_param(name: &str) -> StripeError {
        StripeError::invalid_request(format!("Received unknown parameter: {name}"))
            .with_code("parameter_unknown")
            .with_param(name)
    }

    fn missing_param(name: &str) -> StripeError {
        StripeError::invalid_request(format!("Missing required param: {name}."))
            .with_code("parameter_missing")
            .with_param(name)
    }

    fn idempotency_mismatch(key: &str) -> StripeError {
        StripeError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
        )
    }

    /// Stripe's error for `status`, for injected failures and unknown routes.
    fn for_status(status: StatusCode) -> StripeError {
        let invalid = |message: &str| StripeError::new(status, "invalid_request_error", message);
        match status.as_u16() {
            400 => invalid("Invalid request."),
            401 => invalid("Invalid API Key provided: sk_test_************************"),
            402 => StripeError::new(status, "card_error", "Your card was declined.")
                .with_code("card_declined"),
            403 => invalid(
                "The provided key does not have the required permissions for this endpoint.",
            ),
            404 => invalid(UNRECOGNIZED_URL),
            409 => StripeError::new(
                status,
                "idempotency_error",
                "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.",
            ),
            429 => invalid(
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            )
            .with_code("rate_limit"),
            s if s >= 500 => StripeError::new(
                status,
                "api_error",
                "An unknown error occurred. Please try again later.",
            ),
            _ => invalid(status.canonical_reason().unwrap_or("Invalid request.")),
        }
    }

    fn body(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = self.code {
            error["code"] = json!(code);
            error["doc_url"] = json!(format!(
                "https://docs.stripe.com/error-codes/{}",
                code.replace('_', "-")
            ));
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for StripeError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Stripe's error answer for `status`.
pub(crate) fn error_response(status: StatusCode) -> Response {
    StripeError::for_status(status).into_response()
}

type Answer<T> = Result<T, StripeError>;

fn authorize<'a>(caller: &'a Caller, headers: &HeaderMap) -> Answer<&'a str> {
    if let Some(owner) = caller.owner.as_deref() {
        return Ok(owner);
    }
    Err(match api_key(headers) {
        Some(key) => StripeError::invalid_api_key(&key),
        None => StripeError::no_api_key(),
    })
}

type Params = Vec<(String, String)>;

/// The first value of `name`, as sent (Stripe takes an empty value as given, not as absent).
fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn only_known(params: &Params, known: &[&str]) -> Answer<()> {
    match params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((name, _)) => Err(StripeError::unknown_param(name)),
        None => Ok(()),
    }
}

/// `application/x-www-form-urlencoded` pairs. Stripe reads only form bodies: a body of another
/// declared type (JSON, say) carries no parameters at all.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Answer<Params> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form || body.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| StripeError::invalid_request("Invalid request body: not UTF-8"))?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (form_decode(k), form_decode(v)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(StripeError::invalid_request(
                    "Invalid request body: malformed percent-encoding",
                )),
            }
        })
        .collect()
}

/// One form component: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            _ => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `GET /v1/invoices`: the account's invoices, newest first, filtered by `customer` and `status`,
/// paged by `limit` with `starting_after` / `ending_before` cursors.
async fn list_invoices(
    State(state): State<Arc<StripeState>>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = authorize(&caller, &headers)?;
    let Query(params) = query.map_err(|_| StripeError::invalid_request("Invalid query string."))?;
    only_known(&params, &INVOICE_LIST_PARAMS)?;
    let limit = match param(&params, "limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<i64>() {
            Err(_) => {
                return Err(
                    StripeError::invalid_request(format!("Invalid integer: {raw}"))
                        .with_code("parameter_invalid_integer")
                        .with_param("limit"),
                );
            }
            Ok(n) if n < 1 => {
                return Err(StripeError::invalid_request(
                    "This value must be greater than or equal to 1.",
                )
                .with_param("limit"));
            }
            Ok(n) if n > MAX_LIMIT as i64 => {
                return Err(StripeError::invalid_request(format!(
                    "This value must be less than or equal to {MAX_LIMIT}."
                ))
                .with_param("limit"));
            }
            Ok(n) => usize::try_from(n).unwrap_or(DEFAULT_LIMIT),
        },
    };
    let status = param(&params, "status");
    if let Some(status) = status
        && !INVOICE_STATUS_FILTERS.contains(&status)
    {
        return Err(StripeError::invalid_request(format!(
            "Invalid status: must be one of {}",
            INVOICE_STATUS_FILTERS.join(", ")
        ))
        .with_param("status"));
    }
    let after = param(&params, "starting_after");
    let before = param(&params, "ending_before");
    if after.is_some() && before.is_some() {
        return Err(StripeError::invalid_request(
            "You may only specify one of these parameters: ending_before, starting_after.",
        ));
    }

    let data = lock(&state.data);
    let customer = param(&params, "customer");
    if let Some(customer) = customer
        && data.customers.get(customer).map(String::as_str) != Some(owner)
    {
        return Err(StripeError::no_such("customer", customer, "customer"));
    }
    // Cursors are positions in the account's whole list, newest first.
    let own: Vec<&InvoiceRecord> = data.invoices.iter().filter(|r| r.owner == owner).collect();
    let position = |id: &str, name: &str| {
        own.iter()
            .position(|r| r.id == id)
            .ok_or_else(|| StripeError::no_such("invoice", id, name))
    };
    let start = after.map(|id| position(id, "starting_after")).transpose()?;
    let end = before.map(|id| position(id, "ending_before")).transpose()?;
    let matching: Vec<(usize, &InvoiceRecord)> = own
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, r)| {
            start.is_none_or(|s| *i > s)
                && end.is_none_or(|e| *i < e)
                && customer.is_none_or(|c| r.customer == c)
                && status.is_none_or(|s| r.status == s)
        })
        .collect();
    // `ending_before` pages backwards: the `limit` records just before the cursor.
    let skip = if end.is_some() {
        matching.len().saturating_sub(limit)
    } else {
        0
    };
    let page: Vec<&Value> = matching
        .iter()
        .skip(skip)
        .take(limit)
        .map(|(_, r)| &r.invoice)
        .collect();
    let has_more = if end.is_some() {
        skip > 0
    } else {
        matching.len() > limit
    };
    Ok(Json(json!({
        "object": "list",
        "data": page,
        "has_more": has_more,
        "url": "/v1/invoices",
    })))
}

/// `POST /v1/billing_portal/sessions`, form-encoded, honouring `Idempotency-Key`.
async fn create_portal_session(
    State(state): State<Arc<StripeState>>,
    caller: Caller,
    headers: HeaderMap,
    Extension(RequestId(request_id)): Extension<RequestId>,
    body: Bytes,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let mut response = portal_session(&state, &caller, &headers, &request_id, key, &body)
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(value) = key.and_then(|k| HeaderValue::from_str(k).ok()) {
        response.headers_mut().insert("idempotency-key", value);
    }
    response
}

/// The session, a replay of the key's first answer, or why the request was refused before the
/// endpoint executed (nothing saved then).
fn portal_session(
    state: &StripeState,
    caller: &Caller,
    headers: &HeaderMap,
    request_id: &str,
    key: Option<&str>,
    body: &[u8],
) -> Answer<Response> {
    let owner = authorize(caller, headers)?;
    let mut params = form_params(headers, body)?;
    let mut data = lock(&state.data);

    params.sort();
    let fingerprint = format!(
        "POST /v1/billing_portal/sessions?{}",
        params
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    );
    let slot = key.map(|k| (owner.to_owned(), k.to_owned()));
    if let Some(slot) = &slot
        && let Some(saved) = data.idempotent.get(slot)
    {
        if saved.fingerprint != fingerprint {
            return Err(StripeError::idempotency_mismatch(&slot.1));
        }
        let mut response = (saved.status, Json(saved.body.clone())).into_response();
        let replay = response.headers_mut();
        replay.insert("idempotent-replayed", HeaderValue::from_static("true"));
        if let Ok(original) = HeaderValue::from_str(&saved.request_id) {
            replay.insert("original-request", original);
        }
        return Ok(response);
    }

    only_known(&params, &PORTAL_SESSION_PARAMS)?;
    let customer = match param(&params, "customer") {
        None | Some("") => return Err(StripeError::missing_param("customer")),
        Some(customer) => customer.to_owned(),
    };
    let return_url = param(&params, "return_url").map(str::to_owned);
    if let Some(url) = &return_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(StripeError::invalid_request("Not a valid URL")
            .with_code("url_invalid")
            .with_param("return_url"));
    }

    // Validation passed: the endpoint executes, and its outcome is what a key saves.
    let (status, body) = if data.customers.get(&customer).map(String::as_str) == Some(owner) {
        let created = data.sessions.entry(owner.to_owned()).or_default();
        let index = *created;
        *created += 1;
        let secret = object_id("test", 48, "portal-session-url", owner, index)[5..].to_owned();
        let session = json!({
            "id": object_id("bps", 24, "portal-session", owner, index),
            "object": "billing_portal.session",
            "configuration": object_id("bpc", 24, "portal-configuration", owner, 0),
            "created": unix_now(),
            "customer": customer,
            "flow": null,
            "livemode": false,
            "locale": param(&params, "locale"),
            "on_behalf_of": param(&params, "on_behalf_of"),
            "return_url": return_url,
            "url": format!("https://billing.stripe.com/p/session/test_{secret}"),
        });
        (StatusCode::OK, session)
    } else {
        let error = StripeError::no_such("customer", &customer, "customer");
        (error.status, error.body())
    };
    if let Some(slot) = slot {
        data.idempotent.insert(
            slot,
            Saved {
                fingerprint,
                status,
                body: body.clone(),
                request_id: request_id.to_owned(),
            },
        );
    }
    Ok((status, Json(body)).into_response())
}

/// Percent-encodes `&`, `=` and `%` so a fingerprint cannot be forged by a value containing them.
fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('&', "%26")
        .replace('=', "%3D")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::{Reply, get, send_with, two_owners};
    use crate::sandbox::{Failure, RecordedRequest, Sandbox};
    use anyhow::Context as _;

    /// A form POST the way the Stripe client sends it: `Bearer` key, form body, optional key.
    async fn post_form(
        sandbox: &Sandbox,
        path: &str,
        key: Option<&str>,
        idempotency_key: Option<&str>,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        common::upstream::install_crypto_provider();
        let mut request = reqwest::Client::builder()
            .build()?
            .post(format!("{}{path}", sandbox.base_url()))
            .form(form);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("idempotency-key", idempotency_key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Ok(Reply {
            status,
            headers,
            body: response.text().await?,
        })
    }

    fn error(reply: &Reply) -> anyhow::Result<Value> {
        let body = reply.json()?;
        anyhow::ensure!(body["error"].is_object(), "not an error: {}", reply.body);
        Ok(body["error"].clone())
    }

    const SESSIONS: &str = "/v1/billing_portal/sessions";

    #[test]
    fn keys_are_decoded_and_masked() {
        let mut headers = HeaderMap::new();
        // base64("sk_test_abc:")
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic c2tfdGVzdF9hYmM6"),
        );
        assert_eq!(api_key(&headers).as_deref(), Some("sk_test_abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic ???"));
        assert_eq!(api_key(&headers), None);
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(
            masked("sk_test_0123456789abcdef"),
            "sk_test_************cdef"
        );
        assert_eq!(masked("sk_test_short"), "sk_test_*****");
        assert_eq!(masked("whatever"), "********");
        assert_eq!(form_decode("a+b%2Fc"), Some("a b/c".to_owned()));
        assert_eq!(form_decode("%zz"), None);
        let id = object_id("cus", 14, "customer", "acme", 0);
        assert_eq!(id.len(), 18);
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[tokio::test]
    async fn each_key_lists_only_its_own_invoices() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        for (me, other) in [(&acme, &globex), (&globex, &acme)] {
            let path = format!("/v1/invoices?customer={}&limit=10", me.stripe_customer);
            let reply = get(&sandbox, &path, Some(&me.stripe_key)).await?;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(
                reply
                    .header("request-id")
                    .is_some_and(|id| id.starts_with("req_"))
            );
            let body = reply.json()?;
            assert_eq!(
                (&body["object"], &body["url"]),
                (&json!("list"), &json!("/v1/invoices"))
            );
            assert_eq!(body["has_more"], false);
            let data = body["data"].as_array().context("data")?;
            let ids: Vec<&str> = data.iter().filter_map(|i| i["id"].as_str()).collect();
            let newest_first: Vec<&str> = me.invoice_ids.iter().rev().map(String::as_str).collect();
            assert_eq!(ids, newest_first);
            let statuses: Vec<&str> = data.iter().filter_map(|i| i["status"].as_str()).collect();
            assert_eq!(statuses, ["draft", "open", "paid"]);
            for invoice in data {
                assert_eq!(invoice["customer"], me.stripe_customer.as_str());
                assert!(
                    invoice["description"]
                        .as_str()
                        .is_some_and(|d| d.ends_with(&format!("(owner:{})", me.owner)))
                );
            }
            assert!(data[0]["number"].is_null() && data[0]["hosted_invoice_url"].is_null());
            assert!(data[2]["number"].is_string() && data[2]["due_date"].is_i64());
            assert_eq!(data[2]["amount_paid"], INVOICE_AMOUNT);
            assert!(!reply.body.contains(&format!("owner:{}", other.owner)));
            // Without a customer: the whole account, still only its own.
            let all = get(&sandbox, "/v1/invoices", Some(&me.stripe_key))
                .await?
                .json()?;
            assert_eq!(all["data"].as_array().map(Vec::len), Some(3));
        }
        Ok(())
    }

    #[tokio::test]
    async fn foreign_customers_are_missing() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let foreign = get(
            &sandbox,
            &format!("/v1/invoices?customer={}", globex.stripe_customer),
            Some(&acme.stripe_key),
        )
        .await?;
        let missing = get(
            &sandbox,
            "/v1/invoices?customer=cus_000000000000",
            Some(&acme.stripe_key),
        )
        .await?;
        for reply in [&foreign, &missing] {
            assert_eq!(reply.status, 404);
            let error = error(reply)?;
            assert_eq!(
                (&error["type"], &error["code"], &error["param"]),
                (
                    &json!("invalid_request_error"),
                    &json!("resource_missing"),
                    &json!("customer")
                )
            );
        }
        assert_eq!(
            error(&foreign)?["message"],
            format!("No such customer: '{}'", globex.stripe_customer)
        );
        assert!(!foreign.body.contains("owner:globex"));
        // A foreign invoice is no cursor either.
        let cursor = get(
            &sandbox,
            &format!("/v1/invoices?starting_after={}", globex.invoice_ids[0]),
            Some(&acme.stripe_key),
        )
        .await?;
        assert_eq!(
            (cursor.status, &error(&cursor)?["param"]),
            (404, &json!("starting_after"))
        );

        let session = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            None,
            &[("customer", &globex.stripe_customer)],
        )
        .await?;
        assert_eq!(session.status, 404);
        assert_eq!(error(&session)?["code"], "resource_missing");
        assert_eq!(sandbox.stripe_sessions("acme"), 0);
        assert_eq!(sandbox.stripe_sessions("globex"), 0);
        Ok(())
    }

    #[tokio::test]
    async fn keys_are_checked_and_never_echoed() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let none = get(&sandbox, "/v1/invoices", None).await?;
        assert_eq!(none.status, 401);
        assert!(
            error(&none)?["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("You did not provide an API key."))
        );

        let wrong = "sk_test_sandbox_acme_ffffffffffffffff";
        for token in [wrong, acme.token.as_str()] {
            let reply = get(&sandbox, "/v1/invoices", Some(token)).await?;
            assert_eq!(reply.status, 401);
            let error = error(&reply)?;
            assert_eq!(error["type"], "invalid_request_error");
            assert!(
                error["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Invalid API Key provided: "))
            );
            assert!(!reply.body.contains(token), "key echoed: {}", reply.body);
        }
        let masked_wrong = error(&get(&sandbox, "/v1/invoices", Some(wrong)).await?)?;
        assert_eq!(
            masked_wrong["message"],
            format!("Invalid API Key provided: sk_test_{}ffff", "*".repeat(25))
        );

        // HTTP Basic with the key as user name, as `curl -u sk_test_…:` sends it.
        let basic = base64_encode(&format!("{}:", acme.stripe_key));
        let reply = send_with(
            &sandbox,
            "GET",
            "/v1/invoices",
            Some(&format!("Basic {basic}")),
            &[],
            None,
        )
        .await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(sandbox.requests()[4].token_owner.as_deref(), Some("acme"));
        Ok(())
    }

    fn base64_encode(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn list_parameters_are_validated_and_paged() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let key = Some(acme.stripe_key.as_str());
        for (query, param, message) in [
            (
                "limit=0",
                "limit",
                "This value must be greater than or equal to 1.",
            ),
            (
                "limit=101",
                "limit",
                "This value must be less than or equal to 100.",
            ),
            ("limit=ten", "limit", "Invalid integer: ten"),
            (
                "status=late",
                "status",
                "Invalid status: must be one of draft, open, paid, uncollectible, void",
            ),
            ("colour=red", "colour", "Received unknown parameter: colour"),
        ] {
            let reply = get(&sandbox, &format!("/v1/invoices?{query}"), key).await?;
            assert_eq!(reply.status, 400, "{query}");
            let error = error(&reply)?;
            assert_eq!(
                (&error["param"], &error["message"]),
                (&json!(param), &json!(message))
            );
        }
        let first = get(&sandbox, "/v1/invoices?limit=2", key).await?.json()?;
        assert_eq!(first["has_more"], true);
        let last_id = first["data"][1]["id"].as_str().context("id")?;
        assert_eq!(last_id, acme.invoice_ids[1]);
        let rest = get(
            &sandbox,
            &format!("/v1/invoices?limit=2&starting_after={last_id}"),
            key,
        )
        .await?
        .json()?;
        assert_eq!(rest["has_more"], false);
        assert_eq!(rest["data"][0]["id"], acme.invoice_ids[0].as_str());
        let back = get(
            &sandbox,
            &format!("/v1/invoices?limit=1&ending_before={}", acme.invoice_ids[0]),
            key,
        )
        .await?
        .json()?;
        assert_eq!(
            (&back["data"][0]["id"], &back["has_more"]),
            (&json!(acme.invoice_ids[1]), &json!(true))
        );
        let open = get(&sandbox, "/v1/invoices?status=open", key)
            .await?
            .json()?;
        assert_eq!(open["data"][0]["id"], acme.invoice_ids[1].as_str());
        Ok(())
    }

    #[tokio::test]
    async fn portal_sessions_are_form_encoded() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let created = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            None,
            &[
                ("customer", &acme.stripe_customer),
                ("return_url", "https://acme.example/account"),
            ],
        )
        .await?;
        assert_eq!(created.status, 200, "{}", created.body);
        let session = created.json()?;
        assert_eq!(session["object"], "billing_portal.session");
        assert!(
            session["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("bps_"))
        );
        assert!(
            session["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://billing.stripe.com/p/session/test_"))
        );
        assert_eq!(
            (
                &session["customer"],
                &session["return_url"],
                &session["livemode"]
            ),
            (
                &json!(acme.stripe_customer),
                &json!("https://acme.example/account"),
                &json!(false)
            )
        );
        assert!(session["created"].is_i64());
        assert_eq!(sandbox.stripe_sessions("acme"), 1);

        // A JSON body carries no parameters for Stripe.
        let json_body = send_with(
            &sandbox,
            "POST",
            SESSIONS,
            Some(&format!("Bearer {}", acme.stripe_key)),
            &[],
            Some(json!({"customer": acme.stripe_customer})),
        )
        .await?;
        assert_eq!(json_body.status, 400);
        let missing = error(&json_body)?;
        assert_eq!(
            (&missing["message"], &missing["param"], &missing["code"]),
            (
                &json!("Missing required param: customer."),
                &json!("customer"),
                &json!("parameter_missing")
            )
        );
        for form in [
            vec![
                ("customer", acme.stripe_customer.as_str()),
                ("return_url", "javascript:alert(1)"),
            ],
            vec![
                ("customer", acme.stripe_customer.as_str()),
                ("colour", "red"),
            ],
        ] {
            let reply = post_form(&sandbox, SESSIONS, Some(&acme.stripe_key), None, &form).await?;
            assert_eq!(reply.status, 400, "{}", reply.body);
        }
        assert_eq!(sandbox.stripe_sessions("acme"), 1);
        Ok(())
    }

    #[tokio::test]
    async fn idempotent_retries_replay_the_first_answer() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let form = [
            ("customer", acme.stripe_customer.as_str()),
            ("return_url", "https://acme.example/"),
        ];
        let first = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-1"),
            &form,
        )
        .await?;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.header("idempotency-key"), Some("key-1"));
        assert!(first.header("idempotent-replayed").is_none());
        let again = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-1"),
            &form,
        )
        .await?;
        assert_eq!(
            (again.status, again.body.as_str()),
            (200, first.body.as_str())
        );
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.header("original-request"), first.header("request-id"));
        assert_eq!(sandbox.stripe_sessions("acme"), 1);

        // Same key, other parameters: refused, nothing created.
        let other = [
            ("customer", acme.stripe_customer.as_str()),
            ("return_url", "https://acme.example/other"),
        ];
        let mismatch = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-1"),
            &other,
        )
        .await?;
        assert_eq!(mismatch.status, 400);
        let error = error(&mismatch)?;
        assert_eq!(error["type"], "idempotency_error");
        assert!(error["message"].as_str().is_some_and(|m| m.starts_with(
            "Keys for idempotent requests can only be used with the same parameters they were first used with."
        )));
        // A new key is a new session; keys are per account, so globex's "key-1" is its own.
        let fresh = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-2"),
            &form,
        )
        .await?;
        assert_ne!(fresh.json()?["id"], first.json()?["id"]);
        let theirs = post_form(
            &sandbox,
            SESSIONS,
            Some(&globex.stripe_key),
            Some("key-1"),
            &[("customer", &globex.stripe_customer)],
        )
        .await?;
        assert_eq!(theirs.status, 200, "{}", theirs.body);
        assert_eq!(
            (
                sandbox.stripe_sessions("acme"),
                sandbox.stripe_sessions("globex")
            ),
            (2, 1)
        );

        // A refused customer is an executed request: its 404 is saved and replayed too.
        let foreign = [("customer", globex.stripe_customer.as_str())];
        let refused = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-3"),
            &foreign,
        )
        .await?;
        let replayed = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-3"),
            &foreign,
        )
        .await?;
        assert_eq!((refused.status, replayed.status), (404, 404));
        assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
        // Validation failures save nothing: the key stays free for the corrected request.
        let invalid = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-4"),
            &[],
        )
        .await?;
        assert_eq!(invalid.status, 400);
        let corrected = post_form(
            &sandbox,
            SESSIONS,
            Some(&acme.stripe_key),
            Some("key-4"),
            &form,
        )
        .await?;
        assert_eq!(corrected.status, 200);
        assert!(corrected.header("idempotent-replayed").is_none());
        assert_eq!(sandbox.stripe_sessions("acme"), 3);

        let log: Vec<RecordedRequest> = sandbox.requests();
        assert_eq!(
            log.first().map(|r| r.headers.clone()),
            Some(vec![
                (
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned()
                ),
                ("idempotency-key".to_owned(), "key-1".to_owned()),
                ("accept".to_owned(), "*/*".to_owned()),
            ])
        );
        Ok(())
    }

    #[tokio::test]
    async fn failures_use_stripes_error_shape() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let key = Some(acme.stripe_key.as_str());
        sandbox.fail_next(Failure::rate_limited(3), 1);
        sandbox.fail_next(Failure::status(500), 1);
        let limited = get(&sandbox, "/v1/invoices", key).await?;
        assert_eq!(
            (limited.status, limited.header("retry-after")),
            (429, Some("3"))
        );
        assert_eq!(error(&limited)?["code"], "rate_limit");
        let broken = get(&sandbox, "/v1/invoices", key).await?;
        assert_eq!(
            (broken.status, &error(&broken)?["type"]),
            (500, &json!("api_error"))
        );
        let nowhere = get(&sandbox, "/v1/customers", key).await?;
        assert_eq!(nowhere.status, 404);
        assert_eq!(error(&nowhere)?["message"], UNRECOGNIZED_URL);
        // An injected failure never reaches the endpoint, so a retry with the key creates.
        sandbox.fail_next(Failure::status(503), 1);
        let form = [("customer", acme.stripe_customer.as_str())];
        let lost = post_form(&sandbox, SESSIONS, key, Some("retry-me"), &form).await?;
        assert_eq!(lost.status, 503);
        let retried = post_form(&sandbox, SESSIONS, key, Some("retry-me"), &form).await?;
        assert_eq!(retried.status, 200);
        assert_eq!(sandbox.stripe_sessions("acme"), 1);
        Ok(())
    }
}
