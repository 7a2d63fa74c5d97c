//! The command line: `serve`, and the admin subcommands, which talk to the running server's
//! admin API (they never open the store, so the server need not be stopped).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use common::config::{Config, SHARED_DEFAULTS};
use common::domain::{PlausibleSite, RepoName, WebflowId};
use common::store::TokenRecord;
use common::tenant::{Tenant, TenantPatch, TenantSpec, Toolset};
use serde::Serialize;
use serde::de::DeserializeOwned;

use common::audit::AuditRecord;

use crate::admin::{
    ApiError, AuditFilter, IssueRequest, IssuedToken, NewTenant, OnboardRequest, OnboardResponse,
    SecretValue, TenantDetail,
};
use crate::telemetry::printable;

#[derive(Debug, Parser)]
#[command(
    name = "shared-server",
    version,
    about = "studio-mcp: the shared multi-tenant MCP server"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand of both binaries takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Optional TOML config file; STUDIO_MCP_* environment variables override it.
    #[arg(long, global = true, env = "STUDIO_MCP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admin API origin for admin subcommands (default: http://<admin listen address>).
    #[arg(long, global = true, env = "STUDIO_MCP_ADMIN_URL")]
    pub admin_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (MCP listener and admin listener).
    Serve,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Store an upstream credential for a tenant.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Issue, list and revoke MCP bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log (newest first).
    Audit(AuditArgs),
    /// Write the docker compose deployment (one isolated instance per tenant) from the tenants.
    Compose(crate::compose::ComposeArgs),
    /// A new client in one go: verify credentials (stdin, kind=value lines), create the tenant,
    /// store the credentials, issue tokens, print client configuration.
    Onboard(crate::onboard::OnboardArgs),
    /// Rehearse operations.
    #[command(subcommand)]
    Drill(DrillCommand),
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Issue a canary token, prove it works, revoke it, prove the next request fails, report.
    Revoke {
        /// The tenant to drill with (default: the first tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// The MCP endpoint to call (default: STUDIO_MCP_PUBLIC_URL + /mcp).
        #[arg(long)]
        mcp_url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only records from this long ago on: e.g. 30m, 12h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON record per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant bound to its Webflow site(s) and other resources.
    Add(TenantAdd),
    /// Change a tenant: options given replace the current values (lists replace whole lists).
    Update(TenantUpdate),
    /// List tenants.
    List,
    /// Show one tenant, which secrets it has (names only) and its active token count.
    Show { tenant_id: String },
    /// Offboard a tenant: revoke every token, delete its credentials (audit history stays).
    Remove {
        tenant_id: String,
        /// Required: removal cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct TenantAdd {
    pub tenant_id: String,
    #[arg(long)]
    pub name: String,
    #[arg(long = "webflow-site", required = true)]
    pub webflow_sites: Vec<String>,
    #[arg(long = "writable-collection")]
    pub writable_collections: Vec<String>,
    #[arg(long)]
    pub plausible_site: Option<String>,
    #[arg(long = "github-repo")]
    pub github_repos: Vec<String>,
    /// Grant only these toolsets (repeatable; default: all).
    #[arg(long = "toolset")]
    pub toolsets: Vec<Toolset>,
    #[arg(long)]
    pub read_only: bool,
    /// Tool calls per minute for this tenant (default: the server's STUDIO_MCP_TENANT_RATE_PER_MIN).
    #[arg(long)]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TenantUpdate {
    pub tenant_id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long = "webflow-site")]
    pub webflow_sites: Vec<String>,
    #[arg(long = "writable-collection")]
    pub writable_collections: Vec<String>,
    /// Remove every writable collection (the write tools disappear).
    #[arg(long, conflicts_with = "writable_collections")]
    pub no_writable_collections: bool,
    #[arg(long)]
    pub plausible_site: Option<String>,
    #[arg(long, conflicts_with = "plausible_site")]
    pub no_plausible_site: bool,
    #[arg(long = "github-repo")]
    pub github_repos: Vec<String>,
    #[arg(long, conflicts_with = "github_repos")]
    pub no_github_repos: bool,
    #[arg(long = "toolset")]
    pub toolsets: Vec<Toolset>,
    #[arg(long, conflicts_with = "read_write")]
    pub read_only: bool,
    #[arg(long)]
    pub read_write: bool,
    #[arg(long)]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Read a secret from standard input and store it encrypted.
    Set { tenant_id: String, kind: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; prints the token alone on standard output, once.
    Issue {
        tenant_id: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        ttl_days: Option<u64>,
    },
    /// List token ids, labels and dates (never tokens).
    List { tenant_id: Option<String> },
    /// Revoke a token by id; it fails on its very next request.
    Revoke { token_id: String },
}

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(
        cli.global.config.as_deref(),
        |k| std::env::var(k).ok(),
        SHARED_DEFAULTS,
    )?)
}

