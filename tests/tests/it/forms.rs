//! `webflow_list_forms` and `webflow_list_form_submissions` end to end: the `forms` toolset is
//! off for new and existing tenants alike until granted by name; only the tenant's own forms
//! are reached (the sandbox's request log is the oracle); submissions are never cached; and
//! what visitors sent reaches neither the audit log nor any log line, on either front.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::runtime::admin::AuditFilter;
use serde_json::{Value, json};
use tests::harness::{
    Captured, TestServer, TestTenant, call, error_text, ok_json, stored, try_call,
};
use tests::sandbox::{Fixture, Sandbox, webflow};

const LIST: &str = "webflow_list_forms";
const SUBMISSIONS: &str = "webflow_list_form_submissions";
const WITH_FORMS: [&str; 7] = [
    "webflow",
    "cms-write",
    "page-write",
    "asset-write",
    "forms",
    "analytics",
    "github",
];

async fn setup() -> (Sandbox, TestServer, TestTenant) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let acme = server
        .provision_with(&f, json!({ "toolsets": WITH_FORMS }))
        .await;
    (sandbox, server, acme)
}

/// Every answer a visitor gave in `result`'s submissions.
fn answers(result: &Value) -> Vec<String> {
    result["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["formResponse"].as_object().unwrap().values())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn forms_is_off_unless_granted_by_name() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex", "initech"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme_f = sandbox.fixture().owner("acme").unwrap().clone();
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let initech_f = sandbox.fixture().owner("initech").unwrap().clone();
    // Stored before `forms` existed, with every toolset of that release.
    let old = server
        .provision_with(
            &acme_f,
            json!({"toolsets": ["webflow", "cms-write", "page-write", "asset-write", "analytics", "github"]}),
        )
        .await;
    // A new tenant given no list: the default leaves forms out too.
    let new = server.provision(&globex_f).await;
    sandbox.clear_requests();
    for (tenant, form) in [(&old, &acme_f.form_ids[0]), (&new, &globex_f.form_ids[0])] {
        let client = server.client(&tenant.token).await;
        let names: Vec<_> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(
            !names.iter().any(|n| n == LIST || n == SUBMISSIONS),
            "{names:?}"
        );
        for (tool, args) in [(LIST, json!({})), (SUBMISSIONS, json!({"form_id": form}))] {
            let refused = try_call(&client, tool, args).await;
            assert!(
                format!("{:?}", refused.unwrap_err()).contains("unknown tool"),
                "{tool} for {}",
                tenant.id
            );
        }
    }
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());

    // Granted by name: reads, so a read-only tenant has them too, with read-only hints.
    let read_only = server
        .provision_with(
            &initech_f,
            json!({"read_only": true, "toolsets": ["webflow", "forms"]}),
        )
        .await;
    let client = server.client(&read_only.token).await;
    let tools = client.list_all_tools().await.unwrap();
    for name in [LIST, SUBMISSIONS] {
        let a = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .annotations
            .clone()
            .unwrap();
        assert_eq!(
            (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
            (Some(true), Some(false), Some(true))
        );
    }
    let forms = ok_json(&call(&client, LIST, json!({})).await);
    assert_eq!(forms["pagination"]["total"], webflow::FORMS.len());
}

#[tokio::test]
async fn only_the_tenants_own_forms_are_read() {
    let (sandbox, server, acme) = setup().await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let forms = ok_json(&call(&client, LIST, json!({})).await);
    assert_eq!(forms["site_id"], acme.fixture.site_id);
    let ids: Vec<&str> = forms["forms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, acme.fixture.form_ids);
    assert_eq!(forms["forms"][0]["pageName"], "Contact");
    assert_eq!(forms["forms"][0]["fields"].as_object().unwrap().len(), 3);

    let contact = acme.fixture.form_ids[0].clone();
    let page = ok_json(
        &call(
            &client,
            SUBMISSIONS,
            json!({"form_id": contact, "offset": 1, "limit": 2}),
        )
        .await,
    );
    assert_eq!(
        page["pagination"],
        json!({"limit": 2, "offset": 1, "total": webflow::FORMS[0].submissions})
    );
    assert_eq!(page["submissions"].as_array().unwrap().len(), 2);
    assert_eq!(page["submissions"][0]["formId"], contact.as_str());
    let text = page.to_string();
    assert!(text.contains("owner:acme)") && !text.contains("owner:globex)"));

    // Another tenant's form, or one that does not exist: refused, never named upstream.
    sandbox.clear_requests();
    for form in globex
        .form_ids
        .iter()
        .chain([&"0123456789abcdef01234567".to_owned()])
    {
        let text = error_text(&call(&client, SUBMISSIONS, json!({"form_id": form})).await);
        assert!(text.contains("not one of this tenant's"), "{text}");
    }
    let text = error_text(&call(&client, LIST, json!({"site_id": globex.site_id})).await);
    assert!(text.contains("not one of this tenant's"), "{text}");
    let requests = sandbox.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.token_owner.as_deref() == Some("acme")
                && !r.path.contains(&globex.site_id)
                && globex.form_ids.iter().all(|f| !r.path.contains(f.as_str()))),
        "{requests:?}"
    );

    // Without `forms:read` on the token, the tool names the scope to add.
    sandbox.withhold_webflow_scope("acme", webflow::FORMS_READ);
    let text = error_text(&call(&client, SUBMISSIONS, json!({"form_id": contact})).await);
    assert!(text.contains("`forms:read` scope"), "{text}");
}

