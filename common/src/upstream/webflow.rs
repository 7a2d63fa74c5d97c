//! Webflow Data API v2: the read operations the shared catalog uses, with the response shapes of
//! Webflow's OpenAPI description (`shared/specs/webflow-v2.yml`). Fields we do not model are
//! dropped, so a tool result is exactly what these types say.

use crate::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::cache::Freshness;
use super::{Call, Reads, Upstream, UpstreamError};
use crate::domain::WebflowId;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub id: String,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_published: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub custom_domains: Vec<CustomDomain>,
    /// The site's languages (`null` when it has no localization set up): page reads take a
    /// locale's `id` as `localeId`, item reads its `cmsLocaleId`.
    #[serde(default)]
    pub locales: Option<Locales>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Locales {
    #[serde(default)]
    pub primary: Option<Locale>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub secondary: Vec<Locale>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Locale {
    /// The site locale id: what page reads take (`locale_id`).
    pub id: String,
    /// The CMS locale id: what item reads take (`cms_locale_id`).
    #[serde(default)]
    pub cms_locale_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Its language tag, such as `fr-FR`.
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub enabled: bool,
    /// Where its pages live under the site's domain (`fr-fr`; empty for the primary).
    #[serde(default)]
    pub subdirectory: Option<String>,
}

/// Which of a locale's two ids an argument names: pages go by the site locale, CMS items by
/// the CMS locale (Webflow keeps them apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocaleKind {
    /// `locale_id` → `localeId`.
    Site,
    /// `cms_locale_id` → `cmsLocaleId`.
    Cms,
}

impl LocaleKind {
    /// The argument's name in our tools.
    pub fn argument(self) -> &'static str {
        match self {
            LocaleKind::Site => "locale_id",
            LocaleKind::Cms => "cms_locale_id",
        }
    }

    /// The query parameter Webflow takes.
    fn parameter(self) -> &'static str {
        match self {
            LocaleKind::Site => "localeId",
            LocaleKind::Cms => "cmsLocaleId",
        }
    }

    /// This kind's id of `locale`.
    pub fn id_of(self, locale: &Locale) -> Option<&str> {
        match self {
            LocaleKind::Site => Some(locale.id.as_str()),
            LocaleKind::Cms => locale.cms_locale_id.as_deref(),
        }
    }
}

impl Locales {
    /// Primary first, then the secondary locales in Webflow's order.
    pub fn all(&self) -> impl Iterator<Item = &Locale> {
        self.primary.iter().chain(self.secondary.iter())
    }

    /// The locale whose `kind` id is `id`.
    pub fn find(&self, kind: LocaleKind, id: &str) -> Option<&Locale> {
        self.all().find(|l| kind.id_of(l) == Some(id))
    }
}

/// A list Webflow may send as `null`: empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A locale to read or write in, checked against the site's locales
/// (`ToolContext::locale`); `None` everywhere means the primary locale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocaleRef {
    pub kind: LocaleKind,
    pub id: WebflowId,
}

