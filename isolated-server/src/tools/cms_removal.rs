//! What `webflow_delete_items` and `webflow_unpublish_items` share: the collection must be one the
//! studio's operator named for it (`--deletable-collection`) and one of the tenant's own, 1 to
//! 100 items, and the approver sees each item's name and slug, read from Webflow before any
//! approval is recorded: an id that is not in the collection (or, to unpublish, not live in it)
//! is refused by name, so nobody approves an action on something that is not there.

use common::domain::WebflowId;
use common::mcp::{ToolContext, ToolError};
use common::upstream::UpstreamError;
use common::upstream::webflow::{Item, ItemList, Webflow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::upstream::webflow_items::MAX_ITEMS;

/// Listing pages read to find the items (100 items each): at most this many requests.
const PAGES_SEARCHED: u32 = 20;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// A CMS collection the studio's operator named for this on this instance.
    pub collection_id: String,
    /// The items (1-100), ids as `webflow_list_items` shows them.
    pub item_ids: Vec<String>,
}

/// What the approver reads: the collection and each item by name and slug.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub collection_id: String,
    pub collection_name: Option<String>,
    pub count: usize,
    pub items: Vec<ItemShown>,
}

#[derive(Debug, Serialize)]
pub struct ItemShown {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub id: String,
    pub is_draft: bool,
    /// When it last went live; absent if it never did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_published: Option<String>,
}

/// Which of the collection's items an action works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Items {
    /// The staged items (`GET …/items`): what a deletion removes.
    Staged,
    /// The items on the live site (`GET …/items/live`): what unpublishing takes down.
    Live,
}

/// A removal's request, checked: the collection, the items, and the arguments as they will be
/// sent (parsed, each id once), which the approval binds.
pub struct Checked {
    pub collection: WebflowId,
    pub items: Vec<WebflowId>,
    pub args: Args,
}

/// Checks `args` (see [`item_ids`] and [`deletable_collection`]).
pub async fn check(ctx: &ToolContext<'_>, args: &Args) -> Result<Checked, ToolError> {
    let items = item_ids(&args.item_ids)?;
    let collection = deletable_collection(ctx, &args.collection_id).await?;
    let args = Args {
        collection_id: collection.to_string(),
        item_ids: items.iter().map(ToString::to_string).collect(),
    };
    Ok(Checked {
        collection,
        items,
        args,
    })
}

/// What the approver of `action` reads, looked up in Webflow: the collection's name and each
/// item among its `which` items. Called only past the approval gate: once an approved removal
/// ran, the items are gone, and the model must still learn the outcome.
pub async fn preview(
    ctx: &ToolContext<'_>,
    checked: &Checked,
    which: Items,
    action: &'static str,
) -> Result<Preview, ToolError> {
    let webflow = ctx.webflow()?.refreshing();
    let info = webflow.get_collection(&checked.collection).await?;
    let shown = look_up(&webflow, &checked.collection, &checked.items, which).await?;
    Ok(Preview {
        action,
        collection_id: checked.collection.to_string(),
        collection_name: info.display_name,
        count: shown.len(),
        items: shown,
    })
}

/// The item ids, parsed, 1 to 100, each once (the first mention kept).
pub fn item_ids(raw: &[String]) -> Result<Vec<WebflowId>, ToolError> {
    if raw.is_empty() || raw.len() > MAX_ITEMS {
        return Err(ToolError::InvalidArguments(format!(
            "item_ids: give 1 to {MAX_ITEMS} item ids (got {})",
            raw.len()
        )));
    }
    let mut ids: Vec<WebflowId> = Vec::with_capacity(raw.len());
    for id in raw {
        let id = WebflowId::parse("item_ids", id)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The collection, if the operator named it for deletions on this instance and it is one of
/// the tenant's own.
pub async fn deletable_collection(
    ctx: &ToolContext<'_>,
    raw: &str,
) -> Result<WebflowId, ToolError> {
    let id = WebflowId::parse("collection_id", raw)?;
    if ctx.tenant.read_only {
        return Err(ToolError::NotPermitted(
            "this tenant is read-only: no CMS item can be deleted or unpublished".into(),
        ));
    }
    if !ctx.tenant.may_delete_from(&id) {
        return Err(ToolError::NotPermitted(format!(
            "collection `{id}` is not named for deleting or unpublishing items on this \
             instance. The studio's operator must name it first with `isolated-server tenant \
             set … --deletable-collection {id}` (repeating the tenant's other settings); ask \
             them if these items really should go"
        )));
    }
    ctx.collection(raw).await
}

/// Each of `ids` as the approver will read it, in the order asked; an id that is not among the
/// collection's `which` items is refused, naming it.
pub async fn look_up(
    webflow: &Webflow<'_>,
    collection: &WebflowId,
    ids: &[WebflowId],
    which: Items,
) -> Result<Vec<ItemShown>, ToolError> {
    let mut found: Vec<Option<Item>> = vec![None; ids.len()];
    let mut offset = 0u32;
    let limit = u32::try_from(MAX_ITEMS).unwrap_or(100);
    let mut exhausted = false;
    for _ in 0..PAGES_SEARCHED {
        let page: ItemList = list(webflow, collection, offset, limit, which).await?;
        let got = u32::try_from(page.items.len()).unwrap_or(u32::MAX);
        for item in page.items {
            if let Some(i) = ids.iter().position(|id| id.as_str() == item.id) {
                found[i] = Some(item);
            }
        }
        offset = offset.saturating_add(got);
        if got < limit || offset >= page.pagination.total {
            exhausted = true;
            break;
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let where_ = match which {
        Items::Staged => "in",
        Items::Live => "live in",
    };
    ids.iter()
        .zip(found)
        .map(|(id, item)| match item {
            Some(item) => Ok(shown(item)),
            None if exhausted => Err(ToolError::InvalidArguments(format!(
                "item `{id}` is not {where_} collection `{collection}`; nothing was asked or \
                 done. List the collection's items to find the right id"
            ))),
            None => Err(ToolError::InvalidArguments(format!(
                "item `{id}` is not among the first {} items {where_} collection \
                 `{collection}`, the most this tool searches; nothing was asked or done",
                PAGES_SEARCHED * limit
            ))),
        })
        .collect()
}

async fn list(
    webflow: &Webflow<'_>,
    collection: &WebflowId,
    offset: u32,
    limit: u32,
    which: Items,
) -> Result<ItemList, UpstreamError> {
    match which {
        Items::Staged => webflow.list_items(collection, offset, limit, None).await,
        Items::Live => webflow.list_live_items(collection, offset, limit).await,
    }
}

fn shown(item: Item) -> ItemShown {
    let text = |field: &str| {
        item.field_data
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    ItemShown {
        name: text("name"),
        slug: text("slug"),
        id: item.id.clone(),
        is_draft: item.is_draft,
        last_published: item.last_published.clone(),
    }
}
