//! `webflow_update_page_settings` end to end: only the tenant's own pages, only with the
//! `page-write` toolset granted by name (never by default, never by an upgrade) and not
//! read-only, arguments checked before anything is sent, the
//! result showing before and after, and the read cache not serving the old page afterwards.
//! The sandbox's request log is the oracle for what reached Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{TestServer, TestTenant, call, error_text, ok_json, try_call};
use tests::sandbox::{Failure, Fixture, Sandbox};

const TOOL: &str = "webflow_update_page_settings";

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

/// `owner` with every toolset, `page-write` included.
async fn provision_writer(server: &TestServer, sandbox: &Sandbox, owner: &str) -> TestTenant {
    let f = sandbox.fixture().owner(owner).unwrap();
    let every = json!({"toolsets": ["webflow", "cms-write", "page-write", "analytics", "github"]});
    server.provision_with(f, every).await
}

fn puts(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.token_owner))
        .collect()
}

fn change<'a>(result: &'a Value, field: &str) -> &'a Value {
    result["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == field)
        .unwrap_or_else(|| panic!("no change of {field} in {result}"))
}

#[tokio::test]
async fn own_page_changes_with_before_and_after() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let page = acme.fixture.page_ids[2].clone();

    // A listing read now is cached; the update must not leave it stale.
    let listed = ok_json(&call(&client, "webflow_list_pages", json!({})).await);
    let old_title = listed["pages"][2]["title"].as_str().unwrap().to_owned();
    sandbox.clear_requests();

    let result = ok_json(
        &call(
            &client,
            TOOL,
            json!({"page_id": page, "title": "Get in touch",
                   "seo": {"description": "Write to Acme: we answer within a day."}}),
        )
        .await,
    );
    assert_eq!(change(&result, "title")["before"], old_title.as_str());
    assert_eq!(change(&result, "title")["after"], "Get in touch");
    let seo = change(&result, "seo.description");
    assert_eq!(seo["before"], Value::Null, "{result}");
    assert_eq!(seo["after"], "Write to Acme: we answer within a day.");
    // Webflow's Open Graph description was copied from the SEO one and follows it: shown too.
    assert_eq!(
        change(&result, "open_graph.description")["after"],
        "Write to Acme: we answer within a day."
    );
    assert!(result["note"].as_str().unwrap().contains("staged"));
    assert_eq!(result["site_id"], acme.fixture.site_id);
    let stored = sandbox.webflow_page(&page).unwrap();
    assert_eq!(stored["title"], "Get in touch");
    // Read first, then one PUT with only the fields given, with acme's own token.
    let log: Vec<_> = sandbox
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.token_owner))
        .collect();
    assert_eq!(
        log.iter()
            .filter(|(m, ..)| m == "PUT")
            .cloned()
            .collect::<Vec<_>>(),
        vec![(
            "PUT".to_owned(),
            format!("/v2/pages/{page}"),
            Some("acme".to_owned())
        )],
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|(m, p, _)| m == "GET" && *p == format!("/v2/pages/{page}")),
        "{log:?}"
    );

    let listed = ok_json(&call(&client, "webflow_list_pages", json!({})).await);
    assert_eq!(listed["pages"][2]["title"], "Get in touch", "stale listing");

    // The same settings again: nothing to send, and it says so.
    sandbox.clear_requests();
    let again = ok_json(
        &call(
            &client,
            TOOL,
            json!({"page_id": page, "title": "Get in touch"}),
        )
        .await,
    );
    assert_eq!(again["changes"], json!([]));
    assert_eq!(again["unchanged"], json!(["title"]));
    assert!(puts(&sandbox).is_empty(), "{:?}", puts(&sandbox));

    // The home page keeps its slug, as Webflow does, and the result says it was not applied.
    let home = ok_json(
        &call(
            &client,
            TOOL,
            json!({"page_id": acme.fixture.page_ids[0], "slug": "start"}),
        )
        .await,
    );
    assert_eq!(home["not_applied"], json!(["slug"]), "{home}");
    assert_eq!(home["changes"], json!([]));

    // A token made without `pages:write`: the read passes, Webflow refuses the PUT with 403,
    // and the tool says which scope is missing.
    sandbox.fail_next(Failure::status(200), 1);
    sandbox.fail_next(Failure::status(403), 1);
    let text = error_text(
        &call(
            &client,
            TOOL,
            json!({"page_id": page, "title": "Say hello"}),
        )
        .await,
    );
    assert!(text.contains("pages:write"), "{text}");
    assert_eq!(
        sandbox.webflow_page(&page).unwrap()["title"],
        "Get in touch"
    );
}

