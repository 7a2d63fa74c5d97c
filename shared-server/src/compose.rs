//! `shared-server compose`: the docker compose deployment (the shared server, one isolated
//! instance per tenant, Caddy in front) rendered from the tenant list the admin API returns.
//! With `--shared-replicas N --postgres` the shared server runs as N replicas on one
//! PostgreSQL database (a `postgres` service), and Caddy balances across them.
//!
//! Every server has two doors, each a Caddy site with its own host name and automatic HTTPS:
//! the static door (bearer tokens) at `mcp.<domain>` / `<tenant>.mcp.<domain>`, and the
//! connector door (OAuth: claude.ai, ChatGPT, Claude Desktop's Connectors; sign-in, invite,
//! consent and approval pages) at `connect.<domain>` / `<tenant>.connect.<domain>`. Why
//! `<tenant>.connect.<domain>` for an isolated instance's connector: one wildcard DNS record
//! (`*.connect.<domain>`, and a wildcard certificate for it where the operator wants one)
//! covers every client's connector, so adding a tenant needs no DNS change; the names never
//! collide with the static `<tenant>.mcp.<domain>` hosts or with `connect.<domain>` (each
//! family has a parent of its own, whatever the tenant ids); and the person registering a
//! passkey or approving an action sees the client's name in the address bar, on an origin
//! that is that client's alone (its passkeys and cookies cannot be used on another's).
//!
//! Rendering is pure and deterministic: tenants in id order, no timestamps, and each tenant's
//! admin port derived from its id, so regenerating after adding a tenant adds only that tenant's
//! lines. Rendering never sees a secret: the compose file names secret *files*, and the files
//! under `secrets/` are either placeholders for the operator or fresh random keys. Files the
//! operator owns (everything under `secrets/`) are created once and never overwritten.
//! Replicas read their keys, admin token and database password from those files rather than
//! each making its own: a replica whose keys differ from the ones the database first saw is
//! refused at start, so every replica is given the same files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use common::domain::TenantId;
use common::secrets::{MasterKey, write_private_file};
use common::tenant::Tenant;
use common::token::MIN_SIGNING_KEY_BYTES;
use rand::RngCore;

use common::runtime::admin::client::AdminClient;

/// The runtime user of `deploy/Dockerfile` (uid and gid). Compose mounts a secret file with its
/// host owner and mode, so a master key must belong to this uid for the server to read it.
pub const CONTAINER_UID: u32 = 10001;
/// Host loopback ports for the isolated instances' admin APIs: `BASE + fnv1a(tenant) % SPAN`.
pub const ADMIN_PORT_BASE: u16 = 20_000;
pub const ADMIN_PORT_SPAN: u16 = 10_000;
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_IMAGE: &str = "studio-mcp:latest";
pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:16";
/// More replicas than this is a typo rather than a plan: every write waits for each live
/// replica's acknowledgement, and each holds its own database connections.
pub const MAX_SHARED_REPLICAS: u16 = 16;
/// Host loopback port of replica K's admin API for K >= 2 (`BASE + K`); `shared-1` keeps 8788,
/// the port the operator's commands and `deploy/generate-compose.sh` use. Below the isolated
/// instances' range.
pub const REPLICA_ADMIN_PORT_BASE: u16 = 18_800;
/// The upstream credentials an isolated instance stores (`isolated-server secret set`).
pub const ISOLATED_CREDENTIALS: [&str; 3] = ["webflow", "cloudflare", "stripe"];
/// How every placeholder file starts; `onboard.sh` skips a file that still does.
pub const PLACEHOLDER_MARK: &str = "REPLACE_ME";

/// The shared server's compose secret, and the folder its master key lives in. A tenant with
/// this id would collide with both, so it is refused.
const SHARED: &str = "shared";
const MCP_PORT: u16 = 8787;
const ADMIN_PORT: u16 = 8788;
/// The connector door's container port (the server's own default for it).
const CONNECTOR_PORT: u16 = 8789;
const ISOLATED_MCP_PORT: u16 = 8790;
const ISOLATED_ADMIN_PORT: u16 = 8791;
const ISOLATED_CONNECTOR_PORT: u16 = 8792;
/// The database role and database the `postgres` service creates and the replicas use.
const DATABASE: &str = "studio_mcp";
const POSTGRES_PORT: u16 = 5432;
/// The server refuses a shorter admin token (`MIN_ADMIN_TOKEN_CHARS` in
/// common/src/runtime/server/startup.rs).
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Folder for docker-compose.yml, caddy/Caddyfile, onboard.sh and secrets/ (created if missing).
    pub out_dir: PathBuf,
    /// The studio's domain: the shared server answers at mcp.<domain> (static tokens) and
    /// connect.<domain> (connectors), tenant T at T.mcp.<domain> and T.connect.<domain>.
    #[arg(long, default_value = DEFAULT_DOMAIN)]
    pub domain: String,
    /// The image built from deploy/Dockerfile.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Render only the shared server and Caddy, without asking the admin API (first deployment).
    #[arg(long)]
    pub no_tenants: bool,
    /// Run the shared server as N replicas, shared-1 … shared-N, behind Caddy; more than one
    /// needs --postgres, the store they share.
    #[arg(long, value_name = "N")]
    pub shared_replicas: Option<u16>,
    /// Keep the shared server's store in PostgreSQL: a `postgres` service with its own volume
    /// and a generated password under secrets/.
    #[arg(long)]
    pub postgres: bool,
    /// The PostgreSQL image for --postgres [default: postgres:16].
    #[arg(long, value_name = "IMAGE")]
    pub postgres_image: Option<String>,
}

/// The longest `--domain`: `<63-character tenant>.connect.<domain>`, the longest host name
/// rendered, within DNS's 253 characters.
const MAX_DOMAIN_CHARS: usize = 253 - (63 + ".connect.".len());

/// What the deployment is rendered for; [`ComposeOptions::new`] checks both values, since they
/// end up in YAML and in a Caddyfile.
#[derive(Clone, Debug)]
pub struct ComposeOptions {
    domain: String,
    image: String,
    shared: SharedDeployment,
}

/// How the shared server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedDeployment {
    /// One `shared` service on the embedded store in its own volume.
    Single,
    /// `shared-1` … `shared-N` on one PostgreSQL database, the `postgres` service.
    Replicas { count: u16, postgres_image: String },
}

/// An image reference that is safe to put in YAML unquoted or quoted.
fn image_ok(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

impl ComposeOptions {
    pub fn new(domain: &str, image: &str) -> anyhow::Result<Self> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        // `<63-char tenant>.connect.<domain>` must stay within DNS's 253 characters.
        if domain.len() > MAX_DOMAIN_CHARS || !domain.split('.').all(label_ok) {
            bail!(
                "--domain `{domain}` is not a host name such as studio.example (no scheme, no port)"
            );
        }
        if !image_ok(image) {
            bail!("--image `{image}` is not an image reference such as studio-mcp:latest");
        }
        Ok(Self {
            domain,
            image: image.to_owned(),
            shared: SharedDeployment::Single,
        })
    }

    /// The shared server as `replicas` replicas on PostgreSQL from `postgres_image`.
    pub fn with_postgres(self, replicas: u16, postgres_image: &str) -> anyhow::Result<Self> {
        if !(1..=MAX_SHARED_REPLICAS).contains(&replicas) {
            bail!("--shared-replicas must be between 1 and {MAX_SHARED_REPLICAS}, not {replicas}");
        }
        if !image_ok(postgres_image) {
            bail!(
                "--postgres-image `{postgres_image}` is not an image reference such as \
                 {DEFAULT_POSTGRES_IMAGE}"
            );
        }
        Ok(Self {
            shared: SharedDeployment::Replicas {
                count: replicas,
                postgres_image: postgres_image.to_owned(),
            },
            ..self
        })
    }

    /// The options the command line asks for, or why they cannot work together.
    pub fn from_args(args: &ComposeArgs) -> anyhow::Result<Self> {
        let options = Self::new(&args.domain, &args.image)?;
        let replicas = args.shared_replicas.unwrap_or(1);
        if args.postgres {
            let image = args
                .postgres_image
                .as_deref()
                .unwrap_or(DEFAULT_POSTGRES_IMAGE);
            return options.with_postgres(replicas, image);
        }
        if replicas > 1 {
            bail!(
                "--shared-replicas {replicas} needs --postgres: replicas need the shared store \
                 (the embedded one belongs to a single process, so each replica would see only \
                 its own tenants and tokens)"
            );
        }
        if replicas == 0 {
            bail!("--shared-replicas must be at least 1");
        }
        if args.postgres_image.is_some() {
            bail!("--postgres-image needs --postgres");
        }
        Ok(options)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn shared(&self) -> &SharedDeployment {
        &self.shared
    }

    /// The shared server's service names: `shared`, or `shared-1` … `shared-N`.
    pub fn shared_services(&self) -> Vec<String> {
        match &self.shared {
            SharedDeployment::Single => vec![SHARED.to_owned()],
            SharedDeployment::Replicas { count, .. } => {
                (1..=*count).map(|k| format!("{SHARED}-{k}")).collect()
            }
        }
    }
}

impl Default for ComposeOptions {
    fn default() -> Self {
        Self {
            domain: DEFAULT_DOMAIN.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            shared: SharedDeployment::Single,
        }
    }
}

/// One file of the deployment, relative to the output folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: Contents,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Rewritten on every run (mode 0644, or 0755 when executable).
    Text { text: String, executable: bool },
    /// A credential placeholder: written once (mode 0600), then the operator's.
    Placeholder(String),
    /// A fresh random master key, written once (mode 0600) and never replaced: replacing it
    /// would make every secret sealed with it unreadable.
    MasterKey,
    /// Another random secret the shared replicas (and PostgreSQL) read: written once (mode
    /// 0600), then checked and kept.
    Secret(RandomSecret),
}

