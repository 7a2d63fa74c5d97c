//! MCP tokens: `POST /v1/tenants/{id}/tokens` issues one (its plaintext shown only then),
//! `GET /v1/tokens` lists them, `POST /v1/tokens/{id}/revoke` ends one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{AdminResult, audit_admin, bad_request, existing, tenant_id};
use crate::domain::TenantId;
use crate::runtime::server::state::AppState;
use crate::store::TokenRecord;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IssueRequest {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub ttl_days: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The plaintext token: shown once, stored nowhere.
    pub token: String,
    #[serde(flatten)]
    pub record: TokenRecord,
}

#[derive(Debug, Deserialize)]
pub struct TokenFilter {
    pub tenant: Option<String>,
}

pub(super) async fn issue_token(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<IssueRequest>>,
) -> AdminResult<(StatusCode, Json<IssuedToken>)> {
    let tenant = existing(&state, &id)?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let ttl_secs = match request.ttl_days {
        Some(0) => return Err(bad_request("ttl_days must be at least 1")),
        Some(days) if days > 3650 => return Err(bad_request("ttl_days must be at most 3650")),
        Some(days) => days * 86_400,
        None => state.token_ttl_secs,
    };
    let label = request.label.unwrap_or_default();
    let issued = issue(&state, &tenant.id, &label, ttl_secs)?;
    tracing::info!(tenant = %tenant.id, token_id = %issued.record.id, "admin: token issued");
    audit_admin(
        &state,
        "token_issue",
        tenant.id.as_str(),
        &serde_json::json!({"token_id": issued.record.id}),
    );
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Issues a token for `tenant`: its plaintext is in the answer and nowhere else.
pub(super) fn issue(
    state: &AppState,
    tenant: &TenantId,
    label: &str,
    ttl_secs: u64,
) -> AdminResult<IssuedToken> {
    let issued = state.authority.issue(
        &state.services.store,
        tenant,
        label,
        ttl_secs,
        state.services.clock.now(),
    )?;
    Ok(IssuedToken {
        token: issued.token.expose_secret().to_owned(),
        record: issued.record,
    })
}

pub(super) async fn list_tokens(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TokenFilter>,
) -> AdminResult<Json<Vec<TokenRecord>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    Ok(Json(state.services.store.tokens(tenant.as_ref())?))
}

pub(super) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<TokenRecord>> {
    let record = state
        .services
        .store
        .revoke_token(&id, state.services.clock.now())?;
    tracing::info!(tenant = %record.tenant, token_id = %record.id, "admin: token revoked");
    audit_admin(
        &state,
        "token_revoke",
        record.tenant.as_str(),
        &serde_json::json!({"token_id": record.id}),
    );
    Ok(Json(record))
}
