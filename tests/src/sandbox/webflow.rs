//! Sandbox Webflow Data API v2: the subset of `https://api.webflow.com/v2` the tools call, with
//! Webflow's paths, camelCase shapes and error bodies, scoped like a site token.
//!
//! Shapes follow Webflow's OpenAPI description (operations `list-sites`, `get-site`,
//! `list-pages`, `get-page-metadata`, `update-page-settings`, `get-static-content`,
//! `list-collections`, `collection-details`,
//! `list-collection-items`, `Get-Item`, `create-item` (one item or a batch), `update-item`,
//! `list-assets`, `get-asset`, `patch-asset`, `list-forms`, `list-submissions`,
//! `list-comment-threads`, `list-comment-replies`, `site-publish`, `publish-item`,
//! `introspect`, `list-items-live`, `delete-items`, `delete-items-live`, `authorized-by`,
//! `get-scripts`, `get-site-custom-code`, `add-custom-code-tosite`, `get-custom-code` and
//! `add-custom-code-to-page`; the last six take only a Webflow App token, which nothing else
//! takes). Every site has a primary and [`SECONDARY_LOCALES`]: page reads and
//! `update-page-settings` take `localeId`, item reads `cmsLocaleId`, each answering that locale's
//! variant (its texts marked `[fr-FR]`), and a locale the site lacks is Webflow's 400
//! `validation_error`. A token may be
//! made to lack a scope ([`WebflowState::withhold_scope`]): the operations that check one then
//! answer Webflow's 403 `missing_scopes`. A token reaches exactly one site; anything under another owner's site answers
//! exactly like an id that does not exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Caller, Fixture, OwnerFixture, derive_id, lock, now_rfc3339};

pub const PAGES_PER_SITE: usize = 3;
/// Scripts registered on every site: id, display name, version. The site applies the first.
pub const REGISTERED_SCRIPTS: [(&str, &str, &str); 3] = [
    ("cms_slider", "CMS Slider", "1.0.0"),
    ("cms_slider", "CMS Slider", "1.1.0"),
    ("cookie_banner", "Cookie Banner", "0.2.0"),
];
pub const CUSTOM_DOMAINS_PER_SITE: usize = 2;
/// Per collection: display name (served with the owner marker), singular name, slug.
pub const COLLECTION_NAMES: [(&str, &str, &str); 2] = [
    ("Blog Posts", "Blog Post", "blog-posts"),
    ("Authors", "Author", "authors"),
];
/// Items seeded in each collection of [`COLLECTION_NAMES`], in the same order.
pub const ITEMS_PER_COLLECTION: [usize; 2] = [5, 2];
/// Index into `page_ids` of the page whose `seo.description` is missing.
pub const PAGE_WITHOUT_SEO_DESCRIPTION: usize = 2;
/// Index (within the first collection) of the draft last updated in 2019, never published.
pub const STALE_DRAFT_ITEM: usize = 3;
/// Index (within the first collection) of the item without a `seo-description` field.
pub const ITEM_WITHOUT_SEO_DESCRIPTION: usize = 4;
/// Text nodes per page DOM: more than one page of `limit=2`, so paging is exercised.
pub const DOM_NODES_PER_PAGE: usize = 5;

/// Per asset of a site: file name, content type, alt text (`None`: never set). Index 1 is an
/// image without alt text, index 3 a document without it.
pub const ASSETS: [(&str, &str, Option<&str>); 4] = [
    ("hero.jpg", "image/jpeg", Some("Hero image of the site")),
    ("team.png", "image/png", None),
    ("logo.svg", "image/svg+xml", Some("Company logo")),
    ("brochure.pdf", "application/pdf", None),
];
/// A form seeded on every site.
pub struct SeedForm {
    pub name: &'static str,
    /// Index into `page_ids` of the page it is on.
    pub page: usize,
    /// Its fields: name and Webflow field type.
    pub fields: &'static [(&'static str, &'static str)],
    /// How many submissions it has.
    pub submissions: usize,
}

/// The forms of every site, in `form_ids` order.
pub const FORMS: [SeedForm; 2] = [
    SeedForm {
        name: "Contact form",
        page: 2,
        fields: &[("Name", "Plain"), ("Email", "Email"), ("Message", "Plain")],
        submissions: 3,
    },
    SeedForm {
        name: "Newsletter",
        page: 0,
        fields: &[("Email", "Email")],
        submissions: 1,
    },
];

/// Per comment thread of a site: the index of its page, its text, whether it is resolved and
/// its replies' texts. Threads were started a day apart, oldest first, and the second was
/// updated last.
pub const COMMENT_THREADS: [(usize, &str, bool, &[&str]); 3] = [
    (
        1,
        "Can the team photo be bigger?",
        false,
        &["Yes, on it.", "Done on staging."],
    ),
    (0, "Typo in the hero headline", true, &["Fixed."]),
    (2, "Please add our phone number", false, &[]),
];

/// Every site's secondary locales, after its primary (English (United States), `en-US`):
/// display name, tag, subdirectory, enabled. Locale `n` has the fixture's `locale_ids[n + 1]`
/// and `cms_locale_ids[n + 1]`.
pub const SECONDARY_LOCALES: [(&str, &str, &str, bool); 2] = [
    ("French (France)", "fr-FR", "fr-fr", true),
    ("German (Germany)", "de-DE", "de-de", false),
];

/// A text as a secondary locale's variant shows it: marked with the locale's tag, so a test
/// sees which variant it was given.
pub fn localized(text: &str, tag: &str) -> String {
    format!("[{tag}] {text}")
}

/// Index into `asset_ids` of the image without alt text.
pub const IMAGE_WITHOUT_ALT_TEXT: usize = 1;

/// Webflow's documented maximum (and default) page size.
const MAX_LIMIT: usize = 100;
/// Webflow's documented per-minute rate limit on the lowest plans; echoed in the headers.
const RATE_LIMIT: &str = "60";
/// `site-publish` allows "one successful publish queue per minute" per site.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(60);

/// Webflow routes, ready to merge into the sandbox app.
pub(crate) fn router(state: Arc<WebflowState>) -> Router {
    Router::new()
        .route("/v2/token/introspect", get(introspect))
        .route("/v2/sites", get(list_sites))
        .route("/v2/sites/{site_id}", get(get_site))
        .route("/v2/sites/{site_id}/pages", get(list_pages))
        .route("/v2/pages/{page_id}", get(get_page).put(update_page))
        .route("/v2/pages/{page_id}/dom", get(get_page_dom))
        .route("/v2/sites/{site_id}/collections", get(list_collections))
        .route("/v2/collections/{collection_id}", get(get_collection))
        .route(
            "/v2/collections/{collection_id}/items",
            get(list_items).post(create_item).delete(delete_items),
        )
        .route(
            "/v2/collections/{collection_id}/items/live",
            get(list_live_items).delete(unpublish_items),
        )
        .route(
            "/v2/collections/{collection_id}/items/{item_id}",
            get(get_item).patch(update_item),
        )
        .route("/v2/sites/{site_id}/assets", get(list_assets))
        .route("/v2/assets/{asset_id}", get(get_asset).patch(update_asset))
        .route("/v2/sites/{site_id}/forms", get(list_forms))
        .route("/v2/forms/{form_id}/submissions", get(list_submissions))
        .route("/v2/sites/{site_id}/comments", get(list_comment_threads))
        .route(
            "/v2/sites/{site_id}/comments/{thread_id}/replies",
            get(list_comment_replies),
        )
        .route("/v2/sites/{site_id}/publish", post(publish_site))
        .route("/v2/token/authorized_by", get(authorized_by))
        .route(
            "/v2/sites/{site_id}/registered_scripts",
            get(registered_scripts),
        )
        .route(
            "/v2/sites/{site_id}/custom_code",
            get(site_custom_code).put(set_site_custom_code),
        )
        .route(
            "/v2/pages/{page_id}/custom_code",
            get(page_custom_code).put(set_page_custom_code),
        )
        .route(
            "/v2/collections/{collection_id}/items/publish",
            post(publish_items),
        )
        .layer(middleware::map_response(rate_limit_headers))
        .with_state(state)
}

/// Webflow sends its rate-limit headers on every answer; clients may pace themselves by them.
/// A handler's own `429` has already said `0` remaining, which stands.
async fn rate_limit_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from_static(RATE_LIMIT));
    headers
        .entry("x-ratelimit-remaining")
        .or_insert(HeaderValue::from_static("59"));
    response
}

