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
//!
//! With `--with-prometheus` a `prometheus` service scrapes every server's admin `/metrics` over
//! the compose network, each with that server's own admin token read from a file (never copied
//! into the generated configuration), and loads the repository's alert rules.
//!
//! This file holds the options, the host names, `render` and `run`; `yaml.rs` renders the
//! compose file, `caddy.rs` the Caddyfile, `prometheus.rs` Prometheus's configuration and
//! README, and `write.rs` writes the folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use common::domain::TenantId;
use common::tenant::Tenant;
use common::token::MIN_SIGNING_KEY_BYTES;
use rand::RngCore;

use common::runtime::admin::client::AdminClient;

mod caddy;
mod prometheus;
mod write;
mod yaml;
use caddy::caddyfile;
use write::check_same_deployment;
pub use write::{WriteReport, write};
use yaml::compose_yaml;

/// A YAML double-quoted scalar (the compose file's and Prometheus's configuration). JSON's
/// string syntax is a subset of YAML's.
fn q(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}
pub use yaml::healthcheck_test;

/// The runtime user of `deploy/Dockerfile` (uid and gid). Compose mounts a secret file with its
/// host owner and mode, so a master key must belong to this uid for the server to read it.
pub const CONTAINER_UID: u32 = 10001;
/// Host loopback ports for the isolated instances' admin APIs: `BASE + fnv1a(tenant) % SPAN`.
pub const ADMIN_PORT_BASE: u16 = 20_000;
pub const ADMIN_PORT_SPAN: u16 = 10_000;
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_IMAGE: &str = "studio-mcp:latest";
pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:16";
/// The image built from `deploy/prometheus/Dockerfile` (Debian's Prometheus, run as
/// [`CONTAINER_UID`] so that it can read the servers' admin tokens).
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "studio-mcp-prometheus:latest";
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
    /// Add a `prometheus` service that scrapes every server's /metrics with its admin token and
    /// loads the alert rules (prometheus/ in the folder; its UI on 127.0.0.1:9090 only).
    #[arg(long)]
    pub with_prometheus: bool,
    /// The Prometheus image for --with-prometheus [default: studio-mcp-prometheus:latest, built
    /// from deploy/prometheus/Dockerfile].
    #[arg(long, value_name = "IMAGE")]
    pub prometheus_image: Option<String>,
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
    /// The Prometheus image, with `--with-prometheus`.
    prometheus: Option<String>,
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
            prometheus: None,
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

    /// A `prometheus` service from `image` that scrapes every server.
    pub fn with_prometheus(self, image: &str) -> anyhow::Result<Self> {
        if !image_ok(image) {
            bail!(
                "--prometheus-image `{image}` is not an image reference such as \
                 {DEFAULT_PROMETHEUS_IMAGE}"
            );
        }
        Ok(Self {
            prometheus: Some(image.to_owned()),
            ..self
        })
    }

    /// The options the command line asks for, or why they cannot work together.
    pub fn from_args(args: &ComposeArgs) -> anyhow::Result<Self> {
        let options = Self::shared_from_args(args)?;
        match (args.with_prometheus, &args.prometheus_image) {
            (true, image) => {
                options.with_prometheus(image.as_deref().unwrap_or(DEFAULT_PROMETHEUS_IMAGE))
            }
            (false, Some(_)) => bail!("--prometheus-image needs --with-prometheus"),
            (false, None) => Ok(options),
        }
    }

    /// The domain, the image and how the shared server runs.
    fn shared_from_args(args: &ComposeArgs) -> anyhow::Result<Self> {
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

    /// The Prometheus image, when the deployment has a `prometheus` service.
    pub fn prometheus(&self) -> Option<&str> {
        self.prometheus.as_deref()
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
            prometheus: None,
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
    ];
    if options.prometheus().is_some() {
        files.extend(prometheus::files(&ids, options));
    }
    files.push(GeneratedFile {
        path: Path::new("secrets").join(SHARED).join("master.key"),
        contents: Contents::MasterKey,
    });
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

/// The replicas' admin token as a compose secret (Prometheus reads it too).
const REPLICA_ADMIN_TOKEN: &str = "shared-admin-token";

/// Compose secret name and file of everything a replica reads, as `/run/secrets/<name>`.
const REPLICA_SECRET_FILES: [(&str, &str); 4] = [
    ("shared-master-key", "./secrets/shared/master.key"),
    ("shared-signing-key", "./secrets/shared/signing.key"),
    (REPLICA_ADMIN_TOKEN, "./secrets/shared/admin-token"),
    ("postgres-password", "./secrets/postgres-password"),
];

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
    if let Some(image) = options.prometheus() {
        let servers = options.shared_services().len() + tenants;
        lines.push(format!(
            "prometheus ({image}): scrapes {servers} server(s), each with its own admin token, \
             read from files; its UI at http://127.0.0.1:{port} on this host only. See \
             {out}/prometheus/README.md",
            port = prometheus::PROMETHEUS_PORT,
        ));
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
mod tests;
