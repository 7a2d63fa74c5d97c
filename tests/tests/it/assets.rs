//! `webflow_list_assets` and `webflow_update_asset` end to end: only the tenant's own site's
//! assets, alt text only, only with the `asset-write` toolset granted by name (never by default,
//! never by an upgrade) and not read-only, arguments checked before anything is sent, the
//! result showing before and after, and the cached listing not stale afterwards. The sandbox's
//! request log is the oracle for what reached Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{TestServer, TestTenant, call, error_text, ok_json, try_call};
use tests::sandbox::{Fixture, Sandbox, webflow};

const TOOL: &str = "webflow_update_asset";
const EVERY: [&str; 6] = [
    "webflow",
    "cms-write",
    "page-write",
    "asset-write",
    "analytics",
    "github",
];

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

/// `owner` with every toolset, `asset-write` included.
async fn provision_writer(server: &TestServer, sandbox: &Sandbox, owner: &str) -> TestTenant {
    let f = sandbox.fixture().owner(owner).unwrap();
    server.provision_with(f, json!({ "toolsets": EVERY })).await
}

fn writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.token_owner))
        .collect()
}

#[tokio::test]
async fn assets_are_listed_with_their_alt_text_and_paged() {
    let (sandbox, server) = setup().await;
    // The default toolsets: reading assets needs no grant.
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let all = ok_json(&call(&client, "webflow_list_assets", json!({})).await);
    assert_eq!(all["site_id"], acme.fixture.site_id);
    assert_eq!(all["pagination"]["total"], webflow::ASSETS.len());
    assert_eq!(all["images_without_alt_text"], 1, "{all}");
    let ids: Vec<&str> = all["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, acme.fixture.asset_ids);
    let bare = &all["assets"][webflow::IMAGE_WITHOUT_ALT_TEXT];
    assert_eq!(bare["altText"], Value::Null);
    assert_eq!(bare["contentType"], "image/png");
    let text = all.to_string();
    assert!(text.contains("owner:acme)") && !text.contains("owner:globex)"));

    let second = ok_json(
        &call(
            &client,
            "webflow_list_assets",
            json!({"offset": 2, "limit": 2}),
        )
        .await,
    );
    assert_eq!(
        second["pagination"],
        json!({"limit": 2, "offset": 2, "total": 4})
    );
    assert_eq!(second["assets"][0]["id"], acme.fixture.asset_ids[2]);

    // Another tenant's site is refused before Webflow hears of it.
    sandbox.clear_requests();
    let text = error_text(
        &call(
            &client,
            "webflow_list_assets",
            json!({"site_id": globex.site_id}),
        )
        .await,
    );
    assert!(text.contains("not one of this tenant's"), "{text}");
    let text = error_text(&call(&client, "webflow_list_assets", json!({"limit": 500})).await);
    assert!(text.contains("limit"), "{text}");
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());

    // Without `assets:read` on the token, the tool says which scope to add.
    sandbox.withhold_webflow_scope("acme", webflow::ASSETS_READ);
    let text = error_text(&call(&client, "webflow_list_assets", json!({"offset": 1})).await);
    assert!(text.contains("`assets:read` scope"), "{text}");
}

#[tokio::test]
async fn alt_text_changes_with_before_and_after() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let asset = acme.fixture.asset_ids[webflow::IMAGE_WITHOUT_ALT_TEXT].clone();

    // A listing read now is cached; the update must not leave it stale.
    ok_json(&call(&client, "webflow_list_assets", json!({})).await);
    sandbox.clear_requests();
    let alt = "Four people of the Acme team laughing at a whiteboard";
    let result = ok_json(&call(&client, TOOL, json!({"asset_id": asset, "alt_text": alt})).await);
    assert_eq!(result["before"], Value::Null, "{result}");
    assert_eq!(result["after"], alt);
    assert_eq!(result["changed"], true);
    assert_eq!(result["site_id"], acme.fixture.site_id);
    assert_eq!(sandbox.webflow_asset(&asset).unwrap()["altText"], alt);
    // One PATCH with only the alt text, with acme's own token.
    assert_eq!(
        writes(&sandbox),
        [format!("PATCH /v2/assets/{asset} Some(\"acme\")")]
    );
    let listed = ok_json(&call(&client, "webflow_list_assets", json!({})).await);
    assert_eq!(
        listed["assets"][webflow::IMAGE_WITHOUT_ALT_TEXT]["altText"],
        alt,
        "stale listing"
    );
    assert_eq!(listed["images_without_alt_text"], 0);

    // The same text again: nothing sent, and it says so.
    sandbox.clear_requests();
    let again = ok_json(&call(&client, TOOL, json!({"asset_id": asset, "alt_text": alt})).await);
    assert_eq!(again["changed"], false);
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));

    // Replacing one: before is the old text.
    let logo = acme.fixture.asset_ids[2].clone();
    let replaced = ok_json(
        &call(
            &client,
            TOOL,
            json!({"asset_id": logo, "alt_text": "Acme logo"}),
        )
        .await,
    );
    assert_eq!(replaced["before"], "Company logo (owner:acme)");
    assert_eq!(replaced["after"], "Acme logo");

    // A token made without `assets:write`: the read passes, the PATCH gets Webflow's 403, and
    // the tool names the scope.
    sandbox.withhold_webflow_scope("acme", webflow::ASSETS_WRITE);
    let text =
        error_text(&call(&client, TOOL, json!({"asset_id": logo, "alt_text": "Logo"})).await);
    assert!(text.contains("`assets:write` scope"), "{text}");
    assert_eq!(
        sandbox.webflow_asset(&logo).unwrap()["altText"],
        "Acme logo"
    );
}