// ---------------------------------------------------------------------------------------------
// Wire types (Webflow's JSON, camelCase)

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Site {
    id: String,
    workspace_id: String,
    created_on: String,
    display_name: String,
    short_name: String,
    last_published: String,
    last_updated: String,
    preview_url: String,
    time_zone: String,
    parent_folder_id: Option<String>,
    custom_domains: Vec<CustomDomain>,
    locales: Locales,
    data_collection_enabled: bool,
    data_collection_type: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomDomain {
    id: String,
    url: String,
    last_published: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Locales {
    primary: Locale,
    secondary: Vec<Locale>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Locale {
    id: String,
    cms_locale_id: String,
    enabled: bool,
    display_name: String,
    display_image_id: Option<String>,
    redirect: bool,
    subdirectory: String,
    tag: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    id: String,
    site_id: String,
    parent_id: Option<String>,
    collection_id: Option<String>,
    title: String,
    slug: String,
    created_on: String,
    last_updated: String,
    archived: bool,
    draft: bool,
    can_branch: bool,
    is_branch: bool,
    seo: Seo,
    open_graph: OpenGraph,
    locale_id: Option<String>,
    published_path: String,
}

#[derive(Debug, Clone, Serialize)]
struct Seo {
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct OpenGraph {
    title: String,
    title_copied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    description_copied: bool,
}

#[derive(Debug, Clone, Serialize)]
struct DomNode {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    text: DomText,
    attributes: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
struct DomText {
    html: String,
    text: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Collection {
    id: String,
    display_name: String,
    singular_name: String,
    slug: String,
    created_on: String,
    last_updated: String,
    fields: Vec<Field>,
}

/// A collection as `list-collections` shows it: without its fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CollectionSummary<'a> {
    id: &'a str,
    display_name: &'a str,
    singular_name: &'a str,
    slug: &'a str,
    created_on: &'a str,
    last_updated: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Field {
    id: String,
    is_editable: bool,
    is_required: bool,
    #[serde(rename = "type")]
    kind: String,
    slug: String,
    display_name: String,
    help_text: String,
    validations: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    cms_locale_id: String,
    /// `null` until first published, as Webflow answers for never-published drafts.
    last_published: Option<String>,
    last_updated: String,
    created_on: String,
    is_archived: bool,
    is_draft: bool,
    field_data: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Asset {
    id: String,
    content_type: String,
    size: u64,
    site_id: String,
    hosted_url: String,
    original_file_name: String,
    display_name: String,
    last_updated: String,
    created_on: String,
    variants: Vec<Value>,
    alt_text: Option<String>,
    folder_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Pagination {
    limit: usize,
    offset: usize,
    total: usize,
}

// ---------------------------------------------------------------------------------------------
// In-memory data, every record tagged with its owner

struct SiteRecord {
    owner: String,
    site: Site,
}

struct PageRecord {
    owner: String,
    page: Page,
    nodes: Vec<DomNode>,
    /// Site locale id → the page's settings in that secondary locale.
    localized: HashMap<String, Page>,
}

struct CollectionRecord {
    owner: String,
    site_id: String,
    collection: Collection,
}

struct ItemRecord {
    owner: String,
    collection_id: String,
    item: Item,
    /// CMS locale id → the item in that secondary locale; an item without one shows its
    /// primary field data there, as a new item does in Webflow until someone translates it.
    localized: HashMap<String, Item>,
    /// On the live site (`list-items-live` shows it).
    live: bool,
}

struct AssetRecord {
    owner: String,
    asset: Asset,
}

struct ThreadRecord {
    owner: String,
    site_id: String,
    thread: Value,
    replies: Vec<Value>,
}

struct FormRecord {
    owner: String,
    form: Value,
    submissions: Vec<Value>,
}

#[derive(Default)]
struct Data {
    sites: Vec<SiteRecord>,
    pages: Vec<PageRecord>,
    collections: Vec<CollectionRecord>,
    items: Vec<ItemRecord>,
    assets: Vec<AssetRecord>,
    forms: Vec<FormRecord>,
    threads: Vec<ThreadRecord>,
    /// Items created through the API so far, for fresh deterministic ids.
    created_items: usize,
    /// site id → its accepted publishes.
    publishes: HashMap<String, Publishes>,
    /// site id → the scripts registered on it.
    registered_scripts: HashMap<String, Vec<Value>>,
    /// site or page id → the custom code applied to it (`{scripts, lastUpdated, createdOn}`).
    custom_code: HashMap<String, Value>,
}

/// How often a site was published, and when last (for the one-a-minute limit).
struct Publishes {
    count: usize,
    last: Instant,
}

/// The Webflow sandbox's data. Handlers hold the lock only to look up and clone.
pub(crate) struct WebflowState {
    data: Mutex<Data>,
    /// owner → the scopes its site token was made without (every scope unless withheld).
    withheld: Mutex<HashMap<String, Vec<&'static str>>>,
    /// Owners whose token `introspect` refuses with 401, as Webflow's reference says it may
    /// for a token that is not a Data Client app's.
    introspection_refused: Mutex<Vec<String>>,
}

/// Scopes the sandbox's operations check, as the spec's `security` names them.
pub const SITES_READ: &str = "sites:read";
pub const PAGES_READ: &str = "pages:read";
pub const PAGES_WRITE: &str = "pages:write";
pub const CMS_READ: &str = "cms:read";
pub const CMS_WRITE: &str = "cms:write";
pub const ASSETS_READ: &str = "assets:read";
pub const ASSETS_WRITE: &str = "assets:write";
pub const FORMS_READ: &str = "forms:read";
pub const COMMENTS_READ: &str = "comments:read";

impl WebflowState {
    pub(crate) fn new(fixture: &Fixture) -> WebflowState {
        let mut data = Data::default();
        for owner in &fixture.owners {
            seed_owner(&mut data, owner);
        }
        WebflowState {
            data: Mutex::new(data),
            withheld: Mutex::new(HashMap::new()),
            introspection_refused: Mutex::new(Vec::new()),
        }
    }

    /// From now on `owner`'s site token lacks `scope`, as a token made without it does.
    pub(crate) fn withhold_scope(&self, owner: &str, scope: &'static str) {
        lock(&self.withheld)
            .entry(owner.to_owned())
            .or_default()
            .push(scope);
    }

    /// From now on `introspect` answers `owner`'s token 401.
    pub(crate) fn refuse_introspection(&self, owner: &str) {
        lock(&self.introspection_refused).push(owner.to_owned());
    }

    /// The caller's owner, if its token is known and has `scope`: Webflow's 401 or its 403
    /// `missing_scopes` otherwise.
    fn authorize(&self, caller: &Caller, scope: &'static str) -> Answer<String> {
        let owner = authorize(caller)?;
        let lacks = lock(&self.withheld)
            .get(owner)
            .is_some_and(|w| w.contains(&scope));
        if lacks {
            return Err(WebflowError::new(
                StatusCode::FORBIDDEN,
                "missing_scopes",
                format!("OAuthForbidden: You are missing the following scopes - {scope}"),
            ));
        }
        Ok(owner.to_owned())
    }

    pub(crate) fn item_json(&self, collection_id: &str, item_id: &str) -> Option<Value> {
        let data = lock(&self.data);
        let record = data
            .items
            .iter()
            .find(|r| r.collection_id == collection_id && r.item.id == item_id)?;
        serde_json::to_value(&record.item).ok()
    }

    /// Adds an optional plain-text field `slug` to a collection's schema, as a person in the
    /// Designer would (the API this server uses cannot); `false` if there is no such collection.
    pub(crate) fn add_field(&self, collection_id: &str, slug: &str) -> bool {
        let mut data = lock(&self.data);
        let Some(record) = data
            .collections
            .iter_mut()
            .find(|r| r.collection.id == collection_id)
        else {
            return false;
        };
        let index = record.collection.fields.len();
        let field = Field {
            id: derive_id(
                &format!("added-field:{collection_id}"),
                &record.owner,
                index,
            ),
            is_editable: true,
            is_required: false,
            kind: "PlainText".to_owned(),
            slug: slug.to_owned(),
            display_name: slug.to_owned(),
            help_text: String::new(),
            validations: None,
        };
        record.collection.fields.push(field);
        record.collection.last_updated = now_rfc3339();
        true
    }

    pub(crate) fn asset_json(&self, asset_id: &str) -> Option<Value> {
        let data = lock(&self.data);
        let record = data.assets.iter().find(|r| r.asset.id == asset_id)?;
        serde_json::to_value(&record.asset).ok()
    }

    pub(crate) fn page_json(&self, page_id: &str) -> Option<Value> {
        self.page_json_in(page_id, None)
    }

    /// The page's settings in the site locale `locale_id` (the primary's when `None` or the
    /// primary's id); `None` if there is no such page or locale.
    pub(crate) fn page_json_in(&self, page_id: &str, locale_id: Option<&str>) -> Option<Value> {
        let data = lock(&self.data);
        let record = data.pages.iter().find(|r| r.page.id == page_id)?;
        let locale = locale_named(
            &data,
            &record.page.site_id,
            "localeId",
            locale_id.unwrap_or(""),
        )
        .ok()?;
        serde_json::to_value(record.variant(locale.as_ref())).ok()
    }

    /// Whether the item is on the live site; `None` if there is no such item.
    pub(crate) fn item_live(&self, collection_id: &str, item_id: &str) -> Option<bool> {
        let data = lock(&self.data);
        data.items
            .iter()
            .find(|r| r.collection_id == collection_id && r.item.id == item_id)
            .map(|r| r.live)
    }

    pub(crate) fn custom_code_json(&self, id: &str) -> Option<Value> {
        let data = lock(&self.data);
        let known = data.sites.iter().any(|r| r.site.id == id)
            || data.pages.iter().any(|r| r.page.id == id);
        known.then(|| custom_code_of(&data, id))
    }

    pub(crate) fn publishes(&self, site_id: &str) -> usize {
        lock(&self.data)
            .publishes
            .get(site_id)
            .map_or(0, |p| p.count)
    }
}

/// "acme" → "Acme", for natural-looking names.
fn title_case(owner: &str) -> String {
    let mut chars = owner.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Lowercase letters, digits and dashes only, as Webflow slugs and short names are.
fn slugify(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A UUID-shaped id, the form Webflow uses for DOM nodes.
fn node_id(owner: &str, page: usize, node: usize) -> String {
    let hex = derive_id(&format!("dom-node:{page}"), owner, node)
        + &derive_id(&format!("dom-node-tail:{page}"), owner, node);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn seed_owner(data: &mut Data, fx: &OwnerFixture) {
    let owner = fx.owner.as_str();
    // The marker that makes a cross-tenant leak findable by substring search.
    let mark = format!("(owner:{owner})");
    let name = title_case(owner);
    let short = slugify(owner);
    let cms_locale_id = derive_id("cms-locale", owner, 0);

    let site = Site {
        id: fx.site_id.clone(),
        workspace_id: derive_id("workspace", owner, 0),
        created_on: "2021-03-15T09:30:00.000Z".to_owned(),
        display_name: format!("{name} Co site {mark}"),
        short_name: format!("{short}-site"),
        last_published: "2025-05-02T14:05:00.000Z".to_owned(),
        last_updated: "2025-05-02T14:00:00.000Z".to_owned(),
        preview_url: format!(
            "https://screenshots.sandbox.invalid/sites/{}/preview.png",
            fx.site_id
        ),
        time_zone: "Europe/Berlin".to_owned(),
        parent_folder_id: None,
        custom_domains: fx
            .custom_domain_ids
            .iter()
            .enumerate()
            .map(|(i, id)| CustomDomain {
                id: id.clone(),
                url: match i {
                    0 => format!("{short}.example"),
                    1 => format!("www.{short}.example"),
                    _ => format!("site{i}.{short}.example"),
                },
                last_published: Some("2025-05-02T14:05:00.000Z".to_owned()),
            })
            .collect(),
        locales: Locales {
            primary: Locale {
                id: derive_id("locale", owner, 0),
                cms_locale_id: cms_locale_id.clone(),
                enabled: true,
                display_name: "English (United States)".to_owned(),
                display_image_id: None,
                redirect: false,
                subdirectory: String::new(),
                tag: "en-US".to_owned(),
            },
            secondary: SECONDARY_LOCALES
                .iter()
                .enumerate()
                .map(|(n, &(display, tag, subdirectory, enabled))| Locale {
                    id: derive_id("locale", owner, n + 1),
                    cms_locale_id: derive_id("cms-locale", owner, n + 1),
                    enabled,
                    display_name: display.to_owned(),
                    display_image_id: None,
                    redirect: false,
                    subdirectory: subdirectory.to_owned(),
                    tag: tag.to_owned(),
                })
                .collect(),
        },
        data_collection_enabled: false,
        data_collection_type: "disabled".to_owned(),
    };
    data.sites.push(SiteRecord {
        owner: owner.to_owned(),
        site,
    });
    data.registered_scripts.insert(
        fx.site_id.clone(),
        REGISTERED_SCRIPTS
            .iter()
            .enumerate()
            .map(|(n, (id, display, version))| {
                let file = format!("{}-{version}.js", id.replace('_', "-"));
                json!({
                    "id": id,
                    "displayName": format!("{display} {mark}"),
                    "hostedLocation": format!("https://cdn.sandbox.invalid/{}/{file}", fx.site_id),
                    "integrityHash": format!("sha384-{}", derive_id(&format!("script:{n}"), owner, 0)),
                    "canCopy": false,
                    "version": version,
                    "createdOn": "2025-03-01T10:00:00.000Z",
                    "lastUpdated": "2025-03-01T10:00:00.000Z",
                })
            })
            .collect(),
    );
    // The site already runs the first script's first version in its header.
    data.custom_code.insert(
        fx.site_id.clone(),
        json!({
            "scripts": [{"id": REGISTERED_SCRIPTS[0].0, "version": REGISTERED_SCRIPTS[0].2, "location": "header"}],
            "lastUpdated": "2025-03-02T10:00:00.000Z",
            "createdOn": "2025-03-02T10:00:00.000Z",
        }),
    );

    const PAGE_TITLES: [&str; 3] = ["Home", "About", "Contact"];
    for (p, page_id) in fx.page_ids.iter().enumerate() {
        let title = PAGE_TITLES.get(p).copied().unwrap_or("Landing");
        let slug = if p == 0 {
            "index".to_owned()
        } else {
            format!("{}-{p}", slugify(title))
        };
        let description = (p != PAGE_WITHOUT_SEO_DESCRIPTION)
            .then(|| format!("{title} page of the {name} site {mark}"));
        let page = Page {
            id: page_id.clone(),
            site_id: fx.site_id.clone(),
            parent_id: None,
            collection_id: None,
            title: format!("{title} {mark}"),
            slug: slug.clone(),
            created_on: "2021-03-15T10:00:00.000Z".to_owned(),
            last_updated: format!("2025-04-{:02}T08:00:00.000Z", 10 + p),
            archived: false,
            draft: false,
            can_branch: true,
            is_branch: false,
            seo: Seo {
                title: format!("{title} | {name} Co {mark}"),
                description: description.clone(),
            },
            open_graph: OpenGraph {
                title: format!("{title} | {name} Co {mark}"),
                title_copied: true,
                description,
                description_copied: true,
            },
            locale_id: Some(derive_id("locale", owner, 0)),
            published_path: if p == 0 {
                "/".to_owned()
            } else {
                format!("/{slug}")
            },
        };
        let nodes = (0..DOM_NODES_PER_PAGE)
            .map(|n| {
                let text = format!("{title} paragraph {} for {name} {mark}", n + 1);
                let html = if n == 0 {
                    format!("<h1>{text}</h1>")
                } else {
                    format!("<p>{text}</p>")
                };
                DomNode {
                    id: node_id(owner, p, n),
                    kind: "text".to_owned(),
                    text: DomText { html, text },
                    attributes: Map::new(),
                }
            })
            .collect();
        let localized = SECONDARY_LOCALES
            .iter()
            .enumerate()
            .map(|(n, &(_, tag, _, _))| {
                let id = derive_id("locale", owner, n + 1);
                (id.clone(), localize_page(&page, &id, tag))
            })
            .collect();
        data.pages.push(PageRecord {
            owner: owner.to_owned(),
            page,
            nodes,
            localized,
        });
    }

    for (a, asset_id) in fx.asset_ids.iter().enumerate() {
        let Some((file, content_type, alt)) = ASSETS.get(a).copied() else {
            continue;
        };
        data.assets.push(AssetRecord {
            owner: owner.to_owned(),
            asset: Asset {
                id: asset_id.clone(),
                content_type: content_type.to_owned(),
                size: 20_000 + 1_000 * a as u64,
                site_id: fx.site_id.clone(),
                hosted_url: format!(
                    "https://cdn.sandbox.invalid/{}/{asset_id}_{file}",
                    fx.site_id
                ),
                original_file_name: file.to_owned(),
                display_name: format!("{file} {mark}"),
                last_updated: format!("2025-02-{:02}T10:00:00.000Z", 1 + a),
                created_on: format!("2024-06-{:02}T10:00:00.000Z", 1 + a),
                variants: Vec::new(),
                alt_text: alt.map(|t| format!("{t} {mark}")),
                folder_id: None,
            },
        });
    }

    for (f, form_id) in fx.form_ids.iter().enumerate() {
        let Some(&SeedForm {
            name: form_name,
            page,
            fields,
            submissions: count,
        }) = FORMS.get(f)
        else {
            continue;
        };
        let page_id = fx.page_ids.get(page).cloned().unwrap_or_default();
        let page_name = PAGE_TITLES.get(page).copied().unwrap_or("Landing");
        let field_map: Map<String, Value> = fields
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| {
                (
                    derive_id(&format!("form-field:{f}"), owner, i),
                    json!({"displayName": name, "type": kind, "placeholder": null, "userVisible": true}),
                )
            })
            .collect();
        // What visitors sent: personal data, each answer unique to this owner and submission.
        let submissions = (0..count)
            .map(|n| {
                let reference = derive_id(&format!("lead:{f}"), owner, n);
                let answers: Map<String, Value> = fields
                    .iter()
                    .map(|(field, kind)| {
                        let answer = match *kind {
                            "Email" => format!("visitor{n}.{reference}@{short}.example"),
                            _ if *field == "Message" => format!(
                                "Please call me back about the redesign, ref {reference} {mark}"
                            ),
                            _ => format!("Visitor {n} {reference} {mark}"),
                        };
                        ((*field).to_owned(), json!(answer))
                    })
                    .collect();
                json!({
                    "id": derive_id(&format!("submission:{f}"), owner, n),
                    "formId": form_id,
                    "displayName": form_name,
                    "siteId": fx.site_id,
                    "workspaceId": derive_id("workspace", owner, 0),
                    "formResponse": answers,
                    "dateSubmitted": format!("2025-05-{:02}T09:{:02}:00.000Z", 10 + n, 5 * f),
                    "localeId": null,
                })
            })
            .collect();
        data.forms.push(FormRecord {
            owner: owner.to_owned(),
            form: json!({
                "id": form_id,
                "displayName": format!("{form_name} {mark}"),
                "siteId": fx.site_id,
                "siteDomainId": fx.custom_domain_ids.first(),
                "pageId": page_id,
                "pageName": page_name,
                "workspaceId": derive_id("workspace", owner, 0),
                "formElementId": null,
                "fields": field_map,
                "responseSettings": {
                    "redirectUrl": null, "redirectMethod": null, "redirectAction": null,
                    "sendEmailConfirmation": false,
                },
                "createdOn": "2021-03-15T10:30:00.000Z",
                "lastUpdated": "2025-01-20T10:30:00.000Z",
            }),
            submissions,
        });
    }

    for (t, thread_id) in fx.comment_thread_ids.iter().enumerate() {
        let Some(&(page, text, resolved, replies)) = COMMENT_THREADS.get(t) else {
            continue;
        };
        let page_id = fx.page_ids.get(page).cloned().unwrap_or_default();
        let person = |n: usize| {
            json!({
                "userId": derive_id("webflow-user", owner, n),
                "email": format!("reviewer{n}@{short}.example"),
                "name": format!("Reviewer {n} of {name}"),
            })
        };
        let url = format!(
            "https://webflow.com/design/{short}-site?workflow=comment&commentId={thread_id}&pageId={page_id}"
        );
        let created = format!("2025-04-{:02}T09:00:00.000Z", 10 + t);
        let common = json!({
            "siteId": fx.site_id,
            "pageId": page_id,
            "localeId": derive_id("locale", owner, 0),
            "itemId": null,
            "breakpoint": "main",
            "url": url,
            "isResolved": resolved,
            "mentionedUsers": [],
        });
        let with = |fields: Value| {
            let mut merged = common.clone();
            if let (Some(m), Some(f)) = (merged.as_object_mut(), fields.as_object()) {
                m.extend(f.clone());
            }
            merged
        };
        let replies: Vec<Value> = replies
            .iter()
            .enumerate()
            .map(|(r, reply)| {
                let at = format!("2025-04-{:02}T1{r}:00:00.000Z", 10 + t);
                with(json!({
                    "id": derive_id(&format!("comment-reply:{t}"), owner, r),
                    "commentId": thread_id,
                    "content": format!("{reply} {mark}"),
                    "author": person(r + 1),
                    "createdOn": at,
                    "lastUpdated": at,
                }))
            })
            .collect();
        // The second thread was updated last (its reply), the others when they were made.
        let updated = if t == 1 {
            "2025-04-30T09:00:00.000Z".to_owned()
        } else {
            created.clone()
        };
        data.threads.push(ThreadRecord {
            owner: owner.to_owned(),
            site_id: fx.site_id.clone(),
            thread: with(json!({
                "id": thread_id,
                "content": format!("{text} {mark}"),
                "author": person(0),
                "createdOn": created,
                "lastUpdated": updated,
            })),
            replies,
        });
    }

    for (c, collection_id) in fx.collection_ids.iter().enumerate() {
        let (display, singular, slug) = COLLECTION_NAMES.get(c).copied().unwrap_or((
            "Collection",
            "Collection Item",
            "collection",
        ));
        let fields = collection_fields(owner, c);
        data.collections.push(CollectionRecord {
            owner: owner.to_owned(),
            site_id: fx.site_id.clone(),
            collection: Collection {
                id: collection_id.clone(),
                display_name: format!("{display} {mark}"),
                singular_name: singular.to_owned(),
                slug: slug.to_owned(),
                created_on: "2021-03-16T11:00:00.000Z".to_owned(),
                last_updated: "2025-04-20T16:30:00.000Z".to_owned(),
                fields,
            },
        });

        let ids = fx.item_ids.iter().filter(|(coll, _)| coll == collection_id);
        for (i, (_, item_id)) in ids.enumerate() {
            let item_name = format!("{singular} {} {mark}", i + 1);
            let item_slug = format!("{}-{}", slugify(singular), i + 1);
            let mut field_data = Map::new();
            field_data.insert("name".to_owned(), json!(item_name));
            field_data.insert("slug".to_owned(), json!(item_slug));
            field_data.insert(
                "post-body".to_owned(),
                json!(format!("<p>Body of {item_name}.</p>")),
            );
            let is_blog = c == 0;
            if !(is_blog && i == ITEM_WITHOUT_SEO_DESCRIPTION) {
                field_data.insert(
                    "seo-description".to_owned(),
                    json!(format!("Summary of {item_name}")),
                );
            }
            field_data.insert("featured".to_owned(), json!(i == 0));
            field_data.insert("order".to_owned(), json!(i + 1));
            let stale_draft = is_blog && i == STALE_DRAFT_ITEM;
            let item = Item {
                id: item_id.clone(),
                cms_locale_id: cms_locale_id.clone(),
                last_published: (!stale_draft)
                    .then(|| format!("2025-04-{:02}T12:00:00.000Z", 1 + i)),
                last_updated: if stale_draft {
                    "2019-02-11T09:15:00.000Z".to_owned()
                } else {
                    format!("2025-03-{:02}T12:00:00.000Z", 1 + i)
                },
                created_on: if stale_draft {
                    "2019-02-10T09:15:00.000Z".to_owned()
                } else {
                    format!("2024-01-{:02}T12:00:00.000Z", 1 + i)
                },
                is_archived: false,
                is_draft: stale_draft,
                field_data,
            };
            let localized = SECONDARY_LOCALES
                .iter()
                .enumerate()
                .map(|(n, &(_, tag, _, _))| {
                    let id = derive_id("cms-locale", owner, n + 1);
                    let mut variant = Item {
                        cms_locale_id: id.clone(),
                        ..item.clone()
                    };
                    for field in ["name", "post-body", "seo-description"] {
                        if let Some(Value::String(text)) = variant.field_data.get_mut(field) {
                            *text = localized(text, tag);
                        }
                    }
                    (id, variant)
                })
                .collect();
            data.items.push(ItemRecord {
                owner: owner.to_owned(),
                collection_id: collection_id.clone(),
                item,
                localized,
                live: !stale_draft,
            });
        }
    }
}

/// `page`'s settings in a secondary locale: every text marked with its tag, slug unchanged.
fn localize_page(page: &Page, locale_id: &str, tag: &str) -> Page {
    let mut variant = page.clone();
    variant.locale_id = Some(locale_id.to_owned());
    variant.title = localized(&page.title, tag);
    variant.seo.title = localized(&page.seo.title, tag);
    variant.seo.description = page.seo.description.as_deref().map(|d| localized(d, tag));
    variant.open_graph.title = localized(&page.open_graph.title, tag);
    variant.open_graph.description = page
        .open_graph
        .description
        .as_deref()
        .map(|d| localized(d, tag));
    variant
}

fn collection_fields(owner: &str, collection: usize) -> Vec<Field> {
    const FIELDS: [(&str, &str, &str, bool, &str); 6] = [
        ("name", "PlainText", "Name", true, "The item's title."),
        (
            "slug",
            "PlainText",
            "Slug",
            true,
            "URL path segment of the item.",
        ),
        (
            "post-body",
            "RichText",
            "Post Body",
            false,
            "The main content.",
        ),
        (
            "seo-description",
            "PlainText",
            "SEO Description",
            false,
            "Shown in search results.",
        ),
        (
            "featured",
            "Switch",
            "Featured",
            false,
            "Show on the home page.",
        ),
        ("order", "Number", "Order", false, "Sort position."),
    ];
    FIELDS
        .iter()
        .enumerate()
        .map(|(f, (slug, kind, display, required, help))| Field {
            id: derive_id(&format!("field:{collection}"), owner, f),
            is_editable: true,
            is_required: *required,
            kind: (*kind).to_owned(),
            slug: (*slug).to_owned(),
            display_name: (*display).to_owned(),
            help_text: (*help).to_owned(),
            validations: (*kind == "Number")
                .then(|| json!({"format": "integer", "allowNegative": false, "allowZero": true})),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors, in Webflow's body shape: {code, message, externalReference, details}

#[derive(Debug)]
pub(crate) struct WebflowError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Value>,
    /// Sent as `Retry-After`.
    retry_after_secs: Option<u64>,
}

impl WebflowError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> WebflowError {
        WebflowError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// Missing or unknown token: the spec's 401 example.
    fn not_authorized() -> WebflowError {
        WebflowError::new(
            StatusCode::UNAUTHORIZED,
            "not_authorized",
            "Request not authorized",
        )
    }

    /// An id this token cannot reach. The spec documents only `404 resource_not_found` for these
    /// operations (its 403 is about missing scopes, not other sites), and answering a foreign
    /// id exactly like a non-existent one keeps the sandbox from being an existence oracle.
    fn not_found(what: &str) -> WebflowError {
        WebflowError::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("Requested resource not found: The {what} cannot be found"),
        )
    }

    /// A rejected parameter, shaped like Webflow's real answers:
    /// `{"message":"Validation Error","code":"validation_error",...,"details":[{"param":…,"description":…}]}`.
    fn validation(details: Vec<(String, String)>) -> WebflowError {
        WebflowError {
            details: details
                .into_iter()
                .map(|(param, description)| json!({"param": param, "description": description}))
                .collect(),
            ..WebflowError::new(
                StatusCode::BAD_REQUEST,
                "validation_error",
                "Validation Error",
            )
        }
    }

    fn invalid(param: &str, description: impl Into<String>) -> WebflowError {
        WebflowError::validation(vec![(param.to_owned(), description.into())])
    }

    fn bad_request() -> WebflowError {
        WebflowError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request: Request is malformed",
        )
    }

    /// The spec's example error for a status, used for injected failures and unknown routes.
    fn for_status(status: StatusCode) -> WebflowError {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "Bad Request: Request is malformed"),
            401 => ("not_authorized", "Request not authorized"),
            403 => ("forbidden", "User is not authorized to perform this action"),
            404 => ("resource_not_found", "Requested resource not found"),
            409 => ("conflict", "Conflict"),
            429 => ("too_many_requests", "Too many requests"),
            503 => ("service_unavailable", "Service Unavailable"),
            s if s >= 500 => ("internal_error", "An Internal Error occurred"),
            _ => ("bad_request", "Bad Request: Request is malformed"),
        };
        WebflowError::new(status, code, message)
    }
}

impl IntoResponse for WebflowError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "externalReference": null,
            "details": self.details,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            response
                .headers_mut()
                .insert("x-ratelimit-limit", HeaderValue::from_static(RATE_LIMIT));
        }
        response
    }
}

/// Webflow's error answer for `status`.
pub(crate) fn error_response(status: StatusCode) -> Response {
    WebflowError::for_status(status).into_response()
}

type Answer<T> = Result<T, WebflowError>;

fn authorize(caller: &Caller) -> Answer<&str> {
    let owner = caller
        .owner
        .as_deref()
        .ok_or_else(WebflowError::not_authorized)?;
    if caller.webflow_app {
        // The App was granted custom code and its user only (what README tells the operator).
        return Err(WebflowError::new(
            StatusCode::FORBIDDEN,
            "missing_scopes",
            "OAuthForbidden: You are missing the scopes this endpoint requires",
        ));
    }
    Ok(owner)
}

/// The custom code endpoints take only a Webflow App's token (an OAuth code grant).
fn authorize_app(caller: &Caller) -> Answer<&str> {
    let owner = caller
        .owner
        .as_deref()
        .ok_or_else(WebflowError::not_authorized)?;
    if !caller.webflow_app {
        return Err(WebflowError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Access to this endpoint requires a bearer token obtained from an OAuth Code Grant Flow",
        ));
    }
    Ok(owner)
}

/// A secondary locale a request names: its id (site or CMS, as asked) and tag.
struct Secondary {
    id: String,
    tag: String,
}

/// The locale `raw` names as `param` (`localeId`, `cmsLocaleId`) for a record of `site_id`:
/// `None` for the primary (empty, or the primary's own id). A locale the site does not have
/// (another site's included) is Webflow's 400 `validation_error` naming the parameter.
fn locale_named(data: &Data, site_id: &str, param: &str, raw: &str) -> Answer<Option<Secondary>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let cms = param == "cmsLocaleId";
    let id_of = |l: &Locale| {
        if cms {
            l.cms_locale_id.clone()
        } else {
            l.id.clone()
        }
    };
    let locales = data
        .sites
        .iter()
        .find(|r| r.site.id == site_id)
        .map(|r| &r.site.locales);
    if let Some(locales) = locales {
        if id_of(&locales.primary) == raw {
            return Ok(None);
        }
        if let Some(l) = locales.secondary.iter().find(|l| id_of(l) == raw) {
            return Ok(Some(Secondary {
                id: raw.to_owned(),
                tag: l.tag.clone(),
            }));
        }
    }
    Err(WebflowError::invalid(
        param,
        format!("Locale not found for this site: {raw}"),
    ))
}

/// The locale the query's `param` names, as [`locale_named`].
fn locale_param(
    data: &Data,
    site_id: &str,
    params: &HashMap<String, String>,
    param: &str,
) -> Answer<Option<Secondary>> {
    match params.get(param) {
        None => Ok(None),
        Some(raw) => locale_named(data, site_id, param, raw),
    }
}

impl PageRecord {
    /// The page's settings in `locale` (the primary's when `None`).
    fn variant(&self, locale: Option<&Secondary>) -> Page {
        match locale {
            None => self.page.clone(),
            Some(l) => self
                .localized
                .get(&l.id)
                .cloned()
                .unwrap_or_else(|| localize_page(&self.page, &l.id, &l.tag)),
        }
    }
}

impl ItemRecord {
    /// The item in `locale` (the primary's when `None`).
    fn variant(&self, locale: Option<&Secondary>) -> Item {
        match locale {
            None => self.item.clone(),
            Some(l) => self.localized.get(&l.id).cloned().unwrap_or_else(|| Item {
                cms_locale_id: l.id.clone(),
                ..self.item.clone()
            }),
        }
    }
}

/// Query parameters as a map, or Webflow's malformed-request answer.
fn params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<HashMap<String, String>> {
    query
        .map(|Query(params)| params)
        .map_err(|_| WebflowError::bad_request())
}

/// `offset`/`limit` as Webflow reads them: empty means default (the spec allows empty values),
/// anything else must be an integer in range or the request is a validation error.
#[derive(Debug, Clone, Copy)]
struct Paging {
    offset: usize,
    limit: usize,
}

impl Paging {
    fn parse(query: Result<Query<HashMap<String, String>>, QueryRejection>) -> Answer<Paging> {
        let Query(query) = query.map_err(|_| WebflowError::bad_request())?;
        let value = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut problems = Vec::new();
        let offset = match value("offset") {
            None => 0,
            Some(raw) => raw.parse::<usize>().unwrap_or_else(|_| {
                problems.push((
                    "offset".to_owned(),
                    "Must be an integer greater than or equal to 0".to_owned(),
                ));
                0
            }),
        };
        let limit = match value("limit") {
            None => MAX_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
                _ => {
                    problems.push((
                        "limit".to_owned(),
                        format!("Must be an integer between 1 and {MAX_LIMIT}"),
                    ));
                    MAX_LIMIT
                }
            },
        };
        if problems.is_empty() {
            Ok(Paging { offset, limit })
        } else {
            Err(WebflowError::validation(problems))
        }
    }

    /// This page of `records`, and the pagination object describing it.
    fn apply<T: Clone>(self, records: &[T]) -> (Vec<T>, Pagination) {
        let page = records
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect();
        let pagination = Pagination {
            limit: self.limit,
            offset: self.offset,
            total: records.len(),
        };
        (page, pagination)
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Scopes a full site token carries (custom code is for Data Client apps only); a scope
/// withheld from an owner is left out.
const SITE_TOKEN_SCOPES: [&str; 12] = [
    "assets:read",
    "assets:write",
    "cms:read",
    "cms:write",
    "comments:read",
    "comments:write",
    "forms:read",
    "forms:write",
    "pages:read",
    "pages:write",
    "sites:read",
    "sites:write",
];

/// `introspect`: the token's authorization, its scopes comma-separated and the one site it
/// reaches. Needs no scope.
async fn introspect(State(state): State<Arc<WebflowState>>, caller: Caller) -> Answer<Json<Value>> {
    let owner = authorize(&caller)?.to_owned();
    if lock(&state.introspection_refused).contains(&owner) {
        return Err(WebflowError::not_authorized());
    }
    let withheld = lock(&state.withheld)
        .get(&owner)
        .cloned()
        .unwrap_or_default();
    let scope: Vec<&str> = SITE_TOKEN_SCOPES
        .into_iter()
        .filter(|s| !withheld.contains(s))
        .collect();
    let data = lock(&state.data);
    let sites: Vec<&str> = data
        .sites
        .iter()
        .filter(|r| r.owner == owner)
        .map(|r| r.site.id.as_str())
        .collect();
    Ok(Json(json!({
        "authorization": {
            "id": derive_id("authorization", &owner, 0),
            "createdOn": "2021-03-15T09:45:00.000Z",
            "lastUsed": now_rfc3339(),
            "grantType": "site_token",
            "rateLimit": 60,
            "scope": scope.join(","),
            "authorizedTo": {"siteIds": sites, "workspaceIds": [], "userIds": []},
        },
        "application": null,
    })))
}

async fn list_sites(State(state): State<Arc<WebflowState>>, caller: Caller) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, SITES_READ)?;
    let owner = owner.as_str();
    let data = lock(&state.data);
    let sites: Vec<&Site> = data
        .sites
        .iter()
        .filter(|r| r.owner == owner)
        .map(|r| &r.site)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

async fn get_site(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Answer<Json<Site>> {
    let owner = state.authorize(&caller, SITES_READ)?;
    let owner = owner.as_str();
    let data = lock(&state.data);
    data.sites
        .iter()
        .find(|r| r.owner == owner && r.site.id == site_id)
        .map(|r| Json(r.site.clone()))
        .ok_or_else(|| WebflowError::not_found("site"))
}

fn own_site(data: &Data, owner: &str, site_id: &str) -> Answer<()> {
    data.sites
        .iter()
        .any(|r| r.owner == owner && r.site.id == site_id)
        .then_some(())
        .ok_or_else(|| WebflowError::not_found("site"))
}

async fn list_pages(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, PAGES_READ)?;
    let params = params(query)?;
    let paging = Paging::parse(Ok(Query(params.clone())))?;
    let data = lock(&state.data);
    own_site(&data, &owner, &site_id)?;
    let locale = locale_param(&data, &site_id, &params, "localeId")?;
    let pages: Vec<Page> = data
        .pages
        .iter()
        .filter(|r| r.owner == owner && r.page.site_id == site_id)
        .map(|r| r.variant(locale.as_ref()))
        .collect();
    let (pages, pagination) = paging.apply(&pages);
    Ok(Json(json!({ "pages": pages, "pagination": pagination })))
}

async fn get_page(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(page_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Page>> {
    let owner = state.authorize(&caller, PAGES_READ)?;
    let params = params(query)?;
    let data = lock(&state.data);
    let record = data
        .pages
        .iter()
        .find(|r| r.owner == owner && r.page.id == page_id)
        .ok_or_else(|| WebflowError::not_found("page"))?;
    let locale = locale_param(&data, &record.page.site_id, &params, "localeId")?;
    Ok(Json(record.variant(locale.as_ref())))
}

/// A string member of a page update, if present: anything else is a validation error.
fn text_member(body: &Map<String, Value>, name: &str, param: &str) -> Answer<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(WebflowError::invalid(param, "Must be a string")),
    }
}

/// `seo` or `openGraph` of a page update: an object of the documented members only.
fn settings_object<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    members: &[&str],
) -> Answer<Option<&'a Map<String, Value>>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            if let Some(unknown) = map.keys().find(|k| !members.contains(&k.as_str())) {
                return Err(WebflowError::invalid(
                    &format!("{name}.{unknown}"),
                    "Field not described in schema",
                ));
            }
            Ok(Some(map))
        }
        Some(_) => Err(WebflowError::invalid(name, "Must be an object")),
    }
}

