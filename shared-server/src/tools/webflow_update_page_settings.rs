//! `webflow_update_page_settings`: a page's title, slug, SEO and Open Graph text on the staged
//! site (`PUT /v2/pages/{page_id}`), with what each changed field was before and is now.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::{Page, PageSettings, TextPair};

pub struct UpdatePageSettings;

/// Most characters of a page title, SEO title or Open Graph title. Search engines show about
/// 60; Webflow documents no limit, so this only keeps mistakes (a pasted article) out.
pub const MAX_TITLE_CHARS: usize = 256;
/// Most characters of an SEO or Open Graph description (search engines show about 160).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most characters of a slug (Webflow's own limit for CMS slugs).
pub const MAX_SLUG_CHARS: usize = 256;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow page id (from `webflow_list_pages`).
    pub page_id: String,
    /// The page's title (its name in the Designer).
    #[serde(default)]
    pub title: Option<String>,
    /// The page's URL segment: lowercase letters, digits and '-'. Webflow ignores it for the
    /// home page, collection template pages and utility pages.
    #[serde(default)]
    pub slug: Option<String>,
    /// What search engines show: `title` and `description`, either or both.
    #[serde(default)]
    pub seo: Option<TextArgs>,
    /// What link previews show: `title` and `description`, either or both.
    #[serde(default)]
    pub open_graph: Option<TextArgs>,
    /// Change these settings in this locale only (a locale `id` from `webflow_get_site`'s
    /// `locales`); leave out for the primary locale.
    #[serde(default)]
    pub locale_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextArgs {
    #[serde(default)]
    pub title: Option<String>,
    /// An empty string clears it.
    #[serde(default)]
    pub description: Option<String>,
}

/// One field's value before the call and after it.
#[derive(Debug, Serialize)]
pub struct Change {
    /// `title`, `slug`, `seo.title`, `seo.description`, `open_graph.title`,
    /// `open_graph.description`.
    pub field: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub page_id: String,
    pub site_id: String,
    /// Every settings field whose value differs after the call (Webflow may change one not
    /// asked for: an Open Graph title copied from the SEO title follows it).
    pub changes: Vec<Change>,
    /// Fields given that already had that value: not sent.
    pub unchanged: Vec<&'static str>,
    /// Fields sent that Webflow did not apply (a slug on the home page, say).
    pub not_applied: Vec<&'static str>,
    /// The page as Webflow now holds it.
    pub page: Page,
    pub note: String,
}

impl Tool for UpdatePageSettings {
    const NAME: &'static str = "webflow_update_page_settings";
    const TITLE: &'static str = "Edit page settings";
    const DESCRIPTION: &'static str = "Change the title, slug, SEO title and description, or Open Graph title \
         and description of one of this tenant's pages. Give page_id and only the fields to \
         change, and locale_id (from webflow_get_site's locales) to change a secondary \
         locale's settings only. Only the staged site changes; the live site changes when \
         someone publishes. The result lists each changed field before and after.";
    const TIER: Tier = Tier::ScopedWrite;
    const EFFECT: Effect = Effect::Overwrites;
    const TOOLSET: Option<Toolset> = Some(Toolset::PageWrite);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        // Everything about the arguments is checked before any upstream request.
        let page = WebflowId::parse("page_id", &args.page_id)?;
        let locale_id = args.locale_id.clone();
        if let Some(raw) = &locale_id {
            WebflowId::parse("locale_id", raw)?;
        }
        let wanted = checked(args)?;
        let page = ctx.page(page.as_str()).await?;
        let locale = ctx.page_locale(&page, locale_id.as_deref()).await?;
        let locale = locale.as_ref();
        let webflow = ctx.webflow()?;
        // What Webflow holds now, not a cached copy: the "before" a person reads.
        let before = webflow.refreshing().get_page(&page, locale).await?;
        let site = before
            .site_id
            .as_deref()
            .and_then(|s| WebflowId::parse("siteId", s).ok())
            .filter(|s| ctx.tenant.owns_site(s))
            .ok_or_else(|| ToolError::NotYours {
                what: "page",
                id: page.to_string(),
            })?;
        let (send, unchanged) = differing(&wanted, &before);
        let after = if send.is_empty() {
            before.clone()
        } else {
            webflow
                .update_page_settings(&site, &page, &send, locale)
                .await?
        };
        let changes: Vec<Change> = FIELDS
            .iter()
            .filter_map(|&(field, get)| {
                let (b, a) = (get(&before), get(&after));
                (b != a).then_some(Change {
                    field,
                    before: b,
                    after: a,
                })
            })
            .collect();
        let not_applied: Vec<&'static str> = FIELDS
            .iter()
            .filter(|&&(field, get)| {
                requested(&send, field).is_some_and(|v| get(&after).as_deref() != Some(v))
            })
            .map(|&(field, _)| field)
            .collect();
        let note = if changes.is_empty() {
            "Nothing changed: the page already had these settings.".to_owned()
        } else {
            "Changed on the staged site only; the live site shows it after the next publish."
                .to_owned()
        };
        Ok(Output {
            page_id: page.to_string(),
            site_id: site.to_string(),
            changes,
            unchanged,
            not_applied,
            page: after,
            note,
        })
    }
}

