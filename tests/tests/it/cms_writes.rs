//! Scoped CMS writes: drafts only, only into the tenant's writable collections, `field_data`
//! checked against the schema before anything reaches Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{TestServer, call, error_text, ok_json};
use tests::sandbox::{Fixture, Sandbox};

fn writes(sandbox: &Sandbox) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count()
}

#[tokio::test]
async fn drafts_land_only_in_writable_collections() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme_f = sandbox.fixture().owner("acme").unwrap().clone();
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let writable = acme_f.collection_ids[0].clone();
    let acme = server
        .provision_with(&acme_f, json!({"writable_collections": [writable]}))
        .await;
    // Globex may write too, but is switched read-only: the write tools disappear.
    let globex = server
        .provision_with(
            &globex_f,
            json!({"writable_collections": [globex_f.collection_ids[0]], "read_only": true}),
        )
        .await;
    let client = server.client(&acme.token).await;

    let tools = client.list_all_tools().await.unwrap();
    let create = tools
        .iter()
        .find(|t| t.name == "webflow_create_item")
        .expect("write tool listed");
    let a = create.annotations.clone().unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint),
        (Some(false), Some(false))
    );
    let globex_client = server.client(&globex.token).await;
    let names: Vec<_> = globex_client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("create") || n.contains("update")),
        "{names:?}"
    );
    let refused = tests::harness::try_call(&globex_client, "webflow_create_item", json!({})).await;
    assert!(format!("{:?}", refused.unwrap_err()).contains("unknown tool"));

    let created = ok_json(
        &call(
            &client,
            "webflow_create_item",
            json!({"collection_id": writable, "field_data": {"name": "Spring launch", "slug": "spring-launch", "featured": true}}),
        )
        .await,
    );
    assert_eq!(created["isDraft"], true);
    let stored = sandbox
        .webflow_item(&writable, created["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored["fieldData"]["name"], "Spring launch");
    assert_eq!(stored["isDraft"], true);

    let (_, item) = &acme_f.item_ids[0];
    let updated = ok_json(
        &call(&client, "webflow_update_item", json!({"collection_id": writable, "item_id": item, "field_data": {"seo-description": "Fresh"}})).await,
    );
    assert_eq!(updated["fieldData"]["seo-description"], "Fresh");

    sandbox.clear_requests();
    let bad = [
        (
            json!({"collection_id": acme_f.collection_ids[1], "field_data": {"name": "x", "slug": "x"}}),
            "not writable",
        ),
        (
            json!({"collection_id": globex_f.collection_ids[0], "field_data": {"name": "x", "slug": "x"}}),
            "not writable",
        ),
        (
            json!({"collection_id": writable, "field_data": {"name": "x", "slug": "x", "colour": "red"}}),
            "field_data.colour",
        ),
        (
            json!({"collection_id": writable, "field_data": {"slug": "x"}}),
            "field_data.name",
        ),
        (
            json!({"collection_id": writable, "field_data": {"name": "x", "slug": "x", "featured": "yes"}}),
            "field_data.featured",
        ),
        (
            json!({"collection_id": writable, "field_data": {"name": "x", "slug": "Not A Slug"}}),
            "field_data.slug",
        ),
        (
            json!({"collection_id": writable, "field_data": {}}),
            "empty",
        ),
        (
            json!({"collection_id": writable, "field_data": "name=x"}),
            "field_data",
        ),
    ];
    for (args, needle) in bad {
        let text = error_text(&call(&client, "webflow_create_item", args.clone()).await);
        assert!(text.contains(needle), "{args}: {text}");
    }
    let text = error_text(
        &call(
            &client,
            "webflow_update_item",
            json!({"collection_id": writable, "item_id": item, "field_data": {"name": ""}}),
        )
        .await,
    );
    assert!(text.contains("field_data.name"), "{text}");
    assert_eq!(
        writes(&sandbox),
        0,
        "a refused write reached Webflow: {:?}",
        sandbox.requests()
    );
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex_f.collection_ids[0]))
    );

    // A foreign item under the tenant's own writable collection is refused by Webflow itself.
    let (_, foreign_item) = &globex_f.item_ids[0];
    let text = error_text(
        &call(&client, "webflow_update_item", json!({"collection_id": writable, "item_id": foreign_item, "field_data": {"name": "mine now"}})).await,
    );
    assert!(text.contains("404"), "{text}");
    assert!(
        !sandbox
            .webflow_item(&globex_f.collection_ids[0], foreign_item)
            .unwrap()
            .to_string()
            .contains("mine now")
    );
}

#[tokio::test]
async fn a_tenant_without_writable_collections_has_no_write_tools() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let names: Vec<_> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "webflow_create_item" || n == "webflow_update_item"),
        "{names:?}"
    );
    // Granting a collection later (tenant update) brings them in on the very next list.
    let patch: common::tenant::TenantPatch = serde_json::from_value(
        json!({"writable_collections": [sandbox.fixture().owner("acme").unwrap().collection_ids[0]]}),
    )
    .unwrap();
    server.admin.update_tenant("acme", &patch).await.unwrap();
    let names: Vec<_> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        names.iter().any(|n| n == "webflow_create_item"),
        "{names:?}"
    );
}
