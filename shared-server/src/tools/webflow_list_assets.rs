//! `webflow_list_assets`: images and files of one of the tenant's sites, with their alt text
//! (`GET /v2/sites/{site_id}/assets`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{Asset, Pagination};

pub struct ListAssets;

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
    pub assets: Vec<Asset>,
    pub pagination: Pagination,
    /// Images on this page of results without alt text: what an accessibility pass fixes.
    pub images_without_alt_text: usize,
}

impl Tool for ListAssets {
    const NAME: &'static str = "webflow_list_assets";
    const TITLE: &'static str = "List Webflow assets";
    const DESCRIPTION: &'static str = "List the images and files uploaded to one of this tenant's sites, with \
         their alt text, file names and URLs. Paged with offset/limit (limit 1-100); \
         `pagination.total` tells how many exist. `images_without_alt_text` counts the images \
         on this page that have none (set it with `webflow_update_asset`).";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let list = ctx.webflow()?.list_assets(&site, offset, limit).await?;
        let images_without_alt_text = list
            .assets
            .iter()
            .filter(|a| {
                a.content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"))
                    && a.alt_text.as_deref().is_none_or(|t| t.trim().is_empty())
            })
            .count();
        Ok(Output {
            site_id: site.to_string(),
            assets: list.assets,
            pagination: list.pagination,
            images_without_alt_text,
        })
    }
}
