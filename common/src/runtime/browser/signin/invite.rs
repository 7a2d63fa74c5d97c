//! The invite flow: an invite link shows who is invited, then registers that person's passkey
//! (`…/options`, `…/finish`), consumes the invite once and signs the person in.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential, Uuid};

use super::ceremony::{self, Kind};
use super::{
    json_error, message, no_passkeys, open_ceremony, page, read_finish, server_label, server_name,
    spend_ceremony, start_ceremony, start_session, store_down, stored_passkeys, tenant_name,
    unavailable,
};
use crate::runtime::browser::pages::{self, MessageKind};
use crate::runtime::server::state::{AppState, Event};
use crate::store::StoreError;
use crate::store::people::{self, Person};

enum InviteState {
    Valid(people::Invite, Box<Person>),
    Gone,
    Expired,
}

fn find_invite(state: &AppState, secret: &str) -> Result<InviteState, StoreError> {
    if secret.len() > 100 {
        return Ok(InviteState::Gone);
    }
    let store = state.services.store.people();
    let Some(invite) = store.invite(&people::digest(secret))? else {
        return Ok(InviteState::Gone);
    };
    if invite.expires_at <= state.services.clock.now() {
        return Ok(InviteState::Expired);
    }
    match store.person(&invite.person)? {
        Some(person) => Ok(InviteState::Valid(invite, Box::new(person))),
        None => Ok(InviteState::Gone),
    }
}

fn invite_problem(state: &AppState, found: &InviteState) -> Option<Response> {
    let (title, body) = match found {
        InviteState::Valid(..) => return None,
        InviteState::Gone => (
            "This invite link cannot be used",
            "It has already been used, was withdrawn, or was copied incompletely. If you already \
             created your passkey, you do not need this link any more. Otherwise ask your studio \
             for a new invite link.",
        ),
        InviteState::Expired => (
            "This invite link has expired",
            "Invite links work for a limited time. Ask your studio for a new one.",
        ),
    };
    Some(message(
        state,
        StatusCode::GONE,
        MessageKind::Problem,
        title,
        body,
    ))
}

pub(super) async fn invite_page(
    State(state): State<Arc<AppState>>,
    Path(secret): Path<String>,
) -> Response {
    let found = match find_invite(&state, &secret) {
        Ok(found) => found,
        Err(e) => return unavailable(&state, &e),
    };
    if let Some(problem) = invite_problem(&state, &found) {
        return problem;
    }
    let InviteState::Valid(_, person) = found else {
        return no_passkeys(&state);
    };
    if state.passkeys.is_none() {
        return no_passkeys(&state);
    }
    let tenant_name = tenant_name(&state, &person.tenant);
    page(
        StatusCode::OK,
        pages::invite_page(&pages::InvitePage {
            server_name: server_name(&state),
            person_name: person.name.clone(),
            tenant_name,
            role: person.role,
            options_url: format!("/invite/{secret}/options"),
            finish_url: format!("/invite/{secret}/finish"),
        }),
    )
}

fn user_handle(person: &Person) -> Uuid {
    Uuid::parse_str(&person.user_handle).unwrap_or_else(|_| Uuid::nil())
}

pub(super) async fn register_options(
    State(state): State<Arc<AppState>>,
    Path(secret): Path<String>,
) -> Response {
    let Some(webauthn) = state.passkeys.as_ref() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys are not available",
        );
    };
    let (invite, person) = match find_invite(&state, &secret) {
        Ok(InviteState::Valid(invite, person)) => (invite, person),
        Ok(_) => {
            return json_error(
                StatusCode::GONE,
                "This invite link has been used or has expired. Ask your studio for a new one.",
            );
        }
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    let exclude: Vec<_> = stored_passkeys(&person)
        .iter()
        .map(|p| p.cred_id().clone())
        .collect();
    // What the browser shows when it offers passkeys: the person, the client and the server,
    // so two servers' passkeys on one host name are told apart.
    let user_name = format!(
        "{} \u{2014} {}, {}",
        person.name,
        tenant_name(&state, &person.tenant),
        server_label(&state)
    );
    let started = webauthn.start_passkey_registration(
        user_handle(&person),
        &user_name,
        &user_name,
        (!exclude.is_empty()).then_some(exclude),
    );
    let (challenge, registration) = match started {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "passkey registration could not start");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The passkey step could not start. Please try again.",
            );
        }
    };
    // A discoverable credential: sign-in then needs no user name, the passkey names its person.
    let mut options = serde_json::to_value(&challenge).unwrap_or_default();
    if let Some(selection) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(|s| s.as_object_mut())
    {
        selection.insert("residentKey".into(), json!("required"));
        selection.insert("requireResidentKey".into(), json!(true));
    }
    let expires_at = invite
        .expires_at
        .min(state.services.clock.now() + ceremony::TTL_SECS);
    let invite_hash = people::digest(&secret);
    start_ceremony(
        &state,
        Kind::Register,
        Some(&invite_hash),
        &registration,
        expires_at,
        options,
    )
}

pub(super) async fn register_finish(
    State(state): State<Arc<AppState>>,
    Path(secret): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (webauthn, finish) = match read_finish::<RegisterPublicKeyCredential>(&state, &body) {
        Ok(read) => read,
        Err(refused) => return *refused,
    };
    let invite_hash = people::digest(&secret);
    let opened =
        match open_ceremony::<PasskeyRegistration>(&state, &finish.ceremony, Kind::Register) {
            Ok(opened) => opened,
            Err(refused) => return *refused,
        };
    if opened.invite.as_deref() != Some(hex::encode(invite_hash).as_str()) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "This passkey step was started for another invite link. Please press the button \
             again.",
        );
    }
    let passkey = match webauthn.finish_passkey_registration(&finish.credential, &opened.state) {
        Ok(passkey) => passkey,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            return json_error(
                StatusCode::BAD_REQUEST,
                "Your browser's passkey could not be verified. Please press the button again.",
            );
        }
    };
    if let Err(refused) = spend_ceremony(&state, &opened.id, opened.expires_at, Kind::Register) {
        return *refused;
    }
    let store = state.services.store.people();
    // The invite is consumed only now, by exactly one of any concurrent finishes.
    let invite = match store.take_invite(&invite_hash) {
        Ok(Some(invite)) if invite.expires_at > state.services.clock.now() => invite,
        Ok(_) => {
            return json_error(
                StatusCode::GONE,
                "This invite link has been used or has expired. Ask your studio for a new one.",
            );
        }
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    let Ok(passkey_json) = serde_json::to_value(&passkey) else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "passkey unserialisable");
    };
    let now = state.services.clock.now();
    let person = match store.update_person(&invite.person, |p| {
        p.passkeys.push(passkey_json.clone());
        p.last_sign_in_at = Some(now);
    }) {
        Ok(Some(person)) => person,
        Ok(None) => {
            return json_error(
                StatusCode::GONE,
                "This invite was withdrawn. Ask your studio for a new one.",
            );
        }
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    state.record(&Event {
        tenant: person.tenant.as_str(),
        action: "signin:passkey_registered",
        outcome: "ok",
        person: Some(&person.id),
        client: None,
        subject: &json!({ "person": person.id }),
    });
    signed_in_answer(&state, &person, "/?welcome=1")
}

fn signed_in_answer(state: &AppState, person: &Person, next: &str) -> Response {
    match start_session(state, person) {
        Ok(cookie) => (
            [
                (header::SET_COOKIE, cookie),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            Json(json!({ "next": next })),
        )
            .into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    }
}
