//! `webflow_create_items` end to end: up to 100 drafts in one request, only into a writable
//! collection of the tenant, all or nothing (one bad draft: nothing reaches Webflow, and the
//! error names the item), Webflow's own refusals reported per item, the cached listing not
//! stale afterwards. The sandbox's request log is the oracle for what reached Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{TestServer, TestTenant, call, error_text, ok_json, try_call};
use tests::sandbox::{Fixture, Sandbox, webflow};

const TOOL: &str = "webflow_create_items";

async fn setup() -> (Sandbox, TestServer, TestTenant) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let acme = server
        .provision_with(&f, json!({"writable_collections": [f.collection_ids[0]]}))
        .await;
    (sandbox, server, acme)
}

fn writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.token_owner))
        .collect()
}

fn drafts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"field_data": {"name": format!("Launch {i}"), "slug": format!("launch-{i}"), "order": i}}))
        .collect()
}

#[tokio::test]
async fn a_batch_lands_as_drafts_in_one_request() {
    let (sandbox, server, acme) = setup().await;
    let client = server.client(&acme.token).await;
    let blog = acme.fixture.collection_ids[0].clone();
    let listed = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": blog}),
        )
        .await,
    );
    assert_eq!(listed["pagination"]["total"], 5);
    sandbox.clear_requests();

    let result = ok_json(
        &call(
            &client,
            TOOL,
            json!({"collection_id": blog, "items": drafts(3)}),
        )
        .await,
    );
    assert_eq!(result["requested"], 3);
    assert_eq!(result["not_created"], json!([]));
    let created = result["created"].as_array().unwrap();
    assert_eq!(created.len(), 3);
    for (i, c) in created.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["slug"], format!("launch-{i}"));
        assert_eq!(c["is_draft"], true);
        let stored = sandbox
            .webflow_item(&blog, c["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored["isDraft"], true);
        assert_eq!(stored["fieldData"]["name"], format!("Launch {i}"));
    }
    // One request, acme's own token, files not skipped.
    assert_eq!(
        writes(&sandbox),
        [format!(
            "POST /v2/collections/{blog}/items?skipInvalidFiles=false Some(\"acme\")"
        )]
    );
    let listed = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": blog}),
        )
        .await,
    );
    assert_eq!(listed["pagination"]["total"], 8, "stale listing");

    // The tool is listed with honest hints: it adds, it destroys nothing.
    let tool = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == TOOL)
        .unwrap();
    let a = tool.annotations.unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
        (Some(false), Some(false), Some(false))
    );

    // A hundred is the most, and is one request.
    sandbox.clear_requests();
    let many: Vec<Value> = (0..100)
        .map(|i| json!({"field_data": {"name": format!("Bulk {i}"), "slug": format!("bulk-{i}")}}))
        .collect();
    let result = ok_json(&call(&client, TOOL, json!({"collection_id": blog, "items": many})).await);
    assert_eq!(result["created"].as_array().unwrap().len(), 100);
    assert_eq!(writes(&sandbox).len(), 1);
}

#[tokio::test]
async fn one_bad_draft_sends_nothing_and_is_named() {
    let (sandbox, server, acme) = setup().await;
    let client = server.client(&acme.token).await;
    let blog = acme.fixture.collection_ids[0].clone();
    let with = |i: usize, field_data: Value| {
        let mut items = drafts(4);
        items[i] = json!({ "field_data": field_data });
        json!({"collection_id": blog, "items": items})
    };
    let too_many: Vec<Value> = drafts(101);
    sandbox.clear_requests();
    for (args, needles) in [
        (
            with(2, json!({"name": "X", "slug": "x", "colour": "red"})),
            vec![
                "items[2].field_data.colour",
                "no such field",
                "nothing was sent",
            ],
        ),
        (
            with(1, json!({"name": "No slug"})),
            vec!["items[1].field_data.slug", "required"],
        ),
        (
            with(3, json!({"name": "X", "slug": "x", "order": "first"})),
            vec!["items[3].field_data.order", "a number"],
        ),
        (
            with(0, json!({"name": "Bad\u{1b}[2J", "slug": "bad"})),
            vec!["items[0].field_data.name", "control"],
        ),
        (
            with(3, json!({"name": "Again", "slug": "launch-1"})),
            vec!["items[3].field_data.slug", "items[1]"],
        ),
        (
            json!({"collection_id": blog, "items": too_many}),
            vec!["101", "at most 100"],
        ),
        (json!({"collection_id": blog, "items": []}), vec!["empty"]),
        (
            json!({"collection_id": blog, "items": [{"fieldData": {"name": "x"}}]}),
            vec!["fieldData"],
        ),
    ] {
        let text = error_text(&call(&client, TOOL, args.clone()).await);
        for needle in needles {
            assert!(text.contains(needle), "{needle} not in: {text}");
        }
    }
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));
    let listed = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": blog}),
        )
        .await,
    );
    assert_eq!(listed["pagination"]["total"], 5);
}

