//! `webflow_get_item`: one CMS item (`GET /v2/collections/{id}/items/{item_id}`).

use schemars::JsonSchema;
use serde::Deserialize;

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::Item;

pub struct GetItem;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The CMS collection id the item belongs to.
    pub collection_id: String,
    /// The item id (from `webflow_list_items`).
    pub item_id: String,
    /// Read the item in this CMS locale (a `cmsLocaleId` from `webflow_get_site`'s
    /// `locales`); leave out for the primary locale.
    #[serde(default)]
    pub cms_locale_id: Option<String>,
}

impl Tool for GetItem {
    const NAME: &'static str = "webflow_get_item";
    const TITLE: &'static str = "Get a CMS item";
    const DESCRIPTION: &'static str = "Get one item of one of this tenant's CMS collections with all its field data. Give \
         cms_locale_id (from webflow_get_site's locales) for a secondary locale's text.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Item;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Item, ToolError> {
        let item = WebflowId::parse("item_id", &args.item_id)?;
        let collection = ctx.collection(&args.collection_id).await?;
        let locale = ctx
            .item_locale(&collection, args.cms_locale_id.as_deref())
            .await?;
        // The item is reached only under a collection of the tenant's, with the tenant's token.
        Ok(ctx
            .webflow()?
            .get_item(&collection, &item, locale.as_ref())
            .await?)
    }
}