/// The secrets every shared replica is given besides the master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomSecret {
    /// The token signing key: 64 hex characters (32 random bytes).
    SigningKey,
    /// The admin API's token: `adm_` and 64 hex characters.
    AdminToken,
    /// The `studio_mcp` database role's password: 64 hex characters.
    DatabasePassword,
}

impl RandomSecret {
    fn generate(self) -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let hex = hex::encode(raw);
        match self {
            Self::AdminToken => format!("adm_{hex}"),
            Self::SigningKey | Self::DatabasePassword => hex,
        }
    }

    /// Whether a file the operator already has holds what the server accepts (the checks of
    /// `TokenAuthority::load_or_generate` and of the admin token at start-up).
    fn accepts(self, text: &str) -> bool {
        let text = text.trim();
        let printable = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        match self {
            Self::SigningKey => hex::decode(text).is_ok_and(|k| k.len() >= MIN_SIGNING_KEY_BYTES),
            Self::AdminToken => printable && text.len() >= MIN_ADMIN_TOKEN_CHARS,
            Self::DatabasePassword => printable,
        }
    }

    /// Why a file was refused, and what to do: never its contents.
    fn refusal(self) -> &'static str {
        match self {
            Self::SigningKey => {
                "must hold at least 64 hex characters; delete it to have a new one generated \
                 (every issued token then stops working)"
            }
            Self::AdminToken => {
                "must hold at least 32 printable characters without spaces; delete it to have a \
                 new one generated"
            }
            Self::DatabasePassword => {
                "must hold a password of printable characters without spaces (the one the \
                 database was created with: PostgreSQL keeps its first password)"
            }
        }
    }
}

/// 32-bit FNV-1a: tiny, stable across releases and platforms (unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The host loopback port of each tenant's isolated admin API. A tenant's port depends on its
/// id alone unless another tenant's id hashes to it; collisions are settled in creation order
/// (then id), so a tenant added later never moves the port of one that is already deployed.
pub fn admin_ports(tenants: &[Tenant]) -> anyhow::Result<BTreeMap<TenantId, u16>> {
    let mut by_age: Vec<&Tenant> = tenants.iter().collect();
    by_age.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut taken = BTreeSet::new();
    let mut ports = BTreeMap::new();
    for tenant in by_age {
        // Lossless: the remainder is below ADMIN_PORT_SPAN.
        let start = (fnv1a(tenant.id.as_str().as_bytes()) % u32::from(ADMIN_PORT_SPAN)) as u16;
        let offset = (0..ADMIN_PORT_SPAN)
            .map(|i| (start + i) % ADMIN_PORT_SPAN)
            .find(|o| !taken.contains(o))
            .with_context(|| {
                format!("more than {ADMIN_PORT_SPAN} tenants: no admin port left for the isolated instances")
            })?;
        taken.insert(offset);
        ports.insert(tenant.id.clone(), ADMIN_PORT_BASE + offset);
    }
    Ok(ports)
}

/// Renders the whole deployment. Pure: same tenants and options, same files, byte for byte.
pub fn render(tenants: &[Tenant], options: &ComposeOptions) -> anyhow::Result<Vec<GeneratedFile>> {
    let mut sorted: Vec<&Tenant> = tenants.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(pair) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
        bail!("tenant `{}` is listed twice", pair[0].id);
    }
    if sorted.iter().any(|t| t.id.as_str() == SHARED) {
        bail!(
            "a tenant named `{SHARED}` would share the shared server's secret names and folder; \
             rename the tenant"
        );
    }
    if *options.shared() != SharedDeployment::Single
        && sorted.iter().any(|t| t.id.as_str() == "postgres-password")
    {
        bail!(
            "a tenant named `postgres-password` would need secrets/postgres-password, the \
             database password's file, as its folder; rename the tenant"
        );
    }
    let ports = admin_ports(tenants)?;
    let ids: Vec<(&TenantId, u16)> = sorted
        .iter()
        .map(|t| (&t.id, ports.get(&t.id).copied().unwrap_or_default()))
        .collect();

    let text = |path: &str, text: String, executable: bool| GeneratedFile {
        path: PathBuf::from(path),
        contents: Contents::Text { text, executable },
    };
    let mut files = vec![
        text("docker-compose.yml", compose_yaml(&ids, options), false),
        // In a folder of its own: compose mounts the folder, so Caddy sees each regenerated file
        // (a single-file mount keeps the file it was started with: the rewrite is a rename).
        text("caddy/Caddyfile", caddyfile(&ids, options), false),
        text("onboard.sh", ONBOARD_SH.to_owned(), true),
        GeneratedFile {
            path: Path::new("secrets").join(SHARED).join("master.key"),
            contents: Contents::MasterKey,
        },
    ];
    if let SharedDeployment::Replicas { .. } = options.shared() {
        for (path, secret) in REPLICA_SECRETS {
            files.push(GeneratedFile {
                path: PathBuf::from(path),
                contents: Contents::Secret(secret),
            });
        }
    }
    for (id, _) in &ids {
        let dir = Path::new("secrets").join(id.as_str());
        files.push(GeneratedFile {
            path: dir.join("master.key"),
            contents: Contents::MasterKey,
        });
        for kind in ISOLATED_CREDENTIALS {
            files.push(GeneratedFile {
                path: dir.join(kind),
                contents: Contents::Placeholder(format!(
                    "{PLACEHOLDER_MARK}: paste the {kind} credential for {id}'s isolated instance \
                     (replace this whole file, then run ./onboard.sh {id})\n"
                )),
            });
        }
    }
    Ok(files)
}

/// The replicas' secret files besides `secrets/shared/master.key`, by path under the output
/// folder; each is also one of [`REPLICA_SECRET_FILES`].
const REPLICA_SECRETS: [(&str, RandomSecret); 3] = [
    ("secrets/shared/signing.key", RandomSecret::SigningKey),
    ("secrets/shared/admin-token", RandomSecret::AdminToken),
    ("secrets/postgres-password", RandomSecret::DatabasePassword),
];

/// Compose secret name and file of everything a replica reads, as `/run/secrets/<name>`.
const REPLICA_SECRET_FILES: [(&str, &str); 4] = [
    ("shared-master-key", "./secrets/shared/master.key"),
    ("shared-signing-key", "./secrets/shared/signing.key"),
    ("shared-admin-token", "./secrets/shared/admin-token"),
    ("postgres-password", "./secrets/postgres-password"),
];

