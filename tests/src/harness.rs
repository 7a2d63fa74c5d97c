//! `TestServer`: the shared server started in-process on loopback ports, provisioned through
//! its admin API, and reached through rmcp's own Streamable HTTP client.

use std::path::{Path, PathBuf};

use common::config::{Config, SHARED_DEFAULTS};
use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{IssueRequest, NewTenant};
use common::runtime::server::spec::ServerSpec;
use common::runtime::server::startup::Application;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sandbox::{OwnerFixture, Sandbox};

pub type McpClient = RunningService<RoleClient, ClientConfig>;

/// A running shared server. Dropping it leaves the server running until the test ends; call
/// [`TestServer::stop`] to shut it down and release the store (for restart tests).
pub struct TestServer {
    /// The static door's `/mcp` (static bearer tokens), reached by its bound address.
    pub mcp_url: String,
    /// The static door's origin.
    pub public_url: String,
    /// The connector door's URL, `http://localhost:<port>/mcp` (OAuth access tokens).
    pub connector_url: String,
    /// The connector door's origin: the authorization server, sign-in and approval pages.
    pub connector_origin: String,
    /// Where the connector door listens (`127.0.0.1:<port>`), for a replica reached directly.
    pub connector_addr: String,
    pub admin_url: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub admin: AdminClient,
    /// The server's clock: a test of expiry moves it forward instead of waiting.
    pub clock: common::clock::Clock,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _tmp: Option<tempfile::TempDir>,
}

/// A provisioned tenant: its id, its MCP token and token id, and its sandbox data.
#[derive(Clone, Debug)]
pub struct TestTenant {
    pub id: String,
    pub token: String,
    pub token_id: String,
    pub fixture: OwnerFixture,
}

/// The store every end-to-end test runs on: embedded sled, or, with
/// `STUDIO_MCP_TEST_STORE=postgres` (`tests/run.sh` runs the suite both ways), a database of
/// its own per data dir on the test cluster, so a restart on the same data dir finds the same
/// store. One suite, two backends.
pub fn test_store(data_dir: &Path) -> Option<String> {
    if std::env::var("STUDIO_MCP_TEST_STORE").ok()?.as_str() != "postgres" {
        return None;
    }
    let cluster = crate::postgres::cluster_url();
    Some(database_for(&cluster, &data_dir.display().to_string()))
}

/// A database named after `key` on `cluster` (created if missing); its URL.
pub fn database_for(cluster: &str, key: &str) -> String {
    use sha2::Digest;
    let name = format!(
        "t_{}",
        &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..20]
    );
    let created = std::process::Command::new("psql")
        .args([cluster, "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs (PostgreSQL client installed)");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        created.status.success() || stderr.contains("already exists"),
        "CREATE DATABASE {name}: {stderr}"
    );
    match cluster.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("STUDIO_MCP_TEST_POSTGRES is not a URL"),
    }
}

/// Everything a server with data dir `data_dir` has stored, as (name, bytes): every file under
/// the data dir and, with PostgreSQL, a dump of its database (`bytea` printed as text, so a
/// secret stored in clear shows verbatim). What the leak searches read.
pub fn stored(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    files_under(data_dir, &mut files);
    let mut out: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).expect("read a stored file");
            (f.display().to_string(), bytes)
        })
        .collect();
    if let Some(url) = test_store(data_dir) {
        let dump = std::process::Command::new("pg_dump")
            .args(["--data-only", &url])
            .env("PGOPTIONS", "-c bytea_output=escape")
            .output()
            .expect("pg_dump runs");
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        assert!(dump.stdout.len() > 1000, "a database dump expected");
        out.push((format!("database {url}"), dump.stdout));
    }
    out
}

/// Points `config` at `data_dir` and at the test store that goes with it (a test that moves
/// the data dir, e.g. to restart on it, keeps its database too).
pub fn use_data_dir(config: &mut Config, data_dir: &Path) {
    config.data_dir = data_dir.to_owned();
    config.store_url = test_store(data_dir);
}

