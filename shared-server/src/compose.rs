//! `shared-server compose`: the docker compose deployment (the shared server, one isolated
//! instance per tenant, Caddy in front) rendered from the tenant list the admin API returns.
//!
//! Rendering is pure and deterministic: tenants in id order, no timestamps, and each tenant's
//! admin port derived from its id, so regenerating after adding a tenant adds only that tenant's
//! lines. Rendering never sees a secret: the compose file names secret *files*, and the files
//! under `secrets/` are either placeholders for the operator or fresh master keys. Files the
//! operator owns (everything under `secrets/`) are created once and never overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use common::domain::TenantId;
use common::secrets::{MasterKey, write_private_file};
use common::tenant::Tenant;

use common::runtime::admin_client::AdminClient;

/// The runtime user of `deploy/Dockerfile` (uid and gid). Compose mounts a secret file with its
/// host owner and mode, so a master key must belong to this uid for the server to read it.
pub const CONTAINER_UID: u32 = 10001;
/// Host loopback ports for the isolated instances' admin APIs: `BASE + fnv1a(tenant) % SPAN`.
pub const ADMIN_PORT_BASE: u16 = 20_000;
pub const ADMIN_PORT_SPAN: u16 = 10_000;
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_IMAGE: &str = "studio-mcp:latest";
/// The upstream credentials an isolated instance stores (`isolated-server secret set`).
pub const ISOLATED_CREDENTIALS: [&str; 3] = ["webflow", "cloudflare", "stripe"];
/// How every placeholder file starts; `onboard.sh` skips a file that still does.
pub const PLACEHOLDER_MARK: &str = "REPLACE_ME";

/// The shared server's compose secret, and the folder its master key lives in. A tenant with
/// this id would collide with both, so it is refused.
const SHARED: &str = "shared";
const MCP_PORT: u16 = 8787;
const ADMIN_PORT: u16 = 8788;
const ISOLATED_MCP_PORT: u16 = 8790;
const ISOLATED_ADMIN_PORT: u16 = 8791;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Folder for docker-compose.yml, caddy/Caddyfile, onboard.sh and secrets/ (created if missing).
    pub out_dir: PathBuf,
    /// The studio's domain: the shared server answers at mcp.<domain>, tenant T at T.mcp.<domain>.
    #[arg(long, default_value = DEFAULT_DOMAIN)]
    pub domain: String,
    /// The image built from deploy/Dockerfile.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Render only the shared server and Caddy, without asking the admin API (first deployment).
    #[arg(long)]
    pub no_tenants: bool,
}