/// A YAML double-quoted scalar. JSON's string syntax is a subset of YAML's.
fn q(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

/// `test:` of a healthcheck: `GET /healthz` on the MCP port, with bash's `/dev/tcp` because the
/// image has no curl. No `$` in it: compose would try to interpolate it.
pub fn healthcheck_test(port: u16) -> String {
    let probe = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 \
         && grep -q '^HTTP/1\\.[01] 200' <&3"
    );
    let argv = ["CMD", "bash", "-c", probe.as_str()];
    format!("[{}]", argv.map(q).join(", "))
}

struct Service<'a> {
    name: String,
    binary: &'a str,
    env: Vec<(&'a str, String)>,
    volume: String,
    secrets: Vec<String>,
    admin_port: u16,
    host_admin_port: u16,
    mcp_port: u16,
    /// Started only once the `postgres` service is healthy.
    needs_postgres: bool,
}

fn service_yaml(s: &Service<'_>, image: &str) -> String {
    let mut out = format!(
        "  {}:\n    image: {}\n    command: [{}, \"serve\"]\n    environment:\n",
        s.name,
        q(image),
        q(s.binary)
    );
    for (key, value) in &s.env {
        out.push_str(&format!("      {key}: {}\n", q(value)));
    }
    out.push_str(&format!(
        "    volumes:\n      - {}\n    secrets:\n",
        q(&format!("{}:/data", s.volume))
    ));
    for secret in &s.secrets {
        out.push_str(&format!("      - {}\n", q(secret)));
    }
    out.push_str(&format!(
        "    ports:\n\
         \x20     # The admin API: on the host's loopback only, never behind Caddy.\n\
         \x20     - {}\n",
        q(&format!("127.0.0.1:{}:{}", s.host_admin_port, s.admin_port))
    ));
    if s.needs_postgres {
        out.push_str("    depends_on:\n      postgres:\n        condition: service_healthy\n");
    }
    out.push_str(&format!(
        "    healthcheck:\n      test: {test}\n      interval: 30s\n\
         \x20     timeout: 5s\n      retries: 3\n      start_period: 10s\n\
         \x20   restart: unless-stopped\n    read_only: true\n    cap_drop: [\"ALL\"]\n\
         \x20   security_opt: [\"no-new-privileges:true\"]\n    logging:\n\
         \x20     driver: json-file\n      options: {{max-size: \"10m\", max-file: \"5\"}}\n\n",
        test = healthcheck_test(s.mcp_port),
    ));
    out
}

/// The database: its data in a volume of its own, its password from a secret file, no port
/// published (only the replicas, on the compose network, reach it). `pg_isready` over TCP, not
/// the socket: the official image's first start runs a socket-only server while it creates
/// the database, and that one must not count as ready.
fn postgres_yaml(image: &str) -> String {
    let probe = [
        "CMD",
        "pg_isready",
        "-h",
        "127.0.0.1",
        "-p",
        &POSTGRES_PORT.to_string(),
        "-U",
        DATABASE,
        "-d",
        DATABASE,
    ]
    .map(q)
    .join(", ");
    format!(
        "  postgres:\n    image: {image}\n    environment:\n      POSTGRES_USER: {db}\n\
         \x20     POSTGRES_DB: {db}\n      POSTGRES_PASSWORD_FILE: \"/run/secrets/postgres-password\"\n\
         \x20   volumes:\n      - \"postgres-data:/var/lib/postgresql/data\"\n\
         \x20   secrets:\n      - \"postgres-password\"\n    healthcheck:\n\
         \x20     test: [{probe}]\n      interval: 5s\n      timeout: 5s\n      retries: 5\n\
         \x20     start_period: 60s\n    restart: unless-stopped\n\
         \x20   security_opt: [\"no-new-privileges:true\"]\n    logging:\n\
         \x20     driver: json-file\n      options: {{max-size: \"10m\", max-file: \"5\"}}\n\n",
        image = q(image),
        db = q(DATABASE),
    )
}

/// A server's listeners (container ports) and the public names Caddy serves them at.
struct Doors {
    mcp_port: u16,
    admin_port: u16,
    connector_port: u16,
    /// The static door's origin, `https://…` without a path.
    public_url: String,
    /// The connector door's URL, `https://…/mcp`.
    connector_url: String,
}

impl Doors {
    fn shared(domain: &str) -> Self {
        Self {
            mcp_port: MCP_PORT,
            admin_port: ADMIN_PORT,
            connector_port: CONNECTOR_PORT,
            public_url: format!("https://{}", shared_host(domain)),
            connector_url: format!("https://{}/mcp", shared_connector_host(domain)),
        }
    }

    fn isolated(id: &TenantId, domain: &str) -> Self {
        Self {
            mcp_port: ISOLATED_MCP_PORT,
            admin_port: ISOLATED_ADMIN_PORT,
            connector_port: ISOLATED_CONNECTOR_PORT,
            public_url: format!("https://{}", isolated_host(id, domain)),
            connector_url: format!("https://{}/mcp", isolated_connector_host(id, domain)),
        }
    }
}

/// The shared server's static door.
fn shared_host(domain: &str) -> String {
    format!("mcp.{domain}")
}

/// The shared server's connector door.
fn shared_connector_host(domain: &str) -> String {
    format!("connect.{domain}")
}

/// A tenant's isolated instance's static door.
fn isolated_host(id: &TenantId, domain: &str) -> String {
    format!("{id}.mcp.{domain}")
}

/// A tenant's isolated instance's connector door: under `connect.<domain>`, so that one
/// wildcard record covers them all and none can be mistaken for a static host (module docs).
fn isolated_connector_host(id: &TenantId, domain: &str) -> String {
    format!("{id}.connect.{domain}")
}

/// The private ranges Docker's networks are drawn from.
const TRUSTED_PROXIES: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

fn common_env<'a>(doors: &Doors, secret: &str) -> Vec<(&'a str, String)> {
    vec![
        ("STUDIO_MCP_DATA_DIR", "/data".to_owned()),
        ("STUDIO_MCP_LISTEN", format!("0.0.0.0:{}", doors.mcp_port)),
        (
            "STUDIO_MCP_ADMIN_LISTEN",
            format!("0.0.0.0:{}", doors.admin_port),
        ),
        ("STUDIO_MCP_PUBLIC_URL", doors.public_url.clone()),
        (
            "STUDIO_MCP_CONNECTOR_LISTEN",
            format!("0.0.0.0:{}", doors.connector_port),
        ),
        ("STUDIO_MCP_CONNECTOR_URL", doors.connector_url.clone()),
        // Only Caddy reaches the services (their ports are not published), from an address on
        // the compose network that Docker picks: its `X-Forwarded-For` names the real client,
        // which the per-source limits of the anonymous endpoints key on.
        ("STUDIO_MCP_TRUSTED_PROXIES", TRUSTED_PROXIES.to_owned()),
        (
            "STUDIO_MCP_MASTER_KEY_FILE",
            format!("/run/secrets/{secret}"),
        ),
        ("STUDIO_MCP_LOG_FORMAT", "json".to_owned()),
    ]
}

