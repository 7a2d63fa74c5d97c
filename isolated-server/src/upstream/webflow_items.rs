//! Removing CMS items: `DELETE /v2/collections/{collection_id}/items` (staged items, deleted)
//! and `DELETE /v2/collections/{collection_id}/items/live` (live items, unpublished and set to
//! draft). Both take `{"items": [{"id": …}]}`, at most 100, and answer `204 No Content`.

use crate::tools::approval::Approved;
use common::domain::WebflowId;
use common::upstream::{Call, Path, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde_json::json;

/// Webflow's bulk item endpoints take at most this many items a request.
pub const MAX_ITEMS: usize = 100;

pub async fn delete_items(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    items: &[WebflowId],
) -> Result<(), UpstreamError> {
    let path = upstream_path!("/v2/collections/{collection}/items");
    remove(upstream, token, collection, path, items).await
}

pub async fn unpublish_items(
    // The proof a person approved this exact action: no caller can make one.
    _approved: &Approved,
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    items: &[WebflowId],
) -> Result<(), UpstreamError> {
    let path = upstream_path!("/v2/collections/{collection}/items/live");
    remove(upstream, token, collection, path, items).await
}

/// `DELETE path` with the items; either way the collection's item listings go stale (deleted
/// items leave them, unpublished ones become drafts and leave the live listing).
async fn remove(
    upstream: &Upstream,
    token: &SecretString,
    collection: &WebflowId,
    path: Path,
    items: &[WebflowId],
) -> Result<(), UpstreamError> {
    let body =
        json!({"items": items.iter().map(|i| json!({"id": i.as_str()})).collect::<Vec<_>>()});
    let call = Call {
        json: Some(&body),
        ..Call::with_method(reqwest::Method::DELETE, path)
    }
    .invalidating(upstream_path!("/v2/collections/{collection}/items"));
    upstream.send(token, call).await
}