/// A small client for the admin API.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// The admin API of the server `config` describes; `admin_url` overrides its address.
    pub fn from_config(admin_url: Option<&str>, config: &Config) -> anyhow::Result<Self> {
        let base = admin_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("http://{}", config.admin_listen));
        let token = match std::env::var("STUDIO_MCP_ADMIN_TOKEN") {
            Ok(t) => t,
            Err(_) => {
                let path = config.admin_token_path();
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "cannot read the admin token at {} (has the server started with this STUDIO_MCP_DATA_DIR?)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Self::new(base, token)
    }

    pub fn new(base: String, token: String) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: common::upstream::http_client().context("cannot build the HTTP client")?,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&dyn erased::Json>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_json()?);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the admin API at {} (is the server running?)",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("admin API answer was cut off")?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{message} (HTTP {})", status.as_u16());
        }
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).context("admin API answer was not understood")
    }

    pub async fn add_tenant(&self, new: &NewTenant) -> anyhow::Result<Tenant> {
        self.call(reqwest::Method::POST, "/v1/tenants", Some(new))
            .await
    }

    pub async fn onboard(&self, request: &OnboardRequest) -> anyhow::Result<OnboardResponse> {
        self.call(reqwest::Method::POST, "/v1/onboard", Some(request))
            .await
    }

    pub async fn set_tenant(&self, id: &str, spec: &TenantSpec) -> anyhow::Result<Tenant> {
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{id}"),
            Some(spec),
        )
        .await
    }

    pub async fn update_tenant(&self, id: &str, patch: &TenantPatch) -> anyhow::Result<Tenant> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1/tenants/{id}"),
            Some(patch),
        )
        .await
    }

    pub async fn tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        self.call(reqwest::Method::GET, "/v1/tenants", None).await
    }

    pub async fn tenant(&self, id: &str) -> anyhow::Result<TenantDetail> {
        self.call(reqwest::Method::GET, &format!("/v1/tenants/{id}"), None)
            .await
    }

    pub async fn set_secret(&self, tenant: &str, kind: &str, value: String) -> anyhow::Result<()> {
        let body = SecretValue { value };
        let _: serde_json::Value = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/tenants/{tenant}/secrets/{kind}"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    pub async fn issue_token(
        &self,
        tenant: &str,
        req: &IssueRequest,
    ) -> anyhow::Result<IssuedToken> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/tokens"),
            Some(req),
        )
        .await
    }

    pub async fn tokens(&self, tenant: Option<&str>) -> anyhow::Result<Vec<TokenRecord>> {
        let path = match tenant {
            Some(t) => format!("/v1/tokens?tenant={t}"),
            None => "/v1/tokens".to_owned(),
        };
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn audit(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRecord>> {
        let mut path = format!("/v1/audit?limit={}", filter.limit.unwrap_or(100));
        if let Some(t) = &filter.tenant {
            path.push_str(&format!("&tenant={t}"));
        }
        if let Some(s) = filter.since_ms {
            path.push_str(&format!("&since_ms={s}"));
        }
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn remove_tenant(&self, id: &str) -> anyhow::Result<common::store::Removed> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{id}?confirm=true"),
            None,
        )
        .await
    }

    pub async fn revoke(&self, token_id: &str) -> anyhow::Result<TokenRecord> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/tokens/{token_id}/revoke"),
            None,
        )
        .await
    }
}

mod erased {
    /// Lets the admin client take any serialisable body without generics on every method.
    pub trait Json {
        fn to_json(&self) -> anyhow::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> anyhow::Result<Vec<u8>> {
            Ok(serde_json::to_vec(self)?)
        }
    }
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    crate::out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn date(secs: u64) -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm); avoids a time crate.
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn clock(secs: u64) -> String {
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// `30m`, `12h`, `7d` (or plain seconds) to milliseconds.
fn parse_ago(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("--since `{text}`: use a duration such as 30m, 12h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since `{text}`: use a duration such as 30m, 12h or 7d"),
    };
    Ok(secs * 1000)
}

