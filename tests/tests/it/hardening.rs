//! Issue 9's defects, each proven closed through the real HTTP interfaces of an in-process
//! server: onboarding rollback, offboarding, Host/Origin checks, rate limits on every request,
//! bounded upstream waits and bodies, single-flight scope rebuilds, credential echoes, private
//! files without credentials in clear, billing return URLs, bearer scheme case. (Defects that need the real
//! binary — start-up refusals, connection floods, logs — are in `hardening_binary.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::runtime::admin::{NewTenant, OnboardRequest};
use serde_json::{Value, json};
use tests::harness::{TestServer, call, config_for, error_text, eventually, ok_json, result_text};
use tests::sandbox::{Failure, Fixture, OwnerFixture, Sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn onboard_request(owner: &OwnerFixture) -> OnboardRequest {
    serde_json::from_value(json!({
        "id": owner.owner,
        "spec": {"name": "Onboarded", "webflow_sites": [owner.site_id]},
        "secrets": BTreeMap::from([("webflow".to_owned(), owner.token.clone())]),
    }))
    .unwrap()
}

fn new_tenant(owner: &OwnerFixture, name: &str) -> NewTenant {
    serde_json::from_value(
        json!({"id": owner.owner, "name": name, "webflow_sites": [owner.site_id]}),
    )
    .unwrap()
}

/// A raw JSON-RPC POST with the given extra headers; status and body.
async fn post(
    server: &TestServer,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    server.post_raw_with(Some(token), headers, body).await
}

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

/// Defect 3: an onboarding that fails because `tenant add` for the same id landed while it
/// verified credentials must not remove that other request's tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_onboarding_removes_nothing_it_did_not_write() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();

    // The onboarding's first Webflow check is slow; while it waits, the tenant is added.
    sandbox.fail_next(Failure::slow(Duration::from_millis(1500)), 1);
    let request = onboard_request(&acme);
    let meanwhile = async {
        eventually(
            "onboarding reached Webflow",
            Duration::from_secs(10),
            || async {
                match sandbox.pending_failures() {
                    0 => Ok(()),
                    pending => Err(format!("{pending} failure(s) pending")),
                }
            },
        )
        .await;
        server
            .admin
            .add_tenant(&new_tenant(&acme, "Added meanwhile"))
            .await
            .unwrap();
        server
            .admin
            .set_secret("acme", "webflow", acme.token.clone())
            .await
            .unwrap();
        server
            .admin
            .issue_token("acme", &common::runtime::admin::IssueRequest::default())
            .await
            .unwrap()
    };
    let (onboarded, issued) = tokio::join!(server.admin.onboard(&request), meanwhile);

    let err = onboarded.unwrap_err().to_string();
    assert!(
        err.contains("already exists") && err.contains("409"),
        "{err}"
    );
    let kept = server.admin.tenant("acme").await.unwrap();
    assert_eq!(kept.tenant.name, "Added meanwhile");
    assert_eq!(kept.secrets, vec!["webflow".to_owned()]);
    assert_eq!(kept.active_tokens, 1);
    let client = server.client(&issued.token).await;
    assert_eq!(
        ok_json(&call(&client, "whoami", json!({})).await)["tenant"],
        "acme"
    );
}

/// Defect 4: removing a tenant revokes its tokens for good — a tenant created later under the
/// same id gets none of them — deletes its secrets, keeps its audit history and is audited; on
/// the isolated server too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_tenant_revokes_its_tokens_for_good() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    let client = server.client(&acme.token).await;
    ok_json(&call(&client, "webflow_list_sites", json!({})).await);

    let http = common::upstream::http_client().unwrap();
    let unconfirmed = http
        .delete(format!("{}/v1/tenants/acme", server.admin_url))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(unconfirmed.status().as_u16(), 400);
    assert!(
        unconfirmed
            .text()
            .await
            .unwrap()
            .contains("cannot be undone")
    );

    let removed = server.admin.remove_tenant("acme").await.unwrap();
    assert_eq!((removed.tokens_revoked, removed.secrets_deleted), (1, 3));
    let (status, _) = post(&server, &acme.token, &[], WHOAMI).await;
    assert_eq!(status, 401);

    // Same id again: the old token stays refused, and nothing of the old secrets is there.
    server
        .admin
        .add_tenant(&new_tenant(
            sandbox.fixture().owner("acme").unwrap(),
            "Acme again",
        ))
        .await
        .unwrap();
    let (status, body) = post(&server, &acme.token, &[], WHOAMI).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    let again = server.admin.tenant("acme").await.unwrap();
    assert!(
        again.secrets.is_empty() && again.active_tokens == 0,
        "{again:?}"
    );
    // Another tenant is untouched.
    let (status, _) = post(&server, &globex.token, &[], WHOAMI).await;
    assert_eq!(status, 200);

    let audit = server
        .admin
        .audit(&common::runtime::admin::AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"admin:tenant_remove"), "{actions:?}");
    assert!(
        actions.contains(&"webflow_list_sites"),
        "history kept: {actions:?}"
    );
    assert!(
        server
            .admin
            .remove_tenant("nobody")
            .await
            .unwrap_err()
            .to_string()
            .contains("404")
    );

    // The isolated server offboards its one tenant the same way.
    let isolated = TestServer::start_isolated(&sandbox, "acme").await;
    let tenant = isolated
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let removed = isolated.admin.remove_tenant("acme").await.unwrap();
    assert_eq!(removed.tokens_revoked, 1);
    let (status, _) = post(&isolated, &tenant.token, &[], WHOAMI).await;
    assert_eq!(status, 401);
}