fn compose_yaml(tenants: &[(&TenantId, u16)], options: &ComposeOptions) -> String {
    let domain = options.domain();
    let mut out = String::from(
        "# Generated by `shared-server compose` (deploy/generate-compose.sh) from the shared server's\n\
         # tenants: regenerate rather than edit. No secret value is in this file: each service reads\n\
         # its master key from a file under ./secrets/, and upstream credentials are stored encrypted\n\
         # in the services' data volumes (`secret set`, see ./onboard.sh).\n\
         name: studio-mcp\n\nservices:\n",
    );
    let doors = Doors::shared(domain);
    let shared_services = options.shared_services();
    match options.shared() {
        SharedDeployment::Single => {
            let secret = format!("{SHARED}_master_key");
            out.push_str(&service_yaml(
                &Service {
                    name: SHARED.to_owned(),
                    binary: "shared-server",
                    env: common_env(&doors, &secret),
                    volume: format!("{SHARED}-data"),
                    secrets: vec![secret],
                    admin_port: ADMIN_PORT,
                    host_admin_port: ADMIN_PORT,
                    mcp_port: MCP_PORT,
                    needs_postgres: false,
                },
                options.image(),
            ));
        }
        SharedDeployment::Replicas { postgres_image, .. } => {
            out.push_str(
                "  # The shared server's replicas: one store in PostgreSQL (no password in the URL: it is\n\
                 \x20 # read from the secret file), the same key files in each, their own data volumes.\n",
            );
            for (k, name) in (1u16..).zip(&shared_services) {
                let mut env = common_env(&doors, "shared-master-key");
                env.extend([
                    (
                        "STUDIO_MCP_STORE",
                        format!("postgres://{DATABASE}@postgres:{POSTGRES_PORT}/{DATABASE}"),
                    ),
                    (
                        "STUDIO_MCP_STORE_PASSWORD_FILE",
                        "/run/secrets/postgres-password".to_owned(),
                    ),
                    ("STUDIO_MCP_REPLICA_NAME", name.clone()),
                    (
                        "STUDIO_MCP_SIGNING_KEY_FILE",
                        "/run/secrets/shared-signing-key".to_owned(),
                    ),
                    (
                        "STUDIO_MCP_ADMIN_TOKEN_FILE",
                        "/run/secrets/shared-admin-token".to_owned(),
                    ),
                ]);
                out.push_str(&service_yaml(
                    &Service {
                        name: name.clone(),
                        binary: "shared-server",
                        env,
                        volume: format!("{name}-data"),
                        secrets: REPLICA_SECRET_FILES
                            .map(|(secret, _)| secret.to_owned())
                            .to_vec(),
                        admin_port: ADMIN_PORT,
                        host_admin_port: if k == 1 {
                            ADMIN_PORT
                        } else {
                            REPLICA_ADMIN_PORT_BASE + k
                        },
                        mcp_port: MCP_PORT,
                        needs_postgres: true,
                    },
                    options.image(),
                ));
            }
            out.push_str(&postgres_yaml(postgres_image));
        }
    }
    for (id, host_admin_port) in tenants {
        let secret = format!("{id}_master_key");
        let mut env = vec![("STUDIO_MCP_TENANT", id.to_string())];
        env.extend(common_env(&Doors::isolated(id, domain), &secret));
        out.push_str(&service_yaml(
            &Service {
                name: format!("isolated-{id}"),
                binary: "isolated-server",
                env,
                volume: format!("isolated-{id}-data"),
                secrets: vec![secret],
                admin_port: ISOLATED_ADMIN_PORT,
                host_admin_port: *host_admin_port,
                mcp_port: ISOLATED_MCP_PORT,
                needs_postgres: false,
            },
            options.image(),
        ));
    }
    // Caddy depends on the shared server only, so adding a tenant never touches this block; it
    // answers 502 for an instance that is not up yet. `--watch` loads a regenerated Caddyfile
    // (a new tenant's site) in place, without restarting Caddy or dropping the other sites.
    out.push_str(
        "  caddy:\n    image: \"caddy:2\"\n    command: [\"caddy\", \"run\", \"--config\", \
         \"/etc/caddy/Caddyfile\", \"--adapter\", \"caddyfile\", \"--watch\"]\n    ports:\n\
         \x20     - \"80:80\"\n      - \"443:443\"\n      - \"443:443/udp\"\n    volumes:\n\
         \x20     - \"./caddy:/etc/caddy:ro\"\n      - \"caddy-data:/data\"\n\
         \x20     - \"caddy-config:/config\"\n    depends_on:\n",
    );
    for name in &shared_services {
        out.push_str(&format!("      - {name}\n"));
    }
    out.push_str("    restart: unless-stopped\n\n");
    out.push_str("volumes:\n  caddy-config: {}\n  caddy-data: {}\n");
    for (id, _) in tenants {
        out.push_str(&format!("  isolated-{id}-data: {{}}\n"));
    }
    if let SharedDeployment::Replicas { .. } = options.shared() {
        out.push_str("  postgres-data: {}\n");
    }
    for name in &shared_services {
        out.push_str(&format!("  {name}-data: {{}}\n"));
    }
    out.push_str("\nsecrets:\n");
    match options.shared() {
        SharedDeployment::Single => out.push_str(&format!(
            "  {SHARED}_master_key:\n    file: ./secrets/{SHARED}/master.key\n"
        )),
        SharedDeployment::Replicas { .. } => {
            for (secret, file) in REPLICA_SECRET_FILES {
                out.push_str(&format!("  {secret}:\n    file: {file}\n"));
            }
        }
    }
    for (id, _) in tenants {
        out.push_str(&format!(
            "  {id}_master_key:\n    file: ./secrets/{id}/master.key\n"
        ));
    }
    out
}

fn caddyfile(tenants: &[(&TenantId, u16)], options: &ComposeOptions) -> String {
    let domain = options.domain();
    let mut sites = Vec::new();
    for (host, port) in [
        (shared_host(domain), MCP_PORT),
        (shared_connector_host(domain), CONNECTOR_PORT),
    ] {
        sites.push(match options.shared() {
            SharedDeployment::Single => proxy_site(&host, &format!("{SHARED}:{port}")),
            SharedDeployment::Replicas { .. } => {
                let upstreams: Vec<String> = options
                    .shared_services()
                    .iter()
                    .map(|name| format!("{name}:{port}"))
                    .collect();
                balanced_site(&host, &upstreams)
            }
        });
    }
    // A tenant's two sites side by side: adding a tenant adds one contiguous block.
    for (id, _) in tenants {
        let service = format!("isolated-{id}");
        sites.push(proxy_site(
            &isolated_host(id, domain),
            &format!("{service}:{ISOLATED_MCP_PORT}"),
        ));
        sites.push(proxy_site(
            &isolated_connector_host(id, domain),
            &format!("{service}:{ISOLATED_CONNECTOR_PORT}"),
        ));
    }
    format!(
        "# Generated by `shared-server compose`: regenerate rather than edit.\n\
         # Each server has two doors, each a site of its own with automatic HTTPS: the static door\n\
         # (bearer tokens) at mcp.<domain> and <tenant>.mcp.<domain>, the connector door (OAuth,\n\
         # sign-in, invite, consent and approval pages) at connect.<domain> and\n\
         # <tenant>.connect.<domain> (one wildcard DNS record, *.connect.<domain>, covers every\n\
         # tenant's). The admin APIs (8788, 8791) are never proxied.\n\n{}",
        sites.join("\n")
    )
}

/// A site with a host name: Caddy's automatic HTTPS, then `upstream`.
fn proxy_site(host: &str, upstream: &str) -> String {
    format!("{host} {{\n\treverse_proxy {upstream}\n}}\n")
}

/// [`proxy_site`] across the shared server's replicas. Active checks take a replica out while
/// its /healthz is not 200 (503 `unavailable`: cut off from PostgreSQL for longer than its
/// lease, so it may have missed a revocation); a replica that refuses connections (stopped,
/// restarting) is marked down for fail_duration, and the request is tried on the next one
/// meanwhile. (Caddy releases without caddyserver/caddy#7547, Debian's 2.6 among them, lose a
/// POST body on that retry: there only the health checks, every 3 s, keep requests off a
/// stopped replica.) The connector door is balanced the same way: every step of a connector
/// flow (sessions, consent, codes, tokens) lives in the shared store and passkey ceremonies
/// travel sealed under the shared master key, so its requests need not stick to one replica.
fn balanced_site(host: &str, upstreams: &[String]) -> String {
    format!(
        "{host} {{\n\
         \t# Round robin over the replicas; one failing /healthz or refusing connections is skipped.\n\
         \treverse_proxy {} {{\n\
         \t\tlb_policy round_robin\n\t\tlb_try_duration 5s\n\t\tlb_try_interval 250ms\n\
         \t\tfail_duration 10s\n\
         \t\thealth_uri /healthz\n\t\thealth_interval 3s\n\t\thealth_timeout 2s\n\
         \t\thealth_status 200\n\t}}\n}}\n",
        upstreams.join(" ")
    )
}