/// `update-page-settings`: title, slug, `seo` and `openGraph` of the staged page. As Webflow
/// does, the slug is ignored on the home page and collection template pages, an Open Graph
/// text still copied from the SEO text follows it, and setting one stops the copying.
async fn update_page(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(page_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Page>> {
    let owner = state.authorize(&caller, PAGES_WRITE)?;
    let params = params(query)?;
    let mut data = lock(&state.data);
    let index = data
        .pages
        .iter()
        .position(|r| r.owner == owner && r.page.id == page_id)
        .ok_or_else(|| WebflowError::not_found("page"))?;
    let site_id = data.pages[index].page.site_id.clone();
    // A secondary locale's settings change alone; the primary's stay as they are.
    let locale = locale_param(&data, &site_id, &params, "localeId")?;
    let body = object_body(body)?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["title", "slug", "seo", "openGraph"].contains(&k.as_str()))
    {
        return Err(WebflowError::invalid(
            unknown,
            "Field not described in schema",
        ));
    }
    let title = text_member(&body, "title", "title")?;
    if title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(WebflowError::invalid("title", "Must not be empty"));
    }
    let slug = text_member(&body, "slug", "slug")?;
    if let Some(slug) = &slug
        && (slug.is_empty() || slugify(slug) != *slug)
    {
        return Err(WebflowError::invalid(
            "slug",
            "Must contain only lowercase letters, numbers and dashes",
        ));
    }
    let seo = settings_object(&body, "seo", &["title", "description"])?;
    let seo_title = seo
        .map(|m| text_member(m, "title", "seo.title"))
        .transpose()?
        .flatten();
    let seo_description = seo
        .map(|m| text_member(m, "description", "seo.description"))
        .transpose()?
        .flatten();
    let og = settings_object(
        &body,
        "openGraph",
        &["title", "titleCopied", "description", "descriptionCopied"],
    )?;
    let og_title = og
        .map(|m| text_member(m, "title", "openGraph.title"))
        .transpose()?
        .flatten();
    let og_description = og
        .map(|m| text_member(m, "description", "openGraph.description"))
        .transpose()?
        .flatten();
    let title_copied = og.map(|m| flag(m, "titleCopied")).transpose()?.flatten();
    let description_copied = og
        .map(|m| flag(m, "descriptionCopied"))
        .transpose()?
        .flatten();

    let page = &data.pages[index].page;
    // The home page, template and utility pages keep their slug; the rest of the body applies.
    let slug_fixed = page.published_path == "/" || page.collection_id.is_some();
    let slug = slug.filter(|_| !slug_fixed);
    if let Some(slug) = &slug {
        let taken = data.pages.iter().any(|r| {
            r.page.site_id == page.site_id && r.page.id != page.id && &r.page.slug == slug
        });
        if taken {
            return Err(WebflowError::invalid("slug", "Slug is already in use"));
        }
    }

    let record = &mut data.pages[index];
    let page = match &locale {
        None => &mut record.page,
        Some(l) => {
            let primary = &record.page;
            record
                .localized
                .entry(l.id.clone())
                .or_insert_with(|| localize_page(primary, &l.id, &l.tag))
        }
    };
    if let Some(title) = title {
        page.title = title;
    }
    if let Some(slug) = slug {
        page.published_path = format!("/{slug}");
        page.slug = slug;
    }
    if let Some(copied) = title_copied {
        page.open_graph.title_copied = copied;
    }
    if let Some(copied) = description_copied {
        page.open_graph.description_copied = copied;
    }
    if let Some(t) = seo_title {
        page.seo.title = t;
    }
    if let Some(d) = seo_description {
        page.seo.description = Some(d);
    }
    match og_title {
        Some(t) => {
            page.open_graph.title = t;
            page.open_graph.title_copied = false;
        }
        None if page.open_graph.title_copied => page.open_graph.title = page.seo.title.clone(),
        None => {}
    }
    match og_description {
        Some(d) => {
            page.open_graph.description = Some(d);
            page.open_graph.description_copied = false;
        }
        None if page.open_graph.description_copied => {
            page.open_graph.description = page.seo.description.clone();
        }
        None => {}
    }
    page.last_updated = now_rfc3339();
    Ok(Json(page.clone()))
}

