//! Onboarding checks: before a credential is stored, prove it reaches what the tenant is bound
//! to — and, for Webflow, nothing else — with one cheap read per upstream.

use secrecy::SecretString;
use serde_json::json;

use crate::tenant::Tenant;
use crate::upstream::Upstream;
use crate::upstream::github::Github;
use crate::upstream::plausible::Plausible;
use crate::upstream::webflow::Webflow;

/// The Webflow token must see every bound site and no other (a site token, not a workspace key).
pub async fn webflow(
    upstream: &Upstream,
    token: &SecretString,
    tenant: &Tenant,
) -> Result<(), String> {
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
    Ok(())
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
