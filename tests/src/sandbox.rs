//! Sandbox upstreams: one local HTTP server that imitates the vendor APIs the tools call, so no test
//! (and no demo) can ever reach real client data.
//!
//! Every upstream router ([`webflow`], [`plausible`], [`github`], [`cloudflare`], [`stripe`]) is
//! merged into one axum app behind one shared layer that resolves the bearer token to its owner,
//! records the request and applies injected failures. Each upstream keeps its own data, built
//! from the same [`Fixture`], and scopes every lookup to the token's owner the way the real API
//! scopes its credential. A token only counts on its own vendor's paths: a Webflow token sent to
//! GitHub is unknown there.

pub mod cloudflare;
pub mod github;
pub mod plausible;
pub mod stripe;
pub mod webflow;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// Oldest entries are dropped past this many, so a long-running demo sandbox stays small.
const REQUEST_LOG_CAP: usize = 100_000;

/// The records every sandbox upstream serves, per owner (tenant). Built deterministically, so the
/// same owners always yield the same ids and tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixture {
    pub owners: Vec<OwnerFixture>,
}

/// One owner's slice of the fixture: the token that reaches it and the ids of everything it owns.
///
/// Notable records, by index (see the constants in [`webflow`]): `page_ids[2]` has no SEO
/// description; in the first collection `item_ids[3]` is a draft last updated years ago and
/// `item_ids[4]` has no `seo-description`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerFixture {
    pub owner: String,
    /// Webflow site token (`Authorization: Bearer …`) that sees only this owner's site.
    pub token: String,
    /// Webflow App access token (an OAuth code grant on this owner's site): the only token the
    /// custom code endpoints take, and good for nothing else here.
    #[serde(default)]
    pub webflow_app_token: String,
    pub site_id: String,
    pub page_ids: Vec<String>,
    pub collection_ids: Vec<String>,
    /// `(collection id, item id)` pairs, in collection then item order.
    pub item_ids: Vec<(String, String)>,
    pub custom_domain_ids: Vec<String>,
    /// The site's assets, in [`webflow::ASSETS`] order.
    pub asset_ids: Vec<String>,
    /// The site's forms, in [`webflow::FORMS`] order.
    pub form_ids: Vec<String>,
    /// The site's comment threads, in [`webflow::COMMENT_THREADS`] order.
    pub comment_thread_ids: Vec<String>,
    /// The site's locale ids (what page reads take): the primary, then
    /// [`webflow::SECONDARY_LOCALES`] in order.
    #[serde(default)]
    pub locale_ids: Vec<String>,
    /// The same locales' CMS locale ids (what item reads take), in the same order.
    #[serde(default)]
    pub cms_locale_ids: Vec<String>,
    /// The Plausible site (a domain, `<owner>.example`) this owner's Stats API key can read.
    pub plausible_site: String,
    /// Plausible Stats API key (`Authorization: Bearer …`) that reads only [`Self::plausible_site`].
    pub plausible_token: String,
    /// GitHub token (`Bearer …` or `token …`) that sees only [`Self::github_repos`].
    pub github_token: String,
    /// `owner/name` of each repository the GitHub token can read (see [`github::REPO_NAMES`]).
    pub github_repos: Vec<String>,
    /// Cloudflare API token (`Authorization: Bearer …`) that reaches only [`Self::zone_id`].
    pub cloudflare_token: String,
    /// The owner's Cloudflare zone: 32 hex digits, like Cloudflare's ids.
    pub zone_id: String,
    /// `<owner>.example`, the zone's apex name.
    pub zone_name: String,
    /// The seeded records of the zone, in [`cloudflare::SEED_RECORDS`] order.
    pub dns_record_ids: Vec<String>,
    /// Stripe secret key (`sk_test_…`, as `Bearer` or as the HTTP Basic user name) of an account
    /// that holds only [`Self::stripe_customer`].
    pub stripe_key: String,
    /// The owner's one Stripe customer (`cus_…`).
    pub stripe_customer: String,
    /// The customer's invoices, in [`stripe::INVOICE_STATUSES`] order (paid, open, draft).
    pub invoice_ids: Vec<String>,
}

impl Fixture {
    /// Per owner: one site with 2 custom domains, 3 pages, 2 collections ("Blog Posts" with 5
    /// items, "Authors" with 2), 4 assets, 2 forms with submissions, 3 comment threads; one DNS zone with 5 records; one Stripe customer with 3 invoices.
    /// A repeated owner is kept once, since it would repeat its ids.
    pub fn new(owners: &[&str]) -> Fixture {
        let mut seen = Vec::new();
        for owner in owners {
            if !seen.contains(owner) {
                seen.push(*owner);
            }
        }
        Fixture {
            owners: seen.into_iter().map(OwnerFixture::new).collect(),
        }
    }

    /// The slice of the fixture that belongs to `owner`.
    pub fn owner(&self, owner: &str) -> Option<&OwnerFixture> {
        self.owners.iter().find(|o| o.owner == owner)
    }
}

