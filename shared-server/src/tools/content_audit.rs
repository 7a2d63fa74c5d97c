//! `content_audit`: reads a whole site (every page, every collection, every item, paged) and
//! lists what a person should fix: pages without a meta description, items missing required or
//! SEO fields, drafts nobody has touched in a while.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{Collection, Item, Webflow};

pub struct ContentAudit;

/// Findings kept per list; the counts stay exact.
const MAX_FINDINGS: usize = 200;
/// Items read per collection at most, to bound one call's upstream traffic.
const MAX_ITEMS: u32 = 5_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
    /// Only this collection (default: all of the site's collections).
    #[serde(default)]
    pub collection_id: Option<String>,
    /// A draft not updated for this many days counts as stale (default 30).
    #[serde(default)]
    pub stale_draft_days: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct PageFinding {
    pub page_id: String,
    pub title: Option<String>,
    pub slug: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ItemFinding {
    pub collection_id: String,
    pub collection: Option<String>,
    pub item_id: String,
    pub name: Option<String>,
    /// Field slugs concerned (missing fields), empty for stale drafts.
    pub fields: Vec<String>,
    pub last_updated: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub pages: usize,
    pub collections: usize,
    pub items: usize,
    pub pages_missing_meta_description: usize,
    pub items_missing_required_fields: usize,
    pub items_missing_seo_fields: usize,
    pub stale_drafts: usize,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub site_id: String,
    pub stale_draft_days: u32,
    pub counts: Counts,
    pub pages_missing_meta_description: Vec<PageFinding>,
    pub items_missing_required_fields: Vec<ItemFinding>,
    pub items_missing_seo_fields: Vec<ItemFinding>,
    pub stale_drafts: Vec<ItemFinding>,
    /// True when a list or a collection was cut at its limit.
    pub truncated: bool,
    pub summary: String,
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn push<T>(list: &mut Vec<T>, count: &mut usize, truncated: &mut bool, finding: T) {
    *count += 1;
    if list.len() < MAX_FINDINGS {
        list.push(finding);
    } else {
        *truncated = true;
    }
}

/// Days since the Unix epoch of an ISO 8601 date or timestamp (`YYYY-MM-DD…`).
fn epoch_days(stamp: &str) -> Option<i64> {
    let y: i64 = stamp.get(0..4)?.parse().ok()?;
    let m: i64 = stamp.get(5..7)?.parse().ok()?;
    let d: i64 = stamp.get(8..10)?.parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

impl Tool for ContentAudit {
    const NAME: &'static str = "content_audit";
    const TITLE: &'static str = "Audit site content";
    const DESCRIPTION: &'static str = "Audit one of this tenant's sites: pages without a meta description, \
         CMS items missing required or SEO fields, and drafts not updated for N days (default 30). \
         Reads every page and item; returns counts, the findings, and a summary to act on.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        let stale_days = args.stale_draft_days.unwrap_or(30);
        if !(1..=3650).contains(&stale_days) {
            return Err(ToolError::InvalidArguments(format!(
                "stale_draft_days must be between 1 and 3650, got {stale_days}"
            )));
        }
        let only = match &args.collection_id {
            Some(raw) => Some(ctx.collection(raw).await?),
            None => None,
        };
        let webflow = ctx.webflow()?;
        let today = (ctx.services.clock.now() / 86_400) as i64;
        let mut out = Output {
            site_id: site.to_string(),
            stale_draft_days: stale_days,
            counts: Counts::default(),
            pages_missing_meta_description: Vec::new(),
            items_missing_required_fields: Vec::new(),
            items_missing_seo_fields: Vec::new(),
            stale_drafts: Vec::new(),
            truncated: false,
            summary: String::new(),
        };

        if only.is_none() {
            let mut offset = 0;
            loop {
                let list = webflow.list_pages(&site, offset, 100, None).await?;
                let got = list.pages.len() as u32;
                for page in list.pages {
                    out.counts.pages += 1;
                    let described = page
                        .seo
                        .as_ref()
                        .and_then(|s| s.description.as_deref())
                        .is_some_and(|d| !d.trim().is_empty());
                    if !described {
                        let finding = PageFinding {
                            page_id: page.id,
                            title: page.title,
                            slug: page.slug,
                        };
                        push(
                            &mut out.pages_missing_meta_description,
                            &mut out.counts.pages_missing_meta_description,
                            &mut out.truncated,
                            finding,
                        );
                    }
                }
                offset += got;
                if got == 0 || offset >= list.pagination.total {
                    break;
                }
            }
        }

        let collections: Vec<WebflowId> = match only {
            Some(id) => vec![id],
            None => webflow
                .list_collections(&site)
                .await?
                .collections
                .iter()
                .filter_map(|c| WebflowId::parse("collection", &c.id).ok())
                .collect(),
        };
        for id in collections {
            let schema = webflow.get_collection(&id).await?;
            out.counts.collections += 1;
            audit_collection(&webflow, &schema, &id, today, stale_days, &mut out).await?;
        }

        let c = &out.counts;
        out.summary = format!(
            "Read {} pages, {} collections, {} items. {} pages lack a meta description; {} items miss \
             required fields; {} items miss SEO fields; {} drafts untouched for {}+ days.{}",
            c.pages,
            c.collections,
            c.items,
            c.pages_missing_meta_description,
            c.items_missing_required_fields,
            c.items_missing_seo_fields,
            c.stale_drafts,
            stale_days,
            if out.truncated {
                " Lists were cut; counts are complete."
            } else {
                ""
            }
        );
        Ok(out)
    }
}

async fn audit_collection(
    webflow: &Webflow<'_>,
    schema: &Collection,
    id: &WebflowId,
    today: i64,
    stale_days: u32,
    out: &mut Output,
) -> Result<(), ToolError> {
    let fields = schema.fields.clone().unwrap_or_default();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.is_required)
        .map(|f| f.slug.as_str())
        .collect();
    let seo: Vec<&str> = fields
        .iter()
        .map(|f| f.slug.as_str())
        .filter(|s| s.contains("seo") || s.contains("meta"))
        .collect();
    let finding = |item: &Item, fields: Vec<String>| ItemFinding {
        collection_id: id.to_string(),
        collection: schema.display_name.clone(),
        item_id: item.id.clone(),
        name: item
            .field_data
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        fields,
        last_updated: item.last_updated.clone(),
    };
    let mut offset = 0;
    loop {
        let list = webflow.list_items(id, offset, 100, None).await?;
        let got = list.items.len() as u32;
        for item in &list.items {
            out.counts.items += 1;
            let missing = |slugs: &[&str]| -> Vec<String> {
                slugs
                    .iter()
                    .filter(|s| is_empty(item.field_data.get(**s)))
                    .map(|s| (*s).to_owned())
                    .collect()
            };
            let missing_required = missing(&required);
            if !missing_required.is_empty() {
                push(
                    &mut out.items_missing_required_fields,
                    &mut out.counts.items_missing_required_fields,
                    &mut out.truncated,
                    finding(item, missing_required),
                );
            }
            let missing_seo = missing(&seo);
            if !missing_seo.is_empty() {
                push(
                    &mut out.items_missing_seo_fields,
                    &mut out.counts.items_missing_seo_fields,
                    &mut out.truncated,
                    finding(item, missing_seo),
                );
            }
            let age = item
                .last_updated
                .as_deref()
                .and_then(epoch_days)
                .map(|d| today - d);
            if item.is_draft && age.is_some_and(|a| a >= i64::from(stale_days)) {
                push(
                    &mut out.stale_drafts,
                    &mut out.counts.stale_drafts,
                    &mut out.truncated,
                    finding(item, Vec::new()),
                );
            }
        }
        offset += got;
        if got == 0 || offset >= list.pagination.total {
            break;
        }
        if offset >= MAX_ITEMS {
            out.truncated = true;
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_days_matches_known_dates() {
        assert_eq!(super::epoch_days("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(super::epoch_days("2026-11-26"), Some(20_783));
        assert_eq!(super::epoch_days("garbage"), None);
    }
}
