//! HTTP plumbing shared by every upstream API client: one pooled `reqwest::Client`, a per-call
//! credential, timeouts, the read cache (`upstream/cache.rs`: a GET the call site marks
//! [`Call::cached`] may be answered from it, and identical ones in flight share a request), and
//! the mapping of upstream failures to errors a person can act on.

pub mod cache;
pub mod github;
pub mod plausible;
pub mod webflow;

use std::sync::{Arc, Once};
use std::time::Duration;

use opentelemetry::KeyValue;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use self::cache::{Begun, Freshness, ReadCache};
use crate::domain::TenantId;
use crate::ratelimit::Buckets;

/// Clone: an answer shared by coalesced callers is shared with its error too.
#[derive(Clone, Debug, Error)]
pub enum UpstreamError {
    #[error("no {0} credential is stored for this tenant; ask the studio to run `secret set`")]
    MissingCredential(&'static str),
    #[error("{upstream} rejected the stored credential (HTTP 401){detail}")]
    Unauthorized {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} refused access (HTTP 403){detail}")]
    Forbidden {
        upstream: &'static str,
        detail: String,
    },
    /// A 403 from an operation that needs an OAuth scope the stored token was not given (what
    /// Webflow's 403 means for a site token): says which, so the studio knows what to reissue.
    #[error(
        "{upstream} refused access (HTTP 403){detail}: the tenant's {upstream} token lacks the \
         `{scope}` scope; ask the studio to issue a token with it and store it with \
         `secret set <tenant> {kind}`"
    )]
    MissingScope {
        upstream: &'static str,
        /// The credential kind as `secret set` names it (`webflow`).
        kind: &'static str,
        scope: String,
        detail: String,
    },
    #[error("{upstream} has no such resource (HTTP 404){detail}")]
    NotFound {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} reported a conflict (HTTP 409){detail}")]
    Conflict {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} is rate limiting this client; retry after {retry_after_secs} s")]
    RateLimited {
        upstream: &'static str,
        retry_after_secs: u64,
    },
    #[error("{upstream} rejected the request (HTTP {status}){detail}")]
    Rejected {
        upstream: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{upstream} failed (HTTP {status}); try again later")]
    Unavailable { upstream: &'static str, status: u16 },
    #[error("{upstream} did not answer within {secs} s")]
    Timeout { upstream: &'static str, secs: u64 },
    #[error("{upstream} could not be reached")]
    Unreachable { upstream: &'static str },
    #[error("{upstream} sent a response that could not be read: {why}")]
    BadResponse { upstream: &'static str, why: String },
    #[error("{upstream} sent an answer larger than {limit_kib} KiB, more than this server reads")]
    TooLarge {
        upstream: &'static str,
        limit_kib: usize,
    },
}

impl UpstreamError {
    /// `error.type` in traces: the HTTP status an answer had, or what kept it from coming.
    pub fn error_type(&self) -> String {
        match self {
            UpstreamError::MissingCredential(_) => "missing_credential".into(),
            UpstreamError::Unauthorized { .. } => "401".into(),
            UpstreamError::Forbidden { .. } | UpstreamError::MissingScope { .. } => "403".into(),
            UpstreamError::NotFound { .. } => "404".into(),
            UpstreamError::Conflict { .. } => "409".into(),
            UpstreamError::RateLimited { .. } => "429".into(),
            UpstreamError::Rejected { status, .. } | UpstreamError::Unavailable { status, .. } => {
                status.to_string()
            }
            UpstreamError::Timeout { .. } => "timeout".into(),
            UpstreamError::Unreachable { .. } => "unreachable".into(),
            UpstreamError::BadResponse { .. } => "bad_response".into(),
            UpstreamError::TooLarge { .. } => "too_large".into(),
        }
    }

    /// This error with any upstream-provided text that quotes `secret` (or a long piece of it)
    /// withheld: an upstream that echoes the credential must not hand it to the model or the
    /// log.
    pub fn without(self, secret: &str) -> Self {
        let scrub = |text: String| {
            if quotes(text.as_bytes(), secret) {
                ": (the upstream's message was withheld: it quoted the credential)".to_owned()
            } else {
                text
            }
        };
        match self {
            UpstreamError::Unauthorized { upstream, detail } => UpstreamError::Unauthorized {
                upstream,
                detail: scrub(detail),
            },
            UpstreamError::Forbidden { upstream, detail } => UpstreamError::Forbidden {
                upstream,
                detail: scrub(detail),
            },
            UpstreamError::MissingScope {
                upstream,
                kind,
                scope,
                detail,
            } => UpstreamError::MissingScope {
                upstream,
                kind,
                scope,
                detail: scrub(detail),
            },
            UpstreamError::NotFound { upstream, detail } => UpstreamError::NotFound {
                upstream,
                detail: scrub(detail),
            },
            UpstreamError::Conflict { upstream, detail } => UpstreamError::Conflict {
                upstream,
                detail: scrub(detail),
            },
            UpstreamError::Rejected {
                upstream,
                status,
                detail,
            } => UpstreamError::Rejected {
                upstream,
                status,
                detail: scrub(detail),
            },
            UpstreamError::BadResponse { upstream, why } => UpstreamError::BadResponse {
                upstream,
                why: scrub(why),
            },
            other => other,
        }
    }
}

/// Whether `text` contains `secret` or a piece of it 17 bytes or longer (a truncated echo), also
/// once JSON `\u` escapes are undone. Any such piece holds one of the 12-byte pieces that start
/// every 6 bytes, so those are searched for (a few SIMD scans of the answer).
fn quotes(text: &[u8], secret: &str) -> bool {
    let secret = secret.as_bytes();
    if secret.is_empty() {
        return false;
    }
    let found = |haystack: &[u8]| {
        if secret.len() <= 12 {
            return memchr::memmem::find(haystack, secret).is_some();
        }
        (0..=secret.len() - 12)
            .step_by(6)
            .chain(std::iter::once(secret.len() - 12))
            .any(|at| memchr::memmem::find(haystack, &secret[at..at + 12]).is_some())
    };
    if found(text) {
        return true;
    }
    // `\u0061` spells `a`: compare the JSON as serde_json writes it back, unescaped.
    if memchr::memmem::find(text, b"\\u").is_some()
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(text)
        && let Ok(plain) = serde_json::to_vec(&value)
    {
        return found(&plain);
    }
    false
}

/// Takes a wait of `secs` out of `budget`, if it fits.
fn spend(budget: &mut Duration, secs: u64) -> bool {
    match budget.checked_sub(Duration::from_secs(secs)) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

/// One upstream API: its name (for messages), origin and the shared client.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: &'static str,
    base_url: String,
    client: reqwest::Client,
    timeout: Duration,
    max_retry_wait: Duration,
    default_headers: HeaderMap,
    /// Calls per minute allowed per credential, if the vendor publishes a quota.
    quota_per_min: Option<u32>,
    quota: Arc<Buckets<[u8; 32]>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Largest answer read; a bigger one is an error, not an allocation.
    max_body_bytes: usize,
    /// The origin's host and port, as traces name them (`server.address`, `server.port`).
    address: Option<(String, u16)>,
    /// The process's read cache; `None` when it is off (`STUDIO_MCP_UPSTREAM_CACHE=off`).
    cache: Option<Arc<ReadCache>>,
}

/// Error answers are only read for their message: this much is plenty.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// TLS for upstream calls uses rustls with the ring provider; install it once per process.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the pooled client every upstream shares.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("studio-mcp/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// A path under an upstream's origin, with the template it was made from: the template (ids
/// as `{placeholders}`) is what traces show, never the path itself.
pub struct Path {
    pub template: &'static str,
    pub path: String,
}

/// A [`Path`] from a format string whose arguments are all inline (`"/v2/sites/{site}"`): the
/// string is the template, the formatted string the path.
#[macro_export]
macro_rules! upstream_path {
    ($template:literal) => {
        $crate::upstream::Path {
            template: $template,
            path: format!($template),
        }
    };
}

/// Whose cache entries a client's reads may use.
#[derive(Clone, Copy, Debug)]
pub enum Reads<'a> {
    /// The tenant's: a fresh enough answer kept for it (and this credential) is served, and an
    /// identical read in flight is waited for.
    Cached(&'a TenantId),
    /// Straight from the upstream, the answer then kept for the tenant's cached reads (a check
    /// that must see the upstream as it is now, such as rebuilding the scope index).
    Refresh(&'a TenantId),
    /// Straight from the upstream, nothing kept (a credential checked before it is stored).
    Direct,
}

/// A request to send: method, path under the origin, optional query and JSON body.
pub struct Call<'a> {
    pub method: Method,
    pub path: String,
    /// The path's template (`url.template` in traces).
    pub template: &'static str,
    pub query: &'a [(&'a str, String)],
    pub json: Option<&'a serde_json::Value>,
    /// A form-encoded body (Stripe).
    pub form: Option<&'a [(String, String)]>,
    /// Extra request headers, such as `Idempotency-Key`.
    pub headers: &'a [(&'static str, String)],
    /// A GET whose answer may come from the cache, for how long, for whom ([`Call::cached`]).
    pub cache: Option<(Reads<'a>, Freshness)>,
    /// A write: the path prefixes whose cached answers it makes stale ([`Call::invalidating`]).
    pub invalidates: Vec<String>,
}

impl<'a> Call<'a> {
    pub fn get(path: Path) -> Self {
        Self {
            method: Method::GET,
            path: path.path,
            template: path.template,
            query: &[],
            json: None,
            form: None,
            headers: &[],
            cache: None,
            invalidates: Vec::new(),
        }
    }

    /// This GET may be answered from `reads`' cache while no older than `freshness` allows.
    pub fn cached(self, reads: Reads<'a>, freshness: Freshness) -> Self {
        Self {
            cache: Some((reads, freshness)),
            ..self
        }
    }

    /// This write makes every cached answer under `prefix` (path segments) stale, for every
    /// tenant, here and on the other replicas. A write that changes what several paths show
    /// (a page: its own reads and its site's listing) names each.
    pub fn invalidating(mut self, prefix: Path) -> Self {
        self.invalidates.push(prefix.path);
        self
    }

    pub fn with_method(method: Method, path: Path) -> Self {
        Self {
            method,
            ..Self::get(path)
        }
    }
}

impl Upstream {
    /// The pooled HTTP client (for the few calls that are not to this upstream's API, such as
    /// the approval webhook).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn new(
        name: &'static str,
        base_url: &str,
        client: reqwest::Client,
        timeout: Duration,
        max_retry_wait: Duration,
    ) -> Self {
        let address = reqwest::Url::parse(base_url)
            .ok()
            .and_then(|url| Some((url.host_str()?.to_owned(), url.port_or_known_default()?)));
        Self {
            name,
            address,
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
            timeout,
            max_retry_wait,
            default_headers: HeaderMap::new(),
            quota_per_min: None,
            quota: Arc::default(),
            metrics: None,
            max_body_bytes: 4 * 1024 * 1024,
            cache: None,
        }
    }

    /// Reads marked [`Call::cached`] go through `cache`; writes invalidate it.
    pub fn with_cache(mut self, cache: Option<Arc<ReadCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// Answers larger than `bytes` fail with [`UpstreamError::TooLarge`].
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    /// Counts every answer (by status class) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Keeps each credential within `per_min` calls a minute (a minute's worth may burst).
    pub fn with_quota(mut self, per_min: u32) -> Self {
        self.quota_per_min = Some(per_min.max(1));
        self
    }

    /// Waits for quota if that fits in what is left of the call's waiting `budget`; otherwise
    /// says when to come back.
    async fn within_quota(
        &self,
        credential: &SecretString,
        budget: &mut Duration,
        span: &Span,
    ) -> Result<(), UpstreamError> {
        let Some(per_min) = self.quota_per_min else {
            return Ok(());
        };
        let key: [u8; 32] = Sha256::digest(credential.expose_secret().as_bytes()).into();
        loop {
            match self.quota.take(&key, per_min, 60.0) {
                Ok(()) => return Ok(()),
                Err(secs) if spend(budget, secs) => {
                    self.count_wait(span, "quota", secs);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                }
                Err(secs) => {
                    return Err(UpstreamError::RateLimited {
                        upstream: self.name,
                        retry_after_secs: secs,
                    });
                }
            }
        }
    }

    /// A wait before a request: counted, and an event on the call's span.
    fn count_wait(&self, span: &Span, reason: &'static str, secs: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.record_upstream_wait(self.name, reason);
        }
        if !span.is_disabled() {
            span.add_event(
                "wait",
                vec![
                    KeyValue::new("studio_mcp.wait.reason", reason),
                    KeyValue::new("studio_mcp.wait.secs", secs as i64),
                ],
            );
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.default_headers
            .insert(name, HeaderValue::from_static(value));
        self
    }

    /// Sends `call` with the tenant's credential and decodes the JSON answer. Waits for quota
    /// and a `429`'s `Retry-After` (once) together take at most the configured wait; past it,
    /// [`UpstreamError::RateLimited`] says when to come back. Whatever the upstream answers,
    /// the credential is never quoted back: an answer that contains it is withheld.
    pub async fn send<T: DeserializeOwned>(
        &self,
        credential: &SecretString,
        call: Call<'_>,
    ) -> Result<T, UpstreamError> {
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "upstream",
            otel.name = %crate::trace::Named(call.method.as_str(), call.template),
            otel.kind = "client",
        );
        if !span.is_disabled() {
            self.annotate(&span, &call);
        }
        let result = self
            .dispatch(credential, call, &span)
            .instrument(span.clone())
            .await
            .map_err(|e| e.without(credential.expose_secret()));
        if let Err(e) = &result
            && !span.is_disabled()
        {
            span.set_attribute("error.type", e.error_type());
            span.set_status(opentelemetry::trace::Status::error(e.error_type()));
        }
        result
    }

    /// An upstream call's attributes (the HTTP client conventions): method, the origin's host
    /// and port, the path's template — never the path, a query or a body.
    fn annotate(&self, span: &Span, call: &Call<'_>) {
        span.set_attribute("http.request.method", call.method.as_str().to_owned());
        span.set_attribute("url.template", call.template);
        span.set_attribute("studio_mcp.upstream", self.name);
        if let Some((host, port)) = &self.address {
            span.set_attribute("server.address", host.clone());
            span.set_attribute("server.port", i64::from(*port));
        }
    }

    /// Through the cache when the call may be, straight to the upstream otherwise; a write
    /// then invalidates what it made stale, whatever its outcome (a timed-out write may still
    /// have happened).
    async fn dispatch<T: DeserializeOwned>(
        &self,
        credential: &SecretString,
        call: Call<'_>,
        span: &Span,
    ) -> Result<T, UpstreamError> {
        let Some(cache) = &self.cache else {
            return self.decode(&self.fetch(credential, &call, span).await?);
        };
        let (reads, freshness) = match call.cache {
            Some(cached) if call.method == Method::GET => cached,
            _ => {
                let answer = self.fetch(credential, &call, span).await;
                for prefix in &call.invalidates {
                    cache.invalidate(self.name, prefix).await;
                }
                return self.decode(&answer?);
            }
        };
        let tenant = match reads {
            Reads::Direct => return self.decode(&self.fetch(credential, &call, span).await?),
            Reads::Cached(tenant) | Reads::Refresh(tenant) => tenant,
        };
        let mut target = call.path.clone();
        if !call.query.is_empty() {
            target.push('?');
            target.push_str(&serde_urlencoded::to_string(call.query).unwrap_or_default());
        }
        let key = cache::Key {
            upstream: self.name,
            tenant: tenant.clone(),
            credential: Sha256::digest(credential.expose_secret().as_bytes()).into(),
            target,
        };
        let begun = match reads {
            Reads::Refresh(_) => Begun::Lead(cache.refresh(key)),
            _ => cache.begin(key).await,
        };
        let (entry, source) = match begun {
            Begun::Found(entry, source) => (entry, source),
            Begun::Failed(e) => {
                self.note_cache(span, cache::Source::Coalesced);
                return Err(e);
            }
            Begun::Lead(leader) => {
                self.note_cache(span, cache::Source::Fetched);
                let answer = self.fetch(credential, &call, span).await;
                // Only an answer that decodes is kept: every later reader decodes it again.
                return match answer.and_then(|body| self.decode::<T>(&body).map(|t| (t, body))) {
                    Ok((value, body)) => {
                        cache.finish(leader, Ok(body), freshness);
                        Ok(value)
                    }
                    Err(e) => {
                        cache.finish(leader, Err(e.clone()), freshness);
                        Err(e)
                    }
                };
            }
        };
        self.note_cache(span, source);
        if source == cache::Source::Hit {
            cache::used(cache.age(&entry));
        }
        self.decode(&entry.body)
    }

    /// Says on the call's span where its answer came from (`studio_mcp.upstream.cache`: `hit`,
    /// `coalesced` or `miss`).
    fn note_cache(&self, span: &Span, source: cache::Source) {
        crate::trace::own(span, "upstream.cache", source.label());
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, UpstreamError> {
        // An empty answer (`204 No Content`, as Webflow's deletions give) reads as `null`: a
        // call expecting nothing decodes it as `()`, and any other type still refuses it.
        let body = if body.is_empty() { b"null" } else { body };
        serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
            upstream: self.name,
            why: e.to_string(),
        })
    }

    /// Sends `call` (waiting for quota, and once for a 429's `Retry-After`, within the budget)
    /// and reads a successful answer's body, withheld if it quotes the credential.
    async fn fetch(
        &self,
        credential: &SecretString,
        call: &Call<'_>,
        span: &Span,
    ) -> Result<Vec<u8>, UpstreamError> {
        // Every wait of this call (for quota, for a 429's Retry-After) comes out of one budget.
        let mut budget = self.max_retry_wait;
        let mut waited = false;
        loop {
            self.within_quota(credential, &mut budget, span).await?;
            let mut response = self.send_once(credential, call).await?;
            let status = response.status();
            if !span.is_disabled() {
                span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
            }
            if status.is_success() {
                let bytes = self.read_body(&mut response, self.max_body_bytes).await?;
                if quotes(&bytes, credential.expose_secret()) {
                    return Err(UpstreamError::BadResponse {
                        upstream: self.name,
                        why: "the answer quoted the credential and was withheld".into(),
                    });
                }
                return Ok(bytes);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after_secs = retry_after(response.headers());
                if !waited && spend(&mut budget, retry_after_secs) {
                    waited = true;
                    self.count_wait(span, "retry_after", retry_after_secs);
                    tokio::time::sleep(Duration::from_secs(retry_after_secs)).await;
                    continue;
                }
                return Err(UpstreamError::RateLimited {
                    upstream: self.name,
                    retry_after_secs,
                });
            }
            let limit = self.max_body_bytes.min(MAX_ERROR_BODY_BYTES);
            // An error answer too long to read still has its status.
            let body: Vec<u8> = self
                .read_body(&mut response, limit)
                .await
                .unwrap_or_default();
            return Err(self.status_error(status, &body));
        }
    }

    /// Reads an answer of at most `limit` bytes, chunk by chunk: a larger one fails as soon as
    /// it is known to be larger, before it is held in memory.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, UpstreamError> {
        let too_large = || UpstreamError::TooLarge {
            upstream: self.name,
            limit_kib: limit / 1024,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn send_once(
        &self,
        credential: &SecretString,
        call: &Call<'_>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret()))
            .map_err(|_| UpstreamError::MissingCredential(self.name))?;
        // Keeps the header out of any debug output of the request.
        auth.set_sensitive(true);
        let mut request = self
            .client
            .request(
                call.method.clone(),
                format!("{}{}", self.base_url, call.path),
            )
            .headers(self.default_headers.clone())
            .header(AUTHORIZATION, auth)
            .timeout(self.timeout);
        if !self.default_headers.contains_key(reqwest::header::ACCEPT) {
            request = request.header(reqwest::header::ACCEPT, "application/json");
        }
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = call.json {
            request = request.json(body);
        }
        if let Some(form) = call.form {
            request = request.form(form);
        }
        for (name, value) in call.headers {
            request = request.header(*name, value);
        }
        let sent = request.send().await;
        if let Some(metrics) = &self.metrics {
            metrics.record_upstream(
                self.name,
                sent.as_ref().map(|r| r.status().as_u16()).unwrap_or(0),
            );
        }
        sent.map_err(|e| self.transport_error(e))
    }

    fn transport_error(&self, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout {
                upstream: self.name,
                secs: self.timeout.as_secs().max(1),
            }
        } else if e.is_decode() || e.is_body() {
            UpstreamError::BadResponse {
                upstream: self.name,
                why: "truncated body".into(),
            }
        } else {
            UpstreamError::Unreachable {
                upstream: self.name,
            }
        }
    }

    fn status_error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        let upstream = self.name;
        let detail = error_detail(body);
        match status.as_u16() {
            401 => UpstreamError::Unauthorized { upstream, detail },
            403 => UpstreamError::Forbidden { upstream, detail },
            404 => UpstreamError::NotFound { upstream, detail },
            409 => UpstreamError::Conflict { upstream, detail },
            s @ 500..=599 => UpstreamError::Unavailable {
                upstream,
                status: s,
            },
            s => UpstreamError::Rejected {
                upstream,
                status: s,
                detail,
            },
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for these APIs; treat it as 60 s).
fn retry_after(headers: &HeaderMap) -> u64 {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>().unwrap_or(60))
        .unwrap_or(60)
        .min(3600)
}

