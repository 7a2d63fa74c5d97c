//! Approvals across `kill -9` of the real `isolated-server` binary, run as a child process and
//! restarted on the same data dir and ports: an approved action killed while the upstream
//! holds its write is found `running` — reported as possibly done, never run again, refused a
//! second approval — and the upstream sees it at most once; a pending approval survives the
//! restart and can still be approved, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::runtime::admin::client::AdminClient;
use serde_json::{Value, json};
use tests::harness::{
    McpClient, WithLog, call, connect, eventually, free_port, ok_json, provision_isolated,
    until_healthy,
};
use tests::sandbox::{Failure, Fixture, Sandbox};

/// How long the sandbox holds the approved write: longer than it takes to kill and restart.
const HOLD: Duration = Duration::from_secs(3);

/// A running `isolated-server serve` for acme; killed (SIGKILL) when dropped.
struct Instance {
    child: Child,
    ports: (u16, u16),
    mcp_url: String,
    admin_url: String,
    admin_token: String,
    admin: AdminClient,
    stderr: PathBuf,
}

impl Instance {
    /// Starts on `data` with `ports` (a restart keeps them: tokens are bound to the public
    /// URL), every upstream at the sandbox, and waits (polling, bounded) until it is ready.
    async fn start(data: &Path, sandbox: &Sandbox, ports: (u16, u16)) -> Instance {
        common::upstream::install_crypto_provider();
        let (port, admin_port) = ports;
        let stderr = data.with_extension(format!("{port}.log"));
        let child = tests::harness::isolated_acme_command(data, &sandbox.base_url(), ports)
            .await
            // The held write must not time out before the kill.
            .env("STUDIO_MCP_UPSTREAM_TIMEOUT_MS", "30000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut instance = Instance {
            child,
            ports,
            mcp_url: format!("http://127.0.0.1:{port}/mcp"),
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            admin_token: String::new(),
            admin: AdminClient::new(format!("http://127.0.0.1:{admin_port}"), String::new())
                .unwrap(),
            stderr,
        };
        until_healthy(
            "isolated-server ready",
            &mut instance.child,
            &format!("http://127.0.0.1:{port}/healthz"),
            &instance.stderr,
            Duration::from_secs(30),
        )
        .await;
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
        instance.admin_token = token.trim().to_owned();
        instance.admin =
            AdminClient::new(instance.admin_url.clone(), instance.admin_token.clone()).unwrap();
        instance
    }

    /// `kill -9`, and waits for the process to be gone.
    fn kill_9(&mut self) {
        let sent = Command::new("kill")
            .arg("-9")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -9 failed");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the instance exited by itself: {status}");
    }

    async fn model(&self, token: &str) -> McpClient {
        connect(&self.mcp_url, token, None).await.unwrap()
    }

    async fn state_of(&self, id: &str) -> common::runtime::admin::ApprovalView {
        let listed = self.admin.approvals().await.unwrap();
        listed
            .into_iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("no approval {id}"))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn portal_posts(sandbox: &Sandbox) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/v1/billing_portal/sessions"))
        .count()
}

/// The model asks; the approval id.
async fn ask(model: &McpClient, tool: &str, args: &Value) -> String {
    let step = ok_json(&call(model, tool, args.clone()).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    step["approval_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_action_killed_mid_write_is_reported_running_and_never_rerun() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Instance::start(&data, &sandbox, (free_port(), free_port())).await;
    let acme = provision_isolated(&first.admin, sandbox.fixture().owner("acme").unwrap()).await;
    let model = first.model(&acme.token).await;
    // Running it makes exactly one upstream request: the Stripe POST, which the sandbox holds.
    let tool = "billing_create_portal_session";
    let args = json!({});
    let id = ask(&model, tool, &args).await;

    sandbox.clear_requests();
    sandbox.fail_next(Failure::slow(HOLD), 1);
    // (By hand: `AdminClient`'s futures are not `Send`, and this one must run on its own.)
    let deciding = tokio::spawn(
        common::upstream::http_client()
            .unwrap()
            .post(format!("{}/v1/approvals/{id}/approve", first.admin_url))
            .bearer_auth(&first.admin_token)
            .send(),
    );
    // The held request took its failure on arrival: the action is claimed and running.
    eventually(
        "the approved action reached Stripe",
        Duration::from_secs(10),
        || async {
            match sandbox.pending_failures() {
                0 => Ok(()),
                pending => Err(WithLog::new(
                    format!("{pending} failure(s) pending"),
                    &first.stderr,
                )),
            }
        },
    )
    .await;
    let held_since = Instant::now();
    let running = ok_json(&call(&model, tool, args.clone()).await);
    assert_eq!(running["status"], "running", "{running}");
    first.kill_9();
    let cut = deciding.await.unwrap();
    assert!(cut.is_err(), "the operator's approval answered: {cut:?}");

    let second = Instance::start(&data, &sandbox, first.ports).await;
    let view = second.state_of(&id).await;
    assert_eq!(view.state, "running", "{view:?}");
    assert_eq!(view.decided_by.as_deref(), Some("operator"));
    let model = second.model(&acme.token).await;
    for _ in 0..3 {
        let told = ok_json(&call(&model, tool, args.clone()).await);
        assert_eq!(told["status"], "running", "{told}");
        assert_eq!(told["approval_id"], id.as_str());
        let message = told["message"].as_str().unwrap();
        assert!(
            message.contains("may have taken effect") && message.contains("will not be retried"),
            "{message}"
        );
    }
    for approve in [true, false] {
        let err = second
            .admin
            .decide_approval(&id, approve)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("409"), "{err}");
    }
    assert_eq!(second.state_of(&id).await.state, "running");

    // Once the hold is over, the upstream has seen the write at most once.
    if let Some(rest) = (HOLD + Duration::from_millis(500)).checked_sub(held_since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    println!(
        "Stripe saw the write of the killed instance {} time(s)",
        sandbox.stripe_sessions("acme")
    );
    assert!(portal_posts(&sandbox) <= 1, "{:?}", sandbox.requests());
    assert!(sandbox.stripe_sessions("acme") <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_survives_kill_9_and_is_approved_once() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Instance::start(&data, &sandbox, (free_port(), free_port())).await;
    let acme = provision_isolated(&first.admin, sandbox.fixture().owner("acme").unwrap()).await;
    let model = first.model(&acme.token).await;
    let zone = &acme.fixture.zone_name;
    let tool = "dns_create_record";
    let args =
        json!({"record": {"type": "TXT", "name": format!("www.{zone}"), "content": "survives"}});
    let id = ask(&model, tool, &args).await;
    first.kill_9();

    let second = Instance::start(&data, &sandbox, first.ports).await;
    assert_eq!(second.state_of(&id).await.state, "pending");
    let model = second.model(&acme.token).await;
    let waiting = ok_json(&call(&model, tool, args.clone()).await);
    assert_eq!(waiting["status"], "waiting_for_approval", "{waiting}");
    assert_eq!(waiting["approval_id"], id.as_str());

    sandbox.clear_requests();
    let done = second.admin.decide_approval(&id, true).await.unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    let err = second.admin.decide_approval(&id, true).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let writes: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        vec![format!(
            "POST /client/v4/zones/{}/dns_records",
            acme.fixture.zone_id
        )]
    );
    let told = ok_json(&call(&model, tool, args.clone()).await);
    assert_eq!(told["status"], "done", "{told}");
    assert_eq!(told["decided_by"], "operator");
    let record = told["result"]["id"].as_str().unwrap();
    assert_eq!(
        sandbox.dns_record(&acme.fixture.zone_id, record).unwrap()["content"],
        "survives"
    );
}