impl OwnerFixture {
    fn new(owner: &str) -> OwnerFixture {
        let collection_ids: Vec<String> = (0..webflow::COLLECTION_NAMES.len())
            .map(|i| derive_id("collection", owner, i))
            .collect();
        let mut item_ids = Vec::new();
        for (c, collection_id) in collection_ids.iter().enumerate() {
            let count = webflow::ITEMS_PER_COLLECTION.get(c).copied().unwrap_or(0);
            for i in 0..count {
                item_ids.push((
                    collection_id.clone(),
                    derive_id(&format!("item:{c}"), owner, i),
                ));
            }
        }
        OwnerFixture {
            owner: owner.to_owned(),
            token: sandbox_token("wf", owner),
            webflow_app_token: sandbox_token("wfapp", owner),
            site_id: derive_id("site", owner, 0),
            page_ids: (0..webflow::PAGES_PER_SITE)
                .map(|i| derive_id("page", owner, i))
                .collect(),
            collection_ids,
            item_ids,
            custom_domain_ids: (0..webflow::CUSTOM_DOMAINS_PER_SITE)
                .map(|i| derive_id("custom-domain", owner, i))
                .collect(),
            asset_ids: (0..webflow::ASSETS.len())
                .map(|i| derive_id("asset", owner, i))
                .collect(),
            form_ids: (0..webflow::FORMS.len())
                .map(|i| derive_id("form", owner, i))
                .collect(),
            comment_thread_ids: (0..webflow::COMMENT_THREADS.len())
                .map(|i| derive_id("comment-thread", owner, i))
                .collect(),
            locale_ids: (0..=webflow::SECONDARY_LOCALES.len())
                .map(|i| derive_id("locale", owner, i))
                .collect(),
            cms_locale_ids: (0..=webflow::SECONDARY_LOCALES.len())
                .map(|i| derive_id("cms-locale", owner, i))
                .collect(),
            plausible_site: format!("{owner}.example"),
            plausible_token: sandbox_token("pl", owner),
            github_token: sandbox_token("gh", owner),
            github_repos: github::REPO_NAMES
                .iter()
                .map(|name| format!("{owner}-web/{name}"))
                .collect(),
            cloudflare_token: sandbox_token("cf", owner),
            zone_id: derive_hex("zone", owner, 0, 16),
            zone_name: format!("{owner}.example"),
            dns_record_ids: (0..cloudflare::SEED_RECORDS.len())
                .map(|i| derive_hex("dns-record", owner, i, 16))
                .collect(),
            stripe_key: format!(
                "sk_test_sandbox_{owner}_{}",
                derive_hex("stripe-key", owner, 0, 8)
            ),
            stripe_customer: stripe::object_id("cus", 14, "customer", owner, 0),
            invoice_ids: (0..stripe::INVOICE_STATUSES.len())
                .map(|i| stripe::object_id("in", 24, "invoice", owner, i))
                .collect(),
        }
    }
}

/// A 24-hex-digit id (Webflow's object id shape). Hashing the owner in means two owners never
/// share an id, so a leaked id is as detectable as a leaked name.
pub(crate) fn derive_id(kind: &str, owner: &str, index: usize) -> String {
    derive_hex(kind, owner, index, 12)
}

/// `2 * bytes` lowercase hex digits (at most 64), derived like [`derive_id`]; Cloudflare's ids
/// are 16 bytes.
pub(crate) fn derive_hex(kind: &str, owner: &str, index: usize, bytes: usize) -> String {
    let digest = Sha256::digest(format!("{kind}\0{owner}\0{index}"));
    hex::encode(&digest[..bytes.min(digest.len())])
}

/// `<vendor>-sandbox-<owner>-<16 hex>`: deterministic and plainly not a real credential.
fn sandbox_token(vendor: &str, owner: &str) -> String {
    let digest = Sha256::digest(format!("{vendor}-token\0{owner}"));
    format!("{vendor}-sandbox-{owner}-{}", hex::encode(&digest[..8]))
}

/// Request headers kept in [`RecordedRequest::headers`], in this order. Never `authorization`.
pub const RECORDED_HEADERS: [&str; 4] = [
    "x-github-api-version",
    "content-type",
    "idempotency-key",
    "accept",
];

/// One request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path with the query string, as sent.
    pub path: String,
    /// Owner of the vendor token used (any vendor's, even on another vendor's path); `None` when
    /// the token was missing or unknown.
    pub token_owner: Option<String>,
    pub status: u16,
    /// `(lowercase name, value)` of each [`RECORDED_HEADERS`] header present, in that order.
    pub headers: Vec<(String, String)>,
}

/// An answer to give instead of the real one, queued with [`Sandbox::fail_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    /// Sent as `Retry-After: <secs>`.
    pub retry_after_secs: Option<u64>,
    /// Raw body, sent as `application/json` whether or not it parses. `None` means the vendor's
    /// own error JSON for `status` — except for a 2xx status, where `None` means "answer
    /// normally", so a `delay` alone can simulate a slow upstream.
    pub body: Option<String>,
    /// Waited before answering.
    pub delay: Option<Duration>,
}

impl Failure {
    /// The vendor's error body for `status`, no delay, no `Retry-After`.
    pub fn status(status: u16) -> Failure {
        Failure {
            status,
            retry_after_secs: None,
            body: None,
            delay: None,
        }
    }

    /// `429` with `Retry-After: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> Failure {
        Failure {
            retry_after_secs: Some(retry_after_secs),
            ..Failure::status(429)
        }
    }

    /// `200` whose body is not JSON.
    pub fn invalid_json() -> Failure {
        Failure {
            body: Some("not json".to_owned()),
            ..Failure::status(200)
        }
    }

    /// The normal answer, after `delay`.
    pub fn slow(delay: Duration) -> Failure {
        Failure {
            delay: Some(delay),
            ..Failure::status(200)
        }
    }
}

impl Default for Failure {
    fn default() -> Self {
        Failure::status(500)
    }
}

