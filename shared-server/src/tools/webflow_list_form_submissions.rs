//! `webflow_list_form_submissions`: what visitors sent through one of the tenant's forms
//! (`GET /v2/forms/{form_id}/submissions`). Personal data: read fresh every time (never from
//! the read cache), and nothing of it reaches the audit log or a log line; the audit record of
//! a call carries the tool name, argument digest and outcome only, as every call's does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{FormSubmission, Pagination};

pub struct ListFormSubmissions;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow form id (from `webflow_list_forms`).
    pub form_id: String,
    /// Zero-based index of the first record to return (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// How many records to return, 1-100 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub form_id: String,
    pub submissions: Vec<FormSubmission>,
    pub pagination: Pagination,
}

impl Tool for ListFormSubmissions {
    const NAME: &'static str = "webflow_list_form_submissions";
    const TITLE: &'static str = "List form submissions";
    const DESCRIPTION: &'static str = "List what visitors sent through one of this tenant's forms (leads, \
         contact requests), with the date each was sent and each field's answer. This is personal data: use it only for the client's own work. Paged with \
         offset/limit (limit 1-100); `pagination.total` tells how many exist.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Forms);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let form = ctx.form(&args.form_id).await?;
        let list = ctx
            .webflow()?
            .list_form_submissions(&form, offset, limit)
            .await?;
        Ok(Output {
            form_id: form.to_string(),
            submissions: list.form_submissions,
            pagination: list.pagination,
        })
    }
}
