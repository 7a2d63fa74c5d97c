//! JSON-RPC and MCP request decoding at the edge, as a client with a valid token reaches it:
//! the fast path's decoding and checks and rmcp's (`ClientJsonRpcMessage`, the header rules),
//! our `McpServer` (tools, resources, the per-tenant catalog) and every tool's argument parsing
//! and scoping — CMS `field_data` against the collection's schema on the shared server, DNS
//! records, publish targets, Stripe customers and return URLs on an isolated instance. Seeds are
//! the bodies the end-to-end tests send, every tool called with arguments that work.
//!
//! Differential: every input goes to the door as it is served (the fast path in front of rmcp)
//! and to the same state's door with rmcp's transport alone; the two answers must agree in
//! status, headers and body (tool output aside: a tool's answer to the same call twice may
//! differ, e.g. a draft created twice has two ids).

use axum::body::Body;
use axum::http::Request;
use common::runtime::server::routes::McpFront;
use proptest::prelude::*;
use proptest::sample::select;
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, Bytes};
use crate::fuzz::world::{Answer, Server, peer, runtime, sandbox, send};

const VERSIONS: [&str; 3] = ["2025-06-18", "2025-11-25", "2026-07-28"];

/// A request: its body and the headers a client sets beside it.
#[derive(Clone, Debug)]
struct Call {
    body: Bytes,
    /// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` (2026-07-28 clients send the last
    /// two), `Accept`, `Content-Type`: `None` leaves a header out.
    protocol: Option<String>,
    method: Option<String>,
    name: Option<String>,
    accept: Option<String>,
    content_type: Option<String>,
    peer: u8,
    /// Sent without `Content-Length` (as a chunked body would be).
    chunked: bool,
}

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn tool(name: &str, arguments: Value) -> Value {
    rpc(
        7,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
}

/// What every client sends whatever the server: the handshake, listings, pings, a
/// notification, a stray response, a 2026-07-28 stateless call, a batch.
fn protocol_seeds() -> Vec<Value> {
    let init = |version: &str| {
        rpc(
            1,
            "initialize",
            json!({
                "protocolVersion": version,
                "capabilities": {"elicitation": {}, "roots": {"listChanged": true}},
                "clientInfo": {"name": "fuzz", "version": "1"},
            }),
        )
    };
    vec![
        init("2025-06-18"),
        init("2025-11-25"),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}),
        rpc(2, "ping", json!({})),
        rpc(3, "tools/list", json!({})),
        rpc(3, "tools/list", json!({"cursor": "abc"})),
        rpc(4, "resources/list", json!({})),
        rpc(5, "resources/templates/list", json!({})),
        rpc(6, "prompts/list", json!({})),
        rpc(8, "logging/setLevel", json!({"level": "debug"})),
        rpc(
            9,
            "server/discover",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        ),
        json!({"jsonrpc": "2.0", "id": 10, "result": {}}),
        json!({"jsonrpc": "2.0", "id": 11, "error": {"code": -32601, "message": "no"}}),
        json!([rpc(12, "ping", json!({})), rpc(13, "tools/list", json!({}))]),
        rpc(
            14,
            "tools/call",
            json!({
                "name": "whoami",
                "arguments": {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
                    "progressToken": "p1",
                },
            }),
        ),
    ]
}

