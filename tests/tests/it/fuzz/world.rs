//! The servers the request-path targets fuzz: a real shared server and a real isolated
//! instance on sandbox upstreams, built by `Application::build` and serving on loopback (so the
//! seeds come from real flows over HTTP: provisioning, a person's passkey, an assistant's
//! registration, consent and token exchange), with each fuzz input sent straight into the same
//! state's routers with `oneshot` — the code a connection reaches, without a socket per input.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use common::config::Config;
use common::runtime::admin::InviteRequest;
use common::runtime::admin::client::AdminClient;
use common::runtime::server::spec::ServerSpec;
use common::runtime::server::startup::Application;
use common::runtime::server::state::AppState;
use serde_json::{Value, json};
use tests::connector::{REDIRECT, STATE, VERIFIER, hidden_fields, pkce_challenge, with};
use tests::harness::{TestTenant, config_for};
use tests::passkey::{self, SoftPasskey};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// An input that takes longer than this to answer is a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Answers are read up to this size.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One running server and its routers.
pub struct Server {
    pub state: Arc<AppState>,
    pub statik: Router,
    pub connector: Router,
    pub admin: AdminClient,
    /// `127.0.0.1:<port>`: the static door's `Host`.
    pub static_host: String,
    /// `http://localhost:<port>`: the connector door's origin.
    pub connector_origin: String,
    /// `localhost:<port>`: the connector door's `Host`.
    pub connector_host: String,
    /// `<origin>/mcp`: every access token's audience.
    pub connector_url: String,
    /// The key static tokens are signed with (HS256), to forge well-signed ones.
    pub signing_key: Vec<u8>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    tmp: tempfile::TempDir,
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    /// `spec`'s server on the sandbox, every limit that would stop a fuzzer raised.
    pub async fn start(
        sandbox: &Sandbox,
        spec: &'static ServerSpec,
        adjust: impl Fn(&mut Config),
    ) -> Server {
        common::upstream::install_crypto_provider();
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config_for(tmp.path(), &sandbox.base_url());
        // A fuzzer is one client sending thousands of requests a second: limits that exist to
        // stop exactly that would stop it before the code under test.
        config.oauth.registrations_per_min = 100_000;
        config.oauth.registrations_global_per_min = u64::from(u32::MAX);
        config.oauth.requests_per_min = u64::from(u32::MAX);
        config.oauth.max_unused_registrations = 1_000_000;
        // Peers 203.0.113.0-7 are proxies, so `X-Forwarded-For` is read for them.
        config.trusted_proxies = common::config::parse_trusted_proxies("203.0.113.0/29").unwrap();
        adjust(&mut config);
        if spec.single_tenant {
            config.store_url = None;
        }
        let app = Application::build(&config, spec).await.unwrap();
        let state = app.state();
        let static_host = app.mcp_addr().to_string();
        let connector_url = app.connector_url().unwrap().to_owned();
        let connector_origin = common::config::connector_origin(&connector_url).to_owned();
        let connector_host = connector_origin.trim_start_matches("http://").to_owned();
        let admin_url = format!("http://{}", app.admin_addr());
        // The fast path's door, whatever the default: the targets compare it with rmcp's.
        let statik = common::runtime::server::routes::static_router_with(
            state.clone(),
            CancellationToken::new(),
            common::runtime::server::routes::McpFront::Fast,
        );
        let connector = common::runtime::server::routes::connector_router(
            state.clone(),
            CancellationToken::new(),
        )
        .unwrap();
        let stop = app.shutdown_token();
        let task = tokio::spawn(app.run());
        let admin_token = std::fs::read_to_string(config.admin_token_path()).unwrap();
        let admin = AdminClient::new(admin_url, admin_token.trim().to_owned()).unwrap();
        let signing_key = hex::decode(
            std::fs::read_to_string(config.signing_key_path())
                .unwrap()
                .trim(),
        )
        .unwrap();
        Server {
            state,
            statik,
            connector,
            admin,
            static_host,
            connector_origin,
            connector_host,
            connector_url,
            signing_key,
            stop,
            task,
            tmp,
        }
    }

