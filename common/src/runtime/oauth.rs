//! OAuth 2.1 for connectors (Claude's and ChatGPT's), as the MCP authorization spec
//! (2025-11-25, 2026-07-28) asks of a remote server that is its own authorization server:
//!
//! - all of it lives on the connector door's own origin: the protected resource is its `/mcp`
//!   (RFC 9728 metadata at `/.well-known/oauth-protected-resource/mcp`, which Claude Desktop asks
//!   for, and at the root form); the static door's origin never advertises any of this;
//! - RFC 8414 metadata at `/.well-known/oauth-authorization-server`; the endpoints are at the
//!   origin's root (`/authorize`, `/token`, `/register`, `/revoke`), where claude.ai looks for
//!   them whatever the metadata says;
//! - clients are identified by a Client ID Metadata Document (an https `client_id`, fetched
//!   under `client_metadata`'s limits) or registered dynamically (RFC 7591, rate-limited; unused
//!   registrations expire after an hour); public clients only, PKCE `S256` only;
//! - the audience is this server's connector URL (RFC 8707 `resource`): tokens exist only in
//!   this server's store, and each carries its audience, so a token made for the shared server
//!   means nothing to an isolated instance and the other way round.
//!
//! Codes, access and refresh tokens are 32 random bytes, stored only as SHA-256 digests
//! (`store::people`). Access tokens live `access_ttl_secs`; refresh tokens rotate on every use
//! and a rotated-out one presented again revokes its grant.

pub mod authorize;
pub mod client_metadata;
pub mod error;
pub mod token;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use self::error::{ErrorCode, OAuthError, no_store};
pub use self::token::pkce_matches;
use crate::runtime::server::source::Source;
use crate::runtime::server::state::{AppState, Event};
use crate::store::people::{self, RegisteredClient};

/// The one scope: the connection may use the server's tools for the person's tenant.
pub const SCOPE: &str = "mcp";
/// A dynamic registration never used for an authorization is deleted after this: a connector
/// registers and sends its person to sign in at once, so an hour is ample.
pub const UNUSED_CLIENT_TTL_SECS: u64 = 3_600;
/// What [`is_doctor_client`] looks for: the start of `doctor`'s own registrations' names
/// (`ops::doctor::DOCTOR_CLIENT_NAME`).
pub const DOCTOR_CLIENT_PREFIX: &str = "studio-mcp doctor";
/// An unused registration made by `doctor` is dropped after this, so running it every few
/// minutes from a monitor never fills the server's cap on waiting registrations.
pub const DOCTOR_CLIENT_TTL_SECS: u64 = 300;
/// Whether a registration is one of `doctor`'s own (by its `client_name`). Anyone may register
/// under that name; all it buys them is a shorter life.
pub fn is_doctor_client(name: Option<&str>) -> bool {
    name.is_some_and(|n| n.starts_with(DOCTOR_CLIENT_PREFIX))
}

/// How long a registration may wait unused: an hour, or minutes for `doctor`'s own checks.
pub fn unused_client_ttl(client: &RegisteredClient) -> u64 {
    if is_doctor_client(client.client_name.as_deref()) {
        DOCTOR_CLIENT_TTL_SECS
    } else {
        UNUSED_CLIENT_TTL_SECS
    }
}

/// Largest registration, token or revocation request read.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// This server's connector URL: the resource (and audience) of every token it issues.
pub fn resource_url(state: &AppState) -> Option<String> {
    state.connector.as_ref().map(|door| door.url.clone())
}

/// Where the connector's protected resource metadata is: the path-suffixed form, which Claude
/// Desktop asks for first (RFC 9728 §3.1: the resource's path after the well-known name).
pub fn resource_metadata_url(state: &AppState) -> Option<String> {
    state.connector.as_ref().map(|door| {
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            door.origin,
            crate::config::MCP_PATH
        )
    })
}

/// The connector's origin: the issuer, and where every endpoint lives.
fn issuer(state: &AppState) -> Option<&str> {
    state.connector.as_ref().map(|door| door.origin.as_str())
}

/// The answer of an OAuth endpoint on a server without a connector door (never routed there;
/// a defence should a router ever mount one).
fn no_connector() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidRequest,
        "this server has no connector door (STUDIO_MCP_CONNECTOR_URL)",
    )
}

/// The endpoints clients call: metadata, registration, token, revocation.
pub fn api_router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/register", post(register).options(preflight))
        .route("/token", post(token::token).options(preflight))
        .route("/revoke", post(token::revoke).options(preflight))
        .route_layer(axum::middleware::from_fn(crate::trace::http_server))
}

