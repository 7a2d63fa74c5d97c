//! The isolated server's command line: `serve`, and admin subcommands that talk to the running
//! instance's admin API. `secret`, `token` and `audit` work exactly as on the shared server.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use common::config::{Config, ISOLATED_DEFAULTS};
use common::domain::{DnsName, StripeCustomer, WebflowId, ZoneId};
use common::runtime::admin::client::AdminClient;
use common::runtime::ops::cli::{
    ApprovalCommand, AuditArgs, DrillCommand, GlobalArgs, GrantCommand, PersonCommand,
    SecretCommand, TokenCommand, mcp_url, print_json, remove_tenant, run_approval, run_audit,
    run_grant, run_person, run_secret, run_token,
};
use common::tenant::TenantSpec;

#[derive(Debug, Parser)]
#[command(
    name = "isolated-server",
    version,
    about = "studio-mcp: one client's isolated server for publish, DNS and billing"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the instance (MCP listener and admin listener) for STUDIO_MCP_TENANT.
    Serve,
    /// Set or show what this instance's tenant may act on.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Store an upstream credential (webflow, webflow-app, cloudflare, stripe) read from
    /// standard input.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Issue, list and revoke MCP bearer tokens for this instance.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Invite, list and remove people (passkey sign-in; OAuth connectors).
    #[command(subcommand)]
    Person(PersonCommand),
    /// List and revoke the connections people allowed (OAuth grants).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// High-risk actions waiting for a person: list, or decide as the operator.
    #[command(subcommand)]
    Approval(ApprovalCommand),
    /// Read the audit log (newest first).
    Audit(AuditArgs),
    /// Check a connector URL as claude.ai and ChatGPT would before their first call: one line
    /// per step with the fix; exit 0 only when a connector would work. Needs no config.
    Doctor(common::runtime::ops::doctor::DoctorArgs),
    /// Rehearse operations (`drill revoke`).
    #[command(subcommand)]
    Drill(DrillCommand),
    /// The store itself: a backup of the running instance, or (instance stopped) its restore.
    #[command(subcommand)]
    Store(common::runtime::ops::store::BackupCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create or replace the tenant record of this instance.
    Set(TenantSet),
    /// Show the tenant, its stored secret kinds and active token count.
    Show,
    /// Offboard this instance's tenant: revoke every token, delete its credentials (audit
    /// history stays).
    Remove {
        /// Must be STUDIO_MCP_TENANT when given.
        tenant_id: Option<String>,
        /// Required: removal cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct TenantSet {
    #[arg(long)]
    pub name: String,
    #[arg(long = "webflow-site", required = true)]
    pub webflow_sites: Vec<String>,
    /// Webflow custom domain ids the site may be published to (repeatable).
    #[arg(long = "custom-domain")]
    pub custom_domains: Vec<String>,
    /// The Cloudflare zone id DNS changes are limited to.
    #[arg(long)]
    pub dns_zone: Option<String>,
    /// A record name or `*.suffix` pattern DNS changes are limited to (repeatable).
    #[arg(long = "dns-name")]
    pub dns_names: Vec<String>,
    /// The Stripe customer billing is limited to (`cus_…`).
    #[arg(long)]
    pub stripe_customer: Option<String>,
    /// A host (or `*.suffix` pattern) the billing portal may return to, besides the site's
    /// custom domains (repeatable).
    #[arg(long = "billing-return-host")]
    pub billing_return_hosts: Vec<String>,
    /// A CMS collection id whose items may be deleted or unpublished, each after a person's
    /// approval (repeatable; none unless named).
    #[arg(long = "deletable-collection")]
    pub deletable_collections: Vec<String>,
}

/// What `tenant set` sends: every id parsed, a bad one refused naming its flag.
pub fn tenant_spec(set: &TenantSet) -> anyhow::Result<TenantSpec> {
    let ids = |v: &[String], what: &'static str| -> anyhow::Result<Vec<WebflowId>> {
        Ok(v.iter()
            .map(|s| WebflowId::parse(what, s))
            .collect::<Result<_, _>>()?)
    };
    Ok(TenantSpec {
        name: set.name.clone(),
        webflow_sites: ids(&set.webflow_sites, "--webflow-site")?,
        custom_domains: ids(&set.custom_domains, "--custom-domain")?,
        dns_zone: set.dns_zone.as_deref().map(ZoneId::parse).transpose()?,
        dns_names: set
            .dns_names
            .iter()
            .map(|n| DnsName::parse(n))
            .collect::<Result<_, _>>()?,
        stripe_customer: set
            .stripe_customer
            .as_deref()
            .map(StripeCustomer::parse)
            .transpose()?,
        billing_return_hosts: set
            .billing_return_hosts
            .iter()
            .map(|n| DnsName::parse(n))
            .collect::<Result<_, _>>()?,
        deletable_collections: ids(&set.deletable_collections, "--deletable-collection")?,
        ..TenantSpec::default()
    })
}

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(
        cli.global.config.as_deref(),
        |k| std::env::var(k).ok(),
        ISOLATED_DEFAULTS,
    )?)
}

