//! The token endpoint (RFC 6749 §4.1.3 and §6, PKCE RFC 7636, resource RFC 8707) and
//! revocation (RFC 7009). The protocol steps are functions of their inputs: [`read`] turns a
//! request into a [`Grant`] or an error, [`check_code`] decides whether a code may be redeemed
//! by a request; the handlers around them only take and record.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ErrorCode, OAuthError, no_store};
use super::{anonymous_refusal, cors, no_connector, resource_url};
use crate::runtime::server::state::{AppState, Event};
use crate::store::people::{self, AuthCode, GrantError};

#[derive(Deserialize, Default)]
pub struct TokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    code_verifier: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

/// What a token request asks for, with every parameter its grant type requires present.
#[derive(Debug, PartialEq)]
pub enum Grant<'a> {
    /// `authorization_code`: a code for tokens. The verifier may be empty: [`check_code`]
    /// says so, once the code is spent (a code tried without its verifier is void).
    Code {
        code: &'a str,
        client_id: &'a str,
        redirect_uri: &'a str,
        verifier: &'a str,
        resource: Option<&'a str>,
    },
    /// `refresh_token`: a refresh token for a new pair.
    Refresh {
        token: &'a str,
        client_id: &'a str,
        resource: Option<&'a str>,
    },
}

/// Reads a token request: a form (RFC 6749 §4.1.3), nothing else.
pub fn read(content_type: Option<&str>, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    if !content_type.is_some_and(|v| v.starts_with("application/x-www-form-urlencoded")) {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidRequest, format!("unreadable form: {e}")))
}

impl TokenRequest {
    /// The grant asked for, or what is missing.
    pub fn grant(&self) -> Result<Grant<'_>, OAuthError> {
        match self.grant_type.as_str() {
            "authorization_code" => Ok(Grant::Code {
                code: required(&self.code, "code")?,
                client_id: required(&self.client_id, "client_id")?,
                redirect_uri: required(&self.redirect_uri, "redirect_uri")?,
                verifier: self.code_verifier.as_deref().unwrap_or(""),
                resource: self.resource.as_deref(),
            }),
            "refresh_token" => Ok(Grant::Refresh {
                token: required(&self.refresh_token, "refresh_token")?,
                client_id: required(&self.client_id, "client_id")?,
                resource: self.resource.as_deref(),
            }),
            "" => Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "grant_type is missing",
            )),
            // The value is not repeated: a caller can put anything there, a token included, and
            // a refusal never carries a secret back (the fuzz target oauth_token_and_revoke
            // found it).
            _ => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant_type is not supported; use authorization_code or refresh_token",
            )),
        }
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, format!("{name} is missing")))
}

/// Why a code may not be redeemed by a request; checked in this order. Any of them voids the
/// code (it was spent to find out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeMismatch {
    OtherClient,
    OtherRedirectUri,
    NoVerifier,
    WrongVerifier,
    OtherResource,
}

impl CodeMismatch {
    /// What the client is told, and the audit record's outcome.
    pub fn reason(self) -> &'static str {
        match self {
            Self::OtherClient => "the code was issued to another client",
            Self::OtherRedirectUri => {
                "redirect_uri does not match the one in the authorization request"
            }
            Self::NoVerifier => "code_verifier is missing",
            Self::WrongVerifier => "code_verifier does not match the code_challenge",
            Self::OtherResource => "resource does not match the one in the authorization request",
        }
    }

    pub fn code(self) -> ErrorCode {
        match self {
            Self::NoVerifier => ErrorCode::InvalidRequest,
            Self::OtherResource => ErrorCode::InvalidTarget,
            _ => ErrorCode::InvalidGrant,
        }
    }
}

/// Whether `code` may be redeemed by a request from `client_id` with `redirect_uri`, the PKCE
/// `verifier` and (if it names one) `resource`: each must be the authorization request's own.
pub fn check_code(
    code: &AuthCode,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    resource: Option<&str>,
) -> Result<(), CodeMismatch> {
    if code.client_id != client_id {
        Err(CodeMismatch::OtherClient)
    } else if code.redirect_uri != redirect_uri {
        Err(CodeMismatch::OtherRedirectUri)
    } else if verifier.is_empty() {
        Err(CodeMismatch::NoVerifier)
    } else if !pkce_matches(verifier, &code.code_challenge) {
        Err(CodeMismatch::WrongVerifier)
    } else if resource.is_some_and(|r| r != code.resource) {
        Err(CodeMismatch::OtherResource)
    } else {
        Ok(())
    }
}

/// PKCE S256: BASE64URL(SHA256(verifier)) == challenge. The verifier must be 43-128 characters
/// of the unreserved set (RFC 7636 §4.1).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !shaped {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    use subtle::ConstantTimeEq;
    computed.len() == challenge.len() && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `POST /token`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let result = read(content_type, &body).and_then(|request| match request.grant()? {
        Grant::Code {
            code,
            client_id,
            redirect_uri,
            verifier,
            resource,
        } => exchange_code(&state, code, client_id, redirect_uri, verifier, resource),
        Grant::Refresh {
            token,
            client_id,
            resource,
        } => refresh(&state, token, client_id, resource),
    });
    match result {
        Ok(pair) => {
            let mut response = Json(json!({
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "scope": pair.grant.scope,
            }))
            .into_response();
            no_store(response.headers_mut());
            cors(response)
        }
        Err(e) => e.into_response(),
    }
}

