//! Webflow publishing: `POST /v2/sites/{site_id}/publish` and
//! `POST /v2/collections/{collection_id}/items/publish`.

use crate::tools::approval::Approved;
use common::domain::WebflowId;
use common::upstream::{Call, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SitePublished {
    #[serde(default)]
    pub custom_domains: Vec<serde_json::Value>,
    #[serde(default)]
    pub publish_to_webflow_subdomain: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemsPublished {
    #[serde(default)]
    pub published_item_ids: Vec<String>,
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
}

pub async fn publish_site(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    site: &WebflowId,
    custom_domains: &[WebflowId],
    webflow_subdomain: bool,
) -> Result<SitePublished, UpstreamError> {
    let body = json!({
        "customDomains": custom_domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "publishToWebflowSubdomain": webflow_subdomain,
    });
    let call = Call {
        json: Some(&body),
        ..Call::with_method(
            reqwest::Method::POST,
            upstream_path!("/v2/sites/{site}/publish"),
        )
    };
    upstream.send(token, call).await
}

pub async fn publish_items(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    items: &[WebflowId],
) -> Result<ItemsPublished, UpstreamError> {
    let body = json!({"itemIds": items.iter().map(|i| i.as_str()).collect::<Vec<_>>()});
    let call = Call {
        json: Some(&body),
        ..Call::with_method(
            reqwest::Method::POST,
            upstream_path!("/v2/collections/{collection}/items/publish"),
        )
    };
    upstream.send(token, call).await
}
