//! `webflow_update_item`: changes the staged (draft) version of an item in a writable collection.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::tools::cms_fields::{self, Mode};
use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::webflow::Item;

pub struct UpdateItem;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// A collection this tenant may write (see `whoami`'s writable_collections).
    pub collection_id: String,
    /// The item to change.
    pub item_id: String,
    /// Only the fields to change, by field slug.
    pub field_data: Map<String, Value>,
}

impl Tool for UpdateItem {
    const NAME: &'static str = "webflow_update_item";
    const TITLE: &'static str = "Edit a CMS item draft";
    const DESCRIPTION: &'static str = "Change fields of an item in one of this tenant's writable CMS collections. \
         Only the staged version changes; the live site changes when someone publishes. \
         field_data is checked against the collection's fields first.";
    const TIER: Tier = Tier::ScopedWrite;
    const EFFECT: Effect = Effect::Overwrites;
    const TOOLSET: Option<Toolset> = Some(Toolset::CmsWrite);
    type Args = Args;
    type Output = Item;

    fn available(tenant: &Tenant) -> bool {
        !tenant.writable_collections.is_empty()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Item, ToolError> {
        let item = WebflowId::parse("item_id", &args.item_id)?;
        let collection = ctx.writable_collection(&args.collection_id).await?;
        let webflow = ctx.webflow()?;
        cms_fields::check_against_schema(&webflow, &collection, &args.field_data, Mode::Update)
            .await?;
        Ok(webflow
            .update_item(&collection, &item, &args.field_data)
            .await?)
    }
}
