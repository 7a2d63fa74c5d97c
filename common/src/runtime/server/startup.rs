//! Building and running the server: open the store, load or create keys, bind both listeners,
//! serve until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::domain::TenantId;
use crate::mcp::Services;
use crate::ratelimit::RateLimiter;
use crate::scope::ResourceIndex;
use crate::secrets::{MasterKey, write_private_file};
use crate::store::Store;
use crate::token::TokenAuthority;
use crate::upstream::cache::ReadCache;
use crate::upstream::{Upstream, http_client};
use anyhow::Context;
use rand::RngCore;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::admin;
use crate::runtime::server::listener::{self, Limits};
use crate::runtime::server::routes;
use crate::runtime::server::spec::ServerSpec;
use crate::runtime::server::state::{AppState, ConnectorDoor};

pub struct Application {
    mcp: TcpListener,
    admin: TcpListener,
    /// The connector (OAuth) door's listener, when one is configured.
    connector: Option<TcpListener>,
    mcp_limits: Limits,
    admin_limits: Limits,
    connector_limits: Limits,
    state: Arc<AppState>,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens everything and binds both listeners; nothing is served until [`Self::run`].
    pub async fn build(config: &Config, spec: &'static ServerSpec) -> anyhow::Result<Self> {
        let pinned = match (&config.tenant, spec.single_tenant) {
            (Some(t), true) => Some(TenantId::parse(t).context("STUDIO_MCP_TENANT")?),
            (None, true) => {
                anyhow::bail!("STUDIO_MCP_TENANT must name the one tenant this instance serves")
            }
            (_, false) => None,
        };
        make_private(&config.data_dir)?;
        let store = open_store(config, spec)?;
        let key_path = config.master_key_path();
        let (master_key, generated) = MasterKey::load_or_generate(&key_path)?;
        if generated {
            tracing::warn!(path = %key_path.display(), "generated a new master key for upstream secrets (mode 0600); back it up, secrets are unreadable without it");
        }
        let mcp = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (STUDIO_MCP_LISTEN)", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (STUDIO_MCP_ADMIN_LISTEN)",
                    config.admin_listen
                )
            })?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", mcp.local_addr()?),
        };
        let connector = match config.connector_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} (STUDIO_MCP_CONNECTOR_LISTEN)")
            })?),
            None => None,
        };
        let connector_door = match (&connector, &config.connector_url) {
            (Some(_), Some(url)) => Some(ConnectorDoor::new(url.clone())),
            // `localhost`, not the bound IP: passkeys need a host name.
            (Some(listener), None) => Some(ConnectorDoor::new(format!(
                "http://localhost:{}{}",
                listener.local_addr()?.port(),
                crate::config::MCP_PATH
            ))),
            (None, _) => None,
        };
        if let Some(door) = &connector_door
            && door.origin.eq_ignore_ascii_case(&public_url)
        {
            return Err(ConfigError::Value {
                name: "STUDIO_MCP_CONNECTOR_URL",
                why: format!(
                    "{} is on the static door's origin; the connector door needs an origin of \
                     its own",
                    door.url
                ),
            }
            .into());
        }
        let authority = TokenAuthority::load_or_generate(&config.signing_key_path(), &public_url)
            .map_err(|e| match e {
            crate::secrets::SecretError::BadSigningKey { path } => {
                anyhow::Error::new(ConfigError::DataFile {
                    path,
                    why: "must hold at least 64 hex characters (a 32-byte key); delete it to \
                              generate a new one (every issued token then stops working)"
                        .into(),
                })
            }
            other => other.into(),
        })?;
        let admin_token = load_or_create_admin_token(config)?;
        let metrics_token = load_or_create_metrics_token(config)?;
        if let Some(pg) = store.replica() {
            // Replicas share the keys through files the operator gives each (never through the
            // database: a dump of it alone must not open the secrets it holds); a replica with
            // other keys is refused here rather than issue tokens the others reject.
            for (what, fingerprint) in shared_key_fingerprints(config)? {
                pg.check_fingerprint(what, fingerprint)?;
            }
        }

        let client = http_client().context("cannot build the HTTP client")?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let clock = crate::clock::Clock::default();
        let cache = read_cache(config, &store, &clock, &metrics);
        let timeout = Duration::from_millis(config.upstream_timeout_ms);
        let retry = Duration::from_millis(config.max_retry_wait_ms);
        let upstream = |name: &'static str, base: &str| {
            Upstream::new(name, base, client.clone(), timeout, retry)
                .with_metrics(metrics.clone())
                .with_cache(cache.clone())
                .with_max_body(
                    usize::try_from(config.max_upstream_body_bytes).unwrap_or(usize::MAX),
                )
        };
        let u = &config.upstreams;
        let replicas = store.replica().map(|pg| pg.live_replicas());
        let services = Services {
            store,
            master_key,
            plausible: upstream("Plausible", &u.plausible),
            github: upstream("GitHub", &u.github)
                .with_header("x-github-api-version", "2022-11-28")
                .with_header("accept", "application/vnd.github+json"),
            webflow: upstream("Webflow", &u.webflow)
                .with_quota(u32::try_from(config.webflow_rate_per_min).unwrap_or(u32::MAX)),
            cloudflare: upstream("Cloudflare", &u.cloudflare),
            stripe: upstream("Stripe", &u.stripe),
            index: ResourceIndex::default(),
            gates: Default::default(),
            metrics,
            approval_ttl_secs: config.approval_ttl_secs,
            approval_base: connector_door.as_ref().map(|d| d.origin.clone()),
            approval_webhook: config.approval_webhook.clone(),
            clock,
            limiter: RateLimiter::new(
                u32::try_from(config.tenant_rate_per_min).unwrap_or(u32::MAX),
            )
            .shared_by(replicas),
        };
        let passkeys = match &connector_door {
            None => None,
            Some(door) => {
                match crate::runtime::browser::signin::relying_party(&door.origin, spec.title) {
                    Ok(rp) => Some(rp),
                    Err(why) => {
                        tracing::warn!("{why}; invite links and connector sign-in will not work");
                        None
                    }
                }
            }
        };
        let client_metadata = client_metadata_fetcher(config)?;
        let state = AppState {
            spec,
            pinned,
            services: Arc::new(services),
            catalog: Arc::new((spec.catalog)()),
            authority,
            admin_token,
            metrics_token,
            public_url,
            fast_path: config.fast_path,
            key_fingerprints: record_key_fingerprints(config)?,
            connector: connector_door,
            token_ttl_secs: config.token_ttl_days.saturating_mul(86_400),
            audit_retention_ms: config.audit_retention_days.saturating_mul(86_400_000),
            refusals: crate::runtime::server::telemetry::Sampled::new(Duration::from_secs(10)),
            passkeys,
            oauth: config.oauth.clone(),
            client_metadata,
            registrations: Default::default(),
            registrations_per_min: u32::try_from(config.oauth.registrations_per_min)
                .unwrap_or(u32::MAX),
            registrations_global: Default::default(),
            registrations_global_per_min: u32::try_from(config.oauth.registrations_global_per_min)
                .unwrap_or(u32::MAX),
            sources: Default::default(),
            oauth_requests_per_min: u32::try_from(config.oauth.requests_per_min)
                .unwrap_or(u32::MAX),
            trusted_proxies: crate::runtime::server::source::TrustedProxies::new(
                config.trusted_proxies.clone(),
            ),
        };
        let (mcp_limits, admin_limits, connector_limits) = listener_limits(config);
        Ok(Self {
            mcp,
            admin,
            connector,
            mcp_limits,
            admin_limits,
            connector_limits,
            state: Arc::new(state),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn mcp_addr(&self) -> SocketAddr {
        self.mcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// The connector door's bound address, if it has one.
    pub fn connector_addr(&self) -> Option<SocketAddr> {
        self.connector.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The connector door's public URL (`…/mcp`), if it has one.
    pub fn connector_url(&self) -> Option<&str> {
        self.state.connector.as_ref().map(|d| d.url.as_str())
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Cancelling this token stops both listeners gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(
            mcp = %self.mcp_addr(),
            admin = %self.admin_addr(),
            public_url = %self.state.public_url,
            server = self.state.spec.name,
            tenant = self.state.pinned.as_ref().map(|t| t.as_str()).unwrap_or("*"),
            "listening: static door (bearer tokens) at {}/mcp, admin API on the admin listener",
            self.state.public_url
        );
        match (&self.state.connector, self.connector_addr()) {
            (Some(door), Some(addr)) => tracing::info!(
                connector = %addr,
                connector_url = %door.url,
                "listening: connector door (OAuth, people's sign-in{}) at {}",
                if self.state.spec.approvals { ", approvals" } else { "" },
                door.url
            ),
            _ => tracing::info!(
                "no connector door (STUDIO_MCP_CONNECTOR_URL unset): no OAuth connectors and no \
                 people's pages{}",
                if self.state.spec.approvals {
                    "; approvals only through the operator's `approval approve`"
                } else {
                    ""
                }
            ),
        }
        let static_router = routes::static_router(self.state.clone(), self.shutdown.child_token());
        let admin_router = admin::router(self.state.clone());
        tokio::spawn(prune_audit(self.state.clone(), self.shutdown.child_token()));
        let mcp = listener::serve(
            self.mcp,
            static_router,
            self.mcp_limits,
            self.shutdown.clone(),
        );
        let admin = listener::serve(
            self.admin,
            admin_router,
            self.admin_limits,
            self.shutdown.clone(),
        );
        let connector = async {
            let (Some(listener), Some(router)) = (
                self.connector,
                routes::connector_router(self.state.clone(), self.shutdown.child_token()),
            ) else {
                return Ok(());
            };
            listener::serve(
                listener,
                router,
                self.connector_limits,
                self.shutdown.clone(),
            )
            .await
        };
        let (a, b, c) = tokio::join!(mcp, admin, connector);
        a.context("MCP listener failed")?;
        b.context("admin listener failed")?;
        c.context("connector listener failed")?;
        self.state.services.store.flush()?;
        if let Some(pg) = self.state.services.store.replica() {
            pg.leave();
        }
        Ok(())
    }
}

/// The fetcher of Client ID Metadata Documents, with the test-only relaxations if configured.
fn client_metadata_fetcher(
    config: &Config,
) -> anyhow::Result<crate::runtime::oauth::client_metadata::ClientMetadataFetcher> {
    use crate::runtime::oauth::client_metadata::{ClientMetadataFetcher, ClientMetadataPolicy};
    let mut policy = ClientMetadataPolicy {
        allow_private: config.oauth.client_metadata_allow_private,
        ..ClientMetadataPolicy::default()
    };
    if let Some(path) = &config.oauth.client_metadata_ca {
        let pem = std::fs::read(path).map_err(|e| ConfigError::Value {
            name: "STUDIO_MCP_OAUTH_CLIENT_METADATA_CA",
            why: format!("{}: {e}", path.display()),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::Value {
                name: "STUDIO_MCP_OAUTH_CLIENT_METADATA_CA",
                why: format!("{}: not a PEM certificate: {e}", path.display()),
            })?;
        policy.extra_roots = certs;
    }
    if policy.allow_private {
        tracing::warn!(
            "client metadata documents may live on private addresses (STUDIO_MCP_OAUTH_CLIENT_METADATA_ALLOW_PRIVATE): for tests only"
        );
    }
    Ok(ClientMetadataFetcher::new(policy)?)
}

/// Everything the server writes is its own: files it creates from here on are 0600 and
/// directories 0700 (umask 077; sled and the audit log create files as they go), and the data
/// dir and whatever is already in it are made so too — also when they already existed.
fn make_private(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let mut pending = vec![data_dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let private = if meta.is_dir() {
            for entry in std::fs::read_dir(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                pending.push(entry?.path());
            }
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private))
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
    }
    Ok(())
}

/// The upstream read cache (`None` when `STUDIO_MCP_UPSTREAM_CACHE=off`): lifetimes on the
/// server's clock; on PostgreSQL, writes are announced to the other replicas through the store
/// and theirs heard from it.
fn read_cache(
    config: &Config,
    store: &Store,
    clock: &crate::clock::Clock,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Option<Arc<ReadCache>> {
    if !config.upstream_cache {
        return None;
    }
    let cache = Arc::new(ReadCache::new(
        config.upstream_cache_bytes,
        clock.clone(),
        Some(metrics.clone()),
    ));
    if store.replica().is_some() {
        // The follower holds the cache weakly: the store outlives no server it served.
        let heard = Arc::downgrade(&cache);
        store.hear_upstream_writes(Box::new(move |what| {
            if let Some(cache) = heard.upgrade() {
                cache.heard(what);
            }
        }));
        let store = store.clone();
        cache.announce_with(Box::new(move |what| {
            let store = store.clone();
            Box::pin(async move {
                let announced =
                    tokio::task::spawn_blocking(move || store.announce_upstream_write(&what)).await;
                // The upstream write is done whatever happens here; a replica that missed the
                // notice serves its entry until the entry's lifetime ends.
                if let Ok(Err(e)) = announced {
                    tracing::warn!(error = %e, "upstream write not announced to every replica");
                }
            })
        }));
    }
    Some(cache)
}

/// Each listener's limits (static door, admin, connector door). The descriptor limit is raised
/// to its hard maximum first; the connection caps together stay within what it leaves after
/// the server's own files.
fn listener_limits(config: &Config) -> (Limits, Limits, Limits) {
    let budget = listener::raise_descriptor_limit().map(listener::connection_budget);
    let wanted_admin = usize::try_from(config.admin_max_connections).unwrap_or(usize::MAX);
    let admin_max = budget.map_or(wanted_admin, |b| wanted_admin.min(b / 8).max(1));
    let room = budget.map(|b| b.saturating_sub(admin_max).max(1));
    let mcp_max = match (
        usize::try_from(config.max_connections).unwrap_or(usize::MAX),
        room,
    ) {
        (0, Some(room)) => room,
        (0, None) => 1024,
        (wanted, Some(room)) if wanted > room => {
            tracing::warn!(
                wanted,
                allowed = room,
                "STUDIO_MCP_MAX_CONNECTIONS is more than the open-file limit leaves room for; using the smaller number"
            );
            room
        }
        (wanted, _) => wanted,
    };
    let timeouts = |max_connections, record_peer| Limits {
        max_connections,
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        record_peer,
    };
    // Sized from the descriptor budget, a connector door takes a quarter of the room (people
    // and connectors are few next to static clients) so the listeners together stay within
    // it; an explicit STUDIO_MCP_MAX_CONNECTIONS is each door's own cap.
    let (mcp_max, connector_max) = match (config.connector_listen, config.max_connections) {
        (None, _) => (mcp_max, 1),
        (Some(_), 0) => {
            let connector = (mcp_max / 4).max(1);
            (mcp_max.saturating_sub(connector).max(1), connector)
        }
        (Some(_), _) => (mcp_max, mcp_max),
    };
    tracing::debug!(mcp_max, admin_max, connector_max, "connection limits");
    (
        timeouts(mcp_max, false),
        timeouts(admin_max, false),
        timeouts(connector_max, true),
    )
}

/// Applies the audit retention at start and then hourly, until shutdown.
async fn prune_audit(state: Arc<AppState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = crate::audit::now_ms().saturating_sub(state.audit_retention_ms);
        match state.services.store.audit().prune(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned audit records past retention"),
            Err(e) => tracing::error!(error = %e, "audit pruning failed"),
        }
        // Approvals settled a week ago (approved-not-run and running ones stay for the operator).
        if let Err(e) = state
            .services
            .store
            .approvals()
            .sweep(state.services.clock.now(), 7 * 86_400)
        {
            tracing::error!(error = %e, "sweeping settled approvals failed");
        }
        // Expired codes, sessions, invites, access tokens and unused client registrations.
        let people = state.services.store.people();
        if let Err(e) = people.sweep(
            state.services.clock.now(),
            crate::runtime::oauth::unused_client_ttl,
        ) {
            tracing::error!(error = %e, "sweeping expired sign-in and OAuth records failed");
        }
    }
}

/// The async runtime both binaries run on: `worker_threads` threads (`STUDIO_MCP_WORKER_THREADS`),
/// 0 meaning one per core the process may use. With one (a container limited to one CPU, a
/// process pinned to one core), tokio's single-threaded scheduler on the main thread, which does
/// the same work without waking or stealing across threads and keeps one malloc arena, not two.
pub fn runtime(worker_threads: u64) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = match usize::try_from(worker_threads) {
        Ok(0) | Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
        Ok(n) => n,
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// What `serve` does in both binaries: log, build, run until Ctrl-C or SIGTERM.
pub async fn serve(config: &Config, spec: &'static ServerSpec) -> anyhow::Result<()> {
    let service = match &config.tenant {
        Some(tenant) if spec.single_tenant => format!("studio-mcp-isolated-{tenant}"),
        _ => "studio-mcp-shared".to_owned(),
    };
    let otlp = crate::runtime::server::telemetry::init(config.log_json, &service).map_err(|e| {
        ConfigError::Value {
            name: "OpenTelemetry export",
            why: format!("{e:#}"),
        }
    })?;
    let app = Application::build(config, spec).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        crate::runtime::server::telemetry::shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    let ran = app.run().await;
    if let Some(otlp) = otlp {
        otlp.shutdown().await;
    }
    ran
}

/// One line on stderr and a non-zero exit: 2 for configuration errors, 1 for the rest.
pub fn exit_code(binary: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<ConfigError>() => {
            eprintln!("{binary}: configuration error: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{binary}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Admin and metrics tokens shorter than this are refused at start: an empty file (a first start interrupted
/// before the write) must never mean "no token needed".
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The embedded sled store in the data dir, or PostgreSQL when `STUDIO_MCP_STORE` names it
/// (shared server only: an isolated instance is one tenant, one process, nothing shared).
fn open_store(config: &Config, spec: &ServerSpec) -> anyhow::Result<Store> {
    let Some(url) = &config.store_url else {
        return Ok(Store::open(&config.store_path())?);
    };
    if spec.single_tenant {
        anyhow::bail!(
            "STUDIO_MCP_STORE: the {} keeps its own embedded store; only the shared server \
             runs on PostgreSQL",
            spec.name
        );
    }
    let options = pg_options(config)?;
    let name = options.replica_name.clone();
    let store = Store::open_pg(url, options)?;
    if let Some(pg) = store.replica() {
        tracing::info!(replica = %name, database = %pg.target(), "store: PostgreSQL");
    }
    Ok(store)
}

/// The PostgreSQL options the configuration gives (name, timings, password file).
pub fn pg_options(config: &Config) -> anyhow::Result<crate::store::PgOptions> {
    let defaults = crate::store::PgOptions::default();
    let options = crate::store::PgOptions {
        replica_name: config.replica.name.clone().unwrap_or(defaults.replica_name),
        lease: Duration::from_secs(config.replica.lease_secs),
        ack_timeout: Duration::from_secs(config.replica.ack_timeout_secs),
        password: match &config.store_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("STUDIO_MCP_STORE_PASSWORD_FILE {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        },
        ..defaults
    };
    Ok(options)
}

/// The fingerprints of the key files every replica must share (signing key, master key,
/// admin token): what the database records and checks.
pub fn shared_key_fingerprints(config: &Config) -> anyhow::Result<Vec<(&'static str, String)>> {
    [
        ("signing key", config.signing_key_path()),
        ("master key", config.master_key_path()),
        ("admin token", config.admin_token_path()),
    ]
    .into_iter()
    .map(|(what, path)| Ok((what, key_fingerprint(&path)?)))
    .collect()
}

/// The fingerprints of the key files the store's records need: the signing key (tokens) and
/// the master key (sealed secrets). What a backup records and a restore checks.
pub fn record_key_fingerprints(config: &Config) -> anyhow::Result<Vec<(&'static str, String)>> {
    [
        ("signing key", config.signing_key_path()),
        ("master key", config.master_key_path()),
    ]
    .into_iter()
    .map(|(what, path)| Ok((what, key_fingerprint(&path)?)))
    .collect()
}

/// A short, non-reversible name for a key file's contents: equal across replicas or refused.
fn key_fingerprint(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"studio-mcp key fingerprint\0");
    hasher.update(bytes.trim_ascii());
    Ok(hex::encode(&hasher.finalize()[..8]))
}

fn load_or_create_admin_token(config: &Config) -> anyhow::Result<SecretString> {
    load_or_create_token(&config.admin_token_path(), "admin", "adm_")
}

/// The metrics token opens `GET /metrics` and nothing else: what a scraper holds instead of the
/// admin token. Each server (each replica, too) keeps its own.
fn load_or_create_metrics_token(config: &Config) -> anyhow::Result<SecretString> {
    load_or_create_token(&config.metrics_token_path(), "metrics", "mtr_")
}

/// Reads a bearer token from `path`, or writes a new random one there (mode 0600) on first start.
/// A file too short or with non-printable characters is refused, never taken as "no token".
fn load_or_create_token(
    path: &std::path::Path,
    what: &str,
    prefix: &str,
) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < MIN_ADMIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::DataFile {
                    path: path.display().to_string(),
                    why: format!(
                        "the {what} token must be at least {MIN_ADMIN_TOKEN_CHARS} printable \
                         characters without spaces; delete the file to have a new one generated"
                    ),
                }
                .into());
            }
            Ok(SecretString::from(token.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let token = format!("{prefix}{}", hex::encode(raw));
            write_private_file(path, token.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "wrote the {what} token (mode 0600)");
            Ok(SecretString::from(token))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
