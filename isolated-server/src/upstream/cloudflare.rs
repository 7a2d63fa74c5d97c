//! Cloudflare API v4 DNS records (`/client/v4/zones/{zone_id}/dns_records`). Answers come in
//! the `{success, errors, messages, result, result_info}` envelope; `success: false` is an error
//! even with HTTP 200.

use crate::tools::approval::Approved;
use common::domain::ZoneId;
use common::upstream::{Call, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub proxied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
}

/// The writable part of a record, as sent on create and update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub content: String,
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResultInfo {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub per_page: u32,
    #[serde(default)]
    pub count: u32,
    #[serde(default)]
    pub total_count: u32,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
pub struct Deleted {
    pub id: String,
}

pub struct Cloudflare<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
}

impl Cloudflare<'_> {
    async fn call<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<(T, Option<ResultInfo>), UpstreamError> {
        let envelope: Envelope<T> = self.upstream.send(&self.token, call).await?;
        match (envelope.success, envelope.result) {
            (true, Some(result)) => Ok((result, envelope.result_info)),
            _ => Err(UpstreamError::Rejected {
                upstream: "Cloudflare",
                status: 200,
                detail: envelope
                    .errors
                    .first()
                    .map(|e| {
                        format!(
                            ": {} ({})",
                            e.message.chars().take(200).collect::<String>(),
                            e.code
                        )
                    })
                    .unwrap_or_default(),
            }),
        }
    }

    pub async fn list(
        &self,
        zone: &ZoneId,
        name: Option<&str>,
        kind: Option<&str>,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<DnsRecord>, ResultInfo), UpstreamError> {
        let mut query = vec![
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
        ];
        if let Some(n) = name {
            query.push(("name", n.to_owned()));
        }
        if let Some(k) = kind {
            query.push(("type", k.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/client/v4/zones/{zone}/dns_records"))
        };
        let (records, info) = self.call(call).await?;
        Ok((records, info.unwrap_or_default()))
    }

    pub async fn get(&self, zone: &ZoneId, id: &str) -> Result<DnsRecord, UpstreamError> {
        let call = Call::get(upstream_path!("/client/v4/zones/{zone}/dns_records/{id}"));
        Ok(self.call(call).await?.0)
    }

    /// Creates a record (`id` none) or changes record `id`, in `zone`.
    pub async fn write(
        &self,
        // The proof a person approved this exact action: no caller can make one.
        _approved: &Approved,
        zone: &ZoneId,
        id: Option<&str>,
        input: &RecordInput,
    ) -> Result<DnsRecord, UpstreamError> {
        let body = serde_json::to_value(input).map_err(|e| bad(e.to_string()))?;
        let (method, path) = match id {
            None => (
                reqwest::Method::POST,
                upstream_path!("/client/v4/zones/{zone}/dns_records"),
            ),
            Some(id) => (
                reqwest::Method::PATCH,
                upstream_path!("/client/v4/zones/{zone}/dns_records/{id}"),
            ),
        };
        let call = Call {
            json: Some(&body),
            ..Call::with_method(method, path)
        };
        Ok(self.call(call).await?.0)
    }

    pub async fn delete(
        &self,
        // The proof a person approved this exact action: no caller can make one.
        _approved: &Approved,
        zone: &ZoneId,
        id: &str,
    ) -> Result<Deleted, UpstreamError> {
        let call = Call::with_method(
            reqwest::Method::DELETE,
            upstream_path!("/client/v4/zones/{zone}/dns_records/{id}"),
        );
        Ok(self.call(call).await?.0)
    }
}

fn bad(why: String) -> UpstreamError {
    UpstreamError::BadResponse {
        upstream: "Cloudflare",
        why,
    }
}