/// Most `details` entries of an error body quoted, and most characters of each.
const MAX_DETAILS: usize = 20;
const MAX_DETAIL_CHARS: usize = 200;

/// Pulls a short human message out of the error bodies the upstreams use:
/// `{message}` (Webflow, GitHub), `{error}` (Plausible), `{error:{message}}` (Stripe),
/// `{errors:[{message}]}` (Cloudflare); followed by Webflow's `details` (`[{param,
/// description}]`), which say what was wrong where (which item of a batch, which field).
fn error_detail(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let text = value
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| value.pointer("/error/message").and_then(|m| m.as_str()))
        .or_else(|| value.get("error").and_then(|m| m.as_str()))
        .or_else(|| value.pointer("/errors/0/message").and_then(|m| m.as_str()));
    let short = |t: &str| t.chars().take(MAX_DETAIL_CHARS).collect::<String>();
    let mut detail = match text {
        Some(t) if !t.is_empty() => format!(": {}", short(t)),
        _ => String::new(),
    };
    let details: Vec<String> = value
        .get("details")
        .and_then(|d| d.as_array())
        .map(|d| d.as_slice())
        .unwrap_or_default()
        .iter()
        .take(MAX_DETAILS)
        .filter_map(|d| {
            let param = d.get("param").or_else(|| d.get("field"))?.as_str()?;
            let why = d
                .get("description")
                .or_else(|| d.get("message"))?
                .as_str()?;
            Some(format!("{}: {}", short(param), short(why)))
        })
        .collect();
    if !details.is_empty() {
        detail.push_str(&format!(" ({})", details.join("; ")));
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::{error_detail, quotes};

    #[test]
    fn webflow_details_follow_the_message() {
        let body = br#"{"code":"validation_error","message":"Validation Error","details":[
            {"param":"items[2].fieldData","description":"Field 'slug': Unique value"},
            {"param":"items[4].fieldData","description":"Field 'name': Field is required"},
            "not an object"]}"#;
        assert_eq!(
            error_detail(body),
            ": Validation Error (items[2].fieldData: Field 'slug': Unique value; \
             items[4].fieldData: Field 'name': Field is required)"
        );
        assert_eq!(
            error_detail(br#"{"message":"Nope","details":[]}"#),
            ": Nope"
        );
        assert_eq!(error_detail(b"<html>"), "");
    }

    #[test]
    fn an_echoed_credential_is_found_whole_in_pieces_and_escaped() {
        let secret = "wf_live_0123456789abcdefghijklmnop";
        assert!(quotes(format!("token {secret} is bad").as_bytes(), secret));
        assert!(quotes(b"token wf_live_0123456789abc... is bad", secret));
        assert!(quotes(b"...ghijklmnop", "ghijklmnop"));
        assert!(quotes(
            br#"{"m":"\u0077f_live_0123456789abcdefghij"}"#,
            secret
        ));
        assert!(!quotes(b"token wf_live_01 is bad", secret));
        assert!(!quotes(b"anything", ""));
    }
}
