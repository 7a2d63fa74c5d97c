//! The compose file: one service per server (the shared server or its replicas, each
//! isolated instance), the `postgres` service, Caddy, and their volumes and secrets.

use common::domain::TenantId;

use super::prometheus::{SERVER_METRICS_DIR, SERVER_METRICS_TOKEN_FILE, metrics_volume};
use super::{
    ADMIN_PORT, CONNECTOR_PORT, ComposeOptions, DATABASE, ISOLATED_ADMIN_PORT,
    ISOLATED_CONNECTOR_PORT, ISOLATED_MCP_PORT, MCP_PORT, POSTGRES_PORT, REPLICA_ADMIN_PORT_BASE,
    REPLICA_SECRET_FILES, SHARED, SharedDeployment, isolated_connector_host, isolated_host, q,
    shared_connector_host, shared_host,
};

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
    // The metrics token in a volume of its own: what Prometheus mounts, never the data volume.
    out.push_str(&format!(
        "    volumes:\n      - {}\n      - {}\n    secrets:\n",
        q(&format!("{}:/data", s.volume)),
        q(&format!("{}:{SERVER_METRICS_DIR}", metrics_volume(&s.name)))
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
    // The root is read-only; `/tmp` is a tmpfs, where `drill restore` makes its scratch copy.
    out.push_str(&format!(
        "    healthcheck:\n      test: {test}\n      interval: 30s\n\
         \x20     timeout: 5s\n      retries: 3\n      start_period: 10s\n\
         \x20   restart: unless-stopped\n    read_only: true\n    tmpfs: [\"/tmp\"]\n\
         \x20   cap_drop: [\"ALL\"]\n\
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
        (
            "STUDIO_MCP_METRICS_TOKEN_FILE",
            SERVER_METRICS_TOKEN_FILE.to_owned(),
        ),
        ("STUDIO_MCP_LOG_FORMAT", "json".to_owned()),
    ]
}

pub(super) fn compose_yaml(tenants: &[(&TenantId, u16)], options: &ComposeOptions) -> String {
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
    out.push_str(&super::prometheus::service_yaml(tenants, options));
    out.push_str("volumes:\n  caddy-config: {}\n  caddy-data: {}\n");
    for (id, _) in tenants {
        out.push_str(&format!("  isolated-{id}-data: {{}}\n"));
    }
    for (id, _) in tenants {
        out.push_str(&format!(
            "  {}: {{}}\n",
            metrics_volume(&format!("isolated-{id}"))
        ));
    }
    for name in &shared_services {
        out.push_str(&format!("  {}: {{}}\n", metrics_volume(name)));
    }
    if let SharedDeployment::Replicas { .. } = options.shared() {
        out.push_str("  postgres-data: {}\n");
    }
    if options.prometheus().is_some() {
        out.push_str("  prometheus-data: {}\n");
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