/// Defect 5: a foreign `Origin`, a `Host` with another port, and an absolute-form target naming
/// another authority get 403; requests without `Origin` are untouched.
#[tokio::test]
async fn foreign_origins_hosts_and_targets_are_refused() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let public = server.public_url.clone();
    let authority = public.trim_start_matches("http://").to_owned();

    assert_eq!(post(&server, &acme.token, &[], WHOAMI).await.0, 200);
    assert_eq!(
        post(&server, &acme.token, &[("origin", &public)], WHOAMI)
            .await
            .0,
        200
    );
    for origin in [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        &public.replace("http", "https"),
    ] {
        let (status, body) = post(&server, &acme.token, &[("origin", origin)], WHOAMI).await;
        assert_eq!(status, 403, "Origin {origin}: {body}");
    }
    let (status, body) = post(&server, &acme.token, &[("host", "127.0.0.1:1")], WHOAMI).await;
    assert_eq!(status, 403, "{body}");

    // Absolute-form request target naming another server, sent by hand.
    let mut socket = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let request = format!(
        "POST http://evil.example/mcp HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{WHOAMI}",
        acme.token,
        WHOAMI.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

/// Defect 6: resource reads and calls to unknown tools count against the tenant's limit like
/// any tool call, and a refused tenant cannot grow the audit log faster than its limit.
#[tokio::test]
async fn every_authenticated_request_counts_against_the_rate_limit() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    // Six a minute: a bucket of one request, then one every ten seconds.
    let acme = server
        .provision_with(
            sandbox.fixture().owner("acme").unwrap(),
            json!({"rate_limit_per_min": 6}),
        )
        .await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"resources/list","params":{}}"#;
    let (status, first) = post(&server, &acme.token, &[], list).await;
    assert_eq!(status, 200);
    assert!(first.contains("\"result\""), "{first}");
    sandbox.clear_requests();
    for _ in 0..5 {
        let (_, body) = post(&server, &acme.token, &[], list).await;
        assert!(body.contains("rate limit reached; retry after"), "{body}");
    }
    assert!(
        sandbox.requests().is_empty(),
        "refused reads still called Webflow"
    );

    let unknown = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}"#;
    for _ in 0..50 {
        let (_, body) = post(&server, &acme.token, &[], unknown).await;
        assert!(body.contains("rate limit reached"), "{body}");
    }
    let records = server
        .admin
        .audit(&common::runtime::admin::AuditFilter {
            tenant: Some("acme".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let calls = records
        .iter()
        .filter(|r| !r.action.starts_with("admin:"))
        .count();
    // Fifty-five refused requests, at most a few audit records (one per second per tenant).
    assert!(calls <= 4, "{calls} audit records for refused requests");
    // The other tenant is not slowed.
    for _ in 0..10 {
        assert_eq!(post(&server, &globex.token, &[], list).await.0, 200);
    }
}

/// Defect 7: waiting for Webflow quota is bounded by STUDIO_MCP_MAX_RETRY_WAIT_MS as a whole,
/// however many calls queue up; past it, a readable "retry after".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_waits_end_within_the_configured_wait() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.webflow_rate_per_min = 60; // a minute's burst of 60, then one a second
    config.max_retry_wait_ms = 1000;
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = std::sync::Arc::new(server.client(&acme.token).await);

    let started = Instant::now();
    // Eighty different reads: identical ones would share one upstream request (the read cache).
    let calls: Vec<_> = (0..80)
        .map(|offset| {
            let client = client.clone();
            tokio::spawn(async move {
                let result = call(&client, "webflow_list_pages", json!({"offset": offset})).await;
                (result, Instant::now())
            })
        })
        .collect();
    let mut refused = 0;
    let mut last = started;
    for handle in calls {
        let (result, at) = handle.await.unwrap();
        last = last.max(at);
        if result.is_error == Some(true) {
            let text = error_text(&result);
            assert!(
                text.contains("rate limiting this client; retry after"),
                "{text}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 10, "only {refused} of 80 calls were refused");
    // Twenty calls past the burst, each may wait at most a second: none waits a queue's worth.
    let took = last.duration_since(started);
    assert!(
        took < Duration::from_secs(8),
        "the slowest call took {took:?}"
    );
}

/// Defect 8: an upstream answer larger than STUDIO_MCP_MAX_UPSTREAM_BODY_BYTES is refused with
/// a clear tool error, error answers too.
#[tokio::test]
async fn oversized_upstream_answers_are_refused() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.max_upstream_body_bytes = 64 * 1024;
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;

    let padding = "x".repeat(1024 * 1024);
    sandbox.fail_next(
        Failure {
            body: Some(json!({"sites": [], "pad": padding}).to_string()),
            ..Failure::status(200)
        },
        1,
    );
    let text = error_text(&call(&client, "webflow_list_sites", json!({})).await);
    assert!(text.contains("larger than 64 KiB"), "{text}");
    sandbox.fail_next(
        Failure {
            body: Some(json!({"message": padding}).to_string()),
            ..Failure::status(400)
        },
        1,
    );
    let text = error_text(&call(&client, "webflow_list_sites", json!({})).await);
    assert!(
        text.contains("HTTP 400") && text.len() < 1024,
        "{}",
        &text[..text.len().min(300)]
    );
    // Normal answers still pass.
    ok_json(&call(&client, "webflow_list_sites", json!({})).await);
}

/// Defect 9: twenty concurrent calls naming unknown page ids rebuild the tenant's index once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_ids_rebuild_the_index_once() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = std::sync::Arc::new(server.client(&acme.token).await);
    sandbox.clear_requests();
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let page = format!("{i:024x}");
                call(
                    &client,
                    "webflow_get_page_content",
                    json!({"page_id": page}),
                )
                .await
            })
        })
        .collect();
    for handle in calls {
        let text = error_text(&handle.await.unwrap());
        assert!(
            text.contains("is not one of this tenant's resources"),
            "{text}"
        );
    }
    let listings = sandbox
        .requests()
        .iter()
        .filter(|r| r.path.contains("/pages") || r.path.ends_with("/collections"))
        .count();
    // One rebuild: the site's pages and its collections, once each.
    assert_eq!(listings, 2, "{:#?}", sandbox.requests());
}

