//! End to end through a real MCP client: two tenants, each sees only its own Webflow data; every
//! foreign id is refused before the upstream hears of it; upstream failures read well.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{TestServer, call, error_text, ok_json, result_text};
use tests::sandbox::{Failure, Fixture, Sandbox};

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

#[tokio::test]
async fn each_tenant_reads_only_its_own_site() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;

    for (me, other) in [(&acme, &globex), (&globex, &acme)] {
        let client = server.client(&me.token).await;
        let f = &me.fixture;
        let who = ok_json(&call(&client, "whoami", json!({})).await);
        assert_eq!(who["tenant"], me.id);

        let mut seen = String::new();
        let sites = ok_json(&call(&client, "webflow_list_sites", json!({})).await);
        assert_eq!(sites["sites"].as_array().unwrap().len(), 1);
        assert_eq!(sites["sites"][0]["id"], f.site_id);
        seen += &sites.to_string();
        seen += &ok_json(&call(&client, "webflow_get_site", json!({})).await).to_string();
        let pages = ok_json(&call(&client, "webflow_list_pages", json!({"limit": 2})).await);
        assert_eq!(pages["pages"].as_array().unwrap().len(), 2);
        assert_eq!(pages["pagination"]["total"], 3);
        let rest = ok_json(&call(&client, "webflow_list_pages", json!({"offset": 2})).await);
        assert_eq!(rest["pages"].as_array().unwrap().len(), 1);
        seen += &pages.to_string();
        seen += &ok_json(
            &call(
                &client,
                "webflow_get_page_content",
                json!({"page_id": f.page_ids[0]}),
            )
            .await,
        )
        .to_string();
        let collections = ok_json(&call(&client, "webflow_list_collections", json!({})).await);
        assert_eq!(collections["collections"].as_array().unwrap().len(), 2);
        seen += &collections.to_string();
        let coll = &f.collection_ids[0];
        let schema = ok_json(
            &call(
                &client,
                "webflow_get_collection",
                json!({"collection_id": coll}),
            )
            .await,
        );
        assert!(
            schema["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["slug"] == "name")
        );
        let items = ok_json(
            &call(
                &client,
                "webflow_list_items",
                json!({"collection_id": coll, "limit": 3}),
            )
            .await,
        );
        assert_eq!(items["items"].as_array().unwrap().len(), 3);
        assert_eq!(items["pagination"]["total"], 5);
        seen += &items.to_string();
        let (c, i) = &f.item_ids[0];
        seen += &ok_json(
            &call(
                &client,
                "webflow_get_item",
                json!({"collection_id": c, "item_id": i}),
            )
            .await,
        )
        .to_string();

        assert!(seen.contains(&format!("owner:{}", me.id)));
        assert!(
            !seen.contains(&format!("owner:{}", other.id)),
            "leak: {seen}"
        );
        client.cancel().await.unwrap();
    }
    // Every upstream request carried the credential of the tenant it was made for.
    assert!(sandbox.requests().iter().all(|r| r.token_owner.is_some()));
}

#[tokio::test]
async fn foreign_ids_are_refused_without_naming_them_upstream() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    // Warm the tenant's index so later refusals need no upstream call at all.
    call(&client, "webflow_list_collections", json!({})).await;
    call(
        &client,
        "webflow_get_collection",
        json!({"collection_id": acme.fixture.collection_ids[0]}),
    )
    .await;

    sandbox.clear_requests();
    let (gc, gi) = &globex.item_ids[0];
    let attempts = [
        (
            "webflow_get_site",
            json!({"site_id": globex.site_id}),
            "site",
        ),
        (
            "webflow_list_pages",
            json!({"site_id": globex.site_id}),
            "site",
        ),
        (
            "webflow_list_collections",
            json!({"site_id": globex.site_id}),
            "site",
        ),
        (
            "webflow_get_page_content",
            json!({"page_id": globex.page_ids[0]}),
            "page",
        ),
        (
            "webflow_get_collection",
            json!({"collection_id": globex.collection_ids[0]}),
            "collection",
        ),
        (
            "webflow_list_items",
            json!({"collection_id": gc}),
            "collection",
        ),
        (
            "webflow_get_item",
            json!({"collection_id": gc, "item_id": gi}),
            "collection",
        ),
    ];
    for (tool, args, what) in attempts {
        let result = call(&client, tool, args).await;
        let text = error_text(&result);
        assert!(
            text.contains(what) && text.contains("not one of this tenant's"),
            "{tool}: {text}"
        );
        assert!(!result_text(&result).contains("owner:globex"));
    }
    for request in sandbox.requests() {
        for id in [&globex.site_id, &globex.page_ids[0], gc, gi] {
            assert!(
                !request.path.contains(id.as_str()),
                "upstream saw foreign id: {request:?}"
            );
        }
        assert_eq!(request.token_owner.as_deref(), Some("acme"));
    }
    // A foreign item under the tenant's own collection is refused by the upstream itself.
    let own = &acme.fixture.collection_ids[0];
    let result = call(
        &client,
        "webflow_get_item",
        json!({"collection_id": own, "item_id": gi}),
    )
    .await;
    assert!(error_text(&result).contains("404"));
}

