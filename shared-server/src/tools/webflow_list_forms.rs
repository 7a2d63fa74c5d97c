//! `webflow_list_forms`: the forms on one of the tenant's sites, with their fields
//! (`GET /v2/sites/{site_id}/forms`); what visitors sent is `webflow_list_form_submissions`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{Form, Pagination};

pub struct ListForms;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
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
    pub forms: Vec<Form>,
    pub pagination: Pagination,
}

impl Tool for ListForms {
    const NAME: &'static str = "webflow_list_forms";
    const TITLE: &'static str = "List Webflow forms";
    const DESCRIPTION: &'static str = "List the forms on one of this tenant's sites: name, page and fields. \
         Paged with offset/limit (limit 1-100); `pagination.total` tells how many exist. Read \
         what visitors sent with `webflow_list_form_submissions`.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Forms);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let list = ctx.webflow()?.list_forms(&site, offset, limit).await?;
        Ok(Output {
            site_id: site.to_string(),
            forms: list.forms,
            pagination: list.pagination,
        })
    }
}
