//! `webflow_list_comments`: the comment threads on one of the tenant's sites
//! (`GET /v2/sites/{site_id}/comments`), or the replies in one thread
//! (`GET /v2/sites/{site_id}/comments/{comment_thread_id}/replies`): client feedback left on
//! the staged site in the Designer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::Paging;
use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{Comment, Pagination};

pub struct ListComments;

/// What Webflow sorts comments by (`sortBy`).
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
pub enum SortBy {
    #[serde(rename = "createdOn")]
    CreatedOn,
    #[serde(rename = "lastUpdated")]
    LastUpdated,
}

/// Webflow's `sortOrder`.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
    /// A thread's id (a comment's `id` from a call without it): lists that thread's replies
    /// instead of the site's threads.
    #[serde(default)]
    pub comment_thread_id: Option<String>,
    /// Sort by `createdOn` or `lastUpdated` (Webflow's default order if left out).
    #[serde(default)]
    pub sort_by: Option<SortBy>,
    /// `asc` or `desc`.
    #[serde(default)]
    pub sort_order: Option<SortOrder>,
    /// Zero-based index of the first record to return (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// How many records to return, 1-100 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub site_id: String,
    /// Set when these are the replies of one thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment_thread_id: Option<String>,
    pub comments: Vec<Comment>,
    pub pagination: Pagination,
    /// Threads on this page of results not yet resolved (threads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<usize>,
}

impl Tool for ListComments {
    const NAME: &'static str = "webflow_list_comments";
    const TITLE: &'static str = "List site comments";
    const DESCRIPTION: &'static str = "List the comment threads people left on one of this tenant's sites in \
         the Designer (page, author, text, resolved or not), or, given comment_thread_id, the \
         replies in that thread. Paged with offset/limit (limit 1-100); `pagination.total` \
         tells how many exist. New comments can take up to 5 minutes to show.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        // A thread is named only under the tenant's own site, which Webflow scopes it to.
        let thread = args
            .comment_thread_id
            .as_deref()
            .map(|t| WebflowId::parse("comment_thread_id", t))
            .transpose()?;
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let mut sort = Vec::new();
        if let Some(by) = args.sort_by {
            let by = match by {
                SortBy::CreatedOn => "createdOn",
                SortBy::LastUpdated => "lastUpdated",
            };
            sort.push(("sortBy", by));
        }
        if let Some(order) = args.sort_order {
            let order = match order {
                SortOrder::Asc => "asc",
                SortOrder::Desc => "desc",
            };
            sort.push(("sortOrder", order));
        }
        let list = ctx
            .webflow()?
            .list_comments(&site, thread.as_ref(), offset, limit, &sort)
            .await?;
        let unresolved = thread
            .is_none()
            .then(|| list.comments.iter().filter(|c| !c.is_resolved).count());
        Ok(Output {
            site_id: site.to_string(),
            comment_thread_id: thread.map(|t| t.to_string()),
            comments: list.comments,
            pagination: list.pagination,
            unresolved,
        })
    }
}
