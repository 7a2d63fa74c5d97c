//! The upstream read cache, end to end against the sandbox (its request log is the oracle):
//! one tenant's entry is never another's, answers live their lifetime on the server's clock and
//! say their age, a draft makes its collection's items stale (on every replica), identical
//! reads in flight share one request (errors included, and errors are never kept), a new
//! credential misses, a schema that refuses a draft is read again, and
//! `STUDIO_MCP_UPSTREAM_CACHE=off` sends every read upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};
use tests::harness::{McpClient, TestServer, call, config_for, error_text, eventually, ok_json};
use tests::sandbox::{Failure, Fixture, Sandbox};

/// A result's `cached_for_secs`; fails the test if it has none (it came fresh from upstream).
pub fn age(result: &Value) -> u64 {
    result["cached_for_secs"]
        .as_u64()
        .unwrap_or_else(|| panic!("not from the cache: {result}"))
}

/// GET requests the sandbox served whose path (with its query) starts with `prefix`.
fn gets(sandbox: &Sandbox, prefix: &str) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(prefix))
        .count()
}

/// The `studio_mcp_upstream_cache_lookups_total` count for Webflow and `outcome`.
async fn lookups(server: &TestServer, outcome: &str) -> u64 {
    let wanted = format!(
        "studio_mcp_upstream_cache_lookups_total{{upstream=\"Webflow\",outcome=\"{outcome}\"}} "
    );
    server
        .metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&wanted)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn get_site(client: &McpClient) -> CallToolResult {
    call(client, "webflow_get_site", json!({})).await
}

/// `n` `webflow_get_site` calls at once, each on a task of its own.
fn readers(client: &McpClient, n: u64) -> Vec<tokio::task::JoinHandle<CallToolResult>> {
    (0..n)
        .map(|_| {
            let peer = client.peer().clone();
            tokio::spawn(async move {
                peer.call_tool(CallToolRequestParams::new("webflow_get_site"))
                    .await
                    .expect("tools/call answered")
            })
        })
        .collect()
}

async fn joined(readers: Vec<tokio::task::JoinHandle<CallToolResult>>) -> Vec<CallToolResult> {
    let mut out = Vec::new();
    for reader in readers {
        out.push(reader.await.unwrap());
    }
    out
}

#[tokio::test]
async fn one_tenants_entry_is_never_served_to_another() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    let (acme_client, globex_client) = (
        server.client(&acme.token).await,
        server.client(&globex.token).await,
    );

    // The same upstream path for both: only tenant and credential tell the entries apart.
    let first = ok_json(&call(&acme_client, "webflow_list_sites", json!({})).await);
    assert_eq!(first["sites"][0]["id"], acme.fixture.site_id.as_str());
    assert!(first.get("cached_for_secs").is_none(), "{first}");
    let again = ok_json(&call(&acme_client, "webflow_list_sites", json!({})).await);
    assert!(age(&again) <= 1, "{again}");
    assert_eq!(again["sites"], first["sites"]);

    let theirs = ok_json(&call(&globex_client, "webflow_list_sites", json!({})).await);
    assert!(theirs.get("cached_for_secs").is_none(), "{theirs}");
    assert_eq!(theirs["sites"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["sites"][0]["id"], globex.fixture.site_id.as_str());
    assert!(!theirs.to_string().contains("acme"), "{theirs}");
    let owners: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v2/sites")
        .map(|r| r.token_owner.unwrap())
        .collect();
    assert_eq!(owners, ["acme", "globex"]);
}