#[tokio::test]
async fn another_tenants_page_is_never_reached() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let before = sandbox.webflow_page(&globex.page_ids[0]).unwrap();

    sandbox.clear_requests();
    for page in [&globex.page_ids[0], &"0123456789abcdef01234567".to_owned()] {
        let text = error_text(
            &call(
                &client,
                TOOL,
                json!({"page_id": page, "title": "Taken over"}),
            )
            .await,
        );
        assert!(text.contains("not one of this tenant's"), "{text}");
        assert!(!text.contains("owner:globex"), "{text}");
    }
    let requests = sandbox.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.path.contains(&globex.page_ids[0])
                && r.method == "GET"
                && r.token_owner.as_deref() == Some("acme")),
        "{requests:?}"
    );
    assert_eq!(sandbox.webflow_page(&globex.page_ids[0]), Some(before));
}

#[tokio::test]
async fn read_only_and_tenants_without_the_toolset_cannot_write_pages() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex", "initech"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme_f = sandbox.fixture().owner("acme").unwrap().clone();
    let globex_f = sandbox.fixture().owner("globex").unwrap().clone();
    let initech_f = sandbox.fixture().owner("initech").unwrap().clone();
    // A tenant as stored before `page-write` existed: every toolset of that release.
    let old = server
        .provision_with(
            &acme_f,
            json!({"toolsets": ["webflow", "cms-write", "analytics", "github"]}),
        )
        .await;
    // Granted it, but read-only.
    let read_only = server
        .provision_with(
            &globex_f,
            json!({"read_only": true, "toolsets": ["webflow", "page-write"]}),
        )
        .await;
    // A new tenant given no list of toolsets: the default leaves page-write out.
    let new = server.provision(&initech_f).await;

    for (tenant, page) in [
        (&old, &acme_f.page_ids[1]),
        (&read_only, &globex_f.page_ids[1]),
        (&new, &initech_f.page_ids[1]),
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
        assert!(names.iter().any(|n| n == "webflow_list_pages"));
        let refused = try_call(&client, TOOL, json!({"page_id": page, "title": "x"})).await;
        assert!(
            format!("{:?}", refused.unwrap_err()).contains("unknown tool"),
            "{}",
            tenant.id
        );
    }
    assert!(puts(&sandbox).is_empty(), "{:?}", puts(&sandbox));

    // The operator grants it: the tool appears on the next list and works.
    let patch: common::tenant::TenantPatch = serde_json::from_value(json!({
        "toolsets": ["webflow", "cms-write", "page-write", "analytics", "github"]
    }))
    .unwrap();
    server.admin.update_tenant("acme", &patch).await.unwrap();
    let client = server.client(&old.token).await;
    let tool = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == TOOL)
        .expect("listed once granted");
    let a = tool.annotations.unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
        (Some(false), Some(true), Some(true))
    );
    let result = ok_json(
        &call(
            &client,
            TOOL,
            json!({"page_id": acme_f.page_ids[1], "open_graph": {"title": "Meet Acme"}}),
        )
        .await,
    );
    assert_eq!(change(&result, "open_graph.title")["after"], "Meet Acme");
}

#[tokio::test]
async fn bad_arguments_are_refused_with_nothing_sent() {
    let (sandbox, server) = setup().await;
    let acme = provision_writer(&server, &sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let page = acme.fixture.page_ids[1].clone();
    sandbox.clear_requests();
    let long_title = "t".repeat(257);
    let long_description = "d".repeat(1001);
    for (args, needle) in [
        (json!({"page_id": page}), "nothing to change"),
        (
            json!({"page_id": page, "seo": {}, "open_graph": {}}),
            "nothing to change",
        ),
        (json!({"page_id": page, "title": long_title}), "title:"),
        (
            json!({"page_id": page, "seo": {"title": long_title}}),
            "seo.title",
        ),
        (
            json!({"page_id": page, "open_graph": {"description": long_description}}),
            "open_graph.description",
        ),
        (json!({"page_id": page, "title": ""}), "empty"),
        (json!({"page_id": page, "slug": "About Us"}), "slug"),
        (
            json!({"page_id": page, "seo": {"title": "Sale\u{202e}elaS"}}),
            "seo.title",
        ),
        (json!({"page_id": page, "image": "og.png"}), "image"),
        (
            json!({"page_id": page, "seo": {"keywords": "x"}}),
            "keywords",
        ),
        (json!({"page_id": "about", "title": "x"}), "page_id"),
        (json!({"title": "x"}), "page_id"),
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