#[tokio::test]
async fn another_tenants_asset_is_never_reached() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let theirs = globex.asset_ids[webflow::IMAGE_WITHOUT_ALT_TEXT].clone();
    let before = sandbox.webflow_asset(&theirs).unwrap();

    sandbox.clear_requests();
    for asset in [
        &theirs,
        &globex.asset_ids[0],
        &"0123456789abcdef01234567".to_owned(),
    ] {
        let text = error_text(
            &call(
                &client,
                TOOL,
                json!({"asset_id": asset, "alt_text": "Taken over"}),
            )
            .await,
        );
        assert!(text.contains("not one of this tenant's"), "{text}");
        assert!(!text.contains("owner:globex"), "{text}");
    }
    let requests = sandbox.requests();
    assert!(!requests.is_empty(), "the index was never built");
    assert!(
        requests.iter().all(|r| globex
            .asset_ids
            .iter()
            .all(|id| !r.path.contains(id.as_str()))
            && r.method == "GET"
            && r.token_owner.as_deref() == Some("acme")),
        "{requests:?}"
    );
    assert_eq!(sandbox.webflow_asset(&theirs), Some(before));
}

#[tokio::test]
async fn asset_write_is_granted_by_name_only() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex", "initech"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme_f = sandbox.fixture().owner("acme").unwrap().clone();
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let initech_f = sandbox.fixture().owner("initech").unwrap().clone();
    // A tenant as stored before `asset-write` existed: every toolset of that release.
    let old = server
        .provision_with(
            &acme_f,
            json!({"toolsets": ["webflow", "cms-write", "page-write", "analytics", "github"]}),
        )
        .await;
    // Granted it, but read-only.
    let read_only = server
        .provision_with(
            &globex_f,
            json!({"read_only": true, "toolsets": ["webflow", "asset-write"]}),
        )
        .await;
    // A new tenant given no list of toolsets: the default leaves asset-write out.
    let new = server.provision(&initech_f).await;

    sandbox.clear_requests();
    for (tenant, asset) in [
        (&old, &acme_f.asset_ids[1]),
        (&read_only, &globex_f.asset_ids[1]),
        (&new, &initech_f.asset_ids[1]),
    ] {
        let client = server.client(&tenant.token).await;
        let names: Vec<_> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(!names.iter().any(|n| n == TOOL), "{names:?}");
        assert!(names.iter().any(|n| n == "webflow_list_assets"));
        let refused = try_call(&client, TOOL, json!({"asset_id": asset, "alt_text": "x"})).await;
        assert!(
            format!("{:?}", refused.unwrap_err()).contains("unknown tool"),
            "{}",
            tenant.id
        );
    }
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());

    // The operator grants it: the tool appears on the next list, with its hints, and works.
    let patch: common::tenant::TenantPatch =
        serde_json::from_value(json!({ "toolsets": EVERY })).unwrap();
    server.admin.update_tenant("acme", &patch).await.unwrap();
    let client = server.client(&old.token).await;
    let tools = client.list_all_tools().await.unwrap();
    let hints = |name: &str| {
        let a = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .annotations
            .clone()
            .unwrap();
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint)
    };
    assert_eq!(hints(TOOL), (Some(false), Some(true), Some(true)));
    assert_eq!(
        hints("webflow_list_assets"),
        (Some(true), Some(false), Some(true))
    );
    let result = ok_json(
        &call(
            &client,
            TOOL,
            json!({"asset_id": acme_f.asset_ids[1], "alt_text": "The team"}),
        )
        .await,
    );
    assert_eq!(result["after"], "The team");
}

#[tokio::test]
async fn bad_arguments_are_refused_with_nothing_sent() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let asset = acme.fixture.asset_ids[1].clone();
    sandbox.clear_requests();
    for (args, needle) in [
        (
            json!({"asset_id": asset, "alt_text": "a".repeat(1001)}),
            "alt_text",
        ),
        (
            json!({"asset_id": asset, "alt_text": "Sale\u{202e}elaS"}),
            "alt_text",
        ),
        (
            json!({"asset_id": asset, "alt_text": "two\nlines"}),
            "alt_text",
        ),
        (json!({"asset_id": asset}), "alt_text"),
        (
            json!({"asset_id": asset, "alt_text": "x", "display_name": "y"}),
            "display_name",
        ),
        (json!({"asset_id": "hero.jpg", "alt_text": "x"}), "asset_id"),
        (json!({"alt_text": "x"}), "asset_id"),
    ] {
        let text = error_text(&call(&client, TOOL, args.clone()).await);
        assert!(text.contains(needle), "{args}: {text}");
    }
    assert!(
        sandbox.requests().is_empty(),
        "a refused call reached Webflow: {:?}",
        sandbox.requests()
    );
}
