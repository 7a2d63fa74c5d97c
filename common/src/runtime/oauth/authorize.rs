//! `/authorize`: the person's side of connecting a client. `GET` checks the request, asks the
//! person to sign in if needed, then shows the consent page; `POST` (the consent form) checks it
//! all again, with the session's CSRF token, and answers the client's redirect URI with a code.
//!
//! Every problem with the request is a page for the person and nothing redirects: a registered
//! redirect URI is not trusted until a signed-in person has seen the consent for its client
//! (anyone can register one). Only the person's decision goes back to the client, on that URI
//! (with `state` and `iss`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ErrorCode;
use super::{Client, SCOPE, resolve_client, resource_url};
use crate::runtime::browser::pages::{self, MessageKind};
use crate::runtime::browser::signin::{self, SignedIn};
use crate::runtime::server::state::{AppState, Event};
use crate::store::people::{self, AuthCode, TicketKind};

/// How long a code waits for its exchange.
const CODE_TTL_SECS: u64 = 120;
/// How long a consent page may wait for its click.
const CONSENT_TTL_SECS: u64 = 600;

/// The authorization request's parameters, as sent (each optional until checked).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Params {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// The consent form: the request's parameters plus the session's CSRF token, the tenant the
/// page was shown for, and the decision.
#[derive(Debug, Default, Deserialize)]
pub struct ConsentForm {
    #[serde(flatten)]
    params: Params,
    #[serde(default)]
    csrf: String,
    /// The single-use ticket the consent page was rendered with.
    #[serde(default)]
    consent: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    decision: String,
}

/// A request whose client and redirect URI are good.
struct Checked {
    client: Client,
    redirect_uri: String,
    params: Params,
}

/// Why a request cannot go on: always a page for the person, never a redirect. With dynamic
/// registration anyone can register any https redirect URI, so a registered one is not yet
/// trusted: redirecting an error before a signed-in person has seen the consent for that
/// client would make `/authorize` an open redirect (RFC 9700 §4.11.2). Only the person's own
/// decision on the consent page goes back to the client.
struct Refusal(String);

async fn check(state: &AppState, params: Params) -> Result<Checked, Refusal> {
    let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Refusal(
            "The application did not say who it is (the request has no client_id).".into(),
        ));
    };
    let client = resolve_client(state, client_id)
        .await
        .map_err(|why| Refusal(format!("The application could not be identified: {why}.")))?;
    let Some(redirect_uri) = params.redirect_uri.clone().filter(|r| !r.is_empty()) else {
        return Err(Refusal(
            "The application did not say where to return to (the request has no redirect_uri)."
                .into(),
        ));
    };
    // Exactly one of the registered URIs, character for character.
    if !client.redirect_uris.iter().any(|r| r == &redirect_uri) {
        return Err(Refusal(format!(
            "The application asked to send you back to an address it did not register ({}). For \
             your safety you were not sent there.",
            super::clean_name(&redirect_uri)
        )));
    }
    let audience = resource_url(state).unwrap_or_default();
    check_params(&params, &audience)?;
    Ok(Checked {
        client,
        redirect_uri,
        params,
    })
}

/// The rest of an authorization request, once its client and redirect URI are known: PKCE
/// `S256` with a well-shaped challenge, `response_type=code`, the resource (if named) this
/// server's `audience`, the scope (if named) `mcp`.
fn check_params(params: &Params, audience: &str) -> Result<(), Refusal> {
    let redirect = |error: ErrorCode, description: &str| {
        Refusal(format!(
            "The application's request is not valid: {description} ({error})."
        ))
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(redirect(
            ErrorCode::UnsupportedResponseType,
            "response_type must be code",
        ));
    }
    let Some(challenge) = params.code_challenge.as_deref() else {
        return Err(redirect(
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE with S256)",
        ));
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return Err(redirect(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256 (plain is not accepted)",
        ));
    }
    let shaped = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return Err(redirect(
            ErrorCode::InvalidRequest,
            "code_challenge must be the 43-character base64url SHA-256 of the verifier",
        ));
    }
    if params.resource.as_deref().is_some_and(|r| r != audience) {
        return Err(redirect(
            ErrorCode::InvalidTarget,
            &format!("resource must be this server's connector URL, {audience}"),
        ));
    }
    if params
        .scope
        .as_deref()
        .is_some_and(|s| s.split_whitespace().any(|s| s != SCOPE))
    {
        return Err(redirect(ErrorCode::InvalidScope, "the only scope is `mcp`"));
    }
    Ok(())
}