type Getter = fn(&Page) -> Option<String>;

/// The six settings, by the names the result uses, and where a page holds each.
const FIELDS: [(&str, Getter); 6] = [
    ("title", |p| p.title.clone()),
    ("slug", |p| p.slug.clone()),
    ("seo.title", |p| {
        p.seo.as_ref().and_then(|s| s.title.clone())
    }),
    ("seo.description", |p| {
        p.seo.as_ref().and_then(|s| s.description.clone())
    }),
    ("open_graph.title", |p| {
        p.open_graph.as_ref().and_then(|s| s.title.clone())
    }),
    ("open_graph.description", |p| {
        p.open_graph.as_ref().and_then(|s| s.description.clone())
    }),
];

/// The value `settings` gives for `field`, if any.
fn requested<'s>(settings: &'s PageSettings, field: &str) -> Option<&'s str> {
    let pair = |p: &'s Option<TextPair>, title: bool| {
        let p = p.as_ref()?;
        let value = if title { &p.title } else { &p.description };
        value.as_deref()
    };
    match field {
        "title" => settings.title.as_deref(),
        "slug" => settings.slug.as_deref(),
        "seo.title" => pair(&settings.seo, true),
        "seo.description" => pair(&settings.seo, false),
        "open_graph.title" => pair(&settings.open_graph, true),
        "open_graph.description" => pair(&settings.open_graph, false),
        _ => None,
    }
}

/// The arguments as the update they ask for, or a sentence saying what to fix.
fn checked(args: Args) -> Result<PageSettings, ToolError> {
    let seo = args.seo.unwrap_or_default();
    let og = args.open_graph.unwrap_or_default();
    let settings = PageSettings {
        title: text("title", args.title, MAX_TITLE_CHARS, false)?,
        slug: slug(args.slug)?,
        seo: pair(
            text("seo.title", seo.title, MAX_TITLE_CHARS, true)?,
            text(
                "seo.description",
                seo.description,
                MAX_DESCRIPTION_CHARS,
                true,
            )?,
        ),
        open_graph: pair(
            text("open_graph.title", og.title, MAX_TITLE_CHARS, true)?,
            text(
                "open_graph.description",
                og.description,
                MAX_DESCRIPTION_CHARS,
                true,
            )?,
        ),
    };
    if settings.is_empty() {
        return Err(ToolError::InvalidArguments(
            "nothing to change: give at least one of title, slug, seo.title, seo.description, \
             open_graph.title or open_graph.description"
                .into(),
        ));
    }
    Ok(settings)
}

