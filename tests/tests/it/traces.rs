//! OpenTelemetry traces from the real `isolated-server` binary to an OTLP/HTTP collector built
//! on the official protobuf definitions: the server span of a tool call is the child of the
//! client's span (`_meta.traceparent`), the HTTP header's context a link; upstream calls are its
//! children with the HTTP client attributes; a high-risk call's approval is requested under its
//! call, and decided and run under spans that link back to it; the duration histogram arrives;
//! and no token, argument, request id, header, baggage or upstream body is in any byte
//! exported. Then with the collector down and black-holed: calls still work, drops are counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tests::harness::{WithLog, eventually, free_port, provision_isolated, until_healthy};
use tests::otlp::{Collector, ServedSpan, attr};
use tests::sandbox::{Fixture, Sandbox};

/// The client's trace and span (`_meta.traceparent`) and a different one in the HTTP header.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const HEADER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEADER_SPAN: &str = "b7ad6b7169203331";

struct Instance {
    child: Child,
    mcp_url: String,
    admin_url: String,
    admin_token: String,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data: &Path, sandbox: &Sandbox, otel: &[(&str, &str)]) -> Instance {
    common::upstream::install_crypto_provider();
    let (port, admin_port) = (free_port(), free_port());
    let log = data.with_extension("log");
    let mut command =
        tests::harness::isolated_acme_command(data, &sandbox.base_url(), (port, admin_port)).await;
    for (name, value) in otel {
        command.env(name, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    until_healthy(
        "isolated-server ready",
        &mut child,
        &format!("http://127.0.0.1:{port}/healthz"),
        &log,
        Duration::from_secs(30),
    )
    .await;
    let admin_token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    Instance {
        child,
        mcp_url: format!("http://127.0.0.1:{port}/mcp"),
        admin_url: format!("http://127.0.0.1:{admin_port}"),
        admin_token,
        log,
    }
}

impl Instance {
    /// A raw `tools/call` with the given JSON-RPC id, `_meta` and extra headers; the answer.
    async fn call(
        &self,
        token: &str,
        id: Value,
        tool: &str,
        arguments: Value,
        meta: Value,
        headers: &[(&str, &str)],
    ) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}});
        let mut request = common::upstream::http_client()
            .unwrap()
            .post(&self.mcp_url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> String {
        let response = common::upstream::http_client()
            .unwrap()
            .request(method, format!("{}{path}", self.admin_url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    fn admin_client(&self) -> common::runtime::admin::client::AdminClient {
        common::runtime::admin::client::AdminClient::new(
            self.admin_url.clone(),
            self.admin_token.clone(),
        )
        .unwrap()
    }

    /// A counter's value on `/metrics` (0 if absent).
    async fn metric(&self, series: &str) -> u64 {
        let text = self.admin(reqwest::Method::GET, "/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn named<'a>(spans: &'a [ServedSpan], name: &str) -> Vec<&'a ServedSpan> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

/// The first span of that name.
fn first<'a>(spans: &'a [ServedSpan], name: &str) -> &'a ServedSpan {
    spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fast batches, a short export timeout, metrics every half second.
const FAST_EXPORT: [(&str, &str); 3] = [
    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_traced_from_the_clients_span_to_the_upstream_and_leaks_nothing() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str())];
    env.extend(FAST_EXPORT);
    let server = start(&dir.path().join("data"), &sandbox, &env).await;
    let acme = provision_isolated(
        &server.admin_client(),
        sandbox.fixture().owner("acme").unwrap(),
    )
    .await;

    let canary_arg = "canary-argument-5b1e0c7d";
    let canary_header = "canary-header-81f0aa2e";
    let canary_baggage = "canary-baggage-c3d9e6f1";
    let canary_id = "canary-request-id-9a7b3c1d";
    let canary_tool = "canary_tool_44e1d0b8";
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let header_traceparent = format!("00-{HEADER_TRACE}-{HEADER_SPAN}-01");
    let baggage = format!("user={canary_baggage}");
    let headers = [
        ("traceparent", header_traceparent.as_str()),
        ("baggage", baggage.as_str()),
        ("x-canary", canary_header),
    ];
    let meta = json!({"traceparent": traceparent, "tracestate": "rojo=00f067aa0ba902b7",
        "baggage": baggage});

    // A read that reaches Cloudflare.
    let listed = server
        .call(
            &acme.token,
            json!(41),
            "dns_list_records",
            json!({}),
            meta.clone(),
            &headers,
        )
        .await;
    assert!(listed["result"]["isError"] != json!(true), "{listed}");
    // A high-risk call: an approval is requested (the canary is the record's content, so
    // Cloudflare's answer carries it too once the action runs).
    let zone = &acme.fixture.zone_name;
    let requested = server
        .call(
            &acme.token,
            json!(42),
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": format!("www.{zone}"), "content": canary_arg}}),
            json!({"traceparent": format!("00-{CLIENT_TRACE}-1111111111111111-01")}),
            &[],
        )
        .await;
    let step = &requested["result"]["structuredContent"];
    let approval = step["approval_id"].as_str().unwrap().to_owned();
    // A tool nobody serves, and a string request id.
    let unknown = server
        .call(
            &acme.token,
            json!(43),
            canary_tool,
            json!({}),
            json!({}),
            &[],
        )
        .await;
    assert!(unknown["error"].is_object(), "{unknown}");
    server
        .call(
            &acme.token,
            json!(canary_id),
            "dns_list_records",
            json!({}),
            json!({}),
            &[],
        )
        .await;
    // The operator approves: the action runs.
    server
        .admin(
            reqwest::Method::POST,
            &format!("/v1/approvals/{approval}/approve"),
        )
        .await;

    let spans = eventually("the spans arrive", Duration::from_secs(20), || async {
        let spans = collector.spans();
        let ran = named(&spans, "approval ran");
        let upstream_under_ran = ran.first().is_some_and(|ran| {
            spans.iter().any(|s| {
                s.span.parent_span_id == ran.span.span_id && s.span.name.starts_with("POST")
            })
        });
        if upstream_under_ran && !named(&spans, "tools/call _OTHER").is_empty() {
            Ok(spans)
        } else {
            Err(WithLog::new(
                format!("{} spans so far", spans.len()),
                &server.log,
            ))
        }
    })
    .await;
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();

    // The read: a server span, child of the client's `_meta` span, linked to the header's.
    let read = named(&spans, "tools/call dns_list_records")
        .into_iter()
        .find(|s| attr(&s.span, "jsonrpc.request.id").as_deref() == Some("41"))
        .unwrap_or_else(|| panic!("no span of the read in {names:?}"));
    assert_eq!(read.service, "studio-mcp-isolated-acme");
    assert_eq!(hex(&read.span.trace_id), CLIENT_TRACE);
    assert_eq!(hex(&read.span.parent_span_id), CLIENT_SPAN);
    assert_eq!(read.span.kind, 2, "kind server");
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "dns_list_records"),
        ("gen_ai.operation.name", "execute_tool"),
        ("mcp.protocol.version", "2025-11-25"),
        ("network.transport", "tcp"),
        ("studio_mcp.tenant.id", "acme"),
        ("studio_mcp.rate_limit", "allowed"),
    ] {
        assert_eq!(
            attr(&read.span, key).as_deref(),
            Some(value),
            "{key} on {read:?}"
        );
    }
    assert!(attr(&read.span, "mcp.session.id").is_none());
    assert!(attr(&read.span, "error.type").is_none());
    assert!(
        read.span
            .links
            .iter()
            .any(|l| hex(&l.trace_id) == HEADER_TRACE && hex(&l.span_id) == HEADER_SPAN),
        "the HTTP header's context is a link: {:?}",
        read.span.links
    );
    // Its upstream call: a client span under it, by template, with the status.
    let get = spans
        .iter()
        .find(|s| s.span.parent_span_id == read.span.span_id)
        .unwrap_or_else(|| panic!("no child of the read in {names:?}"));
    assert_eq!(get.span.name, "GET /client/v4/zones/{zone}/dns_records");
    assert_eq!(get.span.kind, 3, "kind client");
    assert_eq!(hex(&get.span.trace_id), CLIENT_TRACE);
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.template", "/client/v4/zones/{zone}/dns_records"),
        ("server.address", "127.0.0.1"),
        ("http.response.status_code", "200"),
        ("studio_mcp.upstream", "Cloudflare"),
    ] {
        assert_eq!(
            attr(&get.span, key).as_deref(),
            Some(value),
            "{key} on {get:?}"
        );
    }

    // The high-risk call: its span carries the approval; the request is its child; the
    // decision and the run link back to it, and the run's upstream write is under the run.
    let asked = named(&spans, "tools/call dns_create_record")
        .into_iter()
        .find(|s| attr(&s.span, "jsonrpc.request.id").as_deref() == Some("42"))
        .unwrap();
    assert_eq!(hex(&asked.span.trace_id), CLIENT_TRACE);
    assert_eq!(
        attr(&asked.span, "studio_mcp.approval.id"),
        Some(approval.clone())
    );
    assert_eq!(
        attr(&asked.span, "studio_mcp.approval.state").as_deref(),
        Some("pending")
    );
    let requested = named(&spans, "approval requested");
    assert!(
        requested
            .iter()
            .any(|s| s.span.parent_span_id == asked.span.span_id),
        "{requested:?}"
    );
    for step in ["approval decided", "approval ran"] {
        let step_span = first(&spans, step);
        assert_eq!(
            attr(&step_span.span, "studio_mcp.approval.id"),
            Some(approval.clone())
        );
        assert!(
            step_span
                .span
                .links
                .iter()
                .any(|l| l.span_id == asked.span.span_id && l.trace_id == asked.span.trace_id),
            "{step} links to the request: {:?}",
            step_span.span.links
        );
    }
    let ran = first(&spans, "approval ran");
    assert_eq!(
        attr(&ran.span, "studio_mcp.approval.state").as_deref(),
        Some("done")
    );
    let decided = first(&spans, "approval decided");
    assert_eq!(ran.span.parent_span_id, decided.span.span_id);
    let write = spans
        .iter()
        .find(|s| s.span.parent_span_id == ran.span.span_id && s.span.name.starts_with("POST"))
        .unwrap();
    assert_eq!(
        attr(&write.span, "url.template").as_deref(),
        Some("/client/v4/zones/{zone}/dns_records")
    );

    // The unknown tool is `_OTHER`, an error of the caller's (status unset).
    let other = first(&spans, "tools/call _OTHER");
    assert_eq!(attr(&other.span, "error.type").as_deref(), Some("-32602"));
    assert_eq!(
        attr(&other.span, "rpc.response.status_code").as_deref(),
        Some("-32602")
    );

    // The duration histogram, over OTLP too.
    eventually(
        "the duration histogram arrives",
        Duration::from_secs(10),
        || async {
            if collector
                .metric_names()
                .iter()
                .any(|n| n == "mcp.server.operation.duration")
            {
                Ok(())
            } else {
                Err(format!("metrics so far: {:?}", collector.metric_names()))
            }
        },
    )
    .await;

    // Nothing secret in any byte exported.
    let raw = collector.raw();
    let mut secrets = vec![
        canary_arg.to_owned(),
        canary_header.to_owned(),
        canary_baggage.to_owned(),
        canary_id.to_owned(),
        canary_tool.to_owned(),
        acme.token.clone(),
        server.admin_token.clone(),
        acme.fixture.cloudflare_token.clone(),
        acme.fixture.stripe_key.clone(),
    ];
    // The pieces of a token a careless exporter might keep (its tail after the prefix).
    secrets.push(acme.token[acme.token.len() - 24..].to_owned());
    for secret in &secrets {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
    assert!(
        server
            .metric("studio_mcp_trace_spans_total{outcome=\"exported\"}")
            .await
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_or_black_holed_never_fails_a_call_and_drops_are_counted() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let black_hole = Collector::black_hole().await;
    let down = format!("http://127.0.0.1:{}", free_port());
    for (what, endpoint, counter) in [
        ("down", down.as_str(), "export_failed"),
        ("black-holed", black_hole.endpoint.as_str(), "queue_full"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            // A small queue, so that a collector that never answers fills it quickly.
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ];
        env.extend(FAST_EXPORT);
        let server = start(&dir.path().join("data"), &sandbox, &env).await;
        let acme = provision_isolated(
            &server.admin_client(),
            sandbox.fixture().owner("acme").unwrap(),
        )
        .await;
        for i in 0..40 {
            let answer = server
                .call(
                    &acme.token,
                    json!(i),
                    "dns_list_records",
                    json!({}),
                    json!({}),
                    &[],
                )
                .await;
            assert!(
                answer["result"]["structuredContent"]["records"].is_array(),
                "{what}: {answer}"
            );
        }
        let series = format!("studio_mcp_trace_spans_total{{outcome=\"{counter}\"}}");
        eventually(
            &format!("{what}: drops counted"),
            Duration::from_secs(20),
            || async {
                match server.metric(&series).await {
                    0 => Err(WithLog::new(format!("{series} is 0"), &server.log)),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert_eq!(
            server
                .metric("studio_mcp_trace_spans_total{outcome=\"exported\"}")
                .await,
            0,
            "{what}"
        );
    }
}

/// PostgreSQL statements run on the store engine's own runtime; their spans are still the
/// children of the request that made them (here a client registration on the connector door,
/// whose record is written before the answer), never roots of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_statements_are_children_of_the_request_that_made_them() {
    common::upstream::install_crypto_provider();
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cluster = tests::postgres::cluster_url();
    let database = tests::harness::database_for(&cluster, &format!("traces-pg-{}", data.display()));
    let binary = tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary");
    let (port, admin_port, connector_port) = (free_port(), free_port(), free_port());
    let connector = format!("http://127.0.0.1:{connector_port}");
    let log = dir.path().join("server.log");
    let mut command = tests::harness::server_command(&binary);
    command
        .arg("serve")
        .env("STUDIO_MCP_STORE", &database)
        .env("STUDIO_MCP_DATA_DIR", &data)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env(
            "STUDIO_MCP_CONNECTOR_LISTEN",
            format!("127.0.0.1:{connector_port}"),
        )
        .env("STUDIO_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("STUDIO_MCP_CONNECTOR_URL", format!("{connector}/mcp"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .envs(FAST_EXPORT)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = command.spawn().unwrap();
    until_healthy(
        "shared-server on PostgreSQL ready",
        &mut child,
        &format!("http://127.0.0.1:{port}/healthz"),
        &log,
        Duration::from_secs(60),
    )
    .await;
    let registered = common::upstream::http_client()
        .unwrap()
        .post(format!("{connector}/register"))
        .json(&json!({
            "client_name": "Traced Assistant",
            "redirect_uris": [tests::connector::REDIRECT],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let child = tests::harness::KillOnDrop(child);

    let spans = eventually(
        "the registration's spans",
        Duration::from_secs(20),
        || async {
            let spans = collector.spans();
            let register = named(&spans, "POST /register");
            match register.first() {
                Some(r)
                    if spans
                        .iter()
                        .any(|s| s.span.parent_span_id == r.span.span_id) =>
                {
                    Ok(spans)
                }
                _ => Err(WithLog::new(format!("{} spans so far", spans.len()), &log)),
            }
        },
    )
    .await;
    let register = first(&spans, "POST /register");
    assert_eq!(register.service, "studio-mcp-shared");
    assert!(
        register.span.parent_span_id.is_empty(),
        "an anonymous request is a root"
    );
    assert_eq!(
        attr(&register.span, "http.response.status_code").as_deref(),
        Some("201")
    );
    let statements: Vec<&ServedSpan> = spans
        .iter()
        .filter(|s| s.span.parent_span_id == register.span.span_id)
        .collect();
    assert!(!statements.is_empty());
    for statement in &statements {
        assert_eq!(hex(&statement.span.trace_id), hex(&register.span.trace_id));
        assert_eq!(
            attr(&statement.span, "db.system.name").as_deref(),
            Some("postgresql"),
            "{statement:?}"
        );
        assert_eq!(statement.span.kind, 3, "kind client");
        let operation = attr(&statement.span, "db.operation.name").unwrap();
        assert_eq!(
            statement.span.name,
            format!("{operation} kv"),
            "named by operation and table, never by text"
        );
    }
    drop(child);
}
