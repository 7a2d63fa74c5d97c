//! `webflow_list_sites`: the tenant's Webflow sites (`GET /v2/sites`, filtered to its binding).

use crate::tools::NoArgs;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::SiteList;

pub struct ListSites;

impl Tool for ListSites {
    const NAME: &'static str = "webflow_list_sites";
    const TITLE: &'static str = "List Webflow sites";
    const DESCRIPTION: &'static str = "List the Webflow sites this tenant is bound to, with names, preview URLs, \
         custom domains and last-published times.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = NoArgs;
    type Output = SiteList;

    async fn run(ctx: &ToolContext<'_>, _args: NoArgs) -> Result<SiteList, ToolError> {
        let mut list = ctx.webflow()?.list_sites().await?;
        // A workspace token could see more sites than the tenant is bound to; show only those.
        list.sites.retain(|s| {
            ctx.tenant
                .webflow_sites
                .iter()
                .any(|own| own.as_str() == s.id)
        });
        Ok(list)
    }
}