/// Defect 11: an upstream that echoes the tenant's credential in an error or a success body
/// never hands it to the model.
#[tokio::test]
async fn an_echoed_credential_never_reaches_the_tool_result() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let secret = acme.fixture.token.clone();
    let cut = &secret[..secret.len() - 3];
    let answers = [
        Failure {
            body: Some(json!({"message": format!("bad token {secret}")}).to_string()),
            ..Failure::status(401)
        },
        Failure {
            body: Some(json!({"message": format!("token {cut}…")}).to_string()),
            ..Failure::status(403)
        },
        Failure {
            body: Some(json!({"sites": [{"id": secret}]}).to_string()),
            ..Failure::status(200)
        },
        Failure {
            body: Some(json!({"sites": 5, "echo": secret}).to_string()),
            ..Failure::status(200)
        },
    ];
    for answer in answers {
        sandbox.fail_next(answer, 1);
        let result = call(&client, "webflow_list_sites", json!({})).await;
        let text = result_text(&result);
        assert_eq!(result.is_error, Some(true), "{text}");
        assert!(!text.contains(cut), "credential in the result: {text}");
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

/// Defect 12: the data dir and everything in it are private (also when the dir existed with
/// looser modes), and no file holds a bearer token or an upstream credential in clear. (Pending
/// approvals are stored with their arguments, which the approval page shows anyway.)
#[tokio::test]
async fn the_data_dir_is_private_and_holds_no_credential_in_clear() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("leftover"), "x").unwrap();
    std::fs::set_permissions(dir.join("leftover"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = config_for(&dir, &sandbox.base_url());
    config.tenant = Some("acme".into());
    let server = TestServer::start_spec(config, &isolated_server::ISOLATED).await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = server.client(&acme.token).await;
    let step = ok_json(&call(&client, "billing_create_portal_session", json!({})).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    let approval = step["approval_id"].as_str().unwrap().to_owned();
    server.stop().await;

    assert_eq!(mode(&dir), 0o700);
    let mut paths = Vec::new();
    walk(&dir, &mut paths);
    assert!(paths.len() > 5, "{paths:?}");
    let f = &acme.fixture;
    let secrets = [
        ("the MCP token", &acme.token),
        ("the Webflow token", &f.token),
        ("the Webflow App token", &f.webflow_app_token),
        ("the Cloudflare token", &f.cloudflare_token),
        ("the Stripe key", &f.stripe_key),
    ];
    let mut approval_stored = false;
    for path in &paths {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(path), want, "{}", path.display());
        if path.is_file() {
            let bytes = std::fs::read(path).unwrap();
            let holds = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
            for (what, secret) in &secrets {
                assert!(
                    !holds(secret),
                    "{what} is stored in clear in {}",
                    path.display()
                );
            }
            approval_stored |= holds(&approval);
        }
    }
    // The walk did read the store: the pending approval is in it.
    assert!(
        approval_stored,
        "the approval was not found in the data dir"
    );
}

/// Defect 13: the billing portal sends people back only to the client's own domains.
#[tokio::test]
async fn the_billing_portal_returns_only_to_the_clients_domains() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start_isolated(&sandbox, "acme").await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = server.client(&acme.token).await;
    let portal = |url: &str| json!({"return_url": url});
    for foreign in [
        "https://evil.example/account",
        "https://globex.example/account",
        "https://acme.example.evil.example/",
        "https://acme.example@evil.example/",
        "http://acme.example/account",
    ] {
        let result = call(&client, "billing_create_portal_session", portal(foreign)).await;
        let text = error_text(&result);
        assert!(text.contains("return_url"), "{foreign}: {text}");
        assert!(
            !result_text(&result).contains("approval_id"),
            "{foreign} got an approval request"
        );
    }
    // The site's own custom domains pass, and so do hosts the studio configures.
    let own = ok_json(
        &call(
            &client,
            "billing_create_portal_session",
            portal("https://www.acme.example/account"),
        )
        .await,
    );
    assert_eq!(own["status"], "approval_required", "{own}");
    assert!(own["approval_id"].is_string(), "{own}");
    let mut spec: common::tenant::TenantSpec = serde_json::from_value(
        serde_json::to_value(server.admin.tenant("acme").await.unwrap().tenant).unwrap(),
    )
    .unwrap();
    spec.billing_return_hosts = vec![common::domain::DnsName::parse("*.billing.example").unwrap()];
    server.admin.set_tenant("acme", &spec).await.unwrap();
    let configured = ok_json(
        &call(
            &client,
            "billing_create_portal_session",
            portal("https://acme.billing.example/done"),
        )
        .await,
    );
    assert_eq!(configured["status"], "approval_required", "{configured}");
    assert!(configured["approval_id"].is_string(), "{configured}");
}

