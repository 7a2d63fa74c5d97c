//! `onboard`: a new client in one command. Reads the upstream credentials from standard input,
//! verifies every one against its API on the shared server and, when asked, on the client's
//! isolated instance (dry runs first, so a failure anywhere stores nothing anywhere), then
//! creates the tenant, stores the sealed credentials, issues the tokens and prints client
//! configuration for Claude Code, Claude Desktop, Cursor and VS Code.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};
use clap::Args;
use common::domain::{DnsName, StripeCustomer, WebflowId, ZoneId};
use common::tenant::TenantSpec;
use serde_json::json;

use crate::tenant_args::{TenantAdd, spec_from};
use common::runtime::admin::OnboardRequest;
use common::runtime::admin::client::AdminClient;

#[derive(Debug, Args)]
pub struct OnboardArgs {
    #[command(flatten)]
    pub tenant: TenantAdd,
    /// The shared server's public MCP URL to print (default: STUDIO_MCP_PUBLIC_URL + /mcp).
    #[arg(long)]
    pub shared_url: Option<String>,
    /// The client's isolated instance: its admin API origin (enables the isolated part).
    #[arg(long)]
    pub isolated_admin_url: Option<String>,
    /// File holding that instance's admin token (or STUDIO_MCP_ISOLATED_ADMIN_TOKEN).
    #[arg(long)]
    pub isolated_admin_token_file: Option<std::path::PathBuf>,
    /// The isolated instance's public MCP URL to print.
    #[arg(long)]
    pub isolated_url: Option<String>,
    #[arg(long = "custom-domain")]
    pub custom_domains: Vec<String>,
    #[arg(long)]
    pub dns_zone: Option<String>,
    #[arg(long = "dns-name")]
    pub dns_names: Vec<String>,
    #[arg(long)]
    pub stripe_customer: Option<String>,
    /// The client's contact to invite (passkey sign-in, connectors); default "<name> team".
    #[arg(long)]
    pub person_name: Option<String>,
    #[arg(long)]
    pub person_email: Option<String>,
    /// `approver` (default: the client's contact approves high-risk actions) or `member`.
    #[arg(long, default_value = "approver")]
    pub person_role: String,
}

/// `kind=value` lines; blank lines and `#` comments are skipped.
pub fn parse_credentials(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            bail!(
                "standard input line {}: write kind=value (e.g. webflow=…)",
                n + 1
            );
        };
        let kind = kind.trim().to_ascii_lowercase();
        kind.parse::<common::secrets::SecretKind>()
            .map_err(anyhow::Error::msg)?;
        if out.insert(kind.clone(), value.trim().to_owned()).is_some() {
            bail!("standard input gives the {kind} credential twice");
        }
    }
    if !out.contains_key("webflow") {
        bail!("standard input must give at least webflow=<site token>");
    }
    Ok(out)
}

fn pick(all: &BTreeMap<String, String>, kinds: &[&str]) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| kinds.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub async fn run(shared: &AdminClient, shared_url: &str, args: &OnboardArgs) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read credentials from standard input")?;
    let credentials = parse_credentials(&input)?;
    let t = &args.tenant;
    let spec = spec_from(t)?;
    let shared_request = |dry_run| OnboardRequest {
        id: t.tenant_id.clone(),
        spec: spec.clone(),
        secrets: pick(&credentials, &["webflow", "plausible", "github"]),
        dry_run,
        label: Some("onboard".into()),
    };

    let isolated = match &args.isolated_admin_url {
        None => {
            if ["cloudflare", "stripe", "webflow-app"]
                .iter()
                .any(|k| credentials.contains_key(*k))
            {
                bail!(
                    "cloudflare/stripe/webflow-app credentials belong to the isolated instance: give --isolated-admin-url"
                );
            }
            None
        }
        Some(url) => {
            let token = match std::env::var("STUDIO_MCP_ISOLATED_ADMIN_TOKEN") {
                Ok(t) => t,
                Err(_) => {
                    let path = args.isolated_admin_token_file.as_ref().context(
                        "give --isolated-admin-token-file or STUDIO_MCP_ISOLATED_ADMIN_TOKEN",
                    )?;
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?
                }
            };
            let spec = TenantSpec {
                name: spec.name.clone(),
                webflow_sites: spec.webflow_sites.clone(),
                custom_domains: args
                    .custom_domains
                    .iter()
                    .map(|d| WebflowId::parse("--custom-domain", d))
                    .collect::<Result<_, _>>()?,
                dns_zone: args.dns_zone.as_deref().map(ZoneId::parse).transpose()?,
                dns_names: args
                    .dns_names
                    .iter()
                    .map(|n| DnsName::parse(n))
                    .collect::<Result<_, _>>()?,
                stripe_customer: args
                    .stripe_customer
                    .as_deref()
                    .map(StripeCustomer::parse)
                    .transpose()?,
                ..TenantSpec::default()
            };
            let client = AdminClient::new(url.clone(), token.trim().to_owned())?;
            Some((client, spec))
        }
    };
    let isolated_request = |spec: &TenantSpec, dry_run| OnboardRequest {
        id: t.tenant_id.clone(),
        spec: spec.clone(),
        secrets: pick(
            &credentials,
            &["webflow", "webflow-app", "cloudflare", "stripe"],
        ),
        dry_run,
        label: Some("onboard".into()),
    };

    // 1. Verify everywhere; nothing is stored until every credential has proven itself.
    let checked = shared
        .onboard(&shared_request(true))
        .await
        .context("shared server")?;
    eprintln!(
        "verified on the shared server: {}",
        checked.verified.join(", ")
    );
    for warning in &checked.warnings {
        eprintln!("warning (shared server): {warning}");
    }
    if let Some((client, spec)) = &isolated {
        let checked = client
            .onboard(&isolated_request(spec, true))
            .await
            .context("isolated instance")?;
        eprintln!(
            "verified on the isolated instance: {}",
            checked.verified.join(", ")
        );
        for warning in &checked.warnings {
            eprintln!("warning (isolated instance): {warning}");
        }
    }

    // 2. Store and issue.
    let done = shared
        .onboard(&shared_request(false))
        .await
        .context("shared server")?;
    let shared_token = done.token.context("the shared server issued no token")?;
    let mut isolated_token = None;
    if let Some((client, spec)) = &isolated {
        let done = client
            .onboard(&isolated_request(spec, false))
            .await
            .context("isolated instance (the shared part is done; rerun with only the isolated options after fixing this)")?;
        isolated_token = done.token;
    }

    // 3. The client's contact, invited on each server that has a connector door (a person
    //    belongs to one server's store, and signs in only on its connector origin).
    let invite = common::runtime::admin::InviteRequest {
        name: args
            .person_name
            .clone()
            .unwrap_or_else(|| format!("{} team", t.name)),
        email: args.person_email.clone(),
        role: Some(args.person_role.clone()),
        expires_days: None,
    };
    let shared_invite = invite_if_connector(shared, &t.tenant_id, &invite)
        .await
        .context("inviting the client's contact on the shared server")?;
    let mut isolated_invite = None;
    if let Some((client, _)) = &isolated {
        isolated_invite = invite_if_connector(client, &t.tenant_id, &invite)
            .await
            .context("inviting the client's contact on the isolated instance")?;
    }

    // 4. Client configuration, printed once: the tokens and links exist nowhere else.
    let id = &t.tenant_id;
    print_configs(&format!("studio-{id}"), shared_url, &shared_token.token);
    print_connector("shared server", shared_invite.as_ref());
    if let (Some(token), Some(url)) = (&isolated_token, &args.isolated_url) {
        print_configs(&format!("studio-{id}-isolated"), url, &token.token);
        if isolated.is_some() {
            print_connector("isolated instance", isolated_invite.as_ref());
        }
    } else if let Some(token) = &isolated_token {
        common::out!("isolated instance token for {id}: {}", token.token);
        if let Some(invited) = &isolated_invite {
            common::out!("isolated instance connector URL: {}", invited.connector_url);
            common::out!("isolated instance invite link: {}", invited.invite_url);
        }
        common::out!("(give --isolated-url to print its client configuration)");
    }
    Ok(())
}