/// Who is calling, as resolved by the shared layer from the bearer token. Upstream handlers
/// extract it; outside the sandbox app (no layer) it is the anonymous caller.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    pub(crate) owner: Option<String>,
    /// The token is a Webflow App's (OAuth code grant), not a site token.
    pub(crate) webflow_app: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Which upstream a token belongs to, or a path is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Webflow,
    Plausible,
    Github,
    Cloudflare,
    Stripe,
}

impl Vendor {
    /// By the path's prefix, the way each vendor's API is rooted.
    fn of_path(path: &str) -> Option<Vendor> {
        if path.starts_with("/v2/") {
            Some(Vendor::Webflow)
        } else if path.starts_with("/api/") {
            Some(Vendor::Plausible)
        } else if path.starts_with("/repos/") {
            Some(Vendor::Github)
        } else if path.starts_with("/client/v4/") {
            Some(Vendor::Cloudflare)
        } else if path.starts_with("/v1/") {
            Some(Vendor::Stripe)
        } else {
            None
        }
    }
}

/// State the shared layer needs: token owners, the request log, the failure queue and the
/// queue of holds.
struct Shared {
    /// token → (its vendor, owner), across every upstream's tokens.
    tokens: HashMap<String, (Vendor, String)>,
    /// The Webflow App tokens among them.
    app_tokens: std::collections::HashSet<String>,
    log: Mutex<VecDeque<RecordedRequest>>,
    failures: Mutex<VecDeque<(Failure, usize)>>,
    holds: Mutex<VecDeque<HeldSlot>>,
    /// Milliseconds every request waits before it is answered (a distant API).
    latency_ms: std::sync::atomic::AtomicU64,
}