async fn get_page_dom(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(page_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, PAGES_READ)?;
    let params = params(query)?;
    let paging = Paging::parse(Ok(Query(params.clone())))?;
    let data = lock(&state.data);
    let record = data
        .pages
        .iter()
        .find(|r| r.owner == owner && r.page.id == page_id)
        .ok_or_else(|| WebflowError::not_found("page"))?;
    let locale = locale_param(&data, &record.page.site_id, &params, "localeId")?;
    let nodes: Vec<DomNode> = match &locale {
        None => record.nodes.clone(),
        Some(l) => record
            .nodes
            .iter()
            .map(|n| {
                let mut n = n.clone();
                n.text.text = localized(&n.text.text, &l.tag);
                n.text.html = localized(&n.text.html, &l.tag);
                n
            })
            .collect(),
    };
    let (nodes, pagination) = paging.apply(&nodes);
    Ok(Json(json!({
        "pageId": record.page.id,
        "branchId": null,
        "nodes": nodes,
        "pagination": pagination,
        "lastUpdated": record.page.last_updated,
    })))
}

async fn list_collections(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, CMS_READ)?;
    let owner = owner.as_str();
    let data = lock(&state.data);
    own_site(&data, owner, &site_id)?;
    let collections: Vec<CollectionSummary<'_>> = data
        .collections
        .iter()
        .filter(|r| r.owner == owner && r.site_id == site_id)
        .map(|r| {
            let c = &r.collection;
            CollectionSummary {
                id: &c.id,
                display_name: &c.display_name,
                singular_name: &c.singular_name,
                slug: &c.slug,
                created_on: &c.created_on,
                last_updated: &c.last_updated,
            }
        })
        .collect();
    Ok(Json(json!({ "collections": collections })))
}