/// Feeds one isolated instance from `secrets/<tenant>/`; the same for every tenant.
const ONBOARD_SH: &str = r#"#!/usr/bin/env bash
# Generated by `shared-server compose`. Sets up one tenant's isolated instance:
#   ./onboard.sh <tenant> [isolated-server tenant set options]
# With options (--name, --webflow-site, --custom-domain, --dns-zone, --dns-name,
# --stripe-customer) it first sets the tenant record. Then it stores each credential file in
# secrets/<tenant>/ (webflow, cloudflare, stripe) that is no longer a placeholder, encrypted in
# the instance's data volume (`isolated-server secret set`). Run it again after filling in more.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tenant=${1:-}
if [[ ! $tenant =~ ^[a-z0-9][a-z0-9-]*$ || ! -d secrets/$tenant ]]; then
  echo "usage: ./onboard.sh <tenant> [isolated-server tenant set options]" >&2
  echo "(the tenant must have a folder under secrets/: regenerate after adding it)" >&2
  exit 2
fi
shift
service=isolated-$tenant
admin() { docker compose exec -T "$service" isolated-server --admin-url http://127.0.0.1:8791 "$@"; }
if (($#)); then
  admin tenant set "$@" >/dev/null
  echo "set the tenant record of $service" >&2
fi
for kind in webflow cloudflare stripe; do
  file=secrets/$tenant/$kind
  if [[ ! -s $file ]] || grep -q '^REPLACE_ME' "$file"; then
    echo "skipped $kind: $file is still a placeholder" >&2
    continue
  fi
  admin secret set "$tenant" "$kind" <"$file"
done
echo "to issue a token: docker compose exec $service isolated-server --admin-url http://127.0.0.1:8791 token issue $tenant --label <who>" >&2
echo "to invite a person (connectors, approvals): docker compose exec $service isolated-server --admin-url http://127.0.0.1:8791 person invite $tenant --name <name> [--role approver]" >&2
"#;

/// What [`write`] did.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Written or rewritten this time.
    pub written: Vec<PathBuf>,
    /// Operator files left as they were.
    pub kept: Vec<PathBuf>,
    /// Keys and secrets that could not be handed to the container user (not running as root).
    pub not_chowned: Vec<PathBuf>,
}

/// Writes the rendered files under `out_dir`: generated files are replaced, files under
/// `secrets/` are created only when missing (and an existing key or secret must be valid).
pub fn write(out_dir: &Path, files: &[GeneratedFile]) -> anyhow::Result<WriteReport> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let mut report = WriteReport::default();
    for file in files {
        let path = out_dir.join(&file.path);
        let parent = path.parent().unwrap_or(out_dir);
        let private = !matches!(file.contents, Contents::Text { .. });
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if private { 0o700 } else { 0o755 })
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let exists = path.symlink_metadata().is_ok();
        match &file.contents {
            Contents::Text { text, executable } => {
                // Through a temporary file, so a reader never sees half a compose file.
                let tmp = path.with_extension("tmp~");
                std::fs::write(&tmp, text)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
            }
            Contents::Placeholder(_) if exists => report.kept.push(file.path.clone()),
            Contents::Placeholder(text) => {
                write_private_file(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
            }
            Contents::MasterKey => {
                // Creates a key when missing; refuses a file that is not one.
                let (_, generated) = MasterKey::load_or_generate(&path)?;
                if generated {
                    report.written.push(file.path.clone());
                } else {
                    report.kept.push(file.path.clone());
                }
                hand_to_container(&path, &file.path, &mut report);
            }
            Contents::Secret(secret) if exists => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if !secret.accepts(&text) {
                    bail!("{} {}", path.display(), secret.refusal());
                }
                report.kept.push(file.path.clone());
                hand_to_container(&path, &file.path, &mut report);
            }
            Contents::Secret(secret) => {
                write_private_file(&path, secret.generate().as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
                hand_to_container(&path, &file.path, &mut report);
            }
        }
    }
    Ok(report)
}

/// Compose mounts a secret file with its host owner and mode (0600), so the server, running as
/// [`CONTAINER_UID`], can read it only if it owns it. (PostgreSQL's entrypoint reads its
/// password file as root, before it drops to its own user.)
fn hand_to_container(path: &Path, shown: &Path, report: &mut WriteReport) {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path).map(|m| m.uid()).ok();
    if owner != Some(CONTAINER_UID)
        && std::os::unix::fs::chown(path, Some(CONTAINER_UID), Some(CONTAINER_UID)).is_err()
    {
        report.not_chowned.push(shown.to_owned());
    }
}

/// A folder rendered for replicas must not silently go back to one server on the embedded
/// store, which would start empty while the tenants stay in PostgreSQL.
fn check_same_deployment(out_dir: &Path, options: &ComposeOptions) -> anyhow::Result<()> {
    let rendered_for_postgres = out_dir.join("secrets").join("postgres-password").exists();
    if rendered_for_postgres && *options.shared() == SharedDeployment::Single {
        bail!(
            "{} runs the shared server on PostgreSQL (it has secrets/postgres-password): \
             regenerate with --shared-replicas N --postgres as before",
            out_dir.display()
        );
    }
    Ok(())
}

/// What `shared-server compose` prints once it has written the folder: no secret value, only
/// paths and counts.
pub fn summary(
    out_dir: &Path,
    options: &ComposeOptions,
    tenants: usize,
    report: &WriteReport,
) -> String {
    let out = out_dir.display();
    let domain = options.domain();
    let (written, kept) = (report.written.len(), report.kept.len());
    let mut lines = Vec::new();
    match options.shared() {
        SharedDeployment::Single => {
            lines.push(format!(
                "wrote {out}: the shared server and {tenants} isolated instance(s) at mcp.{domain} \
                 and connect.{domain} ({written} file(s) written, {kept} kept)"
            ));
            if !report.not_chowned.is_empty() {
                lines.push(format!(
                    "the containers run as uid {CONTAINER_UID}; let them read their master keys:\n  \
                     sudo chown {CONTAINER_UID}:{CONTAINER_UID} {out}/secrets/*/master.key"
                ));
            }
        }
        SharedDeployment::Replicas {
            count,
            postgres_image,
        } => {
            lines.push(format!(
                "wrote {out}: the shared server as {count} replica(s) (shared-1 … shared-{count}, \
                 balanced by Caddy) on PostgreSQL ({postgres_image}), and {tenants} isolated \
                 instance(s) at mcp.{domain} and connect.{domain} ({written} file(s) written, \
                 {kept} kept)"
            ));
            lines.push(format!(
                "every replica reads the same secrets/shared/{{master.key,signing.key,admin-token}} \
                 and secrets/postgres-password; keep them: replicas refuse keys other than the ones \
                 the database first saw. The admin API is shared-1's, on 127.0.0.1:{ADMIN_PORT}"
            ));
            if !report.not_chowned.is_empty() {
                let files: Vec<String> = report
                    .not_chowned
                    .iter()
                    .map(|p| format!("{out}/{}", p.display()))
                    .collect();
                lines.push(format!(
                    "the containers run as uid {CONTAINER_UID}; let them read their keys:\n  \
                     sudo chown {CONTAINER_UID}:{CONTAINER_UID} {}",
                    files.join(" ")
                ));
            }
        }
    }
    lines.push(format!(
        "DNS: mcp.{domain}, *.mcp.{domain}, connect.{domain} and *.connect.{domain} name this \
         host (static doors at mcp.{domain} and <tenant>.mcp.{domain}; connector doors, the URLs \
         people add to claude.ai or ChatGPT, at https://connect.{domain}/mcp and \
         https://<tenant>.connect.{domain}/mcp)"
    ));
    if tenants > 0 {
        lines.push(format!(
            "next: fill in {out}/secrets/<tenant>/{{webflow,cloudflare,stripe}}, `docker compose up -d` \
             in {out}, then {out}/onboard.sh <tenant> --name … --webflow-site …"
        ));
    }
    lines.join("\n")
}

