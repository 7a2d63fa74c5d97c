//! Typed configuration: defaults, then an optional TOML file, then `STUDIO_MCP_*` environment
//! variables. Validated once at start-up so a bad value is one clear line, not a late failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {path}: {why}")]
    File { path: String, why: String },
    #[error("{name}: {why}")]
    Value { name: &'static str, why: String },
    /// A file in the data dir that must not be used as it is (an empty admin token, a short key).
    #[error("{path}: {why}")]
    DataFile { path: String, why: String },
}

/// Listener defaults differ between the shared server and an isolated instance.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub listen: &'static str,
    pub admin_listen: &'static str,
    /// The connector door's listener when only `STUDIO_MCP_CONNECTOR_URL` is given.
    pub connector_listen: &'static str,
}

pub const SHARED_DEFAULTS: Defaults = Defaults {
    listen: "127.0.0.1:8787",
    admin_listen: "127.0.0.1:8788",
    connector_listen: "127.0.0.1:8789",
};

pub const ISOLATED_DEFAULTS: Defaults = Defaults {
    listen: "127.0.0.1:8790",
    admin_listen: "127.0.0.1:8791",
    connector_listen: "127.0.0.1:8792",
};

/// The path of both doors' MCP endpoint, and the only one claude.ai calls.
pub const MCP_PATH: &str = "/mcp";

#[derive(Clone, Debug)]
pub struct UpstreamUrls {
    pub webflow: String,
    pub plausible: String,
    pub github: String,
    pub cloudflare: String,
    pub stripe: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Token audience and allowed `Host`. `None`: derived from the bound MCP address.
    pub public_url: Option<String>,
    /// The connector (OAuth) door's listener; `None` with no connector URL: no such door.
    pub connector_listen: Option<SocketAddr>,
    /// The connector door's public URL, `http(s)://host[:port]/mcp` exactly. `None` with a
    /// listener: `http://localhost:<bound port>/mcp`.
    pub connector_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    /// The token signing key's file (default `<data_dir>/signing.key`): replicas share it.
    pub signing_key_file: Option<PathBuf>,
    /// The admin token's file (default `<data_dir>/admin-token`): replicas share it.
    pub admin_token_file: Option<PathBuf>,
    /// The metrics token's file (default `<data_dir>/metrics-token`): it opens `/metrics` and
    /// nothing else, so a scraper never holds the admin token.
    pub metrics_token_file: Option<PathBuf>,
    /// `postgres://…`: the store several shared-server replicas share; `None`: embedded sled.
    pub store_url: Option<String>,
    /// A file holding the database password (a compose secret), used when the URL has none.
    pub store_password_file: Option<PathBuf>,
    /// How replicas on PostgreSQL take part.
    pub replica: ReplicaConfig,
    pub upstreams: UpstreamUrls,
    pub upstream_timeout_ms: u64,
    /// The longest `Retry-After` a tool call waits out before answering with an error.
    pub max_retry_wait_ms: u64,
    pub token_ttl_days: u64,
    /// How long a high-risk action waits for a person's approval.
    pub approval_ttl_secs: u64,
    /// Where to post a short message when an approval is waiting.
    pub approval_webhook: Option<String>,
    /// Audit records older than this are deleted (checked hourly).
    pub audit_retention_days: u64,
    /// Default per-tenant tool calls per minute.
    pub tenant_rate_per_min: u64,
    /// Webflow calls per minute per site token (Webflow's published quota is 60-120).
    pub webflow_rate_per_min: u64,
    pub log_json: bool,
    /// Whether stateless JSON requests take the fast path in front of rmcp's transport
    /// (`STUDIO_MCP_FAST_PATH=off`: everything goes through rmcp).
    pub fast_path: bool,
    /// Async worker threads; 0: one per core the process may use.
    pub worker_threads: u64,
    /// Open connections on the MCP listener; 0: what the descriptor limit leaves room for.
    pub max_connections: u64,
    /// Open connections on the admin listener.
    pub admin_max_connections: u64,
    /// From a request's first byte to its complete header.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with nothing in flight is closed after this.
    pub idle_timeout_ms: u64,
    /// Largest upstream answer read (error answers included).
    pub max_upstream_body_bytes: u64,
    /// The upstream read cache and the sharing of identical reads in flight
    /// (`STUDIO_MCP_UPSTREAM_CACHE=off` turns both off).
    pub upstream_cache: bool,
    /// The read cache's bound for the whole process, in bytes.
    pub upstream_cache_bytes: u64,
    /// Only for an isolated instance: the one tenant it serves.
    pub tenant: Option<String>,
    /// People, sign-in and OAuth.
    pub oauth: OAuthConfig,
    /// Proxies whose `X-Forwarded-For` names a request's source (`STUDIO_MCP_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A shared-server replica's name and timings (PostgreSQL store only).
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Its name in errors, `/healthz` and `drill revoke`; default `<hostname>:<pid>`.
    pub name: Option<String>,
    /// A replica is live while its last heartbeat (one a second) is younger than this; one
    /// cut off from the database for longer refuses tokens.
    pub lease_secs: u64,
    /// How long a revocation (or any change replicas hold in memory) waits for every live
    /// replica to apply it before the call fails naming the one that has not.
    pub ack_timeout_secs: u64,
}