/// The sandbox's side of a [`Hold`]: told when a request takes it, released by the test.
struct HeldSlot {
    arrived: tokio::sync::watch::Sender<bool>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// The next request, whatever its path, held open before it is answered (or failed): what a
/// test needs to have a request surely in flight while others arrive. Released by
/// [`Hold::release`] or by dropping it.
pub struct Hold {
    arrived: tokio::sync::watch::Receiver<bool>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Hold {
    /// Waits until a request has taken this hold (and is now being held).
    pub async fn arrived(&mut self) {
        let _ = self.arrived.wait_for(|arrived| *arrived).await;
    }

    /// Whether a request has taken this hold.
    pub fn has_arrived(&self) -> bool {
        *self.arrived.borrow()
    }

    /// Lets the held request go on to its answer.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Shared {
    fn new(fixture: &Fixture) -> Shared {
        Shared {
            tokens: fixture
                .owners
                .iter()
                .flat_map(|o| {
                    [
                        (o.token.clone(), (Vendor::Webflow, o.owner.clone())),
                        (
                            o.plausible_token.clone(),
                            (Vendor::Plausible, o.owner.clone()),
                        ),
                        (o.github_token.clone(), (Vendor::Github, o.owner.clone())),
                        (
                            o.cloudflare_token.clone(),
                            (Vendor::Cloudflare, o.owner.clone()),
                        ),
                        (o.stripe_key.clone(), (Vendor::Stripe, o.owner.clone())),
                        (
                            o.webflow_app_token.clone(),
                            (Vendor::Webflow, o.owner.clone()),
                        ),
                    ]
                })
                .collect(),
            app_tokens: fixture
                .owners
                .iter()
                .map(|o| o.webflow_app_token.clone())
                .collect(),
            log: Mutex::new(VecDeque::new()),
            failures: Mutex::new(VecDeque::new()),
            holds: Mutex::new(VecDeque::new()),
            latency_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn take_failure(&self) -> Option<Failure> {
        let mut queue = lock(&self.failures);
        let (failure, remaining) = queue.front_mut()?;
        let failure = failure.clone();
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(failure)
    }

    fn record(&self, request: RecordedRequest) {
        let mut log = lock(&self.log);
        if log.len() >= REQUEST_LOG_CAP {
            log.pop_front();
        }
        log.push_back(request);
    }
}

/// A poisoned lock only means a handler panicked mid-update; the sandbox data is still usable
/// for the test that is about to fail anyway.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sandbox server, serving every upstream on one local port until dropped.
pub struct Sandbox {
    addr: SocketAddr,
    fixture: Fixture,
    shared: Arc<Shared>,
    webflow: Arc<webflow::WebflowState>,
    cloudflare: Arc<cloudflare::CloudflareState>,
    stripe: Arc<stripe::StripeState>,
    server: JoinHandle<()>,
}

impl Sandbox {
    /// Serves `fixture` on `127.0.0.1:<free port>`.
    pub async fn start(fixture: Fixture) -> anyhow::Result<Sandbox> {
        Sandbox::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), fixture).await
    }

    /// Serves `fixture` on `addr` (port 0 picks a free port; see [`Sandbox::local_addr`]).
    pub async fn bind(addr: SocketAddr, fixture: Fixture) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the sandbox to {addr}"))?;
        let addr = listener
            .local_addr()
            .context("reading the sandbox's bound address")?;
        let shared = Arc::new(Shared::new(&fixture));
        let webflow = Arc::new(webflow::WebflowState::new(&fixture));
        let cloudflare = Arc::new(cloudflare::CloudflareState::new(&fixture));
        let stripe = Arc::new(stripe::StripeState::new(&fixture));
        let upstreams = Upstreams {
            webflow: webflow.clone(),
            plausible: Arc::new(plausible::PlausibleState::new(&fixture)),
            github: Arc::new(github::GithubState::new(&fixture)),
            cloudflare: cloudflare.clone(),
            stripe: stripe.clone(),
        };
        let app = app(shared.clone(), upstreams);
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            addr,
            fixture,
            shared,
            webflow,
            cloudflare,
            stripe,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, the origin to give every upstream client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// Every request served so far (failed and injected ones included), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many queued failures have not been served yet (a request takes its failure when it
    /// arrives, before any `delay`).
    pub fn pending_failures(&self) -> usize {
        lock(&self.shared.failures)
            .iter()
            .map(|(_, times)| *times)
            .sum()
    }

    /// Every request from now on waits `latency` before it is answered, as a real API far
    /// away does (the session benchmark uses 150 ms).
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .latency_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next request, on any path, waits before it is answered until the returned hold is
    /// released (or dropped); queued failures apply once it goes on. Holds queue up: a second
    /// one takes the request after the first.
    pub fn hold_next(&self) -> Hold {
        let (arrived_tx, arrived_rx) = tokio::sync::watch::channel(false);
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        lock(&self.shared.holds).push_back(HeldSlot {
            arrived: arrived_tx,
            release: release_rx,
        });
        Hold {
            arrived: arrived_rx,
            release: Some(release_tx),
        }
    }

    /// The next `times` requests, on any path, get `failure` instead of their real answer. Calls
    /// queue up: a second failure starts once the first is used up.
    pub fn fail_next(&self, failure: Failure, times: usize) {
        if times > 0 {
            lock(&self.shared.failures).push_back((failure, times));
        }
    }

    /// The Webflow CMS item as it is stored now (after any create or update), as Webflow would
    /// serve it; `None` if `item_id` is not in `collection_id`.
    pub fn webflow_item(&self, collection_id: &str, item_id: &str) -> Option<serde_json::Value> {
        self.webflow.item_json(collection_id, item_id)
    }

    /// Whether the Webflow CMS item is on the live site now; `None` if `item_id` is not (or no
    /// longer) in `collection_id`.
    pub fn webflow_item_live(&self, collection_id: &str, item_id: &str) -> Option<bool> {
        self.webflow.item_live(collection_id, item_id)
    }

    /// The Webflow page as stored now (after any settings update), as `get-page-metadata`
    /// would serve it; `None` if there is no such page.
    pub fn webflow_page(&self, page_id: &str) -> Option<serde_json::Value> {
        self.webflow.page_json(page_id)
    }

    /// The page's settings in one locale (its site locale id; the primary's when `None`), as
    /// `get-page-metadata` with `localeId` would serve them; `None` if there is no such page
    /// or locale.
    pub fn webflow_page_in(
        &self,
        page_id: &str,
        locale_id: Option<&str>,
    ) -> Option<serde_json::Value> {
        self.webflow.page_json_in(page_id, locale_id)
    }

    /// The Webflow asset as stored now (after any update), as `get-asset` would serve it;
    /// `None` if there is no such asset.
    pub fn webflow_asset(&self, asset_id: &str) -> Option<serde_json::Value> {
        self.webflow.asset_json(asset_id)
    }

    /// From now on `owner`'s Webflow token lacks `scope` (one of the scope constants in
    /// [`webflow`]): the operations that need it answer Webflow's 403 `missing_scopes`.
    pub fn withhold_webflow_scope(&self, owner: &str, scope: &'static str) {
        self.webflow.withhold_scope(owner, scope);
    }

    /// From now on Webflow's `introspect` refuses `owner`'s token (401), as Webflow's
    /// reference says it may for a token not from a Data Client app; the scopes are then
    /// learned only from what the token's reads are refused.
    pub fn refuse_webflow_introspection(&self, owner: &str) {
        self.webflow.refuse_introspection(owner);
    }

    /// Adds an optional plain-text field `slug` to the Webflow collection's schema, as a person
    /// in the Designer would; `false` if there is no such collection.
    pub fn add_webflow_field(&self, collection_id: &str, slug: &str) -> bool {
        self.webflow.add_field(collection_id, slug)
    }

    /// The custom code applied to a Webflow site or page now, as `get-custom-code` serves it;
    /// `None` if there is no such site or page.
    pub fn webflow_custom_code(&self, site_or_page_id: &str) -> Option<serde_json::Value> {
        self.webflow.custom_code_json(site_or_page_id)
    }

    /// How many times `site_id` was really published (accepted `site-publish` calls; refused
    /// and rate-limited ones do not count).
    pub fn webflow_publishes(&self, site_id: &str) -> usize {
        self.webflow.publishes(site_id)
    }

    /// The Cloudflare DNS record as stored now, as Cloudflare would serve it; `None` if
    /// `record_id` is not (or no longer) in `zone_id`.
    pub fn dns_record(&self, zone_id: &str, record_id: &str) -> Option<serde_json::Value> {
        self.cloudflare.record_json(zone_id, record_id)
    }

    /// How many billing-portal sessions Stripe really created for `owner`'s account; an
    /// idempotent replay returns an earlier session and does not count.
    pub fn stripe_sessions(&self, owner: &str) -> usize {
        self.stripe.sessions_created(owner)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Each upstream's state, one per router.
struct Upstreams {
    webflow: Arc<webflow::WebflowState>,
    plausible: Arc<plausible::PlausibleState>,
    github: Arc<github::GithubState>,
    cloudflare: Arc<cloudflare::CloudflareState>,
    stripe: Arc<stripe::StripeState>,
}

/// Every upstream's routes behind the shared layer. The layer goes last so it also wraps the
/// fallback and method-not-allowed answers.
fn app(shared: Arc<Shared>, upstreams: Upstreams) -> Router {
    Router::new()
        .merge(webflow::router(upstreams.webflow))
        .merge(plausible::router(upstreams.plausible))
        .merge(github::router(upstreams.github))
        .merge(cloudflare::router(upstreams.cloudflare))
        .merge(stripe::router(upstreams.stripe))
        .fallback(route_not_found)
        .layer(middleware::from_fn_with_state(shared, intercept))
}

async fn route_not_found(request: Request) -> Response {
    vendor_error(request.uri().path(), StatusCode::NOT_FOUND)
}

/// The error a vendor answers with for `status`, chosen by the path's vendor prefix (`/v2/`
/// Webflow, `/api/` Plausible, `/repos/` GitHub, `/client/v4/` Cloudflare, `/v1/` Stripe);
/// Webflow's shape for any other path.
fn vendor_error(path: &str, status: StatusCode) -> Response {
    match Vendor::of_path(path) {
        Some(Vendor::Plausible) => plausible::error_response(status),
        Some(Vendor::Github) => github::error_response(status),
        Some(Vendor::Cloudflare) => cloudflare::error_response(status),
        Some(Vendor::Stripe) => stripe::error_response(status),
        Some(Vendor::Webflow) | None => webflow::error_response(status),
    }
}

/// Resolves the caller, applies any queued failure and records the exchange.
async fn intercept(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), |pq| pq.to_string());
    let vendor = Vendor::of_path(request.uri().path());
    let token = credential(request.headers(), vendor);
    let webflow_app = token
        .as_ref()
        .is_some_and(|t| shared.app_tokens.contains(t.as_ref()));
    let presented = token.and_then(|t| shared.tokens.get(t.as_ref()).cloned());
    let owner = presented.as_ref().map(|(_, owner)| owner.clone());
    // Handlers see an owner only for their own vendor's token, as each real API knows only its
    // own credentials.
    let caller_owner = presented
        .filter(|(token_vendor, _)| Some(*token_vendor) == vendor)
        .map(|(_, owner)| owner);
    let headers = recorded_headers(request.headers());
    request.extensions_mut().insert(Caller {
        owner: caller_owner,
        webflow_app,
    });

    let latency = shared.latency_ms.load(std::sync::atomic::Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let held = lock(&shared.holds).pop_front();
    if let Some(held) = held {
        held.arrived.send_replace(true);
        // Released or dropped, the request goes on.
        let _ = held.release.await;
    }
    let response = match shared.take_failure() {
        None => next.run(request).await,
        Some(failure) => {
            if let Some(delay) = failure.delay {
                tokio::time::sleep(delay).await;
            }
            let passes_through = failure.body.is_none() && (200..300).contains(&failure.status);
            if passes_through {
                next.run(request).await
            } else {
                failure_response(&failure, request.uri().path())
            }
        }
    };

    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, owner = owner.as_deref(), "sandbox request");
    shared.record(RecordedRequest {
        method,
        path,
        token_owner: owner,
        status,
        headers,
    });
    response
}

/// The [`RECORDED_HEADERS`] present on a request, names lowercase, values as sent.
fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    RECORDED_HEADERS
        .iter()
        .flat_map(|name| {
            headers.get_all(*name).iter().map(move |value| {
                (
                    (*name).to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
        })
        .collect()
}

fn failure_response(failure: &Failure, path: &str) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match &failure.body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body.clone()),
        )
            .into_response(),
        None => vendor_error(path, status),
    };
    if let Some(secs) = failure.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    scheme_token(headers, false)
}

