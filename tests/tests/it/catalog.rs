//! The rest of the shared catalog end to end: analytics, GitHub, site status, content audit,
//! resources, and the policy that decides which tools a tenant sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tests::harness::{TestServer, call, error_text, ok_json, try_call};
use tests::sandbox::{Fixture, Sandbox};

async fn setup() -> (Sandbox, TestServer) {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    (sandbox, server)
}

async fn tool_names(server: &TestServer, token: &str) -> Vec<String> {
    let client = server.client(token).await;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn tools_list_follows_toolsets_bindings_and_read_only() {
    let (sandbox, server) = setup().await;
    let acme_f = sandbox.fixture().owner("acme").unwrap();
    let full = server
        .provision_with(
            acme_f,
            json!({"writable_collections": [acme_f.collection_ids[0]]}),
        )
        .await;
    let globex_f = sandbox.fixture().owner("globex").unwrap();
    let read_only = server
        .provision_with(
            globex_f,
            json!({"read_only": true, "writable_collections": [globex_f.collection_ids[0]]}),
        )
        .await;

    let all = tool_names(&server, &full.token).await;
    println!("full tenant sees: {all:?}");
    assert_eq!(all.len(), 21, "{all:?}");
    let ro = tool_names(&server, &read_only.token).await;
    println!("read-only tenant sees: {ro:?}");
    assert_eq!(ro.len(), 18);
    assert!(
        !ro.iter()
            .any(|n| n.ends_with("_item") && (n.contains("create") || n.contains("update")))
    );

    // Only the webflow toolset, no analytics site, no repositories.
    let patch: common::tenant::TenantPatch = serde_json::from_value(json!({
        "toolsets": ["webflow"], "clear_plausible_site": true, "github_repos": []
    }))
    .unwrap();
    server.admin.update_tenant("acme", &patch).await.unwrap();
    let narrow = tool_names(&server, &full.token).await;
    assert!(
        !narrow
            .iter()
            .any(|n| n.starts_with("analytics") || n.starts_with("github") || n.contains("create")),
        "{narrow:?}"
    );
    assert!(narrow.contains(&"content_audit".to_owned()) && narrow.contains(&"whoami".to_owned()));
    let client = server.client(&full.token).await;
    for tool in ["analytics_query", "github_get_repo", "webflow_create_item"] {
        let refused = try_call(&client, tool, json!({})).await;
        assert!(
            format!("{:?}", refused.unwrap_err()).contains("unknown tool"),
            "{tool}"
        );
    }
}

#[tokio::test]
async fn analytics_always_queries_the_tenants_own_site() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    let result = ok_json(
        &call(
            &client,
            "analytics_query",
            json!({"metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["event:page"],
                   "order_by": [["visitors", "desc"]], "limit": 5, "site_id": "globex.example"}),
        )
        .await,
    );
    assert_eq!(result["site_id"], "acme.example");
    assert_eq!(result["query"]["site_id"], "acme.example");
    assert!(result["note"].as_str().unwrap().contains("ignored"));
    let text = result.to_string();
    assert!(text.contains("owner:acme)") && !text.contains("owner:globex)"));
    assert!(result["results"].as_array().unwrap().len() <= 5);

    sandbox.clear_requests();
    for (args, needle) in [
        (
            json!({"metrics": ["visitorz"], "date_range": "7d"}),
            "visitorz",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "8d"}),
            "date_range",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:planet"]}),
            "visit:planet",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "7d", "filters": [["near", "event:page", ["/"]]]}),
            "near",
        ),
        (
            json!({"metrics": "visitors", "date_range": "7d"}),
            "metrics",
        ),
    ] {
        let text = error_text(&call(&client, "analytics_query", args.clone()).await);
        assert!(text.contains(needle), "{args}: {text}");
    }
    assert!(
        sandbox.requests().is_empty(),
        "invalid queries reached Plausible"
    );
    // An upstream refusal still reads well (Plausible's own validation).
    let text = error_text(
        &call(
            &client,
            "analytics_query",
            json!({"metrics": ["conversion_rate"], "date_range": "7d"}),
        )
        .await,
    );
    assert!(
        text.contains("Plausible rejected the request (HTTP 400)"),
        "{text}"
    );
}

#[tokio::test]
async fn github_reads_only_the_tenants_repositories() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;
    let repo = &acme.fixture.github_repos[0];

    let got = ok_json(&call(&client, "github_get_repo", json!({"repo": repo})).await);
    assert_eq!(
        got["full_name"].as_str().unwrap().to_lowercase(),
        repo.to_lowercase()
    );
    let commits = ok_json(
        &call(
            &client,
            "github_list_commits",
            json!({"repo": repo, "per_page": 5, "page": 2}),
        )
        .await,
    );
    assert_eq!(commits["commits"].as_array().unwrap().len(), 5);
    let runs = ok_json(
        &call(
            &client,
            "github_list_workflow_runs",
            json!({"repo": repo, "status": "success"}),
        )
        .await,
    );
    assert!(!runs["workflow_runs"].as_array().unwrap().is_empty());
    let deployments = ok_json(
        &call(
            &client,
            "github_list_deployments",
            json!({"repo": repo, "environment": "production"}),
        )
        .await,
    );
    assert!(!deployments["deployments"].as_array().unwrap().is_empty());
    let text = format!("{got}{commits}{runs}{deployments}");
    assert!(!text.contains("owner:globex)"));
    assert!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/repos/"))
            .all(|r| r
                .headers
                .iter()
                .any(|(k, v)| k == "x-github-api-version" && v == "2022-11-28"))
    );

    sandbox.clear_requests();
    for (tool, args, needle) in [
        (
            "github_get_repo",
            json!({"repo": globex.github_repos[0]}),
            "not one of this tenant's",
        ),
        ("github_get_repo", json!({}), "repo is required"),
        (
            "github_list_commits",
            json!({"repo": "acme-web/../x"}),
            "owner/name",
        ),
        (
            "github_list_commits",
            json!({"repo": repo, "per_page": 500}),
            "per_page",
        ),
        (
            "github_list_workflow_runs",
            json!({"repo": repo, "status": "exploded"}),
            "status",
        ),
    ] {
        let text = error_text(&call(&client, tool, args.clone()).await);
        assert!(text.contains(needle), "{tool} {args}: {text}");
    }
    assert!(sandbox.requests().is_empty());
}

