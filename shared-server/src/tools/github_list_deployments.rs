//! `github_list_deployments`: deployments recorded on a tenant repository.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::{GithubPaging, branch_name};
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::github::Deployment;

pub struct ListDeployments;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `owner/name`; may be left out when the tenant has exactly one repository.
    #[serde(default)]
    pub repo: Option<String>,
    /// e.g. production, preview.
    #[serde(default)]
    pub environment: Option<String>,
    /// Results per page, 1-100 (default 30).
    #[serde(default)]
    pub per_page: Option<u32>,
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub repo: String,
    pub deployments: Vec<Deployment>,
}

impl Tool for ListDeployments {
    const NAME: &'static str = "github_list_deployments";
    const TITLE: &'static str = "List deployments";
    const DESCRIPTION: &'static str = "List deployments (newest first) recorded on one of this tenant's \
         GitHub repositories, optionally for one environment. Paged with per_page/page.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Github);
    type Args = Args;
    type Output = Output;

    fn available(tenant: &Tenant) -> bool {
        !tenant.github_repos.is_empty()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let repo = ctx.repo(args.repo.as_deref())?;
        let (per_page, page) = GithubPaging {
            per_page: args.per_page,
            page: args.page,
        }
        .resolve()?;
        let environment = args.environment.as_deref().map(branch_name).transpose()?;
        let deployments = ctx
            .github()?
            .deployments(&repo, environment, per_page, page)
            .await?;
        Ok(Output {
            repo: repo.to_string(),
            deployments,
        })
    }
}
