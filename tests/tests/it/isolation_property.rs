//! The isolation property: for random tokens (valid, revoked, forged, garbage; static tokens on
//! `/mcp` and OAuth access tokens of several people per tenant on the connector door, live and revoked)
//! and random calls
//! to every tool and resource of the shared server, writes included, with resource ids drawn
//! from every tenant:
//! - no answer contains data owned by a tenant other than the token's;
//! - every upstream request is made with the caller's own credential, and none names another
//!   tenant's site, page, collection, asset, form, locale or repository;
//! - no other tenant's CMS items, pages or assets change;
//!
//! all with the upstream read cache on (as it runs by default), and the run must have answered
//! from it: a cached answer is held to the same properties.
//!
//! Fixed case count and seed; set `ISOLATION_SEED=<n>` to explore or replay another sequence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tests::connector::Site;
use tests::harness::TestServer;
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};

const OWNERS: [&str; 3] = ["acme", "globex", "initech"];
/// People per tenant, each with their own OAuth connection.
const PEOPLE: usize = 2;

const TOOLS: [&str; 27] = [
    "whoami",
    "webflow_list_sites",
    "webflow_get_site",
    "webflow_list_pages",
    "webflow_get_page_content",
    "webflow_list_collections",
    "webflow_get_collection",
    "webflow_list_items",
    "webflow_get_item",
    "webflow_create_item",
    "webflow_create_items",
    "webflow_update_item",
    "webflow_update_page_settings",
    "webflow_list_assets",
    "webflow_update_asset",
    "webflow_list_forms",
    "webflow_list_form_submissions",
    "webflow_list_comments",
    "analytics_query",
    "github_get_repo",
    "github_list_commits",
    "github_list_workflow_runs",
    "github_list_deployments",
    "site_status",
    "content_audit",
    "resources/read",
    "resources/list",
];

#[derive(Clone, Debug)]
enum Who {
    Tenant(usize),
    /// Tenant `.0`'s person `.1`, through an OAuth connection on the connector door.
    Person(usize, usize),
    /// An OAuth access token whose grant the studio revoked.
    RevokedGrant,
    Revoked,
    Forged,
    Garbage,
}

#[derive(Clone, Debug)]
struct Case {
    who: Who,
    tool: &'static str,
    /// Indexes into pools of every owner's ids (plus junk); `None` leaves the argument out.
    site: Option<usize>,
    page: usize,
    collection: usize,
    asset: usize,
    form: usize,
    item: usize,
    repo: Option<usize>,
    offset: Option<u32>,
    /// Into the pool of every owner's site and CMS locale ids; `None` leaves it out.
    locale: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    let who = prop_oneof![
        4 => (0..OWNERS.len()).prop_map(Who::Tenant),
        4 => (0..OWNERS.len(), 0..PEOPLE).prop_map(|(t, p)| Who::Person(t, p)),
        1 => Just(Who::RevokedGrant),
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
        0usize..64,
        0usize..64,
        proptest::option::of(0usize..64),
        proptest::option::of(0u32..8),
        proptest::option::of(0usize..64),
    )
        .prop_map(
            |(who, tool, site, page, collection, asset, form, item, repo, offset, locale)| Case {
                who,
                tool,
                site,
                page,
                collection,
                asset,
                form,
                item,
                repo,
                offset,
                locale,
            },
        )
}

fn pick(pool: &[String], i: usize) -> &str {
    &pool[i % pool.len()]
}

struct Pools {
    sites: Vec<String>,
    pages: Vec<String>,
    collections: Vec<String>,
    assets: Vec<String>,
    forms: Vec<String>,
    threads: Vec<String>,
    items: Vec<String>,
    repos: Vec<String>,
    /// Site and CMS locale ids of every owner, mixed: a page tool may be given a CMS locale id.
    locales: Vec<String>,
}

