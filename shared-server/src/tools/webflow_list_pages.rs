//! `webflow_list_pages`: pages of one of the tenant's sites (`GET /v2/sites/{site_id}/pages`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{LocaleKind, PageList};

pub struct ListPages;

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
    /// List the pages' settings in this locale (a locale `id` from `webflow_get_site`'s
    /// `locales`); leave out for the primary locale.
    #[serde(default)]
    pub locale_id: Option<String>,
}

impl Tool for ListPages {
    const NAME: &'static str = "webflow_list_pages";
    const TITLE: &'static str = "List Webflow pages";
    const DESCRIPTION: &'static str = "List the pages of one of this tenant's sites with titles, slugs, SEO and \
         Open Graph metadata. Paged with offset/limit (limit 1-100); `pagination.total` tells how many exist. \
         Give locale_id (from webflow_get_site's locales) for a secondary locale's settings.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = PageList;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<PageList, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let locale = ctx
            .locale(LocaleKind::Site, args.locale_id.as_deref(), Some(&site))
            .await?;
        Ok(ctx
            .webflow()?
            .list_pages(&site, offset, limit, locale.as_ref())
            .await?)
    }
}
