//! Studio operations: onboarding a client in one go (verified credentials or nothing stored at
//! all) and the revocation drill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use common::runtime::admin::OnboardRequest;
use serde_json::json;
use tests::harness::{TestServer, call, ok_json};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};

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
    let done = instance
        .admin
        .onboard(&make(&acme.stripe_key))
        .await
        .unwrap();
    let client = instance.client(&done.token.unwrap().token).await;
    let records = ok_json(&call(&client, "dns_list_records", json!({})).await);
    assert_eq!(records["zone_id"], acme.zone_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboard_command_prints_config_for_every_client() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
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
