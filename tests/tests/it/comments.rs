//! `webflow_list_comments` end to end: the threads of the tenant's own site and the replies in
//! one of them, paged and sorted as Webflow does, with the `webflow` toolset; another tenant's
//! site is refused before Webflow hears of it, and another tenant's thread is only ever asked
//! for under the caller's own site, where Webflow does not find it. The sandbox's request log
//! is the oracle for what reached Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{TestServer, call, error_text, ok_json, try_call};
use tests::sandbox::{Fixture, Sandbox, webflow};

const TOOL: &str = "webflow_list_comments";

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

fn ids(result: &Value) -> Vec<String> {
    result["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn threads_and_replies_of_the_tenants_own_site() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let threads = acme.fixture.comment_thread_ids.clone();

    let all = ok_json(&call(&client, TOOL, json!({})).await);
    assert_eq!(all["site_id"], acme.fixture.site_id);
    assert_eq!(ids(&all), threads);
    assert_eq!(all["pagination"]["total"], webflow::COMMENT_THREADS.len());
    assert_eq!(all["unresolved"], 2);
    let first = &all["comments"][0];
    assert_eq!(first["pageId"], acme.fixture.page_ids[1]);
    assert_eq!(first["isResolved"], false);
    assert!(
        first["content"]
            .as_str()
            .unwrap()
            .starts_with("Can the team photo")
    );
    assert!(first["author"]["email"].is_string());
    let text = all.to_string();
    assert!(text.contains("owner:acme)") && !text.contains("owner:globex)"));

    // Sorted and paged as Webflow does: the most recently updated first, one at a time.
    let sorted = ok_json(
        &call(
            &client,
            TOOL,
            json!({"sort_by": "lastUpdated", "sort_order": "desc", "limit": 1, "offset": 1}),
        )
        .await,
    );
    assert_eq!(ids(&sorted), [threads[2].clone()]);
    assert_eq!(
        sorted["pagination"],
        json!({"limit": 1, "offset": 1, "total": 3})
    );

    let replies = ok_json(&call(&client, TOOL, json!({"comment_thread_id": threads[0]})).await);
    assert_eq!(replies["comment_thread_id"], threads[0]);
    assert!(replies.get("unresolved").is_none());
    let replies = replies["comments"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert!(
        replies
            .iter()
            .all(|r| r["commentId"] == threads[0].as_str())
    );
    assert!(
        replies[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("Done on staging")
    );

    let none = ok_json(&call(&client, TOOL, json!({"comment_thread_id": threads[2]})).await);
    assert_eq!(none["comments"], json!([]));
}

#[tokio::test]
async fn another_tenants_comments_are_never_reached() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    sandbox.clear_requests();
    let text = error_text(&call(&client, TOOL, json!({"site_id": globex.site_id})).await);
    assert!(text.contains("not one of this tenant's"), "{text}");
    let text = error_text(
        &call(
            &client,
            TOOL,
            json!({"site_id": globex.site_id, "comment_thread_id": globex.comment_thread_ids[0]}),
        )
        .await,
    );
    assert!(text.contains("not one of this tenant's"), "{text}");
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());

    // A thread id of globex's, asked for under acme's own site: Webflow finds no such thread.
    let text = error_text(
        &call(
            &client,
            TOOL,
            json!({"comment_thread_id": globex.comment_thread_ids[0]}),
        )
        .await,
    );
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(!text.contains("owner:globex"), "{text}");
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0]
            .path
            .starts_with(&format!("/v2/sites/{}/comments/", acme.fixture.site_id))
    );
    assert_eq!(requests[0].token_owner.as_deref(), Some("acme"));

    // Bad arguments: refused before any request.
    sandbox.clear_requests();
    for (args, needle) in [
        (json!({"sort_by": "name"}), "sort_by"),
        (json!({"sort_order": "up"}), "sort_order"),
        (
            json!({"comment_thread_id": "thread-1"}),
            "comment_thread_id",
        ),
        (json!({"limit": 0}), "limit"),
        (json!({"resolved": true}), "resolved"),
    ] {
        let text = error_text(&call(&client, TOOL, args.clone()).await);
        assert!(text.contains(needle), "{args}: {text}");
    }
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());

    // Without `comments:read` on the token, the tool names the scope to add.
    sandbox.withhold_webflow_scope("acme", webflow::COMMENTS_READ);
    let text = error_text(&call(&client, TOOL, json!({"offset": 1})).await);
    assert!(text.contains("`comments:read` scope"), "{text}");
}

#[tokio::test]
async fn comments_come_with_the_webflow_toolset_read_only_included() {
    let (sandbox, server) = setup().await;
    let acme_f = sandbox.fixture().owner("acme").unwrap().clone();
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let without = server
        .provision_with(&acme_f, json!({"toolsets": ["analytics", "github"]}))
        .await;
    let read_only = server
        .provision_with(
            &globex_f,
            json!({"read_only": true, "toolsets": ["webflow"]}),
        )
        .await;

    let client = server.client(&without.token).await;
    let refused = try_call(&client, TOOL, json!({})).await;
    assert!(format!("{:?}", refused.unwrap_err()).contains("unknown tool"));

    let client = server.client(&read_only.token).await;
    let tool = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == TOOL)
        .expect("listed for a read-only tenant");
    let a = tool.annotations.unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
        (Some(true), Some(false), Some(true))
    );
    let result = ok_json(&call(&client, TOOL, json!({})).await);
    assert_eq!(ids(&result), globex_f.comment_thread_ids);
}