pub fn config_for(data_dir: &Path, upstream: &str) -> Config {
    let store = test_store(data_dir);
    let env = |name: &str| -> Option<String> {
        match name {
            "STUDIO_MCP_DATA_DIR" => Some(data_dir.display().to_string()),
            "STUDIO_MCP_STORE" => store.clone(),
            "STUDIO_MCP_LISTEN" | "STUDIO_MCP_ADMIN_LISTEN" | "STUDIO_MCP_CONNECTOR_LISTEN" => {
                Some("127.0.0.1:0".into())
            }
            "STUDIO_MCP_WEBFLOW_BASE_URL"
            | "STUDIO_MCP_PLAUSIBLE_BASE_URL"
            | "STUDIO_MCP_GITHUB_BASE_URL"
            | "STUDIO_MCP_CLOUDFLARE_BASE_URL"
            | "STUDIO_MCP_STRIPE_BASE_URL" => Some(upstream.to_owned()),
            "STUDIO_MCP_UPSTREAM_TIMEOUT_MS" => Some("2000".into()),
            "STUDIO_MCP_MAX_RETRY_WAIT_MS" => Some("1000".into()),
            // Tests drive far more calls than a real client; quotas get their own test.
            "STUDIO_MCP_WEBFLOW_RATE_PER_MIN" | "STUDIO_MCP_TENANT_RATE_PER_MIN" => {
                Some("1000000".into())
            }
            // Every request of a test comes from one address: the per-source limits of the
            // anonymous endpoints get tests of their own.
            "STUDIO_MCP_OAUTH_REQUESTS_PER_MIN"
            | "STUDIO_MCP_REGISTRATIONS_PER_MIN"
            | "STUDIO_MCP_REGISTRATIONS_GLOBAL_PER_MIN" => Some("100000".into()),
            _ => None,
        }
    };
    Config::load(None, env, SHARED_DEFAULTS).expect("test config")
}

