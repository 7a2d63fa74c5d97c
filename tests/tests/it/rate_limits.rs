//! A tenant driven past its rate limit gets a tool error saying when to retry, while another
//! tenant calling at the same time is unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{TestServer, call, error_text, ok_json};
use tests::sandbox::{Fixture, Sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_burst_does_not_touch_another() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    // 24 requests a minute: a bucket of four, then one every 2.5 seconds. Every authenticated
    // request counts: the client's handshake (initialize, initialized) takes two.
    let acme = server
        .provision_with(
            sandbox.fixture().owner("acme").unwrap(),
            json!({"rate_limit_per_min": 24}),
        )
        .await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    let acme_client = server.client(&acme.token).await;
    let globex_client = server.client(&globex.token).await;

    let busy = tokio::spawn(async move {
        let mut refusals = Vec::new();
        for _ in 0..6 {
            let result = call(&acme_client, "whoami", json!({})).await;
            if result.is_error == Some(true) {
                refusals.push(error_text(&result));
            }
        }
        refusals
    });
    for _ in 0..30 {
        ok_json(&call(&globex_client, "whoami", json!({})).await);
    }
    let refusals = busy.await.unwrap();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    for text in refusals {
        assert!(text.contains("rate limit reached; retry after"), "{text}");
        let secs: u64 = text
            .rsplit("after ")
            .next()
            .unwrap()
            .trim_end_matches(" s")
            .parse()
            .unwrap();
        assert!((1..=3).contains(&secs), "{text}");
    }
}
