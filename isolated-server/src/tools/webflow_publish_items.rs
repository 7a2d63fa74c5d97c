//! `webflow_publish_items`: publishes chosen CMS items of one of the tenant's collections.

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::{Step, with_approval};
use crate::upstream::webflow_publish::{self, ItemsPublished};

pub struct PublishItems;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The CMS collection the items belong to.
    pub collection_id: String,
    /// The items to publish (1-100).
    pub item_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub collection_id: String,
    pub collection_name: Option<String>,
    pub item_ids: Vec<String>,
}

impl Tool for PublishItems {
    const NAME: &'static str = "webflow_publish_items";
    const TITLE: &'static str = "Publish CMS items";
    const DESCRIPTION: &'static str = "Publish chosen items of one of this client's CMS collections to the live site. Needs a \
         person: the call returns a preview and an approval link for an approver of this client; \
         the action runs once they approve. Call again with the same arguments to see the \
         outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Step<Preview, ItemsPublished>;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        if args.item_ids.is_empty() || args.item_ids.len() > 100 {
            return Err(ToolError::InvalidArguments(
                "item_ids: give 1 to 100 item ids".into(),
            ));
        }
        let items: Vec<WebflowId> = args
            .item_ids
            .iter()
            .map(|raw| WebflowId::parse("item_ids", raw))
            .collect::<Result<_, _>>()?;
        let collection = ctx.collection(&args.collection_id).await?;
        let token = ctx.credential(SecretKind::Webflow)?;
        let preview = async || {
            let info = ctx.webflow()?.get_collection(&collection).await?;
            Ok(Preview {
                action: "publish these items' staged versions to the live site",
                collection_id: collection.to_string(),
                collection_name: info.display_name,
                item_ids: items.iter().map(ToString::to_string).collect(),
            })
        };
        let act = async |approved: &_| {
            Ok(webflow_publish::publish_items(
                approved,
                &ctx.services.webflow,
                &token,
                &collection,
                &items,
            )
            .await?)
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