fn refusal(state: &AppState, Refusal(why): Refusal) -> Response {
    signin::message(
        state,
        StatusCode::BAD_REQUEST,
        MessageKind::Problem,
        "This connection request cannot be used",
        &format!("{why} Nothing was changed. Start connecting again from the application."),
    )
}

/// A 303 to a registered redirect URI with `pairs`, the client's `state` and our issuer.
fn redirect_to(
    state: &AppState,
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    client_state: Option<&str>,
) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return signin::message(
            state,
            StatusCode::BAD_REQUEST,
            MessageKind::Problem,
            "This connection request cannot be used",
            "The application's return address is not a valid URL.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(s) = client_state {
            query.append_pair("state", s);
        }
        if let Some(door) = &state.connector {
            query.append_pair("iss", &door.origin);
        }
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn query_of(params: &Params) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}

/// `GET /authorize`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params: Params = match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(_) => {
            return refusal(
                &state,
                Refusal("The request's parameters could not be read.".into()),
            );
        }
    };
    let (checked, me) = match checked_and_signed_in(&state, params, &headers, |c| {
        format!(
            "\"{}\" wants to connect to your data. Sign in with your passkey to continue.",
            c.client.name
        )
    })
    .await
    {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    consent(&state, &checked, &me)
}

/// The request checked and its person signed in; otherwise the page that says why, or the
/// sign-in page (with `notice`) that comes back here.
async fn checked_and_signed_in(
    state: &AppState,
    params: Params,
    headers: &HeaderMap,
    notice: impl Fn(&Checked) -> String,
) -> Result<(Checked, SignedIn), Response> {
    let checked = check(state, params).await.map_err(|r| refusal(state, r))?;
    let next = format!("/authorize?{}", query_of(&checked.params));
    let me = signin::require_signed_in(state, headers, &next, Some(&notice(&checked)))
        .map_err(|page| *page)?;
    Ok((checked, me))
}

/// What a consent ticket binds: the person it was shown to and the exact request.
fn ticket_binding(person: &str, params: &Params) -> serde_json::Value {
    json!({ "person": person, "params": crate::audit::digest(params) })
}

fn consent(state: &AppState, checked: &Checked, me: &SignedIn) -> Response {
    // One click, one code: the form carries a ticket taken on submission, so a double submit or
    // a replayed form makes no second code.
    let (ticket, ticket_hash) = people::new_secret("smt_");
    let stored = state.services.store.people().add_ceremony(
        &ticket_hash,
        &people::Ceremony {
            kind: TicketKind::Consent,
            invite: None,
            state: ticket_binding(&me.person.id, &checked.params),
            expires_at: state.services.clock.now() + CONSENT_TTL_SECS,
        },
    );
    if let Err(e) = stored {
        return signin::unavailable(state, &e);
    }
    let tenant_name = signin::tenant_name(state, &me.person.tenant);
    let mut hidden: Vec<(String, String)> = serde_json::to_value(&checked.params)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
        .collect();
    hidden.push(("csrf".into(), me.csrf.clone()));
    hidden.push(("consent".into(), ticket));
    hidden.push(("tenant".into(), me.person.tenant.to_string()));
    let redirect_host = reqwest::Url::parse(&checked.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| checked.redirect_uri.clone());
    signin::page(
        StatusCode::OK,
        pages::consent_page(&pages::ConsentPage {
            server_name: signin::server_name(state),
            person_name: me.person.name.clone(),
            tenant_name: tenant_name.clone(),
            client_name: checked.client.name.clone(),
            redirect_host,
            capabilities: state
                .spec
                .capabilities
                .iter()
                .map(|c| c.replace("{tenant}", &tenant_name))
                .collect(),
            hidden,
            action: "/authorize".into(),
        }),
    )
}