    /// Stops the server and releases its store; its data dir, for reading what it wrote.
    pub async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        drop((self.statik, self.connector, self.state));
        self.tmp
    }

    /// The shared server on a sandbox of `acme` and `globex`, `acme` provisioned with
    /// everything, every toolset and a writable collection.
    pub async fn shared(sandbox: &Sandbox) -> (Server, TestTenant) {
        let server = Server::start(sandbox, &shared_server::SHARED, |_| {}).await;
        let owner = sandbox.fixture().owner("acme").unwrap().clone();
        let tenant = server.provision(&owner).await;
        (server, tenant)
    }

    /// An isolated instance for `acme`, with its zone, names and Stripe customer.
    pub async fn isolated(sandbox: &Sandbox) -> (Server, TestTenant) {
        let server = Server::start(sandbox, &isolated_server::ISOLATED, |c| {
            c.tenant = Some("acme".into());
        })
        .await;
        let owner = sandbox.fixture().owner("acme").unwrap();
        let tenant = tests::harness::provision_isolated(&server.admin, owner).await;
        (server, tenant)
    }

    async fn provision(&self, owner: &OwnerFixture) -> TestTenant {
        let writable = json!({
            "writable_collections": [owner.collection_ids[0]],
            "toolsets": ["webflow", "cms-write", "page-write", "asset-write", "forms", "analytics", "github"],
        });
        tests::harness::provision_shared(&self.admin, owner, writable).await
    }

    /// A browser for the connector door's pages (sends `Host: localhost:<port>`).
    pub fn browser(&self) -> reqwest::Client {
        passkey::browser(&self.connector_origin)
    }

    /// A person of `tenant` invited and registered with a passkey: the passkey and the session
    /// cookie.
    pub async fn person(&self, tenant: &str, name: &str) -> (SoftPasskey, String) {
        let invited = self
            .admin
            .invite_person(
                tenant,
                &InviteRequest {
                    name: name.into(),
                    email: None,
                    role: None,
                    expires_days: None,
                },
            )
            .await
            .unwrap();
        passkey::register_with_invite(&self.browser(), &invited.invite_url).await
    }

    /// An assistant registered dynamically, as claude.ai does it: its client id.
    pub async fn register_client(&self) -> String {
        let answer: Value = self
            .browser()
            .post(format!("{}/register", self.connector_origin))
            .json(&json!({
                "client_name": "Fuzz Assistant",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["client_id"].as_str().unwrap().to_owned()
    }

    /// The authorization request an assistant sends, every parameter right.
    pub fn authorize_params(&self, client_id: &str) -> Vec<(String, String)> {
        let challenge = pkce_challenge(VERIFIER);
        crate::fuzz::mutate::pairs(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", STATE),
            ("resource", self.connector_url.as_str()),
            ("scope", "mcp"),
        ])
    }

    /// The consent form the person is shown for `client_id` (hidden fields, CSRF included).
    pub async fn consent_form(&self, cookie: &str, client_id: &str) -> Vec<(String, String)> {
        let page = self
            .browser()
            .get(format!("{}/authorize", self.connector_origin))
            .query(&self.authorize_params(client_id))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        hidden_fields(&page)
    }

    /// The person allows `client_id`: the code from the redirect.
    pub async fn allow(&self, cookie: &str, client_id: &str) -> String {
        let form = self.consent_form(cookie, client_id).await;
        let answer = self
            .browser()
            .post(format!("{}/authorize", self.connector_origin))
            .header("cookie", cookie)
            .header("origin", &self.connector_origin)
            .form(&with(&form, "decision", "allow"))
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        let url = reqwest::Url::parse(&location).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    /// The person connects a new assistant: its client id, access and refresh tokens.
    pub async fn connect(&self, cookie: &str) -> (String, String, String) {
        let client_id = self.register_client().await;
        let code = self.allow(cookie, &client_id).await;
        let tokens: Value = self
            .browser()
            .post(format!("{}/token", self.connector_origin))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &client_id),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("resource", &self.connector_url),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let field = |name: &str| tokens[name].as_str().unwrap().to_owned();
        (client_id, field("access_token"), field("refresh_token"))
    }
}

/// The runtime every target drives its server with: one thread, so that targets running side
/// by side each keep to one core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A sandbox of `acme` and `globex`.
pub async fn sandbox() -> Sandbox {
    Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap()
}

/// A TEST-NET address as the request's TCP peer, one of 256, so that per-source limits see
/// many sources (as a fuzzer on the internet would be) yet stay bounded.
pub fn peer(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, n)), 40_000)
}

/// Sends `request` into `router` as from `peer`, and reads the answer. A hang, or a 500 (a
/// handler that failed where it should have refused), is a finding.
pub async fn send(
    router: &Router,
    mut request: Request<Body>,
    peer: SocketAddr,
) -> Result<Answer, String> {
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = tokio::time::timeout(ANSWER_WITHIN, router.clone().oneshot(request))
        .await
        .map_err(|_| format!("no answer within {ANSWER_WITHIN:?}"))?
        .map_err(|e| format!("the router failed: {e}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(
        ANSWER_WITHIN,
        axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES),
    )
    .await
    .map_err(|_| format!("{status}: the body did not finish within {ANSWER_WITHIN:?}"))?
    .map_err(|e| format!("{status}: the body could not be read: {e}"))?
    .to_vec();
    let answer = Answer {
        status,
        headers,
        body,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return Err(format!("500 Internal Server Error: {}", answer.text()));
    }
    let html = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        page_shows_what_runs(&answer.text())?;
    }
    Ok(answer)
}

/// What every page promises about text it did not write: it is escaped (no markup from a
/// request survives), and what a person reads holds no character they would not see (the
/// text between tags: hidden fields and links keep exact values, never shown).
fn page_shows_what_runs(html: &str) -> Result<(), String> {
    if html.contains("<script>") || html.contains("<script >") {
        return Err(format!("markup from the request in a page: {html}"));
    }
    // The text between tags, as one run (a variation selector directly after a shown
    // character is that character's glyph choice, which `text` allows), layout as spaces.
    let mut shown = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            '\n' | '\r' | '\t' if !in_tag => shown.push(' '),
            c if !in_tag => shown.push(c),
            _ => {}
        }
    }
    if let Some(c) = common::text::first_unseen(&shown) {
        return Err(format!(
            "a page shows {} as it is: {html}",
            common::text::describe(c)
        ));
    }
    Ok(())
}
