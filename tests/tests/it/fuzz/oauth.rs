//! OAuth request parsing on the connector door, from forms and bodies real connectors send:
//! the `/authorize` query (signed in or not) and the consent form, `/token` (code and refresh
//! exchanges) and `/revoke` forms, and `/register` bodies (claude.ai's, ChatGPT's, Claude
//! Code's, VS Code's). Values that must be fresh to get far — a consent ticket, an
//! authorization code, the current refresh token — are written as placeholders in the seeds
//! and filled in just before sending, so mutated requests around valid ones keep reaching the
//! code past the lookup.

use axum::body::Body;
use axum::http::Request;
use common::runtime::oauth::client_metadata::ClientMetadataFetcher;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use tests::connector::{REDIRECT, VERIFIER, hidden_fields, with};

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, Bytes, Form, contains, fill, pairs};
use crate::fuzz::world::{Answer, Server, peer, runtime, sandbox, send};

/// Stand-ins, made of unreserved characters so that encoding leaves them whole.
const TICKET: &str = "TICKETPLACEHOLDER0";
const CODE: &str = "CODEPLACEHOLDER0";
const REFRESH: &str = "REFRESHPLACEHOLDER0";

/// What a person and a connector already hold when the fuzzing starts.
struct Session {
    server: Server,
    cookie: String,
    client_id: String,
    /// The connection's current refresh token (it rotates on every use).
    refresh: String,
    access: String,
}

async fn session() -> (tests::sandbox::Sandbox, Session) {
    let sandbox = sandbox().await;
    let (server, _) = Server::shared(&sandbox).await;
    let (_, cookie) = server.person("acme", "Ada").await;
    let (client_id, access, refresh) = server.connect(&cookie).await;
    let session = Session {
        server,
        cookie,
        client_id,
        refresh,
        access,
    };
    (sandbox, session)
}

impl Session {
    fn get(&self, path_and_query: &str, cookie: bool) -> Request<Body> {
        let mut builder = Request::get(path_and_query).header("host", &self.server.connector_host);
        if cookie {
            builder = builder.header("cookie", &self.cookie);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn post(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
        let mut builder = Request::post(path).header("host", &self.server.connector_host);
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        builder.body(Body::from(body)).unwrap()
    }

    /// The consent page's hidden fields for this session's client, through the router.
    async fn consent_fields(&self) -> Result<Vec<(String, String)>, String> {
        let query = Form {
            pairs: self.server.authorize_params(self.client_id.as_str()),
            raw: false,
            ops: Vec::new(),
        }
        .to_query();
        let page = send(
            &self.server.connector,
            self.get(&format!("/authorize?{query}"), true),
            peer(1),
        )
        .await?;
        Ok(hidden_fields(&page.text()))
    }

    /// A fresh authorization code: the person allows the client again, through the router.
    async fn fresh_code(&self) -> Result<Option<String>, String> {
        let form = Form {
            pairs: with(&self.consent_fields().await?, "decision", "allow"),
            raw: false,
            ops: Vec::new(),
        };
        let mut request = self.post(
            "/authorize",
            Some("application/x-www-form-urlencoded"),
            form.to_bytes(),
        );
        request.headers_mut().insert(
            "cookie",
            self.cookie.parse().map_err(|e| format!("cookie: {e}"))?,
        );
        let answer = send(&self.server.connector, request, peer(1)).await?;
        Ok(answer
            .headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| reqwest::Url::parse(l).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            }))
    }

    /// A new connection (code and exchange) when the current refresh token has been spent.
    async fn reconnect(&mut self) -> Result<(), String> {
        let Some(code) = self.fresh_code().await? else {
            return Err("the person could not allow the client again".into());
        };
        let form = Form {
            pairs: self.token_pairs(&code),
            raw: false,
            ops: Vec::new(),
        };
        let answer = send(
            &self.server.connector,
            self.post(
                "/token",
                Some("application/x-www-form-urlencoded"),
                form.to_bytes(),
            ),
            peer(1),
        )
        .await?;
        let tokens: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        match tokens["refresh_token"].as_str() {
            Some(refresh) => {
                self.refresh = refresh.to_owned();
                Ok(())
            }
            None => Err(format!("a fresh code was not exchanged: {}", answer.text())),
        }
    }

    fn token_pairs(&self, code: &str) -> Vec<(String, String)> {
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", self.server.connector_url.as_str()),
        ])
    }
}

/// Whether the form names a client by a metadata document URL: the server would fetch it
/// from the internet, which a fuzzer must not make it do (documents are fuzzed directly, see
/// `client_metadata.rs`).
fn would_fetch(form: &[u8]) -> bool {
    form_pairs(form)
        .iter()
        .any(|(k, v)| k == "client_id" && ClientMetadataFetcher::is_metadata_url(v))
}