/// The page a person's browser opens.
pub fn browser_router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/authorize", get(authorize::show).post(authorize::decide))
        .route_layer(axum::middleware::from_fn(crate::trace::http_server))
}

/// Metadata and the token, registration and revocation endpoints are called from anywhere,
/// browsers included (a web-based MCP client), without cookies: any origin may read them.
fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, mcp-protocol-version"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    response
}

async fn preflight() -> Response {
    cors(StatusCode::NO_CONTENT.into_response())
}

async fn resource_metadata(State(state): State<Arc<AppState>>) -> Response {
    let (Some(resource), Some(issuer)) = (resource_url(&state), issuer(&state)) else {
        return no_connector().into_response();
    };
    cors(
        Json(json!({
            "resource": resource,
            "authorization_servers": [issuer],
            "scopes_supported": [SCOPE],
            "bearer_methods_supported": ["header"],
            "resource_name": state.spec.title,
        }))
        .into_response(),
    )
}

async fn server_metadata(State(state): State<Arc<AppState>>) -> Response {
    let Some(base) = issuer(&state) else {
        return no_connector().into_response();
    };
    cors(
        Json(json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"),
            "revocation_endpoint": format!("{base}/revoke"),
            "scopes_supported": [SCOPE],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }))
        .into_response(),
    )
}

/// A refusal anyone can cause without holding anything (an unknown code or refresh token, a
/// registration over its limit): counted and logged sampled, never audited one by one, so a
/// flood of them cannot grow the audit log. Refusals that spend something real (a code
/// replayed, a refresh token used twice: each revokes a grant) stay audited.
fn anonymous_refusal(state: &AppState, refusal: &str) {
    state.services.metrics.record_oauth_refusal(refusal);
    if let Some(suppressed) = state.refusals.tick() {
        tracing::info!(
            refusal,
            suppressed,
            "refused an anonymous OAuth request (at most one line per 10 s)"
        );
    }
}

// ---- clients ----

/// A client as far as authorization needs it.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
}

/// Finds the client named by `client_id`: its metadata document (an https URL) or its dynamic
/// registration. The error is a sentence a person can read.
pub async fn resolve_client(state: &AppState, client_id: &str) -> Result<Client, String> {
    if client_id.is_empty() || client_id.len() > 2048 {
        return Err("the request names no valid client_id".into());
    }
    if client_metadata::ClientMetadataFetcher::is_metadata_url(client_id) {
        let metadata = state
            .client_metadata
            .fetch(client_id)
            .await
            .map_err(|e| e.to_string())?;
        let host = reqwest::Url::parse(client_id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        return Ok(Client {
            id: client_id.to_owned(),
            name: metadata.client_name.clone().unwrap_or(host),
            redirect_uris: metadata.redirect_uris.clone(),
        });
    }
    let now = state.services.clock.now();
    let live = |c: &RegisteredClient| {
        c.used_at.is_some() || c.created_at.saturating_add(unused_client_ttl(c)) > now
    };
    match state.services.store.people().client(client_id) {
        Ok(Some(client)) if live(&client) => Ok(Client {
            id: client.client_id.clone(),
            name: client
                .client_name
                .clone()
                .unwrap_or_else(|| "an unnamed application".into()),
            redirect_uris: client.redirect_uris,
        }),
        Ok(_) => Err(
            "this application is not registered here (its registration may have expired); \
             connect again from the application"
                .into(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "store unavailable resolving a client");
            Err("the server's store is unavailable; try again shortly".into())
        }
    }
}

// ---- dynamic client registration (RFC 7591) ----

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

fn registration_error(description: impl Into<String>) -> Response {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description).into_response()
}

