//! The stateless JSON fast path against rmcp's transport, request by request: the same bytes
//! go to a door as it is served (the fast path in front of rmcp) and to the same state's door
//! with rmcp's transport alone, and the answers must agree (`fuzz::mcp::agree`). Each case also
//! says which front must have answered it, read from `studio_mcp_mcp_requests_total`: the fast
//! path takes the requests it should, and leaves every refusal to rmcp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use common::runtime::server::routes::{McpFront, static_router_with};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fuzz::mcp::agree;
use crate::fuzz::world::{Answer, Server, peer, sandbox, send};

/// One request: what a client sends, which front must answer, and the status it gets.
struct Case {
    what: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// The body sent to rmcp alone, if not `body`: a high-risk action must be another one for
    /// each front, or the second would find the first's approval waiting.
    twin: Option<Vec<u8>>,
    content_length: bool,
    fast: bool,
    status: u16,
}

const BOTH: &str = "application/json, text/event-stream";

fn case(what: &'static str, body: Value, fast: bool, status: u16) -> Case {
    Case {
        what,
        method: "POST",
        headers: vec![
            ("accept", BOTH.to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        body: body.to_string().into_bytes(),
        twin: None,
        content_length: true,
        fast,
        status,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    fn also(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Which front must answer, and with what status.
    fn expect(mut self, fast: bool, status: u16) -> Self {
        self.fast = fast;
        self.status = status;
        self
    }

    fn without_length(mut self) -> Self {
        self.content_length = false;
        self
    }

    fn twin(mut self, body: Value) -> Self {
        self.twin = Some(body.to_string().into_bytes());
        self
    }

    fn request(&self, server: &Server, token: &str) -> Request<Body> {
        self.request_with(server, token, &self.body)
    }

    fn request_with(&self, server: &Server, token: &str, body: &[u8]) -> Request<Body> {
        let mut builder = Request::builder()
            .method(self.method)
            .uri("/mcp")
            .header("host", &server.static_host)
            .header("authorization", format!("Bearer {token}"));
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        if self.content_length {
            builder = builder.header("content-length", body.len());
        }
        builder.body(Body::from(body.to_vec())).unwrap()
    }
}

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// `_meta` of a 2026-07-28 request; `url` declares URL-mode elicitation.
fn meta_2026(url: bool) -> Value {
    let elicitation = if url { json!({"url": {}}) } else { json!({}) };
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "front-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": elicitation},
    })
}

/// A 2026-07-28 `tools/call`, with the headers such a client sends.
fn call_2026(what: &'static str, name: &str, arguments: Value, url: bool) -> Case {
    let body = rpc(
        9,
        "tools/call",
        json!({"name": name, "arguments": arguments, "_meta": meta_2026(url)}),
    );
    case(what, body, true, 200)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", name)
}

/// Requests served by the fast path answered per front, in counts.
fn fronts(server: &Server) -> (u64, u64) {
    let text = server.state.services.metrics.render(std::iter::empty::<(
        &common::domain::TenantId,
        &common::metrics::TenantCalls,
    )>());
    let count = |front: &str| {
        let needle = format!("studio_mcp_mcp_requests_total{{front=\"{front}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(needle.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    (count("fast"), count("rmcp"))
}

/// Sends each case to both fronts and checks they agree; the fast-path door's answers.
async fn check(server: &Server, token: &str, cases: &[Case]) -> Vec<Answer> {
    let mut answers = Vec::new();
    let rmcp_only = static_router_with(
        server.state.clone(),
        CancellationToken::new(),
        McpFront::Rmcp,
    );
    for case in cases {
        let before = fronts(server);
        let answer: Answer = send(&server.statik, case.request(server, token), peer(1))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let after = fronts(server);
        let twin = case.twin.as_deref().unwrap_or(&case.body);
        let reference = send(&rmcp_only, case.request_with(server, token, twin), peer(1))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        agree(&answer, &reference).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(
            answer.status.as_u16(),
            case.status,
            "{}: {}",
            case.what,
            answer.text()
        );
        let expected = if case.fast {
            (before.0 + 1, before.1)
        } else {
            (before.0, before.1 + 1)
        };
        assert_eq!(
            after, expected,
            "{}: answered by the wrong front (fast, rmcp) counts {before:?} -> {after:?}",
            case.what
        );
        answers.push(answer);
    }
    answers
}

#[tokio::test]
async fn the_fast_path_answers_as_rmcp_does_and_leaves_it_every_refusal() {
    let sandbox = sandbox().await;
    let (server, tenant) = Server::shared(&sandbox).await;
    let f = &tenant.fixture;
    let whoami = rpc(1, "tools/call", json!({"name": "whoami", "arguments": {}}));
    let site = format!("webflow://sites/{}", f.site_id);
    let foreign = sandbox.fixture().owner("globex").unwrap().site_id.clone();
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {"pad": "x".repeat(1024 * 1024)}}});
    let cases = vec![
        // Taken by the fast path.
        case("whoami, no version header", whoami.clone(), true, 200),
        case("whoami, 2025-11-25", whoami.clone(), true, 200)
            .header("mcp-protocol-version", "2025-11-25"),
        case("whoami, 2025-06-18", whoami.clone(), true, 200)
            .header("mcp-protocol-version", "2025-06-18"),
        case("tools/list", rpc(2, "tools/list", json!({})), true, 200),
        case(
            "tools/list, string id",
            json!({"jsonrpc": "2.0", "id": "a-string", "method": "tools/list"}),
            true,
            200,
        ),
        case(
            "resources/list",
            rpc(3, "resources/list", json!({})),
            true,
            200,
        ),
        case(
            "resources/templates/list",
            rpc(4, "resources/templates/list", json!({})),
            true,
            200,
        ),
        case(
            "resources/read, own site",
            rpc(5, "resources/read", json!({"uri": site})),
            true,
            200,
        ),
        case(
            "resources/read, another tenant's site",
            rpc(
                5,
                "resources/read",
                json!({"uri": format!("webflow://sites/{foreign}")}),
            ),
            true,
            200,
        ),
        case(
            "unknown tool",
            rpc(
                6,
                "tools/call",
                json!({"name": "no_such_tool", "arguments": {}}),
            ),
            true,
            200,
        ),
        case(
            "a tool's bad arguments",
            rpc(
                6,
                "tools/call",
                json!({"name": "webflow_get_site", "arguments": {"site_id": 7}}),
            ),
            true,
            200,
        ),
        case(
            "another tenant's site",
            rpc(
                6,
                "tools/call",
                json!({"name": "webflow_get_site", "arguments": {"site_id": foreign}}),
            ),
            true,
            200,
        ),
        call_2026("2026-07-28 whoami", "whoami", json!({}), false),
        call_2026(
            "2026-07-28, URL elicitation declared",
            "whoami",
            json!({}),
            true,
        ),
        case(
            "2026-07-28 resources/read",
            rpc(
                7,
                "resources/read",
                json!({"uri": site, "_meta": meta_2026(false)}),
            ),
            true,
            200,
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "resources/read")
        .header("mcp-name", &format!("webflow://sites/{}", f.site_id)),
        case("Accept with parameters", whoami.clone(), true, 200).header(
            "accept",
            "application/json;q=0.9, text/event-stream;q=0.5, */*;q=0.1",
        ),
        case("Content-Type with a charset", whoami.clone(), true, 200)
            .header("content-type", "application/json; charset=utf-8"),
        // Left to rmcp.
        case("chunked body", whoami.clone(), false, 200).without_length(),
        case("Accept without event streams", whoami.clone(), false, 406)
            .header("accept", "application/json"),
        case("Accept with JSON weighted out", whoami.clone(), false, 406)
            .header("accept", "application/json;q=0, text/event-stream"),
        case("Content-Type text/plain", whoami.clone(), false, 415)
            .header("content-type", "text/plain"),
        case("unknown protocol version", whoami.clone(), false, 400)
            .header("mcp-protocol-version", "2099-01-01"),
        case(
            "2026-07-28 header, no _meta version",
            whoami.clone(),
            false,
            400,
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami"),
        call_2026(
            "Mcp-Method contradicts the body",
            "whoami",
            json!({}),
            false,
        )
        .header("mcp-method", "tools/list")
        .expect(false, 400),
        call_2026("Mcp-Name contradicts the body", "whoami", json!({}), false)
            .header("mcp-name", "webflow_list_sites")
            .expect(false, 400),
        call_2026("Mcp-Name twice", "whoami", json!({}), false)
            .also("mcp-name", "whoami")
            .expect(false, 400),
        call_2026("no Mcp-Method", "whoami", json!({}), false)
            .header("mcp-method", "")
            .expect(false, 400),
        case(
            "2026-07-28 _meta without capabilities",
            rpc(
                9,
                "tools/call",
                json!({"name": "whoami", "arguments": {},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
            ),
            false,
            400,
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami"),
        case(
            "_meta version without the header",
            rpc(
                9,
                "tools/call",
                json!({"name": "whoami", "arguments": {}, "_meta": meta_2026(false)}),
            ),
            false,
            400,
        ),
        case("body over the limit", big.clone(), false, 413),
        case("body over the limit, chunked", big, false, 413).without_length(),
        case(
            "notification",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            false,
            202,
        ),
        case(
            "batch",
            json!([
                rpc(1, "tools/list", json!({})),
                rpc(2, "tools/list", json!({}))
            ]),
            false,
            415,
        ),
        case(
            "a JSON-RPC response",
            json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
            false,
            400,
        ),
        case(
            "initialize",
            rpc(
                1,
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}),
            ),
            false,
            200,
        ),
        case("ping", rpc(1, "ping", json!({})), false, 200),
        case(
            "server/discover",
            rpc(1, "server/discover", json!({"_meta": meta_2026(false)})),
            false,
            200,
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover"),
        case(
            "prompts/list",
            rpc(1, "prompts/list", json!({})),
            false,
            200,
        ),
        Case {
            body: b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ".to_vec(),
            ..case("malformed JSON", json!(null), false, 415)
        },
        Case {
            method: "GET",
            body: Vec::new(),
            ..case("GET", json!(null), false, 405)
        },
    ];
    check(&server, &tenant.token, &cases).await;
    server.stop().await;
}

/// An isolated instance's high-risk tool: the approval answer as a tool result (2025-11-25)
/// and as an input-required result (2026-07-28 with URL elicitation), both on the fast path.
#[tokio::test]
async fn approval_answers_agree_on_an_isolated_instance() {
    let sandbox = sandbox().await;
    let (server, tenant) = Server::isolated(&sandbox).await;
    let f = &tenant.fixture;
    // Six publish actions, each a different one (so each asks for an approval of its own):
    // the domains, with and without the Webflow subdomain.
    let publish = |domains: &[usize], subdomain: bool| {
        let domains: Vec<&String> = domains.iter().map(|&i| &f.custom_domain_ids[i]).collect();
        json!({"site_id": f.site_id, "custom_domains": domains,
               "publish_to_webflow_subdomain": subdomain})
    };
    let call = |args: Value| {
        rpc(
            1,
            "tools/call",
            json!({"name": "webflow_publish_site", "arguments": args}),
        )
    };
    let call_2026_body = |args: Value, url: bool| {
        rpc(
            9,
            "tools/call",
            json!({"name": "webflow_publish_site", "arguments": args, "_meta": meta_2026(url)}),
        )
    };
    let cases = vec![
        case(
            "publish, 2025-11-25: the approval link in the result",
            call(publish(&[0], false)),
            true,
            200,
        )
        .header("mcp-protocol-version", "2025-11-25")
        .twin(call(publish(&[0], true))),
        call_2026(
            "publish, 2026-07-28 with URL elicitation: input required",
            "webflow_publish_site",
            publish(&[0, 1], false),
            true,
        )
        .twin(call_2026_body(publish(&[0, 1], true), true)),
        call_2026(
            "publish, 2026-07-28 without URL elicitation",
            "webflow_publish_site",
            publish(&[1], false),
            false,
        )
        .twin(call_2026_body(publish(&[1], true), false)),
    ];
    let answers = check(&server, &tenant.token, &cases).await;
    let first: Value = serde_json::from_slice(&answers[1].body).unwrap();
    assert_eq!(
        first["result"]["resultType"],
        "input_required",
        "{}",
        answers[1].text()
    );
    // The input-required answer really is one (the case would agree on anything else too):
    // asked again, the same action is still waiting, and says so in a complete result.
    let again = send(
        &server.statik,
        cases[1].request(&server, &tenant.token),
        peer(1),
    )
    .await
    .unwrap();
    let body: Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["status"],
        "waiting_for_approval",
        "{}",
        again.text()
    );
    server.stop().await;
}
