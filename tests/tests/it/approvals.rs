//! Approvals by a person, attacked over real HTTP: isolated instances on `localhost` with people
//! (an approver and a member of acme, an approver of globex on its own instance) who registered
//! software passkeys through their invites. A model-like MCP client tries every way to act
//! without a person — repeating the call, naming an approval in its arguments, guessing approval
//! links, forging or borrowing CSRF tokens, a member's or another instance's session, an expired
//! or foreign approval — and no request ever reaches the sandbox's publish, DNS-write or billing
//! portal endpoints. Then the ways that do act: an approver on the page (each action, exactly
//! once, also when two approvers decide at once) and the operator through the admin API, each
//! audited and told to the model once. And what the approver reads is what runs: a model's
//! hidden characters in free text are refused, an upstream's are shown as visible markers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tests::connector::{Answer, Person, Site, field, form_csrf};
use tests::harness::{McpClient, TestServer, TestTenant, call, connect, error_text, ok_json};
use tests::sandbox::{Failure, Fixture, RecordedRequest, Sandbox};

const HIGH_RISK: [&str; 9] = [
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

/// One isolated instance as its people and its model see it.
struct Instance {
    site: Site,
    tenant: TestTenant,
    model: McpClient,
}

/// An isolated instance for `tenant` on `localhost` (passkeys need a domain), approvals lasting
/// `ttl_secs`, provisioned, with the model's MCP client.
async fn instance(sandbox: &Sandbox, tenant: &'static str, ttl_secs: u64) -> Instance {
    let server =
        TestServer::start_on_localhost_with(sandbox, &isolated_server::ISOLATED, move |c| {
            c.tenant = Some(tenant.to_owned());
            c.approval_ttl_secs = ttl_secs;
        })
        .await;
    let owner = sandbox.fixture().owner(tenant).unwrap();
    let tenant = server.provision_isolated(owner).await;
    let model = server.client(&tenant.token).await;
    Instance {
        site: Site::new(server),
        tenant,
        model,
    }
}

async fn sandbox() -> Sandbox {
    Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap()
}

/// Whether a request would have acted: a Webflow publish, any Webflow DELETE (items deleted
/// or unpublished), a custom code PUT, any Cloudflare write, a Stripe billing-portal session.
fn acts(r: &RecordedRequest) -> bool {
    let path = r.path.split('?').next().unwrap_or_default();
    let webflow = path.starts_with("/v2/");
    let publish = r.method == "POST" && webflow && path.ends_with("/publish");
    let removal = r.method == "DELETE" && webflow;
    let custom_code = r.method == "PUT" && webflow && path.ends_with("/custom_code");
    let dns = r.method != "GET" && path.starts_with("/client/v4/");
    let portal = r.method == "POST" && path.starts_with("/v1/billing_portal/sessions");
    publish || removal || custom_code || dns || portal
}

/// Every request that acted so far, as `METHOD path`.
fn actions(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .filter(|r| acts(r))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn assert_nothing_acted(sandbox: &Sandbox, after: &str) {
    let acted = actions(sandbox);
    assert!(acted.is_empty(), "{after} acted: {acted:?}");
}

/// A TXT record under acme's allowed names, distinct per `tag`.
fn txt(sandbox: &Sandbox, tag: &str) -> Value {
    let zone = &sandbox.fixture().owner("acme").unwrap().zone_name;
    json!({"record": {"type": "TXT", "name": format!("www.{zone}"), "content": format!("approval test {tag}")}})
}

/// Scripts registered on acme's site: a newer slider in the footer and a cookie banner.
fn custom_code() -> Value {
    json!({"scripts": [
        {"id": "cms_slider", "version": "1.1.0", "location": "footer"},
        {"id": "cookie_banner", "version": "0.2.0", "location": "header"},
    ]})
}

/// The model's first call: the approval id and link it is given.
async fn ask(model: &McpClient, tool: &str, args: &Value) -> (String, String) {
    let step = ok_json(&call(model, tool, args.clone()).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    (
        step["approval_id"].as_str().unwrap().to_owned(),
        step["approval_url"].as_str().unwrap().to_owned(),
    )
}

/// The model's next identical call.
async fn again(model: &McpClient, tool: &str, args: &Value) -> Value {
    ok_json(&call(model, tool, args.clone()).await)
}

/// `GET` of the approval page `id` with `cookie`.
async fn open(site: &Site, cookie: Option<&str>, id: &str) -> Answer {
    site.approval_page(cookie, id).await
}

async fn open_url(site: &Site, cookie: Option<&str>, url: &str) -> Answer {
    let mut request = site.http.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    Answer::read(request.send().await.unwrap()).await
}

/// `POST /approve/{id}` as a browser on this site's pages sends it.
async fn post(site: &Site, cookie: Option<&str>, id: &str, form: &[(&str, &str)]) -> Answer {
    post_from(site, &site.server.connector_origin, cookie, id, form).await
}

async fn post_from(
    site: &Site,
    origin: &str,
    cookie: Option<&str>,
    id: &str,
    form: &[(&str, &str)],
) -> Answer {
    site.post_approval(origin, cookie, id, form).await
}

/// The CSRF token of `person`'s session, read where any signed-in person finds it: the
/// sign-out form of the consent page (a member's approval page has no form).
async fn session_csrf(site: &Site, person: &Person) -> String {
    let client_id = site.register_client().await;
    let form = site.consent_form(person, &site.params(&client_id)).await;
    field(&form, "csrf").to_owned()
}

/// An approver opens the approval page and decides (`approve` or `deny`): the answer.
async fn decide(site: &Site, person: &Person, id: &str, decision: &str) -> Answer {
    site.decide(person, id, decision).await
}

fn is_signin_page(answer: &Answer) -> bool {
    answer.status == 200 && answer.text.contains("<h1>Sign in</h1>")
}

/// The approval `id` as the operator sees it.
async fn state_of(site: &Site, id: &str) -> String {
    let listed = site.server.admin.approvals().await.unwrap();
    listed
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.state.clone())
        .unwrap_or_else(|| format!("no approval {id} in {listed:?}"))
}

/// Moves the instance's clock past `id`'s time: the operator then sees it expired.
async fn expire(site: &Site, id: &str, ttl_secs: u64) {
    site.server.clock.advance(ttl_secs + 1);
    assert_eq!(state_of(site, id).await, "expired");
}

/// Audit records of `action` by `person`.
async fn audited(site: &Site, action: &str, person: &str) -> Vec<common::audit::AuditRecord> {
    site.audit()
        .await
        .into_iter()
        .filter(|r| r.action == action && r.person.as_deref() == Some(person))
        .collect()
}

/// Valid arguments for each high-risk tool on acme's instance.
fn valid_args(sandbox: &Sandbox) -> Vec<(&'static str, Value)> {
    let f = sandbox.fixture().owner("acme").unwrap();
    vec![
        (
            "webflow_publish_site",
            json!({"custom_domains": [f.custom_domain_ids[0]]}),
        ),
        (
            "webflow_publish_items",
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[0].1]}),
        ),
        (
            "webflow_delete_items",
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[1].1]}),
        ),
        (
            "webflow_unpublish_items",
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[2].1]}),
        ),
        ("webflow_set_custom_code", custom_code()),
        ("dns_create_record", txt(sandbox, "valid")),
        (
            "dns_update_record",
            json!({"record_id": f.dns_record_ids[2], "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.9"}}),
        ),
        (
            "dns_delete_record",
            json!({"record_id": f.dns_record_ids[1]}),
        ),
        (
            "billing_create_portal_session",
            json!({"return_url": "https://acme.example/account"}),
        ),
    ]
}

