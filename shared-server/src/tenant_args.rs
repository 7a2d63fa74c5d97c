//! The options of `tenant add`, which `onboard` takes too, and the tenant spec they make: their
//! own module, so the command line and onboarding each depend on it, not on one another.

use clap::Args;
use common::domain::{PlausibleSite, RepoName, WebflowId};
use common::tenant::{TenantSpec, Toolset};

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
    /// Grant only these toolsets (repeatable; default: every one but page-write, asset-write
    /// and forms, which are granted only by name).
    #[arg(long = "toolset")]
    pub toolsets: Vec<Toolset>,
    #[arg(long)]
    pub read_only: bool,
    /// Tool calls per minute for this tenant (default: the server's STUDIO_MCP_TENANT_RATE_PER_MIN).
    #[arg(long)]
    pub rate_limit: Option<u32>,
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