fn own_collection<'a>(data: &'a Data, owner: &str, collection_id: &str) -> Answer<&'a Collection> {
    data.collections
        .iter()
        .find(|r| r.owner == owner && r.collection.id == collection_id)
        .map(|r| &r.collection)
        .ok_or_else(|| WebflowError::not_found("collection"))
}

async fn get_collection(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
) -> Answer<Json<Collection>> {
    let owner = state.authorize(&caller, CMS_READ)?;
    let owner = owner.as_str();
    let data = lock(&state.data);
    own_collection(&data, owner, &collection_id).map(|c| Json(c.clone()))
}

async fn list_items(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, CMS_READ)?;
    let params = params(query)?;
    let paging = Paging::parse(Ok(Query(params.clone())))?;
    let order = ItemOrder::parse(&params)?;
    let data = lock(&state.data);
    own_collection(&data, &owner, &collection_id)?;
    let site_id = collection_site(&data, &collection_id);
    // Several locales at once are a comma-separated list: each locale's items in turn.
    let locales = match params.get("cmsLocaleId") {
        None => vec![None],
        Some(raw) => raw
            .split(',')
            .map(|one| locale_named(&data, &site_id, "cmsLocaleId", one))
            .collect::<Answer<Vec<_>>>()?,
    };
    let variants: Vec<Item> = locales
        .iter()
        .flat_map(|locale| {
            data.items
                .iter()
                .filter(|r| r.owner == owner && r.collection_id == collection_id)
                .map(|r| r.variant(locale.as_ref()))
        })
        .collect();
    let mut items: Vec<&Item> = variants.iter().filter(|item| order.keeps(item)).collect();
    order.sort(&mut items);
    let (items, pagination) = paging.apply(&items);
    Ok(Json(json!({ "items": items, "pagination": pagination })))
}

/// `list-items`'s filters and order that the fake honours: `lastUpdated[gte]`/`[lte]` and
/// `sortBy`/`sortOrder`, refused as Webflow refuses them (a validation error naming the
/// parameter). Every timestamp here has one shape (`…T…:…:….mmmZ`), so they order as strings.
struct ItemOrder {
    updated_gte: Option<String>,
    updated_lte: Option<String>,
    sort_by: Option<String>,
    descending: bool,
}

impl ItemOrder {
    fn parse(params: &HashMap<String, String>) -> Answer<ItemOrder> {
        let mut problems = Vec::new();
        let mut date = |name: &str| {
            let raw = params.get(name)?.trim().to_owned();
            let shaped =
                raw.len() >= 20 && raw.ends_with('Z') && raw.as_bytes().get(10) == Some(&b'T');
            if !shaped {
                problems.push((name.to_owned(), "Must be a date-time".to_owned()));
            }
            Some(raw)
        };
        let updated_gte = date("lastUpdated[gte]");
        let updated_lte = date("lastUpdated[lte]");
        let sort_by = params.get("sortBy").map(|s| s.trim().to_owned());
        if let Some(by) = &sort_by
            && !["createdOn", "lastPublished", "lastUpdated", "name", "slug"].contains(&by.as_str())
        {
            problems.push(("sortBy".to_owned(), format!("Invalid sort field: {by}")));
        }
        let descending = match params.get("sortOrder").map(|s| s.trim()) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                problems.push((
                    "sortOrder".to_owned(),
                    format!("Must be asc or desc, not {other}"),
                ));
                false
            }
        };
        if !problems.is_empty() {
            return Err(WebflowError::validation(problems));
        }
        Ok(ItemOrder {
            updated_gte,
            updated_lte,
            sort_by,
            descending,
        })
    }

    fn keeps(&self, item: &Item) -> bool {
        self.updated_gte
            .as_deref()
            .is_none_or(|gte| item.last_updated.as_str() >= gte)
            && self
                .updated_lte
                .as_deref()
                .is_none_or(|lte| item.last_updated.as_str() <= lte)
    }

    fn sort(&self, items: &mut [&Item]) {
        let Some(by) = self.sort_by.as_deref() else {
            return;
        };
        let key = |item: &Item| -> String {
            match by {
                "createdOn" => item.created_on.clone(),
                "lastPublished" => item.last_published.clone().unwrap_or_default(),
                "lastUpdated" => item.last_updated.clone(),
                field => item
                    .field_data
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }
        };
        items.sort_by_cached_key(|item| key(item));
        if self.descending {
            items.reverse();
        }
    }
}

