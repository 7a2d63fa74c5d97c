//! `webflow_unpublish_items`: takes live CMS items of a collection the operator named for it off
//! the live site (Webflow makes them drafts again), after a person approves who has read each
//! item's name and slug.

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tier, Toolset};
use serde::Serialize;

use crate::tools::cms_removal::{self, Args, Items, Preview};
use crate::tools::{Step, with_approval};
use crate::upstream::webflow_items;

pub struct UnpublishItems;

#[derive(Debug, Serialize)]
pub struct Unpublished {
    pub collection_id: String,
    /// Off the live site now, and drafts on the staged site.
    pub unpublished_item_ids: Vec<String>,
}

impl Tool for UnpublishItems {
    const NAME: &'static str = "webflow_unpublish_items";
    const TITLE: &'static str = "Unpublish live CMS items";
    const DESCRIPTION: &'static str = "Take 1-100 live CMS items off the live site (they become drafts) in a collection the \
         studio named for this on this client's instance. Needs a person: the call returns a \
         preview listing each item's name and slug and an approval link for an approver of this \
         client; the items are unpublished once they approve. Call again with the same arguments \
         to see the outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Step<Preview, Unpublished>;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let checked = cms_removal::check(ctx, &args).await?;
        let token = ctx.credential(SecretKind::Webflow)?;
        let preview = async || {
            let action = "take these CMS items off the live site (they stay as drafts)";
            cms_removal::preview(ctx, &checked, Items::Live, action).await
        };
        let act = async |approved: &_| {
            let webflow = &ctx.services.webflow;
            let (collection, items) = (&checked.collection, &checked.items);
            webflow_items::unpublish_items(approved, webflow, &token, collection, items).await?;
            Ok(Unpublished {
                collection_id: checked.args.collection_id.clone(),
                unpublished_item_ids: checked.args.item_ids.clone(),
            })
        };
        with_approval(ctx, Self::NAME, &checked.args, preview, act).await
    }
}