impl TestServer {
    pub async fn start(sandbox: &Sandbox) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let mut server = Self::start_with(config_for(&dir, &sandbox.base_url())).await;
        server._tmp = Some(tmp);
        server
    }

    pub async fn start_with(config: Config) -> TestServer {
        Self::start_spec(config, &shared_server::SHARED).await
    }

    /// An isolated instance for `tenant`, on its own temp data dir.
    pub async fn start_isolated(sandbox: &Sandbox, tenant: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = config_for(tmp.path(), &sandbox.base_url());
        config.tenant = Some(tenant.to_owned());
        let mut server = Self::start_spec(config, &isolated_server::ISOLATED).await;
        server._tmp = Some(tmp);
        server
    }

    pub async fn start_spec(config: Config, spec: &'static ServerSpec) -> TestServer {
        Self::try_start_spec(config, spec)
            .await
            .expect("server builds")
    }

    /// The shared server; every test server has passkeys on its connector door
    /// (`http://localhost:<port>/mcp`: WebAuthn needs a domain name, not an IP address).
    pub async fn start_on_localhost(sandbox: &Sandbox) -> TestServer {
        Self::start_on_localhost_with(sandbox, &shared_server::SHARED, |_| {}).await
    }

    /// A server for `spec` on its own temp data dir, with `adjust` applied to the test config
    /// (e.g. `config.tenant` for an isolated instance, or a tighter registration limit).
    pub async fn start_on_localhost_with(
        sandbox: &Sandbox,
        spec: &'static ServerSpec,
        adjust: impl Fn(&mut Config),
    ) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = config_for(tmp.path(), &sandbox.base_url());
        adjust(&mut config);
        let mut server = Self::start_spec(config, spec).await;
        server._tmp = Some(tmp);
        server
    }

    pub async fn try_start_spec(
        mut config: Config,
        spec: &'static ServerSpec,
    ) -> anyhow::Result<TestServer> {
        common::upstream::install_crypto_provider();
        if spec.single_tenant {
            // An isolated instance always keeps its own embedded store.
            config.store_url = None;
        }
        let app = Application::build(&config, spec).await?;
        let mcp_url = format!("http://{}/mcp", app.mcp_addr());
        let admin_url = format!("http://{}", app.admin_addr());
        let public_url = app.public_url().to_owned();
        let connector_url = app.connector_url().unwrap_or_default().to_owned();
        let connector_origin = common::config::connector_origin(&connector_url).to_owned();
        let connector_addr = app
            .connector_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let stop = app.shutdown_token();
        let clock = app.state().services.clock.clone();
        let task = tokio::spawn(app.run());
        let admin_token = std::fs::read_to_string(config.admin_token_path())
            .expect("admin token written at start")
            .trim()
            .to_owned();
        let admin = AdminClient::new(admin_url.clone(), admin_token.clone()).expect("client");
        Ok(TestServer {
            mcp_url,
            public_url,
            connector_url,
            connector_origin,
            connector_addr,
            admin_url,
            admin_token,
            data_dir: config.data_dir.clone(),
            admin,
            clock,
            stop,
            task,
            _tmp: None,
        })
    }

    /// Graceful stop; returns once the listeners are closed and the store is released.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("server task")
            .expect("server ran cleanly");
    }

    /// Adds a tenant bound to everything its sandbox owner has (Webflow site, Plausible site,
    /// GitHub repositories), stores each upstream credential and issues it an MCP token.
    pub async fn provision(&self, owner: &OwnerFixture) -> TestTenant {
        self.provision_with(owner, json!({})).await
    }

    /// `GET /metrics` on the admin listener, with the admin token: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let http = common::upstream::http_client().expect("http client");
        let answer = http
            .get(format!("{}/metrics", self.admin_url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("/metrics answers");
        answer.text().await.expect("/metrics text")
    }

    /// [`Self::provision`] for the sandbox's owner `name` (`"acme"`, `"globex"`…).
    pub async fn provision_owner(&self, sandbox: &Sandbox, name: &str) -> TestTenant {
        let owner = sandbox
            .fixture()
            .owner(name)
            .expect("a sandbox owner of that name");
        self.provision(owner).await
    }

    /// Like [`Self::provision`], with extra tenant spec fields (`read_only`, `toolsets`…).
    pub async fn provision_with(&self, owner: &OwnerFixture, extra: Value) -> TestTenant {
        provision_shared(&self.admin, owner, extra).await
    }

    /// See [`provision_isolated`].
    pub async fn provision_isolated(&self, owner: &OwnerFixture) -> TestTenant {
        provision_isolated(&self.admin, owner).await
    }

    /// An MCP client that does the `initialize` handshake (protocol 2025-06-18 / 2025-11-25).
    pub async fn client(&self, token: &str) -> McpClient {
        self.try_client(token, None)
            .await
            .expect("MCP client connects")
    }

    /// An MCP client on the sessionless 2026-07-28 protocol (`server/discover`).
    pub async fn client_2026(&self, token: &str) -> McpClient {
        self.try_client(token, Some(ProtocolVersion::V_2026_07_28))
            .await
            .expect("MCP client connects")
    }

    pub async fn try_client(
        &self,
        token: &str,
        modern: Option<ProtocolVersion>,
    ) -> anyhow::Result<McpClient> {
        connect(&self.mcp_url, token, modern).await
    }

    /// Raw JSON-RPC POST to `/mcp`; returns status and body text.
    pub async fn post_raw(&self, token: Option<&str>, body: &str) -> (u16, String) {
        self.post_raw_with(token, &[], body).await
    }

    /// [`Self::post_raw`] to another URL (the connector door's `/mcp`, a path of the static
    /// door).
    pub async fn post_raw_at(&self, url: &str, token: Option<&str>, body: &str) -> (u16, String) {
        self.post_raw_to(url, token, &[], body).await
    }

    /// [`Self::post_raw`] with extra request headers (`origin`, `host`, …).
    pub async fn post_raw_with(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        self.post_raw_to(&self.mcp_url, token, headers, body).await
    }

    async fn post_raw_to(
        &self,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let http = common::upstream::http_client().expect("http client");
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// Calls a tool; returns the result (tool errors included) or panics on protocol errors.
pub async fn call(client: &McpClient, tool: &str, args: Value) -> CallToolResult {
    try_call(client, tool, args)
        .await
        .expect("tools/call answered")
}

pub async fn try_call(
    client: &McpClient,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let args = match args {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
}

/// Everything a result shows, as one string, for leak searches.
pub fn result_text(result: &CallToolResult) -> String {
    serde_json::to_string(result).unwrap_or_default()
}

/// The text of a tool error, or a panic if the call succeeded.
pub fn error_text(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error, got {}",
        result_text(result)
    );
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured result of a successful call, or a panic with the error text.
pub fn ok_json(result: &CallToolResult) -> Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "tool failed: {}",
        result_text(result)
    );
    result
        .structured_content
        .clone()
        .expect("structured content")
}

/// A shared server's tenant bound to everything its sandbox owner has (Webflow site, Plausible
/// site, GitHub repositories) plus `extra` spec fields, with each upstream credential stored
/// and an MCP token issued, through `admin`.
pub async fn provision_shared(
    admin: &AdminClient,
    owner: &OwnerFixture,
    extra: Value,
) -> TestTenant {
    let mut spec = json!({
        "id": owner.owner,
        "name": format!("{} Inc", owner.owner),
        "webflow_sites": [owner.site_id],
        "plausible_site": owner.plausible_site,
        "github_repos": owner.github_repos,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let new: NewTenant = serde_json::from_value(spec).expect("tenant spec");
    admin.add_tenant(&new).await.expect("tenant added");
    for (kind, secret) in [
        ("webflow", &owner.token),
        ("plausible", &owner.plausible_token),
        ("github", &owner.github_token),
    ] {
        admin
            .set_secret(&owner.owner, kind, secret.clone())
            .await
            .expect("secret stored");
    }
    issue_test_token(admin, owner).await
}

/// Sets an isolated instance's tenant to everything its sandbox owner has (site, custom
/// domains, DNS zone with `www.` and `*.shop.` names, Stripe customer, its first collection
/// named for deletions), stores the Webflow (site and App), Cloudflare and Stripe credentials and
/// issues an MCP token.
pub async fn provision_isolated(admin: &AdminClient, owner: &OwnerFixture) -> TestTenant {
    let spec: common::tenant::TenantSpec = serde_json::from_value(json!({
        "name": format!("{} Inc", owner.owner),
        "webflow_sites": [owner.site_id],
        "custom_domains": owner.custom_domain_ids,
        "dns_zone": owner.zone_id,
        "dns_names": [format!("www.{}", owner.zone_name), format!("*.shop.{}", owner.zone_name), format!("shop.{}", owner.zone_name)],
        "stripe_customer": owner.stripe_customer,
        "deletable_collections": [owner.collection_ids[0]],
    }))
    .expect("tenant spec");
    admin
        .set_tenant(&owner.owner, &spec)
        .await
        .expect("tenant set");
    for (kind, secret) in [
        ("webflow", &owner.token),
        ("webflow-app", &owner.webflow_app_token),
        ("cloudflare", &owner.cloudflare_token),
        ("stripe", &owner.stripe_key),
    ] {
        admin
            .set_secret(&owner.owner, kind, secret.clone())
            .await
            .expect("secret stored");
    }
    issue_test_token(admin, owner).await
}

/// An MCP token for `owner`'s tenant, issued through `admin`.
async fn issue_test_token(admin: &AdminClient, owner: &OwnerFixture) -> TestTenant {
    let issued = admin
        .issue_token(
            &owner.owner,
            &IssueRequest {
                label: Some("test".into()),
                ttl_days: None,
            },
        )
        .await
        .expect("token issued");
    TestTenant {
        id: owner.owner.clone(),
        token: issued.token,
        token_id: issued.record.id,
        fixture: owner.clone(),
    }
}

/// An MCP client for `mcp_url`: the `initialize` handshake, or `server/discover` for `modern`.
pub async fn connect(
    mcp_url: &str,
    token: &str,
    modern: Option<ProtocolVersion>,
) -> anyhow::Result<McpClient> {
    common::upstream::install_crypto_provider();
    let config = StreamableHttpClientTransportConfig::with_uri(mcp_url).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let client = match modern {
        None => ClientConfig::default().serve(transport).await?,
        Some(version) => {
            ClientConfig::default()
                .serve_with_lifecycle(
                    transport,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![version],
                    },
                )
                .await?
        }
    };
    Ok(client)
}

/// `binary` to run as its own process, without this environment's `STUDIO_MCP_*` settings
/// (the test sets what it means).
pub fn server_command(binary: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("STUDIO_MCP_")) {
            command.env_remove(name);
        }
    }
    command
}

