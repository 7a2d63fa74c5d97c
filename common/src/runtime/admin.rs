//! The admin API, served only on the admin listener and authenticated by the admin token in
//! `<data dir>/admin-token`. It never returns a stored token or secret: the one exception is the
//! plaintext of a token at the moment it is issued, which exists nowhere else afterwards.

pub mod client;

use std::sync::Arc;

use crate::domain::TenantId;
use crate::secrets::SecretKind;
use crate::store::approvals::{Approval, ApprovalError};
use crate::store::people::{self, GrantView, Invite, Person, PersonView, Role};
use crate::store::{StoreError, TokenRecord};
use crate::tenant::{Tenant, TenantPatch, TenantSpec};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::runtime::server::state::{AppState, Event};

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
    /// The new MCP token (absent on a dry run).
    pub token: Option<IssuedToken>,
}

#[derive(Debug, Deserialize)]
pub struct TokenFilter {
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub since_ms: Option<u64>,
    pub limit: Option<usize>,
}

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

fn bad_request(message: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, message.into())
}

type AdminResult<T> = Result<T, AdminError>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/server", get(server_info))
        .route("/v1/tenants", get(list_tenants).post(add_tenant))
        .route(
            "/v1/tenants/{id}",
            get(show_tenant)
                .patch(update_tenant)
                .put(set_tenant)
                .delete(remove_tenant),
        )
        .route("/v1/tenants/{id}/secrets/{kind}", put(set_secret))
        .route("/v1/tenants/{id}/tokens", post(issue_token))
        .route("/v1/tokens", get(list_tokens))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/v1/tenants/{id}/people", post(invite_person))
        .route("/v1/people", get(list_people))
        .route("/v1/people/{id}", axum::routing::delete(remove_person))
        .route("/v1/people/{id}/invite", post(reinvite_person))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}/revoke", post(revoke_grant))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}/approve", post(approve_approval))
        .route("/v1/approvals/{id}/deny", post(deny_approval))
        .route("/v1/audit", get(read_audit))
        .route("/v1/onboard", post(onboard))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// `GET /v1/server`: what this server is and where its two doors are, for the CLI (onboard
/// prints the connector URL, or says there is none).
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    /// The static door's MCP endpoint (static bearer tokens).
    pub mcp_url: String,
    /// The connector door's MCP endpoint (OAuth); `None` without one.
    #[serde(default)]
    pub connector_url: Option<String>,
}

async fn server_info(State(state): State<Arc<AppState>>) -> Json<ServerInfo> {
    Json(ServerInfo {
        name: state.spec.name.to_owned(),
        mcp_url: format!("{}{}", state.public_url, crate::config::MCP_PATH),
        connector_url: state.connector.as_ref().map(|d| d.url.clone()),
    })
}

async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::token::bearer);
    let expected = state.admin_token.expose_secret().as_bytes();
    // Start-up refuses an empty admin token; an absent or empty presented one never matches.
    if presented.is_some_and(|p| !expected.is_empty() && bool::from(p.as_bytes().ct_eq(expected))) {
        next.run(request).await
    } else {
        tracing::warn!("refused admin request: bad or missing admin token");
        let mut response =
            AdminError(StatusCode::UNAUTHORIZED, "admin token required".into()).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"studio-mcp-admin\""),
        );
        response
    }
}

/// Records an admin action in the audit log. `subject` names what was acted on (never a value).
fn audit_admin(state: &AppState, action: &str, tenant: &str, subject: &serde_json::Value) {
    state.record(&Event {
        tenant,
        action: &format!("admin:{action}"),
        outcome: "ok",
        person: None,
        client: None,
        subject,
    });
}

/// Prometheus text; scrape with the admin token as a bearer credential.
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        format!(
            "{}# HELP studio_mcp_audit_dropped_total Audit records dropped because the write queue was full.\n# TYPE studio_mcp_audit_dropped_total counter\nstudio_mcp_audit_dropped_total {}\n",
            state.services.metrics.render(
                state
                    .services
                    .store
                    .live_states()
                    .iter()
                    .map(|(id, live)| (id, &live.calls))
            ),
            state.services.store.audit().dropped()
        ),
    )
}

