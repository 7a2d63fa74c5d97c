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
    let text = http
        .get(format!("{}/metrics", server.admin_url))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
