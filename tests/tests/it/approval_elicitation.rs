//! The approval link reaches the person without the model relaying it where the client can carry
//! it: a 2026-07-28 client that declares URL-mode elicitation gets an `input_required` result
//! whose elicitation is the approval page; its retry (after a person decided) gets the outcome. A
//! client that declares no elicitation gets the link in the tool result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::TestServer;
use tests::sandbox::{Fixture, Sandbox};

const HEADERS: [(&str, &str); 3] = [
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "dns_create_record"),
];

fn call(name: &str, capabilities: Value, retry: Option<(&str, Value)>) -> String {
    let mut params = json!({
        "name": "dns_create_record",
        "arguments": {"record": {"type": "TXT", "name": name, "content": "elicited"}},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        },
    });
    if let Some((state, responses)) = retry {
        params["requestState"] = json!(state);
        params["inputResponses"] = responses;
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string()
}

#[tokio::test]
async fn a_client_that_can_open_urls_gets_the_approval_page_as_an_elicitation() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start_isolated(&sandbox, "acme").await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let name = format!("www.{}", acme.fixture.zone_name);
    let post = |body: String| {
        let server = &server;
        let token = acme.token.clone();
        async move {
            let (status, text) = server.post_raw_with(Some(&token), &HEADERS, &body).await;
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };

    // Declares URL elicitation: the link comes as an input request, nothing has acted.
    let first = post(call(&name, json!({"elicitation": {"url": {}}}), None)).await;
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let request = &result["inputRequests"]["approval"];
    assert_eq!(request["method"], "elicitation/create", "{first}");
    assert_eq!(request["params"]["mode"], "url", "{first}");
    let url = request["params"]["url"].as_str().unwrap();
    let id = result["requestState"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("/approve/{id}")), "{url}");
    assert!(sandbox.requests().iter().all(|r| r.method == "GET"));

    // The person decides (here the operator); the client's retry carries the elicitation's
    // answer and gets the outcome, not another elicitation.
    server.admin.decide_approval(&id, true).await.unwrap();
    let accepted = json!({"approval": {"action": "accept"}});
    let retry = post(call(
        &name,
        json!({"elicitation": {"url": {}}}),
        Some((&id, accepted)),
    ))
    .await;
    let done = &retry["result"]["structuredContent"];
    assert_eq!(done["status"], "done", "{retry}");
    assert_eq!(done["result"]["content"], "elicited", "{retry}");
    let writes = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(writes, 1);

    // Declares nothing: the same kind of request answers with the link in the tool result.
    let plain = post(call(
        &format!("shop.{}", acme.fixture.zone_name),
        json!({}),
        None,
    ))
    .await;
    let step = &plain["result"]["structuredContent"];
    assert_eq!(plain["result"]["resultType"], "complete", "{plain}");
    assert_eq!(step["status"], "approval_required", "{plain}");
    assert!(
        step["approval_url"]
            .as_str()
            .unwrap()
            .contains("/approve/apr_")
    );
}
