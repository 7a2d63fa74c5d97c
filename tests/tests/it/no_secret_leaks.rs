//! Tokens and upstream secrets never reach a log line or the data dir: a whole session of
//! provisioning, calls, failures and revocations is run with debug logging captured, then the
//! logs and every byte under the data dir are searched for each secret used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{Captured, TestServer, call, stored};
use tests::sandbox::{Failure, Fixture, Sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_is_logged_or_stored_in_clear() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Debug everywhere on the server side; the test's own MCP client is not the product.
    tracing_subscriber::fmt()
        .with_env_filter(
            "debug,rmcp::transport::streamable_http_client=off,rmcp::service::client=off",
        )
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with(tests::harness::config_for(dir.path(), &sandbox.base_url())).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    server
        .admin
        .set_secret("acme", "github", "ghp_verysecretgithubtoken123".into())
        .await
        .unwrap();

    let client = server.client(&acme.token).await;
    for tool in [
        "whoami",
        "webflow_list_sites",
        "webflow_get_site",
        "webflow_list_pages",
    ] {
        call(&client, tool, json!({})).await;
    }
    call(
        &client,
        "webflow_get_site",
        json!({"site_id": globex.fixture.site_id}),
    )
    .await;
    sandbox.fail_next(Failure::status(401), 1);
    call(&client, "webflow_list_sites", json!({})).await;
    server.post_raw(Some("definitely-not-a-token"), "{}").await;
    server
        .post_raw(Some(&format!("{}x", acme.token)), "{}")
        .await;
    server.admin.revoke(&globex.token_id).await.unwrap();
    server.post_raw(Some(&globex.token), "{}").await;
    server.admin.tenants().await.unwrap();
    server.admin.tokens(None).await.unwrap();
    let detail = serde_json::to_string(&server.admin.tenant("acme").await.unwrap()).unwrap();

    let server_admin_token = server.admin_token.clone();
    let secrets = [
        acme.token.as_str(),
        globex.token.as_str(),
        acme.fixture.token.as_str(),
        globex.fixture.token.as_str(),
        "ghp_verysecretgithubtoken123",
        server_admin_token.as_str(),
    ];
    // Admin answers other than the one-time issue carry no secret.
    for secret in secrets {
        assert!(!detail.contains(secret));
    }
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("tool call"), "logging was not captured");
    assert!(logged.contains("refused MCP request"));
    for secret in secrets {
        // Even a distinctive slice of a secret must not appear.
        let probe = &secret[secret.len() - 20..];
        assert!(!logged.contains(probe), "a secret reached the logs");
    }

    server.stop().await;
    let stored = stored(dir.path());
    assert!(stored.len() > 3, "store files expected");
    for (name, bytes) in stored {
        for secret in secrets {
            if name.ends_with("/admin-token") && secret == server_admin_token {
                continue; // the admin token file is where the contract puts it
            }
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds a secret in clear"
            );
        }
    }
}
