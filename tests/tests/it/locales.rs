//! Localization end to end: `webflow_get_site` shows the site's locales; item reads take
//! `cms_locale_id` and page reads and page settings `locale_id`, each checked against the
//! site's own locales before a request carries it, then sent as Webflow's `cmsLocaleId` /
//! `localeId`. The sandbox's request log is the oracle for what reached Webflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{TestServer, TestTenant, call, error_text, ok_json, result_text};
use tests::sandbox::{Fixture, RecordedRequest, Sandbox};

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

/// `owner` with the page-write toolset too, so page settings can be changed per locale.
async fn provision(server: &TestServer, sandbox: &Sandbox, owner: &str) -> TestTenant {
    let f = sandbox.fixture().owner(owner).unwrap();
    let every = json!({"toolsets": ["webflow", "cms-write", "page-write", "analytics", "github"]});
    server.provision_with(f, every).await
}

/// The Webflow requests that carried a locale parameter.
fn localized(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|r| r.path.contains("localeId") || r.path.contains("cmsLocaleId"))
        .collect()
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {value}"))
        .to_owned()
}

#[tokio::test]
async fn the_site_shows_its_locales() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let f = &acme.fixture;
    let site = ok_json(&call(&client, "webflow_get_site", json!({})).await);
    let locales = &site["locales"];
    assert_eq!(locales["primary"]["id"], f.locale_ids[0], "{site}");
    assert_eq!(locales["primary"]["cmsLocaleId"], f.cms_locale_ids[0]);
    assert_eq!(locales["primary"]["tag"], "en-US");
    let secondary = locales["secondary"].as_array().unwrap();
    assert_eq!(secondary.len(), 2);
    assert_eq!(secondary[0]["id"], f.locale_ids[1]);
    assert_eq!(secondary[0]["cmsLocaleId"], f.cms_locale_ids[1]);
    assert_eq!(secondary[0]["displayName"], "French (France)");
    assert_eq!(secondary[0]["subdirectory"], "fr-fr");
    assert_eq!(secondary[0]["enabled"], true);
    assert_eq!(secondary[1]["tag"], "de-DE");
    assert_eq!(secondary[1]["enabled"], false);
}

#[tokio::test]
async fn a_secondary_locale_reads_its_variant_and_names_it_upstream() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let f = &acme.fixture;
    let (collection, item) = f.item_ids[0].clone();
    let (fr, cms_fr) = (&f.locale_ids[1], &f.cms_locale_ids[1]);
    // The primary's reads first, so the read cache holds them when the French ones come.
    let primary = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": collection}),
        )
        .await,
    );
    let primary_pages = ok_json(&call(&client, "webflow_list_pages", json!({})).await);
    sandbox.clear_requests();

    let items = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": collection, "cms_locale_id": cms_fr, "limit": 2}),
        )
        .await,
    );
    assert_eq!(items["items"].as_array().unwrap().len(), 2);
    assert_eq!(items["items"][0]["cmsLocaleId"], *cms_fr);
    assert!(text(&items, "/items/0/fieldData/name").starts_with("[fr-FR] "));
    let one = ok_json(
        &call(
            &client,
            "webflow_get_item",
            json!({"collection_id": collection, "item_id": item, "cms_locale_id": cms_fr}),
        )
        .await,
    );
    assert_eq!(one["cmsLocaleId"], *cms_fr);
    assert!(text(&one, "/fieldData/name").starts_with("[fr-FR] "));
    let pages = ok_json(
        &call(
            &client,
            "webflow_list_pages",
            json!({"locale_id": fr, "limit": 1}),
        )
        .await,
    );
    assert_eq!(pages["pages"][0]["localeId"], *fr);
    assert!(text(&pages, "/pages/0/title").starts_with("[fr-FR] "));
    let content = ok_json(
        &call(
            &client,
            "webflow_get_page_content",
            json!({"page_id": f.page_ids[0], "locale_id": fr}),
        )
        .await,
    );
    assert!(text(&content, "/nodes/0/text/text").starts_with("[fr-FR] "));

    // Each read named its locale upstream, by the parameter Webflow takes for it.
    let requests = sandbox.requests();
    let sent = localized(&requests);
    let expect = [
        format!("/v2/collections/{collection}/items?"),
        format!("/v2/collections/{collection}/items/{item}?"),
        format!("/v2/sites/{}/pages?", f.site_id),
        format!("/v2/pages/{}/dom?", f.page_ids[0]),
    ];
    for (path, (param, id)) in expect.iter().zip([
        ("cmsLocaleId", cms_fr),
        ("cmsLocaleId", cms_fr),
        ("localeId", fr),
        ("localeId", fr),
    ]) {
        assert!(
            sent.iter().any(|r| r.path.starts_with(path.as_str())
                && r.path.contains(&format!("{param}={id}"))
                && r.status == 200),
            "no {path}…{param}={id} in {sent:?}"
        );
    }
    assert!(
        sent.iter()
            .all(|r| r.token_owner.as_deref() == Some("acme"))
    );

    // The primary's answers, cached before, were not served for French, nor French for them.
    let again = ok_json(
        &call(
            &client,
            "webflow_list_items",
            json!({"collection_id": collection}),
        )
        .await,
    );
    assert_eq!(again["items"], primary["items"]);
    assert!(!again.to_string().contains("[fr-FR]"));
    let again = ok_json(&call(&client, "webflow_list_pages", json!({})).await);
    assert_eq!(again["pages"], primary_pages["pages"]);

    // The primary's own id is a locale of the site too: its variant is the primary's.
    let named = ok_json(
        &call(
            &client,
            "webflow_get_item",
            json!({"collection_id": collection, "item_id": item,
                   "cms_locale_id": f.cms_locale_ids[0]}),
        )
        .await,
    );
    assert_eq!(named["fieldData"], primary["items"][0]["fieldData"]);
}

