//! The admin API, served only on the admin listener and authenticated by the admin token in
//! `<data dir>/admin-token`; `GET /metrics` also takes the metrics token, which opens nothing
//! else. It never returns a stored token or secret: the one exception is the plaintext of a
//! token at the moment it is issued, which exists nowhere else afterwards.
//!
//! Here: the router, the admin and metrics token checks, the one error type every handler
//! answers with, and the helpers they share. The handlers live beside it, one file per resource.

mod approvals;
pub mod client;
mod onboard;
mod people;
mod server;
mod tenants;
mod tokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::domain::TenantId;
use crate::runtime::server::state::{AppState, Event};
use crate::store::StoreError;
use crate::tenant::Tenant;

pub use approvals::ApprovalView;
pub use onboard::{OnboardRequest, OnboardResponse};
pub use people::{InviteRequest, Invited, PersonRemoved, ReinviteRequest};
pub use server::{AuditFilter, ServerInfo};
pub use tenants::{NewTenant, RemoveQuery, SecretValue, TenantDetail};
pub use tokens::{IssueRequest, IssuedToken, TokenFilter};

#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Admin API errors: a status and a message that names the problem.
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::TenantExists(_) => StatusCode::CONFLICT,
            StoreError::NoTenant(_) | StoreError::NoToken(_) => StatusCode::NOT_FOUND,
            StoreError::Full
            | StoreError::Locked(_)
            | StoreError::Unavailable(_)
            | StoreError::Lagging(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "admin store error");
        }
        AdminError(status, e.to_string())
    }
}

impl From<crate::token::AuthError> for AdminError {
    fn from(e: crate::token::AuthError) -> Self {
        match e {
            crate::token::AuthError::Store(e) => e.into(),
            other => AdminError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

fn bad_request(message: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, message.into())
}

type AdminResult<T> = Result<T, AdminError>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/server", get(server::server_info))
        .route(
            "/v1/tenants",
            get(tenants::list_tenants).post(tenants::add_tenant),
        )
        .route(
            "/v1/tenants/{id}",
            get(tenants::show_tenant)
                .patch(tenants::update_tenant)
                .put(tenants::set_tenant)
                .delete(tenants::remove_tenant),
        )
        .route("/v1/tenants/{id}/secrets/{kind}", put(tenants::set_secret))
        .route("/v1/tenants/{id}/tokens", post(tokens::issue_token))
        .route("/v1/tokens", get(tokens::list_tokens))
        .route("/v1/tokens/{id}/revoke", post(tokens::revoke_token))
        .route("/v1/tenants/{id}/people", post(people::invite_person))
        .route("/v1/people", get(people::list_people))
        .route(
            "/v1/people/{id}",
            axum::routing::delete(people::remove_person),
        )
        .route("/v1/people/{id}/invite", post(people::reinvite_person))
        .route("/v1/grants", get(people::list_grants))
        .route("/v1/grants/{id}/revoke", post(people::revoke_grant))
        .route("/v1/approvals", get(approvals::list_approvals))
        .route(
            "/v1/approvals/{id}/approve",
            post(approvals::approve_approval),
        )
        .route("/v1/approvals/{id}/deny", post(approvals::deny_approval))
        .route("/v1/audit", get(server::read_audit))
        .route("/v1/onboard", post(onboard::onboard))
        .route("/v1/store/backup", post(server::backup))
        .layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .route(
            "/metrics",
            get(server::metrics).layer(middleware::from_fn_with_state(
                state.clone(),
                require_metrics,
            )),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if presents(&request, &state.admin_token) {
        next.run(request).await
    } else {
        tracing::warn!("refused admin request: bad or missing admin token");
        unauthorized("admin token required")
    }
}

/// `GET /metrics` takes the admin token or the metrics token, which opens nothing else: what
/// Prometheus holds, so that a scraper cannot administer the server.
async fn require_metrics(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // Both compared, whichever matches: no early exit to time.
    let admin = presents(&request, &state.admin_token);
    let metrics = presents(&request, &state.metrics_token);
    if admin | metrics {
        next.run(request).await
    } else {
        tracing::warn!("refused metrics request: bad or missing metrics or admin token");
        unauthorized("metrics or admin token required")
    }
}

/// Whether the request's bearer credential is `expected`, compared in constant time. Start-up
/// refuses an empty token; an absent or empty presented one never matches.
fn presents(request: &Request, expected: &secrecy::SecretString) -> bool {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::token::bearer);
    let expected = expected.expose_secret().as_bytes();
    presented.is_some_and(|p| !expected.is_empty() && bool::from(p.as_bytes().ct_eq(expected)))
}

fn unauthorized(message: &str) -> Response {
    let mut response = AdminError(StatusCode::UNAUTHORIZED, message.into()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"studio-mcp-admin\""),
    );
    response
}

/// Records an admin action in the audit log. `subject` names what was acted on (never a value).
pub(super) fn audit_admin(
    state: &AppState,
    action: &str,
    tenant: &str,
    subject: &serde_json::Value,
) {
    state.record(&Event {
        tenant,
        action: &format!("admin:{action}"),
        outcome: "ok",
        person: None,
        client: None,
        subject,
    });
}

fn tenant_id(raw: &str) -> AdminResult<TenantId> {
    TenantId::parse(raw).map_err(|e| bad_request(e.to_string()))
}

fn existing(state: &AppState, raw: &str) -> AdminResult<Arc<Tenant>> {
    let id = tenant_id(raw)?;
    state
        .services
        .store
        .tenant(&id)
        .ok_or_else(|| StoreError::NoTenant(id.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    async fn answer(e: impl Into<AdminError>) -> (StatusCode, String) {
        let response = e.into().into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: ApiError = serde_json::from_slice(&body).unwrap();
        (status, body.error)
    }

    #[tokio::test]
    async fn each_store_failure_is_one_status_with_a_sentence_naming_it() {
        let acme = TenantId::parse("acme").unwrap();
        let cases = [
            (
                StoreError::TenantExists(acme),
                409,
                "tenant `acme` already exists",
            ),
            (StoreError::NoTenant("acme".into()), 404, "no tenant `acme`"),
            (
                StoreError::NoToken("t1".into()),
                404,
                "no token with id `t1`",
            ),
            (StoreError::Full, 503, "out of disk space"),
            (
                StoreError::Locked("/data".into()),
                503,
                "locked by another process",
            ),
            (
                StoreError::Unavailable("down".into()),
                503,
                "unavailable: down",
            ),
            (StoreError::Lagging("replica b".into()), 503, "replica b"),
            (
                StoreError::Corrupt("bad json".into()),
                500,
                "unreadable: bad json",
            ),
        ];
        for (error, status, says) in cases {
            let (got, text) = answer(error).await;
            assert_eq!(got.as_u16(), status, "{text}");
            assert!(text.contains(says), "{text:?} should say {says:?}");
        }
    }

    #[tokio::test]
    async fn a_token_store_failure_keeps_its_status() {
        let (status, _) = answer(crate::token::AuthError::Store(StoreError::Full)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = answer(crate::token::AuthError::Malformed).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
