//! The sign-in flow's endpoints: `/authorize`, `/token` and `/revoke` at the root, and a
//! dynamic registration round trip up to where a person would sign in.

use base64::Engine as _;
use rand::RngCore as _;
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::http::{Target, fetch};
use super::*;

/// The body of a token request with no grant: a token endpoint answers it with an OAuth error.
pub(super) const EMPTY_TOKEN_REQUEST: &str = "grant_type=";
/// A revocation of a token that never existed: RFC 7009 answers 200 for it.
pub(super) const REVOKE_PROBE: &str = "token=studio-mcp-doctor-probe";

impl Doctor<'_> {
    /// `/authorize`, `/token` and `/revoke` where claude.ai looks for them: at the root.
    pub(super) async fn root_endpoints(&mut self, target: &Target) {
        let fix = |path: &str| {
            format!(
                "serve {path} at the root of {} (route it to the connector door); claude.ai \
                 calls it there whatever the metadata says",
                target.origin
            )
        };
        let url = target.at("/authorize");
        let step = STEP_ROOT_AUTHORIZE;
        match fetch(target.client.get(&url)).await {
            Err(e) => self.connection_failed(step, target, &e),
            Ok(a) if missing(a.status) => self.report.fail(
                step,
                &format!("GET {url} answers {}", status_text(a.status)),
                &fix("/authorize"),
            ),
            Ok(a) => self.report.ok(
                step,
                &format!(
                    "GET {url} answers {} (a page for a person)",
                    status_text(a.status)
                ),
            ),
        }
        let url = target.at("/token");
        let step = STEP_ROOT_TOKEN;
        match fetch(target.post_form(&url, EMPTY_TOKEN_REQUEST)).await {
            Err(e) => self.connection_failed(step, target, &e),
            Ok(a) if a.oauth_error().is_some() => self.report.ok(
                step,
                &format!(
                    "POST {url} answers {} with an OAuth error, as a token endpoint does to an \
                     empty request",
                    status_text(a.status)
                ),
            ),
            Ok(a) => self.report.fail(
                step,
                &format!(
                    "POST {url} answers {}{} instead of an OAuth error",
                    status_text(a.status),
                    a.summary()
                ),
                &fix("/token"),
            ),
        }
        let url = target.at("/revoke");
        let step = STEP_ROOT_REVOKE;
        match fetch(target.post_form(&url, REVOKE_PROBE)).await {
            Err(e) => self.connection_failed(step, target, &e),
            Ok(a) if a.status == StatusCode::OK || a.oauth_error().is_some() => self.report.ok(
                step,
                &format!("POST {url} answers {}", status_text(a.status)),
            ),
            // Revocation is how a connector says goodbye; without it sign-in still works.
            Ok(a) => self.report.warn(
                step,
                &format!(
                    "POST {url} answers {}{}",
                    status_text(a.status),
                    a.summary()
                ),
                &fix("/revoke"),
            ),
        }
    }

    /// Registers a client as claude.ai does, then asks `/authorize` for a sign-in with it, PKCE
    /// S256 and `resource` = the URL, stopping where a person would have to act.
    pub(super) async fn round_trip(
        &mut self,
        target: &Target,
        resource: &str,
        metadata: Option<&Map<String, Value>>,
    ) {
        let register = target.at("/register");
        let registration = json!({
            "client_name": DOCTOR_CLIENT_NAME,
            "redirect_uris": [DOCTOR_REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let answer = match fetch(target.client.post(&register).json(&registration)).await {
            Ok(answer) => answer,
            Err(e) => {
                self.connection_failed(STEP_ROUND_TRIP, target, &e);
                return;
            }
        };
        let client_id = answer
            .json_object()
            .and_then(|doc| {
                doc.get("client_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|_| answer.status.is_success());
        let Some(client_id) = client_id else {
            let fix = match answer.status {
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => format!(
                    "serve /register at the root of {} (route it to the connector door); \
                     claude.ai registers there whatever the metadata says",
                    target.origin
                ),
                StatusCode::TOO_MANY_REQUESTS => {
                    "the server limits registrations per minute: run doctor again in a minute"
                        .to_owned()
                }
                _ => "the server's log says why it refused the registration".to_owned(),
            };
            self.report.fail(
                STEP_ROUND_TRIP,
                &format!(
                    "POST {register} answers {}{} instead of a new client_id",
                    status_text(answer.status),
                    answer.summary()
                ),
                &fix,
            );
            return;
        };
        let verifier = random_b64(32);
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
        let state = random_b64(16);
        let authorize_base = metadata
            .and_then(|m| m.get("authorization_endpoint").and_then(Value::as_str))
            .filter(|a| *a == target.at("/authorize"))
            .map_or_else(|| target.at("/authorize"), str::to_owned);
        let mut authorize = match Url::parse(&authorize_base) {
            Ok(url) => url,
            Err(e) => {
                self.report.fail(
                    STEP_ROUND_TRIP,
                    &format!("{} is not a URL ({e})", shown(&authorize_base)),
                    "check STUDIO_MCP_CONNECTOR_URL",
                );
                return;
            }
        };
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", DOCTOR_REDIRECT_URI)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", resource)
            .append_pair("scope", "mcp");
        let answer = match fetch(target.client.get(authorize.as_str())).await {
            Ok(answer) => answer,
            Err(e) => {
                self.connection_failed(STEP_ROUND_TRIP, target, &e);
                return;
            }
        };
        let registered = format!(
            "POST /register made client {} (named as a doctor check, it expires unused within \
             minutes)",
            shown(&client_id)
        );
        if answer.status.is_success() {
            self.report.ok(
                STEP_ROUND_TRIP,
                &format!(
                    "{registered}; GET /authorize with it, PKCE S256 and resource={} answers {}: \
                     a person would sign in now",
                    shown(resource),
                    status_text(answer.status)
                ),
            );
            return;
        }
        if answer.status.is_redirection() {
            let location = answer.location();
            let to = authorize.join(&location).ok();
            let back_to_client = to
                .as_ref()
                .is_some_and(|u| u.as_str().starts_with(DOCTOR_REDIRECT_URI));
            if !back_to_client {
                self.report.ok(
                    STEP_ROUND_TRIP,
                    &format!(
                        "{registered}; GET /authorize with it, PKCE S256 and resource={} \
                         redirects to {}: a person would sign in now",
                        shown(resource),
                        shown(&location)
                    ),
                );
                return;
            }
            let pairs: Vec<(String, String)> = to
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let error = get("error");
            let fix = if error == "invalid_target" {
                format!(
                    "the server's own resource is not {resource}: set STUDIO_MCP_CONNECTOR_URL \
                     to exactly that URL and restart"
                )
            } else {
                "the server's log says why it refused the request".to_owned()
            };
            self.report.fail(
                STEP_ROUND_TRIP,
                &format!(
                    "{registered}; GET /authorize sent the client back with error {}: {}",
                    shown(&error),
                    shown(&get("error_description"))
                ),
                &fix,
            );
            return;
        }
        let fix = if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            "passkeys need the connector on a domain name over https (or localhost): set \
             STUDIO_MCP_CONNECTOR_URL to https://<name>/mcp; if it is, the server's store may be \
             down (see its log)"
        } else {
            "the server's log says why it refused the request"
        };
        self.report.fail(
            STEP_ROUND_TRIP,
            &format!(
                "{registered}; GET /authorize with it answers {}{} instead of asking a person to \
                 sign in",
                status_text(answer.status),
                answer.summary()
            ),
            fix,
        );
    }
}

/// Statuses that say "nothing here".
fn missing(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 405 | 410) || status.is_server_error()
}

fn random_b64(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
