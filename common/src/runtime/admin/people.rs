//! People and their connections: invites (`POST /v1/tenants/{id}/people`, a new link with
//! `POST /v1/people/{id}/invite`), `/v1/people` and the grants people gave connectors.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{AdminError, AdminResult, audit_admin, bad_request, existing, tenant_id};
use crate::runtime::server::state::{AppState, ConnectorDoor};
use crate::store::people::{self, GrantView, Invite, Person, PersonView, Role};

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
fn connector_door(state: &AppState) -> AdminResult<&ConnectorDoor> {
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
pub(super) struct TenantFilter {
    tenant: Option<String>,
}

pub(super) async fn invite_person(
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
    let ttl = invite_ttl(&state, request.expires_days)?;
    let now = state.services.clock.now();
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
    state.services.store.people().add_person(&person)?;
    let invited = invite(&state, door, &person, now, ttl)?;
    tracing::info!(tenant = %tenant.id, person = %person.id, "admin: person invited");
    audit_admin(
        &state,
        "person_invite",
        tenant.id.as_str(),
        &serde_json::json!({"person": person.id, "role": role.as_str()}),
    );
    Ok((StatusCode::CREATED, Json(invited)))
}

/// `POST /v1/people/{id}/invite`: a new invite link for an existing person (a lost or new
/// device). Their passkeys are forgotten and their sessions end at once; their role and their
/// connections stay (`grant revoke` ends a connection).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReinviteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_days: Option<u64>,
}

pub(super) async fn reinvite_person(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<ReinviteRequest>>,
) -> AdminResult<(StatusCode, Json<Invited>)> {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let door = connector_door(&state)?;
    let ttl = invite_ttl(&state, request.expires_days)?;
    let store = state.services.store.people();
    // A new user handle too: the new passkey carries this server's tag in it.
    let handle = crate::runtime::browser::signin::new_user_handle(&state).to_string();
    let Some(person) = store.reset_passkeys(&id, &handle)? else {
        return Err(no_such("person", &id));
    };
    let invited = invite(&state, door, &person, state.services.clock.now(), ttl)?;
    tracing::info!(tenant = %person.tenant, person = %person.id, "admin: person re-invited");
    audit_admin(
        &state,
        "person_reinvite",
        person.tenant.as_str(),
        &serde_json::json!({"person": person.id}),
    );
    Ok((StatusCode::CREATED, Json(invited)))
}

pub(super) async fn list_people(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TenantFilter>,
) -> AdminResult<Json<Vec<PersonView>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    let people = state.services.store.people().people(tenant.as_ref())?;
    Ok(Json(people.iter().map(PersonView::from).collect()))
}

pub(super) async fn remove_person(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<PersonRemoved>> {
    let Some((person, grants_revoked)) = state
        .services
        .store
        .people()
        .remove_person(&id, state.services.clock.now())?
    else {
        return Err(no_such("person", &id));
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

pub(super) async fn list_grants(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TenantFilter>,
) -> AdminResult<Json<Vec<GrantView>>> {
    let tenant = filter.tenant.as_deref().map(tenant_id).transpose()?;
    let grants = state.services.store.people().grants(tenant.as_ref())?;
    Ok(Json(grants.iter().map(GrantView::from).collect()))
}

pub(super) async fn revoke_grant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<GrantView>> {
    let Some(grant) = state.services.store.people().revoke_grant(
        &id,
        state.services.clock.now(),
        "revoked by the operator",
    )?
    else {
        return Err(no_such("grant", &id));
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

/// How long a new invite link lasts: `expires_days` (1 to 90) or the server's default.
fn invite_ttl(state: &AppState, expires_days: Option<u64>) -> AdminResult<u64> {
    match expires_days {
        Some(0) => Err(bad_request("expires_days must be at least 1")),
        Some(days) if days > 90 => Err(bad_request("expires_days must be at most 90")),
        Some(days) => Ok(days * 86_400),
        None => Ok(state.oauth.invite_ttl_secs),
    }
}

/// A new invite link for `person`, made at `now` and good for `ttl` seconds: the link is in the
/// answer only, the store keeps its hash.
fn invite(
    state: &AppState,
    door: &ConnectorDoor,
    person: &Person,
    now: u64,
    ttl: u64,
) -> AdminResult<Invited> {
    let (secret, hash) = people::new_secret("smi_");
    state.services.store.people().add_invite(
        &hash,
        &Invite {
            person: person.id.clone(),
            tenant: person.tenant.clone(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    Ok(Invited {
        person: PersonView::from(person),
        invite_url: format!("{}/invite/{secret}", door.origin),
        connector_url: door.url.clone(),
        expires_at: now + ttl,
    })
}

/// The refusal for an id that names no `what` here (shown as cleaned, never raw).
fn no_such(what: &str, id: &str) -> AdminError {
    AdminError(
        StatusCode::NOT_FOUND,
        format!(
            "no {what} with id `{}`",
            crate::runtime::oauth::clean_name(id)
        ),
    )
}
