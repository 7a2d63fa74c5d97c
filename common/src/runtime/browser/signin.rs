//! People in a browser: an invite link registers a passkey, a passkey signs in, and a short
//! session cookie remembers it. No passwords anywhere.
//!
//! - `GET /invite/{secret}` shows who is invited; `POST …/options` and `…/finish` run the
//!   WebAuthn registration and consume the invite (once), then sign the person in.
//! - `GET /signin?next=…` and `POST /signin/options|finish` sign in with a discoverable passkey
//!   (no user name typed): the passkey names its person by the user handle it was made with.
//! - `POST /signout` ends the session.
//!
//! The invite flow is `invite.rs`, sign-in and sign-out `passkey.rs`; this file holds the
//! router, the sessions, the page helpers and the ceremony steps both flows take.
//!
//! Between a ceremony's two requests its state travels sealed with the browser (`ceremony.rs`):
//! the anonymous `…/options` stores nothing, and `…/finish` may reach another replica. Only a
//! ceremony that completes is recorded, so that it completes once.
//!
//! The session cookie is `HttpOnly`, `SameSite=Lax` (the authorize request arrives by a
//! top-level navigation from the client's site, which `Strict` would strip), `Secure` and
//! `__Host-` prefixed when the public URL is https, and lives `session_ttl_secs`. Only the
//! SHA-256 of the session id is stored; the CSRF token of a form is derived from the session id,
//! so it is never stored either and a page of another site cannot know it.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use webauthn_rs::prelude::{Passkey, Url, Uuid, Webauthn, WebauthnBuilder};

use crate::domain::TenantId;
use crate::runtime::browser::pages::{self, MessageKind, MessagePage};
use crate::runtime::server::state::AppState;
use crate::store::StoreError;
use crate::store::people::{self, Person, Session};

mod ceremony;
mod invite;
mod passkey;
use ceremony::{Kind, Refused};
pub use passkey::signin_response;

/// Largest JSON body the passkey endpoints read.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The relying party for this server's public URL, or why passkeys cannot work here (WebAuthn
/// needs a domain name: `localhost` works over http, an IP address does not).
pub fn relying_party(public_url: &str, name: &str) -> Result<Webauthn, String> {
    let origin = Url::parse(public_url).map_err(|e| format!("{public_url}: {e}"))?;
    let host = origin.host_str().unwrap_or_default();
    if host.is_empty() || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "passkeys need the public URL to name a host, not an IP address ({public_url}); \
             use e.g. http://localhost:{} for a local demo",
            origin.port_or_known_default().unwrap_or(80)
        ));
    }
    WebauthnBuilder::new(host, &origin)
        .and_then(|b| b.rp_name(name).build())
        .map_err(|e| format!("passkeys cannot work with {public_url}: {e}"))
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/invite/{secret}", get(invite::invite_page))
        .route("/invite/{secret}/options", post(invite::register_options))
        .route("/invite/{secret}/finish", post(invite::register_finish))
        .route("/signin", get(passkey::signin_page))
        .route("/signin/options", post(passkey::signin_options))
        .route("/signin/finish", post(passkey::signin_finish))
        .route("/signout", post(passkey::signout))
        .route("/assets/passkey.js", get(passkey_js))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/", get(home))
}

// ---- sessions ----

/// A signed-in person.
pub struct SignedIn {
    pub person: Person,
    pub session: [u8; 32],
    /// The CSRF token forms of this session carry.
    pub csrf: String,
}

impl SignedIn {
    /// Whether a submitted CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// This server's session cookie: a name of its own, so that two servers on one host name
/// (the local demo: every server on `localhost`; cookies ignore ports) never read or
/// overwrite each other's session.
fn cookie_name(state: &AppState) -> String {
    let prefix = if https(state) { "__Host-" } else { "" };
    match &state.pinned {
        Some(tenant) => format!("{prefix}studio_mcp_isolated_{tenant}_session"),
        None => format!("{prefix}studio_mcp_shared_session"),
    }
}

fn https(state: &AppState) -> bool {
    state.connector.as_ref().is_some_and(|d| d.is_https())
}

/// "studio-mcp shared" or "studio-mcp isolated": how a person tells this server's passkeys
/// from another's when a browser offers both.
pub fn server_label(state: &AppState) -> &'static str {
    if state.spec.single_tenant {
        "studio-mcp isolated"
    } else {
        "studio-mcp shared"
    }
}

/// Marks a WebAuthn user handle as made by a studio-mcp server (bytes 6-7 of a version-8
/// UUID); bytes 0-5 then name which server (`server_tag`).
const HANDLE_MARK: [u8; 2] = [0x85, 0x3c];

