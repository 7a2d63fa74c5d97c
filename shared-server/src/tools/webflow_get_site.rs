//! `webflow_get_site`: one of the tenant's sites (`GET /v2/sites/{site_id}`).

use schemars::JsonSchema;
use serde::Deserialize;

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::Site;

pub struct GetSite;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
}

impl Tool for GetSite {
    const NAME: &'static str = "webflow_get_site";
    const TITLE: &'static str = "Get a Webflow site";
    const DESCRIPTION: &'static str = "Get one of this tenant's Webflow sites: name, time zone, preview URL, \
         custom domains, its locales (languages: each with the `id` page tools take as locale_id \
         and the `cmsLocaleId` item tools take as cms_locale_id), and when it was last updated \
         and published.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Site;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Site, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        Ok(ctx.webflow()?.get_site(&site).await?)
    }
}