/// `isolated-server serve` for acme on `data`, listening on `port` (public URL
/// `http://127.0.0.1:<port>`) and `admin_port`, every upstream at `upstream`: what a test of
/// the real process adds its own settings and stdio to.
pub async fn isolated_acme_command(
    data: &Path,
    upstream: &str,
    (port, admin_port): (u16, u16),
) -> std::process::Command {
    let binary = isolated_server_binary()
        .await
        .expect("the isolated-server binary (cargo build --workspace --bin isolated-server)");
    let mut command = server_command(&binary);
    command
        .arg("serve")
        .env("STUDIO_MCP_TENANT", "acme")
        .env("STUDIO_MCP_DATA_DIR", data)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("STUDIO_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("STUDIO_MCP_WEBFLOW_BASE_URL", upstream)
        .env("STUDIO_MCP_CLOUDFLARE_BASE_URL", upstream)
        .env("STUDIO_MCP_STRIPE_BASE_URL", upstream);
    command
}

/// The `shared-server` binary beside this test's own target folder, built (or brought up to
/// date) with the same profile; `None` when cargo is not available and no binary exists.
pub async fn shared_server_binary() -> Option<std::path::PathBuf> {
    static BINARY: tokio::sync::OnceCell<Option<std::path::PathBuf>> =
        tokio::sync::OnceCell::const_new();
    BINARY
        .get_or_init(|| server_binary("shared-server"))
        .await
        .clone()
}

/// The `isolated-server` binary, as [`shared_server_binary`].
pub async fn isolated_server_binary() -> Option<std::path::PathBuf> {
    static BINARY: tokio::sync::OnceCell<Option<std::path::PathBuf>> =
        tokio::sync::OnceCell::const_new();
    BINARY
        .get_or_init(|| server_binary("isolated-server"))
        .await
        .clone()
}

/// `package`'s binary of the same name beside this test's own target folder, built (or brought
/// up to date) with the same profile; `None` when cargo is not available and no binary exists.
async fn server_binary(package: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent()?.parent()?.to_owned(); // <target>/<profile>/deps/<test>
    let target_dir = profile_dir.parent()?.to_owned();
    let profile = profile_dir.file_name()?.to_str()?.to_owned();
    let binary = profile_dir.join(package);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = tokio::process::Command::new(cargo);
    build
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        // `--workspace`, not `-p`: features unify as for the test build itself, so the crates
        // it shares with this test are not compiled a second time with another feature set.
        .args(["build", "--quiet", "--workspace", "--bin", package])
        .arg("--target-dir")
        .arg(&target_dir);
    // What cargo set for this test's own run: build scripts that watch these (ring watches
    // CARGO_MANIFEST_DIR) would rebuild here, and again on the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let set_for_the_test = name.to_str().is_some_and(|n| {
            n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&n)
        });
        if set_for_the_test {
            build.env_remove(name);
        }
    }
    if profile != "debug" {
        build.args(["--profile", &profile]);
    }
    match build.status().await {
        Ok(status) => assert!(
            status.success(),
            "cargo build --workspace --bin {package} failed"
        ),
        Err(e) if binary.exists() => eprintln!("cargo not run ({e}); using {}", binary.display()),
        Err(e) => {
            eprintln!("SKIPPED: cargo not run ({e}) and no {package} binary");
            return None;
        }
    }
    Some(binary)
}

