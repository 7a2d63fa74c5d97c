//! The isolated per-client server through a real MCP client: one tenant per instance, other
//! servers' tokens refused, and every high-risk action previewed, carried out only once a person
//! (here the operator, through the admin API) approves exactly its arguments, kept inside the
//! tenant's zone, names, domains and customer — and refused without any upstream write otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tests::harness::{McpClient, TestServer, TestTenant, call, error_text, ok_json};
use tests::sandbox::{Fixture, Sandbox};

fn writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn setup() -> (Sandbox, TestServer, TestTenant) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start_isolated(&sandbox, "acme").await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    (sandbox, server, acme)
}

/// The first step: the preview and the approval id; nothing acts.
async fn request(client: &McpClient, tool: &str, args: &Value) -> (Value, String) {
    let step = ok_json(&call(client, tool, args.clone()).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    let id = step["approval_id"].as_str().unwrap().to_owned();
    (step, id)
}

/// The operator approves `id` (the action runs at once); the model's next identical call
/// reports the outcome, which is returned.
async fn approve(
    server: &TestServer,
    client: &McpClient,
    tool: &str,
    args: &Value,
    id: &str,
) -> Value {
    let decided = server.admin.decide_approval(id, true).await.unwrap();
    assert_eq!(decided.decided_by.as_deref(), Some("operator"));
    let report = ok_json(&call(client, tool, args.clone()).await);
    assert_eq!(report["approval_id"], id, "{report}");
    assert_eq!(report["decided_by"], "operator", "{report}");
    report
}

/// Requests and has the operator approve: the model's report of the outcome.
async fn approved(server: &TestServer, client: &McpClient, tool: &str, args: &Value) -> Value {
    let (_, id) = request(client, tool, args).await;
    approve(server, client, tool, args, &id).await
}

#[tokio::test]
async fn one_tenant_per_instance_and_nobody_elses_tokens() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let acme_instance = TestServer::start_isolated(&sandbox, "acme").await;
    let acme = acme_instance
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let globex_instance = TestServer::start_isolated(&sandbox, "globex").await;
    let globex = globex_instance
        .provision_isolated(sandbox.fixture().owner("globex").unwrap())
        .await;
    let shared = TestServer::start(&sandbox).await;
    let shared_acme = shared.provision_owner(&sandbox, "acme").await;

    let client = acme_instance.client(&acme.token).await;
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    assert_eq!(who["dns_zone"], acme.fixture.zone_id);
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    println!("isolated instance tools: {names:?}");
    assert_eq!(names.len(), 12);
    for t in &tools {
        let a = t.annotations.clone().unwrap();
        let high_risk = [
            "webflow_publish_site",
            "webflow_publish_items",
            "webflow_delete_items",
            "webflow_unpublish_items",
            "webflow_set_custom_code",
            "dns_create_record",
            "dns_update_record",
            "dns_delete_record",
            "billing_create_portal_session",
        ];
        if high_risk.contains(&t.name.as_ref()) {
            assert_eq!(a.destructive_hint, Some(true), "{}", t.name);
            assert_eq!(a.read_only_hint, Some(false), "{}", t.name);
        } else {
            assert_eq!(a.read_only_hint, Some(true), "{}", t.name);
        }
    }

    // Tokens of the shared server and of another client's instance are refused here, and the
    // instance's own token is refused by the shared server.
    for (server, token) in [
        (&acme_instance, &shared_acme.token),
        (&acme_instance, &globex.token),
        (&shared, &acme.token),
        (&globex_instance, &acme.token),
    ] {
        let (status, body) = server
            .post_raw(
                Some(token),
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .await;
        assert_eq!(status, 401, "{body}");
    }
    // The instance serves one tenant only, even to its own admin.
    let other: common::tenant::TenantSpec = serde_json::from_value(
        json!({"name": "Globex", "webflow_sites": [globex.fixture.site_id]}),
    )
    .unwrap();
    let err = acme_instance
        .admin
        .set_tenant("globex", &other)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("serves only tenant `acme`"), "{err}");
}

