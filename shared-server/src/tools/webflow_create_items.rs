//! `webflow_create_items`: up to 100 CMS drafts in one call, into one of the tenant's writable
//! collections, all or nothing: every draft is checked against the collection's schema before
//! anything is sent, and one bad draft sends none.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tools::cms_fields::{self, Mode};
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use common::upstream::UpstreamError;
use common::upstream::webflow::Item;

pub struct CreateItems;

/// Webflow's own limit for one `create-item` request with `items`.
pub const MAX_ITEMS: usize = 100;
/// Largest batch accepted (all `field_data` serialized): a hundred long posts fit.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// A collection this tenant may write (see `whoami`'s writable_collections).
    pub collection_id: String,
    /// 1-100 drafts, each `{"field_data": {...}}` as `webflow_create_item` takes it.
    pub items: Vec<Draft>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Field values by field slug; `name` and `slug` are required. Read the schema with
    /// `webflow_get_collection` first.
    pub field_data: Map<String, Value>,
}

/// One draft Webflow created, by its place in `items`.
#[derive(Debug, Serialize)]
pub struct Created {
    pub index: usize,
    pub id: String,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub is_draft: bool,
    pub last_updated: Option<String>,
}

/// A draft sent that Webflow's answer does not show as created.
#[derive(Debug, Serialize)]
pub struct NotCreated {
    pub index: usize,
    pub slug: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub collection_id: String,
    pub requested: usize,
    pub created: Vec<Created>,
    pub not_created: Vec<NotCreated>,
    pub note: String,
}

impl Tool for CreateItems {
    const NAME: &'static str = "webflow_create_items";
    const TITLE: &'static str = "Draft many CMS items";
    const DESCRIPTION: &'static str = "Create up to 100 items as drafts in one of this tenant's writable CMS \
         collections, in one call. Every item's field_data is checked against the collection's \
         fields first; if any item is wrong, none is sent and the error names the item (its \
         index in `items`) and the field. Nothing is published.";
    const TIER: Tier = Tier::ScopedWrite;
    const EFFECT: Effect = Effect::Adds;
    const TOOLSET: Option<Toolset> = Some(Toolset::CmsWrite);
    type Args = Args;
    type Output = Output;

    fn available(tenant: &Tenant) -> bool {
        !tenant.writable_collections.is_empty()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let drafts: Vec<&Map<String, Value>> = args.items.iter().map(|d| &d.field_data).collect();
        bounded(&drafts)?;
        let collection = ctx.writable_collection(&args.collection_id).await?;
        let webflow = ctx.webflow()?;
        cms_fields::check_with_schema(&webflow, &collection, |fields| check_all(fields, &drafts))
            .await?;
        let answer = webflow
            .create_items(&collection, &drafts)
            .await
            .map_err(|e| refused(e, drafts.len()))?;
        let (created, not_created) = matched(&drafts, answer.items);
        let note = if not_created.is_empty() {
            format!(
                "{} drafts created; nothing is published until someone publishes them.",
                created.len()
            )
        } else {
            format!(
                "{} of {} drafts created; see not_created for the rest (calling again with \
                 only those creates no duplicates of the others).",
                created.len(),
                drafts.len()
            )
        };
        Ok(Output {
            collection_id: collection.to_string(),
            requested: drafts.len(),
            created,
            not_created,
            note,
        })
    }
}