/// `POST /authorize`: the consent form.
pub async fn decide(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: ConsentForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => {
            return refusal(
                &state,
                Refusal("The form's fields could not be read.".into()),
            );
        }
    };
    let (checked, me) = match checked_and_signed_in(&state, form.params.clone(), &headers, |_| {
        "Your sign-in expired. Sign in again with your passkey to continue.".into()
    })
    .await
    {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let client_id = checked.client.id.clone();
    let refused = |outcome: &str| {
        state.record(&Event {
            tenant: me.person.tenant.as_str(),
            action: "oauth:consent",
            outcome,
            person: Some(&me.person.id),
            client: Some(&client_id),
            subject: &json!({ "client": client_id }),
        });
    };
    let refuse = |why: ConsentRefused| {
        if let Some(outcome) = why.outcome() {
            refused(outcome);
        }
        why.page(&state)
    };
    if let Err(why) = judge(&state, &form, &checked, &me) {
        return refuse(why);
    }
    if form.decision != "allow" {
        refused("denied");
        return redirect_to(
            &state,
            &checked.redirect_uri,
            &[
                ("error", ErrorCode::AccessDenied.as_str()),
                ("error_description", "the person declined the connection"),
            ],
            checked.params.state.as_deref(),
        );
    }
    if state.services.store.tenant(&me.person.tenant).is_none() {
        return refuse(ConsentRefused::NoTenant);
    }
    let (code, hash) = people::new_secret("smk_");
    let now = state.services.clock.now();
    let record = AuthCode {
        client_id: checked.client.id.clone(),
        client_name: checked.client.name.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.params.code_challenge.clone().unwrap_or_default(),
        resource: resource_url(&state).unwrap_or_default(),
        scope: SCOPE.into(),
        person: me.person.id.clone(),
        tenant: me.person.tenant.clone(),
        expires_at: now + CODE_TTL_SECS,
    };
    if let Err(e) = state.services.store.people().add_code(&hash, &record, now) {
        return signin::unavailable(&state, &e);
    }
    state.record(&Event {
        tenant: me.person.tenant.as_str(),
        action: "oauth:consent",
        outcome: "ok",
        person: Some(&me.person.id),
        client: Some(&client_id),
        subject: &json!({ "client": client_id }),
    });
    redirect_to(
        &state,
        &checked.redirect_uri,
        &[("code", &code)],
        checked.params.state.as_deref(),
    )
}

/// Why a consent form is not taken.
enum ConsentRefused {
    /// The session's CSRF token is not the form's.
    Csrf,
    /// The form is for another tenant than the person's (or this isolated instance's).
    WrongTenant,
    /// Its one-click ticket was taken already, has expired, or was shown for another request.
    StaleForm,
    /// The person's tenant was removed meanwhile.
    NoTenant,
    Unavailable(crate::store::StoreError),
}

impl ConsentRefused {
    /// The audit record's outcome; none when the store could not be asked.
    fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::Csrf => Some("csrf"),
            Self::WrongTenant => Some("wrong_tenant"),
            Self::StaleForm => Some("stale_form"),
            Self::NoTenant => Some("no_tenant"),
            Self::Unavailable(_) => None,
        }
    }

    fn page(&self, state: &AppState) -> Response {
        let (title, text) = match self {
            Self::Csrf => (
                "This form could not be accepted",
                "It expired or did not come from this site's own page. Nothing was allowed. Go \
                 back to the application and start connecting again.",
            ),
            Self::WrongTenant => (
                "You cannot allow access to this client's data",
                "You are signed in for another client of the studio than this connection asks \
                 for. Nothing was allowed.",
            ),
            Self::StaleForm => (
                "This form was already used or has expired",
                "Nothing more was allowed. If the application is still waiting, start \
                 connecting again from the application.",
            ),
            Self::NoTenant => (
                "This client is no longer served here",
                "Nothing was allowed. Ask your studio.",
            ),
            Self::Unavailable(e) => return signin::unavailable(state, e),
        };
        signin::message(
            state,
            StatusCode::FORBIDDEN,
            MessageKind::Problem,
            title,
            text,
        )
    }
}