#[tokio::test]
async fn submissions_are_read_fresh_every_time() {
    let (sandbox, server, acme) = setup().await;
    let client = server.client(&acme.token).await;
    let contact = acme.fixture.form_ids[0].clone();
    let path = format!("/v2/forms/{contact}/submissions?offset=0&limit=100");
    // The form is known to the index first, so only the submissions are read below.
    ok_json(&call(&client, SUBMISSIONS, json!({"form_id": contact})).await);
    sandbox.clear_requests();
    for _ in 0..3 {
        let result = ok_json(&call(&client, SUBMISSIONS, json!({"form_id": contact})).await);
        assert!(result.get("cached_for_secs").is_none(), "{result}");
        assert_eq!(answers(&result).len(), 3 * 3);
    }
    let reads: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(reads.len(), 3, "{:?}", sandbox.requests());

    // The listing of forms (no personal data) may come from the cache.
    ok_json(&call(&client, LIST, json!({})).await);
    let again = ok_json(&call(&client, LIST, json!({})).await);
    assert!(again.get("cached_for_secs").is_some(), "{again}");
}

/// One server's session with debug logging captured: the answers visitors gave are in the tool
/// result and nowhere else, neither in the logs nor in any file under the data dir (the audit
/// log's day files included), whichever front answers (`fast_path`).
async fn session(sandbox: &Sandbox, logs: &Captured, fast_path: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(dir.path(), &sandbox.base_url());
    config.fast_path = fast_path;
    let server = TestServer::start_with(config).await;
    let f = sandbox.fixture().owner("acme").unwrap();
    let acme = server
        .provision_with(f, json!({ "toolsets": WITH_FORMS }))
        .await;
    let client = server.client(&acme.token).await;
    let mut private = Vec::new();
    for form in &f.form_ids {
        let result = ok_json(&call(&client, SUBMISSIONS, json!({"form_id": form})).await);
        private.extend(answers(&result));
    }
    // A failing call too: refusals are logged with their message.
    error_text(
        &call(
            &client,
            SUBMISSIONS,
            json!({"form_id": f.form_ids[0], "limit": 0}),
        )
        .await,
    );
    assert_eq!(private.len(), 3 * 3 + 1);
    assert!(private.iter().any(|a| a.starts_with("Please call me back")));

    let records = server
        .admin
        .audit(&AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let audited: Vec<_> = records.iter().filter(|r| r.action == SUBMISSIONS).collect();
    assert_eq!(audited.len(), 3, "{records:?}");
    assert!(audited.iter().any(|r| r.outcome == "ok"));
    let audit_text = serde_json::to_string(&records).unwrap();
    server.stop().await;

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("tool call"), "logging was not captured");
    let files = stored(dir.path());
    assert!(!files.is_empty());
    for answer in &private {
        let line = logged.lines().find(|l| l.contains(answer.as_str()));
        assert!(line.is_none(), "a submission reached the logs: {line:?}");
        assert!(
            !audit_text.contains(answer.as_str()),
            "in the audit: {answer}"
        );
        for (name, bytes) in &files {
            assert!(
                !bytes.windows(answer.len()).any(|w| w == answer.as_bytes()),
                "{name} holds a submission: {answer}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_reach_neither_the_audit_log_nor_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    // The server's own filter with everything at DEBUG, rmcp named at TRACE as an operator
    // chasing a protocol problem would; the test's own MCP client is not the product.
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let filter = common::runtime::server::telemetry::log_filter(Some(
            "debug,rmcp=trace,rmcp::transport::streamable_http_client=off",
        ));
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(filter);
        tracing_subscriber::registry().with(layer).init();
    }
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    session(&sandbox, &logs, true).await;
    session(&sandbox, &logs, false).await;
}
