//! A `kill -9` of a real isolated-server process in the middle of a confirmed billing action,
//! then a restart and a retry: the action happens at most once. The confirmation code is
//! consumed durably before the upstream call, so the retry is refused, and the Stripe request
//! carries an Idempotency-Key derived from that code. The same real process also proves the
//! one-worker-thread runtime and its configuration errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::runtime::admin_client::AdminClient;
use serde_json::json;
use tests::harness::{call, connect, error_text, ok_json, provision_isolated};
use tests::sandbox::{Failure, Fixture, Sandbox};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Instance {
    child: Child,
    ports: (u16, u16),
    mcp_url: String,
    admin_url: String,
}

async fn start(data: &Path, sandbox: &Sandbox) -> Instance {
    start_with(data, sandbox, &[], (free_port(), free_port())).await
}

/// Tokens are bound to the public URL, host and port: a restart keeps the same ports.
async fn start_with(
    data: &Path,
    sandbox: &Sandbox,
    env: &[(&str, &str)],
    (port, admin_port): (u16, u16),
) -> Instance {
    let child = Command::new(env!("CARGO_BIN_EXE_isolated-server"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("STUDIO_MCP_TENANT", "acme")
        .env("STUDIO_MCP_DATA_DIR", data)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("STUDIO_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("STUDIO_MCP_WEBFLOW_BASE_URL", sandbox.base_url())
        .env("STUDIO_MCP_CLOUDFLARE_BASE_URL", sandbox.base_url())
        .env("STUDIO_MCP_STRIPE_BASE_URL", sandbox.base_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = common::upstream::http_client().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Poll readiness (not a fixed sleep): the process has just been spawned.
    loop {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "isolated-server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instance {
        child,
        ports: (port, admin_port),
        mcp_url: format!("http://127.0.0.1:{port}/mcp"),
        admin_url: format!("http://127.0.0.1:{admin_port}"),
    }
}

fn admin(instance: &Instance, data: &Path) -> AdminClient {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    AdminClient::new(instance.admin_url.clone(), token.trim().to_owned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_action_interrupted_by_kill_9_happens_at_most_once() {
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), &sandbox).await;
    let acme = provision_isolated(
        &admin(&first, dir.path()),
        sandbox.fixture().owner("acme").unwrap(),
    )
    .await;
    let client = connect(&first.mcp_url, &acme.token, None).await.unwrap();

    let args = json!({"return_url": "https://acme.example/account"});
    let step = ok_json(&call(&client, "billing_create_portal_session", args.clone()).await);
    let code = step["confirmation_code"].as_str().unwrap().to_owned();
    let mut confirmed = args.clone();
    confirmed["confirmation_code"] = json!(code);

    // Stripe hangs; the server is killed while the confirmed call waits on it.
    sandbox.fail_next(Failure::slow(Duration::from_secs(3)), 1);
    let in_flight = tokio::spawn({
        let confirmed = confirmed.clone();
        async move {
            tests::harness::try_call(&client, "billing_create_portal_session", confirmed).await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sandbox
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/v1/billing_portal"))
    {
        assert!(
            Instant::now() < deadline,
            "the confirmed call never reached Stripe"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let _ = in_flight.await;

    let mut second = start_with(dir.path(), &sandbox, &[], first.ports).await;
    let client = connect(&second.mcp_url, &acme.token, None).await.unwrap();
    let text = error_text(&call(&client, "billing_create_portal_session", confirmed).await);
    assert!(
        text.contains("not valid here"),
        "the retry must not act again: {text}"
    );

    // Let the hung request finish on the sandbox side, then count what Stripe really did.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_crash = sandbox.stripe_sessions("acme");
    assert!(after_crash <= 1, "acted {after_crash} times");

    // A fresh preview and confirmation acts exactly once more.
    let step = ok_json(&call(&client, "billing_create_portal_session", args.clone()).await);
    let mut again = args;
    again["confirmation_code"] = step["confirmation_code"].clone();
    ok_json(&call(&client, "billing_create_portal_session", again).await);
    assert_eq!(sandbox.stripe_sessions("acme"), after_crash + 1);
    let keys: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/billing_portal"))
        .filter_map(|r| {
            r.headers
                .into_iter()
                .find(|(k, _)| k == "idempotency-key")
                .map(|(_, v)| v)
        })
        .collect();
    assert!(
        keys.len() >= 2 && keys[0] != keys[keys.len() - 1],
        "each confirmation has its own key: {keys:?}"
    );
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// One worker thread is tokio's single-threaded scheduler (what a one-core container gets): the
/// whole two-step flow, the audit query that waits on the audit writer, and the admin API work.
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
    let mut confirmed = args;
    confirmed["confirmation_code"] = step["confirmation_code"].clone();
    ok_json(&call(&client, "billing_create_portal_session", confirmed).await);
    assert_eq!(sandbox.stripe_sessions("acme"), 1);
    let audit = admin
        .audit(&common::runtime::admin::AuditFilter {
            tenant: Some("acme".into()),
            since_ms: None,
            limit: Some(50),
        })
        .await
        .unwrap();
    let portal_calls = audit
        .iter()
        .filter(|r| r.action == "billing_create_portal_session" && r.outcome == "ok")
        .count();
    assert_eq!(portal_calls, 2, "{audit:?}");
    instance.child.kill().unwrap();
    instance.child.wait().unwrap();
}

#[test]
fn a_bad_worker_thread_count_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["lots", "-1", "5000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_isolated-server"))
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