/// Lifetimes and limits of people's sign-in and of OAuth connections.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// An invite link's lifetime.
    pub invite_ttl_secs: u64,
    /// A browser session's lifetime (the cookie's too).
    pub session_ttl_secs: u64,
    /// An OAuth access token's lifetime.
    pub access_ttl_secs: u64,
    /// A refresh token's lifetime from its last use.
    pub refresh_ttl_secs: u64,
    /// Dynamic client registrations accepted a minute from one source.
    pub registrations_per_min: u64,
    /// Client ID Metadata Documents may live on private or loopback addresses (tests only).
    pub client_metadata_allow_private: bool,
    /// An extra root certificate (PEM) trusted when fetching client metadata (tests only).
    pub client_metadata_ca: Option<PathBuf>,
    /// Requests a minute one source may make of the anonymous endpoints (OAuth, sign-in).
    pub requests_per_min: u64,
    /// Dynamic client registrations a minute, all sources together (each source also within
    /// `registrations_per_min`).
    pub registrations_global_per_min: u64,
    /// Registrations waiting unused at most; a new one beyond takes the oldest one's place.
    pub max_unused_registrations: u64,
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    admin_listen: Option<String>,
    public_url: Option<String>,
    connector_listen: Option<String>,
    connector_url: Option<String>,
    master_key_file: Option<PathBuf>,
    signing_key_file: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    metrics_token_file: Option<PathBuf>,
    store: Option<String>,
    store_password_file: Option<PathBuf>,
    replica_name: Option<String>,
    replica_lease_secs: Option<u64>,
    replica_ack_timeout_secs: Option<u64>,
    webflow_base_url: Option<String>,
    plausible_base_url: Option<String>,
    github_base_url: Option<String>,
    cloudflare_base_url: Option<String>,
    stripe_base_url: Option<String>,
    upstream_timeout_ms: Option<u64>,
    max_retry_wait_ms: Option<u64>,
    token_ttl_days: Option<u64>,
    audit_retention_days: Option<u64>,
    approval_ttl_secs: Option<u64>,
    approval_webhook: Option<String>,
    tenant_rate_per_min: Option<u64>,
    webflow_rate_per_min: Option<u64>,
    log_format: Option<String>,
    fast_path: Option<String>,
    worker_threads: Option<u64>,
    max_connections: Option<u64>,
    admin_max_connections: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_upstream_body_bytes: Option<u64>,
    upstream_cache: Option<String>,
    upstream_cache_bytes: Option<u64>,
    tenant: Option<String>,
    invite_ttl_days: Option<u64>,
    session_ttl_secs: Option<u64>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_days: Option<u64>,
    registrations_per_min: Option<u64>,
    registrations_global_per_min: Option<u64>,
    oauth_requests_per_min: Option<u64>,
    max_unused_registrations: Option<u64>,
    trusted_proxies: Option<String>,
}

