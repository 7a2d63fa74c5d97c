//! Removing CMS items: `DELETE /v2/collections/{collection_id}/items` (staged items, deleted)
//! and `DELETE /v2/collections/{collection_id}/items/live` (live items, unpublished and set to
//! draft). Both take `{"items": [{"id": …}]}`, at most 100, and answer `204 No Content`.

use crate::tools::approval::Approved;
use common::domain::WebflowId;
use common::upstream::{Call, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde_json::json;

/// Webflow's bulk item endpoints take at most this many items a request.
pub const MAX_ITEMS: usize = 100;

fn body(items: &[WebflowId]) -> serde_json::Value {
    json!({"items": items.iter().map(|i| json!({"id": i.as_str()})).collect::<Vec<_>>()})
}

pub async fn delete_items(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    items: &[WebflowId],
) -> Result<(), UpstreamError> {
    let body = body(items);
    let call = Call {
        json: Some(&body),
        ..Call::with_method(
            reqwest::Method::DELETE,
            upstream_path!("/v2/collections/{collection}/items"),
        )
    }
    .invalidating(upstream_path!("/v2/collections/{collection}/items"));
    upstream.send(token, call).await
}

pub async fn unpublish_items(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    items: &[WebflowId],
) -> Result<(), UpstreamError> {
    let body = body(items);
    let call = Call {
        json: Some(&body),
        ..Call::with_method(
            reqwest::Method::DELETE,
            upstream_path!("/v2/collections/{collection}/items/live"),
        )
    }
    // The items' staged versions become drafts, and the live listing loses them.
    .invalidating(upstream_path!("/v2/collections/{collection}/items"));
    upstream.send(token, call).await
}