#[tokio::test]
async fn an_answer_lives_its_lifetime_and_says_its_age() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let site = format!("/v2/sites/{}", acme.fixture.site_id);

    let fresh = ok_json(&get_site(&client).await);
    assert!(fresh.get("cached_for_secs").is_none(), "{fresh}");
    server.clock.advance(4);
    let kept = ok_json(&get_site(&client).await);
    // Ages are whole seconds of a wall clock the test moves: a second may tick meanwhile.
    assert!((4..=5).contains(&age(&kept)), "{kept}");
    assert_eq!(kept["lastPublished"], fresh["lastPublished"]);
    assert_eq!(gets(&sandbox, &site), 1);

    // A site shows `lastPublished`: it is kept 10 s at most.
    server.clock.advance(6);
    let refetched = ok_json(&get_site(&client).await);
    assert!(refetched.get("cached_for_secs").is_none(), "{refetched}");
    assert_eq!(gets(&sandbox, &site), 2);
}

#[tokio::test]
async fn a_draft_makes_its_collections_items_stale_and_nothing_else() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let (writable, other) = (
        owner.collection_ids[0].clone(),
        owner.collection_ids[1].clone(),
    );
    let item = owner.item_ids[0].1.clone();
    let acme = server
        .provision_with(&owner, json!({"writable_collections": [writable]}))
        .await;
    let client = server.client(&acme.token).await;
    let items = format!("/v2/collections/{writable}/items");
    let list = |collection: &str| {
        call(
            &client,
            "webflow_list_items",
            json!({"collection_id": collection}),
        )
    };

    let before = ok_json(&list(&writable).await);
    ok_json(&list(&other).await);
    ok_json(
        &call(
            &client,
            "webflow_get_item",
            json!({"collection_id": writable, "item_id": item}),
        )
        .await,
    );
    assert!(age(&ok_json(&list(&writable).await)) <= 2);
    assert_eq!(gets(&sandbox, &items), 2, "one listing, one item");

    let created = ok_json(
        &call(
            &client,
            "webflow_create_item",
            json!({"collection_id": writable, "field_data": {"name": "Fresh", "slug": "fresh"}}),
        )
        .await,
    );
    assert!(created.get("cached_for_secs").is_none(), "{created}");
    let after = ok_json(&list(&writable).await);
    assert!(after.get("cached_for_secs").is_none(), "{after}");
    assert_eq!(
        after["pagination"]["total"].as_u64(),
        before["pagination"]["total"].as_u64().map(|n| n + 1)
    );
    assert!(after.to_string().contains(created["id"].as_str().unwrap()));
    // Another collection's listing is not the draft's business.
    assert!(age(&ok_json(&list(&other).await)) <= 2);

    // An update makes the item itself stale.
    ok_json(
        &call(
            &client,
            "webflow_get_item",
            json!({"collection_id": writable, "item_id": item}),
        )
        .await,
    );
    ok_json(
        &call(
            &client,
            "webflow_update_item",
            json!({"collection_id": writable, "item_id": item, "field_data": {"name": "Renamed"}}),
        )
        .await,
    );
    let read = ok_json(
        &call(
            &client,
            "webflow_get_item",
            json!({"collection_id": writable, "item_id": item}),
        )
        .await,
    );
    assert!(read.get("cached_for_secs").is_none(), "{read}");
    assert_eq!(read["fieldData"]["name"], "Renamed");
}