/// Six bytes naming this server: kind, tenant (an isolated instance) and connector origin.
fn server_tag(state: &AppState) -> [u8; 6] {
    let mut h = Sha256::new();
    h.update(b"studio-mcp server\0");
    h.update(state.spec.name.as_bytes());
    h.update(b"\0");
    h.update(state.pinned.as_ref().map_or("", |t| t.as_str()).as_bytes());
    h.update(b"\0");
    h.update(
        state
            .connector
            .as_ref()
            .map_or("", |d| d.origin.as_str())
            .as_bytes(),
    );
    let digest = h.finalize();
    let mut tag = [0u8; 6];
    tag.copy_from_slice(&digest[..6]);
    tag
}

/// A new person's WebAuthn user handle: random, carrying this server's tag, so that a sign-in
/// with another server's passkey can say exactly that.
pub fn new_user_handle(state: &AppState) -> Uuid {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[..6].copy_from_slice(&server_tag(state));
    bytes[6..8].copy_from_slice(&HANDLE_MARK);
    bytes[8] = 0x80 | (bytes[8] & 0x3f); // RFC 9562 variant
    Uuid::from_bytes(bytes)
}

/// Whether `handle` was made by a studio-mcp server other than this one.
fn other_servers_handle(state: &AppState, handle: &Uuid) -> bool {
    let bytes = handle.as_bytes();
    bytes[6..8] == HANDLE_MARK && bytes[..6] != server_tag(state)
}

fn csrf_for(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"studio-mcp csrf\0");
    h.update(session_secret.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The person signed in on this request, if any.
pub fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<SignedIn>, StoreError> {
    let name = cookie_name(state);
    let name = name.as_str();
    let secret = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned());
    let Some(secret) = secret.filter(|s| s.len() <= 100) else {
        return Ok(None);
    };
    let hash = people::digest(&secret);
    let store = state.services.store.people();
    let Some(session) = store.session(&hash, state.services.clock.now())? else {
        return Ok(None);
    };
    let Some(person) = store.person(&session.person)? else {
        return Ok(None);
    };
    Ok(Some(SignedIn {
        person,
        session: hash,
        csrf: csrf_for(&secret),
    }))
}

/// The signed-in person, or the page to answer instead: the sign-in page (with `notice`) that
/// comes back to `next`, or the store-unavailable page.
pub fn require_signed_in(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    notice: Option<&str>,
) -> Result<SignedIn, Box<Response>> {
    match signed_in(state, headers) {
        Ok(Some(me)) => Ok(me),
        Ok(None) => Err(Box::new(signin_response(state, next, notice))),
        Err(e) => Err(Box::new(unavailable(state, &e))),
    }
}

/// Starts a session for `person`: the `Set-Cookie` value.
fn start_session(state: &AppState, person: &Person) -> Result<HeaderValue, StoreError> {
    let (secret, hash) = people::new_secret("sms_");
    let now = state.services.clock.now();
    let ttl = state.oauth.session_ttl_secs;
    state.services.store.people().add_session(
        &hash,
        &Session {
            person: person.id.clone(),
            tenant: person.tenant.clone(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    let secure = if https(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}{secure}",
        cookie_name(state)
    ))
    .map_err(|e| StoreError::Io(e.to_string()))
}

fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if https(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(state)
    ))
    .unwrap_or(HeaderValue::from_static(""))
}

// ---- pages ----

/// An HTML page; [`pages::security_headers`] adds what every page carries.
pub fn page(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

pub fn message(
    state: &AppState,
    status: StatusCode,
    kind: MessageKind,
    title: &str,
    body: &str,
) -> Response {
    page(
        status,
        pages::message_page(&MessagePage {
            server_name: server_name(state),
            title: title.to_owned(),
            body: body.to_owned(),
            link: None,
            kind,
        }),
    )
}

pub fn server_name(state: &AppState) -> String {
    state.spec.title.to_owned()
}

/// A tenant's name as people see it on the pages (its id once it is gone).
pub fn tenant_name(state: &AppState, tenant: &TenantId) -> String {
    state
        .services
        .store
        .tenant(tenant)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| tenant.to_string())
}

/// The page for an unexpected store failure: nothing happened, try again.
pub fn unavailable(state: &AppState, e: &StoreError) -> Response {
    tracing::error!(error = %e, "store unavailable on a sign-in page");
    message(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        MessageKind::Problem,
        "Something went wrong on our side",
        "Nothing was changed. Please try again in a minute; if it keeps happening, tell your studio.",
    )
}

fn no_passkeys(state: &AppState) -> Response {
    message(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        MessageKind::Problem,
        "Passkeys are not available on this server",
        "This server is not reachable under a domain name, which passkeys need. Tell your studio; \
         nothing was changed.",
    )
}

fn json_error(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

/// A path on this server to go to after sign-in; anything else becomes `/`.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 4096
        && !next.chars().any(char::is_control);
    if ok { next.to_owned() } else { "/".to_owned() }
}

async fn passkey_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pages::PASSKEY_JS,
    )
        .into_response()
}

#[derive(Deserialize)]
struct HomeQuery {
    #[serde(default)]
    welcome: Option<String>,
}