/// `shared-server compose`: tenants from the admin API, rendered and written.
pub async fn run(client: &AdminClient, args: &ComposeArgs) -> anyhow::Result<()> {
    let options = ComposeOptions::from_args(args)?;
    check_same_deployment(&args.out_dir, &options)?;
    let tenants = if args.no_tenants {
        Vec::new()
    } else {
        client.tenants().await?
    };
    let files = render(&tenants, &options)?;
    let report = write(&args.out_dir, &files)?;
    eprintln!(
        "{}",
        summary(&args.out_dir, &options, tenants.len(), &report)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn options_refuse_what_would_break_yaml_or_caddy() {
        assert!(ComposeOptions::new("studio.example", "studio-mcp:1.2").is_ok());
        assert_eq!(
            ComposeOptions::new("Studio.Example.", "x")
                .unwrap()
                .domain(),
            "studio.example"
        );
        for domain in [
            "https://studio.example",
            "studio.example:443",
            "a..b",
            "-a.b",
            "a b",
            "",
        ] {
            assert!(ComposeOptions::new(domain, "x").is_err(), "{domain}");
        }
        for image in ["", "studio mcp", "x\n  evil: 1", "x\"y"] {
            assert!(
                ComposeOptions::new("studio.example", image).is_err(),
                "{image:?}"
            );
        }
    }

    fn acme() -> Tenant {
        tenant("acme")
    }

    fn tenant(id: &str) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "name": format!("{id} Inc"),
            "webflow_sites": ["0123456789abcdef01234567"],
            "toolsets": ["webflow"],
            "created_at": 1,
        }))
        .unwrap()
    }

    fn text_of(files: &[GeneratedFile], path: &str) -> String {
        match files.iter().find(|f| f.path == Path::new(path)) {
            Some(GeneratedFile {
                contents: Contents::Text { text, .. },
                ..
            }) => text.clone(),
            other => panic!("{path}: {other:?}"),
        }
    }

    /// `shared-server compose OUT <flags>` as clap parses it.
    fn args(flags: &[&str]) -> ComposeArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            compose: ComposeArgs,
        }
        let argv = ["compose", "/tmp/out"].iter().chain(flags);
        Cli::try_parse_from(argv).unwrap().compose
    }

    fn replicated(n: u16) -> ComposeOptions {
        ComposeOptions::from_args(&args(&["--shared-replicas", &n.to_string(), "--postgres"]))
            .unwrap()
    }

    /// The lines of one service's block (`  name:` up to the next entry), indent kept.
    fn service<'a>(yaml: &'a str, name: &str) -> Vec<&'a str> {
        let open = format!("  {name}:");
        let mut lines = yaml.lines().skip_while(|l| *l != open);
        assert_eq!(lines.next(), Some(open.as_str()), "no service {name}");
        lines
            .take_while(|l| l.starts_with("   ") || l.is_empty())
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn has(block: &[&str], line: &str) -> bool {
        block.iter().any(|l| l.trim() == line)
    }

    /// A fresh folder under the system's temporary directory, removed by `Drop`.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("studio-mcp-compose-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What `shared-server compose` renders without the replica flags, byte for byte: the
    /// flags must not change it (it changed once since, for the connector doors).
    const SINGLE_COMPOSE: &str = r##"# Generated by `shared-server compose` (deploy/generate-compose.sh) from the shared server's
# tenants: regenerate rather than edit. No secret value is in this file: each service reads
# its master key from a file under ./secrets/, and upstream credentials are stored encrypted
# in the services' data volumes (`secret set`, see ./onboard.sh).
name: studio-mcp

services:
  shared:
    image: "studio-mcp:latest"
    command: ["shared-server", "serve"]
    environment:
      STUDIO_MCP_DATA_DIR: "/data"
      STUDIO_MCP_LISTEN: "0.0.0.0:8787"
      STUDIO_MCP_ADMIN_LISTEN: "0.0.0.0:8788"
      STUDIO_MCP_PUBLIC_URL: "https://mcp.localhost"
      STUDIO_MCP_CONNECTOR_LISTEN: "0.0.0.0:8789"
      STUDIO_MCP_CONNECTOR_URL: "https://connect.localhost/mcp"
      STUDIO_MCP_TRUSTED_PROXIES: "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
      STUDIO_MCP_MASTER_KEY_FILE: "/run/secrets/shared_master_key"
      STUDIO_MCP_LOG_FORMAT: "json"
    volumes:
      - "shared-data:/data"
    secrets:
      - "shared_master_key"
    ports:
      # The admin API: on the host's loopback only, never behind Caddy.
      - "127.0.0.1:8788:8788"
    healthcheck:
      test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8787 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^HTTP/1\\.[01] 200' <&3"]
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 10s
    restart: unless-stopped
    read_only: true
    cap_drop: ["ALL"]
    security_opt: ["no-new-privileges:true"]
    logging:
      driver: json-file
      options: {max-size: "10m", max-file: "5"}

  isolated-acme:
    image: "studio-mcp:latest"
    command: ["isolated-server", "serve"]
    environment:
      STUDIO_MCP_TENANT: "acme"
      STUDIO_MCP_DATA_DIR: "/data"
      STUDIO_MCP_LISTEN: "0.0.0.0:8790"
      STUDIO_MCP_ADMIN_LISTEN: "0.0.0.0:8791"
      STUDIO_MCP_PUBLIC_URL: "https://acme.mcp.localhost"
      STUDIO_MCP_CONNECTOR_LISTEN: "0.0.0.0:8792"
      STUDIO_MCP_CONNECTOR_URL: "https://acme.connect.localhost/mcp"
      STUDIO_MCP_TRUSTED_PROXIES: "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
      STUDIO_MCP_MASTER_KEY_FILE: "/run/secrets/acme_master_key"
      STUDIO_MCP_LOG_FORMAT: "json"
    volumes:
      - "isolated-acme-data:/data"
    secrets:
      - "acme_master_key"
    ports:
      # The admin API: on the host's loopback only, never behind Caddy.
      - "127.0.0.1:27615:8791"
    healthcheck:
      test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8790 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^HTTP/1\\.[01] 200' <&3"]
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 10s
    restart: unless-stopped
    read_only: true
    cap_drop: ["ALL"]
    security_opt: ["no-new-privileges:true"]
    logging:
      driver: json-file
      options: {max-size: "10m", max-file: "5"}

  caddy:
    image: "caddy:2"
    command: ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile", "--watch"]
    ports:
      - "80:80"
      - "443:443"
      - "443:443/udp"
    volumes:
      - "./caddy:/etc/caddy:ro"
      - "caddy-data:/data"
      - "caddy-config:/config"
    depends_on:
      - shared
    restart: unless-stopped

volumes:
  caddy-config: {}
  caddy-data: {}
  isolated-acme-data: {}
  shared-data: {}

secrets:
  shared_master_key:
    file: ./secrets/shared/master.key
  acme_master_key:
    file: ./secrets/acme/master.key
"##;
    const SINGLE_CADDYFILE: &str = r##"# Generated by `shared-server compose`: regenerate rather than edit.
# Each server has two doors, each a site of its own with automatic HTTPS: the static door
# (bearer tokens) at mcp.<domain> and <tenant>.mcp.<domain>, the connector door (OAuth,
# sign-in, invite, consent and approval pages) at connect.<domain> and
# <tenant>.connect.<domain> (one wildcard DNS record, *.connect.<domain>, covers every
# tenant's). The admin APIs (8788, 8791) are never proxied.

mcp.localhost {
	reverse_proxy shared:8787
}

connect.localhost {
	reverse_proxy shared:8789
}

acme.mcp.localhost {
	reverse_proxy isolated-acme:8790
}