impl Config {
    /// `env` is injected so tests need not touch the process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        defaults: Defaults,
    ) -> Result<Self, ConfigError> {
        let f = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    why: e.message().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        let pick = |name: &'static str, from_file: Option<String>| env(name).or(from_file);
        let url = |name: &'static str, from_file: Option<String>, default: &str| {
            let value = pick(name, from_file).unwrap_or_else(|| default.to_owned());
            validate_origin(name, &value)
        };
        let number = |name: &'static str, from_file: Option<u64>, default: u64| match env(name) {
            Some(v) => v.trim().parse::<u64>().map_err(|_| ConfigError::Value {
                name,
                why: format!("`{v}` is not a whole number"),
            }),
            None => Ok(from_file.unwrap_or(default)),
        };
        let addr = |name: &'static str, from_file: Option<String>, default: &str| {
            let value = pick(name, from_file).unwrap_or_else(|| default.to_owned());
            value.parse::<SocketAddr>().map_err(|_| ConfigError::Value {
                name,
                why: format!("`{value}` is not an address such as 127.0.0.1:8787"),
            })
        };

        let public_url = match pick("STUDIO_MCP_PUBLIC_URL", f.public_url) {
            Some(v) => Some(validate_origin("STUDIO_MCP_PUBLIC_URL", &v)?),
            None => None,
        };
        let connector_url = match pick("STUDIO_MCP_CONNECTOR_URL", f.connector_url) {
            Some(v) => Some(validate_connector_url(&v, public_url.as_deref())?),
            None => None,
        };
        let connector_listen = match pick("STUDIO_MCP_CONNECTOR_LISTEN", f.connector_listen) {
            Some(v) => Some(addr("STUDIO_MCP_CONNECTOR_LISTEN", Some(v), "")?),
            None if connector_url.is_some() => Some(addr(
                "STUDIO_MCP_CONNECTOR_LISTEN",
                None,
                defaults.connector_listen,
            )?),
            None => None,
        };
        let log_json = match pick("STUDIO_MCP_LOG_FORMAT", f.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::Value {
                    name: "STUDIO_MCP_LOG_FORMAT",
                    why: format!("`{other}` is neither text nor json"),
                });
            }
        };
        let fast_path = match pick("STUDIO_MCP_FAST_PATH", f.fast_path).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Value {
                    name: "STUDIO_MCP_FAST_PATH",
                    why: format!("`{other}` is neither on nor off"),
                });
            }
        };
        Ok(Self {
            data_dir: env("STUDIO_MCP_DATA_DIR")
                .map(PathBuf::from)
                .or(f.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            listen: addr("STUDIO_MCP_LISTEN", f.listen, defaults.listen)?,
            admin_listen: addr(
                "STUDIO_MCP_ADMIN_LISTEN",
                f.admin_listen,
                defaults.admin_listen,
            )?,
            public_url,
            connector_listen,
            connector_url,
            master_key_file: env("STUDIO_MCP_MASTER_KEY_FILE")
                .map(PathBuf::from)
                .or(f.master_key_file),
            signing_key_file: env("STUDIO_MCP_SIGNING_KEY_FILE")
                .map(PathBuf::from)
                .or(f.signing_key_file),
            admin_token_file: env("STUDIO_MCP_ADMIN_TOKEN_FILE")
                .map(PathBuf::from)
                .or(f.admin_token_file),
            metrics_token_file: env("STUDIO_MCP_METRICS_TOKEN_FILE")
                .map(PathBuf::from)
                .or(f.metrics_token_file),
            store_url: match pick("STUDIO_MCP_STORE", f.store) {
                None => None,
                Some(url) if url.is_empty() || url == "sled" => None,
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Some(url)
                }
                // Never echoed: the URL may carry the database password.
                Some(_) => {
                    return Err(ConfigError::Value {
                        name: "STUDIO_MCP_STORE",
                        why: "must be `sled` or a postgres:// URL".into(),
                    });
                }
            },
            store_password_file: env("STUDIO_MCP_STORE_PASSWORD_FILE")
                .map(PathBuf::from)
                .or(f.store_password_file),
            replica: ReplicaConfig {
                name: pick("STUDIO_MCP_REPLICA_NAME", f.replica_name),
                lease_secs: number("STUDIO_MCP_REPLICA_LEASE_SECS", f.replica_lease_secs, 10)?
                    .clamp(2, 3600),
                ack_timeout_secs: number(
                    "STUDIO_MCP_REPLICA_ACK_TIMEOUT_SECS",
                    f.replica_ack_timeout_secs,
                    5,
                )?
                .clamp(1, 600),
            },
            upstreams: UpstreamUrls {
                webflow: url(
                    "STUDIO_MCP_WEBFLOW_BASE_URL",
                    f.webflow_base_url,
                    "https://api.webflow.com",
                )?,
                plausible: url(
                    "STUDIO_MCP_PLAUSIBLE_BASE_URL",
                    f.plausible_base_url,
                    "https://plausible.io",
                )?,
                github: url(
                    "STUDIO_MCP_GITHUB_BASE_URL",
                    f.github_base_url,
                    "https://api.github.com",
                )?,
                cloudflare: url(
                    "STUDIO_MCP_CLOUDFLARE_BASE_URL",
                    f.cloudflare_base_url,
                    "https://api.cloudflare.com",
                )?,
                stripe: url(
                    "STUDIO_MCP_STRIPE_BASE_URL",
                    f.stripe_base_url,
                    "https://api.stripe.com",
                )?,
            },
            upstream_timeout_ms: number(
                "STUDIO_MCP_UPSTREAM_TIMEOUT_MS",
                f.upstream_timeout_ms,
                10_000,
            )?,
            max_retry_wait_ms: number("STUDIO_MCP_MAX_RETRY_WAIT_MS", f.max_retry_wait_ms, 2_000)?,
            token_ttl_days: number("STUDIO_MCP_TOKEN_TTL_DAYS", f.token_ttl_days, 365)?,
            approval_webhook: match pick("STUDIO_MCP_APPROVAL_WEBHOOK", f.approval_webhook) {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
                // Never echoed: a chat webhook URL is itself a credential.
                Some(_) => {
                    return Err(ConfigError::Value {
                        name: "STUDIO_MCP_APPROVAL_WEBHOOK",
                        why: "must be an http(s) URL".into(),
                    });
                }
                None => None,
            },
            approval_ttl_secs: number("STUDIO_MCP_APPROVAL_TTL_SECS", f.approval_ttl_secs, 600)?
                .clamp(1, 86_400),
            audit_retention_days: number(
                "STUDIO_MCP_AUDIT_RETENTION_DAYS",
                f.audit_retention_days,
                90,
            )?,
            tenant_rate_per_min: number(
                "STUDIO_MCP_TENANT_RATE_PER_MIN",
                f.tenant_rate_per_min,
                600,
            )?
            .clamp(1, u64::from(u32::MAX)),
            webflow_rate_per_min: number(
                "STUDIO_MCP_WEBFLOW_RATE_PER_MIN",
                f.webflow_rate_per_min,
                60,
            )?
            .clamp(1, u64::from(u32::MAX)),
            log_json,
            fast_path,
            worker_threads: match number("STUDIO_MCP_WORKER_THREADS", f.worker_threads, 0)? {
                n @ 0..=1024 => n,
                n => {
                    return Err(ConfigError::Value {
                        name: "STUDIO_MCP_WORKER_THREADS",
                        why: format!("{n} threads is more than 1024"),
                    });
                }
            },
            max_connections: number("STUDIO_MCP_MAX_CONNECTIONS", f.max_connections, 0)?,
            admin_max_connections: number(
                "STUDIO_MCP_ADMIN_MAX_CONNECTIONS",
                f.admin_max_connections,
                32,
            )?
            .max(1),
            header_read_timeout_ms: number(
                "STUDIO_MCP_HEADER_READ_TIMEOUT_MS",
                f.header_read_timeout_ms,
                10_000,
            )?
            .max(1),
            idle_timeout_ms: number("STUDIO_MCP_IDLE_TIMEOUT_MS", f.idle_timeout_ms, 60_000)?
                .max(1),
            max_upstream_body_bytes: number(
                "STUDIO_MCP_MAX_UPSTREAM_BODY_BYTES",
                f.max_upstream_body_bytes,
                4 * 1024 * 1024,
            )?
            .max(1024),
            upstream_cache: match pick("STUDIO_MCP_UPSTREAM_CACHE", f.upstream_cache).as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(ConfigError::Value {
                        name: "STUDIO_MCP_UPSTREAM_CACHE",
                        why: format!("`{other}` is neither on nor off"),
                    });
                }
            },
            upstream_cache_bytes: match number(
                "STUDIO_MCP_UPSTREAM_CACHE_BYTES",
                f.upstream_cache_bytes,
                // A full cache stays within the 10,000-tenant memory goal (< 50 MB resident,
                // 44 MB measured without it); Webflow answers are a few KiB to tens of KiB.
                4 * 1024 * 1024,
            )? {
                n @ 1_048_576..=17_179_869_184 => n,
                n => {
                    return Err(ConfigError::Value {
                        name: "STUDIO_MCP_UPSTREAM_CACHE_BYTES",
                        why: format!("{n} is not between 1 MiB and 16 GiB"),
                    });
                }
            },
            tenant: pick("STUDIO_MCP_TENANT", f.tenant),
            oauth: OAuthConfig {
                invite_ttl_secs: number("STUDIO_MCP_INVITE_TTL_DAYS", f.invite_ttl_days, 7)?
                    .clamp(1, 90)
                    * 86_400,
                session_ttl_secs: number("STUDIO_MCP_SESSION_TTL_SECS", f.session_ttl_secs, 3_600)?
                    .clamp(60, 86_400),
                access_ttl_secs: number(
                    "STUDIO_MCP_ACCESS_TOKEN_TTL_SECS",
                    f.access_token_ttl_secs,
                    3_600,
                )?
                .clamp(5, 86_400),
                refresh_ttl_secs: number(
                    "STUDIO_MCP_REFRESH_TOKEN_TTL_DAYS",
                    f.refresh_token_ttl_days,
                    30,
                )?
                .clamp(1, 365)
                    * 86_400,
                registrations_per_min: number(
                    "STUDIO_MCP_REGISTRATIONS_PER_MIN",
                    f.registrations_per_min,
                    60,
                )?
                .clamp(1, 100_000),
                client_metadata_allow_private: env(
                    "STUDIO_MCP_OAUTH_CLIENT_METADATA_ALLOW_PRIVATE",
                )
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
                client_metadata_ca: env("STUDIO_MCP_OAUTH_CLIENT_METADATA_CA").map(PathBuf::from),
                requests_per_min: number(
                    "STUDIO_MCP_OAUTH_REQUESTS_PER_MIN",
                    f.oauth_requests_per_min,
                    300,
                )?
                .clamp(10, u64::from(u32::MAX)),
                registrations_global_per_min: number(
                    "STUDIO_MCP_REGISTRATIONS_GLOBAL_PER_MIN",
                    f.registrations_global_per_min,
                    600,
                )?
                .clamp(1, u64::from(u32::MAX)),
                max_unused_registrations: number(
                    "STUDIO_MCP_MAX_UNUSED_REGISTRATIONS",
                    f.max_unused_registrations,
                    1_000,
                )?
                .clamp(1, 1_000_000),
            },
            trusted_proxies: match pick("STUDIO_MCP_TRUSTED_PROXIES", f.trusted_proxies) {
                Some(text) => parse_trusted_proxies(&text).map_err(|why| ConfigError::Value {
                    name: "STUDIO_MCP_TRUSTED_PROXIES",
                    why,
                })?,
                None => Vec::new(),
            },
        })
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("signing.key"))
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin-token"))
    }

    pub fn metrics_token_path(&self) -> PathBuf {
        self.metrics_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("metrics-token"))
    }
}