/// A form's pairs as the server's form decoder reads them.
fn form_pairs(form: &[u8]) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://form.invalid/").unwrap();
    let query: String = form
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() && *b != b'#' {
                char::from(*b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    url.set_query(Some(&query));
    url.query_pairs().into_owned().collect()
}

/// The kind of an OAuth error answer, or the status.
fn outcome(what: &str, answer: &Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    match body["error"].as_str() {
        Some(error) if error.len() < 40 => format!("{what} {} {error}", answer.status.as_u16()),
        _ => format!("{what} {}", answer.status.as_u16()),
    }
}

fn context(session: &Session) -> Vec<String> {
    vec![
        session.client_id.clone(),
        session.server.connector_url.clone(),
        session.server.connector_origin.clone(),
        REDIRECT.into(),
        VERIFIER.into(),
        tests::connector::pkce_challenge(VERIFIER),
        TICKET.into(),
        CODE.into(),
        REFRESH.into(),
        "dcr_0000000000000000".into(),
    ]
}

// ---- /authorize ----

#[derive(Clone, Debug)]
enum Authorize {
    Show {
        query: Form,
        cookie: bool,
    },
    Decide {
        form: Form,
        cookie: bool,
        origin: Option<String>,
    },
}

/// `GET /authorize` and the consent form, as a browser sends them.
#[test]
fn oauth_authorize() {
    let rt = runtime();
    let (_sandbox, session) = rt.block_on(session());
    let params = session.server.authorize_params(session.client_id.as_str());
    let consent = rt.block_on(session.consent_fields()).unwrap();
    assert!(
        consent.iter().any(|(k, _)| k == "consent"),
        "a consent page: {consent:?}"
    );
    let consent: Vec<(String, String)> = consent
        .into_iter()
        .map(|(k, v)| {
            if k == "consent" {
                (k, TICKET.into())
            } else {
                (k, v)
            }
        })
        .collect();
    let context = context(&session);
    let queries = vec![
        params.clone(),
        with(&params, "prompt", "consent"),
        pairs(&[
            ("client_id", session.client_id.as_str()),
            ("response_type", "code"),
        ]),
        Vec::new(),
    ];
    let forms = vec![
        with(&consent, "decision", "allow"),
        with(&consent, "decision", "deny"),
    ];
    let origins = vec![
        session.server.connector_origin.clone(),
        "https://evil.example".into(),
        "null".into(),
    ];
    let strategy = prop_oneof![
        (mutate::form(queries, &context), prop::bool::weighted(0.7))
            .prop_map(|(query, cookie)| Authorize::Show { query, cookie }),
        (
            mutate::form(forms, &context),
            prop::bool::weighted(0.9),
            prop_oneof![6 => Just(Some(origins[0].clone())), 1 => Just(None),
                        1 => select(origins).prop_map(Some)],
        )
            .prop_map(|(form, cookie, origin)| Authorize::Decide {
                form,
                cookie,
                origin
            }),
    ];
    fuzz("oauth_authorize", strategy, |input| {
        rt.block_on(async {
            let (what, request) = match input {
                Authorize::Show { query, cookie } => {
                    if would_fetch(&query.to_bytes()) {
                        note("skipped: a metadata URL");
                        return Ok(());
                    }
                    let Ok(uri) =
                        format!("/authorize?{}", query.to_query()).parse::<axum::http::Uri>()
                    else {
                        note("not sendable");
                        return Ok(());
                    };
                    ("show", session.get(&uri.to_string(), *cookie))
                }
                Authorize::Decide {
                    form,
                    cookie,
                    origin,
                } => {
                    let mut body = form.to_bytes();
                    if would_fetch(&body) {
                        note("skipped: a metadata URL");
                        return Ok(());
                    }
                    if contains(&body, TICKET) {
                        // A ticket is single-use: render the page again for a fresh one.
                        let fresh = session.consent_fields().await?;
                        let ticket = fresh
                            .iter()
                            .find(|(k, _)| k == "consent")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        body = fill(&body, TICKET, &ticket);
                    }
                    let mut request = session.post(
                        "/authorize",
                        Some("application/x-www-form-urlencoded"),
                        body,
                    );
                    if *cookie {
                        request
                            .headers_mut()
                            .insert("cookie", session.cookie.parse().unwrap());
                    }
                    if let Some(origin) = origin.as_deref().and_then(|o| o.parse().ok()) {
                        request.headers_mut().insert("origin", origin);
                    }
                    ("decide", request)
                }
            };
            let answer = send(&session.server.connector, request, peer(7)).await?;
            note(format!("{what} {}", answer.status.as_u16()));
            Ok(())
        })
    });
}

// ---- /token and /revoke ----

#[derive(Clone, Debug)]
enum TokenCall {
    Token {
        form: Form,
        content_type: Option<String>,
    },
    Revoke {
        form: Form,
    },
}

/// `/token` (code and refresh exchanges, other grants) and `/revoke`.
#[test]
fn oauth_token_and_revoke() {
    let rt = runtime();
    let (_sandbox, mut session) = rt.block_on(session());
    let context = context(&session);
    let client_id = session.client_id.clone();
    let token_forms = vec![
        session.token_pairs(CODE),
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH),
            ("client_id", client_id.as_str()),
        ]),
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH),
            ("client_id", client_id.as_str()),
            ("resource", session.server.connector_url.as_str()),
            ("scope", "mcp"),
        ]),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
        ]),
        pairs(&[
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "b"),
        ]),
    ];
    let revoke_forms = vec![
        pairs(&[
            ("token", session.access.as_str()),
            ("token_type_hint", "access_token"),
        ]),
        pairs(&[
            ("token", REFRESH),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id.as_str()),
        ]),
        pairs(&[("token", "x")]),
    ];
    let content_types = select(vec![
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/json",
        "multipart/form-data",
        "",
    ]);
    let strategy = prop_oneof![
        6 => (
            mutate::form(token_forms, &context),
            prop_oneof![
                10 => Just(Some("application/x-www-form-urlencoded".to_owned())),
                1 => Just(None),
                1 => content_types.prop_map(|c| Some(c.to_owned())),
            ],
        )
            .prop_map(|(form, content_type)| TokenCall::Token { form, content_type }),
        1 => mutate::form(revoke_forms, &context).prop_map(|form| TokenCall::Revoke { form }),
    ];
    fuzz("oauth_token_and_revoke", strategy, |input| {
        rt.block_on(async {
            let (path, form, content_type) = match input {
                TokenCall::Token { form, content_type } => ("/token", form, content_type.clone()),
                TokenCall::Revoke { form } => (
                    "/revoke",
                    form,
                    Some("application/x-www-form-urlencoded".to_owned()),
                ),
            };
            let mut body = form.to_bytes();
            if would_fetch(&body) {
                note("skipped: a metadata URL");
                return Ok(());
            }
            let mut secrets = vec![session.refresh.clone(), session.access.clone()];
            if contains(&body, CODE) {
                let code = session.fresh_code().await?.unwrap_or_default();
                body = fill(&body, CODE, &code);
                secrets.push(code);
            }
            let refreshing = contains(&body, REFRESH);
            body = fill(&body, REFRESH, &session.refresh);
            let request = session.post(path, content_type.as_deref(), body.clone());
            let answer = send(&session.server.connector, request, peer(9)).await?;
            note(outcome(path, &answer));
            // A refusal never repeats the code or token it refused, nor shows one it was not
            // sent (a caller's own text in another field, e.g. `grant_type`, may come back).
            let text = answer.text();
            if !answer.status.is_success() {
                let refused: Vec<String> = form_pairs(&body)
                    .into_iter()
                    .filter(|(k, _)| matches!(k.as_str(), "code" | "refresh_token" | "token"))
                    .map(|(_, v)| v)
                    .collect();
                if let Some(secret) = secrets.iter().find(|s| {
                    s.len() >= 16
                        && text.contains(s.as_str())
                        && (!contains(&body, s) || refused.iter().any(|r| r == *s))
                }) {
                    return Err(format!("a refusal carries {secret:?}: {text}"));
                }
            }
            if refreshing {
                let tokens: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
                match tokens["refresh_token"].as_str() {
                    Some(next) => session.refresh = next.to_owned(),
                    // Spent or revoked (a rotated-out token presented again revokes the
                    // grant): connect again, so the next refresh can succeed.
                    None if path == "/token" || answer.status.is_success() => {
                        session.reconnect().await?;
                    }
                    None => {}
                }
            }
            Ok(())
        })
    });
}