pub async fn run_admin(cli: &Cli, config: &Config) -> anyhow::Result<()> {
    let client = AdminClient::from_config(cli.global.admin_url.as_deref(), config)?;
    let tenant = || {
        config
            .tenant
            .clone()
            .context("STUDIO_MCP_TENANT must name this instance's tenant")
    };
    match &cli.command {
        Command::Serve | Command::Store(_) | Command::Doctor(_) => {
            anyhow::bail!("not an admin command")
        }
        Command::Tenant(TenantCommand::Set(set)) => {
            print_json(&client.set_tenant(&tenant()?, &tenant_spec(set)?).await?)
        }
        Command::Tenant(TenantCommand::Show) => print_json(&client.tenant(&tenant()?).await?),
        Command::Tenant(TenantCommand::Remove { tenant_id, yes }) => {
            let id = tenant_id.clone().map(Ok).unwrap_or_else(tenant)?;
            remove_tenant(&client, &id, *yes).await
        }
        Command::Secret(c) => run_secret(&client, c).await,
        Command::Token(c) => run_token(&client, c).await,
        Command::Person(c) => {
            // The instance's one tenant: from its configuration, or asked of the instance.
            let own = match config.tenant.clone() {
                Some(t) => Some(t),
                None => client.tenants().await?.first().map(|t| t.id.to_string()),
            };
            run_person(&client, c, own.as_deref()).await
        }
        Command::Grant(c) => run_grant(&client, c).await,
        Command::Approval(c) => run_approval(&client, c).await,
        Command::Audit(a) => run_audit(&client, a).await,
        Command::Drill(DrillCommand::Revoke {
            tenant: asked,
            mcp_url: url,
            replicas,
        }) => {
            if !replicas.is_empty() {
                bail!("an isolated instance is one process: it has no replicas to drill");
            }
            let tenant = asked.clone().map(Ok).unwrap_or_else(tenant)?;
            let url = url.clone().unwrap_or_else(|| mcp_url(config));
            let endpoints = [url.as_str()];
            let report =
                common::runtime::ops::drill::revoke(&client, &endpoints, &tenant, None).await?;
            common::runtime::ops::drill::print(&report);
            Ok(())
        }
        Command::Drill(DrillCommand::Restore { tenant: asked }) => {
            let tenant = asked.clone().map(Ok).unwrap_or_else(tenant)?;
            let report = common::runtime::ops::restore_drill::run(&client, config, &tenant).await?;
            common::runtime::ops::restore_drill::print(&report);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SITE: &str = "0123456789abcdef01234567";
    const BLOG: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const AUTHORS: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    fn set(args: &[&str]) -> anyhow::Result<TenantSpec> {
        let mut argv = vec!["isolated-server", "tenant", "set", "--name", "Acme"];
        argv.extend(["--webflow-site", SITE]);
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv)?;
        match &cli.command {
            Command::Tenant(TenantCommand::Set(set)) => tenant_spec(set),
            other => anyhow::bail!("parsed as {other:?}"),
        }
    }

    #[test]
    fn deletable_collections_are_repeatable_and_checked() {
        let none = set(&[]).unwrap();
        assert!(none.deletable_collections.is_empty());
        let two = set(&[
            "--deletable-collection",
            BLOG,
            "--deletable-collection",
            AUTHORS,
        ])
        .unwrap();
        let ids: Vec<&str> = two
            .deletable_collections
            .iter()
            .map(WebflowId::as_str)
            .collect();
        assert_eq!(ids, [BLOG, AUTHORS]);
        let err = set(&["--deletable-collection", "blog-posts"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--deletable-collection"), "{err}");
    }
}