// ---- the model alone ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_cannot_act_by_repeating_or_naming_an_approval() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let args = txt(&sandbox, "repeat");
    let (id, url) = ask(&acme.model, "dns_create_record", &args).await;
    assert_eq!(url, site.url(&format!("/approve/{id}")));

    // Asking over and over is the same request, still waiting.
    for _ in 0..25 {
        let step = again(&acme.model, "dns_create_record", &args).await;
        assert_eq!(step["status"], "waiting_for_approval", "{step}");
        assert_eq!(step["approval_id"], id.as_str());
        assert!(step.get("result").is_none(), "{step}");
    }

    // Naming the approval (or anything like a decision) in the arguments is refused outright,
    // by every high-risk tool.
    let valid = valid_args(&sandbox);
    let tools: Vec<&str> = valid.iter().map(|(tool, _)| *tool).collect();
    assert_eq!(tools, HIGH_RISK);
    for (tool, valid) in valid {
        for (key, value) in [
            ("approval_id", json!(id)),
            ("approved", json!(true)),
            ("decision", json!("approve")),
            ("confirmation_code", json!(id)),
        ] {
            let mut smuggled = valid.clone();
            smuggled[key] = value;
            let text = error_text(&call(&acme.model, tool, smuggled).await);
            assert!(text.contains("unknown field"), "{tool} with {key}: {text}");
        }
    }
    // There is no tool to approve with.
    let tools = acme.model.list_all_tools().await.unwrap();
    assert!(
        tools.iter().all(|t| !t.name.contains("approv")),
        "{tools:?}"
    );
    for name in ["approve", "approval_approve", "approvals_decide"] {
        let result = tests::harness::try_call(&acme.model, name, json!({"approval_id": id})).await;
        let refused = match result {
            Ok(r) => r.is_error == Some(true),
            Err(_) => true,
        };
        assert!(refused, "{name} answered");
    }

    // The model's bearer token opens neither the page nor the admin API.
    let http = &site.http;
    let token = &acme.tenant.token;
    let page = http
        .post(&url)
        .bearer_auth(token)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert!(is_signin_page(&Answer::read(page).await));
    for base in [&site.server.connector_origin, &site.server.admin_url] {
        let admin = http
            .post(format!("{base}/v1/approvals/{id}/approve"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = admin.status().as_u16();
        assert!(status == 401 || status == 404, "{base}: {status}");
    }

    // Even through an approver's own connection, the model only asks.
    let approver = site.approver("acme", "Avery Approver").await;
    let connection = site.connect(&approver).await;
    let connector = connect(&site.connector_url(), &connection.access, None)
        .await
        .unwrap();
    let (own, _) = ask(&connector, "dns_create_record", &txt(&sandbox, "own")).await;
    for _ in 0..5 {
        let step = again(&connector, "dns_create_record", &txt(&sandbox, "own")).await;
        assert_eq!(step["status"], "waiting_for_approval", "{step}");
    }

    assert_eq!(state_of(site, &id).await, "pending");
    assert_eq!(state_of(site, &own).await, "pending");
    assert_nothing_acted(&sandbox, "the model on its own");
}

// ---- the page without the right person ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_links_need_a_signed_in_person_and_reveal_nothing() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let (id, _) = ask(&acme.model, "dns_create_record", &txt(&sandbox, "links")).await;
    let secret_bit = "approval test links";

    // Without a session (or with a made-up one), every id — real or guessed — gets the same
    // sign-in page, and nothing of the request.
    let mut guessed: Vec<String> = (0..20).map(|i| format!("apr_{i:022}")).collect();
    guessed.push(id.clone());
    guessed.push(format!("{id}x"));
    guessed.push(id[..id.len() - 1].to_owned());
    let bogus = "studio_mcp_session=smx_0000000000000000000000000000000000000000000";
    for candidate in &guessed {
        for cookie in [None, Some(bogus)] {
            let shown = open(site, cookie, candidate).await;
            let posted = post(site, cookie, candidate, &[("decision", "approve")]).await;
            for answer in [&shown, &posted] {
                assert!(is_signin_page(answer), "{candidate}: {}", answer.text);
                assert!(!answer.text.contains(secret_bit), "{}", answer.text);
            }
            // The page is the same whatever the id, apart from the id itself.
            let generic = shown.text.replace(candidate.as_str(), "ID");
            let reference = open(site, cookie, "apr_reference").await;
            assert_eq!(generic, reference.text.replace("apr_reference", "ID"));
        }
    }

    // Signed in as an approver, guessed ids are "not valid here", with or without the form.
    let approver = site.approver("acme", "Avery Approver").await;
    let csrf = session_csrf(site, &approver).await;
    let long = format!("apr_{}", "A".repeat(200));
    for candidate in guessed
        .iter()
        .filter(|c| **c != id)
        .map(String::as_str)
        .chain([long.as_str(), "apr_%2e%2e", "%00"])
    {
        let shown = open(site, Some(&approver.cookie), candidate).await;
        let posted = post(
            site,
            Some(&approver.cookie),
            candidate,
            &[("csrf", &csrf), ("decision", "approve")],
        )
        .await;
        for answer in [&shown, &posted] {
            assert_eq!(answer.status, 404, "{candidate}: {}", answer.text);
            assert!(answer.text.contains("not valid here"), "{}", answer.text);
        }
    }
    // A GET never decides, whatever its query says.
    let url = site.url(&format!("/approve/{id}?decision=approve&csrf={csrf}"));
    let shown = open_url(site, Some(&approver.cookie), &url).await;
    shown.assert_page(200);
    assert!(shown.text.contains(secret_bit), "{}", shown.text);

    assert_eq!(state_of(site, &id).await, "pending");
    assert_nothing_acted(&sandbox, "guessed links");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_needs_this_sessions_csrf_token_and_this_sites_origin() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let (id, _) = ask(&acme.model, "dns_create_record", &txt(&sandbox, "csrf")).await;
    let mut approver = site.approver("acme", "Avery Approver").await;
    let member = site.person("acme", "Morgan Member").await;
    // The same approver on a second device: another session, another token.
    let other_session = tests::passkey::sign_in(
        &site.http,
        &site.server.connector_origin,
        &mut approver.passkey,
    )
    .await;
    let page = open(site, Some(&other_session), &id).await;
    let other_csrf = form_csrf(&page);
    let member_csrf = session_csrf(site, &member).await;
    let own_page = open(site, Some(&approver.cookie), &id).await;
    let own_csrf = form_csrf(&own_page);
    assert_ne!(own_csrf, other_csrf);

    let cookie = Some(approver.cookie.as_str());
    let upper = own_csrf.to_uppercase();
    let truncated = &own_csrf[..own_csrf.len() - 1];
    for (what, form) in [
        ("no token", vec![("decision", "approve")]),
        (
            "an empty token",
            vec![("csrf", ""), ("decision", "approve")],
        ),
        (
            "another session's token",
            vec![("csrf", other_csrf.as_str()), ("decision", "approve")],
        ),
        (
            "a member's token",
            vec![("csrf", member_csrf.as_str()), ("decision", "approve")],
        ),
        (
            "a token in capitals",
            vec![("csrf", upper.as_str()), ("decision", "approve")],
        ),
        (
            "a cut token",
            vec![("csrf", truncated), ("decision", "approve")],
        ),
    ] {
        let answer = post(site, cookie, &id, &form).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text);
        assert!(
            answer.text.contains("could not be accepted"),
            "{what}: {}",
            answer.text
        );
    }
    // The right token from another site's page (a cross-site form post) is refused too.
    let answer = post_from(
        site,
        "https://evil.example",
        cookie,
        &id,
        &[("csrf", &own_csrf), ("decision", "approve")],
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    // The right token without a decision decides nothing.
    let answer = post(
        site,
        cookie,
        &id,
        &[("csrf", &own_csrf), ("decision", "yes")],
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(state_of(site, &id).await, "pending");
    assert_nothing_acted(&sandbox, "forged forms");
    let refusals = audited(site, "approval:refused", &approver.id).await;
    assert!(
        refusals.iter().filter(|r| r.outcome == "csrf").count() >= 6,
        "{refusals:?}"
    );

    // With its own token, the approver's decision is taken (the token was all that was wrong).
    let answer = post(
        site,
        cookie,
        &id,
        &[("csrf", &own_csrf), ("decision", "deny")],
    )
    .await;
    answer.assert_page(200);
    assert_eq!(state_of(site, &id).await, "denied");
    assert_nothing_acted(&sandbox, "a denial");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_the_request_but_cannot_decide_it() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let (id, url) = ask(&acme.model, "dns_create_record", &txt(&sandbox, "member")).await;
    let member = site.person("acme", "Morgan Member").await;

    let page = open_url(site, Some(&member.cookie), &url).await;
    page.assert_page(200);
    assert!(page.text.contains("approval test member"), "{}", page.text);
    assert!(
        page.text
            .contains("only an approver of this client can approve"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("name=\"decision\""), "{}", page.text);

    let csrf = session_csrf(site, &member).await;
    for decision in ["approve", "deny"] {
        let answer = post(
            site,
            Some(&member.cookie),
            &id,
            &[("csrf", &csrf), ("decision", decision)],
        )
        .await;
        assert_eq!(answer.status, 403, "{}", answer.text);
        assert!(
            answer.text.contains("Only an approver can decide"),
            "{}",
            answer.text
        );
    }
    assert_eq!(state_of(site, &id).await, "pending");
    assert_nothing_acted(&sandbox, "a member's decision");
    let refusals = audited(site, "approval:refused", &member.id).await;
    assert_eq!(
        refusals
            .iter()
            .filter(|r| r.outcome == "not_approver")
            .count(),
        2,
        "{refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_and_approvals_of_another_instance_are_not_valid_here() {
    let sandbox = sandbox().await;
    let (acme, globex) = tokio::join!(
        instance(&sandbox, "acme", 600),
        instance(&sandbox, "globex", 600)
    );
    let (a, b) = (&acme.site, &globex.site);
    let (acme_id, _) = ask(&acme.model, "dns_create_record", &txt(&sandbox, "a")).await;
    let g = sandbox.fixture().owner("globex").unwrap();
    let globex_args = json!({"record": {"type": "TXT", "name": format!("www.{}", g.zone_name), "content": "globex"}});
    let (globex_id, _) = ask(&globex.model, "dns_create_record", &globex_args).await;
    let avery = a.approver("acme", "Avery Approver").await;
    let gina = b.approver("globex", "Gina Globex").await;
    let gina_csrf = form_csrf(&open(b, Some(&gina.cookie), &globex_id).await);
    let avery_csrf = form_csrf(&open(a, Some(&avery.cookie), &acme_id).await);

    // Globex's approver, with her session from her own instance, is nobody here.
    let shown = open(a, Some(&gina.cookie), &acme_id).await;
    assert!(is_signin_page(&shown), "{}", shown.text);
    assert!(!shown.text.contains("approval test a"), "{}", shown.text);
    let posted = post(
        a,
        Some(&gina.cookie),
        &acme_id,
        &[("csrf", &gina_csrf), ("decision", "approve")],
    )
    .await;
    assert!(is_signin_page(&posted), "{}", posted.text);

    // An approval id of one instance is not valid on the other, even to its approver.
    for (site, person, csrf, id) in [
        (a, &avery, &avery_csrf, &globex_id),
        (b, &gina, &gina_csrf, &acme_id),
    ] {
        let shown = open(site, Some(&person.cookie), id).await;
        let posted = post(
            site,
            Some(&person.cookie),
            id,
            &[("csrf", csrf), ("decision", "approve")],
        )
        .await;
        for answer in [shown, posted] {
            assert_eq!(answer.status, 404, "{}", answer.text);
            assert!(answer.text.contains("not valid here"), "{}", answer.text);
        }
    }
    // Nor through the other instance's admin API.
    let err = a.server.admin.decide_approval(&globex_id, true).await;
    assert!(err.unwrap_err().to_string().contains("404"));

    assert_eq!(state_of(a, &acme_id).await, "pending");
    assert_eq!(state_of(b, &globex_id).await, "pending");
    assert_nothing_acted(&sandbox, "another instance's people and ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_cannot_be_approved() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 1).await;
    let site = &acme.site;
    let approver = site.approver("acme", "Avery Approver").await;
    let csrf = session_csrf(site, &approver).await;
    let args = txt(&sandbox, "late");
    let (id, _) = ask(&acme.model, "dns_create_record", &args).await;
    expire(site, &id, 1).await;

    let page = open(site, Some(&approver.cookie), &id).await;
    page.assert_page(200);
    assert!(page.text.contains("expired"), "{}", page.text);
    assert!(!page.text.contains("name=\"decision\""), "{}", page.text);
    let answer = post(
        site,
        Some(&approver.cookie),
        &id,
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    answer.assert_page(200);
    assert!(
        answer.text.contains("Not done: this approval expired"),
        "{}",
        answer.text
    );
    let err = site.server.admin.decide_approval(&id, true).await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("409") && err.contains("expired"), "{err}");
    assert_eq!(state_of(site, &id).await, "expired");
    // The model's next call is a new request.
    let (fresh, _) = ask(&acme.model, "dns_create_record", &args).await;
    assert_ne!(fresh, id);
    assert_nothing_acted(&sandbox, "an expired approval");
    assert!(
        audited(site, "approval:approve", &approver.id)
            .await
            .is_empty()
    );
}

// ---- deciding ----

/// Decisions posted at the same moment: exactly one is taken; the write happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_deciding_at_once_act_exactly_once() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let alex = site.approver("acme", "Alex Approver").await;
    let blair = site.approver("acme", "Blair Approver").await;

    // (first, second, their decisions): two approvers; the same approver's double submit;
    // approve against deny.
    let rounds = [
        (&alex, &blair, "approve", "approve"),
        (&blair, &alex, "approve", "approve"),
        (&alex, &alex, "approve", "approve"),
        (&alex, &blair, "approve", "deny"),
        (&blair, &alex, "deny", "approve"),
    ];
    for (round, (first, second, d1, d2)) in rounds.into_iter().enumerate() {
        let args = txt(&sandbox, &format!("race {round}"));
        let (id, _) = ask(&acme.model, "dns_create_record", &args).await;
        let c1 = form_csrf(&open(site, Some(&first.cookie), &id).await);
        let c2 = form_csrf(&open(site, Some(&second.cookie), &id).await);
        sandbox.clear_requests();
        // The write is held a moment so the other decision arrives while it runs.
        sandbox.fail_next(Failure::slow(Duration::from_millis(300)), 1);
        let f1 = [("csrf", c1.as_str()), ("decision", d1)];
        let f2 = [("csrf", c2.as_str()), ("decision", d2)];
        let (a1, a2) = tokio::join!(
            post(site, Some(&first.cookie), &id, &f1),
            post(site, Some(&second.cookie), &id, &f2)
        );
        let state = state_of(site, &id).await;
        let acted = actions(&sandbox);
        assert!(acted.len() <= 1, "round {round}: {acted:?}");
        assert_eq!(acted.len() == 1, state == "done", "round {round}: {state}");
        assert!(
            state == "done" || state == "denied",
            "round {round}: {state}"
        );
        let answers = [&a1, &a2];
        let taken = answers
            .iter()
            .filter(|a| !a.text.contains("already decided"))
            .count();
        assert_eq!(taken, 1, "round {round}: {}\n---\n{}", a1.text, a2.text);
        for answer in answers {
            answer.assert_page(200);
        }
        // The model is told the one outcome.
        let told = again(&acme.model, "dns_create_record", &args).await;
        let expected = if state == "done" { "done" } else { "denied" };
        assert_eq!(told["status"], expected, "{told}");
        assert_eq!(told["approval_id"], id.as_str());
        if sandbox.pending_failures() > 0 {
            sandbox.clear_requests();
            // A denial left the hold unused: spend it on a read so the next round starts clean.
            call(&acme.model, "dns_list_records", json!({})).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_approves_and_denies_through_the_admin_api() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let admin = &site.server.admin;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let create = txt(&sandbox, "operator");
    let items = json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[1].1]});
    let (create_id, _) = ask(&acme.model, "dns_create_record", &create).await;
    let (items_id, _) = ask(&acme.model, "webflow_publish_items", &items).await;

    let listed = admin.approvals().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for view in &listed {
        assert_eq!(view.state, "pending");
        assert_eq!(view.tenant, "acme");
        assert!(view.decided_by.is_none());
    }
    let shown = listed.iter().find(|v| v.id == create_id).unwrap();
    assert_eq!(shown.tool, "dns_create_record");
    assert_eq!(shown.preview["after"]["content"], "approval test operator");
    assert_nothing_acted(&sandbox, "listing");

    let done = admin.decide_approval(&create_id, true).await.unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    assert_eq!(done.decided_by.as_deref(), Some("operator"));
    let record_id = done.outcome.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sandbox.dns_record(&f.zone_id, &record_id).unwrap()["content"],
        "approval test operator"
    );
    assert_eq!(
        actions(&sandbox),
        vec![format!("POST /client/v4/zones/{}/dns_records", f.zone_id)]
    );
    let err = admin.decide_approval(&create_id, true).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let err = admin.decide_approval(&create_id, false).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let err = admin
        .decide_approval("apr_madeup0000000000000000", true)
        .await;
    assert!(err.unwrap_err().to_string().contains("404"));

    let denied = admin.decide_approval(&items_id, false).await.unwrap();
    assert_eq!(denied.state, "denied");
    assert_eq!(actions(&sandbox).len(), 1, "a denial acted");

    // The model learns each outcome once; afterwards the same call is a new request.
    let told = again(&acme.model, "dns_create_record", &create).await;
    assert_eq!(told["status"], "done", "{told}");
    assert_eq!(told["decided_by"], "operator");
    assert_eq!(told["result"]["id"], record_id.as_str());
    let told = again(&acme.model, "webflow_publish_items", &items).await;
    assert_eq!(told["status"], "denied", "{told}");
    assert_eq!(told["decided_by"], "operator");
    assert!(told.get("result").is_none(), "{told}");
    let (next, _) = ask(&acme.model, "dns_create_record", &create).await;
    assert_ne!(next, create_id);
    let (next, _) = ask(&acme.model, "webflow_publish_items", &items).await;
    assert_ne!(next, items_id);
    assert_eq!(actions(&sandbox).len(), 1);

    assert_eq!(audited(site, "approval:approve", "operator").await.len(), 1);
    assert_eq!(audited(site, "approval:deny", "operator").await.len(), 1);
    let runs = audited(site, "dns_create_record", "operator").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, "ok");
    assert!(
        audited(site, "webflow_publish_items", "operator")
            .await
            .is_empty()
    );
}