/// The batch's size, before anything else is looked at.
fn bounded(drafts: &[&Map<String, Value>]) -> Result<(), ToolError> {
    let bad = |msg: String| Err(ToolError::InvalidArguments(msg));
    if drafts.is_empty() {
        return bad("items is empty: give 1 to 100 drafts".into());
    }
    if drafts.len() > MAX_ITEMS {
        return bad(format!(
            "items has {} drafts; Webflow takes at most {MAX_ITEMS} a call: split them into \
             calls of {MAX_ITEMS} or fewer",
            drafts.len()
        ));
    }
    let bytes = serde_json::to_vec(drafts)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if bytes > MAX_BATCH_BYTES {
        return bad(format!(
            "items is larger than {} MiB; split it into smaller calls",
            MAX_BATCH_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// Every draft against the schema, as `webflow_create_item` checks one, then the slugs against
/// each other (Webflow refuses a slug already used in the collection); the first problem names
/// its item.
fn check_all(
    fields: &[common::upstream::webflow::Field],
    drafts: &[&Map<String, Value>],
) -> Result<(), ToolError> {
    let nothing_sent = "nothing was sent; fix it and call again with all the items";
    for (index, data) in drafts.iter().enumerate() {
        cms_fields::check(fields, data, Mode::Create).map_err(|e| match e {
            ToolError::InvalidArguments(why) => {
                ToolError::InvalidArguments(format!("items[{index}].{why}; {nothing_sent}"))
            }
            e => e,
        })?;
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (index, data) in drafts.iter().enumerate() {
        let Some(slug) = data.get("slug").and_then(Value::as_str) else {
            continue;
        };
        if let Some(first) = seen.insert(slug, index) {
            return Err(ToolError::InvalidArguments(format!(
                "items[{index}].field_data.slug: `{slug}` is also the slug of items[{first}]; \
                 slugs are unique in a collection; {nothing_sent}"
            )));
        }
    }
    Ok(())
}

/// Webflow's refusal of the batch: a validation answer (400) or conflict (409) creates none of
/// it, and its details name each item it refused (`items[2].fieldData: …`), quoted as given.
fn refused(e: UpstreamError, count: usize) -> ToolError {
    match e {
        UpstreamError::Rejected {
            status: 400 | 422, ..
        }
        | UpstreamError::Conflict { .. } => ToolError::InvalidArguments(format!(
            "{e}. Webflow refused the whole batch, so none of the {count} drafts was created; \
             fix the items it names and call again with all of them"
        )),
        e => e.into(),
    }
}

/// Each draft sent, found in Webflow's answer by its slug (unique in a collection), else by
/// its place; a draft not found there is reported, not guessed at.
fn matched(drafts: &[&Map<String, Value>], answer: Vec<Item>) -> (Vec<Created>, Vec<NotCreated>) {
    let slug_of =
        |data: &Map<String, Value>| data.get("slug").and_then(Value::as_str).map(str::to_owned);
    let same_length = answer.len() == drafts.len();
    let mut answer: Vec<Option<Item>> = answer.into_iter().map(Some).collect();
    let mut created = Vec::new();
    let mut not_created = Vec::new();
    for (index, data) in drafts.iter().enumerate() {
        let slug = slug_of(data);
        let by_slug = answer.iter().position(|i| {
            i.as_ref()
                .is_some_and(|i| slug.is_some() && slug_of(&i.field_data) == slug)
        });
        let found = by_slug
            .or(same_length.then_some(index))
            .and_then(|at| answer.get_mut(at).and_then(Option::take));
        match found {
            Some(item) => created.push(Created {
                index,
                name: item
                    .field_data
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                slug: slug_of(&item.field_data),
                id: item.id,
                is_draft: item.is_draft,
                last_updated: item.last_updated,
            }),
            None => not_created.push(NotCreated {
                index,
                slug,
                reason: "Webflow's answer does not list it as created".into(),
            }),
        }
    }
    (created, not_created)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn item(id: &str, slug: &str) -> Item {
        serde_json::from_value(json!({"id": id, "isDraft": true,
            "fieldData": {"name": slug, "slug": slug}}))
        .unwrap()
    }

    #[test]
    fn batches_are_bounded() {
        let one = map(json!({"name": "A", "slug": "a"}));
        assert!(bounded(&[]).unwrap_err().to_string().contains("empty"));
        let many = vec![&one; MAX_ITEMS + 1];
        assert!(
            bounded(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 100")
        );
        assert!(bounded(&many[..MAX_ITEMS]).is_ok());
    }

    #[test]
    fn answers_are_matched_by_slug_and_gaps_reported() {
        let (a, b, c) = (
            map(json!({"name": "A", "slug": "a"})),
            map(json!({"name": "B", "slug": "b"})),
            map(json!({"name": "C", "slug": "c"})),
        );
        let (created, missing) = matched(&[&a, &b, &c], vec![item("2", "c"), item("1", "a")]);
        let ids: Vec<(usize, &str)> = created.iter().map(|c| (c.index, c.id.as_str())).collect();
        assert_eq!(ids, [(0, "1"), (2, "2")]);
        assert_eq!(missing.len(), 1);
        assert_eq!(
            (missing[0].index, missing[0].slug.as_deref()),
            (1, Some("b"))
        );
    }
}
