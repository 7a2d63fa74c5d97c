//! Every tool call and admin action lands in the audit log with tenant, action, outcome,
//! duration and request id — and without tokens, secrets or argument values.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::runtime::admin::AuditFilter;
use serde_json::json;
use tests::harness::{TestServer, call, try_call};
use tests::sandbox::{Fixture, Sandbox};

#[tokio::test]
async fn calls_and_admin_actions_are_audited_without_secrets() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap();
    let client = server.client(&acme.token).await;
    call(&client, "whoami", json!({})).await;
    call(
        &client,
        "webflow_get_site",
        json!({"site_id": globex.site_id}),
    )
    .await;
    call(&client, "webflow_list_pages", json!({"limit": 1000})).await;
    let _ = try_call(&client, "no_such_tool", json!({"secret_field": "hunter2"})).await;

    let records = server
        .admin
        .audit(&AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcome = |action: &str| {
        records
            .iter()
            .find(|r| r.action == action)
            .map(|r| r.outcome.clone())
            .unwrap_or_else(|| panic!("no record for {action}: {records:?}"))
    };
    assert_eq!(outcome("whoami"), "ok");
    assert_eq!(outcome("webflow_get_site"), "not_yours");
    assert_eq!(outcome("webflow_list_pages"), "invalid_arguments");
    assert_eq!(outcome("no_such_tool"), "unknown_tool");
    for action in ["admin:tenant_add", "admin:secret_set", "admin:token_issue"] {
        assert_eq!(outcome(action), "ok");
    }
    assert!(
        records.windows(2).all(|w| w[0].at_ms >= w[1].at_ms),
        "newest first"
    );
    assert!(
        records
            .iter()
            .all(|r| r.tenant == "acme" && !r.request_id.is_empty())
    );

    let all = serde_json::to_string(&records).unwrap();
    for secret in [
        acme.token.as_str(),
        acme.fixture.token.as_str(),
        "hunter2",
        globex.site_id.as_str(),
    ] {
        assert!(
            !all.contains(secret),
            "audit log holds an argument value or secret"
        );
    }
    // The other tenant's view is empty: records are per tenant.
    let none = server
        .admin
        .audit(&AuditFilter {
            tenant: Some("globex".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