/// Defect 15: auth schemes are case-insensitive (RFC 7235).
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let http = common::upstream::http_client().unwrap();
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let response = http
            .post(&server.mcp_url)
            .header("authorization", format!("{scheme} {}", acme.token))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(WHOAMI)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["result"]["structuredContent"]["tenant"], "acme");
        let admin = http
            .get(format!("{}/v1/tenants", server.admin_url))
            .header("authorization", format!("{scheme} {}", server.admin_token))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status().as_u16(), 200, "admin, {scheme}");
    }
}

/// A refusal answered before the request's body was read (401, 403) says `Connection: close`:
/// the server cannot reuse a connection whose body it left unread, and a client that reused it
/// (an OAuth client retrying after its first 401 does) saw it drop without an answer.
#[tokio::test]
async fn a_refusal_before_the_body_is_read_closes_the_connection_cleanly() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let connector = server.connector_origin.trim_start_matches("http://");
    let connector_addr = connector.replace("localhost", "127.0.0.1");
    let authority = server.public_url.trim_start_matches("http://").to_owned();
    // `/mcp` refuses the missing token; a path a door does not serve, and a method a path does
    // not take, are refused as early.
    let cases = [
        (&authority, authority.clone(), "/mcp", "401"),
        (&connector_addr, connector.to_owned(), "/mcp", "401"),
        (&authority, authority.clone(), "/token", "404"),
        (
            &connector_addr,
            connector.to_owned(),
            "/nothing-here",
            "404",
        ),
        (&connector_addr, connector.to_owned(), "/healthz", "405"),
    ];
    for (address, host, path, status) in cases {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            WHOAMI.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        // The body arrives after the server has already decided.
        tokio::time::sleep(Duration::from_millis(50)).await;
        socket.write_all(WHOAMI.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{host}{path}: {answer}"
        );
        assert!(
            answer.contains("\r\nconnection: close\r\n"),
            "{host}{path}: {answer}"
        );
    }
}