/// Invites the contact on a server with a connector door; `None` on one without (people
/// cannot sign in there, so there is nothing to invite them to).
async fn invite_if_connector(
    client: &AdminClient,
    tenant: &str,
    invite: &common::runtime::admin::InviteRequest,
) -> anyhow::Result<Option<common::runtime::admin::Invited>> {
    if client.server().await?.connector_url.is_none() {
        return Ok(None);
    }
    Ok(Some(client.invite_person(tenant, invite).await?))
}

/// What to send the client's contact: the connector URL, the invite link, and the words; or
/// that `server` has no connector door.
pub fn print_connector(server: &str, invited: Option<&common::runtime::admin::Invited>) {
    let Some(invited) = invited else {
        common::out!(
            "No connector on the {server} (it has no STUDIO_MCP_CONNECTOR_URL): Claude's and \
             ChatGPT's connectors cannot reach it, and nobody was invited.\n"
        );
        return;
    };
    common::out!("Connector on the {server} (Claude, ChatGPT; OAuth with a passkey):");
    common::out!("  connector URL: {}", invited.connector_url);
    common::out!(
        "  invite link:   {}  (works once, for 7 days)",
        invited.invite_url
    );
    common::out!(
        "  Send the client: \"In Claude: Settings → Connectors → Add custom connector, paste this URL, \
         then open your invite link. In ChatGPT: Settings → Connectors → Create, same URL.\"\n"
    );
}

/// Ready-to-paste configuration for the four clients the studio supports.
pub fn print_configs(name: &str, url: &str, token: &str) {
    let bearer = format!("Bearer {token}");
    let desktop = json!({"mcpServers": {name: {
        "command": "npx",
        "args": ["mcp-remote", url, "--header", "Authorization:${AUTH_HEADER}"],
        "env": {"AUTH_HEADER": bearer},
    }}});
    let cursor = json!({"mcpServers": {name: {"url": url, "headers": {"Authorization": bearer}}}});
    let vscode = json!({"servers": {name: {"type": "http", "url": url, "headers": {"Authorization": bearer}}}});
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    common::out!("== {name}  ({url})");
    common::out!(
        "Claude Code:\n  claude mcp add --transport http {name} {url} --header \"Authorization: {bearer}\""
    );
    common::out!(
        "Claude Desktop (claude_desktop_config.json, via mcp-remote):\n{}",
        pretty(&desktop)
    );
    common::out!("Cursor (~/.cursor/mcp.json):\n{}", pretty(&cursor));
    common::out!("VS Code (.vscode/mcp.json):\n{}\n", pretty(&vscode));
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_kind_value_lines() {
        let c = super::parse_credentials("# acme\nwebflow=wf-1\n\nplausible = pl-2\n").unwrap();
        assert_eq!(c["webflow"], "wf-1");
        assert_eq!(c["plausible"], "pl-2");
        assert!(super::parse_credentials("webflow").is_err());
        assert!(super::parse_credentials("plausible=x").is_err());
        assert!(super::parse_credentials("webflow=a\nwebflow=b").is_err());
        assert!(super::parse_credentials("webflow=a\nftp=b").is_err());
    }
}
