//! `STUDIO_MCP_APPROVAL_WEBHOOK`: when a high-risk action waits for a person, the operator's
//! webhook (here a real HTTP server on loopback) gets a short note with the tool and the link —
//! and none of the action's arguments.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tests::harness::{TestServer, call, config_for, eventually, ok_json};
use tests::sandbox::{Fixture, Sandbox};

/// A loopback webhook that keeps every body it receives.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    let app = Router::new().route(
        "/hooks/approvals",
        post(move |body: axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/approvals", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn a_waiting_approval_is_announced_without_its_arguments() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let (url, received) = webhook().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config_for(tmp.path(), &sandbox.base_url());
    config.tenant = Some("acme".into());
    config.approval_webhook = Some(url);
    let server = TestServer::start_spec(config, &isolated_server::ISOLATED).await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = server.client(&acme.token).await;

    let secret_content = "v=spf1 include:secret-marker.example ~all";
    let name = format!("www.{}", acme.fixture.zone_name);
    let step = ok_json(
        &call(
            &client,
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": name, "content": secret_content}}),
        )
        .await,
    );
    assert_eq!(step["status"], "approval_required", "{step}");
    let link = step["approval_url"].as_str().unwrap().to_owned();

    let note = eventually("a note on the webhook", Duration::from_secs(5), || async {
        received.lock().unwrap().first().cloned().ok_or("nothing")
    })
    .await;
    let text = note["text"].as_str().unwrap();
    assert!(text.contains(&link), "{text}");
    assert!(text.contains("dns_create_record"), "{text}");
    let whole = note.to_string();
    assert!(!whole.contains("secret-marker"), "{whole}");
    assert!(!whole.contains(&acme.token), "{whole}");
    // Nothing acted: only the reads of the preview reached the sandbox.
    assert!(sandbox.requests().iter().all(|r| r.method == "GET"));
}