#[tokio::test]
async fn identical_reads_in_flight_share_one_request_and_its_error() {
    const READERS: u64 = 8;
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let site = format!("/v2/sites/{}", acme.fixture.site_id);

    // The first request is held open: no answer exists to be kept while the others arrive.
    let mut hold = sandbox.hold_next();
    let all = readers(&client, READERS);
    hold.arrived().await;
    eventually(
        "every other reader waiting on the held request",
        Duration::from_secs(10),
        || async {
            match lookups(&server, "coalesced").await {
                n if n == READERS - 1 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    hold.release();
    let answers: Vec<Value> = joined(all).await.iter().map(ok_json).collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert!(answers[0].get("cached_for_secs").is_none());
    assert_eq!(gets(&sandbox, &site), 1);

    // An error is shared by everyone waiting, and never kept.
    server.clock.advance(10);
    let mut hold = sandbox.hold_next();
    sandbox.fail_next(Failure::status(503), 1);
    let all = readers(&client, READERS);
    hold.arrived().await;
    eventually(
        "every other reader waiting on the held request",
        Duration::from_secs(10),
        || async {
            match lookups(&server, "coalesced").await {
                n if n == 2 * (READERS - 1) => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    hold.release();
    for answer in joined(all).await {
        assert!(error_text(&answer).contains("503"), "{answer:?}");
    }
    assert_eq!(gets(&sandbox, &site), 2);
    ok_json(&get_site(&client).await);
    assert_eq!(gets(&sandbox, &site), 3, "the error was not kept");
}

#[tokio::test]
async fn a_new_credential_goes_upstream() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let site = format!("/v2/sites/{}", acme.fixture.site_id);
    ok_json(&get_site(&client).await);
    ok_json(&get_site(&client).await);
    assert_eq!(gets(&sandbox, &site), 1);

    server
        .admin
        .set_secret(&acme.id, "webflow", "wf-sandbox-rotated-elsewhere".into())
        .await
        .unwrap();
    let refused = error_text(&get_site(&client).await);
    assert!(refused.contains("401"), "{refused}");
    let last = sandbox.requests().pop().unwrap();
    assert_eq!(
        (last.path.as_str(), last.token_owner),
        (site.as_str(), None)
    );
}

#[tokio::test]
async fn a_draft_refused_against_a_cached_schema_is_checked_against_a_fresh_one() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let writable = owner.collection_ids[0].clone();
    let acme = server
        .provision_with(&owner, json!({"writable_collections": [writable]}))
        .await;
    let client = server.client(&acme.token).await;
    let schema = format!("/v2/collections/{writable}");
    let schema_reads = || {
        sandbox
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == schema)
            .count()
    };
    ok_json(
        &call(
            &client,
            "webflow_get_collection",
            json!({"collection_id": writable}),
        )
        .await,
    );
    assert_eq!(schema_reads(), 1);

    // Someone adds a field in the Designer; the kept schema does not know it yet.
    assert!(sandbox.add_webflow_field(&writable, "subtitle"));
    let draft = json!({"name": "With subtitle", "slug": "with-subtitle", "subtitle": "new"});
    let created = ok_json(
        &call(
            &client,
            "webflow_create_item",
            json!({"collection_id": writable, "field_data": draft}),
        )
        .await,
    );
    assert_eq!(created["fieldData"]["subtitle"], "new");
    assert_eq!(schema_reads(), 2, "read again once, after the refusal");

    // A field that exists nowhere is still refused: the kept schema refuses it, and so does
    // Webflow's own, read once more.
    let bad = json!({"name": "Bad", "slug": "bad", "no-such-field": 1});
    let refused = error_text(
        &call(
            &client,
            "webflow_create_item",
            json!({"collection_id": writable, "field_data": bad}),
        )
        .await,
    );
    assert!(refused.contains("no-such-field"), "{refused}");
    assert_eq!(schema_reads(), 3);
}

#[tokio::test]
async fn switched_off_every_read_goes_upstream_and_none_waits_for_another() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.upstream_cache = false;
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let site = format!("/v2/sites/{}", acme.fixture.site_id);

    for _ in 0..2 {
        let answer = ok_json(&get_site(&client).await);
        assert!(answer.get("cached_for_secs").is_none(), "{answer}");
    }
    assert_eq!(gets(&sandbox, &site), 2);

    // With the first request held, the others still reach the upstream.
    let mut hold = sandbox.hold_next();
    let all = readers(&client, 4);
    hold.arrived().await;
    eventually(
        "the other reads answered",
        Duration::from_secs(10),
        || async {
            match gets(&sandbox, &site) {
                5 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    hold.release();
    for answer in joined(all).await {
        ok_json(&answer);
    }
    assert_eq!(gets(&sandbox, &site), 6);
    assert_eq!(lookups(&server, "hit").await, 0);
}
