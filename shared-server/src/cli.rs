//! The shared server's command line: `serve`, its own subcommands (`tenant add|update|list|show|
//! remove`, `compose`, `onboard`) and the admin subcommands both servers share, all talking to the
//! running server's admin API (they never open the store, so the server need not be stopped).

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use common::config::{Config, SHARED_DEFAULTS};
use common::domain::{PlausibleSite, RepoName, WebflowId};
use common::runtime::admin::NewTenant;
use common::runtime::admin::client::AdminClient;
use common::runtime::ops::cli::{
    AuditArgs, DrillCommand, GlobalArgs, GrantCommand, PersonCommand, SecretCommand, TokenCommand,
    mcp_url, print_json, remove_tenant, run_audit, run_grant, run_person, run_secret, run_token,
};
use common::runtime::server::telemetry::printable;
use common::tenant::{TenantPatch, Toolset};

use crate::tenant_args::{TenantAdd, spec_from};

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
    /// Invite, list and remove people (passkey sign-in; OAuth connectors).
    #[command(subcommand)]
    Person(PersonCommand),
    /// List and revoke the connections people allowed (OAuth grants).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Read the audit log (newest first).
    Audit(AuditArgs),
    /// Write the docker compose deployment (one isolated instance per tenant) from the tenants.
    Compose(crate::compose::ComposeArgs),
    /// A new client in one go: verify credentials (stdin, kind=value lines), create the tenant,
    /// store the credentials, issue tokens, print client configuration.
    Onboard(Box<crate::onboard::OnboardArgs>),
    /// Check a connector URL as claude.ai and ChatGPT would before their first call: one line
    /// per step with the fix; exit 0 only when a connector would work. Needs no config.
    Doctor(common::runtime::ops::doctor::DoctorArgs),
    /// Rehearse operations.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// The store itself: a backup of the running server, or (server stopped) its restore or a
    /// migration to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this data dir's sled store into an empty PostgreSQL database, all or nothing, and
    /// verify the counts; then run the replicas with STUDIO_MCP_STORE set to it.
    Migrate {
        /// The target: postgres://user[:password]@host[:port]/database[?sslmode=require]
        /// (or the password in STUDIO_MCP_STORE_PASSWORD_FILE).
        #[arg(long)]
        to: String,
    },
    #[command(flatten)]
    Backups(common::runtime::ops::store::BackupCommand),
}

/// Runs a `store` subcommand: a backup through the running server's admin API; a migration or
/// restore on the data dir, the server stopped.
pub async fn run_store(
    config: &Config,
    admin_url: Option<&str>,
    command: &StoreCommand,
) -> anyhow::Result<()> {
    let to = match command {
        StoreCommand::Backups(command) => {
            return common::runtime::ops::store::run(
                config,
                admin_url,
                crate::SHARED.name,
                command,
            )
            .await;
        }
        StoreCommand::Migrate { to } => to,
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let options = common::runtime::server::startup::pg_options(config)?;
    let keys = common::runtime::server::startup::shared_key_fingerprints(config)?;
    let copied = common::store::migrate_to_postgres(&config.store_path(), to, options, &keys)
        .context("store migrate")?;
    let total: i64 = copied.iter().map(|(_, n)| n).sum();
    for (what, n) in &copied {
        common::out!("{what}\t{n}");
    }
    common::out!(
        "copied {total} records into PostgreSQL and verified the counts. Give every replica the \
         same key files as this data dir (signing.key, master.key, admin-token: \
         STUDIO_MCP_SIGNING_KEY_FILE, STUDIO_MCP_MASTER_KEY_FILE, STUDIO_MCP_ADMIN_TOKEN_FILE) \
         and STUDIO_MCP_STORE set to the database; the sled store is left as it was."
    );
    Ok(())
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

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(
        cli.global.config.as_deref(),
        |k| std::env::var(k).ok(),
        SHARED_DEFAULTS,
    )?)
}

/// Runs an admin subcommand against the admin API.
pub async fn run_admin(cli: &Cli, config: &Config) -> anyhow::Result<()> {
    let client = AdminClient::from_config(cli.global.admin_url.as_deref(), config)?;
    match &cli.command {
        Command::Serve | Command::Store(_) | Command::Doctor(_) => bail!("not an admin command"),
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
            replicas,
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
            let mut endpoints = vec![url.as_str()];
            endpoints.extend(replicas.iter().map(String::as_str));
            // Replicas reached by their own addresses still expect the public URL's host.
            let host = config
                .public_url
                .as_deref()
                .and_then(common::runtime::ops::drill::host_of);
            let host = if replicas.is_empty() { None } else { host };
            let report =
                common::runtime::ops::drill::revoke(&client, &endpoints, &tenant, host.as_deref())
                    .await?;
            common::runtime::ops::drill::print(&report);
            Ok(())
        }
        Command::Drill(DrillCommand::Restore { tenant }) => {
            let tenant = match tenant {
                Some(t) => t.clone(),
                None => client
                    .tenants()
                    .await?
                    .first()
                    .map(|t| t.id.to_string())
                    .context("no tenant to drill with; give --tenant")?,
            };
            let report = common::runtime::ops::restore_drill::run(&client, config, &tenant).await?;
            common::runtime::ops::restore_drill::print(&report);
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
                common::out!(
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
        Command::Person(c) => run_person(&client, c, None).await,
        Command::Grant(c) => run_grant(&client, c).await,
        Command::Audit(a) => run_audit(&client, a).await,
        Command::Compose(c) => crate::compose::run(&client, c).await,
    }
}
