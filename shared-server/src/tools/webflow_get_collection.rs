//! `webflow_get_collection`: a collection with its field schema (`GET /v2/collections/{id}`).

use schemars::JsonSchema;
use serde::Deserialize;

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::Collection;

pub struct GetCollection;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The CMS collection id (from `webflow_list_collections`).
    pub collection_id: String,
}

impl Tool for GetCollection {
    const NAME: &'static str = "webflow_get_collection";
    const TITLE: &'static str = "Get a CMS collection";
    const DESCRIPTION: &'static str = "Get one of this tenant's CMS collections with its fields: slug, type, \
         whether each is required. Read it before drafting items.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Collection;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Collection, ToolError> {
        let collection = ctx.collection(&args.collection_id).await?;
        Ok(ctx.webflow()?.get_collection(&collection).await?)
    }
}