#[tokio::test]
async fn dns_changes_run_only_once_approved_for_their_exact_arguments_and_inside_the_allowed_names()
{
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let listed = ok_json(&call(&client, "dns_list_records", json!({})).await);
    assert_eq!(listed["records"].as_array().unwrap().len(), 5);
    assert!(!listed.to_string().contains("owner:globex)"));

    sandbox.clear_requests();
    let args = json!({"record": {"type": "CNAME", "name": format!("blog.shop.{}", f.zone_name), "content": format!("{}", f.zone_name)}});
    let (step, id) = request(&client, "dns_create_record", &args).await;
    assert_eq!(
        step["preview"]["after"]["name"],
        format!("blog.shop.{}", f.zone_name)
    );
    assert!(
        step["approval_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/approve/{id}")),
        "{step}"
    );
    assert!(
        writes(&sandbox).is_empty(),
        "a request wrote: {:?}",
        writes(&sandbox)
    );

    // Other arguments are another action: a request of their own, not the pending one.
    let mut other = args.clone();
    other["record"]["content"] = json!(format!("www.{}", f.zone_name));
    let (_, other_id) = request(&client, "dns_create_record", &other).await;
    assert_ne!(other_id, id);
    // Asking again for the same action waits for the same approval.
    let waiting = ok_json(&call(&client, "dns_create_record", args.clone()).await);
    assert_eq!(waiting["status"], "waiting_for_approval", "{waiting}");
    assert_eq!(waiting["approval_id"], id.as_str());
    assert!(writes(&sandbox).is_empty());

    // The operator approves: it runs at once, with exactly the approved arguments, once.
    let done = approve(&server, &client, "dns_create_record", &args, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    let created = done["result"]["id"].as_str().unwrap().to_owned();
    let record = sandbox.dns_record(&f.zone_id, &created).unwrap();
    assert_eq!(record["content"], f.zone_name.as_str());
    assert_eq!(writes(&sandbox).len(), 1);
    // Told once; the same call afterwards is a new request, and the other action never ran.
    let (_, again) = request(&client, "dns_create_record", &args).await;
    assert_ne!(again, id);
    let still = ok_json(&call(&client, "dns_create_record", other.clone()).await);
    assert_eq!(still["status"], "waiting_for_approval", "{still}");
    assert_eq!(writes(&sandbox).len(), 1);

    // Update and delete of an allowed record show before and after.
    let shop = &f.dns_record_ids[2];
    let upd = json!({"record_id": shop, "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.7"}});
    let (step, id) = request(&client, "dns_update_record", &upd).await;
    assert_eq!(step["preview"]["before"]["content"], "203.0.113.20");
    assert_eq!(step["preview"]["after"]["content"], "198.51.100.7");
    let done = approve(&server, &client, "dns_update_record", &upd, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        sandbox.dns_record(&f.zone_id, shop).unwrap()["content"],
        "198.51.100.7"
    );
    // (How the model learns a deletion's outcome is `approvals.rs`'s business.)
    let del = json!({"record_id": created});
    let (_, id) = request(&client, "dns_delete_record", &del).await;
    let done = server.admin.decide_approval(&id, true).await.unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    assert!(sandbox.dns_record(&f.zone_id, &created).is_none());

    // Everything outside the zone and names is refused before any write.
    sandbox.clear_requests();
    let refused = [
        (
            "dns_create_record",
            json!({"zone_id": globex.zone_id, "record": {"type": "A", "name": format!("www.{}", f.zone_name), "content": "192.0.2.1"}}),
            "DNS zone",
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "A", "name": format!("www.{}", globex.zone_name), "content": "192.0.2.1"}}),
            "DNS name",
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "A", "name": f.zone_name, "content": "192.0.2.1"}}),
            "DNS name",
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "A", "name": format!("mail.{}", f.zone_name), "content": "192.0.2.1"}}),
            "DNS name",
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "A", "name": format!("www.{}", f.zone_name), "content": "not-an-ip"}}),
            "content",
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "SRV", "name": format!("www.{}", f.zone_name), "content": "x"}}),
            "type",
        ),
        (
            "dns_update_record",
            json!({"record_id": f.dns_record_ids[3], "record": {"type": "A", "name": format!("www.{}", f.zone_name), "content": "192.0.2.1"}}),
            "DNS name",
        ),
        (
            "dns_delete_record",
            json!({"record_id": f.dns_record_ids[0]}),
            "DNS name",
        ),
        (
            "dns_delete_record",
            json!({"record_id": globex.dns_record_ids[1]}),
            "404",
        ),
        (
            "dns_list_records",
            json!({"zone_id": globex.zone_id}),
            "DNS zone",
        ),
    ];
    for (tool, args, needle) in refused {
        let text = error_text(&call(&client, tool, args.clone()).await);
        assert!(text.contains(needle), "{tool} {args}: {text}");
    }
    assert!(
        writes(&sandbox).is_empty(),
        "refused calls wrote: {:?}",
        writes(&sandbox)
    );
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex.zone_id))
    );
}

