//! Tenants and their upstream secrets: `/v1/tenants` (list, add, show, update, set,
//! remove) and `PUT /v1/tenants/{id}/secrets/{kind}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{AdminError, AdminResult, audit_admin, bad_request, existing, tenant_id};
use crate::domain::TenantId;
use crate::runtime::server::state::AppState;
use crate::secrets::SecretKind;
use crate::tenant::{Tenant, TenantPatch, TenantSpec};

/// Upstream secrets are short; this bounds what a caller can make us encrypt and store.
const MAX_SECRET_BYTES: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct NewTenant {
    pub id: String,
    #[serde(flatten)]
    pub spec: TenantSpec,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Kinds of upstream secret stored (names only).
    pub secrets: Vec<String>,
    pub active_tokens: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SecretValue {
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    /// The API's form of the CLI's `--yes`: removal cannot be undone.
    #[serde(default)]
    pub confirm: bool,
}

/// On a single-tenant instance, only its own tenant can be created or set.
pub(super) fn allowed_here(state: &AppState, id: &TenantId) -> AdminResult<()> {
    match &state.pinned {
        Some(pinned) if pinned != id => Err(bad_request(format!(
            "this instance serves only tenant `{pinned}` (STUDIO_MCP_TENANT)"
        ))),
        _ => Ok(()),
    }
}

pub(super) async fn list_tenants(State(state): State<Arc<AppState>>) -> Json<Vec<Tenant>> {
    Json(
        state
            .services
            .store
            .tenants()
            .iter()
            .map(|t| (**t).clone())
            .collect(),
    )
}

pub(super) async fn add_tenant(
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewTenant>,
) -> AdminResult<(StatusCode, Json<Tenant>)> {
    let id = tenant_id(&body.id)?;
    allowed_here(&state, &id)?;
    let tenant = body
        .spec
        .into_tenant(id, state.services.clock.now())
        .map_err(bad_request)?;
    let tenant = state.services.store.add_tenant(tenant)?;
    tracing::info!(tenant = %tenant.id, "admin: tenant added");
    audit_admin(
        &state,
        "tenant_add",
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id}),
    );
    Ok((StatusCode::CREATED, Json((*tenant).clone())))
}

/// Offboards a tenant: revokes every token, deletes its sealed secrets and pending
/// confirmations and its record; its audit history stays.
pub(super) async fn remove_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> AdminResult<Json<crate::store::Removed>> {
    let tenant = existing(&state, &id)?;
    if !query.confirm {
        return Err(bad_request(
            "removing a tenant revokes its tokens and deletes its credentials and cannot be \
             undone; repeat with ?confirm=true (the CLI's --yes)",
        ));
    }
    let removed = state
        .services
        .store
        .remove_tenant(&tenant.id, state.services.clock.now())?;
    state.services.index.forget(&tenant.id);
    tracing::info!(tenant = %tenant.id, tokens_revoked = removed.tokens_revoked, "admin: tenant removed");
    audit_admin(
        &state,
        "tenant_remove",
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id, "tokens_revoked": removed.tokens_revoked, "secrets_deleted": removed.secrets_deleted}),
    );
    Ok(Json(removed))
}

/// Creates or replaces a tenant in one go (`isolated-server tenant set`).
pub(super) async fn set_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(spec): Json<TenantSpec>,
) -> AdminResult<Json<Tenant>> {
    let id = tenant_id(&id)?;
    allowed_here(&state, &id)?;
    let created_at = state
        .services
        .store
        .tenant(&id)
        .map(|t| t.created_at)
        .unwrap_or_else(crate::now_unix);
    let tenant = spec.into_tenant(id, created_at).map_err(bad_request)?;
    write_tenant(&state, tenant, "tenant_set", "admin: tenant set")
}

pub(super) async fn update_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(patch): Json<TenantPatch>,
) -> AdminResult<Json<Tenant>> {
    let current = existing(&state, &id)?;
    let updated = patch.apply(&current).map_err(bad_request)?;
    write_tenant(&state, updated, "tenant_update", "admin: tenant updated")
}

/// Stores `tenant` over its record (set or update), logs `message` and audits `action`.
fn write_tenant(
    state: &AppState,
    tenant: Tenant,
    action: &str,
    message: &str,
) -> AdminResult<Json<Tenant>> {
    let tenant = state.services.store.put_tenant(tenant)?;
    // Its sites may have changed: the resource index must be rebuilt from the new binding.
    state.services.index.forget(&tenant.id);
    tracing::info!(tenant = %tenant.id, "{message}");
    audit_admin(
        state,
        action,
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id}),
    );
    Ok(Json((*tenant).clone()))
}

pub(super) async fn show_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<TenantDetail>> {
    let tenant = existing(&state, &id)?;
    let store = &state.services.store;
    let now = state.services.clock.now();
    let active_tokens = store
        .tokens(Some(&tenant.id))?
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now))
        .count();
    Ok(Json(TenantDetail {
        secrets: store.secret_kinds(&tenant.id)?,
        tenant: (*tenant).clone(),
        active_tokens,
    }))
}

pub(super) async fn set_secret(
    State(state): State<Arc<AppState>>,
    Path((id, kind)): Path<(String, String)>,
    Json(body): Json<SecretValue>,
) -> AdminResult<StatusCode> {
    let tenant = existing(&state, &id)?;
    let kind: SecretKind = kind.parse().map_err(bad_request)?;
    let secret = secret_value(kind, &body.value, "secret")?;
    let sealed = seal(&state, &tenant.id, kind, &secret)?;
    state.services.store.put_secret(&tenant.id, kind, sealed)?;
    state.services.index.forget(&tenant.id);
    tracing::info!(tenant = %tenant.id, kind = %kind, "admin: secret stored");
    audit_admin(
        &state,
        "secret_set",
        tenant.id.as_str(),
        &serde_json::json!({"kind": kind}),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// An upstream secret as given: trimmed, 1 to [`MAX_SECRET_BYTES`] bytes, no control
/// characters. `noun` is what the refusal calls it.
pub(super) fn secret_value(kind: SecretKind, value: &str, noun: &str) -> AdminResult<SecretString> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.chars().any(char::is_control) {
        return Err(bad_request(format!(
            "the {kind} {noun} must be 1-{MAX_SECRET_BYTES} bytes of printable text"
        )));
    }
    Ok(SecretString::from(value.to_owned()))
}

/// `secret` sealed under the master key for `tenant` and `kind`, ready to store.
pub(super) fn seal(
    state: &AppState,
    tenant: &TenantId,
    kind: SecretKind,
    secret: &SecretString,
) -> AdminResult<Vec<u8>> {
    state
        .services
        .master_key
        .seal(tenant, kind, secret)
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