/// Runs an admin subcommand against the admin API.
pub async fn run_admin(cli: &Cli, config: &Config) -> anyhow::Result<()> {
    let client = AdminClient::from_config(cli.global.admin_url.as_deref(), config)?;
    match &cli.command {
        Command::Serve => bail!("serve is not an admin command"),
        Command::Tenant(TenantCommand::Add(add)) => {
            let spec = spec_from(add)?;
            let new = NewTenant {
                id: add.tenant_id.clone(),
                spec,
            };
            print_json(&client.add_tenant(&new).await?)
        }
        Command::Onboard(args) => {
            let url = args.shared_url.clone().unwrap_or_else(|| mcp_url(config));
            crate::onboard::run(&client, &url, args).await
        }
        Command::Drill(DrillCommand::Revoke {
            tenant,
            mcp_url: url,
        }) => {
            let tenant = match tenant {
                Some(t) => t.clone(),
                None => client
                    .tenants()
                    .await?
                    .first()
                    .map(|t| t.id.to_string())
                    .context("no tenant to drill with; give --tenant")?,
            };
            let url = url.clone().unwrap_or_else(|| mcp_url(config));
            let report = crate::drill::revoke(&client, &url, &tenant).await?;
            crate::drill::print(&report);
            Ok(())
        }
        Command::Tenant(TenantCommand::Update(u)) => {
            let ids =
                |v: &[String], what: &'static str| -> anyhow::Result<Option<Vec<WebflowId>>> {
                    if v.is_empty() {
                        return Ok(None);
                    }
                    Ok(Some(
                        v.iter()
                            .map(|s| WebflowId::parse(what, s))
                            .collect::<Result<_, _>>()?,
                    ))
                };
            let patch = TenantPatch {
                name: u.name.clone(),
                webflow_sites: ids(&u.webflow_sites, "--webflow-site")?,
                writable_collections: if u.no_writable_collections {
                    Some(Vec::new())
                } else {
                    ids(&u.writable_collections, "--writable-collection")?
                },
                plausible_site: u
                    .plausible_site
                    .as_deref()
                    .map(PlausibleSite::parse)
                    .transpose()?,
                clear_plausible_site: u.no_plausible_site,
                github_repos: if u.no_github_repos {
                    Some(Vec::new())
                } else if u.github_repos.is_empty() {
                    None
                } else {
                    Some(
                        u.github_repos
                            .iter()
                            .map(|r| RepoName::parse(r))
                            .collect::<Result<_, _>>()?,
                    )
                },
                toolsets: (!u.toolsets.is_empty()).then(|| u.toolsets.clone()),
                read_only: match (u.read_only, u.read_write) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                rate_limit_per_min: u.rate_limit,
            };
            print_json(&client.update_tenant(&u.tenant_id, &patch).await?)
        }
        Command::Tenant(TenantCommand::List) => {
            for t in client.tenants().await? {
                let sites: Vec<_> = t.webflow_sites.iter().map(|s| s.to_string()).collect();
                crate::out!(
                    "{}\t{}\t{}\t{}",
                    t.id,
                    printable(&t.name),
                    sites.join(","),
                    if t.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    }
                );
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::Show { tenant_id }) => {
            print_json(&client.tenant(tenant_id).await?)
        }
        Command::Tenant(TenantCommand::Remove { tenant_id, yes }) => {
            remove_tenant(&client, tenant_id, *yes).await
        }
        Command::Secret(c) => run_secret(&client, c).await,
        Command::Token(c) => run_token(&client, c).await,
        Command::Audit(a) => run_audit(&client, a).await,
        Command::Compose(c) => crate::compose::run(&client, c).await,
    }
}

/// A tenant spec from `tenant add`'s options (also used by `onboard`).
pub fn spec_from(add: &TenantAdd) -> anyhow::Result<TenantSpec> {
    let ids = |v: &[String], what: &'static str| -> anyhow::Result<Vec<WebflowId>> {
        Ok(v.iter()
            .map(|s| WebflowId::parse(what, s))
            .collect::<Result<_, _>>()?)
    };
    Ok(TenantSpec {
        name: add.name.clone(),
        webflow_sites: ids(&add.webflow_sites, "--webflow-site")?,
        writable_collections: ids(&add.writable_collections, "--writable-collection")?,
        plausible_site: add
            .plausible_site
            .as_deref()
            .map(PlausibleSite::parse)
            .transpose()?,
        github_repos: add
            .github_repos
            .iter()
            .map(|r| RepoName::parse(r))
            .collect::<Result<_, _>>()?,
        toolsets: (!add.toolsets.is_empty()).then(|| add.toolsets.clone()),
        read_only: add.read_only,
        rate_limit_per_min: add.rate_limit,
        ..TenantSpec::default()
    })
}

