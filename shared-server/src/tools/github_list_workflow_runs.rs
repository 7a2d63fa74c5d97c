//! `github_list_workflow_runs`: GitHub Actions runs of a tenant repository.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::{GithubPaging, branch_name};
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::github::WorkflowRuns;

pub struct ListWorkflowRuns;

const STATUSES: &[&str] = &[
    "completed",
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "skipped",
    "stale",
    "success",
    "timed_out",
    "in_progress",
    "queued",
    "requested",
    "waiting",
    "pending",
];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `owner/name`; may be left out when the tenant has exactly one repository.
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// e.g. completed, in_progress, failure, success.
    #[serde(default)]
    pub status: Option<String>,
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
    #[serde(flatten)]
    pub runs: WorkflowRuns,
}

impl Tool for ListWorkflowRuns {
    const NAME: &'static str = "github_list_workflow_runs";
    const TITLE: &'static str = "List workflow runs";
    const DESCRIPTION: &'static str = "List GitHub Actions workflow runs (newest first) of one of this \
         tenant's repositories, optionally by branch or status. Paged with per_page/page.";
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
        if let Some(s) = &args.status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(ToolError::InvalidArguments(format!(
                "status: unknown value `{s}` (allowed: {})",
                STATUSES.join(", ")
            )));
        }
        let runs = ctx
            .github()?
            .workflow_runs(&repo, branch, args.status.as_deref(), per_page, page)
            .await?;
        Ok(Output {
            repo: repo.to_string(),
            runs,
        })
    }
}