/// Every shared-server tool and resource, with arguments naming the tenant's own resources.
fn shared_seeds(f: &OwnerFixture) -> Vec<Value> {
    let (collection, item) = f.item_ids[0].clone();
    let field_data = json!({
        "name": "Fuzzed post",
        "slug": "fuzzed-post",
        "post-body": "<p>Hello <strong>world</strong></p>",
        "seo-description": "A post.",
        "featured": true,
        "order": 3,
    });
    let mut seeds = protocol_seeds();
    seeds.extend([
        tool("whoami", json!({})),
        tool("webflow_list_sites", json!({})),
        tool("webflow_get_site", json!({"site_id": f.site_id})),
        tool(
            "webflow_list_pages",
            json!({"site_id": f.site_id, "offset": 0}),
        ),
        tool(
            "webflow_get_page_content",
            json!({"page_id": f.page_ids[0], "offset": 0}),
        ),
        tool("webflow_list_collections", json!({"site_id": f.site_id})),
        tool(
            "webflow_get_collection",
            json!({"collection_id": collection}),
        ),
        tool(
            "webflow_list_items",
            json!({"collection_id": collection, "offset": 0}),
        ),
        tool(
            "webflow_get_item",
            json!({"collection_id": collection, "item_id": item}),
        ),
        // A secondary locale's variants: pages by site locale, items by CMS locale.
        tool(
            "webflow_list_pages",
            json!({"site_id": f.site_id, "locale_id": f.locale_ids[1]}),
        ),
        tool(
            "webflow_get_page_content",
            json!({"page_id": f.page_ids[0], "locale_id": f.locale_ids[1], "limit": 2}),
        ),
        tool(
            "webflow_list_items",
            json!({"collection_id": collection, "cms_locale_id": f.cms_locale_ids[1]}),
        ),
        tool(
            "webflow_get_item",
            json!({"collection_id": collection, "item_id": item,
                   "cms_locale_id": f.cms_locale_ids[2]}),
        ),
        tool(
            "webflow_update_page_settings",
            json!({"page_id": f.page_ids[1], "locale_id": f.locale_ids[1],
                   "seo": {"description": "Une page."}}),
        ),
        tool(
            "webflow_create_item",
            json!({"collection_id": collection, "field_data": field_data}),
        ),
        tool(
            "webflow_create_items",
            json!({"collection_id": collection, "items": [
                {"field_data": field_data},
                {"field_data": {"name": "Fuzzed two", "slug": "fuzzed-two", "featured": true}},
            ]}),
        ),
        tool(
            "webflow_update_item",
            json!({"collection_id": collection, "item_id": item,
                   "field_data": {"seo-description": "Better.", "order": 1.5}}),
        ),
        tool(
            "webflow_update_page_settings",
            json!({"page_id": f.page_ids[1], "title": "Fuzzed page", "slug": "fuzzed-page",
                   "seo": {"title": "Fuzzed | Acme", "description": ""},
                   "open_graph": {"title": "Fuzzed", "description": "Shared."}}),
        ),
        tool(
            "webflow_list_assets",
            json!({"site_id": f.site_id, "offset": 0, "limit": 2}),
        ),
        tool(
            "webflow_update_asset",
            json!({"asset_id": f.asset_ids[1], "alt_text": "A fuzzed image"}),
        ),
        tool(
            "webflow_list_forms",
            json!({"site_id": f.site_id, "offset": 0, "limit": 1}),
        ),
        tool(
            "webflow_list_form_submissions",
            json!({"form_id": f.form_ids[0], "offset": 1, "limit": 2}),
        ),
        tool(
            "webflow_list_comments",
            json!({"site_id": f.site_id, "sort_by": "createdOn", "sort_order": "desc",
                   "offset": 0, "limit": 2}),
        ),
        tool(
            "webflow_list_comments",
            json!({"comment_thread_id": f.comment_thread_ids[0]}),
        ),
        tool(
            "analytics_query",
            json!({
                "metrics": ["visitors", "pageviews", "bounce_rate"],
                "date_range": ["2024-01-01", "2024-01-31"],
                "dimensions": ["event:page"],
                "filters": [["contains", "event:page", ["/blog"]]],
                "order_by": [["visitors", "desc"]],
                "include": {"total_rows": true},
                "limit": 10,
                "offset": 0,
            }),
        ),
        tool(
            "analytics_query",
            json!({"metrics": ["visitors"], "date_range": "7d"}),
        ),
        tool("github_get_repo", json!({"repo": f.github_repos[0]})),
        tool("github_list_commits", json!({"repo": f.github_repos[0]})),
        tool(
            "github_list_workflow_runs",
            json!({"repo": f.github_repos[0]}),
        ),
        tool(
            "github_list_deployments",
            json!({"repo": f.github_repos[0]}),
        ),
        tool("site_status", json!({"site_id": f.site_id})),
        tool(
            "content_audit",
            json!({"site_id": f.site_id, "collection_id": collection}),
        ),
        rpc(
            15,
            "resources/read",
            json!({"uri": format!("webflow://sites/{}", f.site_id)}),
        ),
        rpc(
            16,
            "resources/read",
            json!({"uri": format!("webflow://collections/{collection}")}),
        ),
    ]);
    seeds
}

