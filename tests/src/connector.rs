//! Connecting through the connector door the way a person and an assistant do, over real HTTP: the
//! studio invites a person, their browser registers a passkey (`passkey.rs`), an assistant
//! registers itself, the person allows it on the consent page, the assistant exchanges the code.
//! The OAuth tests and the isolation property test share it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use base64::Engine as _;
use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{AuditFilter, InviteRequest, Invited, IssueRequest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::TestServer;
use crate::passkey::{self, SoftPasskey};
use crate::sandbox::{Fixture, Sandbox};

/// Where the assistant wants the person's browser back (never followed: tests read the 303).
pub const REDIRECT: &str = "https://assistant.example/oauth/callback";
/// A PKCE verifier of the allowed shape (43-128 unreserved characters).
pub const VERIFIER: &str = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const STATE: &str = "state-5f2c";
pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"oauth-test","version":"1"}}}"#;

// ---- setup ----

/// Where a server's doors are and who operates it: an in-process [`TestServer`], or a real
/// binary run as a child process.
pub trait Doors {
    /// The static door's origin.
    fn public_url(&self) -> &str;
    /// The connector door's origin: the authorization server, sign-in and approval pages.
    fn connector_origin(&self) -> &str;
    /// The connector door's `/mcp`: the resource, and every access token's audience.
    fn connector_url(&self) -> &str;
    fn admin(&self) -> &AdminClient;
}

impl Doors for TestServer {
    fn public_url(&self) -> &str {
        &self.public_url
    }
    fn connector_origin(&self) -> &str {
        &self.connector_origin
    }
    fn connector_url(&self) -> &str {
        &self.connector_url
    }
    fn admin(&self) -> &AdminClient {
        &self.admin
    }
}

/// A running server as a person's browser and an assistant see it.
pub struct Site<S = TestServer> {
    pub server: S,
    pub http: reqwest::Client,
}

/// A person with a registered passkey and a signed-in browser session.
pub struct Person {
    pub id: String,
    pub passkey: SoftPasskey,
    pub cookie: String,
}

/// What an assistant holds once connected: its client id and its tokens.
pub struct Connection {
    pub client_id: String,
    pub access: String,
    pub refresh: String,
}

/// One HTTP answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    /// The query of the `Location` a 303 points at, with the URL before it.
    pub fn redirect(&self) -> (String, HashMap<String, String>) {
        assert_eq!(self.status, 303, "expected a redirect: {}", self.text);
        let location = reqwest::Url::parse(&self.header("location").expect("Location")).unwrap();
        let query = location.query_pairs().into_owned().collect();
        let mut base = location.clone();
        base.set_query(None);
        (base.to_string(), query)
    }

    /// A page for the person, and no redirect anywhere.
    pub fn assert_page(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.header("location").is_none(), "no redirect expected");
        assert!(self.text.contains("<html"), "an HTML page: {}", self.text);
    }

    /// An RFC 6749 error answer from the token endpoint.
    pub fn assert_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json()["error"], error, "{}", self.text);
        assert!(self.json()["error_description"].as_str().is_some());
    }
}

pub async fn sandbox() -> Sandbox {
    Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap()
}

/// The shared server on localhost with tenants `acme` and `globex`.
pub async fn shared(sandbox: &Sandbox) -> Site {
    shared_with(sandbox, |_| {}).await
}

pub async fn shared_with(sandbox: &Sandbox, adjust: impl Fn(&mut common::config::Config)) -> Site {
    let server = TestServer::start_on_localhost_with(sandbox, &shared_server::SHARED, adjust).await;
    for owner in ["acme", "globex"] {
        server
            .provision(sandbox.fixture().owner(owner).unwrap())
            .await;
    }
    Site::new(server)
}

pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `params` with `key` set to `value` (added if absent).
pub fn with(params: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out = without(params, key);
    out.push((key.to_owned(), value.to_owned()));
    out
}

pub fn without(params: &[(String, String)], key: &str) -> Vec<(String, String)> {
    params.iter().filter(|(k, _)| k != key).cloned().collect()
}