#[tokio::test]
async fn unknown_and_foreign_locales_are_refused_before_any_request_carries_them() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let f = &acme.fixture;
    let (collection, item) = f.item_ids[0].clone();
    let junk = "0123456789abcdef01234567";
    // Warm the scope index, so what follows is only the locale check.
    call(&client, "webflow_list_collections", json!({})).await;
    sandbox.clear_requests();

    let page = &f.page_ids[0];
    let cases = [
        (
            "webflow_list_pages",
            json!({"locale_id": globex.locale_ids[1]}),
            &globex.locale_ids[1],
        ),
        (
            "webflow_get_page_content",
            json!({"page_id": page, "locale_id": junk}),
            &junk.to_owned(),
        ),
        (
            "webflow_list_items",
            json!({"collection_id": collection, "cms_locale_id": globex.cms_locale_ids[1]}),
            &globex.cms_locale_ids[1],
        ),
        (
            "webflow_get_item",
            json!({"collection_id": collection, "item_id": item, "cms_locale_id": junk}),
            &junk.to_owned(),
        ),
    ];
    for (tool, args, id) in cases {
        let result = call(&client, tool, args).await;
        let said = error_text(&result);
        assert!(said.contains(id.as_str()), "{tool}: {said}");
        assert!(said.contains("is not a locale of site"), "{tool}: {said}");
        // The site's own locales are listed, with the id this argument takes.
        assert!(said.contains("French (France) fr-FR"), "{tool}: {said}");
        let own = if tool.contains("item") {
            &f.cms_locale_ids[1]
        } else {
            &f.locale_ids[1]
        };
        assert!(said.contains(own.as_str()), "{tool}: {said}");
        assert!(!result_text(&result).contains("owner:globex"));
    }
    // A site locale id where a CMS locale id belongs: refused, naming the right one.
    let result = call(
        &client,
        "webflow_list_items",
        json!({"collection_id": collection, "cms_locale_id": f.locale_ids[1]}),
    )
    .await;
    let said = error_text(&result);
    assert!(
        said.contains(&format!(
            "takes its cms_locale_id: `{}`",
            f.cms_locale_ids[1]
        )),
        "{said}"
    );
    // Not even malformed ids get that far.
    let result = call(&client, "webflow_list_pages", json!({"locale_id": "fr-FR"})).await;
    assert!(error_text(&result).contains("locale_id"));

    let requests = sandbox.requests();
    assert!(localized(&requests).is_empty(), "{requests:?}");
    for request in &requests {
        assert!(!request.path.contains(junk), "{request:?}");
        for id in globex.locale_ids.iter().chain(&globex.cms_locale_ids) {
            assert!(!request.path.contains(id.as_str()), "{request:?}");
        }
        assert_eq!(request.token_owner.as_deref(), Some("acme"));
    }
}

#[tokio::test]
async fn page_settings_change_in_one_locale_only() {
    let (sandbox, server) = setup().await;
    let acme = provision(&server, &sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let f = &acme.fixture;
    let (page, fr) = (&f.page_ids[1], &f.locale_ids[1]);
    let primary_before = sandbox.webflow_page(page).unwrap();
    let french_before = sandbox.webflow_page_in(page, Some(fr)).unwrap();
    // A French read now is cached; the update must not leave it stale.
    call(&client, "webflow_list_pages", json!({"locale_id": fr})).await;
    sandbox.clear_requests();

    let result = ok_json(
        &call(
            &client,
            "webflow_update_page_settings",
            json!({"page_id": page, "locale_id": fr, "seo": {"description": "Une page."}}),
        )
        .await,
    );
    let change = result["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "seo.description")
        .unwrap()
        .clone();
    assert_eq!(change["before"], french_before["seo"]["description"]);
    assert_eq!(change["after"], "Une page.");
    assert_eq!(result["page"]["localeId"], *fr);

    // The French settings changed, the primary's did not.
    let french = sandbox.webflow_page_in(page, Some(fr)).unwrap();
    assert_eq!(french["seo"]["description"], "Une page.");
    assert_eq!(sandbox.webflow_page(page).unwrap(), primary_before);
    let put: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(put.len(), 1, "{put:?}");
    assert_eq!(put[0].path, format!("/v2/pages/{page}?localeId={fr}"));

    // The French listing read afterwards shows the change.
    let listed = ok_json(&call(&client, "webflow_list_pages", json!({"locale_id": fr})).await);
    assert_eq!(listed["pages"][1]["seo"]["description"], "Une page.");

    // A locale the site lacks: refused, nothing written.
    sandbox.clear_requests();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let result = call(
        &client,
        "webflow_update_page_settings",
        json!({"page_id": page, "locale_id": globex.locale_ids[1], "title": "Nope"}),
    )
    .await;
    assert!(error_text(&result).contains(&globex.locale_ids[1]));
    assert!(sandbox.requests().iter().all(|r| r.method == "GET"));
}
