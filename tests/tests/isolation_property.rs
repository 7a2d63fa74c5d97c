//! The isolation property: for random tokens (valid, revoked, forged, garbage) and random tool
//! calls whose resource ids are drawn from every tenant, no answer ever contains data owned by a
//! tenant other than the token's, and no upstream request made for a tenant carries another
//! tenant's credential. Fixed case count and seed; set `ISOLATION_SEED=<n>` to replay another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tests::harness::TestServer;
use tests::sandbox::{Fixture, Sandbox};

const OWNERS: [&str; 3] = ["acme", "globex", "initech"];

#[derive(Clone, Debug)]
enum Who {
    Tenant(usize),
    Revoked,
    Forged,
    Garbage,
}

#[derive(Clone, Debug)]
struct Case {
    who: Who,
    tool: &'static str,
    /// Indexes into the pool of every owner's ids (and a few junk values).
    site: Option<usize>,
    page: usize,
    collection: usize,
    item: usize,
    offset: Option<u32>,
}

const TOOLS: [&str; 9] = [
    "whoami",
    "webflow_list_sites",
    "webflow_get_site",
    "webflow_list_pages",
    "webflow_get_page_content",
    "webflow_list_collections",
    "webflow_get_collection",
    "webflow_list_items",
    "webflow_get_item",
];

fn case() -> impl Strategy<Value = Case> {
    let who = prop_oneof![
        6 => (0..OWNERS.len()).prop_map(Who::Tenant),
        1 => Just(Who::Revoked),
        1 => Just(Who::Forged),
        1 => Just(Who::Garbage),
    ];
    (
        who,
        proptest::sample::select(TOOLS.to_vec()),
        proptest::option::of(0usize..64),
        0usize..64,
        0usize..64,
        0usize..64,
        proptest::option::of(0u32..8),
    )
        .prop_map(|(who, tool, site, page, collection, item, offset)| Case {
            who,
            tool,
            site,
            page,
            collection,
            item,
            offset,
        })
}

fn pick(pool: &[String], i: usize) -> &str {
    &pool[i % pool.len()]
}

#[test]
fn no_call_ever_sees_another_tenants_data() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, server, tenants, revoked, forged) = runtime.block_on(async {
        let sandbox = Sandbox::start(Fixture::new(&OWNERS)).await.unwrap();
        let server = TestServer::start(&sandbox).await;
        let mut tenants = Vec::new();
        for owner in OWNERS {
            tenants.push(
                server
                    .provision(sandbox.fixture().owner(owner).unwrap())
                    .await,
            );
        }
        let extra = server
            .admin
            .issue_token("initech", &Default::default())
            .await
            .unwrap();
        server.admin.revoke(&extra.record.id).await.unwrap();
        let other = common::token::TokenAuthority::from_key(
            b"not-this-servers-key-0123456789a",
            &server.public_url,
        );
        let tmp = tempfile::tempdir().unwrap();
        let store = common::store::Store::open(tmp.path()).unwrap();
        let forged = other
            .issue(
                &store,
                &common::domain::TenantId::parse("acme").unwrap(),
                "",
                3600,
                common::now_unix(),
            )
            .unwrap();
        (
            sandbox,
            server,
            tenants,
            extra.token,
            forged.token.expose_secret().to_owned(),
        )
    });

    // Every id of every owner, plus junk: the pool arguments are drawn from.
    let f = sandbox.fixture();
    let sites: Vec<String> = f
        .owners
        .iter()
        .map(|o| o.site_id.clone())
        .chain(["0123456789abcdef01234567".into()])
        .collect();
    let pages: Vec<String> = f
        .owners
        .iter()
        .flat_map(|o| o.page_ids.clone())
        .chain(["nope".into()])
        .collect();
    let collections: Vec<String> = f
        .owners
        .iter()
        .flat_map(|o| o.collection_ids.clone())
        .collect();
    let items: Vec<String> = f
        .owners
        .iter()
        .flat_map(|o| o.item_ids.iter().map(|(_, i)| i.clone()))
        .collect();

    let seed = std::env::var("ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x15_01a7e);
    let config = Config {
        cases: 120,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&case(), |c| {
        let token = match &c.who {
            Who::Tenant(i) => tenants[*i].token.clone(),
            Who::Revoked => revoked.clone(),
            Who::Forged => forged.clone(),
            Who::Garbage => "Zm9vYmFy.YmF6.cXV4".to_owned(),
        };
        let mut args = json!({
            "page_id": pick(&pages, c.page),
            "collection_id": pick(&collections, c.collection),
            "item_id": pick(&items, c.item),
        });
        if let Some(s) = c.site {
            args["site_id"] = json!(pick(&sites, s));
        }
        if let Some(o) = c.offset {
            args["offset"] = json!(o);
        }
        // Arguments a tool does not take are refused by it; keep only the ones it takes.
        let takes: &[&str] = match c.tool {
            "webflow_get_site" | "webflow_list_collections" => &["site_id"],
            "webflow_list_pages" => &["site_id", "offset"],
            "webflow_get_page_content" => &["page_id", "offset"],
            "webflow_get_collection" => &["collection_id"],
            "webflow_list_items" => &["collection_id", "offset"],
            "webflow_get_item" => &["collection_id", "item_id"],
            _ => &[],
        };
        args.as_object_mut()
            .unwrap()
            .retain(|k, _| takes.contains(&k.as_str()));
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": c.tool, "arguments": args}})
        .to_string();

        sandbox.clear_requests();
        let (status, text) = runtime.block_on(server.post_raw(Some(&token), &body));
        match &c.who {
            Who::Tenant(i) => {
                prop_assert_eq!(status, 200, "{}", text);
                let me = OWNERS[*i];
                let parsed: Value = serde_json::from_str(&text).unwrap();
                prop_assert!(parsed.get("result").is_some() || parsed.get("error").is_some());
                for other in OWNERS.iter().filter(|o| **o != me) {
                    prop_assert!(
                        !text.contains(&format!("owner:{other})")),
                        "{} leaked {}'s data: {}",
                        me,
                        other,
                        text
                    );
                    let theirs = f.owner(other).unwrap();
                    // An id the caller sent may be echoed in a refusal; any other is a leak.
                    if !body.contains(&theirs.site_id) {
                        prop_assert!(!text.contains(&theirs.site_id), "foreign site id in answer");
                    }
                }
                for request in sandbox.requests() {
                    prop_assert_eq!(
                        request.token_owner.as_deref(),
                        Some(me),
                        "wrong credential upstream: {:?}",
                        request
                    );
                }
            }
            _ => {
                prop_assert_eq!(status, 401, "{}", text);
                prop_assert!(sandbox.requests().is_empty());
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("isolation violated (replay with ISOLATION_SEED={seed}): {e}");
    }
}
