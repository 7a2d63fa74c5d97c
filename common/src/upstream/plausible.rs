//! Plausible Stats API v2 (`POST /api/v2/query`).

use crate::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Call, Upstream, UpstreamError};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRow {
    #[serde(default)]
    pub metrics: Vec<serde_json::Value>,
    #[serde(default)]
    pub dimensions: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryResult {
    pub results: Vec<QueryRow>,
    #[serde(default)]
    pub meta: serde_json::Value,
    #[serde(default)]
    pub query: serde_json::Value,
}

pub struct Plausible<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
}

impl Plausible<'_> {
    /// `query` must already carry the tenant's own `site_id`.
    pub async fn query(&self, query: &serde_json::Value) -> Result<QueryResult, UpstreamError> {
        let call = Call {
            json: Some(query),
            ..Call::with_method(reqwest::Method::POST, upstream_path!("/api/v2/query"))
        };
        self.upstream.send(&self.token, call).await
    }
}