/// Every isolated-server tool, with arguments naming the tenant's own zone, names, records,
/// site, items and customer.
fn isolated_seeds(f: &OwnerFixture) -> Vec<Value> {
    let (collection, item) = f.item_ids[0].clone();
    let www = format!("www.{}", f.zone_name);
    let shop = format!("a.shop.{}", f.zone_name);
    let mut seeds = protocol_seeds();
    seeds.extend([
        tool(
            "dns_list_records",
            json!({"zone_id": f.zone_id, "name": www, "type": "A", "page": 1}),
        ),
        tool(
            "dns_create_record",
            json!({"record": {"type": "A", "name": www, "content": "192.0.2.7", "ttl": 300,
                              "proxied": true, "comment": "fuzz"}}),
        ),
        tool(
            "dns_create_record",
            json!({"zone_id": f.zone_id,
                   "record": {"type": "MX", "name": shop, "content": "mail.example.com",
                              "priority": 10}}),
        ),
        tool(
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": www, "content": "v=spf1 -all"}}),
        ),
        tool(
            "dns_update_record",
            json!({"record_id": f.dns_record_ids[0],
                   "record": {"type": "AAAA", "name": www, "content": "2001:db8::1", "ttl": 1}}),
        ),
        tool(
            "dns_update_record",
            json!({"record_id": f.dns_record_ids[1],
                   "record": {"type": "CNAME", "name": www, "content": "target.example.net"}}),
        ),
        tool(
            "dns_delete_record",
            json!({"record_id": f.dns_record_ids[2]}),
        ),
        tool(
            "webflow_publish_site",
            json!({"site_id": f.site_id, "custom_domains": f.custom_domain_ids,
                   "publish_to_webflow_subdomain": false}),
        ),
        tool(
            "webflow_publish_items",
            json!({"collection_id": collection, "item_ids": [item]}),
        ),
        tool(
            "webflow_delete_items",
            json!({"collection_id": collection, "item_ids": [item]}),
        ),
        tool(
            "webflow_unpublish_items",
            json!({"collection_id": collection, "item_ids": [item]}),
        ),
        tool(
            "webflow_set_custom_code",
            json!({"page_id": f.page_ids[1], "scripts": [
                {"id": "cms_slider", "version": "1.1.0", "location": "footer",
                 "attributes": {"data-speed": "slow"}}]}),
        ),
        tool(
            "billing_list_invoices",
            json!({"customer": f.stripe_customer, "limit": 3, "starting_after": f.invoice_ids[0]}),
        ),
        tool(
            "billing_create_portal_session",
            json!({"customer": f.stripe_customer,
                   "return_url": "https://acme.example/account?tab=billing"}),
        ),
    ]);
    seeds
}

/// Strings these servers know: ids of every sandbox owner's resources (the tenant's own and
/// another's), names, customers.
pub fn context(sandbox: &Sandbox) -> Vec<String> {
    let mut out = Vec::new();
    for f in &sandbox.fixture().owners {
        out.push(f.site_id.clone());
        out.extend(f.page_ids.iter().cloned());
        out.extend(f.collection_ids.iter().cloned());
        out.extend(f.item_ids.iter().map(|(_, i)| i.clone()));
        out.extend(f.custom_domain_ids.iter().cloned());
        out.extend(f.github_repos.iter().cloned());
        out.extend(f.dns_record_ids.iter().cloned());
        out.extend([
            f.zone_id.clone(),
            f.zone_name.clone(),
            format!("*.{}", f.zone_name),
            f.stripe_customer.clone(),
            f.plausible_site.clone(),
        ]);
    }
    out
}

