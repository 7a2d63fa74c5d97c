//! Bad input at the protocol level: malformed JSON-RPC, oversized bodies, a second server on a
//! locked store. Each gets a clear answer and leaves the server serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::runtime::server::startup::Application;
use serde_json::json;
use tests::harness::{TestServer, call, config_for, ok_json};
use tests::sandbox::{Fixture, Sandbox};

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_and_nothing_breaks() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let token = Some(acme.token.as_str());

    // rmcp answers an unparsable body with 415 and the parser's message.
    let (status, body) = server.post_raw(token, "{not json").await;
    assert!(
        (400..500).contains(&status) && body.contains("deserialize"),
        "{status} {body}"
    );
    let (status, body) = server
        .post_raw(
            token,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
        )
        .await;
    assert!(
        (400..500).contains(&status) && body.contains("unrecognized"),
        "{status} {body}"
    );
    let (status, body) = server
        .post_raw(
            token,
            r#"{"jsonrpc":"2.0","id":1,"method":"no/such/method"}"#,
        )
        .await;
    assert!(body.contains("-32601") || status >= 400, "{status} {body}");

    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {"pad": "x".repeat(2 * 1024 * 1024)}}})
    .to_string();
    let (status, _) = server.post_raw(token, &huge).await;
    assert_eq!(status, 413);

    // Still serving, and the client still works.
    let client = server.client(&acme.token).await;
    assert_eq!(
        ok_json(&call(&client, "whoami", json!({})).await)["tenant"],
        "acme"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused_clearly() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &sandbox.base_url());
    let _first = TestServer::start_with(config.clone()).await;
    let second = Application::build(&config, &shared_server::SHARED).await;
    if config.store_url.is_some() {
        // PostgreSQL: a second process on the same database is another replica, by design.
        let second = second.expect("a second replica on the same database starts");
        assert!(second.state().services.store.replica().is_some());
        return;
    }
    let message = format!("{:#}", second.err().expect("second server must not start"));
    assert!(message.contains("locked"), "{message}");
}
