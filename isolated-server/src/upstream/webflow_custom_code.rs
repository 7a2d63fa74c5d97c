//! Webflow custom code: the scripts registered on a site (`GET /v2/sites/{site_id}/registered_scripts`)
//! and the ones applied to a site or a page (`GET`/`PUT /v2/sites/{site_id}/custom_code`,
//! `/v2/pages/{page_id}/custom_code`). Webflow accepts only a Webflow App's OAuth token (code
//! grant) here, never a site token: every call takes the tenant's `webflow-app` credential.
//! Reads go straight to Webflow (no cache): an approver decides on what is applied now.

use crate::tools::approval::Approved;
use common::domain::WebflowId;
use common::upstream::{Call, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A script registered on the site (hosted or inline), as `get-scripts` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredScript {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub hosted_location: Option<String>,
    #[serde(default)]
    pub integrity_hash: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub can_copy: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredScripts {
    #[serde(default)]
    pub registered_scripts: Vec<RegisteredScript>,
}

/// A registered script applied to a site or page: Webflow's request and answer shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedScript {
    pub id: String,
    pub version: String,
    /// `header` or `footer`.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomCode {
    #[serde(default)]
    pub scripts: Vec<AppliedScript>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// Where scripts are applied: the whole site, or one page of it.
#[derive(Clone, Debug)]
pub enum Target {
    Site(WebflowId),
    Page(WebflowId),
}

/// The custom code endpoints with the tenant's Webflow App token.
pub struct CustomCodeClient<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
}

impl CustomCodeClient<'_> {
    /// `get-scripts`: every script registered on `site`.
    pub async fn registered(&self, site: &WebflowId) -> Result<RegisteredScripts, UpstreamError> {
        let call = Call::get(upstream_path!("/v2/sites/{site}/registered_scripts"));
        self.upstream.send(&self.token, call).await
    }

    /// The scripts applied to `target` now.
    pub async fn applied(&self, target: &Target) -> Result<CustomCode, UpstreamError> {
        let call = match target {
            Target::Site(site) => Call::get(upstream_path!("/v2/sites/{site}/custom_code")),
            Target::Page(page) => Call::get(upstream_path!("/v2/pages/{page}/custom_code")),
        };
        self.upstream.send(&self.token, call).await
    }

    /// Replaces the scripts applied to `target` with `scripts` (Webflow's upsert: a script left
    /// out is removed).
    pub async fn apply(
        &self,
        // The proof a person approved this exact action: no caller can make one.
        _approved: &Approved,
        target: &Target,
        scripts: &[AppliedScript],
    ) -> Result<CustomCode, UpstreamError> {
        let body = json!({ "scripts": scripts });
        let path = match target {
            Target::Site(site) => upstream_path!("/v2/sites/{site}/custom_code"),
            Target::Page(page) => upstream_path!("/v2/pages/{page}/custom_code"),
        };
        let call = Call {
            json: Some(&body),
            ..Call::with_method(reqwest::Method::PUT, path)
        };
        self.upstream.send(&self.token, call).await
    }
}

/// `GET /v2/token/authorized_by`: the Webflow user who granted the App token (a site token is
/// refused here), as onboarding checks it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizedBy {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

pub async fn authorized_by(
    upstream: &Upstream,
    token: &SecretString,
) -> Result<AuthorizedBy, UpstreamError> {
    let call = Call::get(upstream_path!("/v2/token/authorized_by"));
    upstream.send(token, call).await
}
