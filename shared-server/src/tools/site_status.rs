//! `site_status`: one answer to "is the site up to date?" — Webflow publish state and domains,
//! plus the latest workflow run and deployment of the tenant's repository when it has one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::github::{Deployment, WorkflowRun};
use common::upstream::webflow::CustomDomain;

pub struct SiteStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GithubStatus {
    pub repo: String,
    pub latest_run: Option<WorkflowRun>,
    pub latest_deployment: Option<Deployment>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub site_id: String,
    pub name: Option<String>,
    pub last_published: Option<String>,
    pub last_updated: Option<String>,
    /// True when the site changed after its last publish.
    pub unpublished_changes: bool,
    pub preview_url: Option<String>,
    pub custom_domains: Vec<CustomDomain>,
    pub github: Option<GithubStatus>,
    /// Set when the repository part could not be read; the Webflow part is still valid.
    pub github_error: Option<String>,
    pub summary: String,
}

impl Tool for SiteStatus {
    const NAME: &'static str = "site_status";
    const TITLE: &'static str = "Site status";
    const DESCRIPTION: &'static str = "In one call: when the site was last published and last changed \
         (and so whether unpublished changes wait), its custom domains, and the latest workflow run and \
         deployment of the tenant's code repository if it has one.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site_id = ctx.site(args.site_id.as_deref())?;
        let site = ctx.webflow()?.get_site(&site_id).await?;
        // ISO 8601 timestamps in the same format compare correctly as strings.
        let unpublished_changes = match (&site.last_updated, &site.last_published) {
            (Some(updated), Some(published)) => updated > published,
            (Some(_), None) => true,
            _ => false,
        };
        let (github, github_error) = if ctx.tenant.has_toolset(Toolset::Github)
            && let Some(repo) = ctx.tenant.github_repos.first()
        {
            match github_status(ctx, repo).await {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        let mut summary = match (&site.last_published, unpublished_changes) {
            (None, _) => "The site has never been published.".to_owned(),
            (Some(at), true) => format!("Last published {at}; there are changes since then."),
            (Some(at), false) => format!("Last published {at}; no changes since."),
        };
        if let Some(run) = github.as_ref().and_then(|g| g.latest_run.as_ref()) {
            summary.push_str(&format!(
                " Latest workflow run: {} ({}).",
                run.conclusion
                    .as_deref()
                    .or(run.status.as_deref())
                    .unwrap_or("unknown"),
                run.created_at.as_deref().unwrap_or("unknown time")
            ));
        }
        Ok(Output {
            site_id: site.id,
            name: site.display_name,
            last_published: site.last_published,
            last_updated: site.last_updated,
            unpublished_changes,
            preview_url: site.preview_url,
            custom_domains: site.custom_domains,
            github,
            github_error,
            summary,
        })
    }
}

async fn github_status(
    ctx: &ToolContext<'_>,
    repo: &common::domain::RepoName,
) -> Result<GithubStatus, ToolError> {
    let github = ctx.github()?;
    let runs = github.workflow_runs(repo, None, None, 1, 1).await?;
    let deployments = github.deployments(repo, None, 1, 1).await?;
    Ok(GithubStatus {
        repo: repo.to_string(),
        latest_run: runs.workflow_runs.into_iter().next(),
        latest_deployment: deployments.into_iter().next(),
    })
}