fn header(values: &[&str], context: &[String]) -> BoxedStrategy<Option<String>> {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    prop_oneof![
        3 => Just(None),
        6 => select(values).prop_map(Some),
        1 => mutate::string(context).prop_map(Some),
    ]
    .boxed()
}

fn calls(seeds: Vec<Value>, context: &[String]) -> impl Strategy<Value = Call> {
    let methods = [
        "tools/call",
        "tools/list",
        "initialize",
        "ping",
        "resources/read",
    ];
    let names = [
        "whoami",
        "dns_create_record",
        "webflow_create_item",
        "webflow_publish_site",
    ];
    (
        mutate::json_body(seeds, context, &["/params/arguments/", "/params/"]),
        header(&VERSIONS, context),
        header(&methods, context),
        header(&names, context),
        prop_oneof![
            20 => Just(Some("application/json, text/event-stream".to_owned())),
            1 => header(&["application/json", "text/event-stream", "*/*", ""], context),
        ],
        prop_oneof![
            20 => Just(Some("application/json".to_owned())),
            1 => header(&["application/json; charset=utf-8", "text/plain", ""], context),
        ],
        any::<u8>(),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(body, protocol, method, name, accept, content_type, peer, chunked)| Call {
                body,
                protocol,
                method,
                name,
                accept,
                content_type,
                peer,
                chunked,
            },
        )
}

fn request(server: &Server, token: &str, call: &Call) -> Option<Request<Body>> {
    let mut builder = Request::post("/mcp")
        .header("host", &server.static_host)
        .header("authorization", format!("Bearer {token}"));
    for (name, value) in [
        ("mcp-protocol-version", &call.protocol),
        ("mcp-method", &call.method),
        ("mcp-name", &call.name),
        ("accept", &call.accept),
        ("content-type", &call.content_type),
    ] {
        if let Some(value) = value {
            builder = builder.header(name, value.as_bytes());
        }
    }
    if !call.chunked {
        builder = builder.header("content-length", call.body.0.len());
    }
    // A header value no client could send (a control character) is not a case.
    builder.body(Body::from(call.body.0.clone())).ok()
}

/// What an answer says, coarsely: its status, and for a JSON-RPC answer whether it is a
/// result, a tool error or a protocol error (with its code).
fn outcome(answer: &Answer) -> String {
    let status = answer.status.as_u16();
    let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else {
        return status.to_string();
    };
    if let Some(code) = body["error"]["code"].as_i64() {
        format!("{status} error {code}")
    } else if body["result"]["isError"] == json!(true) {
        format!("{status} tool error")
    } else if body.get("result").is_some() {
        format!("{status} result")
    } else {
        status.to_string()
    }
}

/// Whether the fast path's answer is rmcp's: the same status, the same headers and the same
/// body, once request ids (32 hex digits, one per request) are masked and, in a tool's
/// answer, its output and whether it failed set aside (the same call twice may do two
/// different things: a draft created once is a duplicate the second time).
pub fn agree(fast: &Answer, rmcp: &Answer) -> Result<(), String> {
    let differ = |what: &str| {
        Err(format!(
            "the fast path and rmcp answer differently ({what}):\n  fast: {} {:?} {}\n  rmcp: {} {:?} {}",
            fast.status,
            fast.headers,
            fast.text(),
            rmcp.status,
            rmcp.headers,
            rmcp.text()
        ))
    };
    if fast.status != rmcp.status {
        return differ("status");
    }
    // The length follows the body, compared below.
    let headers = |answer: &Answer| {
        let mut headers = answer.headers.clone();
        headers.remove("content-length");
        headers
    };
    if headers(fast) != headers(rmcp) {
        return differ("headers");
    }
    let (a, b) = (mask_ids(&fast.text()), mask_ids(&rmcp.text()));
    if a == b {
        return Ok(());
    }
    let (Ok(mut a), Ok(mut b)) = (
        serde_json::from_str::<Value>(&a),
        serde_json::from_str::<Value>(&b),
    ) else {
        return differ("body");
    };
    for value in [&mut a, &mut b] {
        if let Some(result) = value.get_mut("result").and_then(Value::as_object_mut) {
            result.remove("content");
            result.remove("structuredContent");
            result.remove("isError");
        }
    }
    if a != b {
        return differ("body");
    }
    Ok(())
}

