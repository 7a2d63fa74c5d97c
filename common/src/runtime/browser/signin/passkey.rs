//! Signing in with a passkey a person already has (discoverable: no user name typed, the
//! passkey names its person by its user handle), and signing out.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential};

use super::ceremony::{self, Kind};
use super::{
    clear_cookie, json_error, message, no_passkeys, open_ceremony, other_servers_handle, page,
    read_finish, safe_next, server_label, server_name, signed_in, spend_ceremony, start_ceremony,
    start_session, store_down, stored_passkeys, unavailable,
};
use crate::runtime::browser::pages::{self, MessageKind};
use crate::runtime::server::state::{AppState, Event};

#[derive(Deserialize)]
pub(super) struct SigninQuery {
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn signin_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SigninQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref().unwrap_or("/"));
    signin_response(&state, &next, None)
}

/// The sign-in page, returning to `next` afterwards.
pub fn signin_response(state: &AppState, next: &str, notice: Option<&str>) -> Response {
    if state.passkeys.is_none() {
        return no_passkeys(state);
    }
    page(
        StatusCode::OK,
        pages::signin_page(&pages::SigninPage {
            server_name: server_name(state),
            options_url: "/signin/options".into(),
            finish_url: "/signin/finish".into(),
            next: safe_next(next),
            notice: notice.map(str::to_owned),
        }),
    )
}

pub(super) async fn signin_options(State(state): State<Arc<AppState>>) -> Response {
    let Some(webauthn) = state.passkeys.as_ref() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys are not available",
        );
    };
    let (challenge, authentication) = match webauthn.start_discoverable_authentication() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "passkey sign-in could not start");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in could not start. Please try again.",
            );
        }
    };
    start_ceremony(
        &state,
        Kind::SignIn,
        None,
        &authentication,
        state.services.clock.now() + ceremony::TTL_SECS,
        serde_json::to_value(&challenge).unwrap_or_default(),
    )
}

pub(super) async fn signin_finish(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Response {
    let (webauthn, finish) = match read_finish::<PublicKeyCredential>(&state, &body) {
        Ok(read) => read,
        Err(refused) => return *refused,
    };
    let opened =
        match open_ceremony::<DiscoverableAuthentication>(&state, &finish.ceremony, Kind::SignIn) {
            Ok(opened) => opened,
            Err(refused) => return *refused,
        };
    let unknown = || {
        json_error(
            StatusCode::FORBIDDEN,
            "This passkey does not belong to anyone here (it may have been removed). Ask your \
             studio for a new invite link.",
        )
    };
    let Ok((handle, credential_id)) =
        webauthn.identify_discoverable_authentication(&finish.credential)
    else {
        return unknown();
    };
    let store = state.services.store.people();
    let person = match store.person_by_handle(&handle.to_string()) {
        Ok(Some(person)) => person,
        Ok(None) if other_servers_handle(&state, &handle) => {
            return json_error(
                StatusCode::FORBIDDEN,
                &format!(
                    "This passkey is for another studio-mcp server, not this one. Choose the \
                     passkey whose name ends in \u{201c}{}\u{201d}.",
                    server_label(&state)
                ),
            );
        }
        Ok(None) => return unknown(),
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    let mut passkeys = stored_passkeys(&person);
    let Some(passkey) = passkeys
        .iter()
        .find(|p| p.cred_id().as_slice() == credential_id)
    else {
        return unknown();
    };
    let result = match webauthn.finish_discoverable_authentication_v2(
        &finish.credential,
        opened.state,
        passkey,
    ) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, person = %person.id, "passkey sign-in refused");
            state.record(&Event {
                tenant: person.tenant.as_str(),
                action: "signin:passkey",
                outcome: "refused",
                person: Some(&person.id),
                client: None,
                subject: &json!({ "person": person.id }),
            });
            return json_error(
                StatusCode::FORBIDDEN,
                "Your passkey could not be verified. Please press the button again.",
            );
        }
    };
    if let Err(refused) = spend_ceremony(&state, &opened.id, opened.expires_at, Kind::SignIn) {
        return *refused;
    }
    for passkey in &mut passkeys {
        passkey.update_credential(&result);
    }
    let updated: Vec<serde_json::Value> = passkeys
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    let now = state.services.clock.now();
    let person = match store.update_person(&person.id, |p| {
        p.passkeys = updated.clone();
        p.last_sign_in_at = Some(now);
    }) {
        Ok(Some(person)) => person,
        Ok(None) => return unknown(),
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    state.record(&Event {
        tenant: person.tenant.as_str(),
        action: "signin:passkey",
        outcome: "ok",
        person: Some(&person.id),
        client: None,
        subject: &json!({ "person": person.id }),
    });
    match start_session(&state, &person) {
        Ok(cookie) => (
            [
                (header::SET_COOKIE, cookie),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            Json(json!({})),
        )
            .into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    }
}

#[derive(Deserialize)]
struct SignoutForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn signout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: SignoutForm = serde_urlencoded::from_bytes(&body).unwrap_or(SignoutForm {
        csrf: String::new(),
    });
    if let Ok(Some(me)) = signed_in(&state, &headers)
        && me.csrf_matches(&form.csrf)
        && let Err(e) = state.services.store.people().end_session(&me.session)
    {
        return unavailable(&state, &e);
    }
    let mut response = message(
        &state,
        StatusCode::OK,
        MessageKind::Info,
        "Signed out",
        "You are signed out on this browser. Your AI assistant's connection keeps working; ask \
         your studio to remove it if you want it stopped.",
    );
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&state));
    response
}