impl LocaleRef {
    fn query(this: Option<&LocaleRef>) -> Option<(&'static str, String)> {
        this.map(|l| (l.kind.parameter(), l.id.to_string()))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomain {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub last_published: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteList {
    pub sites: Vec<Site>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pagination {
    #[serde(default)]
    pub limit: u32,
    #[serde(default)]
    pub offset: u32,
    #[serde(default)]
    pub total: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Seo {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub id: String,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub collection_id: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub seo: Option<Seo>,
    #[serde(default)]
    pub open_graph: Option<Seo>,
    /// Which locale's variant this is (the site locale id).
    #[serde(default)]
    pub locale_id: Option<String>,
}

/// The body of `update-page-settings` (`PUT /v2/pages/{page_id}`): only the fields to change
/// are sent; a field left out keeps its value.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seo: Option<TextPair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_graph: Option<TextPair>,
}

/// `seo` or `openGraph` in a page update: `title` and `description`, each only if changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TextPair {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl PageSettings {
    pub fn is_empty(&self) -> bool {
        *self == PageSettings::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageList {
    pub pages: Vec<Page>,
    #[serde(default)]
    pub pagination: Pagination,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageDom {
    pub page_id: String,
    #[serde(default)]
    pub nodes: Vec<serde_json::Value>,
    #[serde(default)]
    pub pagination: Pagination,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub singular_name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Field>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub id: String,
    pub slug: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_editable: bool,
    #[serde(default)]
    pub help_text: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CollectionList {
    pub collections: Vec<Collection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub id: String,
    #[serde(default)]
    pub cms_locale_id: Option<String>,
    #[serde(default)]
    pub last_published: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub is_archived: bool,
    #[serde(default)]
    pub is_draft: bool,
    #[serde(default)]
    pub field_data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemList {
    pub items: Vec<Item>,
    #[serde(default)]
    pub pagination: Pagination,
}

/// An asset (image, file) uploaded to a site; its `variants` are left out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub id: String,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub original_file_name: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub hosted_url: Option<String>,
    /// What a screen reader says for the image; `None` (or empty) when there is none.
    #[serde(default)]
    pub alt_text: Option<String>,
    #[serde(default)]
    pub folder_id: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssetList {
    pub assets: Vec<Asset>,
    #[serde(default)]
    pub pagination: Pagination,
}

/// A form on a site: where it is and what it asks for (no submissions).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Form {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub page_id: Option<String>,
    #[serde(default)]
    pub page_name: Option<String>,
    /// Field id → `{displayName, type, placeholder, userVisible}`, as Webflow gives it.
    #[serde(default)]
    pub fields: serde_json::Value,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FormList {
    pub forms: Vec<Form>,
    #[serde(default)]
    pub pagination: Pagination,
}

/// One submission of a form: what a visitor sent (personal data).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSubmission {
    pub id: String,
    #[serde(default)]
    pub form_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub date_submitted: Option<String>,
    #[serde(default)]
    pub form_response: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSubmissionList {
    pub form_submissions: Vec<FormSubmission>,
    #[serde(default)]
    pub pagination: Pagination,
}

/// A comment thread on a page of the site (`list-comment-threads`), or a reply in one
/// (`list-comment-replies`, which also gives `commentId`, the thread's id).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub page_id: Option<String>,
    #[serde(default)]
    pub locale_id: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub breakpoint: Option<String>,
    /// Where the comment opens in the Designer.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub is_resolved: bool,
    /// `{userId (or id), email, name}`, as Webflow gives it.
    #[serde(default)]
    pub author: serde_json::Value,
    #[serde(default)]
    pub mentioned_users: Vec<serde_json::Value>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommentList {
    pub comments: Vec<Comment>,
    #[serde(default)]
    pub pagination: Pagination,
}

/// `introspect`'s answer: what the token was authorized for.
#[derive(Clone, Debug, Deserialize)]
pub struct Introspection {
    pub authorization: Authorization,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The scopes, comma-separated (the spec's example separates them with spaces too).
    #[serde(default)]
    pub scope: Option<String>,
}

impl Authorization {
    /// Each scope the token has.
    pub fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// `create-item`'s answer to a batch ("Multiple Items"): the items as Webflow stored them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedItems {
    #[serde(default)]
    pub items: Vec<Item>,
}

/// The Webflow client, bound to one tenant's site token for the duration of a call.
pub struct Webflow<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
    /// Whose cached answers its reads may use.
    pub reads: Reads<'a>,
}

fn page_query(offset: u32, limit: u32) -> [(&'static str, String); 2] {
    [("offset", offset.to_string()), ("limit", limit.to_string())]
}

/// Paging plus the locale, if any: the locale's variant is a cache entry of its own, since the
/// cache key holds the query.
fn paged_in(offset: u32, limit: u32, locale: Option<&LocaleRef>) -> Vec<(&'static str, String)> {
    let mut query: Vec<_> = page_query(offset, limit).into();
    query.extend(LocaleRef::query(locale));
    query
}

/// The OAuth scopes Webflow's operations need (each operation's `security` in the spec).
pub mod scope {
    pub const SITES_READ: &str = "sites:read";
    pub const SITES_WRITE: &str = "sites:write";
    pub const PAGES_READ: &str = "pages:read";
    pub const PAGES_WRITE: &str = "pages:write";
    pub const CMS_READ: &str = "cms:read";
    pub const CMS_WRITE: &str = "cms:write";
    pub const ASSETS_READ: &str = "assets:read";
    pub const ASSETS_WRITE: &str = "assets:write";
    pub const FORMS_READ: &str = "forms:read";
    pub const COMMENTS_READ: &str = "comments:read";
}

/// The scope a 403's message names (`OAuthForbidden: You are missing the following scopes -
/// cms:write`), if it names one plainly.
fn named_scope(detail: &str) -> Option<&str> {
    let (_, named) = detail.split_once("missing the following scopes - ")?;
    let named = named.split(['(', ';']).next()?.trim();
    let plain = !named.is_empty()
        && named
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b"_:, ".contains(&b));
    plain.then_some(named)
}

impl<'a> Webflow<'a> {
    /// Sends `call` with the tenant's token. Webflow answers a site token without the
    /// operation's `scope` with 403 (the spec's only 403 on these operations): that becomes
    /// [`UpstreamError::MissingScope`], naming the scope Webflow named, else `scope`.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        call: Call<'_>,
        scope: &'static str,
    ) -> Result<T, UpstreamError> {
        self.upstream
            .send(&self.token, call)
            .await
            .map_err(|e| match e {
                UpstreamError::Forbidden { upstream, detail } => UpstreamError::MissingScope {
                    upstream,
                    kind: "webflow",
                    scope: named_scope(&detail).unwrap_or(scope).to_owned(),
                    detail,
                },
                e => e,
            })
    }

    /// This client with reads that go to Webflow now (and refresh what is kept).
    pub fn refreshing(&self) -> Self {
        let reads = match self.reads {
            Reads::Cached(tenant) => Reads::Refresh(tenant),
            other => other,
        };
        Self {
            upstream: self.upstream,
            token: self.token.clone(),
            reads,
        }
    }

    /// A GET that may be answered from the cache within `freshness`.
    fn read(&self, call: Call<'a>, freshness: Freshness) -> Call<'a> {
        call.cached(self.reads, freshness)
    }

    /// `introspect`: the token's authorization, its scopes included. Needs no scope, but
    /// Webflow documents it for Data Client apps' tokens: a site token may be refused.
    pub async fn introspect(&self) -> Result<Introspection, UpstreamError> {
        self.upstream
            .send(
                &self.token,
                Call::get(upstream_path!("/v2/token/introspect")),
            )
            .await
    }

    pub async fn list_sites(&self) -> Result<SiteList, UpstreamError> {
        self.send(
            self.read(Call::get(upstream_path!("/v2/sites")), Freshness::Live),
            scope::SITES_READ,
        )
        .await
    }

    pub async fn get_site(&self, site: &WebflowId) -> Result<Site, UpstreamError> {
        self.send(
            self.read(
                Call::get(upstream_path!("/v2/sites/{site}")),
                Freshness::Live,
            ),
            scope::SITES_READ,
        )
        .await
    }

    pub async fn list_pages(
        &self,
        site: &WebflowId,
        offset: u32,
        limit: u32,
        locale: Option<&LocaleRef>,
    ) -> Result<PageList, UpstreamError> {
        let query = paged_in(offset, limit, locale);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/sites/{site}/pages"))
        };
        self.send(self.read(call, Freshness::Live), scope::PAGES_READ)
            .await
    }

    /// `get-page-metadata`: one page's title, slug, SEO and Open Graph settings.
    pub async fn get_page(
        &self,
        page: &WebflowId,
        locale: Option<&LocaleRef>,
    ) -> Result<Page, UpstreamError> {
        let query: Vec<_> = LocaleRef::query(locale).into_iter().collect();
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/pages/{page}"))
        };
        self.send(self.read(call, Freshness::Live), scope::PAGES_READ)
            .await
    }

    /// `update-page-settings`: changes the staged site's page settings; the live site changes
    /// only when someone publishes.
    pub async fn update_page_settings(
        &self,
        site: &WebflowId,
        page: &WebflowId,
        settings: &PageSettings,
        locale: Option<&LocaleRef>,
    ) -> Result<Page, UpstreamError> {
        let body = serde_json::to_value(settings).map_err(|e| UpstreamError::BadResponse {
            upstream: self.upstream.name,
            why: e.to_string(),
        })?;
        let query: Vec<_> = LocaleRef::query(locale).into_iter().collect();
        let call = Call {
            json: Some(&body),
            query: &query,
            ..Call::with_method(reqwest::Method::PUT, upstream_path!("/v2/pages/{page}"))
        }
        // The page's own reads (metadata, content) and every listing of its site's pages.
        .invalidating(upstream_path!("/v2/pages/{page}"))
        .invalidating(upstream_path!("/v2/sites/{site}/pages"));
        self.send(call, scope::PAGES_WRITE).await
    }

    pub async fn get_page_dom(
        &self,
        page: &WebflowId,
        offset: u32,
        limit: u32,
        locale: Option<&LocaleRef>,
    ) -> Result<PageDom, UpstreamError> {
        let query = paged_in(offset, limit, locale);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/pages/{page}/dom"))
        };
        self.send(self.read(call, Freshness::Live), scope::PAGES_READ)
            .await
    }

    pub async fn list_collections(
        &self,
        site: &WebflowId,
    ) -> Result<CollectionList, UpstreamError> {
        self.send(
            self.read(
                Call::get(upstream_path!("/v2/sites/{site}/collections")),
                Freshness::Schema,
            ),
            scope::CMS_READ,
        )
        .await
    }

    pub async fn get_collection(
        &self,
        collection: &WebflowId,
    ) -> Result<Collection, UpstreamError> {
        self.send(
            self.read(
                Call::get(upstream_path!("/v2/collections/{collection}")),
                Freshness::Schema,
            ),
            scope::CMS_READ,
        )
        .await
    }

    pub async fn list_items(
        &self,
        collection: &WebflowId,
        offset: u32,
        limit: u32,
        locale: Option<&LocaleRef>,
    ) -> Result<ItemList, UpstreamError> {
        let query = paged_in(offset, limit, locale);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/collections/{collection}/items"))
        };
        self.send(self.read(call, Freshness::Live), scope::CMS_READ)
            .await
    }

    /// `list-items-live`: the collection's items as the live site shows them, paged.
    pub async fn list_live_items(
        &self,
        collection: &WebflowId,
        offset: u32,
        limit: u32,
    ) -> Result<ItemList, UpstreamError> {
        let query = page_query(offset, limit);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/collections/{collection}/items/live"))
        };
        self.send(self.read(call, Freshness::Live), scope::CMS_READ)
            .await
    }

    /// The items updated at or after `since` (every item when `None`), newest first: what a
    /// site publish would take live from this collection, counted in `pagination.total`.
    pub async fn list_items_updated_since(
        &self,
        collection: &WebflowId,
        since: Option<&str>,
        limit: u32,
    ) -> Result<ItemList, UpstreamError> {
        let mut query = vec![
            ("limit", limit.to_string()),
            ("sortBy", "lastUpdated".to_owned()),
            ("sortOrder", "desc".to_owned()),
        ];
        if let Some(since) = since {
            query.push(("lastUpdated[gte]", since.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/collections/{collection}/items"))
        };
        self.upstream
            .send(&self.token, self.read(call, Freshness::Live))
            .await
    }

    /// Creates a staged (draft) item: never published by this call.
    pub async fn create_item(
        &self,
        collection: &WebflowId,
        field_data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Item, UpstreamError> {
        let body =
            serde_json::json!({"isArchived": false, "isDraft": true, "fieldData": field_data});
        let call = Call {
            json: Some(&body),
            ..Call::with_method(
                reqwest::Method::POST,
                upstream_path!("/v2/collections/{collection}/items"),
            )
        }
        // The listings of the collection's items (every page of them) now miss the new one.
        .invalidating(upstream_path!("/v2/collections/{collection}/items"));
        self.send(call, scope::CMS_WRITE).await
    }

    /// Creates staged (draft) items in one request (`create-item` with `items`, at most 100):
    /// never published by this call. `skipInvalidFiles=false`: a file Webflow cannot fetch
    /// fails the whole request rather than leaving an item without it.
    pub async fn create_items(
        &self,
        collection: &WebflowId,
        drafts: &[&serde_json::Map<String, serde_json::Value>],
    ) -> Result<CreatedItems, UpstreamError> {
        let items: Vec<serde_json::Value> = drafts
            .iter()
            .map(|f| serde_json::json!({"isArchived": false, "isDraft": true, "fieldData": f}))
            .collect();
        let body = serde_json::json!({ "items": items });
        let query = [("skipInvalidFiles", "false".to_owned())];
        let call = Call {
            json: Some(&body),
            query: &query,
            ..Call::with_method(
                reqwest::Method::POST,
                upstream_path!("/v2/collections/{collection}/items"),
            )
        }
        .invalidating(upstream_path!("/v2/collections/{collection}/items"));
        self.send(call, scope::CMS_WRITE).await
    }

    /// Updates the staged version of an item; the live site changes only when published.
    pub async fn update_item(
        &self,
        collection: &WebflowId,
        item: &WebflowId,
        field_data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Item, UpstreamError> {
        let body = serde_json::json!({"fieldData": field_data});
        let call = Call {
            json: Some(&body),
            ..Call::with_method(
                reqwest::Method::PATCH,
                upstream_path!("/v2/collections/{collection}/items/{item}"),
            )
        }
        // The item and every listing that shows it.
        .invalidating(upstream_path!("/v2/collections/{collection}/items"));
        self.send(call, scope::CMS_WRITE).await
    }

    /// `list-assets`: a site's assets, `limit` at a time.
    pub async fn list_assets(
        &self,
        site: &WebflowId,
        offset: u32,
        limit: u32,
    ) -> Result<AssetList, UpstreamError> {
        let query = page_query(offset, limit);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/sites/{site}/assets"))
        };
        // Alt text changes in the Designer too: as fresh as other edit state.
        self.send(self.read(call, Freshness::Live), scope::ASSETS_READ)
            .await
    }

    /// `get-asset`.
    pub async fn get_asset(&self, asset: &WebflowId) -> Result<Asset, UpstreamError> {
        let call = Call::get(upstream_path!("/v2/assets/{asset}"));
        self.send(self.read(call, Freshness::Live), scope::ASSETS_READ)
            .await
    }

    /// `patch-asset` with `altText` only: the one thing an accessibility pass changes.
    pub async fn update_asset_alt_text(
        &self,
        site: &WebflowId,
        asset: &WebflowId,
        alt_text: &str,
    ) -> Result<Asset, UpstreamError> {
        let body = serde_json::json!({ "altText": alt_text });
        let call = Call {
            json: Some(&body),
            ..Call::with_method(reqwest::Method::PATCH, upstream_path!("/v2/assets/{asset}"))
        }
        // The asset's own read and every listing of its site's assets.
        .invalidating(upstream_path!("/v2/assets/{asset}"))
        .invalidating(upstream_path!("/v2/sites/{site}/assets"));
        self.send(call, scope::ASSETS_WRITE).await
    }

    /// `list-forms`: a site's forms (their fields, not what visitors sent).
    pub async fn list_forms(
        &self,
        site: &WebflowId,
        offset: u32,
        limit: u32,
    ) -> Result<FormList, UpstreamError> {
        let query = page_query(offset, limit);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/sites/{site}/forms"))
        };
        self.send(self.read(call, Freshness::Live), scope::FORMS_READ)
            .await
    }

    /// `list-submissions`: what visitors sent through a form. Never cached: the answer is
    /// personal data, kept nowhere but in the tool result it becomes.
    pub async fn list_form_submissions(
        &self,
        form: &WebflowId,
        offset: u32,
        limit: u32,
    ) -> Result<FormSubmissionList, UpstreamError> {
        let query = page_query(offset, limit);
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/forms/{form}/submissions"))
        };
        self.send(call, scope::FORMS_READ).await
    }

    /// `list-comment-threads` (no `thread`) or `list-comment-replies` (a thread of `site`),
    /// `limit` at a time; `sort` is Webflow's `sortBy` and `sortOrder`, if given.
    pub async fn list_comments(
        &self,
        site: &WebflowId,
        thread: Option<&WebflowId>,
        offset: u32,
        limit: u32,
        sort: &[(&'static str, &'static str)],
    ) -> Result<CommentList, UpstreamError> {
        let mut query: Vec<(&str, String)> = page_query(offset, limit).into();
        query.extend(sort.iter().map(|&(name, value)| (name, value.to_owned())));
        let path = match thread {
            None => upstream_path!("/v2/sites/{site}/comments"),
            Some(thread) => upstream_path!("/v2/sites/{site}/comments/{thread}/replies"),
        };
        let call = Call {
            query: &query,
            ..Call::get(path)
        };
        self.send(self.read(call, Freshness::Live), scope::COMMENTS_READ)
            .await
    }

    pub async fn get_item(
        &self,
        collection: &WebflowId,
        item: &WebflowId,
        locale: Option<&LocaleRef>,
    ) -> Result<Item, UpstreamError> {
        let query: Vec<_> = LocaleRef::query(locale).into_iter().collect();
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v2/collections/{collection}/items/{item}"))
        };
        self.send(self.read(call, Freshness::Live), scope::CMS_READ)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::named_scope;

    #[test]
    fn a_403_names_its_scope_only_plainly() {
        let said = ": OAuthForbidden: You are missing the following scopes - assets:write";
        assert_eq!(named_scope(said), Some("assets:write"));
        assert_eq!(
            named_scope(": missing the following scopes - forms:read, sites:read (x: y)"),
            Some("forms:read, sites:read")
        );
        assert_eq!(named_scope(": User is not authorized"), None);
        assert_eq!(
            named_scope(": missing the following scopes - `rm -rf`"),
            None
        );
    }
}