fn request(c: &Case, p: &Pools) -> Value {
    let mut args = json!({
        "page_id": pick(&p.pages, c.page),
        "collection_id": pick(&p.collections, c.collection),
        "item_id": pick(&p.items, c.item),
        "field_data": {"name": format!("prop {}", c.item), "slug": format!("prop-{}", c.item)},
        "title": format!("Prop page {}", c.item),
        "asset_id": pick(&p.assets, c.asset),
        "alt_text": format!("Prop image {}", c.asset),
        "form_id": pick(&p.forms, c.form),
        "comment_thread_id": pick(&p.threads, c.item),
        "items": [{"field_data": {"name": format!("prop {}", c.item), "slug": format!("prop-{}", c.item)}},
                  {"field_data": {"name": format!("prop {} b", c.item), "slug": format!("prop-{}-b", c.item)}}],
        "metrics": ["visitors"],
        "date_range": "7d",
        "dimensions": ["event:page"],
    });
    if let Some(s) = c.site {
        args["site_id"] = json!(pick(&p.sites, s));
    }
    if let Some(r) = c.repo {
        args["repo"] = json!(pick(&p.repos, r));
    }
    if let Some(o) = c.offset {
        args["offset"] = json!(o);
    }
    if let Some(l) = c.locale {
        args["locale_id"] = json!(pick(&p.locales, l));
        args["cms_locale_id"] = json!(pick(&p.locales, l / 2));
    }
    // Arguments a tool does not take are refused by it; keep only the ones it takes.
    let takes: &[&str] = match c.tool {
        "webflow_get_site" | "webflow_list_collections" | "site_status" => &["site_id"],
        "webflow_list_pages" => &["site_id", "offset", "locale_id"],
        "webflow_get_page_content" => &["page_id", "offset", "locale_id"],
        "webflow_get_collection" => &["collection_id"],
        "webflow_list_items" => &["collection_id", "offset", "cms_locale_id"],
        "webflow_get_item" => &["collection_id", "item_id", "cms_locale_id"],
        "webflow_create_item" => &["collection_id", "field_data"],
        "webflow_create_items" => &["collection_id", "items"],
        "webflow_update_item" => &["collection_id", "item_id", "field_data"],
        "webflow_update_page_settings" => &["page_id", "title", "locale_id"],
        "webflow_list_assets" => &["site_id", "offset"],
        "webflow_update_asset" => &["asset_id", "alt_text"],
        "webflow_list_forms" => &["site_id", "offset"],
        "webflow_list_form_submissions" => &["form_id", "offset"],
        // Threads of every tenant, asked for under the caller's own site (or the one drawn).
        "webflow_list_comments" if c.item.is_multiple_of(2) => {
            &["site_id", "comment_thread_id", "offset"]
        }
        "webflow_list_comments" => &["site_id", "offset"],
        "analytics_query" => &["metrics", "date_range", "dimensions", "site_id"],
        "github_get_repo"
        | "github_list_commits"
        | "github_list_workflow_runs"
        | "github_list_deployments" => &["repo"],
        "content_audit" => &["site_id", "collection_id"],
        _ => &[],
    };
    args.as_object_mut()
        .unwrap()
        .retain(|k, _| takes.contains(&k.as_str()));
    let (method, params) = match c.tool {
        "resources/read" => {
            let uri = if c.page.is_multiple_of(2) {
                format!(
                    "webflow://sites/{}",
                    pick(&p.sites, c.site.unwrap_or(c.page))
                )
            } else {
                format!(
                    "webflow://collections/{}",
                    pick(&p.collections, c.collection)
                )
            };
            ("resources/read", json!({"uri": uri}))
        }
        "resources/list" => ("resources/list", json!({})),
        tool => ("tools/call", json!({"name": tool, "arguments": args})),
    };
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

/// An owner's CMS items, pages (in every locale) and assets as stored now.
fn snapshot(sandbox: &Sandbox, owner: &OwnerFixture) -> Vec<Option<Value>> {
    owner
        .item_ids
        .iter()
        .map(|(c, i)| sandbox.webflow_item(c, i))
        .chain(owner.page_ids.iter().flat_map(|p| {
            owner
                .locale_ids
                .iter()
                .map(|l| sandbox.webflow_page_in(p, Some(l)))
        }))
        .chain(owner.asset_ids.iter().map(|a| sandbox.webflow_asset(a)))
        .collect()
}

#[test]
fn no_call_ever_sees_or_touches_another_tenants_data() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, site, tenants, people, revoked_grant, revoked, forged) =
        runtime.block_on(async {
            let sandbox = Sandbox::start(Fixture::new(&OWNERS)).await.unwrap();
            let site = Site::new(TestServer::start_on_localhost(&sandbox).await);
            let server = &site.server;
            let mut tenants = Vec::new();
            for owner in OWNERS {
                let f = sandbox.fixture().owner(owner).unwrap();
                let extra = json!({"writable_collections": [f.collection_ids[0]],
                    "toolsets": ["webflow", "cms-write", "page-write", "asset-write", "forms", "analytics", "github"]});
                tenants.push(server.provision_with(f, extra).await);
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
            let acme = common::domain::TenantId::parse("acme").unwrap();
            let forged = other
                .issue(&store, &acme, "", 3600, common::now_unix())
                .unwrap();
            // Several people per tenant, each connected through OAuth; one more whose connection
            // the studio then revokes.
            let mut people = Vec::new();
            for owner in OWNERS {
                let mut theirs = Vec::new();
                for n in 0..PEOPLE {
                    let person = site.person(owner, &format!("{owner} person {n}")).await;
                    theirs.push(site.connect(&person).await.access);
                }
                people.push(theirs);
            }
            let leaver = site.person("initech", "initech leaver").await;
            let revoked_grant = site.connect(&leaver).await.access;
            let grants = site.grants().await;
            let grant = grants.iter().find(|g| g.person == leaver.id).unwrap();
            server.admin.revoke_grant(&grant.id).await.unwrap();
            (
                sandbox,
                site,
                tenants,
                people,
                revoked_grant,
                extra.token,
                forged.token.expose_secret().to_owned(),
            )
        });
    let server = &site.server;

    let f = sandbox.fixture().clone();
    let junk = "0123456789abcdef01234567".to_owned();
    let pools = Pools {
        sites: f
            .owners
            .iter()
            .map(|o| o.site_id.clone())
            .chain([junk.clone()])
            .collect(),
        pages: f
            .owners
            .iter()
            .flat_map(|o| o.page_ids.clone())
            .chain(["nope".into()])
            .collect(),
        collections: f
            .owners
            .iter()
            .flat_map(|o| o.collection_ids.clone())
            .chain([junk.clone()])
            .collect(),
        assets: f
            .owners
            .iter()
            .flat_map(|o| o.asset_ids.clone())
            .chain([junk.clone()])
            .collect(),
        forms: f
            .owners
            .iter()
            .flat_map(|o| o.form_ids.clone())
            .chain([junk.clone()])
            .collect(),
        threads: f
            .owners
            .iter()
            .flat_map(|o| o.comment_thread_ids.clone())
            .chain([junk])
            .collect(),
        items: f
            .owners
            .iter()
            .flat_map(|o| o.item_ids.iter().map(|(_, i)| i.clone()))
            .collect(),
        repos: f
            .owners
            .iter()
            .flat_map(|o| o.github_repos.clone())
            .chain(["someone/else".into()])
            .collect(),
        locales: f
            .owners
            .iter()
            .flat_map(|o| o.locale_ids.iter().chain(&o.cms_locale_ids).cloned())
            .chain(["0123456789abcdef01234567".into()])
            .collect(),
    };
    let before: Vec<_> = f.owners.iter().map(|o| snapshot(&sandbox, o)).collect();

    let seed = std::env::var("ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x15_01a7e);
    let config = Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let writes_by = std::cell::RefCell::new(vec![0usize; OWNERS.len()]);
    let cached_answers = std::cell::Cell::new(0usize);
    let outcome = runner.run(&case(), |c| {
        let (connector, statik) = (&server.connector_url, &server.mcp_url);
        let (url, token) = match &c.who {
            Who::Tenant(i) => (statik, tenants[*i].token.clone()),
            Who::Person(i, n) => (connector, people[*i][*n].clone()),
            Who::RevokedGrant => (connector, revoked_grant.clone()),
            Who::Revoked => (statik, revoked.clone()),
            Who::Forged => (statik, forged.clone()),
            Who::Garbage => (statik, "Zm9vYmFy.YmF6.cXV4".to_owned()),
        };
        let body = request(&c, &pools).to_string();
        sandbox.clear_requests();
        let (status, text) = runtime.block_on(server.post_raw_at(url, Some(&token), &body));
        let (Who::Tenant(i) | Who::Person(i, _)) = &c.who else {
            prop_assert_eq!(status, 401, "{}", text);
            prop_assert!(sandbox.requests().is_empty());
            return Ok(());
        };
        prop_assert_eq!(status, 200, "{}", text);
        let me = OWNERS[*i];
        let parsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert!(parsed.get("result").is_some() || parsed.get("error").is_some());
        if parsed
            .pointer("/result/structuredContent/cached_for_secs")
            .is_some()
        {
            cached_answers.set(cached_answers.get() + 1);
        }
        for (other, theirs) in f
            .owners
            .iter()
            .map(|o| (o.owner.as_str(), o))
            .filter(|(o, _)| *o != me)
        {
            prop_assert!(
                !text.contains(&format!("owner:{other})")),
                "{} saw {}'s data: {}",
                me,
                other,
                text
            );
            // An id the caller sent may be echoed in a refusal; any other is a leak.
            let foreign_ids = [&theirs.site_id]
                .into_iter()
                .chain(&theirs.collection_ids)
                .chain(&theirs.page_ids)
                .chain(&theirs.asset_ids)
                .chain(&theirs.form_ids)
                .chain(&theirs.locale_ids)
                .chain(&theirs.cms_locale_ids);
            for id in foreign_ids {
                prop_assert!(
                    body.contains(id.as_str()) || !text.contains(id.as_str()),
                    "foreign id {} in answer",
                    id
                );
            }
            for request in sandbox.requests() {
                let named = [&theirs.site_id]
                    .into_iter()
                    .chain(&theirs.collection_ids)
                    .chain(&theirs.page_ids)
                    .chain(&theirs.asset_ids)
                    .chain(&theirs.form_ids)
                    .chain(&theirs.locale_ids)
                    .chain(&theirs.cms_locale_ids);
                for id in named {
                    prop_assert!(
                        !request.path.contains(id.as_str()),
                        "upstream saw {}'s id: {:?}",
                        other,
                        request
                    );
                }
                for repo in &theirs.github_repos {
                    prop_assert!(
                        !request.path.contains(repo.as_str()),
                        "upstream saw {}'s repo: {:?}",
                        other,
                        request
                    );
                }
            }
        }
        for request in sandbox.requests() {
            prop_assert_eq!(
                request.token_owner.as_deref(),
                Some(me),
                "wrong credential upstream: {:?}",
                request
            );
            if request.method != "GET" && request.path.starts_with("/v2/") {
                writes_by.borrow_mut()[*i] += 1;
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("isolation violated (replay with ISOLATION_SEED={seed}): {e}");
    }
    assert!(
        cached_answers.get() > 0,
        "no answer came from the upstream read cache"
    );
    // Writes did happen, and only into each writer's own collection; nobody else's items moved
    // except through their own tenant's calls.
    let writes_by = writes_by.into_inner();
    assert!(
        writes_by.iter().sum::<usize>() > 0,
        "no write was exercised"
    );
    for (o, owner) in f.owners.iter().enumerate() {
        if writes_by[o] == 0 {
            assert_eq!(
                snapshot(&sandbox, owner),
                before[o],
                "{}'s items, pages or assets changed without a call of theirs",
                owner.owner
            );
        }
    }
}