#[tokio::test]
async fn approvals_expire_and_do_not_travel_between_instances() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(tmp.path(), &sandbox.base_url());
    config.tenant = Some("acme".into());
    config.approval_ttl_secs = 1;
    let server = TestServer::start_spec(config, &isolated_server::ISOLATED).await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = server.client(&acme.token).await;
    let args = json!({"record": {"type": "TXT", "name": format!("www.{}", acme.fixture.zone_name), "content": "hello"}});
    let (step, id) = request(&client, "dns_create_record", &args).await;
    assert_eq!(step["expires_in_secs"], 1);
    // Past its time (the instance's clock moved on, not waited out), as the admin list sees it.
    server.clock.advance(2);
    let listed = server.admin.approvals().await.unwrap();
    assert!(
        listed.iter().any(|a| a.id == id && a.state == "expired"),
        "{listed:?}"
    );
    let err = server
        .admin
        .decide_approval(&id, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("409") && err.contains("expired"), "{err}");
    // The same call after expiry is a new request.
    let (_, fresh) = request(&client, "dns_create_record", &args).await;
    assert_ne!(fresh, id);
    assert!(writes(&sandbox).is_empty());

    // An approval of another acme instance means nothing here.
    let other = TestServer::start_isolated(&sandbox, "acme").await;
    let other_acme = other
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let other_client = other.client(&other_acme.token).await;
    let (_, foreign) = request(&other_client, "dns_create_record", &args).await;
    let err = server
        .admin
        .decide_approval(&foreign, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
    assert!(writes(&sandbox).is_empty());
    let theirs = other.admin.approvals().await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].state, "pending");
}

