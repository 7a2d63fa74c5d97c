//! A small client for the admin API: what every admin subcommand of both binaries, onboarding,
//! the compose generator and the revocation drill use.

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;

use crate::audit::AuditRecord;
use crate::config::Config;
use crate::runtime::admin::{
    ApiError, AuditFilter, IssueRequest, IssuedToken, NewTenant, OnboardRequest, OnboardResponse,
    SecretValue, TenantDetail,
};
use crate::store::TokenRecord;
use crate::tenant::{Tenant, TenantPatch, TenantSpec};

/// A small client for the admin API. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// The admin API of the server `config` describes; `admin_url` overrides its address.
    pub fn from_config(admin_url: Option<&str>, config: &Config) -> anyhow::Result<Self> {
        let base = admin_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("http://{}", config.admin_listen));
        let token = match std::env::var("STUDIO_MCP_ADMIN_TOKEN") {
            Ok(t) => t,
            Err(_) => {
                let path = config.admin_token_path();
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "cannot read the admin token at {} (has the server started with this STUDIO_MCP_DATA_DIR?)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Self::new(base, token)
    }

    pub fn new(base: String, token: String) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: crate::upstream::http_client().context("cannot build the HTTP client")?,
        })
    }

    /// `POST /v1/store/backup`: the backup file, as the server wrote it.
    pub async fn backup(&self) -> anyhow::Result<Vec<u8>> {
        let bytes = self
            .send(reqwest::Method::POST, "/v1/store/backup", None)
            .await?;
        Ok(bytes.to_vec())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&dyn erased::Json>,
    ) -> anyhow::Result<T> {
        let bytes = self.send(method, path, body).await?;
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).context("admin API answer was not understood")
    }

    /// The answer's bytes, or its error message as the admin API gave it.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&dyn erased::Json>,
    ) -> anyhow::Result<axum::body::Bytes> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_json()?);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the admin API at {} (is the server running?)",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("admin API answer was cut off")?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{message} (HTTP {})", status.as_u16());
        }
        Ok(bytes)
    }

    pub async fn server(&self) -> anyhow::Result<crate::runtime::admin::ServerInfo> {
        self.call(reqwest::Method::GET, "/v1/server", None).await
    }

    pub async fn add_tenant(&self, new: &NewTenant) -> anyhow::Result<Tenant> {
        self.call(reqwest::Method::POST, "/v1/tenants", Some(new))
            .await
    }

    pub async fn onboard(&self, request: &OnboardRequest) -> anyhow::Result<OnboardResponse> {
        self.call(reqwest::Method::POST, "/v1/onboard", Some(request))
            .await
    }

    pub async fn set_tenant(&self, id: &str, spec: &TenantSpec) -> anyhow::Result<Tenant> {
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{id}"),
            Some(spec),
        )
        .await
    }

    pub async fn update_tenant(&self, id: &str, patch: &TenantPatch) -> anyhow::Result<Tenant> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1/tenants/{id}"),
            Some(patch),
        )
        .await
    }

    pub async fn tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        self.call(reqwest::Method::GET, "/v1/tenants", None).await
    }

    pub async fn tenant(&self, id: &str) -> anyhow::Result<TenantDetail> {
        self.call(reqwest::Method::GET, &format!("/v1/tenants/{id}"), None)
            .await
    }

    pub async fn set_secret(&self, tenant: &str, kind: &str, value: String) -> anyhow::Result<()> {
        let body = SecretValue { value };
        let _: serde_json::Value = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/tenants/{tenant}/secrets/{kind}"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    pub async fn issue_token(
        &self,
        tenant: &str,
        req: &IssueRequest,
    ) -> anyhow::Result<IssuedToken> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/tokens"),
            Some(req),
        )
        .await
    }

    pub async fn tokens(&self, tenant: Option<&str>) -> anyhow::Result<Vec<TokenRecord>> {
        let path = match tenant {
            Some(t) => format!("/v1/tokens?tenant={t}"),
            None => "/v1/tokens".to_owned(),
        };
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn audit(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRecord>> {
        let mut path = format!("/v1/audit?limit={}", filter.limit.unwrap_or(100));
        if let Some(t) = &filter.tenant {
            path.push_str(&format!("&tenant={t}"));
        }
        if let Some(s) = filter.since_ms {
            path.push_str(&format!("&since_ms={s}"));
        }
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn remove_tenant(&self, id: &str) -> anyhow::Result<crate::store::Removed> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{id}?confirm=true"),
            None,
        )
        .await
    }

    pub async fn revoke(&self, token_id: &str) -> anyhow::Result<TokenRecord> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/tokens/{token_id}/revoke"),
            None,
        )
        .await
    }
}

impl AdminClient {
    pub async fn invite_person(
        &self,
        tenant: &str,
        request: &crate::runtime::admin::InviteRequest,
    ) -> anyhow::Result<crate::runtime::admin::Invited> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/people"),
            Some(request),
        )
        .await
    }

    pub async fn people(
        &self,
        tenant: Option<&str>,
    ) -> anyhow::Result<Vec<crate::store::people::PersonView>> {
        let path = match tenant {
            Some(t) => format!("/v1/people?tenant={t}"),
            None => "/v1/people".to_owned(),
        };
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn reinvite_person(
        &self,
        id: &str,
        request: &crate::runtime::admin::ReinviteRequest,
    ) -> anyhow::Result<crate::runtime::admin::Invited> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/people/{id}/invite"),
            Some(request),
        )
        .await
    }

    pub async fn remove_person(
        &self,
        id: &str,
    ) -> anyhow::Result<crate::runtime::admin::PersonRemoved> {
        self.call(reqwest::Method::DELETE, &format!("/v1/people/{id}"), None)
            .await
    }

    pub async fn grants(
        &self,
        tenant: Option<&str>,
    ) -> anyhow::Result<Vec<crate::store::people::GrantView>> {
        let path = match tenant {
            Some(t) => format!("/v1/grants?tenant={t}"),
            None => "/v1/grants".to_owned(),
        };
        self.call(reqwest::Method::GET, &path, None).await
    }

    pub async fn approvals(&self) -> anyhow::Result<Vec<crate::runtime::admin::ApprovalView>> {
        self.call(reqwest::Method::GET, "/v1/approvals", None).await
    }

    /// The operator's decision; an approval runs at once and the answer carries its outcome.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
    ) -> anyhow::Result<crate::runtime::admin::ApprovalView> {
        let verb = if approve { "approve" } else { "deny" };
        self.call(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/{verb}"),
            None,
        )
        .await
    }

    pub async fn revoke_grant(&self, id: &str) -> anyhow::Result<crate::store::people::GrantView> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/grants/{id}/revoke"),
            None,
        )
        .await
    }
}

mod erased {
    /// Lets the admin client take any serialisable body without generics on every method.
    pub trait Json {
        fn to_json(&self) -> anyhow::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> anyhow::Result<Vec<u8>> {
            Ok(serde_json::to_vec(self)?)
        }
    }
}
