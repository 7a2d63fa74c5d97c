//! The admin subcommands both servers share (`secret`, `token`, `audit`, `drill`, `tenant
//! remove`), their global options and output helpers. Each binary's own `Cli` embeds these.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::runtime::admin::client::AdminClient;
use crate::runtime::admin::{AuditFilter, IssueRequest};
use crate::runtime::server::telemetry::printable;

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
pub enum DrillCommand {
    /// Issue a canary token, prove it works, revoke it, prove the next request fails, report.
    Revoke {
        /// The tenant to drill with (default: the first tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// The MCP endpoint to call (default: STUDIO_MCP_PUBLIC_URL + /mcp).
        #[arg(long)]
        mcp_url: Option<String>,
        /// Also each replica's own MCP endpoint (repeat): the canary must be refused by all.
        #[arg(long = "replica")]
        replicas: Vec<String>,
    },
    /// Back up the running server, restore the backup into a scratch data dir, start a second
    /// server on it on loopback and prove a canary token there; report each step's time. The
    /// running server's data is never touched.
    Restore {
        /// The tenant whose canary proves the copy (default: the first tenant).
        #[arg(long)]
        tenant: Option<String>,
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

#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Invite a person; prints the invite link alone on standard output (one-time; it expires).
    Invite {
        /// The tenant (an isolated instance's own tenant if omitted there).
        tenant_id: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// `member` (connects AI assistants) or `approver` (also approves high-risk actions).
        #[arg(long, default_value = "member")]
        role: String,
        /// Days until the link expires (default 7).
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// A new invite link for an existing person (lost or new device): their passkeys are
    /// forgotten and their sign-ins end at once; their role and connections stay.
    Reinvite {
        person_id: String,
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// List people (never their passkeys or links).
    List { tenant_id: Option<String> },
    /// Remove a person: their connections and sign-ins stop on the very next request.
    Remove { person_id: String },
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// List connections people allowed (OAuth grants), never their tokens.
    List { tenant_id: Option<String> },
    /// Revoke a connection: its tokens are refused on the very next request.
    Revoke { grant_id: String },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List high-risk actions waiting for, or past, a decision (newest first).
    List,
    /// Approve as the operator: the action runs at once; prints its outcome.
    Approve { approval_id: String },
    /// Deny as the operator: nothing is done.
    Deny { approval_id: String },
}

pub async fn run_approval(client: &AdminClient, command: &ApprovalCommand) -> anyhow::Result<()> {
    match command {
        ApprovalCommand::List => {
            crate::out!("ID\tTOOL\tSTATE\tREQUESTED\tDECIDED BY");
            for a in client.approvals().await? {
                crate::out!(
                    "{}\t{}\t{}\t{} {}\t{}",
                    a.id,
                    a.tool,
                    a.state,
                    date(a.created_at),
                    clock(a.created_at),
                    a.decided_by
                        .as_deref()
                        .map(printable)
                        .unwrap_or_else(|| "-".into()),
                );
            }
            Ok(())
        }
        ApprovalCommand::Approve { approval_id } | ApprovalCommand::Deny { approval_id } => {
            let approve = matches!(command, ApprovalCommand::Approve { .. });
            let a = client.decide_approval(approval_id, approve).await?;
            eprintln!("{} {}: {}", a.id, a.tool, a.state);
            print_json(&a)
        }
    }
}

pub async fn run_person(
    client: &AdminClient,
    command: &PersonCommand,
    own_tenant: Option<&str>,
) -> anyhow::Result<()> {
    match command {
        PersonCommand::Invite {
            tenant_id,
            name,
            email,
            role,
            expires_days,
        } => {
            let Some(tenant) = tenant_id.as_deref().or(own_tenant) else {
                bail!("name the tenant: person invite <tenant> --name <name>");
            };
            let request = crate::runtime::admin::InviteRequest {
                name: name.clone(),
                email: email.clone(),
                role: Some(role.clone()),
                expires_days: *expires_days,
            };
            let invited = client.invite_person(tenant, &request).await?;
            eprintln!(
                "invited {} ({}) to {} as {}; the link works once, until {}; send it to them",
                printable(&invited.person.name),
                invited.person.id,
                invited.person.tenant,
                invited.person.role.as_str(),
                date(invited.expires_at),
            );
            eprintln!(
                "they add {} as a custom connector in Claude or ChatGPT",
                invited.connector_url
            );
            crate::out!("{}", invited.invite_url);
            Ok(())
        }
        PersonCommand::Reinvite {
            person_id,
            expires_days,
        } => {
            let request = crate::runtime::admin::ReinviteRequest {
                expires_days: *expires_days,
            };
            let invited = client.reinvite_person(person_id, &request).await?;
            eprintln!(
                "re-invited {} ({}) to {}; their old passkeys no longer sign in; the link works \
                 once, until {}; their connections stay (`grant list`, `grant revoke`)",
                printable(&invited.person.name),
                invited.person.id,
                invited.person.tenant,
                date(invited.expires_at),
            );
            crate::out!("{}", invited.invite_url);
            Ok(())
        }
        PersonCommand::List { tenant_id } => {
            crate::out!("ID\tTENANT\tNAME\tROLE\tPASSKEYS\tCREATED\tLAST SIGN-IN");
            for p in client.people(tenant_id.as_deref()).await? {
                crate::out!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    p.id,
                    p.tenant,
                    printable(&p.name),
                    p.role.as_str(),
                    p.passkeys,
                    date(p.created_at),
                    p.last_sign_in_at.map(date).unwrap_or_else(|| "-".into()),
                );
            }
            Ok(())
        }
        PersonCommand::Remove { person_id } => {
            let removed = client.remove_person(person_id).await?;
            eprintln!(
                "removed {} ({}) from {}; {} connection(s) revoked",
                printable(&removed.person.name),
                removed.person.id,
                removed.person.tenant,
                removed.grants_revoked
            );
            Ok(())
        }
    }
}

pub async fn run_grant(client: &AdminClient, command: &GrantCommand) -> anyhow::Result<()> {
    match command {
        GrantCommand::List { tenant_id } => {
            crate::out!("ID\tTENANT\tPERSON\tCLIENT\tCREATED\tLAST REFRESH\tREVOKED");
            for g in client.grants(tenant_id.as_deref()).await? {
                crate::out!(
                    "{}\t{}\t{} ({})\t{}\t{}\t{}\t{}",
                    g.id,
                    g.tenant,
                    printable(&g.person_name),
                    g.person,
                    printable(&g.client_name),
                    date(g.created_at),
                    date(g.refreshed_at),
                    g.revoked_at.map(date).unwrap_or_else(|| "-".into()),
                );
            }
            Ok(())
        }
        GrantCommand::Revoke { grant_id } => {
            let grant = client.revoke_grant(grant_id).await?;
            eprintln!(
                "revoked {} ({}, {} via {})",
                grant.id,
                grant.tenant,
                printable(&grant.person_name),
                printable(&grant.client_name)
            );
            Ok(())
        }
    }
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    crate::out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn date(secs: u64) -> String {
    crate::store::audit::day(secs.saturating_mul(1000))
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
        .map(|ago_ms| crate::audit::now_ms().saturating_sub(ago_ms));
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