#[tokio::test]
async fn publishing_is_approved_scoped_and_once_a_minute() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let args =
        json!({"custom_domains": [f.custom_domain_ids[0]], "publish_to_webflow_subdomain": true});
    let (step, id) = request(&client, "webflow_publish_site", &args).await;
    assert_eq!(step["preview"]["domains"].as_array().unwrap().len(), 1);
    assert_eq!(sandbox.webflow_publishes(&f.site_id), 0);
    let done = approve(&server, &client, "webflow_publish_site", &args, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(sandbox.webflow_publishes(&f.site_id), 1);

    // Again within the minute (another target): the preview says when, and the approved
    // action fails locally.
    let args = json!({"custom_domains": [f.custom_domain_ids[0]]});
    let (step, id) = request(&client, "webflow_publish_site", &args).await;
    assert!(step["preview"]["next_publish_in_secs"].as_u64().unwrap() > 0);
    sandbox.clear_requests();
    let failed = approve(&server, &client, "webflow_publish_site", &args, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["result"].to_string().contains("retry after"),
        "{failed}"
    );
    assert!(writes(&sandbox).is_empty());

    for (tool, args, needle) in [
        (
            "webflow_publish_site",
            json!({"custom_domains": [globex.custom_domain_ids[0]]}),
            "custom domain",
        ),
        (
            "webflow_publish_site",
            json!({"site_id": globex.site_id}),
            "site",
        ),
        (
            "webflow_publish_site",
            json!({"custom_domains": []}),
            "nothing to publish",
        ),
        (
            "webflow_publish_items",
            json!({"collection_id": globex.collection_ids[0], "item_ids": [globex.item_ids[0].1]}),
            "collection",
        ),
        (
            "webflow_publish_items",
            json!({"collection_id": f.collection_ids[0], "item_ids": []}),
            "item_ids",
        ),
    ] {
        let text = error_text(&call(&client, tool, args.clone()).await);
        assert!(text.contains(needle), "{tool} {args}: {text}");
    }
    assert!(writes(&sandbox).is_empty());

    let items = json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[0].1, f.item_ids[1].1]});
    let done = approved(&server, &client, "webflow_publish_items", &items).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["result"]["publishedItemIds"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn billing_is_the_tenants_own_customer_form_encoded_and_idempotent() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let invoices = ok_json(&call(&client, "billing_list_invoices", json!({"limit": 10})).await);
    assert_eq!(invoices["data"].as_array().unwrap().len(), 3);
    assert!(!invoices.to_string().contains("owner:globex)"));
    sandbox.clear_requests();
    let text = error_text(
        &call(
            &client,
            "billing_list_invoices",
            json!({"customer": globex.stripe_customer}),
        )
        .await,
    );
    assert!(text.contains("customer"), "{text}");
    assert!(sandbox.requests().is_empty());

    let args = json!({"return_url": "https://acme.example/account"});
    let (step, id) = request(&client, "billing_create_portal_session", &args).await;
    assert_eq!(step["preview"]["customer"], f.stripe_customer);
    assert_eq!(sandbox.stripe_sessions("acme"), 0);
    let done = approve(
        &server,
        &client,
        "billing_create_portal_session",
        &args,
        &id,
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        done["result"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(sandbox.stripe_sessions("acme"), 1);
    let post = sandbox
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert!(post.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/x-www-form-urlencoded")));
    let key = |r: &tests::sandbox::RecordedRequest| {
        r.headers
            .iter()
            .find(|(k, _)| k == "idempotency-key")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert!(key(&post).starts_with("studio-mcp-"));

    // Told once: the same call afterwards is a new request, nothing sent; another approval
    // acts with its own idempotency key.
    let (_, again) = request(&client, "billing_create_portal_session", &args).await;
    assert_ne!(again, id);
    assert_eq!(sandbox.stripe_sessions("acme"), 1);
    let other = json!({"return_url": "https://www.acme.example/account"});
    let done = approved(&server, &client, "billing_create_portal_session", &other).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(sandbox.stripe_sessions("acme"), 2);
    let keys: Vec<String> = sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(key)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    let text = error_text(
        &call(
            &client,
            "billing_create_portal_session",
            json!({"customer": globex.stripe_customer}),
        )
        .await,
    );
    assert!(text.contains("customer"), "{text}");
}

#[tokio::test]
async fn items_are_deleted_or_unpublished_only_in_named_collections_once_approved() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let (blog, authors) = (&f.collection_ids[0], &f.collection_ids[1]);
    let item = |i: usize| f.item_ids[i].1.clone();

    // The tenant record names the collection, and shows it.
    let shown = server.admin.tenant("acme").await.unwrap();
    let shown = serde_json::to_value(&shown).unwrap();
    assert_eq!(shown["deletable_collections"], json!([blog]), "{shown}");
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["deletable_collections"], json!([blog]));

    sandbox.clear_requests();
    let refused = [
        (
            "webflow_delete_items",
            json!({"collection_id": authors, "item_ids": [item(5)]}),
            "--deletable-collection".to_owned(),
        ),
        (
            "webflow_unpublish_items",
            json!({"collection_id": authors, "item_ids": [item(5)]}),
            "--deletable-collection".to_owned(),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": globex.collection_ids[0], "item_ids": [globex.item_ids[0].1]}),
            "--deletable-collection".to_owned(),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": blog, "item_ids": [item(0), globex.item_ids[0].1]}),
            globex.item_ids[0].1.clone(),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": blog, "item_ids": [item(5)]}),
            item(5),
        ),
        // Not live: the stale draft cannot be unpublished.
        (
            "webflow_unpublish_items",
            json!({"collection_id": blog, "item_ids": [item(3)]}),
            item(3),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": blog, "item_ids": []}),
            "1 to 100".to_owned(),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": blog, "item_ids": vec![item(0); 101]}),
            "1 to 100".to_owned(),
        ),
    ];
    for (tool, args, needle) in refused {
        let text = error_text(&call(&client, tool, args.clone()).await);
        assert!(text.contains(&needle), "{tool} {args}: {text}");
    }
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));
    assert!(server.admin.approvals().await.unwrap().is_empty());
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex.collection_ids[0])),
        "another tenant's collection was reached"
    );

    // Unpublish two live items: the preview names them; the operator approves; they are drafts.
    let args = json!({"collection_id": blog, "item_ids": [item(0), item(1), item(0)]});
    let (step, id) = request(&client, "webflow_unpublish_items", &args).await;
    let shown = &step["preview"]["items"];
    assert_eq!(step["preview"]["count"], 2, "{step}");
    assert_eq!(shown[0]["name"], "Blog Post 1 (owner:acme)", "{step}");
    assert_eq!(shown[1]["slug"], "blog-post-2", "{step}");
    assert!(writes(&sandbox).is_empty());
    let done = approve(&server, &client, "webflow_unpublish_items", &args, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["result"]["unpublished_item_ids"],
        json!([item(0), item(1)])
    );
    assert_eq!(sandbox.webflow_item_live(blog, &item(0)), Some(false));
    assert_eq!(sandbox.webflow_item_live(blog, &item(2)), Some(true));
    assert_eq!(
        writes(&sandbox),
        [format!("DELETE /v2/collections/{blog}/items/live")]
    );

    // Delete one: gone from the staged site, the rest untouched.
    sandbox.clear_requests();
    let args = json!({"collection_id": blog, "item_ids": [item(1)]});
    let (step, id) = request(&client, "webflow_delete_items", &args).await;
    assert_eq!(
        step["preview"]["items"][0]["name"],
        "Blog Post 2 (owner:acme)"
    );
    let done = approve(&server, &client, "webflow_delete_items", &args, &id).await;
    assert_eq!(
        done["result"]["deleted_item_ids"],
        json!([item(1)]),
        "{done}"
    );
    assert!(sandbox.webflow_item(blog, &item(1)).is_none());
    assert!(sandbox.webflow_item(blog, &item(0)).is_some());
    assert_eq!(
        writes(&sandbox),
        [format!("DELETE /v2/collections/{blog}/items")]
    );
    assert!(
        sandbox
            .webflow_item(&globex.collection_ids[0], &globex.item_ids[0].1)
            .is_some()
    );
}

