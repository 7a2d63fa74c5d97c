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
        let items = cms_removal::item_ids(&args.item_ids)?;
        let collection = cms_removal::deletable_collection(ctx, &args.collection_id).await?;
        // The approval binds the ids as they will be sent: parsed, each once.
        let args = Args {
            collection_id: collection.to_string(),
            item_ids: items.iter().map(ToString::to_string).collect(),
        };
        let token = ctx.credential(SecretKind::Webflow)?;
        // Looked up only past the gate: once an approved deletion ran, the items are gone and
        // the model must still learn the outcome.
        let preview = async || {
            let webflow = ctx.webflow()?.refreshing();
            let info = webflow.get_collection(&collection).await?;
            let shown = cms_removal::look_up(&webflow, &collection, &items, Items::Staged).await?;
            Ok(Preview {
                action: "delete these CMS items for good (cannot be undone)",
                collection_id: collection.to_string(),
                collection_name: info.display_name,
                count: shown.len(),
                items: shown,
            })
        };
        let act = async |approved: &_| {
            webflow_items::delete_items(
                approved,
                &ctx.services.webflow,
                &token,
                &collection,
                &items,
            )
            .await?;
            Ok(Deleted {
                collection_id: collection.to_string(),
                deleted_item_ids: args.item_ids.clone(),
            })
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