async fn register(
    State(state): State<Arc<AppState>>,
    source: Option<axum::Extension<Source>>,
    body: axum::body::Bytes,
) -> Response {
    // Each source within its budget, and all of them within the server's: one client cannot
    // keep every other connector from registering, and many cannot flood the store.
    let source = source.map_or(Source::Unknown, |s| s.0);
    let limited = state
        .registrations
        .take(&source, state.registrations_per_min, 60.0)
        .map_err(|retry| (retry, "source"))
        .and_then(|()| {
            state
                .registrations_global
                .take(&(), state.registrations_global_per_min, 60.0)
                .map_err(|retry| (retry, "global"))
        });
    if let Err((retry, which)) = limited {
        anonymous_refusal(&state, &format!("register:rate_limited_{which}"));
        let why = if which == "source" {
            "too many registrations from your network address"
        } else {
            "too many registrations on this server"
        };
        return crate::runtime::server::source::too_many(retry, why);
    }
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return registration_error(format!("the registration is not valid JSON: {e}")),
    };
    if registration.redirect_uris.is_empty() || registration.redirect_uris.len() > 10 {
        return registration_error("redirect_uris must list between 1 and 10 URIs");
    }
    for uri in &registration.redirect_uris {
        if let Err(why) = client_metadata::check_redirect_uri(uri) {
            return registration_error(format!("redirect URI `{uri}`: {why}"));
        }
    }
    if registration
        .grant_types
        .as_ref()
        .is_some_and(|g| !g.iter().any(|g| g == "authorization_code"))
    {
        return registration_error("grant_types must include authorization_code");
    }
    if registration
        .response_types
        .as_ref()
        .is_some_and(|r| !r.iter().any(|r| r == "code"))
    {
        return registration_error("response_types must include code");
    }
    // Only public clients: a client asking for a secret is registered without one (RFC 7591
    // lets the server replace requested metadata; the answer says what was registered).
    let _ = registration.token_endpoint_auth_method;
    let name = registration
        .client_name
        .map(|n| clean_name(&n))
        .filter(|n| !n.is_empty());
    let people = state.services.store.people();
    let now = state.services.clock.now();
    // At most this many wait unused: a new one beyond takes the oldest one's place, so a full
    // cap never refuses a connector (STUDIO_MCP_MAX_UNUSED_REGISTRATIONS).
    let max = usize::try_from(state.oauth.max_unused_registrations).unwrap_or(usize::MAX);
    match people.make_room_for_client(max, now, unused_client_ttl) {
        Ok(0) => {}
        Ok(evicted) => {
            state
                .services
                .metrics
                .record_oauth_refusal_n("register:evicted_oldest_unused", evicted);
            if let Some(suppressed) = state.refusals.tick() {
                tracing::warn!(
                    evicted,
                    suppressed,
                    max,
                    "registrations waiting unused reached the cap: dropped the oldest (at most one line per 10 s)"
                );
            }
        }
        Err(e) => return OAuthError::unavailable(&e).into_response(),
    }
    let client = RegisteredClient {
        client_id: people::new_id("dcr_"),
        client_name: name,
        redirect_uris: registration.redirect_uris,
        created_at: now,
        used_at: None,
    };
    if let Err(e) = people.add_client(&client) {
        return OAuthError::unavailable(&e).into_response();
    }
    state.record(&Event {
        tenant: "oauth",
        action: "oauth:register",
        outcome: "ok",
        person: None,
        client: Some(&client.client_id),
        subject: &json!({ "client": client.client_id }),
    });
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "client_id": client.client_id,
            "client_id_issued_at": client.created_at,
            "client_name": client.client_name,
            "redirect_uris": client.redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": SCOPE,
        })),
    )
        .into_response();
    no_store(response.headers_mut());
    cors(response)
}

/// A name someone else chose (a registered `client_name`, a person's name from the operator),
/// as we keep and show it: the one cleaning metadata documents' names get too
/// ([`crate::text::clean_name`]: nothing a person would not see, bidi controls included);
/// empty if nothing is left.
pub fn clean_name(name: &str) -> String {
    crate::text::clean_name(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(name: Option<&str>) -> RegisteredClient {
        RegisteredClient {
            client_id: "c1".into(),
            client_name: name.map(str::to_owned),
            redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
            created_at: 0,
            used_at: None,
        }
    }

    #[test]
    fn an_unused_registration_waits_an_hour_and_doctors_own_minutes() {
        assert_eq!(unused_client_ttl(&registered(Some("Claude"))), 3_600);
        assert_eq!(unused_client_ttl(&registered(None)), 3_600);
        let doctor = registered(Some(crate::runtime::ops::doctor::DOCTOR_CLIENT_NAME));
        assert_eq!(unused_client_ttl(&doctor), DOCTOR_CLIENT_TTL_SECS);
    }

    #[test]
    fn a_name_someone_else_chose_loses_what_a_person_would_not_see() {
        assert_eq!(clean_name("Claude\u{202E}evil"), "Claudeevil");
        assert_eq!(clean_name("  ChatGPT \u{200B} "), "ChatGPT");
        assert_eq!(clean_name("\u{0007}\u{202E}"), "");
    }
}