async fn get_item(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path((collection_id, item_id)): Path<(String, String)>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Item>> {
    let owner = state.authorize(&caller, CMS_READ)?;
    let params = params(query)?;
    let data = lock(&state.data);
    own_collection(&data, &owner, &collection_id)?;
    let record = data
        .items
        .iter()
        .find(|r| r.owner == owner && r.collection_id == collection_id && r.item.id == item_id)
        .ok_or_else(|| WebflowError::not_found("item"))?;
    let site_id = collection_site(&data, &collection_id);
    let locale = locale_param(&data, &site_id, &params, "cmsLocaleId")?;
    Ok(Json(record.variant(locale.as_ref())))
}

/// The site a collection belongs to.
fn collection_site(data: &Data, collection_id: &str) -> String {
    data.collections
        .iter()
        .find(|r| r.collection.id == collection_id)
        .map(|r| r.site_id.clone())
        .unwrap_or_default()
}

/// `authorized-by`: the Webflow user who granted an App token; a site token lacks the scope.
async fn authorized_by(caller: Caller) -> Answer<Json<Value>> {
    let owner = caller
        .owner
        .as_deref()
        .ok_or_else(WebflowError::not_authorized)?;
    if !caller.webflow_app {
        return Err(WebflowError::new(
            StatusCode::FORBIDDEN,
            "missing_scopes",
            "OAuthForbidden: You are missing the following scopes - authorized_user:read",
        ));
    }
    let short = slugify(owner);
    Ok(Json(json!({
        "id": derive_id("webflow-user", owner, 0),
        "email": format!("developer@{short}.example"),
        "firstName": "Studio",
        "lastName": format!("Developer (owner:{owner})"),
    })))
}

/// The custom code as stored for a site or page (none applied: an empty list).
fn custom_code_of(data: &Data, id: &str) -> Value {
    data.custom_code
        .get(id)
        .cloned()
        .unwrap_or_else(|| json!({"scripts": [], "lastUpdated": null, "createdOn": null}))
}

/// `get-scripts`: the scripts registered on the caller's site.
async fn registered_scripts(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Answer<Json<Value>> {
    let owner = authorize_app(&caller)?;
    let data = lock(&state.data);
    own_site(&data, owner, &site_id)?;
    let scripts = data
        .registered_scripts
        .get(&site_id)
        .cloned()
        .unwrap_or_default();
    let total = scripts.len();
    Ok(Json(json!({
        "registeredScripts": scripts,
        "pagination": {"limit": MAX_LIMIT, "offset": 0, "total": total},
    })))
}

/// The site a page belongs to, if it is the caller's page.
fn own_page_site(data: &Data, owner: &str, page_id: &str) -> Answer<String> {
    data.pages
        .iter()
        .find(|r| r.owner == owner && r.page.id == page_id)
        .map(|r| r.page.site_id.clone())
        .ok_or_else(|| WebflowError::not_found("page"))
}

async fn site_custom_code(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Answer<Json<Value>> {
    let owner = authorize_app(&caller)?;
    let data = lock(&state.data);
    own_site(&data, owner, &site_id)?;
    Ok(Json(custom_code_of(&data, &site_id)))
}

async fn page_custom_code(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(page_id): Path<String>,
) -> Answer<Json<Value>> {
    let owner = authorize_app(&caller)?;
    let data = lock(&state.data);
    own_page_site(&data, owner, &page_id)?;
    Ok(Json(custom_code_of(&data, &page_id)))
}

async fn set_site_custom_code(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Value>> {
    let owner = authorize_app(&caller)?;
    let mut data = lock(&state.data);
    own_site(&data, owner, &site_id)?;
    apply_custom_code(&mut data, &site_id, &site_id, body)
}

async fn set_page_custom_code(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(page_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Value>> {
    let owner = authorize_app(&caller)?;
    let mut data = lock(&state.data);
    let site_id = own_page_site(&data, owner, &page_id)?;
    apply_custom_code(&mut data, &site_id, &page_id, body)
}

/// `add-custom-code-tosite` / `-to-page`: replaces the applied scripts with `scripts`, each a
/// registered script of the site (id and version) in the header or footer; `200` with what is
/// applied now.
fn apply_custom_code(
    data: &mut Data,
    site_id: &str,
    target: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Value>> {
    let body = object_body(body)?;
    let scripts = match body.get("scripts") {
        Some(Value::Array(scripts)) => scripts.clone(),
        _ => return Err(WebflowError::invalid("scripts", "Must be an array")),
    };
    let registered = data.registered_scripts.get(site_id);
    let mut problems = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        let text = |name: &str| script.get(name).and_then(Value::as_str);
        let (Some(id), Some(version)) = (text("id"), text("version")) else {
            problems.push((
                format!("scripts[{i}]"),
                "id and version are required".to_owned(),
            ));
            continue;
        };
        if !matches!(text("location"), Some("header" | "footer")) {
            problems.push((
                format!("scripts[{i}].location"),
                "Must be header or footer".to_owned(),
            ));
        }
        if script
            .get("attributes")
            .is_some_and(|a| !a.is_object() && !a.is_null())
        {
            problems.push((
                format!("scripts[{i}].attributes"),
                "Must be an object".to_owned(),
            ));
        }
        let known = registered.is_some_and(|r| {
            r.iter()
                .any(|s| s["id"].as_str() == Some(id) && s["version"].as_str() == Some(version))
        });
        if !known {
            problems.push((
                format!("scripts[{i}]"),
                format!("Script {id} version {version} is not registered to this site"),
            ));
        }
        if seen.contains(&id) {
            problems.push((format!("scripts[{i}].id"), format!("Duplicate script {id}")));
        }
        seen.push(id);
    }
    if !problems.is_empty() {
        return Err(WebflowError::validation(problems));
    }
    let now = now_rfc3339();
    let created = data
        .custom_code
        .get(target)
        .and_then(|c| c["createdOn"].as_str().map(str::to_owned))
        .unwrap_or_else(|| now.clone());
    let stored = json!({"scripts": scripts, "lastUpdated": now, "createdOn": created});
    data.custom_code.insert(target.to_owned(), stored.clone());
    Ok(Json(stored))
}

/// `list-items-live`: the collection's items on the live site, paged.
async fn list_live_items(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = authorize(&caller)?;
    let paging = Paging::parse(query)?;
    let data = lock(&state.data);
    own_collection(&data, owner, &collection_id)?;
    let items: Vec<&Item> = data
        .items
        .iter()
        .filter(|r| r.owner == owner && r.collection_id == collection_id && r.live)
        .map(|r| &r.item)
        .collect();
    let (items, pagination) = paging.apply(&items);
    Ok(Json(json!({ "items": items, "pagination": pagination })))
}

/// The ids of a bulk item request's `items: [{id}]` (1 to 100, each once), or Webflow's
/// validation error.
fn bulk_item_ids(body: &Map<String, Value>) -> Answer<Vec<String>> {
    let invalid = || {
        WebflowError::invalid(
            "items",
            format!("Must be an array of 1 to {MAX_LIMIT} objects with an id"),
        )
    };
    let items = match body.get("items") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_LIMIT => items,
        _ => return Err(invalid()),
    };
    let ids: Vec<Value> = items
        .iter()
        .map(|i| i.get("id").cloned().unwrap_or(Value::Null))
        .collect();
    id_list(&Value::Array(ids), "items")
}

/// `delete-items`: deletes the listed items of the collection, all or none: an id that is not
/// one of its items (whoever's it is) answers `404` and nothing is deleted. `204` otherwise.
async fn delete_items(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<StatusCode> {
    let owner = state.authorize(&caller, CMS_WRITE)?;
    let mut data = lock(&state.data);
    own_collection(&data, &owner, &collection_id)?;
    let ids = bulk_item_ids(&object_body(body)?)?;
    let mine = |r: &ItemRecord, id: &str| {
        r.owner == owner && r.collection_id == collection_id && r.item.id == id
    };
    if !ids.iter().all(|id| data.items.iter().any(|r| mine(r, id))) {
        return Err(WebflowError::not_found("item"));
    }
    data.items.retain(|r| !ids.iter().any(|id| mine(r, id)));
    Ok(StatusCode::NO_CONTENT)
}

/// `delete-items-live`: takes the listed items off the live site and makes them drafts, all or
/// none: an id that is not live in the collection answers `404`. `204` otherwise.
async fn unpublish_items(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<StatusCode> {
    let owner = state.authorize(&caller, CMS_WRITE)?;
    let mut data = lock(&state.data);
    own_collection(&data, &owner, &collection_id)?;
    let ids = bulk_item_ids(&object_body(body)?)?;
    let live = |r: &ItemRecord, id: &str| {
        r.owner == owner && r.collection_id == collection_id && r.item.id == id && r.live
    };
    if !ids.iter().all(|id| data.items.iter().any(|r| live(r, id))) {
        return Err(WebflowError::not_found("live item"));
    }
    let now = now_rfc3339();
    for record in data.items.iter_mut() {
        if ids.iter().any(|id| live(record, id)) {
            record.live = false;
            record.item.is_draft = true;
            record.item.last_updated = now.clone();
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The JSON object body of a write, or Webflow's malformed-request answer.
fn object_body(body: Result<Json<Value>, JsonRejection>) -> Answer<Map<String, Value>> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        _ => Err(WebflowError::bad_request()),
    }
}

fn flag(body: &Map<String, Value>, name: &str) -> Answer<Option<bool>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(WebflowError::invalid(name, "Must be a boolean")),
    }
}

/// Checks `fieldData` against the collection's schema the way Webflow reports problems: unknown
/// slugs, and `name`/`slug` present as non-empty strings, and `slug` unique in the collection.
fn check_field_data(
    data: &Data,
    collection: &Collection,
    field_data: &Map<String, Value>,
    item_id: Option<&str>,
) -> Answer<()> {
    let mut problems = Vec::new();
    for key in field_data.keys() {
        if !collection.fields.iter().any(|f| &f.slug == key) {
            problems.push((key.clone(), "Field not described in schema".to_owned()));
        }
    }
    for required in ["name", "slug"] {
        let ok = matches!(field_data.get(required), Some(Value::String(s)) if !s.trim().is_empty());
        if !ok {
            problems.push((
                "fieldData".to_owned(),
                format!("Field '{required}': Field is required"),
            ));
        }
    }
    if let Some(Value::String(slug)) = field_data.get("slug") {
        let taken = data.items.iter().any(|r| {
            r.collection_id == collection.id
                && Some(r.item.id.as_str()) != item_id
                && r.item.field_data.get("slug") == Some(&Value::String(slug.clone()))
        });
        if taken {
            problems.push((
                "fieldData".to_owned(),
                format!("Field 'slug': Unique value is already in database: '{slug}'"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WebflowError::validation(problems))
    }
}

/// `create-item`: one item (`fieldData`), or up to 100 (`items`, each with `fieldData`), all or
/// nothing: any item Webflow would refuse refuses the request, with a detail per problem whose
/// `param` names the item (`items[2].fieldData`). Webflow answers `202` with the item as
/// stored, or `{items}`.
async fn create_item(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<(StatusCode, Json<Value>)> {
    let owner = state.authorize(&caller, CMS_WRITE)?;
    let Query(query) = query.map_err(|_| WebflowError::bad_request())?;
    if let Some(skip) = query.get("skipInvalidFiles")
        && !["", "true", "false"].contains(&skip.as_str())
    {
        return Err(WebflowError::invalid(
            "skipInvalidFiles",
            "Must be a boolean",
        ));
    }
    let mut data = lock(&state.data);
    let collection = own_collection(&data, &owner, &collection_id)?;
    let body = object_body(body)?;
    let is_draft = flag(&body, "isDraft")?.unwrap_or(false);
    let is_archived = flag(&body, "isArchived")?.unwrap_or(false);
    let Some(items) = body.get("items") else {
        let field_data = match body.get("fieldData") {
            Some(Value::Object(map)) => map.clone(),
            _ => return Err(WebflowError::invalid("fieldData", "Field is required")),
        };
        check_field_data(&data, collection, &field_data, None)?;
        let item = data.create(&owner, &collection_id, field_data, is_draft, is_archived);
        return Ok((StatusCode::ACCEPTED, Json(json!(item))));
    };
    let items = match items {
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_LIMIT => items,
        _ => {
            return Err(WebflowError::invalid(
                "items",
                format!("Must be an array of 1 to {MAX_LIMIT} items"),
            ));
        }
    };
    let mut problems = Vec::new();
    let mut drafts: Vec<(Map<String, Value>, bool, bool)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(Value::Object(field_data)) = item.get("fieldData") else {
            problems.push((
                format!("items[{i}].fieldData"),
                "Field is required".to_owned(),
            ));
            continue;
        };
        if let Err(refused) = check_field_data(&data, collection, field_data, None) {
            problems.extend(refused.details.iter().map(|d| {
                let param = d["param"].as_str().unwrap_or("fieldData");
                let why = d["description"].as_str().unwrap_or_default();
                (format!("items[{i}].{param}"), why.to_owned())
            }));
        }
        // Two items of one request may not share a slug either.
        let slug = field_data.get("slug");
        if slug.is_some() && drafts.iter().any(|(d, ..)| d.get("slug") == slug) {
            problems.push((
                format!("items[{i}].fieldData"),
                format!(
                    "Field 'slug': Unique value is already in database: {}",
                    slug.map(Value::to_string).unwrap_or_default()
                ),
            ));
        }
        let member = |name: &str| match item.as_object() {
            Some(m) => flag(m, name),
            None => Ok(None),
        };
        let draft = member("isDraft")?.unwrap_or(is_draft);
        let archived = member("isArchived")?.unwrap_or(is_archived);
        drafts.push((field_data.clone(), draft, archived));
    }
    if !problems.is_empty() {
        return Err(WebflowError::validation(problems));
    }
    let created: Vec<Item> = drafts
        .into_iter()
        .map(|(field_data, draft, archived)| {
            data.create(&owner, &collection_id, field_data, draft, archived)
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "items": created }))))
}

impl Data {
    /// Stores a new item of `owner` in `collection_id`, with a fresh deterministic id.
    fn create(
        &mut self,
        owner: &str,
        collection_id: &str,
        field_data: Map<String, Value>,
        is_draft: bool,
        is_archived: bool,
    ) -> Item {
        let id = derive_id("created-item", owner, self.created_items);
        self.created_items += 1;
        let now = now_rfc3339();
        let item = Item {
            id,
            cms_locale_id: derive_id("cms-locale", owner, 0),
            last_published: None,
            last_updated: now.clone(),
            created_on: now,
            is_archived,
            is_draft,
            field_data,
        };
        self.items.push(ItemRecord {
            owner: owner.to_owned(),
            collection_id: collection_id.to_owned(),
            item: item.clone(),
            localized: HashMap::new(),
            live: false,
        });
        item
    }
}

/// `update-item`: merges the given `fieldData` (a `null` value clears a field) and flags.
async fn update_item(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path((collection_id, item_id)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Item>> {
    let owner = authorize(&caller)?;
    let mut data = lock(&state.data);
    let collection = own_collection(&data, owner, &collection_id)?;
    let index = data
        .items
        .iter()
        .position(|r| r.owner == owner && r.collection_id == collection_id && r.item.id == item_id)
        .ok_or_else(|| WebflowError::not_found("item"))?;
    let body = object_body(body)?;
    let is_draft = flag(&body, "isDraft")?;
    let is_archived = flag(&body, "isArchived")?;

    let mut field_data = data.items[index].item.field_data.clone();
    match body.get("fieldData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(changes)) => {
            for (key, value) in changes {
                if value.is_null() {
                    field_data.remove(key);
                } else {
                    field_data.insert(key.clone(), value.clone());
                }
            }
        }
        Some(_) => return Err(WebflowError::invalid("fieldData", "Must be an object")),
    }
    check_field_data(&data, collection, &field_data, Some(&item_id))?;

    let item = &mut data.items[index].item;
    item.field_data = field_data;
    if let Some(is_draft) = is_draft {
        item.is_draft = is_draft;
    }
    if let Some(is_archived) = is_archived {
        item.is_archived = is_archived;
    }
    item.last_updated = now_rfc3339();
    Ok(Json(item.clone()))
}

/// `list-assets`: the site's assets, paged.
async fn list_assets(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, ASSETS_READ)?;
    let paging = Paging::parse(query)?;
    let data = lock(&state.data);
    own_site(&data, &owner, &site_id)?;
    let assets: Vec<&Asset> = data
        .assets
        .iter()
        .filter(|r| r.owner == owner && r.asset.site_id == site_id)
        .map(|r| &r.asset)
        .collect();
    let (assets, pagination) = paging.apply(&assets);
    Ok(Json(json!({ "assets": assets, "pagination": pagination })))
}

async fn get_asset(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(asset_id): Path<String>,
) -> Answer<Json<Asset>> {
    let owner = state.authorize(&caller, ASSETS_READ)?;
    let data = lock(&state.data);
    data.assets
        .iter()
        .find(|r| r.owner == owner && r.asset.id == asset_id)
        .map(|r| Json(r.asset.clone()))
        .ok_or_else(|| WebflowError::not_found("asset"))
}

/// `patch-asset`: `displayName` and `altText`, each a string; anything else is refused.
async fn update_asset(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(asset_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<Json<Asset>> {
    let owner = state.authorize(&caller, ASSETS_WRITE)?;
    let mut data = lock(&state.data);
    let index = data
        .assets
        .iter()
        .position(|r| r.owner == owner && r.asset.id == asset_id)
        .ok_or_else(|| WebflowError::not_found("asset"))?;
    let body = object_body(body)?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["displayName", "altText"].contains(&k.as_str()))
    {
        return Err(WebflowError::invalid(
            unknown,
            "Field not described in schema",
        ));
    }
    let display_name = text_member(&body, "displayName", "displayName")?;
    if display_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(WebflowError::invalid("displayName", "Must not be empty"));
    }
    let alt_text = text_member(&body, "altText", "altText")?;
    let asset = &mut data.assets[index].asset;
    if let Some(name) = display_name {
        asset.display_name = name;
    }
    if let Some(alt) = alt_text {
        asset.alt_text = Some(alt);
    }
    asset.last_updated = now_rfc3339();
    Ok(Json(asset.clone()))
}

/// `list-forms`: the site's forms, paged.
async fn list_forms(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, FORMS_READ)?;
    let paging = Paging::parse(query)?;
    let data = lock(&state.data);
    own_site(&data, &owner, &site_id)?;
    let forms: Vec<&Value> = data
        .forms
        .iter()
        .filter(|r| r.owner == owner && r.form["siteId"] == site_id.as_str())
        .map(|r| &r.form)
        .collect();
    let (forms, pagination) = paging.apply(&forms);
    Ok(Json(json!({ "forms": forms, "pagination": pagination })))
}

/// `list-submissions`: what visitors sent through a form, paged.
async fn list_submissions(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(form_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, FORMS_READ)?;
    let paging = Paging::parse(query)?;
    let data = lock(&state.data);
    let record = data
        .forms
        .iter()
        .find(|r| r.owner == owner && r.form["id"] == form_id.as_str())
        .ok_or_else(|| WebflowError::not_found("form"))?;
    let (submissions, pagination) = paging.apply(&record.submissions);
    Ok(Json(
        json!({ "formSubmissions": submissions, "pagination": pagination }),
    ))
}

/// `sortBy` (`createdOn`, `lastUpdated`) and `sortOrder` (`asc`, `desc`) of the comment
/// listings, applied to `comments`; anything else is a validation error.
fn sort_comments(query: &HashMap<String, String>, comments: &mut [&Value]) -> Answer<()> {
    let value = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let by = match value("sortBy") {
        None => return Ok(()),
        Some(by @ ("createdOn" | "lastUpdated")) => by.to_owned(),
        Some(_) => {
            return Err(WebflowError::invalid(
                "sortBy",
                "Must be one of createdOn, lastUpdated",
            ));
        }
    };
    let descending = match value("sortOrder") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(WebflowError::invalid(
                "sortOrder",
                "Must be one of asc, desc",
            ));
        }
    };
    // RFC 3339 in UTC: the text sorts as the time does.
    comments.sort_by(|a, b| a[&by].as_str().cmp(&b[&by].as_str()));
    if descending {
        comments.reverse();
    }
    Ok(())
}

/// `list-comment-threads`: the site's threads, paged.
async fn list_comment_threads(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, COMMENTS_READ)?;
    let Query(query) = query.map_err(|_| WebflowError::bad_request())?;
    let paging = Paging::parse(Ok(Query(query.clone())))?;
    let data = lock(&state.data);
    own_site(&data, &owner, &site_id)?;
    let mut threads: Vec<&Value> = data
        .threads
        .iter()
        .filter(|r| r.owner == owner && r.site_id == site_id)
        .map(|r| &r.thread)
        .collect();
    sort_comments(&query, &mut threads)?;
    let (comments, pagination) = paging.apply(&threads);
    Ok(Json(
        json!({ "comments": comments, "pagination": pagination }),
    ))
}

/// `list-comment-replies`: one thread's replies, paged; a thread not of this site (or of
/// another owner) answers like a missing one.
async fn list_comment_replies(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path((site_id, thread_id)): Path<(String, String)>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer<Json<Value>> {
    let owner = state.authorize(&caller, COMMENTS_READ)?;
    let Query(query) = query.map_err(|_| WebflowError::bad_request())?;
    let paging = Paging::parse(Ok(Query(query.clone())))?;
    let data = lock(&state.data);
    own_site(&data, &owner, &site_id)?;
    let record = data
        .threads
        .iter()
        .find(|r| r.owner == owner && r.site_id == site_id && r.thread["id"] == thread_id.as_str())
        .ok_or_else(|| WebflowError::not_found("comment thread"))?;
    let mut replies: Vec<&Value> = record.replies.iter().collect();
    sort_comments(&query, &mut replies)?;
    let (comments, pagination) = paging.apply(&replies);
    Ok(Json(
        json!({ "comments": comments, "pagination": pagination }),
    ))
}

/// The string ids of a JSON array, or a validation error naming `param`.
fn id_list(value: &Value, param: &str) -> Answer<Vec<String>> {
    let invalid = || WebflowError::invalid(param, "Must be an array of ids");
    let mut ids: Vec<String> = Vec::new();
    for id in value.as_array().ok_or_else(invalid)? {
        let id = id.as_str().ok_or_else(invalid)?;
        if !ids.iter().any(|seen| seen == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// `site-publish`: publishes the whole site to the given custom domains of this site and/or
/// its webflow.io subdomain, at most once a minute; answers `202` with the domains published.
async fn publish_site(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(site_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<(StatusCode, Json<Value>)> {
    let owner = authorize(&caller)?;
    let mut data = lock(&state.data);
    let index = data
        .sites
        .iter()
        .position(|r| r.owner == owner && r.site.id == site_id)
        .ok_or_else(|| WebflowError::not_found("site"))?;
    let body = object_body(body)?;
    if body.get("pageId").is_some_and(|p| !p.is_null()) {
        return Err(WebflowError::invalid(
            "pageId",
            "The sandbox publishes whole sites only",
        ));
    }
    let domains = match body.get("customDomains") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => id_list(value, "customDomains")?,
    };
    let subdomain = flag(&body, "publishToWebflowSubdomain")?.unwrap_or(false);
    if domains.is_empty() && !subdomain {
        // The spec's answer when neither target is given.
        return Err(WebflowError::new(
            StatusCode::BAD_REQUEST,
            "no_domains",
            "No domain IDs provided",
        ));
    }
    let site = &data.sites[index].site;
    if domains
        .iter()
        .any(|d| !site.custom_domains.iter().any(|c| &c.id == d))
    {
        // A domain of another site (or none at all): the spec's "invalid Domain" answer.
        return Err(WebflowError::new(
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            "Please send a valid custom domain ID",
        ));
    }
    if let Some(previous) = data.publishes.get(&site_id) {
        let waited = previous.last.elapsed();
        if waited < PUBLISH_INTERVAL {
            let wait = (PUBLISH_INTERVAL - waited).as_secs_f64().ceil().max(1.0) as u64;
            return Err(WebflowError {
                retry_after_secs: Some(wait),
                ..WebflowError::for_status(StatusCode::TOO_MANY_REQUESTS)
            });
        }
    }

    let now = now_rfc3339();
    let site = &mut data.sites[index].site;
    site.last_published = now.clone();
    let mut published = Vec::new();
    for domain in site
        .custom_domains
        .iter_mut()
        .filter(|c| domains.contains(&c.id))
    {
        domain.last_published = Some(now.clone());
        published.push(domain.clone());
    }
    let entry = data.publishes.entry(site_id).or_insert(Publishes {
        count: 0,
        last: Instant::now(),
    });
    entry.count += 1;
    entry.last = Instant::now();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "customDomains": published,
            "publishToWebflowSubdomain": subdomain,
            "publishScope": "site",
        })),
    ))
}

/// `publish-item`: publishes the listed items of the collection (`itemIds`, or `items` with
/// `id`s, whose locales the sandbox ignores). An id not in the collection is reported in
/// `errors` the way the spec's example does, whoever's it is.
async fn publish_items(
    State(state): State<Arc<WebflowState>>,
    caller: Caller,
    Path(collection_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer<(StatusCode, Json<Value>)> {
    let owner = authorize(&caller)?;
    let mut data = lock(&state.data);
    own_collection(&data, owner, &collection_id)?;
    let body = object_body(body)?;
    let ids = match (body.get("itemIds"), body.get("items")) {
        (Some(ids), _) if !ids.is_null() => id_list(ids, "itemIds")?,
        (_, Some(Value::Array(items))) => {
            let ids: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
            id_list(&Value::Array(ids), "items")?
        }
        _ => return Err(WebflowError::invalid("itemIds", "Field is required")),
    };
    if ids.is_empty() {
        return Err(WebflowError::invalid(
            "itemIds",
            "Must contain at least one item id",
        ));
    }
    let now = now_rfc3339();
    let mut published = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        let record = data
            .items
            .iter_mut()
            .find(|r| r.owner == owner && r.collection_id == collection_id && r.item.id == id);
        match record {
            Some(record) => {
                record.item.is_draft = false;
                record.live = true;
                record.item.last_published = Some(now.clone());
                published.push(id);
            }
            None => errors.push(format!("Staging item ID {id} not found.")),
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "publishedItemIds": published, "errors": errors })),
    ))
}