/// Whether a consent form may be acted on: the session's own form, for the person's tenant,
/// carrying the one-click ticket shown with this exact request (taken now, whatever follows).
fn judge(
    state: &AppState,
    form: &ConsentForm,
    checked: &Checked,
    me: &SignedIn,
) -> Result<(), ConsentRefused> {
    if !me.csrf_matches(&form.csrf) {
        return Err(ConsentRefused::Csrf);
    }
    if form.tenant != me.person.tenant.as_str()
        || state
            .pinned
            .as_ref()
            .is_some_and(|p| p != &me.person.tenant)
    {
        return Err(ConsentRefused::WrongTenant);
    }
    if form.consent.len() > 100 {
        return Err(ConsentRefused::StaleForm);
    }
    let ticket = state
        .services
        .store
        .people()
        .take_ceremony(&people::digest(&form.consent), state.services.clock.now())
        .map_err(ConsentRefused::Unavailable)?;
    match ticket {
        Some(t)
            if t.kind == TicketKind::Consent
                && t.state == ticket_binding(&me.person.id, &checked.params) =>
        {
            Ok(())
        }
        _ => Err(ConsentRefused::StaleForm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIENCE: &str = "https://connect.studio.example/mcp";

    fn params() -> Params {
        Params {
            response_type: Some("code".into()),
            client_id: Some("https://claude.ai/oauth/mcp-oauth-client-metadata".into()),
            redirect_uri: Some("https://claude.ai/api/mcp/auth_callback".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            state: Some("xyz".into()),
            resource: Some(AUDIENCE.into()),
            scope: Some("mcp".into()),
        }
    }

    fn refused(change: impl FnOnce(&mut Params)) -> String {
        let mut p = params();
        change(&mut p);
        match check_params(&p, AUDIENCE) {
            Ok(()) => panic!("accepted"),
            Err(Refusal(why)) => why,
        }
    }

    #[test]
    fn a_well_formed_request_passes_and_optional_parts_may_be_left_out() {
        assert!(check_params(&params(), AUDIENCE).is_ok());
        let mut p = params();
        p.resource = None;
        p.scope = None;
        p.state = None;
        assert!(check_params(&p, AUDIENCE).is_ok());
    }

    #[test]
    fn each_broken_part_is_named_with_its_rfc_code() {
        type Change = Box<dyn FnOnce(&mut Params)>;
        let cases: [(Change, &str); 7] = [
            (
                Box::new(|p| p.response_type = Some("token".into())),
                "(unsupported_response_type)",
            ),
            (
                Box::new(|p| p.code_challenge = None),
                "code_challenge is required",
            ),
            (
                Box::new(|p| p.code_challenge_method = Some("plain".into())),
                "plain is not accepted",
            ),
            (
                Box::new(|p| p.code_challenge = Some("short".into())),
                "43-character base64url",
            ),
            (
                Box::new(|p| p.resource = Some("https://other.example/mcp".into())),
                "(invalid_target)",
            ),
            (
                Box::new(|p| p.scope = Some("mcp admin".into())),
                "(invalid_scope)",
            ),
            (
                Box::new(|p| p.code_challenge = Some(format!("{}!", "a".repeat(42)))),
                "(invalid_request)",
            ),
        ];
        for (change, says) in cases {
            let why = refused(change);
            assert!(why.contains(says), "{why:?} should say {says:?}");
        }
    }
}