/// What the deployment is rendered for; [`ComposeOptions::new`] checks both values, since they
/// end up in YAML and in a Caddyfile.
#[derive(Clone, Debug)]
pub struct ComposeOptions {
    domain: String,
    image: String,
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
        // `<63-char tenant>.mcp.<domain>` must stay within DNS's 253 characters.
        if domain.len() > 185 || !domain.split('.').all(label_ok) {
            bail!(
                "--domain `{domain}` is not a host name such as studio.example (no scheme, no port)"
            );
        }
        let image_ok = !image.is_empty()
            && image.len() <= 255
            && image
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
        if !image_ok {
            bail!("--image `{image}` is not an image reference such as studio-mcp:latest");
        }
        Ok(Self {
            domain,
            image: image.to_owned(),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn image(&self) -> &str {
        &self.image
    }
}

impl Default for ComposeOptions {
    fn default() -> Self {
        Self {
            domain: DEFAULT_DOMAIN.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
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
    secret: String,
    admin_port: u16,
    host_admin_port: u16,
    mcp_port: u16,
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
        "    volumes:\n      - {volume}\n    secrets:\n      - {secret}\n    ports:\n\
         \x20     # The admin API: on the host's loopback only, never behind Caddy.\n\
         \x20     - {port}\n    healthcheck:\n      test: {test}\n      interval: 30s\n\
         \x20     timeout: 5s\n      retries: 3\n      start_period: 10s\n\
         \x20   restart: unless-stopped\n    read_only: true\n    cap_drop: [\"ALL\"]\n\
         \x20   security_opt: [\"no-new-privileges:true\"]\n    logging:\n\
         \x20     driver: json-file\n      options: {{max-size: \"10m\", max-file: \"5\"}}\n\n",
        volume = q(&format!("{}:/data", s.volume)),
        secret = q(&s.secret),
        port = q(&format!("127.0.0.1:{}:{}", s.host_admin_port, s.admin_port)),
        test = healthcheck_test(s.mcp_port),
    ));
    out
}

fn common_env<'a>(
    listen: u16,
    admin: u16,
    public_url: String,
    secret: &str,
) -> Vec<(&'a str, String)> {
    vec![
        ("STUDIO_MCP_DATA_DIR", "/data".to_owned()),
        ("STUDIO_MCP_LISTEN", format!("0.0.0.0:{listen}")),
        ("STUDIO_MCP_ADMIN_LISTEN", format!("0.0.0.0:{admin}")),
        ("STUDIO_MCP_PUBLIC_URL", public_url),
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
    let shared_secret = format!("{SHARED}_master_key");
    out.push_str(&service_yaml(
        &Service {
            name: SHARED.to_owned(),
            binary: "shared-server",
            env: common_env(
                MCP_PORT,
                ADMIN_PORT,
                format!("https://mcp.{domain}"),
                &shared_secret,
            ),
            volume: format!("{SHARED}-data"),
            secret: shared_secret.clone(),
            admin_port: ADMIN_PORT,
            host_admin_port: ADMIN_PORT,
            mcp_port: MCP_PORT,
        },
        options.image(),
    ));
    for (id, host_admin_port) in tenants {
        let secret = format!("{id}_master_key");
        let mut env = vec![("STUDIO_MCP_TENANT", id.to_string())];
        env.extend(common_env(
            ISOLATED_MCP_PORT,
            ISOLATED_ADMIN_PORT,
            format!("https://{id}.mcp.{domain}"),
            &secret,
        ));
        out.push_str(&service_yaml(
            &Service {
                name: format!("isolated-{id}"),
                binary: "isolated-server",
                env,
                volume: format!("isolated-{id}-data"),
                secret,
                admin_port: ISOLATED_ADMIN_PORT,
                host_admin_port: *host_admin_port,
                mcp_port: ISOLATED_MCP_PORT,
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
         \x20     - \"caddy-config:/config\"\n    depends_on:\n      - shared\n\
         \x20   restart: unless-stopped\n\n",
    );
    out.push_str("volumes:\n  caddy-config: {}\n  caddy-data: {}\n");
    for (id, _) in tenants {
        out.push_str(&format!("  isolated-{id}-data: {{}}\n"));
    }
    out.push_str(&format!("  {SHARED}-data: {{}}\n\nsecrets:\n"));
    out.push_str(&format!(
        "  {shared_secret}:\n    file: ./secrets/{SHARED}/master.key\n"
    ));
    for (id, _) in tenants {
        out.push_str(&format!(
            "  {id}_master_key:\n    file: ./secrets/{id}/master.key\n"
        ));
    }
    out
}

fn caddyfile(tenants: &[(&TenantId, u16)], options: &ComposeOptions) -> String {
    let domain = options.domain();
    let mut out = format!(
        "# Generated by `shared-server compose`: regenerate rather than edit.\n\
         # Only the MCP listeners are proxied; the admin APIs (8788, 8791) never are.\n\n\
         mcp.{domain} {{\n\treverse_proxy {SHARED}:{MCP_PORT}\n}}\n"
    );
    for (id, _) in tenants {
        out.push_str(&format!(
            "\n{id}.mcp.{domain} {{\n\treverse_proxy isolated-{id}:{ISOLATED_MCP_PORT}\n}}\n"
        ));
    }
    out
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
"#;

/// What [`write`] did.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Written or rewritten this time.
    pub written: Vec<PathBuf>,
    /// Operator files left as they were.
    pub kept: Vec<PathBuf>,
    /// Master keys that could not be handed to the container user (not running as root).
    pub not_chowned: Vec<PathBuf>,
}

/// Writes the rendered files under `out_dir`: generated files are replaced, files under
/// `secrets/` are created only when missing (and an existing master key must be a valid key).
pub fn write(out_dir: &Path, files: &[GeneratedFile]) -> anyhow::Result<WriteReport> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

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
                let owner = std::fs::metadata(&path).map(|m| m.uid()).ok();
                if owner != Some(CONTAINER_UID)
                    && std::os::unix::fs::chown(&path, Some(CONTAINER_UID), Some(CONTAINER_UID))
                        .is_err()
                {
                    report.not_chowned.push(file.path.clone());
                }
            }
        }
    }
    Ok(report)
}

/// `shared-server compose`: tenants from the admin API, rendered and written.
pub async fn run(client: &AdminClient, args: &ComposeArgs) -> anyhow::Result<()> {
    let options = ComposeOptions::new(&args.domain, &args.image)?;
    let tenants = if args.no_tenants {
        Vec::new()
    } else {
        client.tenants().await?
    };
    let files = render(&tenants, &options)?;
    let report = write(&args.out_dir, &files)?;
    let out = args.out_dir.display();
    eprintln!(
        "wrote {out}: the shared server and {} isolated instance(s) at mcp.{} ({} file(s) written, {} kept)",
        tenants.len(),
        options.domain(),
        report.written.len(),
        report.kept.len()
    );
    if !report.not_chowned.is_empty() {
        eprintln!(
            "the containers run as uid {CONTAINER_UID}; let them read their master keys:\n  \
             sudo chown {CONTAINER_UID}:{CONTAINER_UID} {out}/secrets/*/master.key"
        );
    }
    if !tenants.is_empty() {
        eprintln!(
            "next: fill in {out}/secrets/<tenant>/{{webflow,cloudflare,stripe}}, `docker compose up -d` \
             in {out}, then {out}/onboard.sh <tenant> --name … --webflow-site …"
        );
    }
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
}