acme.connect.localhost {
	reverse_proxy isolated-acme:8792
}
"##;

    #[test]
    fn without_the_new_flags_the_output_is_what_it_was() {
        for flags in [&[][..], &["--shared-replicas", "1"]] {
            let options = ComposeOptions::from_args(&args(flags)).unwrap();
            assert_eq!(*options.shared(), SharedDeployment::Single, "{flags:?}");
            let files = render(&[acme()], &options).unwrap();
            assert_eq!(text_of(&files, "docker-compose.yml"), SINGLE_COMPOSE);
            assert_eq!(text_of(&files, "caddy/Caddyfile"), SINGLE_CADDYFILE);
            let paths: Vec<_> = files.iter().map(|f| f.path.display().to_string()).collect();
            assert_eq!(
                paths,
                [
                    "docker-compose.yml",
                    "caddy/Caddyfile",
                    "onboard.sh",
                    "secrets/shared/master.key",
                    "secrets/acme/master.key",
                    "secrets/acme/webflow",
                    "secrets/acme/cloudflare",
                    "secrets/acme/stripe",
                ]
            );
        }
    }

    #[test]
    fn replicas_without_postgres_and_odd_values_are_refused() {
        let err = ComposeOptions::from_args(&args(&["--shared-replicas", "2"])).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("--postgres") && message.contains("shared store"),
            "{message}"
        );
        for flags in [
            &["--shared-replicas", "0", "--postgres"][..],
            &["--shared-replicas", "0"],
            &["--shared-replicas", "17", "--postgres"],
            &["--postgres-image", "postgres:17"],
            &["--postgres", "--postgres-image", "postgres 16"],
            &["--postgres", "--postgres-image", "x\n  evil: 1"],
        ] {
            assert!(
                ComposeOptions::from_args(&args(flags)).is_err(),
                "{flags:?}"
            );
        }
        // A tenant whose secrets folder would be the database password's file.
        let clash = [tenant("postgres-password")];
        let err = render(&clash, &replicated(2)).unwrap_err();
        assert!(err.to_string().contains("postgres-password"), "{err}");
        assert!(render(&clash, &ComposeOptions::default()).is_ok());
        // --postgres alone: one replica on PostgreSQL.
        let one = ComposeOptions::from_args(&args(&["--postgres"])).unwrap();
        assert_eq!(one.shared_services(), ["shared-1"]);
        let custom = ComposeOptions::from_args(&args(&[
            "--postgres",
            "--shared-replicas",
            "2",
            "--postgres-image",
            "registry.example/postgres:16.4",
        ]))
        .unwrap();
        assert_eq!(
            *custom.shared(),
            SharedDeployment::Replicas {
                count: 2,
                postgres_image: "registry.example/postgres:16.4".into()
            }
        );
    }

    #[test]
    fn replicas_share_the_store_and_the_same_key_files() {
        let files = render(&[acme()], &replicated(3)).unwrap();
        let yaml = text_of(&files, "docker-compose.yml");
        assert!(!yaml.contains("\n  shared:\n"), "no single shared service");
        let mut host_ports = BTreeSet::new();
        for k in 1..=3 {
            let name = format!("shared-{k}");
            let block = service(&yaml, &name);
            for line in [
                r#"image: "studio-mcp:latest""#.to_owned(),
                r#"command: ["shared-server", "serve"]"#.to_owned(),
                r#"STUDIO_MCP_DATA_DIR: "/data""#.to_owned(),
                r#"STUDIO_MCP_LISTEN: "0.0.0.0:8787""#.to_owned(),
                r#"STUDIO_MCP_ADMIN_LISTEN: "0.0.0.0:8788""#.to_owned(),
                r#"STUDIO_MCP_PUBLIC_URL: "https://mcp.localhost""#.to_owned(),
                r#"STUDIO_MCP_CONNECTOR_LISTEN: "0.0.0.0:8789""#.to_owned(),
                r#"STUDIO_MCP_CONNECTOR_URL: "https://connect.localhost/mcp""#.to_owned(),
                r#"STUDIO_MCP_LOG_FORMAT: "json""#.to_owned(),
                r#"STUDIO_MCP_STORE: "postgres://studio_mcp@postgres:5432/studio_mcp""#.to_owned(),
                r#"STUDIO_MCP_STORE_PASSWORD_FILE: "/run/secrets/postgres-password""#.to_owned(),
                format!(r#"STUDIO_MCP_REPLICA_NAME: "{name}""#),
                r#"STUDIO_MCP_SIGNING_KEY_FILE: "/run/secrets/shared-signing-key""#.to_owned(),
                r#"STUDIO_MCP_MASTER_KEY_FILE: "/run/secrets/shared-master-key""#.to_owned(),
                r#"STUDIO_MCP_ADMIN_TOKEN_FILE: "/run/secrets/shared-admin-token""#.to_owned(),
                format!(r#"- "{name}-data:/data""#),
                r#"- "shared-master-key""#.to_owned(),
                r#"- "shared-signing-key""#.to_owned(),
                r#"- "shared-admin-token""#.to_owned(),
                r#"- "postgres-password""#.to_owned(),
                "depends_on:".to_owned(),
                "postgres:".to_owned(),
                "condition: service_healthy".to_owned(),
                "healthcheck:".to_owned(),
                format!("test: {}", healthcheck_test(MCP_PORT)),
                "restart: unless-stopped".to_owned(),
                "read_only: true".to_owned(),
            ] {
                assert!(has(&block, &line), "{name} lacks {line}: {block:#?}");
            }
            // The database password never rides in the URL.
            assert!(
                !block.iter().any(|l| l.contains("studio_mcp:")),
                "{block:#?}"
            );
            let port = block
                .iter()
                .find_map(|l| l.trim().strip_prefix("- \"127.0.0.1:"))
                .unwrap();
            assert!(port.ends_with(":8788\""), "{port}");
            assert!(host_ports.insert(port.to_owned()), "{port} twice");
        }
        assert!(host_ports.contains("8788:8788\""), "shared-1 keeps 8788");
        // Secrets: declared once each, from files under secrets/.
        let secrets = yaml.split("\nsecrets:\n").nth(1).unwrap();
        for line in [
            "  shared-master-key:\n    file: ./secrets/shared/master.key\n",
            "  shared-signing-key:\n    file: ./secrets/shared/signing.key\n",
            "  shared-admin-token:\n    file: ./secrets/shared/admin-token\n",
            "  postgres-password:\n    file: ./secrets/postgres-password\n",
            "  acme_master_key:\n    file: ./secrets/acme/master.key\n",
        ] {
            assert_eq!(secrets.matches(line).count(), 1, "{line}");
        }
        let volumes = yaml
            .split("\nvolumes:\n")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        assert_eq!(
            volumes,
            "  caddy-config: {}\n  caddy-data: {}\n  isolated-acme-data: {}\n  postgres-data: {}\n  \
             shared-1-data: {}\n  shared-2-data: {}\n  shared-3-data: {}"
        );
        // The isolated instance is as it was; Caddy waits for every replica.
        let isolated = service(&yaml, "isolated-acme");
        assert!(has(&isolated, r#"- "acme_master_key""#));
        assert!(
            !isolated
                .iter()
                .any(|l| l.contains("postgres") || l.contains("shared"))
        );
        let caddy = service(&yaml, "caddy");
        for k in 1..=3 {
            assert!(has(&caddy, &format!("- shared-{k}")), "{caddy:#?}");
        }
        assert!(!has(&caddy, "- shared"));
        // The secret files the replicas read, besides each tenant's.
        let secret_files: Vec<_> = files
            .iter()
            .filter(|f| matches!(f.contents, Contents::Secret(_) | Contents::MasterKey))
            .map(|f| f.path.display().to_string())
            .collect();
        assert_eq!(
            secret_files,
            [
                "secrets/shared/master.key",
                "secrets/shared/signing.key",
                "secrets/shared/admin-token",
                "secrets/postgres-password",
                "secrets/acme/master.key",
            ]
        );
    }

    #[test]
    fn the_database_is_a_service_with_its_volume_secret_and_healthcheck() {
        let options = ComposeOptions::from_args(&args(&[
            "--shared-replicas",
            "2",
            "--postgres",
            "--postgres-image",
            "registry.example/postgres:16.4",
        ]))
        .unwrap();
        let yaml = text_of(&render(&[], &options).unwrap(), "docker-compose.yml");
        let block = service(&yaml, "postgres");
        for line in [
            r#"image: "registry.example/postgres:16.4""#,
            r#"POSTGRES_USER: "studio_mcp""#,
            r#"POSTGRES_DB: "studio_mcp""#,
            r#"POSTGRES_PASSWORD_FILE: "/run/secrets/postgres-password""#,
            r#"- "postgres-data:/var/lib/postgresql/data""#,
            r#"- "postgres-password""#,
            r#"test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "studio_mcp", "-d", "studio_mcp"]"#,
            "restart: unless-stopped",
        ] {
            assert!(has(&block, line), "postgres lacks {line}: {block:#?}");
        }
        assert!(
            !block.iter().any(|l| l.contains("ports:")),
            "never published"
        );
        assert!(
            !block.iter().any(|l| l.contains("POSTGRES_PASSWORD:")),
            "from the file only"
        );
        // Exactly the replicas wait for it.
        assert_eq!(yaml.matches("condition: service_healthy").count(), 2);
    }

    #[test]
    fn caddy_balances_across_the_replicas_and_keeps_the_other_sites() {
        let files = render(&[acme()], &replicated(2)).unwrap();
        let caddyfile = text_of(&files, "caddy/Caddyfile");
        // Both doors of the shared server: the same balancing and health checks, each on its
        // own port.
        for (site, port) in [("mcp.localhost", 8787), ("connect.localhost", 8789)] {
            let block = caddyfile
                .split(&format!("\n{site} {{\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("no site {site}: {caddyfile}"))
                .split("\n}\n")
                .next()
                .unwrap();
            let directives: Vec<&str> = block
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .collect();
            let upstreams = format!("reverse_proxy shared-1:{port} shared-2:{port} {{");
            assert_eq!(
                directives,
                [
                    upstreams.as_str(),
                    "lb_policy round_robin",
                    "lb_try_duration 5s",
                    "lb_try_interval 250ms",
                    "fail_duration 10s",
                    "health_uri /healthz",
                    "health_interval 3s",
                    "health_timeout 2s",
                    "health_status 200",
                    "}",
                ],
                "{site}"
            );
        }
        assert!(caddyfile.ends_with(
            "\nacme.mcp.localhost {\n\treverse_proxy isolated-acme:8790\n}\n\
             \nacme.connect.localhost {\n\treverse_proxy isolated-acme:8792\n}\n"
        ));
        // Braces balance: one block per site, one nested block in each balanced one.
        assert_eq!(
            caddyfile.matches('{').count(),
            caddyfile.matches('}').count()
        );
        assert_eq!(caddyfile.matches(" {\n").count(), 4 + 2);
    }

    #[test]
    fn every_door_has_its_own_host_and_none_can_collide() {
        let tenants = [tenant("acme"), tenant("connect"), tenant("mcp")];
        let options = ComposeOptions::new("studio.example", "x").unwrap();
        let files = render(&tenants, &options).unwrap();
        let caddyfile = text_of(&files, "caddy/Caddyfile");
        let hosts: Vec<&str> = caddyfile
            .lines()
            .filter_map(|l| l.strip_suffix(" {"))
            .collect();
        assert_eq!(
            hosts,
            [
                "mcp.studio.example",
                "connect.studio.example",
                "acme.mcp.studio.example",
                "acme.connect.studio.example",
                "connect.mcp.studio.example",
                "connect.connect.studio.example",
                "mcp.mcp.studio.example",
                "mcp.connect.studio.example",
            ]
        );
        assert_eq!(hosts.iter().collect::<BTreeSet<_>>().len(), hosts.len());
        // Each server's public URLs name its own two hosts, the connector's at exactly /mcp.
        let yaml = text_of(&files, "docker-compose.yml");
        for (name, public, connector) in [
            ("shared", "mcp.studio.example", "connect.studio.example"),
            (
                "isolated-connect",
                "connect.mcp.studio.example",
                "connect.connect.studio.example",
            ),
        ] {
            let block = service(&yaml, name);
            assert!(
                has(
                    &block,
                    &format!(r#"STUDIO_MCP_PUBLIC_URL: "https://{public}""#)
                ),
                "{block:#?}"
            );
            assert!(
                has(
                    &block,
                    &format!(r#"STUDIO_MCP_CONNECTOR_URL: "https://{connector}/mcp""#)
                ),
                "{block:#?}"
            );
        }
        // The longest tenant id on the longest domain still makes a valid host name.
        let mut longest = String::new();
        while longest.len() + 61 < MAX_DOMAIN_CHARS {
            longest.push_str(&"d".repeat(60));
            longest.push('.');
        }
        longest.push_str(&"d".repeat(MAX_DOMAIN_CHARS - longest.len()));
        assert_eq!(longest.len(), MAX_DOMAIN_CHARS);
        assert!(ComposeOptions::new(&longest, "x").is_ok());
        assert!(ComposeOptions::new(&format!("d{longest}"), "x").is_err());
        let host = format!("{}.connect.{longest}", "t".repeat(63));
        assert_eq!(host.len(), 253);
    }

    #[test]
    fn secret_files_are_made_once_never_overwritten_and_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("secrets");
        let out = dir.0.join("deploy");
        let options = replicated(2);
        let files = render(&[acme()], &options).unwrap();
        let first = write(&out, &files).unwrap();
        assert!(first.kept.is_empty());

        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
        let signing = read("secrets/shared/signing.key");
        let admin = read("secrets/shared/admin-token");
        let password = read("secrets/postgres-password");
        let master = read("secrets/shared/master.key");
        assert!(signing.len() == 64 && signing.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(password.len() == 64 && password.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            admin.len() >= MIN_ADMIN_TOKEN_CHARS && admin.bytes().all(|b| b.is_ascii_graphic())
        );
        let values = [&signing, &admin, &password, &master];
        assert_eq!(
            values.iter().collect::<BTreeSet<_>>().len(),
            4,
            "all different"
        );
        for p in [
            "secrets/shared/signing.key",
            "secrets/shared/admin-token",
            "secrets/postgres-password",
        ] {
            let meta = std::fs::metadata(out.join(p)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{p}");
            // Accepted by the checks the server itself makes at start.
            let kind = REPLICA_SECRETS
                .iter()
                .find(|(path, _)| *path == p)
                .unwrap()
                .1;
            assert!(kind.accepts(&read(p)), "{p}");
        }

        // Nothing rendered or printed carries a value.
        let report_text = summary(&out, &options, 1, &first);
        let mut shown = vec![report_text];
        for f in &files {
            if let Contents::Text { .. } = f.contents {
                shown.push(read(&f.path.display().to_string()));
            }
        }
        for text in &shown {
            for value in values {
                assert!(!text.contains(value.as_str()), "a secret in {text:.80}");
            }
        }
        assert!(shown[0].contains("2 replica(s)") && shown[0].contains("PostgreSQL"));

        // Written again: every secret kept as it was.
        let second = write(&out, &files).unwrap();
        assert!(second.written.iter().all(|p| !p.starts_with("secrets")));
        assert_eq!(read("secrets/shared/signing.key"), signing);
        assert_eq!(read("secrets/shared/admin-token"), admin);
        assert_eq!(read("secrets/postgres-password"), password);
        assert_eq!(read("secrets/shared/master.key"), master);

        // An operator's own valid values are kept; invalid ones are refused, never replaced.
        let own = "adm_the-operators-own-token-of-40-chars!";
        std::fs::write(out.join("secrets/shared/admin-token"), own).unwrap();
        write(&out, &files).unwrap();
        assert_eq!(read("secrets/shared/admin-token"), own);
        for (p, bad) in [
            ("secrets/shared/signing.key", "abcd"),
            ("secrets/shared/admin-token", "too short"),
            ("secrets/postgres-password", ""),
        ] {
            let good = read(p);
            std::fs::write(out.join(p), bad).unwrap();
            let err = format!("{:#}", write(&out, &files).unwrap_err());
            assert!(err.contains(p), "{err}");
            assert_eq!(read(p), bad, "not replaced");
            std::fs::write(out.join(p), good).unwrap();
        }
    }

    #[test]
    fn a_folder_rendered_for_postgres_is_not_silently_rendered_without_it() {
        let dir = TempDir::new("same");
        let out = dir.0.join("deploy");
        check_same_deployment(&out, &ComposeOptions::default()).unwrap();
        write(&out, &render(&[], &replicated(2)).unwrap()).unwrap();
        check_same_deployment(&out, &replicated(3)).unwrap();
        let err = check_same_deployment(&out, &ComposeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("--postgres"), "{err}");
    }
}
