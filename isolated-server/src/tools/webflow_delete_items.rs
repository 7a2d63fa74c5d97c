//! `webflow_delete_items`: deletes staged CMS items of a collection the operator named for it,
//! after a person approves who has read each item's name and slug.

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tier, Toolset};
use serde::Serialize;

use crate::tools::cms_removal::{self, Args, Items, Preview};
use crate::tools::{Step, with_approval};
use crate::upstream::webflow_items;

pub struct DeleteItems;

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub collection_id: String,
    pub deleted_item_ids: Vec<String>,
}

impl Tool for DeleteItems {
    const NAME: &'static str = "webflow_delete_items";
    const TITLE: &'static str = "Delete CMS items";
    const DESCRIPTION: &'static str = "Delete 1-100 CMS items (their staged versions) from a collection the studio named for \
         deletions on this client's instance. Cannot be undone. Needs a person: the call returns \
         a preview listing each item's name and slug and an approval link for an approver of \
         this client; the items are deleted once they approve. Call again with the same \
         arguments to see the outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Step<Preview, Deleted>;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let checked = cms_removal::check(ctx, &args).await?;
        let token = ctx.credential(SecretKind::Webflow)?;
        let preview = async || {
            let action = "delete these CMS items for good (cannot be undone)";
            cms_removal::preview(ctx, &checked, Items::Staged, action).await
        };
        let act = async |approved: &_| {
            let webflow = &ctx.services.webflow;
            let (collection, items) = (&checked.collection, &checked.items);
            webflow_items::delete_items(approved, webflow, &token, collection, items).await?;
            Ok(Deleted {
                collection_id: checked.args.collection_id.clone(),
                deleted_item_ids: checked.args.item_ids.clone(),
            })
        };
        with_approval(ctx, Self::NAME, &checked.args, preview, act).await
    }
}
