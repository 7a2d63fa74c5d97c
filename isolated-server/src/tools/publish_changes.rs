//! What a site publish takes live: the pages and CMS items changed since the site was last
//! published (their `lastUpdated` against the site's `lastPublished`), the first few named and
//! all counted, so an approver decides on the content and not on a site id.
//!
//! Bounded in Webflow's quota (60 requests a minute a site token): one request for the pages,
//! one for the collections and one per collection (Webflow filters and counts the items by
//! `lastUpdated` itself), for at most [`COLLECTIONS_CHECKED`] collections; what is left out is
//! said.

use common::domain::WebflowId;
use common::upstream::UpstreamError;
use common::upstream::webflow::{Site, Webflow};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Names shown for each kind of change; the rest are counted ("and 12 more").
const NAMES_SHOWN: usize = 8;
/// Pages looked at: one request.
const PAGES_CHECKED: u32 = 100;
/// Collections whose items are looked at, one request each.
const COLLECTIONS_CHECKED: usize = 10;

/// What changed since the last publish, as the approval page shows it.
#[derive(Debug, Serialize)]
pub struct Changes {
    /// In one sentence: "2 pages and 3 CMS items changed since the last publish."
    pub summary: String,
    pub pages: Changed,
    /// Each collection with changed items.
    pub cms_items: Vec<CollectionChanged>,
    /// What was not looked at, when anything was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Changed {
    pub count: u64,
    /// The first few, then "and N more".
    pub names: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CollectionChanged {
    pub collection: String,
    pub count: u64,
    /// The first few, newest first, then "and N more". Drafts say so: they stay unpublished.
    pub items: Vec<String>,
}

/// The changes on `site` since it was last published (everything staged when it never was).
pub async fn since_last_publish(webflow: &Webflow<'_>, site: &WebflowId, info: &Site) -> Changes {
    match look(webflow, site, info).await {
        Ok(changes) => changes,
        Err(e) => Changes {
            summary: format!(
                "What changed could not be listed ({e}). Publishing takes live whatever is \
                 staged now."
            ),
            pages: Changed {
                count: 0,
                names: Vec::new(),
            },
            cms_items: Vec::new(),
            not_checked: None,
        },
    }
}

async fn look(
    webflow: &Webflow<'_>,
    site: &WebflowId,
    info: &Site,
) -> Result<Changes, UpstreamError> {
    let since = info.last_published.as_deref();
    let published_at = since.and_then(parse);

    let listed = webflow.list_pages(site, 0, PAGES_CHECKED, None).await?;
    let changed_pages: Vec<String> = listed
        .pages
        .iter()
        .filter(|p| !p.draft && !p.archived)
        .filter(|p| newer(p.last_updated.as_deref(), published_at))
        .map(|p| {
            p.title
                .clone()
                .or_else(|| p.slug.clone())
                .unwrap_or_else(|| p.id.clone())
        })
        .collect();
    let mut not_checked = Vec::new();
    let total_pages = u64::from(listed.pagination.total).max(count(listed.pages.len()));
    if total_pages > u64::from(PAGES_CHECKED) {
        not_checked.push(format!(
            "pages after the first {PAGES_CHECKED} of {total_pages}"
        ));
    }

    let collections = webflow.list_collections(site).await?.collections;
    if collections.len() > COLLECTIONS_CHECKED {
        not_checked.push(format!(
            "the items of {} collections after the first {COLLECTIONS_CHECKED}",
            collections.len() - COLLECTIONS_CHECKED
        ));
    }
    let mut cms_items = Vec::new();
    for collection in collections.iter().take(COLLECTIONS_CHECKED) {
        let Ok(id) = WebflowId::parse("collection_id", &collection.id) else {
            continue;
        };
        let limit = u32::try_from(NAMES_SHOWN).unwrap_or(u32::MAX);
        let items = webflow.list_items_updated_since(&id, since, limit).await?;
        let total = u64::from(items.pagination.total).max(count(items.items.len()));
        if total == 0 {
            continue;
        }
        let names = items
            .items
            .iter()
            .map(|item| {
                let name = item
                    .field_data
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or(&item.id);
                if item.is_draft {
                    format!("{name} (draft: stays unpublished)")
                } else {
                    name.to_owned()
                }
            })
            .collect();
        cms_items.push(CollectionChanged {
            collection: collection
                .display_name
                .clone()
                .or_else(|| collection.slug.clone())
                .unwrap_or_else(|| collection.id.clone()),
            count: total,
            items: and_more(names, total),
        });
    }

    let page_count = count(changed_pages.len());
    let item_count: u64 = cms_items.iter().map(|c| c.count).sum();
    let summary = match since {
        None => format!(
            "The site has never been published: all of it goes live ({} and {}).",
            plural(page_count, "page"),
            plural(item_count, "CMS item")
        ),
        Some(_) if page_count == 0 && item_count == 0 => {
            "Nothing changed since the last publish: the live site stays as it is.".to_owned()
        }
        Some(_) => format!(
            "{} and {} changed since the last publish.",
            plural(page_count, "page"),
            plural(item_count, "CMS item")
        ),
    };
    Ok(Changes {
        summary,
        pages: Changed {
            count: page_count,
            names: and_more(changed_pages, page_count),
        },
        cms_items,
        not_checked: (!not_checked.is_empty())
            .then(|| format!("Not looked at: {}.", not_checked.join("; "))),
    })
}

/// Whether `updated` is after `published` (always, when the site never was published or a
/// date cannot be read: better shown than hidden).
fn newer(updated: Option<&str>, published: Option<OffsetDateTime>) -> bool {
    match (updated.and_then(parse), published) {
        (Some(updated), Some(published)) => updated > published,
        _ => true,
    }
}

fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// The first [`NAMES_SHOWN`] of `names`, then "and N more" for the rest of `total`.
fn and_more(mut names: Vec<String>, total: u64) -> Vec<String> {
    names.truncate(NAMES_SHOWN);
    let more = total.saturating_sub(count(names.len()));
    if more > 0 {
        names.push(format!("and {more} more"));
    }
    names
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_the_rest_counted() {
        let names: Vec<String> = (0..20).map(|i| format!("page {i}")).collect();
        let shown = and_more(names, 20);
        assert_eq!(shown.len(), NAMES_SHOWN + 1);
        assert_eq!(shown.last().map(String::as_str), Some("and 12 more"));
        assert_eq!(and_more(vec!["one".into()], 1), ["one"]);
        assert_eq!(and_more(vec!["one".into()], 5), ["one", "and 4 more"]);
    }

    #[test]
    fn newer_compares_instants_not_strings() {
        let published = parse("2025-05-02T14:05:00.000Z");
        assert!(newer(Some("2025-05-02T14:05:01Z"), published));
        assert!(!newer(Some("2025-05-02T16:04:00+02:00"), published));
        assert!(!newer(Some("2025-04-20T16:30:00.000Z"), published));
        // Unreadable or never published: shown.
        assert!(newer(Some("yesterday"), published));
        assert!(newer(Some("2025-04-20T16:30:00.000Z"), None));
        assert_eq!(plural(1, "page"), "1 page");
        assert_eq!(plural(0, "CMS item"), "0 CMS items");
    }
}