#[tokio::test]
async fn bad_arguments_name_the_problem() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    sandbox.clear_requests();
    let cases = [
        ("webflow_get_site", json!({"site_id": 42}), "site_id"),
        (
            "webflow_get_site",
            json!({"site_id": "../../v2/sites"}),
            "site_id",
        ),
        ("webflow_list_items", json!({}), "collection_id"),
        (
            "webflow_list_items",
            json!({"collection_id": "x", "limit": 0}),
            "limit",
        ),
        ("webflow_list_pages", json!({"limit": 500}), "limit"),
        ("webflow_list_pages", json!({"offset": -1}), "offset"),
        ("whoami", json!({"surprise": true}), "surprise"),
    ];
    for (tool, args, needle) in cases {
        let text = error_text(&call(&client, tool, args.clone()).await);
        assert!(text.contains(needle), "{tool} {args}: {text}");
    }
    assert!(
        sandbox.requests().is_empty(),
        "bad input reached the upstream"
    );

    let unknown = tests::harness::try_call(&client, "webflow_publish_site", json!({})).await;
    let message = format!("{:?}", unknown.unwrap_err());
    assert!(message.contains("unknown tool"), "{message}");
}

#[tokio::test]
async fn upstream_failures_become_readable_tool_errors() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let cases: [(Failure, usize, &str); 7] = [
        (Failure::status(401), 1, "rejected the stored credential"),
        (Failure::status(403), 1, "refused access"),
        (Failure::status(404), 1, "no such resource"),
        (Failure::status(409), 1, "conflict"),
        (Failure::status(503), 1, "try again later"),
        (Failure::invalid_json(), 1, "could not be read"),
        (Failure::rate_limited(30), 1, "retry after 30 s"),
    ];
    for (failure, times, needle) in cases {
        sandbox.fail_next(failure, times);
        let text = error_text(&call(&client, "webflow_get_site", json!({})).await);
        assert!(text.contains(needle), "{needle}: {text}");
        assert!(!text.contains(&sandbox.fixture().owner("acme").unwrap().token));
    }
    // A short Retry-After is waited out once, then the call succeeds.
    sandbox.fail_next(Failure::rate_limited(1), 1);
    ok_json(&call(&client, "webflow_get_site", json!({})).await);
    // A timeout is bounded by the configured upstream timeout. (The site just read is kept for
    // its 10 s lifetime: past it, the next read goes upstream again.)
    server.clock.advance(10);
    sandbox.fail_next(Failure::slow(std::time::Duration::from_secs(5)), 1);
    let text = error_text(&call(&client, "webflow_get_site", json!({})).await);
    assert!(text.contains("did not answer"), "{text}");
}

#[tokio::test]
async fn a_tenant_without_a_stored_credential_is_told_so() {
    let (sandbox, server) = setup().await;
    let owner = sandbox.fixture().owner("acme").unwrap();
    let new: common::runtime::admin::NewTenant = serde_json::from_value(json!({
        "id": "acme", "name": "Acme", "webflow_sites": [owner.site_id]
    }))
    .unwrap();
    server.admin.add_tenant(&new).await.unwrap();
    let issued = server
        .admin
        .issue_token("acme", &Default::default())
        .await
        .unwrap();
    let client = server.client(&issued.token).await;
    let text = error_text(&call(&client, "webflow_list_sites", json!({})).await);
    assert!(text.contains("no Webflow credential"), "{text}");
}

#[tokio::test]
async fn the_2026_protocol_works_without_sessions() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client_2026(&acme.token).await;
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "webflow_list_items"));
    assert!(
        tools
            .iter()
            .all(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true))
    );
}