fn exchange_code(
    state: &AppState,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    resource: Option<&str>,
) -> Result<people::TokenPair, OAuthError> {
    let store = state.services.store.people();
    let hash = people::digest(code);
    let now = state.services.clock.now();
    let refused = |outcome: &str, person: Option<&str>| {
        state.record(&Event {
            tenant: "oauth",
            action: "oauth:code_refused",
            outcome,
            person,
            client: Some(client_id),
            subject: &json!({ "client": client_id }),
        });
    };
    let mut mismatch = None;
    let redeemed = store.redeem_code(&hash, now, |c| {
        check_code(c, client_id, redirect_uri, verifier, resource).map_err(|m| {
            mismatch = Some(m);
            GrantError::WrongClient
        })
    });
    let code = match (redeemed, mismatch) {
        (Ok(code), _) => code,
        (Err(GrantError::WrongClient), Some(m)) => {
            refused(m.reason(), None);
            return Err(OAuthError::new(
                m.code(),
                format!(
                    "{}; the code is now void, start the authorization again",
                    m.reason()
                ),
            ));
        }
        (Err(GrantError::Store(e)), _) => return Err(OAuthError::unavailable(&e)),
        (Err(e), _) => {
            if matches!(e, GrantError::CodeReplayed { .. }) {
                refused("code_replayed", None);
            } else {
                anonymous_refusal(state, "token:unknown_code");
            }
            return Err(OAuthError::new(ErrorCode::InvalidGrant, e.to_string()));
        }
    };
    // The person (and tenant) must still be there: removal between consent and exchange wins.
    let person = match store.person(&code.person) {
        Ok(Some(p)) if p.tenant == code.tenant => p,
        Ok(_) => {
            refused("person_removed", Some(&code.person));
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the person who allowed this connection has been removed",
            ));
        }
        Err(e) => return Err(OAuthError::unavailable(&e)),
    };
    if state.services.store.tenant(&code.tenant).is_none() {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "the tenant has been removed",
        ));
    }
    let pair = store
        .create_grant(
            &hash,
            &code,
            &person.name,
            now,
            state.oauth.access_ttl_secs,
            state.oauth.refresh_ttl_secs,
        )
        .map_err(|e| OAuthError::unavailable(&e))?;
    state.record(&Event {
        tenant: code.tenant.as_str(),
        action: "oauth:token",
        outcome: "ok",
        person: Some(&person.id),
        client: Some(&code.client_id),
        subject: &json!({ "grant": pair.grant.id }),
    });
    Ok(pair)
}

fn refresh(
    state: &AppState,
    token: &str,
    client_id: &str,
    resource: Option<&str>,
) -> Result<people::TokenPair, OAuthError> {
    let store = state.services.store.people();
    let now = state.services.clock.now();
    let hash = people::digest(token);
    let Some(audience) = resource_url(state) else {
        return Err(no_connector());
    };
    if let Some(resource) = resource
        && resource != audience
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("tokens here are only for this server's connector URL, {audience}"),
        ));
    }
    match store.refresh(
        &hash,
        client_id,
        &audience,
        now,
        state.oauth.access_ttl_secs,
        state.oauth.refresh_ttl_secs,
    ) {
        Ok(pair) => {
            state.record(&Event {
                tenant: pair.grant.tenant.as_str(),
                action: "oauth:refresh",
                outcome: "ok",
                person: Some(&pair.grant.person),
                client: Some(&pair.grant.client_id),
                subject: &json!({ "grant": pair.grant.id }),
            });
            Ok(pair)
        }
        Err(GrantError::Store(e)) => Err(OAuthError::unavailable(&e)),
        Err(e) => {
            let outcome = match &e {
                GrantError::RefreshReplayed { .. } => "refresh_replayed",
                GrantError::WrongClient => "wrong_client",
                GrantError::WrongAudience { .. } => "wrong_audience",
                _ => "unknown_refresh",
            };
            // Only a replay spends something (it revokes the grant); the rest anyone can repeat.
            if !matches!(e, GrantError::RefreshReplayed { .. }) {
                anonymous_refusal(state, &format!("refresh:{outcome}"));
                return Err(OAuthError::new(ErrorCode::InvalidGrant, e.to_string()));
            }
            state.record(&Event {
                tenant: "oauth",
                action: "oauth:refresh",
                outcome,
                person: None,
                client: Some(client_id),
                subject: &json!({ "client": client_id }),
            });
            Err(OAuthError::new(ErrorCode::InvalidGrant, e.to_string()))
        }
    }
}

// ---- revocation (RFC 7009) ----