/// Accepts `http(s)://host[:port]` with no path, trimming a trailing `/`.
fn validate_origin(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(authority) if !authority.is_empty() && !authority.contains('/') => {
            Ok(trimmed.to_owned())
        }
        _ => Err(ConfigError::Value {
            name,
            why: format!("`{value}` is not an origin such as https://api.example.com"),
        }),
    }
}

/// Accepts `http(s)://host[:port]/mcp` exactly (claude.ai calls no other path), on an origin
/// other than the static door's.
fn validate_connector_url(value: &str, public_url: Option<&str>) -> Result<String, ConfigError> {
    const NAME: &str = "STUDIO_MCP_CONNECTOR_URL";
    let value = value.trim();
    let bad = |why: String| ConfigError::Value { name: NAME, why };
    let origin = value.strip_suffix(MCP_PATH).ok_or_else(|| {
        bad(format!(
            "`{value}` must end in exactly {MCP_PATH} (claude.ai calls no other path), \
             e.g. https://connect.studio.example/mcp"
        ))
    })?;
    let origin = validate_origin(NAME, origin).map_err(|_| {
        bad(format!(
            "`{value}` is not a URL such as https://connect.studio.example/mcp (scheme, host, \
             optional port, then exactly {MCP_PATH}; no query, no user name)"
        ))
    })?;
    if origin.contains(['?', '#', '@']) || origin.len() + MCP_PATH.len() != value.len() {
        return Err(bad(format!(
            "`{value}` is not a URL such as https://connect.studio.example/mcp"
        )));
    }
    if public_url.is_some_and(|p| p.eq_ignore_ascii_case(&origin)) {
        return Err(bad(format!(
            "`{value}` is on the static door's origin ({origin}); the connector door needs an \
             origin of its own (another host name, or another port for a local demo)"
        )));
    }
    Ok(value.to_owned())
}

