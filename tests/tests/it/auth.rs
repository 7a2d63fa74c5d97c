//! The edge: every way a token can be wrong gets a 401 with `WWW-Authenticate`, revocation bites
//! on the very next request, sessions carry no tenant, and all of it survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::token::TokenAuthority;
use secrecy::ExposeSecret;
use serde_json::json;
use tests::harness::{TestServer, call, config_for, ok_json};
use tests::sandbox::{Fixture, Sandbox};

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

async fn raw_status(server: &TestServer, auth: Option<&str>) -> (u16, Option<String>, String) {
    let http = common::upstream::http_client().unwrap();
    let mut request = http
        .post(&server.mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(WHOAMI);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

/// A token signed with this server's real key but claims chosen by the test.
fn signing_key(server: &TestServer) -> Vec<u8> {
    let text = std::fs::read_to_string(server.data_dir.join("signing.key")).unwrap();
    hex::decode(text.trim()).unwrap()
}

fn craft(key: &[u8], aud: &str, sub: &str, exp: u64) -> String {
    let claims = json!({"sub": sub, "aud": aud, "jti": "tok_crafted", "iat": 0, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn every_bad_token_gets_401_with_a_challenge() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let key = signing_key(&server);
    let far = common::now_unix() + 3600;
    let other_key =
        TokenAuthority::from_key(b"another-servers-key-0123456789ab", &server.public_url);
    let other_dir = tempfile::tempdir().unwrap();
    let other_store = common::store::Store::open(other_dir.path()).unwrap();
    let forged = other_key
        .issue(
            &other_store,
            &common::domain::TenantId::parse("acme").unwrap(),
            "",
            3600,
            common::now_unix(),
        )
        .unwrap();

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some("Basic YWRtaW46YWRtaW4=".into()), "missing"),
        (Some("Bearer not-a-jwt".into()), "malformed"),
        (
            Some(format!("Bearer {}", forged.token.expose_secret())),
            "signature",
        ),
        (
            Some(format!(
                "Bearer {}",
                craft(&key, "http://elsewhere.example", "acme", far)
            )),
            "another server",
        ),
        (
            Some(format!(
                "Bearer {}",
                craft(&key, &server.public_url, "acme", 1_000)
            )),
            "expired",
        ),
        (
            Some(format!(
                "Bearer {}",
                craft(&key, &server.public_url, "acme", far)
            )),
            "not known",
        ),
    ];
    for (auth, reason) in cases {
        let (status, challenge, body) = raw_status(&server, auth.as_deref()).await;
        assert_eq!(status, 401, "{reason}: {body}");
        let challenge = challenge.expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(
            body.contains(reason) || challenge.contains(reason),
            "{reason}: {body} / {challenge}"
        );
        assert!(!body.contains("owner:acme"));
    }
    let (status, _, body) = raw_status(&server, Some(&format!("Bearer {}", acme.token))).await;
    assert_eq!(status, 200, "{body}");
    // The health check needs no token.
    let health = common::upstream::http_client()
        .unwrap()
        .get(server.mcp_url.replace("/mcp", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn revocation_bites_on_the_next_request_of_an_open_connection() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    ok_json(&call(&client, "whoami", json!({})).await);
    server.admin.revoke(&acme.token_id).await.unwrap();
    let after = tests::harness::try_call(&client, "whoami", json!({})).await;
    assert!(after.is_err(), "revoked token still served: {after:?}");
    let (status, challenge, _) = raw_status(&server, Some(&format!("Bearer {}", acme.token))).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("revoked"));
}

#[tokio::test]
async fn a_session_id_never_carries_another_tenants_identity() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;

    // The server is stateless: initialize hands out no session id to steal.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let http = common::upstream::http_client().unwrap();
    let response = http
        .post(&server.mcp_url)
        .bearer_auth(&acme.token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());

    // Globex's token replayed with any session id, including one acme might have used, is
    // globex and only globex.
    let acme_client = server.client(&acme.token).await;
    ok_json(&call(&acme_client, "whoami", json!({})).await);
    for session in ["acme-session", "00000000-0000-0000-0000-000000000000"] {
        let response = http
            .post(&server.mcp_url)
            .bearer_auth(&globex.token)
            .header("mcp-session-id", session)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(WHOAMI)
            .send()
            .await
            .unwrap();
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"\"tenant\":\"globex\""#), "{body}");
        assert!(!body.contains("acme"), "{body}");
    }
}

#[tokio::test]
async fn tenants_tokens_and_revocations_survive_a_restart() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    // Tokens are bound to the public URL (host and port), so both stay across the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = Some(format!("http://127.0.0.1:{port}"));

    let server = TestServer::start_with(config.clone()).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    server.admin.revoke(&globex.token_id).await.unwrap();
    server.stop().await;

    let server = TestServer::start_with(config).await;
    let tenants = server.admin.tenants().await.unwrap();
    assert_eq!(tenants.len(), 2);
    let client = server.client(&acme.token).await;
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    let sites = ok_json(&call(&client, "webflow_list_sites", json!({})).await);
    assert_eq!(
        sites["sites"][0]["id"], acme.fixture.site_id,
        "secret survived too"
    );
    let (status, challenge, _) =
        raw_status(&server, Some(&format!("Bearer {}", globex.token))).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("revoked"));
    let tokens = server.admin.tokens(None).await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .any(|t| t.id == globex.token_id && t.revoked_at.is_some())
    );
}

#[tokio::test]
async fn the_host_allow_list_follows_the_public_url() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.public_url = Some("https://mcp.studio.example".into());
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    // The token's audience is the public URL, and a request naming another host is refused.
    let http = common::upstream::http_client().unwrap();
    let send = |host: &'static str| {
        http.post(&server.mcp_url)
            .bearer_auth(&acme.token)
            .header("host", host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(WHOAMI)
            .send()
    };
    assert_eq!(
        send("mcp.studio.example").await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(send("evil.example").await.unwrap().status().as_u16(), 403);
}