#[tokio::test]
async fn custom_code_needs_the_app_token_registered_scripts_and_an_approval() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let site_code = || sandbox.webflow_custom_code(&f.site_id).unwrap();
    let before = site_code();
    let scripts = json!([
        {"id": "cms_slider", "version": "1.1.0", "location": "footer"},
        {"id": "cookie_banner", "version": "0.2.0", "location": "header",
         "attributes": {"data-consent": "strict"}},
    ]);

    // Outside the tenant's site, or scripts not registered, or hidden characters: refused,
    // nothing recorded, no write.
    sandbox.clear_requests();
    let refused = [
        (
            json!({"site_id": globex.site_id, "scripts": scripts}),
            "not one of this tenant's".to_owned(),
        ),
        (
            json!({"page_id": globex.page_ids[0], "scripts": scripts}),
            globex.page_ids[0].clone(),
        ),
        (
            json!({"scripts": [{"id": "cms_slider", "version": "9.9.9", "location": "header"}]}),
            "`cms_slider` version `9.9.9` is not registered".to_owned(),
        ),
        (
            json!({"scripts": [{"id": "keylogger", "version": "1.0.0", "location": "header"}]}),
            "keylogger".to_owned(),
        ),
        (
            json!({"scripts": [{"id": "cms_slider", "version": "1.1.0", "location": "body"}]}),
            "location".to_owned(),
        ),
        (
            json!({"scripts": [{"id": "cms_slider", "version": "1.1.0", "location": "header",
                                "attributes": {"data-x": "a\u{202e}b"}}]}),
            "U+202E".to_owned(),
        ),
        (
            json!({"scripts": [{"id": "cms_slider", "version": "1.0.0", "location": "header"},
                               {"id": "cms_slider", "version": "1.1.0", "location": "header"}]}),
            "twice".to_owned(),
        ),
    ];
    for (args, needle) in refused {
        let text = error_text(&call(&client, "webflow_set_custom_code", args.clone()).await);
        assert!(text.contains(&needle), "{args}: {text}");
    }
    assert!(writes(&sandbox).is_empty(), "{:?}", writes(&sandbox));
    assert!(server.admin.approvals().await.unwrap().is_empty());
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex.site_id) && !r.path.contains(&globex.page_ids[0]))
    );

    // The site: the preview is the exact diff, each script with its hosted URL and hash.
    let args = json!({"scripts": scripts});
    let (step, id) = request(&client, "webflow_set_custom_code", &args).await;
    let preview = &step["preview"];
    assert_eq!(preview["applies_to"], "the whole site", "{preview}");
    assert_eq!(preview["current"][0]["version"], "1.0.0", "{preview}");
    assert_eq!(
        preview["changes"],
        json!([
            "~ change cms_slider 1.0.0 in the header to cms_slider 1.1.0 in the footer",
            "+ add cookie_banner 0.2.0 in the header, attributes data-consent=strict",
        ]),
        "{preview}"
    );
    let banner = &preview["after"][1];
    assert!(
        banner["hosted_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{}/cookie-banner-0.2.0.js", f.site_id)),
        "{banner}"
    );
    assert!(
        banner["integrity_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha384-")
    );
    assert_eq!(banner["display_name"], "Cookie Banner (owner:acme)");
    assert!(writes(&sandbox).is_empty());
    assert_eq!(site_code(), before);
    let done = approve(&server, &client, "webflow_set_custom_code", &args, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(site_code()["scripts"], scripts);
    assert_eq!(
        writes(&sandbox),
        [format!("PUT /v2/sites/{}/custom_code", f.site_id)]
    );

    // A page of the site: its own scripts; the site's stay as they are.
    sandbox.clear_requests();
    let page = &f.page_ids[1];
    let args = json!({"page_id": page, "scripts": [{"id": "cookie_banner", "version": "0.2.0", "location": "footer"}]});
    let (step, id) = request(&client, "webflow_set_custom_code", &args).await;
    assert!(
        step["preview"]["applies_to"]
            .as_str()
            .unwrap()
            .starts_with("the page About"),
        "{step}"
    );
    assert_eq!(step["preview"]["current"], json!([]));
    approve(&server, &client, "webflow_set_custom_code", &args, &id).await;
    assert_eq!(
        sandbox.webflow_custom_code(page).unwrap()["scripts"],
        args["scripts"]
    );
    assert_eq!(site_code()["scripts"], scripts);
    assert_eq!(
        writes(&sandbox),
        [format!("PUT /v2/pages/{page}/custom_code")]
    );
}