/// Everything a server logs, for leak searches: a `tracing` writer into memory.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A loopback port free right now (released at once: for servers whose port must be known
/// before they start, e.g. because it is in their public URL).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits for something: calls `check` every 20 ms until it returns `Ok`, for at most `within`,
/// then fails the test naming `what` and the last `Err` seen. The one way a test waits.
pub async fn eventually<T, E, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(done) => return done,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}; last seen: {last:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for code that cannot await (a `#[test]` fn, a blocking helper): calls `check`
/// every 20 ms until it returns `Ok`, for at most `within`, then fails the test naming `what`
/// and the last `Err` seen.
pub fn eventually_blocking<T, E: std::fmt::Debug>(
    what: &str,
    within: std::time::Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        let last = match check() {
            Ok(done) => return done,
            Err(last) => last,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}; last seen: {last:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What an [`eventually`] check on a child process last saw, followed by the process's log as
/// it is when the failure is printed: the log says why it never got there, and is read once,
/// at the end, not on every try.
pub struct WithLog<'a> {
    pub seen: String,
    pub log: &'a Path,
}

impl<'a> WithLog<'a> {
    pub fn new(seen: impl Into<String>, log: &'a Path) -> Self {
        WithLog {
            seen: seen.into(),
            log,
        }
    }
}

impl std::fmt::Debug for WithLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.seen, log_text(self.log))
    }
}

/// A log file's name and what it holds now (nothing if it cannot be read).
fn log_text(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    format!("log {}:\n{}", log.display(), String::from_utf8_lossy(&text))
}

/// Waits until `child`, a server process just spawned, answers `GET health` with a success
/// status, for at most `within`: fails the test naming `what` if it does not, or at once if
/// the process exits first, showing its `log` (stderr) either way. Readiness is polled, never
/// slept for.
pub async fn until_healthy(
    what: &str,
    child: &mut std::process::Child,
    health: &str,
    log: &Path,
    within: std::time::Duration,
) {
    let http = common::upstream::http_client().unwrap();
    eventually(what, within, || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: it exited ({status}) instead; {}", log_text(log));
        }
        let http = &http;
        async move {
            // Each probe is bounded, so that a server that accepts but never answers still
            // meets the deadline.
            let probe = http.get(health).send();
            let seen = match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
                Ok(Ok(r)) if r.status().is_success() => return Ok(()),
                Ok(Ok(r)) => r.status().to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 2 s".to_owned(),
            };
            Err(WithLog::new(seen, log))
        }
    })
    .await;
}

/// A child process killed and reaped when dropped, so that a test failing while it waits on the
/// process leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
