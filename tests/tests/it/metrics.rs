//! `/metrics` on the admin listener: Prometheus text with calls, errors and latency per tenant
//! and tool, upstream answers and 429s, rate-limit refusals and token refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{TestServer, call};
use tests::sandbox::{Failure, Fixture, Sandbox};

#[tokio::test]
async fn metrics_count_what_happened() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server
        .provision_with(
            sandbox.fixture().owner("acme").unwrap(),
            json!({"rate_limit_per_min": 24}),
        )
        .await;
    let client = server.client(&acme.token).await;
    call(&client, "whoami", json!({})).await;
    sandbox.fail_next(Failure::rate_limited(60), 1);
    call(&client, "webflow_list_sites", json!({})).await;
    // The bucket of four requests (the handshake took two) is empty now: refused.
    call(&client, "whoami", json!({})).await;
    server.post_raw(Some("nope"), "{}").await;

    let http = common::upstream::http_client().unwrap();
    let unauthorized = http
        .get(format!("{}/metrics", server.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let text = server.metrics().await;
    for needle in [
        "studio_mcp_tool_calls_total{tenant=\"acme\",tool=\"whoami\",outcome=\"ok\"} 1",
        "studio_mcp_tool_calls_total{tenant=\"acme\",tool=\"whoami\",outcome=\"rate_limited\"} 1",
        "studio_mcp_tool_calls_total{tenant=\"acme\",tool=\"webflow_list_sites\",outcome=\"upstream\"} 1",
        "studio_mcp_tool_call_duration_seconds_count{tenant=\"acme\",tool=\"whoami\"} 2",
        "studio_mcp_upstream_responses_total{upstream=\"Webflow\",status=\"429\"} 1",
        "studio_mcp_rate_limit_refusals_total{tenant=\"acme\"} 1",
        "studio_mcp_token_refusals_total{reason=\"malformed\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(&acme.token) && !text.contains(&acme.fixture.token));
}

/// Every metric an alert in `deploy/prometheus/alerts.yml` names is one a real server exposes,
/// and the ones this test can provoke carry samples: a rule can never watch a metric that was
/// renamed or never existed. The replica gauges exist only on PostgreSQL (this test runs in
/// both passes of `tests/run.sh`).
#[tokio::test]
async fn every_metric_an_alert_names_is_exposed() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    let mut named: Vec<&str> = rules
        .match_indices("studio_mcp_")
        .map(|(at, _)| {
            let rest = &rules[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(named.len() >= 9, "{named:?}");

    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    // A 429 whose Retry-After fits the waiting budget: waited out, then answered.
    sandbox.fail_next(Failure::rate_limited(1), 1);
    call(&client, "webflow_list_sites", json!({})).await;
    // An anonymous refusal at the connector door: an unknown code.
    let http = common::upstream::http_client().unwrap();
    http.post(format!("{}/token", server.connector_origin))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "unknown"),
            ("client_id", "c"),
            ("redirect_uri", "https://example.com/cb"),
        ])
        .send()
        .await
        .unwrap();
    let text = server.metrics().await;

    let on_postgres = tests::harness::test_store(&server.data_dir).is_some();
    for name in &named {
        let declared = text.contains(&format!("# TYPE {name} "));
        if name.starts_with("studio_mcp_replica") {
            assert_eq!(
                declared, on_postgres,
                "{name}: a replica gauge, on PostgreSQL only"
            );
        } else {
            assert!(
                declared,
                "an alert names {name}, which /metrics does not expose:\n{text}"
            );
        }
    }
    for sample in [
        "studio_mcp_upstream_responses_total{upstream=\"Webflow\",status=\"429\"} 1",
        "studio_mcp_upstream_waits_total{upstream=\"Webflow\",reason=\"retry_after\"} 1",
        "studio_mcp_oauth_refusals_total{refusal=\"token:unknown_code\"} 1",
        "studio_mcp_audit_dropped_total 0",
        "studio_mcp_approvals_pending 0",
        "studio_mcp_approval_oldest_pending_seconds 0",
    ] {
        assert!(text.contains(sample), "missing {sample} in\n{text}");
    }
    if on_postgres {
        assert!(text.contains("studio_mcp_replica_lease_held 1"), "{text}");
        assert!(text.contains("studio_mcp_replica_connected 1"), "{text}");
    }
}

/// The metrics token (what Prometheus is given) opens `GET /metrics` and nothing else: every
/// other admin route refuses it as it refuses no token, and the admin token still scrapes.
#[tokio::test]
async fn the_metrics_token_opens_metrics_and_nothing_else() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let path = server.data_dir.join("metrics-token");
    let metrics_token = std::fs::read_to_string(&path).unwrap();
    let metrics_token = metrics_token.trim();
    assert!(metrics_token.starts_with("mtr_") && metrics_token.len() >= 32);
    assert_ne!(metrics_token, server.admin_token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    let http = common::upstream::http_client().unwrap();
    let admin = |path: &str| format!("{}{path}", server.admin_url);
    for token in [metrics_token, server.admin_token.as_str()] {
        let scraped = http
            .get(admin("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(scraped.status().as_u16(), 200);
        assert!(scraped.text().await.unwrap().contains("studio_mcp_"));
    }
    let wrong = http
        .get(admin("/metrics"))
        .bearer_auth(format!("{metrics_token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let id = acme.token_id.as_str();
    let refused = [
        ("GET", "/v1/server".to_owned(), "{}"),
        ("GET", "/v1/tenants".to_owned(), "{}"),
        ("GET", "/v1/tenants/acme".to_owned(), "{}"),
        ("DELETE", "/v1/tenants/acme?confirm=acme".to_owned(), "{}"),
        (
            "POST",
            "/v1/tenants/acme/tokens".to_owned(),
            r#"{"label":"x"}"#,
        ),
        ("GET", "/v1/tokens".to_owned(), "{}"),
        ("POST", format!("/v1/tokens/{id}/revoke"), "{}"),
        ("GET", "/v1/people".to_owned(), "{}"),
        ("GET", "/v1/grants".to_owned(), "{}"),
        ("GET", "/v1/approvals".to_owned(), "{}"),
        ("POST", "/v1/approvals/a1/approve".to_owned(), "{}"),
        ("POST", "/v1/approvals/a1/deny".to_owned(), "{}"),
        ("GET", "/v1/audit".to_owned(), "{}"),
        ("POST", "/v1/onboard".to_owned(), "{}"),
    ];
    for (method, path, body) in refused {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = http
            .request(method.clone(), admin(&path))
            .bearer_auth(metrics_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 401, "{method} {path}");
    }
    // Nothing was done with it: the tenant and its token are still there.
    let tenant = server.admin.tenant("acme").await.unwrap();
    assert_eq!(tenant.active_tokens, 1, "{tenant:?}");
}