/// `text` with every run of exactly 32 hex digits (a request id) replaced by `<id>`, and every
/// approval id (`apr_…`) by `apr_<id>`.
fn mask_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"apr_") {
            let run = bytes[i + 4..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                .count();
            out.push_str("apr_<id>");
            i += 4 + run;
            continue;
        }
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if run == 32 {
            out.push_str("<id>");
            i += run;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let c = text[i..].chars().next().unwrap_or('?');
            out.push(c);
            i += c.len_utf8().max(1);
        }
    }
    out
}

fn run(name: &str, isolated: bool) {
    let rt = runtime();
    let sandbox = rt.block_on(sandbox());
    let (server, tenant) = rt.block_on(async {
        if isolated {
            Server::isolated(&sandbox).await
        } else {
            Server::shared(&sandbox).await
        }
    });
    let seeds = if isolated {
        isolated_seeds(&tenant.fixture)
    } else {
        shared_seeds(&tenant.fixture)
    };
    let context = context(&sandbox);
    let rmcp_only = common::runtime::server::routes::static_router_with(
        server.state.clone(),
        tokio_util::sync::CancellationToken::new(),
        McpFront::Rmcp,
    );
    fuzz(name, calls(seeds, &context), |call| {
        let (Some(fast), Some(slow)) = (
            request(&server, &tenant.token, call),
            request(&server, &tenant.token, call),
        ) else {
            return Ok(());
        };
        let answer = rt.block_on(send(&server.statik, fast, peer(call.peer)))?;
        let reference = rt.block_on(send(&rmcp_only, slow, peer(call.peer)))?;
        agree(&answer, &reference)?;
        note(outcome(&answer));
        Ok(())
    });
}

/// The shared server's `/mcp`: every tool and resource, CMS field data included.
#[test]
fn mcp_shared_server() {
    run("mcp_shared_server", false);
}

/// An isolated instance's `/mcp`: DNS records, publishing, billing.
#[test]
fn mcp_isolated_server() {
    run("mcp_isolated_server", true);
}

/// rmcp's decoding of a body into a `ClientJsonRpcMessage` alone, as the transport does it
/// first: the same inputs as the two `/mcp` targets, many times faster than through a server.
#[test]
fn jsonrpc_decoding() {
    let fixture = Fixture::new(&["acme", "globex"]);
    let acme = fixture.owner("acme").unwrap();
    let mut seeds = shared_seeds(acme);
    seeds.extend(isolated_seeds(acme));
    let mut context = Vec::new();
    for f in &fixture.owners {
        context.extend([
            f.site_id.clone(),
            f.zone_name.clone(),
            f.stripe_customer.clone(),
        ]);
    }
    let strategy = mutate::json_body(seeds, &context, &["/params/arguments/", "/params/"]);
    fuzz("jsonrpc_decoding", strategy, |body: &Bytes| {
        match serde_json::from_slice::<ClientJsonRpcMessage>(&body.0) {
            Ok(message) => {
                // What was read must write back out and read again.
                let written = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
                serde_json::from_slice::<ClientJsonRpcMessage>(&written)
                    .map_err(|e| format!("decoded, but its own encoding does not decode: {e}"))?;
                note("decoded");
            }
            Err(e) => note(format!("refused ({:?})", e.classify())),
        }
        Ok(())
    });
}