async fn read_audit(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<AuditFilter>,
) -> AdminResult<Json<Vec<crate::audit::AuditRecord>>> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let records = state.services.store.audit().query(
        filter.tenant.as_deref(),
        filter.since_ms.unwrap_or(0),
        limit,
    )?;
    Ok(Json(records))
}

fn tenant_id(raw: &str) -> AdminResult<TenantId> {
    TenantId::parse(raw).map_err(|e| bad_request(e.to_string()))
}

/// On a single-tenant instance, only its own tenant can be created or set.
fn allowed_here(state: &AppState, id: &TenantId) -> AdminResult<()> {
    match &state.pinned {
        Some(pinned) if pinned != id => Err(bad_request(format!(
            "this instance serves only tenant `{pinned}` (STUDIO_MCP_TENANT)"
        ))),
        _ => Ok(()),
    }
}

fn existing(state: &AppState, raw: &str) -> AdminResult<Arc<Tenant>> {
    let id = tenant_id(raw)?;
    state
        .services
        .store
        .tenant(&id)
        .ok_or_else(|| StoreError::NoTenant(id.to_string()).into())
}

async fn list_tenants(State(state): State<Arc<AppState>>) -> Json<Vec<Tenant>> {
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

async fn add_tenant(
    State(state): State<Arc<AppState>>,
    Json(body): Json<NewTenant>,
) -> AdminResult<(StatusCode, Json<Tenant>)> {
    let id = tenant_id(&body.id)?;
    allowed_here(&state, &id)?;
    let tenant = body
        .spec
        .into_tenant(id, crate::now_unix())
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

/// Onboards a client: verifies every credential against its API (the Webflow token must reach
/// the tenant's sites and no other), then stores tenant, sealed secrets and a new token — or,
/// if anything fails, nothing at all.
async fn onboard(
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
        .into_tenant(id.clone(), crate::now_unix())
        .map_err(bad_request)?;
    let mut secrets = Vec::new();
    for (kind, value) in &request.secrets {
        let kind: SecretKind = kind.parse().map_err(bad_request)?;
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.chars().any(char::is_control)
        {
            return Err(bad_request(format!(
                "the {kind} credential must be 1-{MAX_SECRET_BYTES} bytes of printable text"
            )));
        }
        secrets.push((kind, SecretString::from(value.to_owned())));
    }
    let mut verified = Vec::new();
    for (kind, secret) in &secrets {
        (state.spec.verify)(&state.services, &tenant, *kind, secret)
            .await
            .map_err(|why| {
                AdminError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{kind} credential not verified: {why}"),
                )
            })?;
        verified.push(kind.to_string());
    }
    if request.dry_run {
        return Ok((
            StatusCode::OK,
            Json(OnboardResponse {
                tenant,
                verified,
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
    Ok((
        StatusCode::CREATED,
        Json(OnboardResponse {
            tenant,
            verified,
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
        let sealed = state
            .services
            .master_key
            .seal(&tenant.id, *kind, secret)
            .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let previous = store.secret(&tenant.id, *kind)?;
        store.put_secret(&tenant.id, *kind, sealed)?;
        written.push(Written::Secret {
            tenant: tenant.id.clone(),
            kind: *kind,
            previous,
        });
    }
    let issued = state
        .authority
        .issue(
            store,
            &tenant.id,
            label,
            state.token_ttl_secs,
            crate::now_unix(),
        )
        .map_err(|e| match e {
            crate::token::AuthError::Store(e) => AdminError::from(e),
            other => AdminError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    written.push(Written::Token(issued.record.id.clone()));
    let token = IssuedToken {
        token: issued.token.expose_secret().to_owned(),
        record: issued.record,
    };
    Ok(((*tenant).clone(), token))
}

/// Undoes an onboarding's own writes, newest first.
fn roll_back(state: &AppState, written: Vec<Written>) {
    let store = &state.services.store;
    for write in written.into_iter().rev() {
        let undone = match &write {
            Written::Token(id) => store.revoke_token(id, crate::now_unix()).map(drop),
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
            Written::CreatedTenant(id) => store.remove_tenant(id, crate::now_unix()).map(drop),
        };
        if let Err(e) = undone {
            tracing::error!(error = %e, "onboarding rollback step failed");
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    /// The API's form of the CLI's `--yes`: removal cannot be undone.
    #[serde(default)]
    pub confirm: bool,
}

/// Offboards a tenant: revokes every token, deletes its sealed secrets and pending
/// confirmations and its record; its audit history stays.
async fn remove_tenant(
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
        .remove_tenant(&tenant.id, crate::now_unix())?;
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
async fn set_tenant(
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
    let tenant = state.services.store.put_tenant(tenant)?;
    state.services.index.forget(&tenant.id);
    tracing::info!(tenant = %tenant.id, "admin: tenant set");
    audit_admin(
        &state,
        "tenant_set",
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id}),
    );
    Ok(Json((*tenant).clone()))
}

async fn update_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(patch): Json<TenantPatch>,
) -> AdminResult<Json<Tenant>> {
    let current = existing(&state, &id)?;
    let updated = patch.apply(&current).map_err(bad_request)?;
    let tenant = state.services.store.put_tenant(updated)?;
    // Its sites may have changed: the resource index must be rebuilt from the new binding.
    state.services.index.forget(&tenant.id);
    tracing::info!(tenant = %tenant.id, "admin: tenant updated");
    audit_admin(
        &state,
        "tenant_update",
        tenant.id.as_str(),
        &serde_json::json!({"tenant": tenant.id}),
    );
    Ok(Json((*tenant).clone()))
}

async fn show_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<TenantDetail>> {
    let tenant = existing(&state, &id)?;
    let store = &state.services.store;
    let now = crate::now_unix();
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

async fn set_secret(
    State(state): State<Arc<AppState>>,
    Path((id, kind)): Path<(String, String)>,
    Json(body): Json<SecretValue>,
) -> AdminResult<StatusCode> {
    let tenant = existing(&state, &id)?;
    let kind: SecretKind = kind.parse().map_err(bad_request)?;
    let value = body.value.trim();
    if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.chars().any(char::is_control) {
        return Err(bad_request(format!(
            "the {kind} secret must be 1-{MAX_SECRET_BYTES} bytes of printable text"
        )));
    }
    let secret = SecretString::from(value.to_owned());
    let sealed = state
        .services
        .master_key
        .seal(&tenant.id, kind, &secret)
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
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

async fn issue_token(
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
    let issued = state
        .authority
        .issue(
            &state.services.store,
            &tenant.id,
            &label,
            ttl_secs,
            crate::now_unix(),
        )
        .map_err(|e| match e {
            crate::token::AuthError::Store(e) => AdminError::from(e),
            other => AdminError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    tracing::info!(tenant = %tenant.id, token_id = %issued.record.id, "admin: token issued");
    audit_admin(
        &state,
        "token_issue",
        tenant.id.as_str(),
        &serde_json::json!({"token_id": issued.record.id}),
    );
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token: issued.token.expose_secret().to_owned(),
            record: issued.record,
        }),
    ))
}

async fn list_tokens(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TokenFilter>,
) -> AdminResult<Json<Vec<TokenRecord>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    Ok(Json(state.services.store.tokens(tenant.as_ref())?))
}

async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<TokenRecord>> {
    let record = state.services.store.revoke_token(&id, crate::now_unix())?;
    tracing::info!(tenant = %record.tenant, token_id = %record.id, "admin: token revoked");
    audit_admin(
        &state,
        "token_revoke",
        record.tenant.as_str(),
        &serde_json::json!({"token_id": record.id}),
    );
    Ok(Json(record))
}

// ---- people and grants ----

/// `POST /v1/tenants/{id}/people`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct InviteRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_days: Option<u64>,
}

/// The answer: the person, and the invite link (shown only here, once; stored only hashed).
#[derive(Debug, Serialize, Deserialize)]
pub struct Invited {
    pub person: PersonView,
    /// On the connector door's origin, where the person's passkey will live.
    pub invite_url: String,
    /// The URL the person pastes into their assistant's connector settings.
    #[serde(default)]
    pub connector_url: String,
    pub expires_at: u64,
}

/// The connector door people are invited to, or the refusal that says there is none.
fn connector_door(state: &AppState) -> AdminResult<&crate::runtime::server::state::ConnectorDoor> {
    state.connector.as_ref().ok_or_else(|| {
        AdminError(
            StatusCode::CONFLICT,
            "this server has no connector door, so people cannot sign in to it: set \
             STUDIO_MCP_CONNECTOR_URL (and STUDIO_MCP_CONNECTOR_LISTEN) and restart it"
                .into(),
        )
    })
}

/// `DELETE /v1/people/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PersonRemoved {
    pub person: PersonView,
    pub grants_revoked: usize,
}

#[derive(Debug, Default, Deserialize)]
struct TenantFilter {
    tenant: Option<String>,
}

async fn invite_person(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(request): Json<InviteRequest>,
) -> AdminResult<(StatusCode, Json<Invited>)> {
    let tenant = existing(&state, &id)?;
    let door = connector_door(&state)?;
    let name = crate::runtime::oauth::clean_name(&request.name);
    if name.is_empty() {
        return Err(bad_request("name must not be empty"));
    }
    let email = request
        .email
        .map(|e| crate::runtime::oauth::clean_name(&e))
        .filter(|e| !e.is_empty());
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(bad_request(
            "email must be an address such as alex@example.com",
        ));
    }
    let role = match request.role.as_deref() {
        None => Role::Member,
        Some(raw) => Role::parse(raw)
            .ok_or_else(|| bad_request(format!("role `{raw}` is neither member nor approver")))?,
    };
    let ttl = match request.expires_days {
        Some(0) => return Err(bad_request("expires_days must be at least 1")),
        Some(days) if days > 90 => return Err(bad_request("expires_days must be at most 90")),
        Some(days) => days * 86_400,
        None => state.oauth.invite_ttl_secs,
    };
    let now = crate::now_unix();
    let person = Person {
        id: people::new_id("p_"),
        tenant: tenant.id.clone(),
        name,
        email,
        role,
        created_at: now,
        user_handle: crate::runtime::browser::signin::new_user_handle(&state).to_string(),
        passkeys: Vec::new(),
        last_sign_in_at: None,
    };
    let (secret, hash) = people::new_secret("smi_");
    let store = state.services.store.people();
    store.add_person(&person)?;
    store.add_invite(
        &hash,
        &Invite {
            person: person.id.clone(),
            tenant: tenant.id.clone(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    tracing::info!(tenant = %tenant.id, person = %person.id, "admin: person invited");
    audit_admin(
        &state,
        "person_invite",
        tenant.id.as_str(),
        &serde_json::json!({"person": person.id, "role": role.as_str()}),
    );
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            person: PersonView::from(&person),
            invite_url: format!("{}/invite/{secret}", door.origin),
            connector_url: door.url.clone(),
            expires_at: now + ttl,
        }),
    ))
}

/// `POST /v1/people/{id}/invite`: a new invite link for an existing person (a lost or new
/// device). Their passkeys are forgotten and their sessions end at once; their role and their
/// connections stay (`grant revoke` ends a connection).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReinviteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_days: Option<u64>,
}

async fn reinvite_person(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<ReinviteRequest>>,
) -> AdminResult<(StatusCode, Json<Invited>)> {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let door = connector_door(&state)?;
    let ttl = match request.expires_days {
        Some(0) => return Err(bad_request("expires_days must be at least 1")),
        Some(days) if days > 90 => return Err(bad_request("expires_days must be at most 90")),
        Some(days) => days * 86_400,
        None => state.oauth.invite_ttl_secs,
    };
    let store = state.services.store.people();
    // A new user handle too: the new passkey carries this server's tag in it.
    let handle = crate::runtime::browser::signin::new_user_handle(&state).to_string();
    let Some(person) = store.reset_passkeys(&id, &handle)? else {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!(
                "no person with id `{}`",
                crate::runtime::oauth::clean_name(&id)
            ),
        ));
    };
    let now = crate::now_unix();
    let (secret, hash) = people::new_secret("smi_");
    store.add_invite(
        &hash,
        &Invite {
            person: person.id.clone(),
            tenant: person.tenant.clone(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    tracing::info!(tenant = %person.tenant, person = %person.id, "admin: person re-invited");
    audit_admin(
        &state,
        "person_reinvite",
        person.tenant.as_str(),
        &serde_json::json!({"person": person.id}),
    );
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            person: PersonView::from(&person),
            invite_url: format!("{}/invite/{secret}", door.origin),
            connector_url: door.url.clone(),
            expires_at: now + ttl,
        }),
    ))
}

async fn list_people(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TenantFilter>,
) -> AdminResult<Json<Vec<PersonView>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    let people = state.services.store.people().people(tenant.as_ref())?;
    Ok(Json(people.iter().map(PersonView::from).collect()))
}

async fn remove_person(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<PersonRemoved>> {
    let Some((person, grants_revoked)) = state
        .services
        .store
        .people()
        .remove_person(&id, crate::now_unix())?
    else {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!(
                "no person with id `{}`",
                crate::runtime::oauth::clean_name(&id)
            ),
        ));
    };
    tracing::info!(tenant = %person.tenant, person = %person.id, grants_revoked, "admin: person removed");
    audit_admin(
        &state,
        "person_remove",
        person.tenant.as_str(),
        &serde_json::json!({"person": person.id}),
    );
    Ok(Json(PersonRemoved {
        person: PersonView::from(&person),
        grants_revoked,
    }))
}