#[tokio::test]
async fn webflows_own_refusals_are_reported_per_item() {
    let (sandbox, server, acme) = setup().await;
    let client = server.client(&acme.token).await;
    let blog = acme.fixture.collection_ids[0].clone();
    // Slugs already in the collection pass the schema check; Webflow refuses them.
    let mut items = drafts(4);
    items[1] = json!({"field_data": {"name": "Clash", "slug": "blog-post-1"}});
    items[3] = json!({"field_data": {"name": "Clash too", "slug": "blog-post-2"}});
    sandbox.clear_requests();
    let text = error_text(
        &call(
            &client,
            TOOL,
            json!({"collection_id": blog, "items": items}),
        )
        .await,
    );
    assert!(
        text.contains("items[1].fieldData: Field 'slug': Unique value is already in database"),
        "{text}"
    );
    assert!(text.contains("items[3].fieldData"), "{text}");
    assert!(
        !text.contains("items[0]") && !text.contains("items[2]"),
        "{text}"
    );
    assert!(text.contains("none of the 4 drafts was created"), "{text}");
    assert_eq!(writes(&sandbox).len(), 1);
    let listed = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": blog}),
        )
        .await,
    );
    assert_eq!(
        listed["pagination"]["total"], 5,
        "a refused batch created items"
    );

    // A token made without `cms:write`: Webflow's 403 names the scope, and so does the tool.
    sandbox.withhold_webflow_scope("acme", webflow::CMS_WRITE);
    let text = error_text(
        &call(
            &client,
            TOOL,
            json!({"collection_id": blog, "items": drafts(2)}),
        )
        .await,
    );
    assert!(text.contains("`cms:write` scope"), "{text}");
    assert!(text.contains("secret set <tenant> webflow"), "{text}");
}

#[tokio::test]
async fn other_collections_and_tenants_without_the_write_are_never_reached() {
    let (sandbox, server, acme) = setup().await;
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let globex_blog = globex_f.collection_ids[0].clone();
    sandbox.clear_requests();
    for (collection, needle) in [
        (&globex_blog, "not writable"),
        // Acme's own, but not named writable.
        (&acme.fixture.collection_ids[1], "not writable"),
        (&"0123456789abcdef01234567".to_owned(), "not writable"),
    ] {
        let text = error_text(
            &call(
                &client,
                TOOL,
                json!({"collection_id": collection, "items": drafts(2)}),
            )
            .await,
        );
        assert!(text.contains(needle), "{text}");
    }
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex_blog)),
        "{:?}",
        sandbox.requests()
    );

    // Read-only, or without cms-write: the tool is not there at all.
    let read_only = server
        .provision_with(
            &globex_f,
            json!({"read_only": true, "writable_collections": [globex_blog]}),
        )
        .await;
    let patch: common::tenant::TenantPatch =
        serde_json::from_value(json!({"toolsets": ["webflow", "analytics", "github"]})).unwrap();
    server.admin.update_tenant("acme", &patch).await.unwrap();
    for token in [&read_only.token, &acme.token] {
        let client = server.client(token).await;
        let names: Vec<_> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(!names.iter().any(|n| n == TOOL), "{names:?}");
        let refused = try_call(
            &client,
            TOOL,
            json!({"collection_id": globex_blog, "items": drafts(1)}),
        )
        .await;
        assert!(format!("{:?}", refused.unwrap_err()).contains("unknown tool"));
    }
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));
}
