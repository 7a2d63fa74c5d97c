//! `github_get_repo`: one of the tenant's repositories (`GET /repos/{owner}/{repo}`).

use schemars::JsonSchema;
use serde::Deserialize;

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::github::Repo;

pub struct GetRepo;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `owner/name`; may be left out when the tenant has exactly one repository.
    #[serde(default)]
    pub repo: Option<String>,
}

impl Tool for GetRepo {
    const NAME: &'static str = "github_get_repo";
    const TITLE: &'static str = "Get a GitHub repository";
    const DESCRIPTION: &'static str = "Get one of this tenant's GitHub repositories: description, default \
         branch, visibility, last push.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Github);
    type Args = Args;
    type Output = Repo;

    fn available(tenant: &Tenant) -> bool {
        !tenant.github_repos.is_empty()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Repo, ToolError> {
        let repo = ctx.repo(args.repo.as_deref())?;
        Ok(ctx.github()?.repo(&repo).await?)
    }
}
