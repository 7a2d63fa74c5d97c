//! Studio operations: onboarding a client in one go (verified credentials or nothing stored at
//! all) and the revocation drill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use common::runtime::admin::OnboardRequest;
use serde_json::json;
use tests::harness::{TestServer, call, ok_json};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox, webflow};

fn request(owner: &OwnerFixture, secrets: &[(&str, &str)], dry_run: bool) -> OnboardRequest {
    serde_json::from_value(json!({
        "id": owner.owner,
        "spec": {
            "name": format!("{} Inc", owner.owner),
            "webflow_sites": [owner.site_id],
            "plausible_site": owner.plausible_site,
            "github_repos": [owner.github_repos[0]],
        },
        "secrets": secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "dry_run": dry_run,
    }))
    .unwrap()
}

#[tokio::test]
async fn onboarding_verifies_every_credential_or_stores_nothing() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();

    // Wrong credentials, one at a time: each is named, and nothing is stored.
    let bad = [
        (
            vec![("webflow", globex.token.as_str())],
            "webflow credential not verified",
        ),
        (
            vec![
                ("webflow", acme.token.as_str()),
                ("plausible", globex.plausible_token.as_str()),
            ],
            "plausible credential not verified",
        ),
        (
            vec![
                ("webflow", acme.token.as_str()),
                ("github", globex.github_token.as_str()),
            ],
            "github credential not verified",
        ),
        (
            vec![("webflow", "wf-not-a-token")],
            "webflow credential not verified",
        ),
        (
            vec![
                ("webflow", acme.token.as_str()),
                ("stripe", acme.stripe_key.as_str()),
            ],
            "does not use stripe",
        ),
    ];
    for (secrets, needle) in bad {
        let err = server
            .admin
            .onboard(&request(&acme, &secrets, false))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
        assert!(
            !err.contains(&acme.token) && !err.contains(&globex.token),
            "a secret in an error"
        );
        assert!(
            server.admin.tenants().await.unwrap().is_empty(),
            "a failed onboarding stored a tenant"
        );
    }
    // Bound to a site its token cannot reach: refused.
    let mut two_sites = request(&acme, &[("webflow", &acme.token)], false);
    two_sites
        .spec
        .webflow_sites
        .push(common::domain::WebflowId::parse("s", &globex.site_id).unwrap());
    let err = server
        .admin
        .onboard(&two_sites)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach site"), "{err}");

    // A dry run verifies and stores nothing; the real run stores and issues.
    let all = [
        ("webflow", acme.token.as_str()),
        ("plausible", acme.plausible_token.as_str()),
        ("github", acme.github_token.as_str()),
    ];
    let dry = server
        .admin
        .onboard(&request(&acme, &all, true))
        .await
        .unwrap();
    assert_eq!(dry.verified, ["github", "plausible", "webflow"]);
    assert!(dry.token.is_none() && server.admin.tenants().await.unwrap().is_empty());
    let done = server
        .admin
        .onboard(&request(&acme, &all, false))
        .await
        .unwrap();
    let token = done.token.unwrap().token;
    let detail = server.admin.tenant("acme").await.unwrap();
    assert_eq!(detail.secrets.len(), 3);
    let client = server.client(&token).await;
    let sites = ok_json(&call(&client, "webflow_list_sites", json!({})).await);
    assert_eq!(sites["sites"][0]["id"], acme.site_id);
    let err = server
        .admin
        .onboard(&request(&acme, &all, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn onboarding_an_isolated_instance_checks_cloudflare_and_stripe() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let instance = TestServer::start_isolated(&sandbox, "acme").await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let make = |stripe: &str| -> OnboardRequest {
        serde_json::from_value(json!({
            "id": "acme",
            "spec": {"name": "Acme", "webflow_sites": [acme.site_id], "dns_zone": acme.zone_id,
                     "dns_names": [format!("www.{}", acme.zone_name)], "stripe_customer": acme.stripe_customer},
            "secrets": {"webflow": acme.token, "cloudflare": acme.cloudflare_token, "stripe": stripe},
        }))
        .unwrap()
    };
    let err = instance
        .admin
        .onboard(&make(&globex.stripe_key))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stripe credential not verified"), "{err}");
    assert!(instance.admin.tenants().await.unwrap().is_empty());
    // The instance's own needs: a token that cannot publish is onboarded with a warning.
    sandbox.withhold_webflow_scope("acme", "sites:write");
    let done = instance
        .admin
        .onboard(&make(&acme.stripe_key))
        .await
        .unwrap();
    assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
    assert!(
        done.warnings[0].contains("lacks the sites:write scope, which webflow_publish_site"),
        "{:?}",
        done.warnings
    );
    let client = instance.client(&done.token.unwrap().token).await;
    let records = ok_json(&call(&client, "dns_list_records", json!({})).await);
    assert_eq!(records["zone_id"], acme.zone_id);
}

/// A tenant bound to all of `owner`'s resources with `toolsets`, and its Webflow token.
fn with_toolsets(owner: &OwnerFixture, toolsets: &[&str], dry_run: bool) -> OnboardRequest {
    serde_json::from_value(json!({
        "id": owner.owner,
        "spec": {
            "name": format!("{} Inc", owner.owner),
            "webflow_sites": [owner.site_id],
            "writable_collections": [owner.collection_ids[0]],
            "toolsets": toolsets,
        },
        "secrets": {"webflow": owner.token},
        "dry_run": dry_run,
    }))
    .unwrap()
}

const EVERY_WEBFLOW_TOOLSET: [&str; 5] =
    ["webflow", "cms-write", "page-write", "asset-write", "forms"];

#[tokio::test]
async fn onboarding_names_each_webflow_scope_the_tenants_tools_lack() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex", "initech"]))
        .await
        .unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    sandbox.withhold_webflow_scope("acme", webflow::PAGES_WRITE);
    sandbox.withhold_webflow_scope("acme", webflow::FORMS_READ);
    sandbox.clear_requests();

    // A tenant without those toolsets needs neither scope: no warning.
    let quiet = server
        .admin
        .onboard(&with_toolsets(&acme, &["webflow", "cms-write"], true))
        .await
        .unwrap();
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);

    // Scopes only some tools need: onboarded, with a warning naming each and what needs it.
    let done = server
        .admin
        .onboard(&with_toolsets(&acme, &EVERY_WEBFLOW_TOOLSET, false))
        .await
        .unwrap();
    assert!(done.token.is_some());
    assert_eq!(done.warnings.len(), 2, "{:?}", done.warnings);
    let warned = |scope: &str, by: &str| {
        done.warnings
            .iter()
            .any(|w| w.contains(&format!("lacks the {scope} scope")) && w.contains(by))
    };
    assert!(warned("pages:write", "page-write"), "{:?}", done.warnings);
    assert!(warned("forms:read", "forms toolset"), "{:?}", done.warnings);
    // Webflow was asked which scopes the token has, with that token.
    assert!(
        sandbox.requests().iter().any(|r| {
            r.path == "/v2/token/introspect" && r.token_owner.as_deref() == Some("acme")
        })
    );
    // Without a read scope every Webflow tool rests on: refused, nothing stored.
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    sandbox.withhold_webflow_scope("globex", webflow::CMS_READ);
    let err = server
        .admin
        .onboard(&with_toolsets(&globex, &["webflow"], false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lacks the cms:read scope") && err.contains("webflow toolset"),
        "{err}"
    );
    let stored = server.admin.tenants().await.unwrap();
    assert!(stored.iter().all(|t| t.id.as_str() != "globex"));

    // When Webflow will not introspect the token, its read scopes are tried one read each and
    // the write scopes named as unchecked.
    let initech = sandbox.fixture().owner("initech").unwrap().clone();
    sandbox.refuse_webflow_introspection("initech");
    sandbox.withhold_webflow_scope("initech", webflow::ASSETS_READ);
    let dry = server
        .admin
        .onboard(&with_toolsets(&initech, &EVERY_WEBFLOW_TOOLSET, true))
        .await
        .unwrap();
    assert!(
        dry.warnings
            .iter()
            .any(|w| w.contains("lacks the assets:read scope")
                && w.contains("webflow_list_assets")
                && w.contains("asset-write")),
        "{:?}",
        dry.warnings
    );
    assert!(
        dry.warnings
            .iter()
            .any(|w| w.contains("did not list the token's scopes")
                && w.contains("cms:write")
                && w.contains("pages:write")
                && w.contains("assets:write")),
        "{:?}",
        dry.warnings
    );
    assert!(!dry.warnings.iter().any(|w| w.contains("forms:read")));
    sandbox.withhold_webflow_scope("initech", webflow::PAGES_READ);
    let err = server
        .admin
        .onboard(&with_toolsets(&initech, &["webflow"], true))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks the pages:read scope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboard_command_prints_config_for_every_client() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    // A scope one tool needs is missing: onboarding goes on, and says so.
    sandbox.withhold_webflow_scope("acme", webflow::COMMENTS_READ);
    let Some(binary) = tests::harness::shared_server_binary().await else {
        return;
    };
    let mut child = tokio::process::Command::new(binary)
        .args([
            "onboard",
            "acme",
            "--name",
            "Acme Co",
            "--webflow-site",
            &acme.site_id,
        ])
        .args([
            "--plausible-site",
            &acme.plausible_site,
            "--github-repo",
            &acme.github_repos[0],
        ])
        .args([
            "--admin-url",
            &server.admin_url,
            "--shared-url",
            &server.mcp_url,
        ])
        .env("STUDIO_MCP_ADMIN_TOKEN", &server.admin_token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "webflow={}\nplausible={}\ngithub={}\n",
        acme.token, acme.plausible_token, acme.github_token
    );
    tokio::io::AsyncWriteExt::write_all(child.stdin.as_mut().unwrap(), input.as_bytes())
        .await
        .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "claude mcp add --transport http studio-acme",
        "mcp-remote",
        "Cursor",
        "\"servers\"",
        &server.mcp_url,
    ] {
        assert!(stdout.contains(needle), "missing {needle} in\n{stdout}");
    }
    assert_eq!(server.admin.tenant("acme").await.unwrap().secrets.len(), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning (shared server): the Webflow token lacks the comments:read scope, which webflow_list_comments"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_revocation_drill_proves_the_next_request_fails() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    server
        .provision(sandbox.fixture().owner("acme").unwrap())
        .await;
    let report =
        common::runtime::ops::drill::revoke(&server.admin, &[&server.mcp_url], "acme", None)
            .await
            .unwrap();
    assert_eq!(
        report.attempts_until_refused, 1,
        "revocation must bite on the very next request"
    );
    let canary = server
        .admin
        .tokens(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == report.token_id)
        .unwrap();
    assert!(canary.revoked_at.is_some());

    // A drill that cannot reach the MCP endpoint fails, and still revokes its canary.
    let err = common::runtime::ops::drill::revoke(
        &server.admin,
        &["http://127.0.0.1:9/mcp"],
        "acme",
        None,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("cannot reach"), "{err:#}");
    let tokens = server.admin.tokens(Some("acme")).await.unwrap();
    assert!(
        tokens
            .iter()
            .filter(|t| t.label == "drill-canary")
            .all(|t| t.revoked_at.is_some())
    );

    // The same drill against an isolated instance.
    let instance = TestServer::start_isolated(&sandbox, "acme").await;
    instance
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let report =
        common::runtime::ops::drill::revoke(&instance.admin, &[&instance.mcp_url], "acme", None)
            .await
            .unwrap();
    assert_eq!(report.attempts_until_refused, 1);
}