/// The MCP endpoint the server `config` describes.
pub fn mcp_url(config: &Config) -> String {
    match &config.public_url {
        Some(url) => format!("{url}/mcp"),
        None => format!("http://{}/mcp", config.listen),
    }
}

/// `tenant remove <id> --yes` on both servers.
pub async fn remove_tenant(client: &AdminClient, tenant_id: &str, yes: bool) -> anyhow::Result<()> {
    if !yes {
        bail!(
            "removing {} revokes every token and deletes its stored credentials, and cannot be undone; \
             repeat with --yes",
            printable(tenant_id)
        );
    }
    let removed = client.remove_tenant(tenant_id).await?;
    eprintln!(
        "removed {}: {} token(s) revoked, {} credential(s) deleted; its audit history is kept",
        printable(tenant_id),
        removed.tokens_revoked,
        removed.secrets_deleted
    );
    Ok(())
}

pub async fn run_secret(client: &AdminClient, command: &SecretCommand) -> anyhow::Result<()> {
    let SecretCommand::Set { tenant_id, kind } = command;
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the secret from standard input")?;
    client
        .set_secret(tenant_id, kind, value.trim().to_owned())
        .await?;
    eprintln!("stored the {kind} secret for {tenant_id} (encrypted)");
    Ok(())
}

pub async fn run_token(client: &AdminClient, command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue {
            tenant_id,
            label,
            ttl_days,
        } => {
            let request = IssueRequest {
                label: label.clone(),
                ttl_days: *ttl_days,
            };
            let issued = client.issue_token(tenant_id, &request).await?;
            eprintln!(
                "issued {} for {} (expires {}); it is shown only now",
                issued.record.id,
                issued.record.tenant,
                issued
                    .record
                    .expires_at
                    .map(date)
                    .unwrap_or_else(|| "never".into())
            );
            crate::out!("{}", issued.token);
            Ok(())
        }
        TokenCommand::List { tenant_id } => {
            crate::out!("ID\tTENANT\tLABEL\tCREATED\tEXPIRES\tREVOKED");
            for t in client.tokens(tenant_id.as_deref()).await? {
                crate::out!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.tenant,
                    if t.label.is_empty() {
                        "-".into()
                    } else {
                        printable(&t.label)
                    },
                    date(t.created_at),
                    t.expires_at.map(date).unwrap_or_else(|| "-".into()),
                    t.revoked_at.map(date).unwrap_or_else(|| "-".into()),
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { token_id } => {
            let record = client.revoke(token_id).await?;
            eprintln!("revoked {} ({})", record.id, record.tenant);
            Ok(())
        }
    }
}

pub async fn run_audit(client: &AdminClient, args: &AuditArgs) -> anyhow::Result<()> {
    let since_ms = args
        .since
        .as_deref()
        .map(parse_ago)
        .transpose()?
        .map(|ago_ms| common::audit::now_ms().saturating_sub(ago_ms));
    let filter = AuditFilter {
        tenant: args.tenant.clone(),
        since_ms,
        limit: Some(args.limit),
    };
    let records = client.audit(&filter).await?;
    if args.json {
        for r in &records {
            crate::out!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    crate::out!("TIME(UTC)\tTENANT\tACTION\tOUTCOME\tDURATION_US\tARGS_DIGEST\tREQUEST");
    for r in &records {
        crate::out!(
            "{} {}\t{}\t{}\t{}\t{}\t{}\t{}",
            date(r.at_ms / 1000),
            clock(r.at_ms / 1000),
            printable(&r.tenant),
            printable(&r.action),
            printable(&r.outcome),
            r.duration_us,
            printable(&r.args_digest),
            printable(&r.request_id)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_795_000_000), "2026-11-18");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_ago("90").unwrap(), 90_000);
        assert_eq!(super::parse_ago("2h").unwrap(), 7_200_000);
        assert!(super::parse_ago("2 weeks").is_err());
    }
}