/// `/`: who is signed in and how to connect, or the sign-in page.
async fn home(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HomeQuery>,
    headers: HeaderMap,
) -> Response {
    let me = match require_signed_in(&state, &headers, "/", None) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let tenant = tenant_name(&state, &me.person.tenant);
    let connector = state
        .connector
        .as_ref()
        .map_or("", |door| door.url.as_str());
    let title = if q.welcome.is_some() {
        "Passkey created".to_owned()
    } else {
        format!("Signed in as {}", me.person.name)
    };
    page(
        StatusCode::OK,
        pages::message_page(&MessagePage {
            server_name: server_name(&state),
            title,
            body: format!(
                "You are signed in as {} for {tenant}. To use {tenant}'s data from Claude: \
                 Settings → Connectors → Add custom connector, and paste {connector} . In \
                 ChatGPT: Settings → Connectors → Create, with the same URL. When the assistant \
                 asks you to sign in, you will come back here and confirm with your passkey.",
                me.person.name
            ),
            link: None,
            kind: MessageKind::Success,
        }),
    )
}

// ---- ceremony steps both flows take ----

fn stored_passkeys(person: &Person) -> Vec<Passkey> {
    person
        .passkeys
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

/// Answers a ceremony's first step: `options` for the browser, with the ceremony's state sealed
/// into its `ceremony` string. Nothing is stored, however many are started (each source's
/// budget is a route layer, `routes::per_source_limit`; the store must not depend on it).
fn start_ceremony<T: serde::Serialize>(
    state: &AppState,
    kind: Kind,
    invite: Option<&[u8; 32]>,
    library_state: &T,
    expires_at: u64,
    options: serde_json::Value,
) -> Response {
    let sealed = ceremony::seal(
        &state.services.master_key,
        &server_tag(state),
        kind,
        invite,
        library_state,
        expires_at,
    );
    let token = match sealed {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "passkey ceremony could not be sealed");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The passkey step could not start. Please try again.",
            );
        }
    };
    let mut body = options;
    if let Some(map) = body.as_object_mut() {
        map.insert("ceremony".into(), json!(token));
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn store_down(e: &StoreError) -> String {
    tracing::error!(error = %e, "store unavailable during a passkey step");
    "Something went wrong on our side; nothing was changed. Please try again in a minute.".into()
}

#[derive(Deserialize)]
struct Finish<C> {
    ceremony: String,
    credential: C,
}

/// A finish step's relying party and the browser's answer, or the answer to send back instead:
/// passkeys are not available here, or the browser's answer cannot be read.
fn read_finish<'a, C: serde::de::DeserializeOwned>(
    state: &'a AppState,
    body: &[u8],
) -> Result<(&'a Webauthn, Finish<C>), Box<Response>> {
    let Some(webauthn) = state.passkeys.as_ref() else {
        return Err(Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys are not available",
        )));
    };
    let Ok(finish) = serde_json::from_slice::<Finish<C>>(body) else {
        return Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "The browser's answer could not be read. Please press the button again.",
        )));
    };
    Ok((webauthn, finish))
}

/// The words for a ceremony's finish refused before any passkey is checked: what happened and
/// what to do, the same for either ceremony but its name.
fn refused_step(kind: Kind, why: Refused) -> Response {
    let step = match kind {
        Kind::SignIn => "sign-in step",
        Kind::Register => "passkey step",
    };
    let what = match why {
        Refused::Unreadable => "could not be read (it may have been cut short or changed)",
        Refused::Expired => "expired",
        Refused::Used => "was already used",
    };
    json_error(
        StatusCode::BAD_REQUEST,
        &format!("This {step} {what}. Please press the button again."),
    )
}

/// Opens the browser's `ceremony` string as `kind` (no store write), and refuses one already
/// completed early, before any passkey is checked: a replayed sign-in would otherwise fail on
/// its signature counter and read as a copied passkey.
fn open_ceremony<T: serde::de::DeserializeOwned>(
    state: &AppState,
    token: &str,
    kind: Kind,
) -> Result<ceremony::Opened<T>, Box<Response>> {
    let opened = ceremony::open(
        &state.services.master_key,
        &server_tag(state),
        kind,
        token,
        state.services.clock.now(),
    )
    .map_err(|why| Box::new(refused_step(kind, why)))?;
    match state.services.store.people().ceremony_spent(&opened.id) {
        Ok(false) => Ok(opened),
        Ok(true) => Err(Box::new(refused_step(kind, Refused::Used))),
        Err(e) => Err(Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &store_down(&e),
        ))),
    }
}

/// Records a ceremony that passed every check as completed, once among any number of
/// concurrent or replayed finishes on any replica; `Err` is the answer for the others.
fn spend_ceremony(
    state: &AppState,
    id: &[u8; 16],
    expires_at: u64,
    kind: Kind,
) -> Result<(), Box<Response>> {
    let keep_until = expires_at.saturating_add(ceremony::SKEW_SECS);
    match state.services.store.people().spend_ceremony(id, keep_until) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Box::new(refused_step(kind, Refused::Used))),
        Err(e) => Err(Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &store_down(&e),
        ))),
    }
}
