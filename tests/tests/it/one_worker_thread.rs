//! The real isolated-server process on the one-worker-thread runtime (tokio's single-threaded
//! scheduler, what a one-core container gets) through a whole approval, and its configuration
//! errors. (`kill -9` around an approved action: tests/tests/it/approvals_binary.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::runtime::admin::client::AdminClient;
use serde_json::json;
use tests::harness::{
    call, connect, eventually, free_port, isolated_acme_command, isolated_server_binary, ok_json,
    provision_isolated, server_command,
};
use tests::sandbox::{Fixture, Sandbox};

struct Instance {
    child: Child,
    mcp_url: String,
    admin_url: String,
}

/// Tokens are bound to the public URL, host and port: a restart keeps the same ports.
async fn start_with(
    data: &Path,
    sandbox: &Sandbox,
    env: &[(&str, &str)],
    (port, admin_port): (u16, u16),
) -> Instance {
    let child = isolated_acme_command(data, &sandbox.base_url(), (port, admin_port))
        .await
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = common::upstream::http_client().unwrap();
    // Poll readiness (not a fixed sleep): the process has just been spawned.
    eventually("isolated-server ready", Duration::from_secs(20), || async {
        match http.get(&health).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    Instance {
        child,
        mcp_url: format!("http://127.0.0.1:{port}/mcp"),
        admin_url: format!("http://127.0.0.1:{admin_port}"),
    }
}

fn admin(instance: &Instance, data: &Path) -> AdminClient {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    AdminClient::new(instance.admin_url.clone(), token.trim().to_owned()).unwrap()
}

/// One worker thread is tokio's single-threaded scheduler (what a one-core container gets): the
/// whole approval flow, the audit query that waits on the audit writer, and the admin API work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_thread_serves_the_whole_flow() {
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut instance = start_with(
        dir.path(),
        &sandbox,
        &[("STUDIO_MCP_WORKER_THREADS", "1")],
        (free_port(), free_port()),
    )
    .await;
    let admin = admin(&instance, dir.path());
    let acme = provision_isolated(&admin, sandbox.fixture().owner("acme").unwrap()).await;
    let client = connect(&instance.mcp_url, &acme.token, None).await.unwrap();
    let args = json!({"return_url": "https://acme.example/account"});
    let step = ok_json(&call(&client, "billing_create_portal_session", args.clone()).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    assert_eq!(sandbox.stripe_sessions("acme"), 0);
    let id = step["approval_id"].as_str().unwrap();
    let decided = admin.decide_approval(id, true).await.unwrap();
    assert_eq!(decided.state, "done", "{decided:?}");
    let told = ok_json(&call(&client, "billing_create_portal_session", args).await);
    assert_eq!(told["status"], "done", "{told}");
    assert_eq!(sandbox.stripe_sessions("acme"), 1);
    let audit = admin
        .audit(&common::runtime::admin::AuditFilter {
            tenant: Some("acme".into()),
            since_ms: None,
            limit: Some(50),
        })
        .await
        .unwrap();
    let portal_records = audit
        .iter()
        .filter(|r| r.action == "billing_create_portal_session" && r.outcome == "ok")
        .count();
    // The request, the approved action carried out (by the operator), the outcome told.
    assert_eq!(portal_records, 3, "{audit:?}");
    assert!(
        audit.iter().any(|r| r.action == "approval:approve"),
        "{audit:?}"
    );
    instance.child.kill().unwrap();
    instance.child.wait().unwrap();
}

#[tokio::test]
async fn a_bad_worker_thread_count_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let binary = isolated_server_binary().await.unwrap();
    for bad in ["lots", "-1", "5000"] {
        let out = server_command(&binary)
            .arg("serve")
            .env("STUDIO_MCP_TENANT", "acme")
            .env("STUDIO_MCP_DATA_DIR", dir.path())
            .env("STUDIO_MCP_WORKER_THREADS", bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("configuration error: STUDIO_MCP_WORKER_THREADS"),
            "{bad}: {stderr}"
        );
    }
}