#[cfg(test)]
mod tests {
    //! Publishing; the read and CMS-write endpoints are tested with the shared layer in
    //! `sandbox.rs`.

    use super::*;
    use crate::sandbox::tests::{Reply, get, send, two_owners};
    use crate::sandbox::{OwnerFixture, Sandbox};
    use anyhow::Context as _;

    async fn publish(
        sandbox: &Sandbox,
        owner: &OwnerFixture,
        site_id: &str,
        body: Value,
    ) -> anyhow::Result<Reply> {
        let path = format!("/v2/sites/{site_id}/publish");
        send(sandbox, "POST", &path, Some(&owner.token), Some(body)).await
    }

    fn code(reply: &Reply) -> anyhow::Result<String> {
        Ok(reply.json()?["code"].as_str().context("code")?.to_owned())
    }

    #[tokio::test]
    async fn sites_publish_once_a_minute() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let domain = &acme.custom_domain_ids[1];
        let before = get(
            &sandbox,
            &format!("/v2/sites/{}", acme.site_id),
            Some(&acme.token),
        )
        .await?
        .json()?;
        let published = publish(
            &sandbox,
            &acme,
            &acme.site_id,
            json!({"customDomains": [domain], "publishToWebflowSubdomain": true}),
        )
        .await?;
        assert_eq!(published.status, 202, "{}", published.body);
        let body = published.json()?;
        assert_eq!(body["publishToWebflowSubdomain"], true);
        let domains = body["customDomains"].as_array().context("customDomains")?;
        assert_eq!(domains.len(), 1);
        assert_eq!(domains[0]["id"], domain.as_str());
        assert_eq!(domains[0]["url"], "www.acme.example");
        let stamp = domains[0]["lastPublished"]
            .as_str()
            .context("lastPublished")?;
        assert_eq!(sandbox.webflow_publishes(&acme.site_id), 1);

        let after = get(
            &sandbox,
            &format!("/v2/sites/{}", acme.site_id),
            Some(&acme.token),
        )
        .await?
        .json()?;
        assert_eq!(after["lastPublished"], stamp);
        assert_ne!(after["lastPublished"], before["lastPublished"]);
        assert_eq!(after["customDomains"][1]["lastPublished"], stamp);
        // The domain not published keeps its old date.
        assert_eq!(
            after["customDomains"][0]["lastPublished"],
            before["customDomains"][0]["lastPublished"]
        );

        let again = publish(
            &sandbox,
            &acme,
            &acme.site_id,
            json!({"publishToWebflowSubdomain": true}),
        )
        .await?;
        assert_eq!(again.status, 429);
        assert_eq!(code(&again)?, "too_many_requests");
        let wait: u64 = again
            .header("retry-after")
            .context("retry-after")?
            .parse()?;
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(again.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(sandbox.webflow_publishes(&acme.site_id), 1);
        Ok(())
    }