fn pair(title: Option<String>, description: Option<String>) -> Option<TextPair> {
    (title.is_some() || description.is_some()).then_some(TextPair { title, description })
}

/// One line of text a visitor will read: no control, invisible or direction-changing
/// character (what a person reads in the Designer must be what the page says), bounded.
fn text(
    name: &str,
    value: Option<String>,
    max_chars: usize,
    may_be_empty: bool,
) -> Result<Option<String>, ToolError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = |why: String| Err(ToolError::InvalidArguments(format!("{name}: {why}")));
    if !may_be_empty && value.trim().is_empty() {
        return bad("cannot be empty; leave it out to keep the current value".into());
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return bad(format!(
            "{chars} characters is more than the {max_chars} allowed; shorten it"
        ));
    }
    common::text::refuse_unseen(name, &value, "the page differ from what a person reads")
        .map_err(ToolError::InvalidArguments)?;
    Ok(Some(value))
}

fn slug(value: Option<String>) -> Result<Option<String>, ToolError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let ok = !value.is_empty()
        && value.len() <= MAX_SLUG_CHARS
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ToolError::InvalidArguments(format!(
            "slug: use 1-{MAX_SLUG_CHARS} lowercase letters, digits and '-' (not at either end), \
             such as `about-us`"
        )));
    }
    Ok(Some(value))
}

/// Only the fields whose value differs from `before`, and the names of those given that do not.
fn differing(wanted: &PageSettings, before: &Page) -> (PageSettings, Vec<&'static str>) {
    let mut unchanged = Vec::new();
    let mut keep = |field: &'static str, value: &Option<String>| -> Option<String> {
        let value = value.as_ref()?;
        let current = FIELDS
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, get)| get(before));
        if current.as_deref() == Some(value.as_str()) {
            unchanged.push(field);
            None
        } else {
            Some(value.clone())
        }
    };
    let title = keep("title", &wanted.title);
    let slug = keep("slug", &wanted.slug);
    let seo = wanted.seo.clone().unwrap_or_default();
    let seo = pair(
        keep("seo.title", &seo.title),
        keep("seo.description", &seo.description),
    );
    let og = wanted.open_graph.clone().unwrap_or_default();
    let open_graph = pair(
        keep("open_graph.title", &og.title),
        keep("open_graph.description", &og.description),
    );
    let send = PageSettings {
        title,
        slug,
        seo,
        open_graph,
    };
    (send, unchanged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn args(json: serde_json::Value) -> Args {
        serde_json::from_value(json).unwrap()
    }

    fn refused(json: serde_json::Value) -> String {
        checked(args(json)).unwrap_err().to_string()
    }

    #[test]
    fn an_update_needs_something_to_change() {
        let page = "0123456789abcdef01234567";
        for empty in [
            serde_json::json!({"page_id": page}),
            serde_json::json!({"page_id": page, "seo": {}, "open_graph": {}}),
        ] {
            assert!(refused(empty).contains("nothing to change"));
        }
    }

    #[test]
    fn fields_are_bounded_and_visible() {
        let page = "0123456789abcdef01234567";
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert!(refused(serde_json::json!({"page_id": page, "title": long})).contains("title:"));
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert!(
            refused(serde_json::json!({"page_id": page, "seo": {"description": long}}))
                .contains("seo.description")
        );
        assert!(refused(serde_json::json!({"page_id": page, "title": " "})).contains("empty"));
        assert!(
            refused(serde_json::json!({"page_id": page, "open_graph": {"title": "a\u{202e}b"}}))
                .contains("open_graph.title")
        );
        for bad in ["About Us", "-about", "", "über"] {
            assert!(refused(serde_json::json!({"page_id": page, "slug": bad})).contains("slug"));
        }
        // Clearing a description is a change.
        let ok = checked(args(
            serde_json::json!({"page_id": page, "seo": {"description": ""}}),
        ))
        .unwrap();
        assert_eq!(ok.seo.unwrap().description.as_deref(), Some(""));
    }
}