#[tokio::test]
async fn without_a_webflow_app_token_custom_code_says_how_to_set_one() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start_isolated(&sandbox, "acme").await;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let spec: common::tenant::TenantSpec =
        serde_json::from_value(json!({"name": "Acme", "webflow_sites": [f.site_id]})).unwrap();
    server.admin.set_tenant("acme", &spec).await.unwrap();
    server
        .admin
        .set_secret("acme", "webflow", f.token.clone())
        .await
        .unwrap();
    let issued = server
        .admin
        .issue_token(
            "acme",
            &common::runtime::admin::IssueRequest {
                label: None,
                ttl_days: None,
            },
        )
        .await
        .unwrap();
    let client = server.client(&issued.token).await;
    let args = json!({"scripts": [{"id": "cms_slider", "version": "1.1.0", "location": "header"}]});

    sandbox.clear_requests();
    let text = error_text(&call(&client, "webflow_set_custom_code", args.clone()).await);
    assert!(
        text.contains("no Webflow App token")
            && text.contains("isolated-server secret set acme webflow-app"),
        "{text}"
    );
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains("custom_code"))
    );

    // A site token stored as the App token: Webflow refuses it, and the tool says what to do.
    server
        .admin
        .set_secret("acme", "webflow-app", f.token.clone())
        .await
        .unwrap();
    let text = error_text(&call(&client, "webflow_set_custom_code", args.clone()).await);
    assert!(
        text.contains("refused this instance's Webflow App token")
            && text.contains("custom_code:write"),
        "{text}"
    );
    assert!(server.admin.approvals().await.unwrap().is_empty());

    // Onboarding verifies the kind like the others: a site token is not an App token.
    let onboard = |secret: &str| common::runtime::admin::OnboardRequest {
        id: "acme".into(),
        spec: spec.clone(),
        secrets: [("webflow-app".to_owned(), secret.to_owned())].into(),
        dry_run: true,
        label: None,
    };
    let err = server
        .admin
        .onboard(&onboard(&f.token))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("webflow-app credential not verified"), "{err}");
    let ok = server
        .admin
        .onboard(&onboard(&f.webflow_app_token))
        .await
        .unwrap();
    assert_eq!(ok.verified, ["webflow-app"]);
    // The App token of another client's site cannot read this site's scripts.
    let err = server
        .admin
        .onboard(&onboard(
            &sandbox.fixture().owner("globex").unwrap().webflow_app_token,
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("cannot read site {}", f.site_id)),
        "{err}"
    );
}