    #[tokio::test]
    async fn publishing_is_scoped_and_validated() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let foreign_site = publish(
            &sandbox,
            &acme,
            &globex.site_id,
            json!({"publishToWebflowSubdomain": true}),
        )
        .await?;
        assert_eq!(foreign_site.status, 404);
        assert_eq!(code(&foreign_site)?, "resource_not_found");
        assert_eq!(sandbox.webflow_publishes(&globex.site_id), 0);

        for (body, expected) in [
            (
                json!({"customDomains": [globex.custom_domain_ids[0]]}),
                "invalid_domain",
            ),
            (
                json!({"customDomains": ["000000000000000000000000"]}),
                "invalid_domain",
            ),
            (json!({"customDomains": []}), "no_domains"),
            (json!({"publishToWebflowSubdomain": false}), "no_domains"),
            (json!({"customDomains": "all"}), "validation_error"),
            (
                json!({"publishToWebflowSubdomain": "yes"}),
                "validation_error",
            ),
            (json!(["not", "an", "object"]), "bad_request"),
        ] {
            let reply = publish(&sandbox, &acme, &acme.site_id, body.clone()).await?;
            assert_eq!(reply.status, 400, "{body}");
            assert_eq!(code(&reply)?, expected, "{body}");
        }
        // Refused publishes do not count against the minute.
        assert_eq!(sandbox.webflow_publishes(&acme.site_id), 0);
        let ok = publish(
            &sandbox,
            &acme,
            &acme.site_id,
            json!({"customDomains": acme.custom_domain_ids}),
        )
        .await?;
        assert_eq!(ok.status, 202, "{}", ok.body);
        let untouched = get(
            &sandbox,
            &format!("/v2/sites/{}", globex.site_id),
            Some(&globex.token),
        )
        .await?
        .json()?;
        assert_eq!(untouched["lastPublished"], "2025-05-02T14:05:00.000Z");
        Ok(())
    }

    #[tokio::test]
    async fn items_publish_and_report_the_rest() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let blog = &acme.collection_ids[0];
        let draft = &acme.item_ids[STALE_DRAFT_ITEM].1;
        let other = &acme.item_ids[0].1;
        let author = &acme.item_ids[5].1;
        let foreign = &globex.item_ids[0].1;
        let path = format!("/v2/collections/{blog}/items/publish");
        let reply = send(
            &sandbox,
            "POST",
            &path,
            Some(&acme.token),
            Some(json!({"itemIds": [draft, other, author, foreign]})),
        )
        .await?;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(
            reply.json()?,
            json!({
                "publishedItemIds": [draft, other],
                "errors": [
                    format!("Staging item ID {author} not found."),
                    format!("Staging item ID {foreign} not found."),
                ],
            })
        );
        let item = sandbox.webflow_item(blog, draft).context("draft")?;
        assert_eq!(item["isDraft"], false);
        assert!(
            item["lastPublished"]
                .as_str()
                .is_some_and(|d| !d.starts_with("2019"))
        );
        let (g_collection, _) = &globex.item_ids[0];
        let theirs = sandbox
            .webflow_item(g_collection, foreign)
            .context("globex item")?;
        assert_eq!(theirs["lastPublished"], "2025-04-01T12:00:00.000Z");

        let by_items = send(
            &sandbox,
            "POST",
            &path,
            Some(&acme.token),
            Some(json!({"items": [{"id": other, "cmsLocaleIds": []}]})),
        )
        .await?;
        assert_eq!(by_items.json()?["publishedItemIds"], json!([other]));

        let foreign_collection = send(
            &sandbox,
            "POST",
            &format!("/v2/collections/{g_collection}/items/publish"),
            Some(&acme.token),
            Some(json!({"itemIds": [foreign]})),
        )
        .await?;
        assert_eq!(foreign_collection.status, 404);
        for body in [json!({}), json!({"itemIds": []}), json!({"itemIds": [1]})] {
            let reply = send(
                &sandbox,
                "POST",
                &path,
                Some(&acme.token),
                Some(body.clone()),
            )
            .await?;
            assert_eq!(
                (reply.status, code(&reply)?.as_str()),
                (400, "validation_error"),
                "{body}"
            );
        }
        Ok(())
    }
    #[tokio::test]
    async fn items_delete_and_unpublish_all_or_none() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let blog = &acme.collection_ids[0];
        let (first, second, draft) = (
            &acme.item_ids[0].1,
            &acme.item_ids[1].1,
            &acme.item_ids[STALE_DRAFT_ITEM].1,
        );
        let foreign = &globex.item_ids[0].1;
        let live_path = format!("/v2/collections/{blog}/items/live");
        let live = get(&sandbox, &live_path, Some(&acme.token)).await?.json()?;
        let ids: Vec<&str> = live["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert!(ids.contains(&first.as_str()) && !ids.contains(&draft.as_str()));

        // Another owner's item or an item that is not live: 404, and nothing changes.
        let items = |ids: &[&String]| json!({"items": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>()});
        let send_to = |path: String, token: &str, body: Value| {
            let (sandbox, token) = (&sandbox, token.to_owned());
            async move { send(sandbox, "DELETE", &path, Some(&token), Some(body)).await }
        };
        for body in [items(&[first, foreign]), items(&[first, draft])] {
            let reply = send_to(live_path.clone(), &acme.token, body).await?;
            assert_eq!(reply.status, 404, "{}", reply.body);
        }
        assert_eq!(sandbox.webflow_item_live(blog, first), Some(true));
        let theirs = format!("/v2/collections/{}/items/live", globex.collection_ids[0]);
        let reply = send_to(theirs, &acme.token, items(&[foreign])).await?;
        assert_eq!(reply.status, 404);
        for body in [
            json!({}),
            json!({"items": []}),
            json!({"items": [{"name": 1}]}),
        ] {
            let reply = send_to(live_path.clone(), &acme.token, body).await?;
            assert_eq!(reply.status, 400, "{}", reply.body);
        }

        let reply = send_to(live_path.clone(), &acme.token, items(&[first])).await?;
        assert_eq!((reply.status, reply.body.as_str()), (204, ""));
        assert_eq!(sandbox.webflow_item_live(blog, first), Some(false));
        assert_eq!(
            sandbox.webflow_item(blog, first).context("item")?["isDraft"],
            true
        );

        let staged = format!("/v2/collections/{blog}/items");
        let reply = send_to(staged.clone(), &acme.token, items(&[second, foreign])).await?;
        assert_eq!(reply.status, 404);
        assert!(sandbox.webflow_item(blog, second).is_some());
        let reply = send_to(staged.clone(), &acme.token, items(&[second, draft])).await?;
        assert_eq!(reply.status, 204, "{}", reply.body);
        assert!(sandbox.webflow_item(blog, second).is_none());
        assert!(sandbox.webflow_item(blog, draft).is_none());
        assert!(
            sandbox
                .webflow_item(&globex.collection_ids[0], foreign)
                .is_some()
        );
        let reply = send_to(staged, &acme.token, items(&[second])).await?;
        assert_eq!(reply.status, 404);
        Ok(())
    }

    #[tokio::test]
    async fn custom_code_takes_only_an_app_token_and_registered_scripts() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let site = &acme.site_id;
        let path = format!("/v2/sites/{site}/custom_code");
        let app = acme.webflow_app_token.as_str();
        // A site token is refused on custom code; the App token on everything else.
        let reply = get(&sandbox, &path, Some(&acme.token)).await?;
        assert_eq!((reply.status, code(&reply)?.as_str()), (403, "forbidden"));
        let reply = get(&sandbox, "/v2/sites", Some(app)).await?;
        assert_eq!(reply.status, 403);
        let reply = get(&sandbox, "/v2/token/authorized_by", Some(&acme.token)).await?;
        assert_eq!(reply.status, 403);
        let who = get(&sandbox, "/v2/token/authorized_by", Some(app)).await?;
        assert_eq!(who.status, 200, "{}", who.body);
        // Another owner's site or page is not found with this App token.
        let theirs = format!("/v2/sites/{}/registered_scripts", globex.site_id);
        assert_eq!(get(&sandbox, &theirs, Some(app)).await?.status, 404);
        let their_page = format!("/v2/pages/{}/custom_code", globex.page_ids[0]);
        assert_eq!(get(&sandbox, &their_page, Some(app)).await?.status, 404);

        let registered = get(
            &sandbox,
            &format!("/v2/sites/{site}/registered_scripts"),
            Some(app),
        )
        .await?
        .json()?;
        assert_eq!(
            registered["registeredScripts"].as_array().map(Vec::len),
            Some(3)
        );
        let now = get(&sandbox, &path, Some(app)).await?.json()?;
        assert_eq!(now["scripts"][0]["version"], "1.0.0");

        let put = |body: Value| send(&sandbox, "PUT", &path, Some(app), Some(body));
        for body in [
            json!({}),
            json!({"scripts": [{"id": "cms_slider", "version": "9.0.0", "location": "header"}]}),
            json!({"scripts": [{"id": "cms_slider", "version": "1.1.0", "location": "body"}]}),
        ] {
            let reply = put(body.clone()).await?;
            assert_eq!(
                (reply.status, code(&reply)?.as_str()),
                (400, "validation_error"),
                "{body}"
            );
        }
        assert_eq!(
            sandbox.webflow_custom_code(site).context("site")?["scripts"],
            now["scripts"]
        );
        let scripts = json!([{"id": "cookie_banner", "version": "0.2.0", "location": "footer"}]);
        let reply = put(json!({"scripts": scripts})).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            sandbox.webflow_custom_code(site).context("site")?["scripts"],
            scripts
        );
        Ok(())
    }

    #[tokio::test]
    async fn page_settings_update_like_webflow() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        let about = &acme.page_ids[1];
        let put = |page: &str, token: &str, body: Value| {
            let path = format!("/v2/pages/{page}");
            let token = token.to_owned();
            let sandbox = &sandbox;
            async move { send(sandbox, "PUT", &path, Some(&token), Some(body)).await }
        };
        let reply = put(
            about,
            &acme.token,
            json!({"title": "About us", "slug": "about-us", "seo": {"title": "About | Acme"}}),
        )
        .await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.json()?;
        assert_eq!(page["slug"], "about-us");
        assert_eq!(page["publishedPath"], "/about-us");
        // The Open Graph title was copied from the SEO title, so it follows it.
        assert_eq!(page["openGraph"]["title"], "About | Acme");
        let got = get(&sandbox, &format!("/v2/pages/{about}"), Some(&acme.token)).await?;
        assert_eq!(got.json()?, page);

        let og = put(
            about,
            &acme.token,
            json!({"openGraph": {"title": "Meet us"}}),
        )
        .await?;
        assert_eq!(og.json()?["openGraph"]["titleCopied"], false);

        // The home page keeps its slug; the rest applies.
        let home = put(
            &acme.page_ids[0],
            &acme.token,
            json!({"slug": "start", "title": "Start"}),
        )
        .await?
        .json()?;
        assert_eq!(
            (home["slug"].as_str(), home["title"].as_str()),
            (Some("index"), Some("Start"))
        );

        // Another owner's page answers like a missing one, and stays as it was.
        let before = sandbox
            .webflow_page(&globex.page_ids[1])
            .context("globex page")?;
        for (page, token) in [(&globex.page_ids[1], &acme.token), (about, &globex.token)] {
            let reply = put(page, token, json!({"title": "mine"})).await?;
            assert_eq!(
                (reply.status, code(&reply)?.as_str()),
                (404, "resource_not_found")
            );
        }
        assert_eq!(sandbox.webflow_page(&globex.page_ids[1]), Some(before));

        for body in [
            json!({"title": 7}),
            json!({"title": ""}),
            json!({"slug": "Not A Slug"}),
            json!({"slug": "contact-2"}),
            json!({"seo": "x"}),
            json!({"seo": {"keywords": "x"}}),
            json!({"openGraph": {"titleCopied": "no"}}),
            json!({"image": "x.png"}),
        ] {
            let reply = put(about, &acme.token, body.clone()).await?;
            assert_eq!(
                (reply.status, code(&reply)?.as_str()),
                (400, "validation_error"),
                "{body}"
            );
        }
        let reply = put(about, &acme.token, json!(["title"])).await?;
        assert_eq!((reply.status, code(&reply)?.as_str()), (400, "bad_request"));
        Ok(())
    }
}