/// The hidden fields of the consent page's form, as a browser would submit them.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let form = html.split("</form>").next().unwrap_or_default();
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + input[start..].find('"').unwrap();
                unescape(&input[start..end])
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

/// The CSRF token of an approval page's decision form.
pub fn form_csrf(page: &Answer) -> String {
    assert!(
        page.text.contains("name=\"decision\" value=\"approve\""),
        "no decision form: {}",
        page.text
    );
    field(&hidden_fields(&page.text), "csrf").to_owned()
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name}"))
}

impl<S: Doors> Site<S> {
    pub fn new(server: S) -> Site<S> {
        let http = passkey::browser(server.connector_origin());
        Site { server, http }
    }

    /// `path` on the connector door's origin (authorization server, people's pages).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.connector_origin())
    }

    /// `path` on the static door's origin.
    pub fn static_url(&self, path: &str) -> String {
        format!("{}{path}", self.server.public_url())
    }

    /// The connector door's MCP endpoint: the resource, and every access token's audience.
    pub fn connector_url(&self) -> String {
        self.server.connector_url().to_owned()
    }

    pub async fn invite(&self, tenant: &str, name: &str) -> Invited {
        self.invite_as(tenant, name, None).await
    }

    /// An invite with `role` (`member` or `approver`; `None` is the default, member).
    pub async fn invite_as(&self, tenant: &str, name: &str, role: Option<&str>) -> Invited {
        self.server
            .admin()
            .invite_person(
                tenant,
                &InviteRequest {
                    name: name.into(),
                    email: None,
                    role: role.map(str::to_owned),
                    expires_days: None,
                },
            )
            .await
            .unwrap()
    }

    /// Invites `name` to `tenant` and registers their passkey through the invite link.
    pub async fn person(&self, tenant: &str, name: &str) -> Person {
        self.person_as(tenant, name, None).await
    }

    /// An approver of `tenant` (may approve high-risk actions), signed in.
    pub async fn approver(&self, tenant: &str, name: &str) -> Person {
        self.person_as(tenant, name, Some("approver")).await
    }

    /// [`Self::person`] with `role`.
    pub async fn person_as(&self, tenant: &str, name: &str, role: Option<&str>) -> Person {
        let invited = self.invite_as(tenant, name, role).await;
        let (passkey, cookie) =
            passkey::register_with_invite(&self.http, &invited.invite_url).await;
        Person {
            id: invited.person.id,
            passkey,
            cookie,
        }
    }

    /// Dynamic client registration; the answer.
    pub async fn try_register(&self, metadata: &Value) -> Answer {
        let response = self
            .http
            .post(self.url("/register"))
            .json(metadata)
            .send()
            .await
            .unwrap();
        Answer::read(response).await
    }

    /// Registers an assistant called "Test Assistant"; its `client_id`.
    pub async fn register_client(&self) -> String {
        let answer = self
            .try_register(&json!({
                "client_name": "Test Assistant",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json()["client_id"].as_str().unwrap().to_owned()
    }

    /// The authorization request an assistant sends, every parameter right.
    pub fn params(&self, client_id: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("state", STATE),
            ("resource", &self.connector_url()),
            ("scope", "mcp"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `GET /authorize?params` with the person's session cookie.
    pub async fn authorize_page(
        &self,
        cookie: Option<&str>,
        params: &[(String, String)],
    ) -> Answer {
        let mut request = self.http.get(self.url("/authorize")).query(params);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    /// `POST /authorize`: the consent form as the person's browser submits it.
    pub async fn submit_consent(&self, cookie: &str, form: &[(String, String)]) -> Answer {
        self.submit_consent_from(self.server.connector_origin(), cookie, form)
            .await
    }

    /// [`Self::submit_consent`] with the `Origin` header the browser sends.
    pub async fn submit_consent_from(
        &self,
        origin: &str,
        cookie: &str,
        form: &[(String, String)],
    ) -> Answer {
        let response = self
            .http
            .post(self.url("/authorize"))
            .header("cookie", cookie)
            .header("origin", origin)
            .form(form)
            .send()
            .await
            .unwrap();
        Answer::read(response).await
    }

    /// The consent form `person` is shown for `params`, ready to submit with a decision.
    pub async fn consent_form(
        &self,
        person: &Person,
        params: &[(String, String)],
    ) -> Vec<(String, String)> {
        let page = self.authorize_page(Some(&person.cookie), params).await;
        assert_eq!(page.status, 200, "consent page: {}", page.text);
        hidden_fields(&page.text)
    }

    /// The person allows `client_id`; the code from the redirect.
    pub async fn allow(&self, person: &Person, client_id: &str) -> String {
        let form = self.consent_form(person, &self.params(client_id)).await;
        let answer = self
            .submit_consent(&person.cookie, &with(&form, "decision", "allow"))
            .await;
        let (_, query) = answer.redirect();
        query["code"].clone()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        Answer::read(response).await
    }

    pub async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> Answer {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("resource", &self.connector_url()),
        ])
        .await
    }

    pub async fn refresh(&self, client_id: &str, refresh: &str) -> Answer {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id),
        ])
        .await
    }

    /// `name` of `tenant` is invited and registers a passkey, an assistant registers, and the
    /// person allows it: the person, the assistant's client id and the code.
    pub async fn allowed(&self, tenant: &str, name: &str) -> (Person, String, String) {
        let person = self.person(tenant, name).await;
        let client_id = self.register_client().await;
        let code = self.allow(&person, &client_id).await;
        (person, client_id, code)
    }

    /// A new assistant registers, `person` allows it, and it exchanges the code.
    pub async fn connect(&self, person: &Person) -> Connection {
        let client_id = self.register_client().await;
        let code = self.allow(person, &client_id).await;
        let answer = self.exchange(&client_id, &code, VERIFIER).await;
        assert_eq!(answer.status, 200, "token: {}", answer.text);
        let tokens = answer.json();
        Connection {
            client_id,
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// `GET /approve/{id}` (an isolated instance's approval page) with `cookie`.
    pub async fn approval_page(&self, cookie: Option<&str>, id: &str) -> Answer {
        let mut request = self.http.get(self.url(&format!("/approve/{id}")));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    /// `POST /approve/{id}` as a browser on a page of `origin` sends it.
    pub async fn post_approval(
        &self,
        origin: &str,
        cookie: Option<&str>,
        id: &str,
        form: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .post(self.url(&format!("/approve/{id}")))
            .header("origin", origin)
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    /// An approver opens the approval page and decides (`approve` or `deny`): the answer.
    pub async fn decide(&self, person: &Person, id: &str, decision: &str) -> Answer {
        let page = self.approval_page(Some(&person.cookie), id).await;
        page.assert_page(200);
        let csrf = form_csrf(&page);
        let origin = self.server.connector_origin();
        let form = [("csrf", csrf.as_str()), ("decision", decision)];
        self.post_approval(origin, Some(&person.cookie), id, &form)
            .await
    }

    /// A raw `initialize` to `url` (either door's `/mcp`) with `token`.
    pub async fn mcp_post(&self, url: &str, token: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    /// The status the connector door's `/mcp` answers an `initialize` with `token`.
    pub async fn connector_status(&self, token: &str) -> u16 {
        self.mcp_post(&self.connector_url(), Some(token))
            .await
            .status
    }

    /// Whether `cookie` is a live session (the home page greets the person).
    pub async fn signed_in(&self, cookie: &str) -> bool {
        let response = self
            .http
            .get(self.url("/"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        Answer::read(response)
            .await
            .text
            .contains("You are signed in as")
    }

    /// A fresh static bearer token for `/mcp`.
    pub async fn static_token(&self, tenant: &str) -> String {
        let request = IssueRequest {
            label: Some("static".into()),
            ttl_days: None,
        };
        let issued = self.server.admin().issue_token(tenant, &request).await;
        issued.unwrap().token
    }

    pub async fn grants(&self) -> Vec<common::store::people::GrantView> {
        self.server.admin().grants(None).await.unwrap()
    }

    pub async fn audit(&self) -> Vec<common::audit::AuditRecord> {
        self.server
            .admin()
            .audit(&AuditFilter {
                limit: Some(1000),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }
}
