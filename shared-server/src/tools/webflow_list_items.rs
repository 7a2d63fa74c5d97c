//! `webflow_list_items`: items of a collection (`GET /v2/collections/{id}/items`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::tools::Paging;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::ItemList;

pub struct ListItems;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The CMS collection id (from `webflow_list_collections`).
    pub collection_id: String,
    /// Zero-based index of the first record to return (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// How many records to return, 1-100 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Read the items in this CMS locale (a `cmsLocaleId` from `webflow_get_site`'s
    /// `locales`); leave out for the primary locale.
    #[serde(default)]
    pub cms_locale_id: Option<String>,
}

impl Tool for ListItems {
    const NAME: &'static str = "webflow_list_items";
    const TITLE: &'static str = "List CMS items";
    const DESCRIPTION: &'static str = "List the items of one of this tenant's CMS collections, drafts included, \
         with their field data. Paged with offset/limit (limit 1-100); `pagination.total` tells how many exist. \
         Give cms_locale_id (from webflow_get_site's locales) for a secondary locale's text.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = ItemList;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<ItemList, ToolError> {
        let (offset, limit) = Paging {
            offset: args.offset,
            limit: args.limit,
        }
        .resolve()?;
        let collection = ctx.collection(&args.collection_id).await?;
        let locale = ctx
            .item_locale(&collection, args.cms_locale_id.as_deref())
            .await?;
        Ok(ctx
            .webflow()?
            .list_items(&collection, offset, limit, locale.as_ref())
            .await?)
    }
}