async fn list_grants(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TenantFilter>,
) -> AdminResult<Json<Vec<GrantView>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    let grants = state.services.store.people().grants(tenant.as_ref())?;
    Ok(Json(grants.iter().map(GrantView::from).collect()))
}

async fn revoke_grant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<GrantView>> {
    let Some(grant) = state.services.store.people().revoke_grant(
        &id,
        crate::now_unix(),
        "revoked by the operator",
    )?
    else {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!(
                "no grant with id `{}`",
                crate::runtime::oauth::clean_name(&id)
            ),
        ));
    };
    tracing::info!(tenant = %grant.tenant, grant = %grant.id, "admin: grant revoked");
    audit_admin(
        &state,
        "grant_revoke",
        grant.tenant.as_str(),
        &serde_json::json!({"grant": grant.id}),
    );
    Ok(Json(GrantView::from(&grant)))
}

// ---- approvals (operator fallback) ----

/// What admin answers show of an approval: everything but nothing secret (arguments are ids,
/// DNS contents and URLs, which the preview shows anyway).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub tenant: String,
    pub tool: String,
    /// `pending`, `expired`, `approved` (not run), `running`, `denied`, `done`, `failed`.
    pub state: String,
    pub preview: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    pub created_at: u64,
    pub expires_at: u64,
}

