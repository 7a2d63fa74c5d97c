//! `github_list_commits`: recent commits of a tenant repository.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::{GithubPaging, branch_name};
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::github::Commit;

pub struct ListCommits;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `owner/name`; may be left out when the tenant has exactly one repository.
    #[serde(default)]
    pub repo: Option<String>,
    /// Branch (default: the repository's default branch).
    #[serde(default)]
    pub branch: Option<String>,
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
    pub commits: Vec<Commit>,
}

impl Tool for ListCommits {
    const NAME: &'static str = "github_list_commits";
    const TITLE: &'static str = "List commits";
    const DESCRIPTION: &'static str = "List recent commits (newest first) of one of this tenant's GitHub \
         repositories, optionally on a branch. Paged with per_page/page.";
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
        let branch = args.branch.as_deref().map(branch_name).transpose()?;
        let commits = ctx.github()?.commits(&repo, branch, per_page, page).await?;
        Ok(Output {
            repo: repo.to_string(),
            commits,
        })
    }
}