#[tokio::test]
async fn site_status_and_content_audit_summarise_the_site() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;

    let status = ok_json(&call(&client, "site_status", json!({})).await);
    assert_eq!(status["site_id"], acme.fixture.site_id);
    assert_eq!(status["custom_domains"].as_array().unwrap().len(), 2);
    assert!(status["github"]["latest_run"]["id"].is_number(), "{status}");
    assert!(status["summary"].as_str().unwrap().contains("published"));

    let audit = ok_json(&call(&client, "content_audit", json!({"stale_draft_days": 30})).await);
    let counts = &audit["counts"];
    assert_eq!(counts["pages"], 3);
    assert_eq!(counts["collections"], 2);
    assert_eq!(counts["items"], 7);
    assert_eq!(counts["pages_missing_meta_description"], 1);
    assert_eq!(
        audit["pages_missing_meta_description"][0]["page_id"],
        acme.fixture.page_ids[2]
    );
    assert!(counts["stale_drafts"].as_u64().unwrap() >= 1);
    assert!(counts["items_missing_seo_fields"].as_u64().unwrap() >= 1);
    assert!(
        audit["summary"]
            .as_str()
            .unwrap()
            .contains("lack a meta description")
    );
    assert!(!audit.to_string().contains("owner:globex)"));
    let text = error_text(&call(&client, "content_audit", json!({"stale_draft_days": 0})).await);
    assert!(text.contains("stale_draft_days"));
}

#[tokio::test]
async fn resources_are_scoped_like_tools() {
    let (sandbox, server) = setup().await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let client = server.client(&acme.token).await;

    let resources = client.list_all_resources().await.unwrap();
    let uris: Vec<_> = resources.iter().map(|r| r.uri.clone()).collect();
    assert_eq!(uris.len(), 3, "{uris:?}");
    assert!(uris.contains(&format!("webflow://sites/{}", acme.fixture.site_id)));
    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates.len(), 2);

    let read = |uri: String| {
        let client = &client;
        async move {
            client
                .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                .await
        }
    };
    let site = read(format!("webflow://sites/{}", acme.fixture.site_id))
        .await
        .unwrap();
    let text = serde_json::to_string(&site).unwrap();
    assert!(text.contains("owner:acme)"));
    let collection = read(format!(
        "webflow://collections/{}",
        acme.fixture.collection_ids[0]
    ))
    .await
    .unwrap();
    assert!(
        serde_json::to_string(&collection)
            .unwrap()
            .contains("fields")
    );

    sandbox.clear_requests();
    for uri in [
        format!("webflow://sites/{}", globex.site_id),
        format!("webflow://collections/{}", globex.collection_ids[0]),
        "file:///etc/passwd".to_owned(),
    ] {
        let err = read(uri.clone()).await.unwrap_err();
        let text = format!("{err:?}");
        assert!(!text.contains("owner:globex"), "{text}");
        assert!(
            text.contains("not one of this tenant's") || text.contains("unknown resource"),
            "{uri}: {text}"
        );
    }
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| !r.path.contains(&globex.site_id))
    );
}

/// Every tool of both catalogs states all four hints, by one rule: reads are read-only and
/// idempotent; a write that only adds a draft is not destructive (ChatGPT then does not ask a
/// person on every call); one that overwrites a value that exists — staged or not — is
/// destructive, as the spec means it, and idempotent; every high-risk action is destructive.
#[test]
fn every_tool_states_its_annotations_by_one_rule() {
    use common::tenant::Tier;
    let catalogs = [
        (shared_server::SHARED.catalog)(),
        (isolated_server::ISOLATED.catalog)(),
    ];
    for entry in catalogs.iter().flat_map(|c| c.entries()) {
        let name = entry.name();
        let a = entry
            .definition
            .annotations
            .clone()
            .unwrap_or_else(|| panic!("{name}: no annotations"));
        let hints = (
            a.read_only_hint,
            a.destructive_hint,
            a.idempotent_hint,
            a.open_world_hint,
        );
        assert!(
            hints.0.is_some() && hints.1.is_some() && hints.2.is_some() && hints.3.is_some(),
            "{name}: every hint explicit, got {hints:?}"
        );
        let (read_only, destructive, idempotent) =
            (hints.0.unwrap(), hints.1.unwrap(), hints.2.unwrap());
        match entry.tier {
            Tier::Read => assert!(read_only && !destructive && idempotent, "{name}"),
            Tier::HighRisk => assert!(!read_only && destructive, "{name}"),
            Tier::ScopedWrite => assert!(!read_only, "{name}"),
        }
    }
    let shared = &catalogs[0];
    let hints = |name: &str| {
        let a = shared
            .get(name)
            .unwrap()
            .definition
            .annotations
            .clone()
            .unwrap();
        (a.destructive_hint, a.idempotent_hint)
    };
    // A new draft adds; an update replaces the staged values that were there.
    assert_eq!(hints("webflow_create_item"), (Some(false), Some(false)));
    assert_eq!(hints("webflow_update_item"), (Some(true), Some(true)));
}