// ---- /register ----

/// Dynamic client registration bodies, as connectors send them.
#[test]
fn oauth_register() {
    let rt = runtime();
    let (_sandbox, session) = rt.block_on(session());
    let context = context(&session);
    let seeds = vec![
        json!({
            "client_name": "Claude",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp",
        }),
        json!({
            "client_name": "ChatGPT",
            "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }),
        json!({
            "client_name": "Claude Code (studio)",
            "redirect_uris": ["http://localhost:54212/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "client_uri": "https://claude.com/claude-code",
        }),
        json!({
            "client_name": "Visual Studio Code",
            "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "logo_uri": "https://code.visualstudio.com/favicon.ico",
            "contacts": ["ops@example.com"],
            "software_id": "vscode",
            "software_version": "1.99",
        }),
        json!({"redirect_uris": ["com.example.app:/oauth2redirect"]}),
        json!({"redirect_uris": [REDIRECT], "client_name": "\u{202e}tnatsissA"}),
    ];
    fuzz(
        "oauth_register",
        mutate::json_body(seeds, &context, &["/redirect_uris/", "/"]),
        |body: &Bytes| {
            rt.block_on(async {
                let request = session.post("/register", Some("application/json"), body.0.clone());
                let answer = send(&session.server.connector, request, peer(11)).await?;
                note(outcome("register", &answer));
                Ok(())
            })
        },
    );
}
