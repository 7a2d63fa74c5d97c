//! `webflow_list_collections`: CMS collections of a site (`GET /v2/sites/{site_id}/collections`).

use schemars::JsonSchema;
use serde::Deserialize;

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::CollectionList;

pub struct ListCollections;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
}

impl Tool for ListCollections {
    const NAME: &'static str = "webflow_list_collections";
    const TITLE: &'static str = "List CMS collections";
    const DESCRIPTION: &'static str =
        "List the CMS collections of one of this tenant's sites (ids, names, slugs).";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = CollectionList;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<CollectionList, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        Ok(ctx.webflow()?.list_collections(&site).await?)
    }
}
