//! `webflow_create_item`: drafts a new CMS item in one of the tenant's writable collections.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::tools::cms_fields::{self, Mode};
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::webflow::Item;

pub struct CreateItem;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// A collection this tenant may write (see `whoami`'s writable_collections).
    pub collection_id: String,
    /// Field values by field slug; `name` and `slug` are required. Read the schema with
    /// `webflow_get_collection` first.
    pub field_data: Map<String, Value>,
}

impl Tool for CreateItem {
    const NAME: &'static str = "webflow_create_item";
    const TITLE: &'static str = "Draft a CMS item";
    const DESCRIPTION: &'static str = "Create a new item as a draft in one of this tenant's writable CMS \
         collections. Nothing is published: the item stays a draft until someone publishes it. \
         field_data is checked against the collection's fields first.";
    const TIER: Tier = Tier::ScopedWrite;
    const EFFECT: Effect = Effect::Adds;
    const TOOLSET: Option<Toolset> = Some(Toolset::CmsWrite);
    type Args = Args;
    type Output = Item;

    fn available(tenant: &Tenant) -> bool {
        !tenant.writable_collections.is_empty()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Item, ToolError> {
        let collection = ctx.writable_collection(&args.collection_id).await?;
        let webflow = ctx.webflow()?;
        cms_fields::check_against_schema(&webflow, &collection, &args.field_data, Mode::Create)
            .await?;
        Ok(webflow.create_item(&collection, &args.field_data).await?)
    }
}
