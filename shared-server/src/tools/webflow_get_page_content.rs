//! `webflow_get_page_content`: the static content nodes of a page (`GET /v2/pages/{page_id}/dom`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::PageDom;

pub struct GetPageContent;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow page id (from `webflow_list_pages`).
    pub page_id: String,
    /// Zero-based index of the first record to return (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// How many records to return, 1-100 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The content in this locale (a locale `id` from `webflow_get_site`'s `locales`); leave
    /// out for the primary locale.
    #[serde(default)]
    pub locale_id: Option<String>,
}

impl Tool for GetPageContent {
    const NAME: &'static str = "webflow_get_page_content";
    const TITLE: &'static str = "Get Webflow page content";
    const DESCRIPTION: &'static str = "Get the static content of one of this tenant's pages: text, images and \
         components as Webflow's DOM nodes. Paged with offset/limit (limit 1-100). \
         Give locale_id (from webflow_get_site's locales) for a secondary locale's content.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = PageDom;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<PageDom, ToolError> {
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let page = ctx.page(&args.page_id).await?;
        let locale = ctx.page_locale(&page, args.locale_id.as_deref()).await?;
        Ok(ctx
            .webflow()?
            .get_page_dom(&page, offset, limit, locale.as_ref())
            .await?)
    }
}