#[derive(Deserialize, Default)]
struct RevokeRequest {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

/// `POST /revoke`.
pub async fn revoke(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let request: RevokeRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => {
            return OAuthError::new(ErrorCode::InvalidRequest, format!("unreadable form: {e}"))
                .into_response();
        }
    };
    let Some(token) = request.token.as_deref().filter(|t| !t.is_empty()) else {
        return OAuthError::new(ErrorCode::InvalidRequest, "token is missing").into_response();
    };
    let store = state.services.store.people();
    match store.revoke_token(
        &people::digest(token),
        request.client_id.as_deref(),
        state.services.clock.now(),
    ) {
        Ok(grant) => {
            if let Some(grant) = grant {
                state.record(&Event {
                    tenant: "oauth",
                    action: "oauth:revoke",
                    outcome: "ok",
                    person: None,
                    client: request.client_id.as_deref(),
                    subject: &json!({ "grant": grant }),
                });
            }
            // Unknown tokens too: RFC 7009 §2.2, the client's goal is reached either way.
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            cors(response)
        }
        Err(e) => OAuthError::unavailable(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7636 appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn code() -> AuthCode {
        AuthCode {
            client_id: "client".into(),
            client_name: "Claude".into(),
            redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
            code_challenge: CHALLENGE.into(),
            resource: "https://connect.studio.example/mcp".into(),
            scope: "mcp".into(),
            person: "p1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            expires_at: 100,
        }
    }

    fn form(body: &str) -> Result<TokenRequest, OAuthError> {
        read(Some("application/x-www-form-urlencoded"), body.as_bytes())
    }

    #[test]
    fn pkce_is_s256_of_a_well_shaped_verifier() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_matches(
            VERIFIER,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches("short", CHALLENGE));
        assert!(!pkce_matches(&format!("{VERIFIER}!"), CHALLENGE));
        assert!(!pkce_matches(CHALLENGE, CHALLENGE), "plain is not S256");
    }

    #[test]
    fn a_code_is_redeemed_only_by_its_own_request() {
        let c = code();
        let redirect = c.redirect_uri.clone();
        let check = |client: &str, redirect: &str, verifier: &str, resource: Option<&str>| {
            check_code(&c, client, redirect, verifier, resource)
        };
        assert_eq!(check("client", &redirect, VERIFIER, None), Ok(()));
        assert_eq!(
            check("client", &redirect, VERIFIER, Some(&c.resource)),
            Ok(())
        );
        let refused = [
            (
                check("other", &redirect, VERIFIER, None),
                CodeMismatch::OtherClient,
            ),
            (
                check("client", "https://evil.example/cb", VERIFIER, None),
                CodeMismatch::OtherRedirectUri,
            ),
            (
                check("client", &redirect, "", None),
                CodeMismatch::NoVerifier,
            ),
            (
                check("client", &redirect, &VERIFIER.replace('d', "e"), None),
                CodeMismatch::WrongVerifier,
            ),
            (
                check(
                    "client",
                    &redirect,
                    VERIFIER,
                    Some("https://other.example/mcp"),
                ),
                CodeMismatch::OtherResource,
            ),
        ];
        for (got, want) in refused {
            assert_eq!(got, Err(want));
        }
        assert_eq!(CodeMismatch::NoVerifier.code(), ErrorCode::InvalidRequest);
        assert_eq!(CodeMismatch::OtherResource.code(), ErrorCode::InvalidTarget);
        assert_eq!(CodeMismatch::WrongVerifier.code(), ErrorCode::InvalidGrant);
    }

    #[test]
    fn a_token_request_is_a_form_naming_a_grant_with_what_it_needs() {
        // No Debug on a request (it carries codes and tokens): errors are taken by hand.
        let refusal = |r: Result<TokenRequest, OAuthError>| r.err().unwrap();
        let refused = refusal(read(Some("application/json"), b"{}"));
        assert_eq!(refused.code, ErrorCode::InvalidRequest);
        assert!(refused.description.contains("x-www-form-urlencoded"));
        assert_eq!(refusal(read(None, b"")).code, ErrorCode::InvalidRequest);

        let code = form("grant_type=authorization_code&code=c&client_id=x&redirect_uri=r");
        let refresh = form("grant_type=refresh_token&refresh_token=t&client_id=x&resource=u");
        let (code, refresh) = (code.unwrap(), refresh.unwrap());
        let want_code = Grant::Code {
            code: "c",
            client_id: "x",
            redirect_uri: "r",
            verifier: "",
            resource: None,
        };
        let want_refresh = Grant::Refresh {
            token: "t",
            client_id: "x",
            resource: Some("u"),
        };
        assert_eq!(code.grant().unwrap(), want_code);
        assert_eq!(refresh.grant().unwrap(), want_refresh);
        let missing = form("grant_type=authorization_code&code=c&client_id=x").unwrap();
        let e = missing.grant().unwrap_err();
        assert_eq!(
            (e.code, e.description.as_str()),
            (ErrorCode::InvalidRequest, "redirect_uri is missing")
        );
        let e = form("grant_type=").unwrap().grant().unwrap_err();
        assert_eq!(e.description, "grant_type is missing");
        // An unsupported grant type is not repeated back: it could be anything, a token too.
        let e = form("grant_type=smk_secret").unwrap().grant().unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        assert!(!e.description.contains("smk_secret"));
    }
}