/// The happy path of one action: the model asks, an approver opens the link, sees the preview
/// and approves; the action reaches the sandbox exactly once as `write`; the model's next call
/// reports it done with the result, once; both the decision and the run are audited.
async fn approved_on_the_page(
    tool: &str,
    args: impl FnOnce(&Sandbox) -> Value,
    write: impl FnOnce(&Sandbox) -> String,
    preview_shows: &str,
) {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let approver = site.approver("acme", "Avery Approver").await;
    let args = args(&sandbox);
    let write = write(&sandbox);
    sandbox.clear_requests();

    let (id, url) = ask(&acme.model, tool, &args).await;
    assert_nothing_acted(&sandbox, "asking");
    let page = open_url(site, Some(&approver.cookie), &url).await;
    page.assert_page(200);
    assert!(page.text.contains(preview_shows), "{}", page.text);
    assert!(
        page.text.contains("frame-ancestors 'none'")
            || page
                .header("content-security-policy")
                .is_some_and(|c| c.contains("frame-ancestors 'none'")),
        "the approval page can be framed"
    );
    let csrf = form_csrf(&page);
    let answer = post(
        site,
        Some(&approver.cookie),
        &id,
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    answer.assert_page(200);
    assert!(
        answer.text.contains("Approved and carried out."),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("Outcome"), "{}", answer.text);
    assert_eq!(actions(&sandbox), vec![write.clone()]);

    // Told once, with the result and who decided.
    let told = again(&acme.model, tool, &args).await;
    assert_eq!(told["status"], "done", "{told}");
    assert_eq!(told["approval_id"], id.as_str());
    assert_eq!(told["decided_by"], approver.id.as_str());
    assert!(
        told["result"].is_object() && told["result"] != json!({}),
        "{told}"
    );
    // Told once: the same call afterwards is a new request (or, what it named being gone, a
    // refusal), never the outcome again.
    if tool == "dns_delete_record" {
        let text = error_text(&call(&acme.model, tool, args.clone()).await);
        assert!(text.contains("no such resource"), "{text}");
    } else if tool == "webflow_delete_items" || tool == "webflow_unpublish_items" {
        let text = error_text(&call(&acme.model, tool, args.clone()).await);
        let item = args["item_ids"][0].as_str().unwrap();
        assert!(text.contains(item) && text.contains("is not"), "{text}");
    } else {
        let (next, _) = ask(&acme.model, tool, &args).await;
        assert_ne!(next, id);
    }
    // Deciding again changes nothing.
    let page = open(site, Some(&approver.cookie), &id).await;
    assert!(!page.text.contains("name=\"decision\""), "{}", page.text);
    let answer = post(
        site,
        Some(&approver.cookie),
        &id,
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert!(answer.text.contains("already decided"), "{}", answer.text);
    assert_eq!(actions(&sandbox), vec![write]);

    let decisions = audited(site, "approval:approve", &approver.id).await;
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let runs = audited(site, tool, &approver.id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_the_site_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "webflow_publish_site",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"custom_domains": [f.custom_domain_ids[0]]})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("POST /v2/sites/{}/publish", f.site_id)
        },
        "acme.example",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_items_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "webflow_publish_items",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[0].1]})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("POST /v2/collections/{}/items/publish", f.collection_ids[0])
        },
        "Blog Posts",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_items_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "webflow_delete_items",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[1].1]})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("DELETE /v2/collections/{}/items", f.collection_ids[0])
        },
        // The approver reads the item's name and slug, not only its id.
        "blog-post-2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublishing_items_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "webflow_unpublish_items",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"collection_id": f.collection_ids[0], "item_ids": [f.item_ids[2].1]})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("DELETE /v2/collections/{}/items/live", f.collection_ids[0])
        },
        "Blog Post 3 (owner:acme)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_custom_code_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "webflow_set_custom_code",
        |_| custom_code(),
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("PUT /v2/sites/{}/custom_code", f.site_id)
        },
        // The approver reads where the script comes from, not only its name.
        "/cookie-banner-0.2.0.js",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_dns_record_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "dns_create_record",
        |s| txt(s, "create"),
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!("POST /client/v4/zones/{}/dns_records", f.zone_id)
        },
        "approval test create",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_a_dns_record_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "dns_update_record",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"record_id": f.dns_record_ids[2], "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.9"}})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!(
                "PATCH /client/v4/zones/{}/dns_records/{}",
                f.zone_id, f.dns_record_ids[2]
            )
        },
        "198.51.100.9",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_dns_record_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "dns_delete_record",
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            json!({"record_id": f.dns_record_ids[1]})
        },
        |s| {
            let f = s.fixture().owner("acme").unwrap();
            format!(
                "DELETE /client/v4/zones/{}/dns_records/{}",
                f.zone_id, f.dns_record_ids[1]
            )
        },
        "delete this DNS record",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_billing_portal_runs_once_approved_on_the_page() {
    approved_on_the_page(
        "billing_create_portal_session",
        |_| json!({"return_url": "https://acme.example/account"}),
        |_| "POST /v1/billing_portal/sessions".to_owned(),
        "https://acme.example/account",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_on_the_page_does_nothing_and_is_told_once() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let approver = site.approver("acme", "Avery Approver").await;
    let args = json!({"return_url": "https://acme.example/account"});
    let tool = "billing_create_portal_session";
    let (id, _) = ask(&acme.model, tool, &args).await;
    let answer = decide(site, &approver, &id, "deny").await;
    answer.assert_page(200);
    assert!(
        answer.text.contains("Denied. Nothing was done."),
        "{}",
        answer.text
    );
    let told = again(&acme.model, tool, &args).await;
    assert_eq!(told["status"], "denied", "{told}");
    assert_eq!(told["decided_by"], approver.id.as_str());
    let (next, _) = ask(&acme.model, tool, &args).await;
    assert_ne!(next, id);
    assert_nothing_acted(&sandbox, "a denial");
    assert_eq!(sandbox.stripe_sessions("acme"), 0);
    assert_eq!(audited(site, "approval:deny", &approver.id).await.len(), 1);
    assert!(audited(site, tool, &approver.id).await.is_empty());
}

/// The model keeps asking for the same action over a session: each answer is about its newest
/// request. (Two requests for the same arguments made within the same second must not be
/// confused: the newest is the one the model is waiting for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_is_always_told_about_its_newest_request() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let admin = &acme.site.server.admin;
    let tool = "billing_create_portal_session";
    let args = json!({});
    for round in 0..10 {
        let (id, _) = ask(&acme.model, tool, &args).await;
        let waiting = again(&acme.model, tool, &args).await;
        assert_eq!(
            waiting["status"], "waiting_for_approval",
            "round {round}: {waiting}"
        );
        assert_eq!(waiting["approval_id"], id.as_str(), "round {round}");
        admin.decide_approval(&id, true).await.unwrap();
        let told = again(&acme.model, tool, &args).await;
        assert_eq!(told["status"], "done", "round {round}: {told}");
        assert_eq!(told["approval_id"], id.as_str(), "round {round}");
    }
    let listed = admin.approvals().await.unwrap();
    assert_eq!(listed.len(), 10, "{listed:?}");
    assert_eq!(sandbox.stripe_sessions("acme"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_approver_can_no_longer_decide() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let approver = site.approver("acme", "Avery Approver").await;
    let (id, _) = ask(&acme.model, "dns_create_record", &txt(&sandbox, "removed")).await;
    let csrf = form_csrf(&open(site, Some(&approver.cookie), &id).await);
    site.server.admin.remove_person(&approver.id).await.unwrap();

    let shown = open(site, Some(&approver.cookie), &id).await;
    assert!(is_signin_page(&shown), "{}", shown.text);
    let posted = post(
        site,
        Some(&approver.cookie),
        &id,
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert!(is_signin_page(&posted), "{}", posted.text);
    assert_eq!(state_of(site, &id).await, "pending");
    assert_nothing_acted(&sandbox, "a removed approver");
}

/// Sets acme's custom domains, the rest of its spec unchanged.
async fn set_domains(admin: &common::runtime::admin::client::AdminClient, domains: &[String]) {
    let current = admin.tenant("acme").await.unwrap().tenant;
    let mut spec: common::tenant::TenantSpec =
        serde_json::from_value(serde_json::to_value(current).unwrap()).unwrap();
    spec.custom_domains = domains
        .iter()
        .map(|d| common::domain::WebflowId::parse("custom_domains", d).unwrap())
        .collect();
    admin.set_tenant("acme", &spec).await.unwrap();
}

/// What runs is what the approver saw: a publish to "the tenant's domains" shows them when
/// asked; if the operator adds a domain before the approval, the approved publish must not
/// reach the domain nobody was shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approved_action_is_the_one_the_preview_showed() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let admin = &site.server.admin;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let approver = site.approver("acme", "Avery Approver").await;
    set_domains(admin, &f.custom_domain_ids[..1]).await;

    // No domains named: "all of this client's custom domains", which are one now.
    let step = ok_json(&call(&acme.model, "webflow_publish_site", json!({})).await);
    assert_eq!(step["status"], "approval_required", "{step}");
    let shown = step["preview"]["domains"].as_array().unwrap().clone();
    assert_eq!(shown.len(), 1, "{step}");
    let id = step["approval_id"].as_str().unwrap().to_owned();

    set_domains(admin, &f.custom_domain_ids).await;
    let answer = decide(site, &approver, &id, "approve").await;
    answer.assert_page(200);
    let view = admin
        .approvals()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap();
    let published = view
        .outcome
        .as_ref()
        .and_then(|o| o["customDomains"].as_array().cloned())
        .unwrap_or_default();
    assert!(
        published.len() <= shown.len(),
        "the approver was shown {shown:?}; the site was published to {published:?} ({view:?})"
    );
}

/// A write to the sandbox as the Webflow Designer or another tool would make it: straight to
/// Webflow with acme's site token, not through this instance.
async fn webflow_write(sandbox: &Sandbox, method: reqwest::Method, path: &str, body: Value) {
    let f = sandbox.fixture().owner("acme").unwrap();
    let answer = reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.base_url()))
        .bearer_auth(&f.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
}

/// The publish approval shows what goes live: nothing, until pages and items change; then the
/// changed page by name, the changed and new items by name (drafts marked, the first few, the
/// rest counted) under their collection, in a sentence with the counts; the last publish's
/// date in words with its zone; and the preview costs a bounded number of Webflow requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_approval_shows_what_goes_live() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let approver = site.approver("acme", "Avery Approver").await;

    let step = ok_json(
        &call(
            &acme.model,
            "webflow_publish_site",
            json!({"custom_domains": [f.custom_domain_ids[0]]}),
        )
        .await,
    );
    let changes = &step["preview"]["what_changes"];
    assert_eq!(
        changes["summary"], "Nothing changed since the last publish: the live site stays as it is.",
        "{step}"
    );
    assert_eq!(changes["pages"]["count"], 0, "{step}");
    assert_eq!(changes["cms_items"], json!([]), "{step}");

    // A page retitled, a post renamed, and nine new drafts, since the last publish.
    webflow_write(
        &sandbox,
        reqwest::Method::PUT,
        &format!("/v2/pages/{}", f.page_ids[1]),
        json!({"title": "Spring Sale"}),
    )
    .await;
    let (blog, post) = f.item_ids[0].clone();
    webflow_write(
        &sandbox,
        reqwest::Method::PATCH,
        &format!("/v2/collections/{blog}/items/{post}"),
        json!({"fieldData": {"name": "Hello Spring"}}),
    )
    .await;
    for n in 1..=9 {
        webflow_write(
            &sandbox,
            reqwest::Method::POST,
            &format!("/v2/collections/{blog}/items"),
            json!({"isDraft": true, "fieldData": {"name": format!("Idea {n}"), "slug": format!("idea-{n}")}}),
        )
        .await;
    }
    sandbox.clear_requests();

    let step = ok_json(
        &call(
            &acme.model,
            "webflow_publish_site",
            json!({"custom_domains": [f.custom_domain_ids[1]]}),
        )
        .await,
    );
    assert_eq!(step["status"], "approval_required", "{step}");
    let changes = &step["preview"]["what_changes"];
    assert_eq!(
        changes["summary"], "1 page and 10 CMS items changed since the last publish.",
        "{step}"
    );
    assert_eq!(changes["pages"]["names"], json!(["Spring Sale"]), "{step}");
    let posts = &changes["cms_items"][0];
    assert!(
        posts["collection"]
            .as_str()
            .unwrap()
            .starts_with("Blog Posts"),
        "{step}"
    );
    assert_eq!(posts["count"], 10, "{step}");
    let names: Vec<&str> = posts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        9,
        "eight names and the rest counted: {names:?}"
    );
    assert_eq!(names[8], "and 2 more", "{names:?}");
    assert!(
        names.contains(&"Idea 9 (draft: stays unpublished)"),
        "newest first: {names:?}"
    );
    assert_eq!(changes["cms_items"].as_array().unwrap().len(), 1, "{step}");
    assert!(changes.get("not_checked").is_none(), "{step}");
    // The site, its pages, its collections and one listing per collection: 5 of Webflow's 60
    // requests a minute, none of them writes.
    let asked: Vec<String> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(asked.len() <= 5, "{asked:?}");
    assert!(asked.iter().all(|r| r.starts_with("GET ")), "{asked:?}");

    let url = step["approval_url"].as_str().unwrap();
    let page = open_url(site, Some(&approver.cookie), url).await;
    page.assert_page(200);
    for shown in [
        "1 page and 10 CMS items changed since the last publish.",
        "Spring Sale",
        "Idea 9 (draft: stays unpublished)",
        "and 2 more",
        ">Friday 2 May 2025, 14:05 UTC</time>",
    ] {
        assert!(page.text.contains(shown), "{shown} not in {}", page.text);
    }
    assert!(
        !page.text.contains(">2025-05-02T14:05:00.000Z<"),
        "a raw timestamp on the page: {}",
        page.text
    );
}

