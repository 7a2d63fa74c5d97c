//! Onboarding checks: before a credential is stored, prove it reaches what the tenant is bound
//! to — and, for Webflow, nothing else — with one cheap read per upstream; and say which Webflow
//! scopes the tenant's tools need that its token lacks.
//!
//! A missing scope is a warning, naming each scope and what needs it, except the read scopes
//! every Webflow tool rests on ([`Need::basic`]): without `pages:read` and `cms:read` the
//! tenant's scope index cannot be built, so every tool naming a page or collection (the writes
//! included) would fail, and such a token is refused. A missing write or optional read scope
//! leaves the rest working, and the tool that needs it says so when called; the operator may
//! mean it (a read-mostly client) and hears of it here.

use secrecy::SecretString;
use serde_json::json;

use crate::tenant::Tenant;
use crate::upstream::github::Github;
use crate::upstream::plausible::Plausible;
use crate::upstream::webflow::Webflow;
use crate::upstream::{Upstream, UpstreamError};

/// What a credential check found that does not stop onboarding, for the operator to read.
pub type Warnings = Vec<String>;

/// A Webflow scope a tenant's tools need.
#[derive(Clone, Debug)]
pub struct Need {
    pub scope: &'static str,
    /// What needs it, as the operator knows it: a toolset and its tools.
    pub by: &'static str,
    /// Without it nothing works (refused); otherwise only `by` fails (a warning).
    pub basic: bool,
}

/// The Webflow token must see every bound site and no other (a site token, not a workspace key),
/// and have the `needs` marked basic; each other need it lacks is a warning.
pub async fn webflow(
    upstream: &Upstream,
    token: &SecretString,
    tenant: &Tenant,
    needs: &[Need],
) -> Result<Warnings, String> {
    // Straight to Webflow: the credential is not stored yet, and must reach what it reaches now.
    let client = Webflow {
        upstream,
        token: token.clone(),
        reads: crate::upstream::Reads::Direct,
    };
    let sites = client.list_sites().await.map_err(|e| e.to_string())?.sites;
    let seen: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
    for own in &tenant.webflow_sites {
        if !seen.contains(&own.as_str()) {
            return Err(format!("the Webflow token cannot reach site {own}"));
        }
    }
    if let Some(extra) = seen
        .iter()
        .find(|id| !tenant.webflow_sites.iter().any(|own| own.as_str() == **id))
    {
        return Err(format!(
            "the Webflow token also reaches site {extra}, which is not this tenant's: issue a site token limited to its own site"
        ));
    }
    for site in &tenant.webflow_sites {
        client.get_site(site).await.map_err(|e| e.to_string())?;
    }
    scopes(&client, tenant, needs).await
}

/// The needs the token's scopes leave unmet: from `introspect` when Webflow answers it, else
/// from one read per needed read scope (a write scope cannot be tried without writing).
async fn scopes(client: &Webflow<'_>, tenant: &Tenant, needs: &[Need]) -> Result<Warnings, String> {
    let mut warnings = Warnings::new();
    let mut missing: Vec<&'static str> = Vec::new();
    match client.introspect().await {
        Ok(found) => {
            let has = found.authorization.scopes();
            missing.extend(needs.iter().map(|n| n.scope).filter(|s| !has.contains(s)));
        }
        Err(why) => {
            let Some(site) = tenant.webflow_sites.first() else {
                return Ok(warnings);
            };
            let mut untried: Vec<&'static str> = Vec::new();
            for need in needs {
                if missing.contains(&need.scope) || untried.contains(&need.scope) {
                    continue;
                }
                match try_read(client, site, need.scope).await {
                    Some(Err(UpstreamError::MissingScope { .. })) => missing.push(need.scope),
                    Some(Err(e)) => warnings.push(format!(
                        "could not check the Webflow token's {} scope: {e}",
                        need.scope
                    )),
                    Some(Ok(())) => {}
                    None => untried.push(need.scope),
                }
            }
            if !untried.is_empty() {
                warnings.push(format!(
                    "Webflow did not list the token's scopes ({why}); its read scopes were tried,                      but make sure it also has {} (a write scope cannot be tried without writing)",
                    untried.join(", ")
                ));
            }
        }
    }
    missing.sort_unstable();
    missing.dedup();
    let mut refused = Vec::new();
    for scope in missing {
        let by: Vec<&str> = needs
            .iter()
            .filter(|n| n.scope == scope)
            .map(|n| n.by)
            .collect();
        let line = format!(
            "the Webflow token lacks the {scope} scope, which {} needs",
            by.join(" and ")
        );
        if needs.iter().any(|n| n.scope == scope && n.basic) {
            refused.push(line);
        } else {
            warnings.push(format!(
                "{line}: those tools will fail until the token is replaced by one with {scope}"
            ));
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "{}; every Webflow tool rests on it: make a site token with it and try again",
            refused.join("; ")
        ));
    }
    Ok(warnings)
}

/// One cheap read that needs `scope` (`None` for a scope no read shows).
async fn try_read(
    client: &Webflow<'_>,
    site: &crate::domain::WebflowId,
    scope: &str,
) -> Option<Result<(), UpstreamError>> {
    use crate::upstream::webflow::scope as s;
    Some(match scope {
        s::SITES_READ => client.get_site(site).await.map(drop),
        s::PAGES_READ => client.list_pages(site, 0, 1, None).await.map(drop),
        s::CMS_READ => client.list_collections(site).await.map(drop),
        s::ASSETS_READ => client.list_assets(site, 0, 1).await.map(drop),
        s::FORMS_READ => client.list_forms(site, 0, 1).await.map(drop),
        s::COMMENTS_READ => client.list_comments(site, None, 0, 1, &[]).await.map(drop),
        _ => return None,
    })
}

pub async fn plausible(
    upstream: &Upstream,
    token: &SecretString,
    tenant: &Tenant,
) -> Result<(), String> {
    let site = tenant
        .plausible_site
        .as_ref()
        .ok_or("a Plausible key was given but the tenant has no --plausible-site")?;
    let client = Plausible {
        upstream,
        token: token.clone(),
    };
    let query = json!({"site_id": site.as_str(), "metrics": ["visitors"], "date_range": "day"});
    client
        .query(&query)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub async fn github(
    upstream: &Upstream,
    token: &SecretString,
    tenant: &Tenant,
) -> Result<(), String> {
    if tenant.github_repos.is_empty() {
        return Err("a GitHub token was given but the tenant has no --github-repo".into());
    }
    let client = Github {
        upstream,
        token: token.clone(),
        reads: crate::upstream::Reads::Direct,
    };
    for repo in &tenant.github_repos {
        client
            .repo(repo)
            .await
            .map_err(|e| format!("repository {repo}: {e}"))?;
    }
    Ok(())
}