/// `10.0.0.0/8, 192.0.2.7, fd00::/8`: addresses or CIDR ranges, separated by commas or spaces.
/// The error names the entry that is neither.
pub fn parse_trusted_proxies(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR range"))
        })
        .collect()
}

/// The origin (`scheme://host[:port]`) of a validated connector URL.
pub fn connector_origin(connector_url: &str) -> &str {
    connector_url
        .strip_suffix(MCP_PATH)
        .unwrap_or(connector_url)
}

/// The host part of an origin, for the MCP transport's Host allow-list.
pub fn origin_host(origin: &str) -> &str {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or(origin);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_upstream_cache_is_on_by_default_and_off_when_told() {
        let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), SHARED_DEFAULTS);
        let c = load(&[]).unwrap();
        assert!(c.upstream_cache);
        assert_eq!(c.upstream_cache_bytes, 4 * 1024 * 1024);
        assert!(
            !load(&[("STUDIO_MCP_UPSTREAM_CACHE", "off")])
                .unwrap()
                .upstream_cache
        );
        let e = load(&[("STUDIO_MCP_UPSTREAM_CACHE", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("STUDIO_MCP_UPSTREAM_CACHE: `sometimes`"),
            "{e}"
        );
        assert!(load(&[("STUDIO_MCP_UPSTREAM_CACHE_BYTES", "1000")]).is_err());
    }

    #[test]
    fn trusted_proxies_name_the_entry_they_cannot_read() {
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert_eq!(parse_trusted_proxies("10.0.0.0/8 ::1").unwrap().len(), 2);
        let e = Config::load(
            None,
            env(&[("STUDIO_MCP_TRUSTED_PROXIES", "10.0.0.0/8, caddy")]),
            SHARED_DEFAULTS,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("STUDIO_MCP_TRUSTED_PROXIES: `caddy`"), "{e}");
    }

    #[test]
    fn the_connector_door_is_at_exactly_mcp_on_an_origin_of_its_own() {
        let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), SHARED_DEFAULTS);
        // Neither: no connector door.
        let c = load(&[]).unwrap();
        assert_eq!((c.connector_listen, c.connector_url), (None, None));
        // A URL alone listens on the default port; a listener alone gets its URL at start.
        let c = load(&[(
            "STUDIO_MCP_CONNECTOR_URL",
            "https://connect.studio.example/mcp",
        )])
        .unwrap();
        assert_eq!(c.connector_listen.unwrap().port(), 8789);
        assert_eq!(
            connector_origin(c.connector_url.as_deref().unwrap()),
            "https://connect.studio.example"
        );
        let c = load(&[("STUDIO_MCP_CONNECTOR_LISTEN", "127.0.0.1:0")]).unwrap();
        assert_eq!(
            (c.connector_listen.unwrap().port(), c.connector_url),
            (0, None)
        );
        let isolated = Config::load(
            None,
            env(&[(
                "STUDIO_MCP_CONNECTOR_URL",
                "https://acme.connect.example/mcp",
            )]),
            ISOLATED_DEFAULTS,
        )
        .unwrap();
        assert_eq!(isolated.connector_listen.unwrap().port(), 8792);
        for bad in [
            "https://connect.studio.example",
            "https://connect.studio.example/",
            "https://connect.studio.example/connector",
            "https://connect.studio.example/mcp/",
            "https://connect.studio.example/api/mcp",
            "https://connect.studio.example//mcp",
            "https://user@connect.studio.example/mcp",
            "https://connect.studio.example/mcp?x=1",
            "ftp://connect.studio.example/mcp",
            "connect.studio.example/mcp",
        ] {
            let e = load(&[("STUDIO_MCP_CONNECTOR_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("STUDIO_MCP_CONNECTOR_URL: "), "{bad}: {e}");
            assert!(e.contains("/mcp"), "{bad}: {e}");
        }
        let e = load(&[
            ("STUDIO_MCP_PUBLIC_URL", "https://mcp.studio.example"),
            ("STUDIO_MCP_CONNECTOR_URL", "https://MCP.studio.example/mcp"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("origin of its own"), "{e}");
        let e = load(&[("STUDIO_MCP_CONNECTOR_LISTEN", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("STUDIO_MCP_CONNECTOR_LISTEN"), "{e}");
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[("STUDIO_MCP_DATA_DIR", "/from/env")]),
            SHARED_DEFAULTS,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.admin_listen.port(), 8788);
        assert_eq!(c.upstreams.webflow, "https://api.webflow.com");
        assert_eq!(
            c.metrics_token_path(),
            PathBuf::from("/from/env/metrics-token")
        );
        let c = Config::load(
            None,
            env(&[("STUDIO_MCP_METRICS_TOKEN_FILE", "/metrics-token/token")]),
            SHARED_DEFAULTS,
        )
        .unwrap();
        assert_eq!(
            c.metrics_token_path(),
            PathBuf::from("/metrics-token/token")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::load(None, env(&[("STUDIO_MCP_LISTEN", "nope")]), SHARED_DEFAULTS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("STUDIO_MCP_LISTEN"), "{err}");
        let err = Config::load(
            None,
            env(&[("STUDIO_MCP_WEBFLOW_BASE_URL", "ftp://x/y")]),
            SHARED_DEFAULTS,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("STUDIO_MCP_WEBFLOW_BASE_URL"), "{err}");
    }

    #[test]
    fn origin_hosts() {
        assert_eq!(
            origin_host("https://mcp.studio.example"),
            "mcp.studio.example"
        );
        assert_eq!(origin_host("http://127.0.0.1:8787"), "127.0.0.1");
        assert_eq!(origin_host("http://[::1]:8787"), "::1");
    }
}