impl ApprovalView {
    fn of(a: &Approval, now: u64) -> Self {
        use crate::store::approvals::State;
        let (decided_by, outcome) = match &a.state {
            State::Pending => (None, None),
            State::Approved { by, .. } | State::Denied { by, .. } | State::Running { by, .. } => {
                (Some(by.clone()), None)
            }
            State::Done { by, outcome, .. } => (Some(by.clone()), Some(outcome.clone())),
        };
        Self {
            id: a.id.clone(),
            tenant: a.tenant.to_string(),
            tool: a.tool.clone(),
            state: a.standing(now).as_str().to_owned(),
            preview: a.preview.clone(),
            decided_by,
            outcome,
            created_at: a.created_at,
            expires_at: a.expires_at,
        }
    }
}

fn approvals_here(state: &AppState) -> AdminResult<()> {
    if state.spec.approvals {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::NOT_FOUND,
            "this server has no high-risk actions to approve (they live on the isolated instances)"
                .into(),
        ))
    }
}

async fn list_approvals(
    State(state): State<Arc<AppState>>,
) -> AdminResult<Json<Vec<ApprovalView>>> {
    approvals_here(&state)?;
    let now = crate::now_unix();
    let all = state.services.store.approvals().list(None)?;
    Ok(Json(all.iter().map(|a| ApprovalView::of(a, now)).collect()))
}

async fn approve_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<ApprovalView>> {
    decide_approval(&state, &id, true).await
}

async fn deny_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<ApprovalView>> {
    decide_approval(&state, &id, false).await
}

/// The operator decides (audited as `operator`); an approval runs at once.
async fn decide_approval(
    state: &AppState,
    id: &str,
    approve: bool,
) -> AdminResult<Json<ApprovalView>> {
    approvals_here(state)?;
    match crate::runtime::browser::approve::decide_and_run(state, id, approve, "operator").await {
        Ok(a) => Ok(Json(ApprovalView::of(&a, crate::now_unix()))),
        Err(ApprovalError::Store(e)) => Err(e.into()),
        Err(ApprovalError::Unknown) => Err(AdminError(
            StatusCode::NOT_FOUND,
            format!(
                "no approval `{}` on this instance",
                crate::runtime::oauth::clean_name(id)
            ),
        )),
        Err(e) => Err(AdminError(StatusCode::CONFLICT, e.to_string())),
    }
}