/// The credential a request presents on `vendor`'s path: a `Bearer` token, or also GitHub's
/// older `token <token>`, or Stripe's HTTP Basic with the key as user name.
fn credential(headers: &HeaderMap, vendor: Option<Vendor>) -> Option<Cow<'_, str>> {
    match vendor {
        Some(Vendor::Stripe) => stripe::api_key(headers),
        _ => scheme_token(headers, vendor == Some(Vendor::Github)).map(Cow::Borrowed),
    }
}

/// The token of an `Authorization` header: `Bearer <token>`, or also `token <token>` when
/// `token_scheme` (schemes matched case-insensitively).
fn scheme_token(headers: &HeaderMap, token_scheme: bool) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let known = scheme.eq_ignore_ascii_case("bearer")
        || (token_scheme && scheme.eq_ignore_ascii_case("token"));
    known.then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Now as `2024-01-31T12:34:56.789Z`, the timestamp form the vendors use.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`), so
/// the sandbox needs no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Over real HTTP; the helpers are shared with each upstream's own tests.

    use super::*;
    use serde_json::Value;

    pub(crate) struct Reply {
        pub(crate) status: u16,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: String,
    }

    impl Reply {
        pub(crate) fn json(&self) -> anyhow::Result<Value> {
            serde_json::from_str(&self.body).context("reply body is not JSON")
        }

        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// One request through reqwest, the client the upstream code uses. Plain HTTP needs no TLS,
    /// but reqwest (built with `rustls-no-provider`) refuses to build a client until a crypto
    /// provider is installed, which `common` does for its own upstream clients.
    pub(crate) async fn send(
        sandbox: &Sandbox,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        send_with(sandbox, method, path, authorization.as_deref(), &[], body).await
    }

    /// Like [`send`], with a raw `Authorization` value and extra request headers.
    pub(crate) async fn send_with(
        sandbox: &Sandbox,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        extra_headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        common::upstream::install_crypto_provider();
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let url = format!("{}{path}", sandbox.base_url());
        let mut request = reqwest::Client::builder().build()?.request(method, url);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = response.text().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub(crate) async fn get(
        sandbox: &Sandbox,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Reply> {
        send(sandbox, "GET", path, token, None).await
    }

    pub(crate) async fn two_owners() -> anyhow::Result<(Sandbox, OwnerFixture, OwnerFixture)> {
        let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"])).await?;
        let acme = sandbox.fixture().owner("acme").context("acme")?.clone();
        let globex = sandbox.fixture().owner("globex").context("globex")?.clone();
        Ok((sandbox, acme, globex))
    }

    #[test]
    fn fixture_is_deterministic_and_disjoint() -> anyhow::Result<()> {
        let a = Fixture::new(&["acme", "globex", "acme"]);
        assert_eq!(a, Fixture::new(&["acme", "globex"]));
        assert_eq!(a.owners.len(), 2);
        let acme = a.owner("acme").context("acme")?;
        let globex = a.owner("globex").context("globex")?;
        assert!(acme.token.starts_with("wf-sandbox-acme-"));
        assert_eq!(acme.token.len(), "wf-sandbox-acme-".len() + 16);
        assert_eq!(acme.page_ids.len(), 3);
        assert_eq!(acme.collection_ids.len(), 2);
        assert_eq!(acme.item_ids.len(), 7);
        assert_eq!(acme.custom_domain_ids.len(), 2);
        assert_eq!(acme.plausible_site, "acme.example");
        assert!(acme.plausible_token.starts_with("pl-sandbox-acme-"));
        assert!(acme.github_token.starts_with("gh-sandbox-acme-"));
        assert_eq!(acme.github_repos, ["acme-web/website", "acme-web/infra"]);
        let tokens = [&acme.token, &acme.plausible_token, &acme.github_token];
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == "xx-sandbox-acme-".len() + 16)
        );
        assert_ne!(acme.plausible_token, globex.plausible_token);
        let ids = |o: &OwnerFixture| {
            let mut ids = vec![o.site_id.clone()];
            ids.extend(o.page_ids.iter().cloned());
            ids.extend(o.collection_ids.iter().cloned());
            ids.extend(o.item_ids.iter().map(|(_, i)| i.clone()));
            ids.extend(o.custom_domain_ids.iter().cloned());
            ids
        };
        for id in ids(acme) {
            assert_eq!(id.len(), 24);
            assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
            assert!(!ids(globex).contains(&id), "shared id {id}");
        }

        assert!(acme.cloudflare_token.starts_with("cf-sandbox-acme-"));
        assert_eq!(acme.zone_name, "acme.example");
        assert_eq!(acme.dns_record_ids.len(), cloudflare::SEED_RECORDS.len());
        for id in std::iter::once(&acme.zone_id).chain(&acme.dns_record_ids) {
            assert_eq!(id.len(), 32);
            assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
            assert_ne!(id, &globex.zone_id);
            assert!(!globex.dns_record_ids.contains(id));
        }
        assert!(acme.stripe_key.starts_with("sk_test_sandbox_acme_"));
        assert_eq!(acme.stripe_key.len(), "sk_test_sandbox_acme_".len() + 16);
        assert!(acme.stripe_customer.starts_with("cus_"));
        assert_eq!(acme.stripe_customer.len(), 4 + 14);
        assert_eq!(acme.invoice_ids.len(), stripe::INVOICE_STATUSES.len());
        assert!(
            acme.invoice_ids
                .iter()
                .all(|id| id.starts_with("in_") && id.len() == 27)
        );
        assert_ne!(acme.stripe_customer, globex.stripe_customer);
        assert!(!globex.invoice_ids.contains(&acme.invoice_ids[0]));
        Ok(())
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(now_rfc3339().len(), "2024-01-31T12:34:56.789Z".len());
    }

    #[tokio::test]
    async fn each_token_lists_only_its_own_site() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        for (me, other) in [(&acme, &globex), (&globex, &acme)] {
            let reply = get(&sandbox, "/v2/sites", Some(&me.token)).await?;
            assert_eq!(reply.status, 200);
            let sites = reply.json()?;
            let sites = sites["sites"].as_array().context("sites array")?;
            assert_eq!(sites.len(), 1);
            assert_eq!(sites[0]["id"], me.site_id.as_str());
            assert_eq!(sites[0]["customDomains"].as_array().map(Vec::len), Some(2));
            assert!(reply.body.contains(&format!("owner:{})", me.owner)));
            assert!(!reply.body.contains(&format!("owner:{}", other.owner)));
            assert!(!reply.body.contains(&other.site_id));
        }
        Ok(())
    }

    #[tokio::test]
    async fn own_records_are_served_in_webflow_shapes() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.token.as_str());

        let site = get(&sandbox, &format!("/v2/sites/{}", acme.site_id), token)
            .await?
            .json()?;
        assert_eq!(site["displayName"], "Acme Co site (owner:acme)");
        assert!(site["workspaceId"].is_string() && site["lastPublished"].is_string());

        let pages = get(
            &sandbox,
            &format!("/v2/sites/{}/pages", acme.site_id),
            token,
        )
        .await?
        .json()?;
        assert_eq!(
            pages["pagination"],
            serde_json::json!({"limit": 100, "offset": 0, "total": 3})
        );
        let without_description = &pages["pages"][webflow::PAGE_WITHOUT_SEO_DESCRIPTION];
        assert!(without_description["seo"]["title"].is_string());
        assert!(without_description["seo"].get("description").is_none());
        assert!(pages["pages"][0]["seo"]["description"].is_string());

        let page_id = &acme.page_ids[0];
        let dom = get(
            &sandbox,
            &format!("/v2/pages/{page_id}/dom?limit=2&offset=4"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(dom["pageId"], page_id.as_str());
        assert_eq!(
            dom["pagination"],
            serde_json::json!({"limit": 2, "offset": 4, "total": 5})
        );
        assert_eq!(dom["nodes"].as_array().map(Vec::len), Some(1));
        assert_eq!(dom["nodes"][0]["type"], "text");
        assert!(
            dom["nodes"][0]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("owner:acme"))
        );

        let collections = get(
            &sandbox,
            &format!("/v2/sites/{}/collections", acme.site_id),
            token,
        )
        .await?
        .json()?;
        assert_eq!(
            collections["collections"][0]["displayName"],
            "Blog Posts (owner:acme)"
        );
        assert!(collections["collections"][0].get("fields").is_none());

        let blog = &acme.collection_ids[0];
        let collection = get(&sandbox, &format!("/v2/collections/{blog}"), token)
            .await?
            .json()?;
        let slugs: Vec<&str> = collection["fields"]
            .as_array()
            .context("fields")?
            .iter()
            .filter_map(|f| f["slug"].as_str())
            .collect();
        assert_eq!(
            slugs,
            [
                "name",
                "slug",
                "post-body",
                "seo-description",
                "featured",
                "order"
            ]
        );

        let items = get(&sandbox, &format!("/v2/collections/{blog}/items"), token)
            .await?
            .json()?;
        assert_eq!(items["pagination"]["total"], 5);
        let draft = &items["items"][webflow::STALE_DRAFT_ITEM];
        assert_eq!(draft["isDraft"], true);
        assert!(
            draft["lastUpdated"]
                .as_str()
                .is_some_and(|d| d.starts_with("2019-"))
        );
        let bare = &items["items"][webflow::ITEM_WITHOUT_SEO_DESCRIPTION]["fieldData"];
        assert!(bare.get("seo-description").is_none() && bare["name"].is_string());

        let (collection_id, item_id) = &acme.item_ids[0];
        let item = get(
            &sandbox,
            &format!("/v2/collections/{collection_id}/items/{item_id}"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(item["id"], item_id.as_str());
        assert!(
            item["fieldData"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("owner:acme"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn foreign_ids_are_refused_like_missing_ones() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let token = Some(acme.token.as_str());
        let (g_collection, g_item) = &globex.item_ids[0];
        let (a_collection, _) = &acme.item_ids[0];
        let foreign = [
            format!("/v2/sites/{}", globex.site_id),
            format!("/v2/sites/{}/pages", globex.site_id),
            format!("/v2/sites/{}/collections", globex.site_id),
            format!("/v2/pages/{}/dom", globex.page_ids[0]),
            format!("/v2/collections/{g_collection}"),
            format!("/v2/collections/{g_collection}/items"),
            format!("/v2/collections/{g_collection}/items/{g_item}"),
            // Own collection, foreign item: still out of reach.
            format!("/v2/collections/{a_collection}/items/{g_item}"),
        ];
        let missing = get(&sandbox, "/v2/sites/000000000000000000000000", token).await?;
        for path in &foreign {
            let reply = get(&sandbox, path, token).await?;
            assert_eq!(reply.status, 404, "{path}");
            let body = reply.json()?;
            assert_eq!(body["code"], "resource_not_found", "{path}");
            assert!(!reply.body.contains("globex"), "{path}");
        }
        let foreign_site = get(&sandbox, &foreign[0], token).await?;
        assert_eq!(
            foreign_site.body, missing.body,
            "foreign and missing must look alike"
        );

        let write = send(
            &sandbox,
            "PATCH",
            &format!("/v2/collections/{g_collection}/items/{g_item}"),
            token,
            Some(serde_json::json!({"fieldData": {"name": "pwned"}})),
        )
        .await?;
        assert_eq!(write.status, 404);
        let untouched = sandbox
            .webflow_item(g_collection, g_item)
            .context("globex item")?;
        assert_ne!(untouched["fieldData"]["name"], "pwned");
        Ok(())
    }

    #[tokio::test]
    async fn missing_or_unknown_token_is_401() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        for token in [None, Some("wf-sandbox-acme-0000000000000000")] {
            let reply = get(&sandbox, &format!("/v2/sites/{}", acme.site_id), token).await?;
            assert_eq!(reply.status, 401);
            assert_eq!(reply.json()?["code"], "not_authorized");
        }
        let log = sandbox.requests();
        assert_eq!(log.len(), 2);
        assert!(
            log.iter()
                .all(|r| r.token_owner.is_none() && r.status == 401)
        );
        Ok(())
    }

    #[tokio::test]
    async fn paging_pages_and_rejects_bad_values() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.token.as_str());
        let blog = &acme.collection_ids[0];
        let mut seen = Vec::new();
        for offset in [0, 2, 4] {
            let page = get(
                &sandbox,
                &format!("/v2/collections/{blog}/items?offset={offset}&limit=2"),
                token,
            )
            .await?
            .json()?;
            assert_eq!(
                page["pagination"],
                serde_json::json!({"limit": 2, "offset": offset, "total": 5})
            );
            for item in page["items"].as_array().context("items")? {
                seen.push(item["id"].as_str().context("id")?.to_owned());
            }
        }
        let expected: Vec<String> = acme
            .item_ids
            .iter()
            .filter(|(c, _)| c == blog)
            .map(|(_, i)| i.clone())
            .collect();
        assert_eq!(seen, expected);

        let past_end = get(
            &sandbox,
            &format!("/v2/collections/{blog}/items?offset=50"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(past_end["items"], serde_json::json!([]));
        let empty = get(
            &sandbox,
            &format!("/v2/collections/{blog}/items?offset=&limit="),
            token,
        )
        .await?;
        assert_eq!(empty.status, 200);

        for query in [
            "limit=101",
            "limit=0",
            "limit=-1",
            "limit=ten",
            "offset=-1",
            "offset=1.5",
        ] {
            let reply = get(
                &sandbox,
                &format!("/v2/collections/{blog}/items?{query}"),
                token,
            )
            .await?;
            assert_eq!(reply.status, 400, "{query}");
            let body = reply.json()?;
            assert_eq!(body["code"], "validation_error", "{query}");
            let param = query.split('=').next().context("param")?;
            assert_eq!(body["details"][0]["param"], param, "{query}");
        }
        let reply = get(
            &sandbox,
            &format!("/v2/sites/{}/pages?limit=500", acme.site_id),
            token,
        )
        .await?;
        assert_eq!(reply.status, 400);
        Ok(())
    }

    #[tokio::test]
    async fn injected_failures_answer_then_stop() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.token.as_str());
        sandbox.fail_next(Failure::rate_limited(7), 2);
        sandbox.fail_next(Failure::invalid_json(), 1);
        sandbox.fail_next(Failure::status(500), 1);
        for _ in 0..2 {
            let reply = get(&sandbox, "/v2/sites", token).await?;
            assert_eq!(reply.status, 429);
            assert_eq!(reply.header("retry-after"), Some("7"));
            assert_eq!(reply.json()?["code"], "too_many_requests");
        }
        let reply = get(&sandbox, "/v2/sites", token).await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "not json"));
        let reply = get(&sandbox, "/v2/nowhere", None).await?;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.json()?["code"], "internal_error");
        let reply = get(&sandbox, "/v2/sites", token).await?;
        assert_eq!(reply.status, 200);
        assert!(reply.header("retry-after").is_none());

        sandbox.fail_next(Failure::slow(Duration::from_millis(50)), 1);
        let started = std::time::Instant::now();
        let reply = get(&sandbox, "/v2/sites", token).await?;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()?["sites"][0]["id"], acme.site_id.as_str());

        let statuses: Vec<u16> = sandbox.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 429, 200, 500, 200, 200]);
        Ok(())
    }

    #[tokio::test]
    async fn requests_are_recorded_with_owner_and_status() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let blog = &globex.collection_ids[0];
        // reqwest's default `Accept`; `Authorization` is never kept.
        let accept_any = vec![("accept".to_owned(), "*/*".to_owned())];
        get(&sandbox, "/v2/sites", Some(&acme.token)).await?;
        get(
            &sandbox,
            &format!("/v2/collections/{blog}/items?limit=2"),
            Some(&globex.token),
        )
        .await?;
        get(
            &sandbox,
            &format!("/v2/collections/{blog}/items"),
            Some(&acme.token),
        )
        .await?;
        assert_eq!(
            sandbox.requests(),
            [
                RecordedRequest {
                    method: "GET".into(),
                    path: "/v2/sites".into(),
                    token_owner: Some("acme".into()),
                    status: 200,
                    headers: accept_any.clone(),
                },
                RecordedRequest {
                    method: "GET".into(),
                    path: format!("/v2/collections/{blog}/items?limit=2"),
                    token_owner: Some("globex".into()),
                    status: 200,
                    headers: accept_any.clone(),
                },
                RecordedRequest {
                    method: "GET".into(),
                    path: format!("/v2/collections/{blog}/items"),
                    token_owner: Some("acme".into()),
                    status: 404,
                    headers: accept_any,
                },
            ]
        );
        sandbox.clear_requests();
        assert!(sandbox.requests().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn created_and_updated_items_are_served_back() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = Some(acme.token.as_str());
        let blog = &acme.collection_ids[0];
        let created = send(
            &sandbox,
            "POST",
            &format!("/v2/collections/{blog}/items"),
            token,
            Some(serde_json::json!({
                "isArchived": false,
                "isDraft": true,
                "fieldData": {"name": "New post", "slug": "new-post"},
            })),
        )
        .await?;
        assert_eq!(created.status, 202);
        let created = created.json()?;
        let id = created["id"].as_str().context("id")?;
        assert_eq!(created["isDraft"], true);

        let updated = send(
            &sandbox,
            "PATCH",
            &format!("/v2/collections/{blog}/items/{id}"),
            token,
            Some(serde_json::json!({"fieldData": {"seo-description": "Fresh"}})),
        )
        .await?;
        assert_eq!(updated.status, 200);
        let fetched = get(
            &sandbox,
            &format!("/v2/collections/{blog}/items/{id}"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(fetched["fieldData"]["seo-description"], "Fresh");
        assert_eq!(fetched["fieldData"]["name"], "New post");
        let listed = get(&sandbox, &format!("/v2/collections/{blog}/items"), token)
            .await?
            .json()?;
        assert_eq!(listed["pagination"]["total"], 6);

        let duplicate = send(
            &sandbox,
            "POST",
            &format!("/v2/collections/{blog}/items"),
            token,
            Some(serde_json::json!({"fieldData": {"name": "Again", "slug": "new-post", "colour": "red"}})),
        )
        .await?;
        assert_eq!(duplicate.status, 400);
        let details = duplicate.json()?["details"].clone();
        assert_eq!(details.as_array().map(Vec::len), Some(2), "{details}");
        Ok(())
    }
}
