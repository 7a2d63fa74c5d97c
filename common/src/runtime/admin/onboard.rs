//! `POST /v1/onboard`: a new client in one request, every credential verified against its
//! API before anything is stored, and all of it stored or none.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::tenants::{allowed_here, seal, secret_value};
use super::tokens::{IssuedToken, issue};
use super::{AdminError, AdminResult, audit_admin, bad_request, tenant_id};
use crate::domain::TenantId;
use crate::runtime::server::state::AppState;
use crate::secrets::SecretKind;
use crate::store::StoreError;
use crate::tenant::{Tenant, TenantSpec};

/// Everything a new client needs in one request: verified before anything is stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct OnboardRequest {
    pub id: String,
    pub spec: TenantSpec,
    /// Upstream credentials by kind (`webflow`, `plausible`, …). Never logged or returned.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// Verify only; store nothing.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OnboardResponse {
    pub tenant: Tenant,
    /// The kinds of credential that were verified against their APIs.
    pub verified: Vec<String>,
    /// What verification found that did not stop it, such as a Webflow scope some of the
    /// tenant's tools need and the token lacks: one sentence each, naming the scope and tools.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The new MCP token (absent on a dry run).
    pub token: Option<IssuedToken>,
}

/// Onboards a client: verifies every credential against its API (the Webflow token must reach
/// the tenant's sites and no other), then stores tenant, sealed secrets and a new token — or,
/// if anything fails, nothing at all.
pub(super) async fn onboard(
    State(state): State<Arc<AppState>>,
    Json(request): Json<OnboardRequest>,
) -> AdminResult<(StatusCode, Json<OnboardResponse>)> {
    let id = tenant_id(&request.id)?;
    allowed_here(&state, &id)?;
    let store = &state.services.store;
    if state.pinned.is_none() && store.tenant(&id).is_some() {
        return Err(StoreError::TenantExists(id).into());
    }
    let tenant = request
        .spec
        .into_tenant(id.clone(), state.services.clock.now())
        .map_err(bad_request)?;
    let mut secrets = Vec::new();
    for (kind, value) in &request.secrets {
        let kind: SecretKind = kind.parse().map_err(bad_request)?;
        secrets.push((kind, secret_value(kind, value, "credential")?));
    }
    let mut verified = Vec::new();
    let mut warnings = Vec::new();
    for (kind, secret) in &secrets {
        let found = (state.spec.verify)(&state.services, &tenant, *kind, secret)
            .await
            .map_err(|why| {
                AdminError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{kind} credential not verified: {why}"),
                )
            })?;
        warnings.extend(found);
        verified.push(kind.to_string());
    }
    if request.dry_run {
        return Ok((
            StatusCode::OK,
            Json(OnboardResponse {
                tenant,
                verified,
                warnings,
                token: None,
            }),
        ));
    }
    let mut written = Vec::new();
    let stored = store_onboarded(
        &state,
        tenant,
        &secrets,
        request.label.as_deref().unwrap_or("onboard"),
        &mut written,
    );
    let (tenant, issued) = match stored {
        Ok(done) => done,
        Err(e) => {
            // All or nothing, but only this request's part: a tenant another request created
            // meanwhile (the add here then fails) is not this request's to remove.
            roll_back(&state, written);
            return Err(e);
        }
    };
    tracing::info!(tenant = %tenant.id, "admin: tenant onboarded");
    audit_admin(
        &state,
        "onboard",
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id, "kinds": verified}),
    );
    for warning in &warnings {
        tracing::warn!(tenant = %tenant.id, "onboarding: {warning}");
    }
    Ok((
        StatusCode::CREATED,
        Json(OnboardResponse {
            tenant,
            verified,
            warnings,
            token: Some(issued),
        }),
    ))
}

/// A store write an onboarding made, with what it replaced, so that a failure later in the same
/// onboarding undoes exactly its own writes.
enum Written {
    CreatedTenant(TenantId),
    ReplacedTenant(Arc<Tenant>),
    Secret {
        tenant: TenantId,
        kind: SecretKind,
        previous: Option<Vec<u8>>,
    },
    Token(String),
}

fn store_onboarded(
    state: &AppState,
    tenant: Tenant,
    secrets: &[(SecretKind, SecretString)],
    label: &str,
    written: &mut Vec<Written>,
) -> AdminResult<(Tenant, IssuedToken)> {
    let store = &state.services.store;
    let id = tenant.id.clone();
    let tenant = if state.pinned.is_some() {
        // An isolated instance's onboarding replaces its one tenant record.
        let previous = store.tenant(&id);
        let stored = store.put_tenant(tenant)?;
        written.push(match previous {
            Some(previous) => Written::ReplacedTenant(previous),
            None => Written::CreatedTenant(id.clone()),
        });
        stored
    } else {
        let stored = store.add_tenant(tenant)?;
        written.push(Written::CreatedTenant(id.clone()));
        stored
    };
    state.services.index.forget(&tenant.id);
    for (kind, secret) in secrets {
        let sealed = seal(state, &tenant.id, *kind, secret)?;
        let previous = store.secret(&tenant.id, *kind)?;
        store.put_secret(&tenant.id, *kind, sealed)?;
        written.push(Written::Secret {
            tenant: tenant.id.clone(),
            kind: *kind,
            previous,
        });
    }
    let token = issue(state, &tenant.id, label, state.token_ttl_secs)?;
    written.push(Written::Token(token.record.id.clone()));
    Ok(((*tenant).clone(), token))
}

/// Undoes an onboarding's own writes, newest first.
fn roll_back(state: &AppState, written: Vec<Written>) {
    let store = &state.services.store;
    for write in written.into_iter().rev() {
        let undone = match &write {
            Written::Token(id) => store.revoke_token(id, state.services.clock.now()).map(drop),
            Written::Secret {
                tenant,
                kind,
                previous: Some(sealed),
            } => store.put_secret(tenant, *kind, sealed.clone()),
            Written::Secret {
                tenant,
                kind,
                previous: None,
            } => store.delete_secret(tenant, *kind),
            Written::ReplacedTenant(previous) => store.put_tenant((**previous).clone()).map(drop),
            Written::CreatedTenant(id) => store
                .remove_tenant(id, state.services.clock.now())
                .map(drop),
        };
        if let Err(e) = undone {
            tracing::error!(error = %e, "onboarding rollback step failed");
        }
    }
}
