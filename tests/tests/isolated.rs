//! The isolated per-client server through a real MCP client: one tenant per instance, other
//! servers' tokens refused, and every high-risk action previewed, confirmed with a fresh,
//! single-use code bound to its exact arguments, kept inside the tenant's zone, names, domains
//! and customer — and refused without any upstream write otherwise.

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

/// The preview step: returns the confirmation code.
async fn preview(client: &McpClient, tool: &str, args: &Value) -> (Value, String) {
    let step = ok_json(&call(client, tool, args.clone()).await);
    assert_eq!(step["status"], "confirmation_required", "{step}");
    let code = step["confirmation_code"].as_str().unwrap().to_owned();
    (step, code)
}

fn with_code(args: &Value, code: &str) -> Value {
    let mut args = args.clone();
    args["confirmation_code"] = json!(code);
    args
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
    let shared_acme = shared
        .provision(sandbox.fixture().owner("acme").unwrap())
        .await;

    let client = acme_instance.client(&acme.token).await;
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    assert_eq!(who["dns_zone"], acme.fixture.zone_id);
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    println!("isolated instance tools: {names:?}");
    assert_eq!(names.len(), 9);
    for t in &tools {
        let a = t.annotations.clone().unwrap();
        let high_risk = [
            "webflow_publish_site",
            "webflow_publish_items",
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
async fn dns_changes_need_a_fresh_matching_code_and_stay_inside_the_allowed_names() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let listed = ok_json(&call(&client, "dns_list_records", json!({})).await);
    assert_eq!(listed["records"].as_array().unwrap().len(), 5);
    assert!(!listed.to_string().contains("owner:globex)"));

    sandbox.clear_requests();
    let args = json!({"record": {"type": "CNAME", "name": format!("blog.shop.{}", f.zone_name), "content": format!("{}", f.zone_name)}});
    let (step, code) = preview(&client, "dns_create_record", &args).await;
    assert_eq!(
        step["preview"]["after"]["name"],
        format!("blog.shop.{}", f.zone_name)
    );
    assert!(
        writes(&sandbox).is_empty(),
        "a preview wrote: {:?}",
        writes(&sandbox)
    );

    // Same code, other arguments: refused, and the code is void afterwards.
    let mut other = args.clone();
    other["record"]["content"] = json!(format!("www.{}", f.zone_name));
    let text = error_text(&call(&client, "dns_create_record", with_code(&other, &code)).await);
    assert!(
        text.contains("different action or different arguments"),
        "{text}"
    );
    let text = error_text(&call(&client, "dns_create_record", with_code(&args, &code)).await);
    assert!(text.contains("not valid here"), "{text}");
    assert!(writes(&sandbox).is_empty());

    // A fresh preview, then the confirmation acts once.
    let (_, code) = preview(&client, "dns_create_record", &args).await;
    let done = ok_json(&call(&client, "dns_create_record", with_code(&args, &code)).await);
    assert_eq!(done["status"], "done");
    let id = done["result"]["id"].as_str().unwrap().to_owned();
    assert!(sandbox.dns_record(&f.zone_id, &id).is_some());
    assert_eq!(writes(&sandbox).len(), 1);
    // Replayed: refused, nothing more written.
    let text = error_text(&call(&client, "dns_create_record", with_code(&args, &code)).await);
    assert!(text.contains("not valid here"), "{text}");
    assert_eq!(writes(&sandbox).len(), 1);

    // Update and delete of an allowed record show before and after.
    let shop = &f.dns_record_ids[2];
    let upd = json!({"record_id": shop, "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.7"}});
    let (step, code) = preview(&client, "dns_update_record", &upd).await;
    assert_eq!(step["preview"]["before"]["content"], "203.0.113.20");
    assert_eq!(step["preview"]["after"]["content"], "198.51.100.7");
    ok_json(&call(&client, "dns_update_record", with_code(&upd, &code)).await);
    assert_eq!(
        sandbox.dns_record(&f.zone_id, shop).unwrap()["content"],
        "198.51.100.7"
    );
    let del = json!({"record_id": id});
    let (_, code) = preview(&client, "dns_delete_record", &del).await;
    ok_json(&call(&client, "dns_delete_record", with_code(&del, &code)).await);
    assert!(sandbox.dns_record(&f.zone_id, &id).is_none());

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
async fn codes_expire_and_do_not_travel_between_instances() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(tmp.path(), &sandbox.base_url());
    config.tenant = Some("acme".into());
    config.confirm_ttl_secs = 1;
    let server = TestServer::start_spec(config, &isolated_server::ISOLATED).await;
    let acme = server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = server.client(&acme.token).await;
    let args = json!({"record": {"type": "TXT", "name": format!("www.{}", acme.fixture.zone_name), "content": "hello"}});
    let (_, code) = preview(&client, "dns_create_record", &args).await;
    // Expiry is the point of this test: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let text = error_text(&call(&client, "dns_create_record", with_code(&args, &code)).await);
    assert!(text.contains("expired"), "{text}");

    // A code issued by another acme instance means nothing here.
    let other = TestServer::start_isolated(&sandbox, "acme").await;
    let other_acme = other
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let other_client = other.client(&other_acme.token).await;
    let (_, foreign_code) = preview(&other_client, "dns_create_record", &args).await;
    sandbox.clear_requests();
    let text = error_text(
        &call(
            &client,
            "dns_create_record",
            with_code(&args, &foreign_code),
        )
        .await,
    );
    assert!(text.contains("not valid here"), "{text}");
    assert!(writes(&sandbox).is_empty());
}

#[tokio::test]
async fn publishing_is_confirmed_scoped_and_once_a_minute() {
    let (sandbox, server, acme) = setup().await;
    let f = acme.fixture.clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let args =
        json!({"custom_domains": [f.custom_domain_ids[0]], "publish_to_webflow_subdomain": true});
    let (step, code) = preview(&client, "webflow_publish_site", &args).await;
    assert_eq!(step["preview"]["domains"].as_array().unwrap().len(), 1);
    assert_eq!(sandbox.webflow_publishes(&f.site_id), 0);
    let done = ok_json(&call(&client, "webflow_publish_site", with_code(&args, &code)).await);
    assert_eq!(done["status"], "done");
    assert_eq!(sandbox.webflow_publishes(&f.site_id), 1);

    // Again within the minute: the preview says when, the confirmation is refused locally.
    let (step, code) = preview(&client, "webflow_publish_site", &args).await;
    assert!(step["preview"]["next_publish_in_secs"].as_u64().unwrap() > 0);
    sandbox.clear_requests();
    let text = error_text(&call(&client, "webflow_publish_site", with_code(&args, &code)).await);
    assert!(text.contains("retry after"), "{text}");
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
    let (_, code) = preview(&client, "webflow_publish_items", &items).await;
    let done = ok_json(&call(&client, "webflow_publish_items", with_code(&items, &code)).await);
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
    let (step, code) = preview(&client, "billing_create_portal_session", &args).await;
    assert_eq!(step["preview"]["customer"], f.stripe_customer);
    assert_eq!(sandbox.stripe_sessions("acme"), 0);
    let done = ok_json(
        &call(
            &client,
            "billing_create_portal_session",
            with_code(&args, &code),
        )
        .await,
    );
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
    assert!(
        post.headers
            .iter()
            .any(|(k, v)| k == "idempotency-key" && v.starts_with("studio-mcp-"))
    );

    let text = error_text(
        &call(
            &client,
            "billing_create_portal_session",
            with_code(&args, &code),
        )
        .await,
    );
    assert!(text.contains("not valid here"), "{text}");
    assert_eq!(sandbox.stripe_sessions("acme"), 1);
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