// ---- what the approver reads is what runs ----

/// The refusal a DNS tool gives for a character the approver would not see.
fn unseen_refusal(argument: &str, character: &str) -> String {
    format!(
        "{argument} contains {character}, which would make the approval preview read \
         differently from what runs; remove it"
    )
}

/// A model's record text with a right-to-left override or a zero-width space is refused by the
/// tool, naming the argument and the character, before anything is previewed or recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_characters_in_a_records_free_text_are_refused() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let www = format!("www.{}", f.zone_name);
    sandbox.clear_requests();

    let cases = [
        (
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": www, "content": "ok", "comment": "Payroll \u{202e}4202 ecnanif"}}),
            unseen_refusal("comment", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": www, "content": "v=spf1 include:\u{200b}evil.example -all"}}),
            unseen_refusal("content", "U+200B (ZERO WIDTH SPACE)"),
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": www, "content": "ok", "comment": "tagged\u{e0041}\u{e0042}"}}),
            unseen_refusal("comment", "U+E0041 (a tag character)"),
        ),
        (
            "dns_create_record",
            json!({"record": {"type": "TXT", "name": www, "content": "ok", "comment": "bell\u{7}"}}),
            unseen_refusal("comment", "U+0007 (a control character)"),
        ),
        (
            "dns_update_record",
            json!({"record_id": f.dns_record_ids[2], "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.9", "comment": "Shop \u{2067}origin\u{2069}"}}),
            unseen_refusal("comment", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
        ),
        (
            "billing_create_portal_session",
            json!({"return_url": "https://acme.example/\u{202e}account"}),
            unseen_refusal("return_url", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ),
    ];
    for (tool, args, expected) in cases {
        let text = error_text(&call(&acme.model, tool, args.clone()).await);
        assert!(text.contains(&expected), "{tool} {args}: {text}");
    }
    let recorded = acme.site.server.admin.approvals().await.unwrap();
    assert!(recorded.is_empty(), "{recorded:?}");
    assert_nothing_acted(&sandbox, "a refused record");

    // The same record without the hidden characters is previewed as usual.
    let clean = json!({"record": {"type": "TXT", "name": www, "content": "ok", "comment": "Payroll finance 2024"}});
    ask(&acme.model, "dns_create_record", &clean).await;
}

/// What an upstream says is shown as it is: a record whose comment someone set in Cloudflare
/// with a right-to-left override, a pop and a zero-width space appears on the approval page
/// (the record before the change, and the outcome after it) with each of them as a visible
/// marker, and never as the raw character.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_page_shows_what_an_upstreams_text_hides() {
    let sandbox = sandbox().await;
    let acme = instance(&sandbox, "acme", 600).await;
    let site = &acme.site;
    let f = sandbox.fixture().owner("acme").unwrap().clone();
    let record = &f.dns_record_ids[2];
    let comment = "Shop origin \u{202e}lanretni\u{202c}\u{200b} (owner:acme)";
    let shown = "Shop origin ⟨U+202E⟩lanretni⟨U+202C⟩⟨U+200B⟩ (owner:acme)";
    // Set in Cloudflare itself (its dashboard or API), not through a tool.
    let seeded = site
        .http
        .patch(format!(
            "{}/client/v4/zones/{}/dns_records/{record}",
            sandbox.base_url(),
            f.zone_id
        ))
        .bearer_auth(&f.cloudflare_token)
        .json(&json!({"comment": comment}))
        .send()
        .await
        .unwrap();
    assert!(seeded.status().is_success(), "{}", seeded.status());
    assert_eq!(
        sandbox.dns_record(&f.zone_id, record).unwrap()["comment"],
        comment
    );

    let approver = site.approver("acme", "Avery Approver").await;
    let args = json!({"record_id": record, "record": {"type": "A", "name": format!("shop.{}", f.zone_name), "content": "198.51.100.9"}});
    let (id, _) = ask(&acme.model, "dns_update_record", &args).await;

    let assert_shown = |page: &Answer, what: &str| {
        page.assert_page(200);
        for raw in ['\u{202e}', '\u{202c}', '\u{200b}'] {
            assert!(
                !page.text.contains(raw),
                "{what}: U+{:04X} raw",
                u32::from(raw)
            );
        }
        let unseen = common::text::first_unseen(&page.text.replace('\n', ""));
        assert_eq!(unseen, None, "{what}: {}", page.text);
        assert!(
            page.text.contains(&format!("<dd>{shown}</dd>")),
            "{what}: {}",
            page.text
        );
        assert!(page.text.contains("Marks like"), "{what}: {}", page.text);
    };
    let page = open(site, Some(&approver.cookie), &id).await;
    assert_shown(&page, "the preview");
    assert!(page.text.contains("198.51.100.9"), "{}", page.text);

    // Approved as shown, the record keeps its comment: the outcome shows it the same way.
    let csrf = form_csrf(&page);
    let done = post(
        site,
        Some(&approver.cookie),
        &id,
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert_shown(&done, "the outcome");
    assert!(
        done.text.contains("Approved and carried out."),
        "{}",
        done.text
    );
    let after = &done.text[done.text.find("<h2>Outcome</h2>").unwrap()..];
    assert!(after.contains(&format!("<dd>{shown}</dd>")), "{after}");
    let stored = sandbox.dns_record(&f.zone_id, record).unwrap();
    assert_eq!(stored["content"], "198.51.100.9");
    assert_eq!(
        stored["comment"], comment,
        "the change kept the comment as it was"
    );
}
