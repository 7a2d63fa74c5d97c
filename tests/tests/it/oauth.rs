//! OAuth for connectors end to end, over real HTTP against an in-process server whose public URL
//! is `http://localhost:<port>` (passkeys need a domain): a person invited by the studio
//! registers a passkey, an assistant registers itself, the person allows it, and the assistant's
//! tokens open `/connector` — and each bad input gets a clear answer and changes nothing (the
//! admin API's grants stay as they were, no token works that should not).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tests::connector::*;
use tests::harness::{Captured, TestServer, call, ok_json, stored, use_data_dir};
use tests::passkey::{self, SoftPasskey};

// ---- the way it should go ----

#[tokio::test]
async fn a_person_connects_an_assistant_with_a_passkey_and_consent() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex Doe").await;
    let client_id = site.register_client().await;

    let page = site
        .authorize_page(Some(&alex.cookie), &site.params(&client_id))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Test Assistant"), "client name shown");
    assert!(page.text.contains("acme Inc"), "tenant name shown");
    assert!(
        page.text.contains("assistant.example"),
        "redirect host shown"
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let form = with(&hidden_fields(&page.text), "decision", "allow");
    let (base, query) = site.submit_consent(&alex.cookie, &form).await.redirect();
    assert_eq!(base, REDIRECT);
    assert_eq!(query["state"], STATE);
    assert_eq!(query["iss"], site.server.connector_origin);
    let code = &query["code"];

    let answer = site.exchange(&client_id, code, VERIFIER).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let tokens = answer.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "mcp");
    assert_eq!(answer.header("cache-control").as_deref(), Some("no-store"));
    let access = tokens["access_token"].as_str().unwrap();

    let client = tests::harness::connect(&site.connector_url(), access, None)
        .await
        .expect("rmcp connects to /connector with the access token");
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    assert_eq!(who["person"]["id"], alex.id);
    assert_eq!(who["person"]["name"], "Alex Doe");
    assert_eq!(who["person"]["client"], client_id);

    let grants = site.grants().await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].person, alex.id);
    assert_eq!(grants[0].client_name, "Test Assistant");
    assert_eq!(grants[0].audience, site.connector_url());
}

#[tokio::test]
async fn declining_sends_access_denied_and_no_code() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let form = site.consent_form(&alex, &site.params(&client_id)).await;

    let (base, query) = site
        .submit_consent(&alex.cookie, &with(&form, "decision", "deny"))
        .await
        .redirect();
    assert_eq!(base, REDIRECT);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], STATE);
    assert!(!query.contains_key("code"));
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn oauth_tokens_open_only_connector_and_static_tokens_only_mcp() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let static_token = site.static_token("acme").await;

    assert_eq!(site.connector_status(&connection.access).await, 200);
    assert_eq!(
        site.mcp_post(&site.static_url("/mcp"), Some(&static_token))
            .await
            .status,
        200
    );
    assert_eq!(
        site.mcp_post(&site.static_url("/mcp"), Some(&connection.access))
            .await
            .status,
        401
    );
    assert_eq!(site.connector_status(&static_token).await, 401);
    // A refresh token is not an access token either.
    assert_eq!(site.connector_status(&connection.refresh).await, 401);
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let first = site.connect(&alex).await;

    let answer = site.refresh(&first.client_id, &first.refresh).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let rotated = answer.json();
    let access = rotated["access_token"].as_str().unwrap();
    let refresh = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(access, first.access);
    assert_ne!(refresh, first.refresh);
    assert_eq!(site.connector_status(access).await, 200);

    // The old refresh token again: someone has a copy, so the whole connection ends.
    site.refresh(&first.client_id, &first.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(site.connector_status(access).await, 401);
    assert_eq!(site.connector_status(&first.access).await, 401);
    site.refresh(&first.client_id, refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let grants = site.grants().await;
    assert_eq!(grants.len(), 1);
    assert!(grants[0].revoked_at.is_some());
}

/// Two requests with one refresh token at the same moment (a client retrying, or a thief racing
/// it): one gets new tokens, the other is told the connection is revoked — so the tokens the
/// first got must not work either. Many rounds on several threads, since it is a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_refresh_token_used_twice_at_once_leaves_no_working_token() {
    let sandbox = sandbox().await;
    let site = std::sync::Arc::new(shared(&sandbox).await);
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let mut live = Vec::new();
    for round in 0..100 {
        let code = site.allow(&alex, &client_id).await;
        let refresh = site.exchange(&client_id, &code, VERIFIER).await.json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (site, client_id, refresh) = (site.clone(), client_id.clone(), refresh.clone());
                tokio::spawn(async move { site.refresh(&client_id, &refresh).await })
            })
            .collect();
        // Both answers first: until the replay has been seen, the winner's token is good.
        let mut answers = Vec::new();
        for racer in racers {
            answers.push(racer.await.unwrap());
        }
        let mut statuses = Vec::new();
        for answer in answers {
            statuses.push(answer.status);
            if let Some(access) = answer.json()["access_token"].as_str()
                && site.connector_status(access).await == 200
            {
                live.push(round);
            }
        }
        statuses.sort();
        assert_eq!(statuses, [200, 400], "round {round}");
    }
    assert!(site.grants().await.iter().all(|g| g.revoked_at.is_some()));
    assert!(
        live.is_empty(),
        "in rounds {live:?} the grant was revoked as a replay, yet the access token handed out \
         by the winning refresh still opens /connector"
    );
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_own_client() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let other_client = site.register_client().await;

    site.refresh(&other_client, &connection.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // Refused, not consumed: the rightful client still refreshes.
    let answer = site
        .refresh(&connection.client_id, &connection.refresh)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn the_audit_log_records_consent_tokens_refresh_and_who_called() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let answer = site
        .refresh(&connection.client_id, &connection.refresh)
        .await;
    let access = answer.json()["access_token"].as_str().unwrap().to_owned();
    let client = tests::harness::connect(&site.connector_url(), &access, None)
        .await
        .unwrap();
    ok_json(&call(&client, "whoami", json!({})).await);

    let records = site.audit().await;
    let find = |action: &str| {
        records
            .iter()
            .find(|r| r.action == action && r.outcome == "ok")
            .unwrap_or_else(|| panic!("no `{action}` record in {records:#?}"))
    };
    for action in ["oauth:consent", "oauth:token", "oauth:refresh"] {
        let record = find(action);
        assert_eq!(record.tenant, "acme", "{action}");
        assert_eq!(record.person.as_deref(), Some(alex.id.as_str()), "{action}");
        assert_eq!(
            record.client.as_deref(),
            Some(connection.client_id.as_str())
        );
    }
    let whoami = find("whoami");
    assert_eq!(whoami.tenant, "acme");
    assert_eq!(whoami.person.as_deref(), Some(alex.id.as_str()));
    assert_eq!(
        whoami.client.as_deref(),
        Some(connection.client_id.as_str())
    );
}

// ---- codes and PKCE ----

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_the_grant() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let (_alex, client_id, code) = site.allowed("acme", "Alex").await;
    let first = site.exchange(&client_id, &code, VERIFIER).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();

    site.exchange(&client_id, &code, VERIFIER)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(site.connector_status(&access).await, 401);
    site.refresh(&client_id, &refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let grants = site.grants().await;
    assert_eq!(grants.len(), 1);
    assert!(grants[0].revoked_at.is_some());
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_voids_the_code() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let (_alex, client_id, code) = site.allowed("acme", "Alex").await;

    let wrong = "another-verifier-0123456789-abcdefghijklmnopqrstu";
    site.exchange(&client_id, &code, wrong)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // A guess costs the code: the right verifier no longer helps.
    site.exchange(&client_id, &code, VERIFIER)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let thief = site.register_client().await;

    let code = site.allow(&alex, &client_id).await;
    site.exchange(&thief, &code, VERIFIER)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let code = site.allow(&alex, &client_id).await;
    site.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client_id),
        ("redirect_uri", "https://assistant.example/elsewhere"),
        ("code_verifier", VERIFIER),
    ])
    .await
    .assert_oauth_error(400, "invalid_grant");
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn a_code_dies_with_the_person_who_allowed_it() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let (alex, client_id, code) = site.allowed("acme", "Alex").await;

    site.server.admin.remove_person(&alex.id).await.unwrap();

    site.exchange(&client_id, &code, VERIFIER)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn a_missing_code_verifier_is_an_invalid_request() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let (_alex, client_id, code) = site.allowed("acme", "Alex").await;

    site.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client_id),
        ("redirect_uri", REDIRECT),
    ])
    .await
    .assert_oauth_error(400, "invalid_request");
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn plain_pkce_is_refused_on_a_page_without_a_code() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let plain = with(&site.params(&client_id), "code_challenge_method", "plain");
    let plain = with(&plain, "code_challenge", VERIFIER);

    // A page for the person, never a redirect: the request is not one they have consented to.
    let page = site.authorize_page(Some(&alex.cookie), &plain).await;
    page.assert_page(400);
    assert!(page.header("location").is_none());
    assert!(page.text.contains("S256"), "{}", page.text);

    // Nor can the consent form be made to carry it.
    let form = site.consent_form(&alex, &site.params(&client_id)).await;
    let form = with(&form, "code_challenge_method", "plain");
    let form = with(
        &with(&form, "code_challenge", VERIFIER),
        "decision",
        "allow",
    );
    let answer = site.submit_consent(&alex.cookie, &form).await;
    answer.assert_page(400);
    assert!(answer.header("location").is_none());
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn a_redirect_uri_one_character_off_gets_a_page_and_no_redirect() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let off_by_one = format!("{}X", &REDIRECT[..REDIRECT.len() - 1]);
    let params = with(&site.params(&client_id), "redirect_uri", &off_by_one);

    let page = site.authorize_page(Some(&alex.cookie), &params).await;
    page.assert_page(400);
    assert!(page.text.contains("did not register"), "{}", page.text);

    // The form, tampered with after the page was shown, is refused the same way.
    let form = site.consent_form(&alex, &site.params(&client_id)).await;
    let form = with(
        &with(&form, "redirect_uri", &off_by_one),
        "decision",
        "allow",
    );
    site.submit_consent(&alex.cookie, &form)
        .await
        .assert_page(400);
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn a_resource_for_another_server_is_an_invalid_target() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let elsewhere = "https://other.example/connector";

    let params = with(&site.params(&client_id), "resource", elsewhere);
    let page = site.authorize_page(Some(&alex.cookie), &params).await;
    page.assert_page(400);
    assert!(page.header("location").is_none());
    assert!(page.text.contains("invalid_target"), "{}", page.text);

    let code = site.allow(&alex, &client_id).await;
    site.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client_id),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", elsewhere),
    ])
    .await
    .assert_oauth_error(400, "invalid_target");
    assert!(site.grants().await.is_empty());

    let connection = site.connect(&alex).await;
    site.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &connection.refresh),
        ("client_id", &connection.client_id),
        ("resource", elsewhere),
    ])
    .await
    .assert_oauth_error(400, "invalid_target");
    assert_eq!(site.connector_status(&connection.access).await, 200);
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    for grant_type in ["password", "client_credentials", "implicit"] {
        site.token(&[("grant_type", grant_type), ("client_id", "dcr_x")])
            .await
            .assert_oauth_error(400, "unsupported_grant_type");
    }
    assert!(site.grants().await.is_empty());
    // Whatever a caller puts in grant_type, a refusal does not carry it back: here a live
    // refresh token pasted into it (found by the fuzz target oauth_token_and_revoke).
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let pasted = format!("{}refresh_token", connection.refresh);
    let answer = site
        .token(&[
            ("grant_type", pasted.as_str()),
            ("refresh_token", connection.refresh.as_str()),
            ("client_id", connection.client_id.as_str()),
        ])
        .await;
    answer.assert_oauth_error(400, "unsupported_grant_type");
    assert!(
        !answer.text.contains(&connection.refresh),
        "{}",
        answer.text
    );
}

// ---- the consent form ----

#[tokio::test]
async fn consent_without_the_sessions_csrf_token_is_refused() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let sam = site.person("acme", "Sam").await;
    let client_id = site.register_client().await;
    let form = with(
        &site.consent_form(&alex, &site.params(&client_id)).await,
        "decision",
        "allow",
    );
    // Another session's token is a perfectly shaped, wrong one.
    let sams_form = site.consent_form(&sam, &site.params(&client_id)).await;

    for form in [
        without(&form, "csrf"),
        with(&form, "csrf", ""),
        with(&form, "csrf", field(&sams_form, "csrf")),
    ] {
        site.submit_consent(&alex.cookie, &form)
            .await
            .assert_page(403);
    }
    assert!(site.grants().await.is_empty());
}

/// One consent page, one code: the form carries a single-use ticket, so a double submit, a
/// replayed form, or one form with its parameters changed makes nothing more.
#[tokio::test]
async fn a_consent_form_makes_one_code_only() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let form = with(
        &site.consent_form(&alex, &site.params(&client_id)).await,
        "decision",
        "allow",
    );
    let first = site.submit_consent(&alex.cookie, &form).await;
    let (_, query) = first.redirect();
    assert!(query.contains_key("code"), "{query:?}");
    site.submit_consent(&alex.cookie, &form)
        .await
        .assert_page(403);

    // A fresh form whose request is changed after it was shown (another state) is refused too.
    let fresh = with(
        &site.consent_form(&alex, &site.params(&client_id)).await,
        "decision",
        "allow",
    );
    site.submit_consent(&alex.cookie, &with(&fresh, "state", "other"))
        .await
        .assert_page(403);
    site.submit_consent(&alex.cookie, &without(&fresh, "consent"))
        .await
        .assert_page(403);
    let allowed = site
        .audit()
        .await
        .iter()
        .filter(|r| r.action == "oauth:consent" && r.outcome == "ok")
        .count();
    assert_eq!(allowed, 1, "one code was made");
}

/// The `Origin` a browser sends with a form its page at `origin` posts back to `origin`
/// (Fetch, "append a request `Origin` header": a non-CORS POST from a page whose referrer
/// policy is `no-referrer` says `null`; Chromium and Firefox do so).
fn same_origin_form_post_origin(page: &Answer, origin: &str) -> String {
    match page.header("referrer-policy").as_deref() {
        Some("no-referrer") => "null".to_owned(),
        _ => origin.to_owned(),
    }
}

/// The person's click on "Allow access" as a real browser sends it, `Origin` included.
#[tokio::test]
async fn the_consent_form_works_as_a_browser_posts_it() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let page = site
        .authorize_page(Some(&alex.cookie), &site.params(&client_id))
        .await;
    let form = with(&hidden_fields(&page.text), "decision", "allow");

    // Another site's page posting the form is refused, whatever it carries.
    let foreign = site
        .submit_consent_from("https://evil.example", &alex.cookie, &form)
        .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);
    assert!(foreign.header("location").is_none());
    let origin = same_origin_form_post_origin(&page, &site.server.connector_origin);
    let answer = site.submit_consent_from(&origin, &alex.cookie, &form).await;
    assert_eq!(
        answer.status,
        303,
        "the person's own consent click, as a browser sends it (Origin: {origin}, because the \
         page says Referrer-Policy: {:?}), was refused: {}",
        page.header("referrer-policy"),
        answer.text
    );
    let (_, query) = answer.redirect();
    assert!(query.contains_key("code"));
}

#[tokio::test]
async fn a_person_cannot_consent_for_another_tenant() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;
    let form = site.consent_form(&alex, &site.params(&client_id)).await;
    assert_eq!(field(&form, "tenant"), "acme");

    let form = with(&with(&form, "tenant", "globex"), "decision", "allow");
    site.submit_consent(&alex.cookie, &form)
        .await
        .assert_page(403);
    assert!(site.grants().await.is_empty());
    let consents: Vec<_> = site
        .audit()
        .await
        .into_iter()
        .filter(|r| r.action == "oauth:consent")
        .collect();
    assert!(consents.iter().all(|r| r.outcome != "ok"), "{consents:?}");
}

// ---- invites ----

#[tokio::test]
async fn an_invite_registers_one_passkey_only() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let invited = site.invite("acme", "Alex").await;
    let url = &invited.invite_url;
    // Two tabs open the link; both get as far as the passkey prompt.
    let first = passkey::invite_options(&site.http, url).await;
    let second = passkey::invite_options(&site.http, url).await;
    assert_eq!((first.status, second.status), (200, 200));

    let mut winner = SoftPasskey::new(&site.server.connector_origin);
    let done = passkey::invite_finish(&site.http, url, &mut winner, &first.body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let mut loser = SoftPasskey::new(&site.server.connector_origin);
    let refused = passkey::invite_finish(&site.http, url, &mut loser, &second.body).await;
    assert_eq!(refused.status, 410, "{}", refused.body);
    assert!(refused.cookie.is_none());

    assert_eq!(passkey::invite_options(&site.http, url).await.status, 410);
    let page = Answer::read(site.http.get(url).send().await.unwrap()).await;
    page.assert_page(410);
    let people = site.server.admin.people(Some("acme")).await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].passkeys, 1);
    let sign_in = passkey::try_sign_in(&site.http, &site.server.connector_origin, &mut loser).await;
    assert_eq!(sign_in.status, 403, "{}", sign_in.body);
    assert!(sign_in.cookie.is_none());
}

#[tokio::test]
async fn an_invite_signs_the_person_in_with_a_locked_down_cookie() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let invited = site.invite("acme", "Alex").await;
    let page = Answer::read(site.http.get(&invited.invite_url).send().await.unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Alex") && page.text.contains("acme Inc"));
    // The URL holds the invite: never sent to another site.
    let policy = page.header("referrer-policy").unwrap_or_default();
    assert!(
        ["no-referrer", "same-origin"].contains(&policy.as_str()),
        "{policy}"
    );

    let options = passkey::invite_options(&site.http, &invited.invite_url).await;
    let mut passkey = SoftPasskey::new(&site.server.connector_origin);
    let done =
        passkey::invite_finish(&site.http, &invited.invite_url, &mut passkey, &options.body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let set_cookie = done.set_cookie.unwrap();
    assert!(
        set_cookie.starts_with("studio_mcp_shared_session=sms_"),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(site.signed_in(&done.cookie.unwrap()).await);
    let people = site.server.admin.people(Some("acme")).await.unwrap();
    assert_eq!(people[0].passkeys, 1);
}

#[tokio::test]
async fn a_passkey_made_for_another_site_is_refused_and_the_invite_still_works() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let invited = site.invite("acme", "Alex").await;
    let url = &invited.invite_url;
    let options = passkey::invite_options(&site.http, url).await;
    // A phishing page's origin: the browser would put it in clientDataJSON.
    let mut phished = SoftPasskey::new("http://evil.example");

    let refused = passkey::invite_finish(&site.http, url, &mut phished, &options.body).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.cookie.is_none());
    let people = site.server.admin.people(Some("acme")).await.unwrap();
    assert_eq!(people[0].passkeys, 0);
    let (_, cookie) = passkey::register_with_invite(&site.http, url).await;
    assert!(site.signed_in(&cookie).await);
}

#[tokio::test]
async fn one_invites_passkey_step_cannot_finish_another_invite() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.invite("acme", "Alex").await;
    let gina = site.invite("globex", "Gina").await;
    let alexs_options = passkey::invite_options(&site.http, &alex.invite_url).await;

    let mut passkey = SoftPasskey::new(&site.server.connector_origin);
    let refused = passkey::invite_finish(
        &site.http,
        &gina.invite_url,
        &mut passkey,
        &alexs_options.body,
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.cookie.is_none());
    for invited in [&alex, &gina] {
        let (_, cookie) = passkey::register_with_invite(&site.http, &invited.invite_url).await;
        assert!(site.signed_in(&cookie).await);
    }
}

#[tokio::test]
async fn an_unknown_or_garbled_invite_gets_a_gone_page() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let invited = site.invite("acme", "Alex").await;
    let real = &invited.invite_url;
    let cut = &real[..real.len() - 1];
    let unknown = site.url("/invite/smi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let long = site.url(&format!("/invite/smi_{}", "A".repeat(300)));

    for url in [cut, unknown.as_str(), long.as_str()] {
        let page = Answer::read(site.http.get(url).send().await.unwrap()).await;
        page.assert_page(410);
        assert!(page.text.contains("cannot be used"), "{}", page.text);
        assert_eq!(passkey::invite_options(&site.http, url).await.status, 410);
    }
    // None of that touched the real invite.
    let (_, cookie) = passkey::register_with_invite(&site.http, real).await;
    assert!(site.signed_in(&cookie).await);
}

#[tokio::test]
async fn a_session_cookie_and_a_passkey_sign_in_again() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    assert!(site.signed_in(&alex.cookie).await);
    assert!(!site.signed_in("studio_mcp_session=sms_forged").await);

    let cookie =
        passkey::sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    assert_ne!(cookie, alex.cookie);
    assert!(site.signed_in(&cookie).await);
    // A second sign-in (the counter moves on) works too.
    let again =
        passkey::sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    assert!(site.signed_in(&again).await);
}

/// A lost device: the studio re-invites the person. Their old passkey and sessions stop at
/// once; the new link registers a new passkey for the same person; their connections stay.
#[tokio::test]
async fn a_reinvite_replaces_a_lost_passkey_and_keeps_the_person() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    assert_eq!(site.connector_status(&connection.access).await, 200);

    let request = common::runtime::admin::ReinviteRequest::default();
    let invited = site
        .server
        .admin
        .reinvite_person(&alex.id, &request)
        .await
        .unwrap();
    assert_eq!(invited.person.id, alex.id);
    assert_eq!(invited.person.passkeys, 0);
    assert!(!site.signed_in(&alex.cookie).await);
    let old =
        passkey::try_sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    assert_eq!(
        old.status, 403,
        "the lost passkey still signs in: {}",
        old.body
    );
    assert!(old.cookie.is_none());
    // The connection an assistant already holds is not the device's: it keeps working.
    assert_eq!(site.connector_status(&connection.access).await, 200);

    let (mut fresh, cookie) = passkey::register_with_invite(&site.http, &invited.invite_url).await;
    assert!(site.signed_in(&cookie).await);
    let again = passkey::sign_in(&site.http, &site.server.connector_origin, &mut fresh).await;
    assert!(site.signed_in(&again).await);
    let people = site.server.admin.people(Some("acme")).await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].passkeys, 1);
    // Unknown people get a clear 404.
    let err = site
        .server
        .admin
        .reinvite_person("p_nobody", &request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn a_copied_passkey_is_caught_by_its_signature_counter() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    let mut copy = alex.passkey.clone();
    passkey::sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;

    // The copy's counter is behind the one the server stored.
    let refused = passkey::try_sign_in(&site.http, &site.server.connector_origin, &mut copy).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.cookie.is_none());
}

#[tokio::test]
async fn a_signed_out_person_signs_in_on_the_way_to_consent() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    let client_id = site.register_client().await;

    let page = site.authorize_page(None, &site.params(&client_id)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("data-mode=\"signin\""), "{}", page.text);
    assert!(page.text.contains("Test Assistant"), "{}", page.text);
    let next = unescape(
        page.text
            .split("data-next=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap(),
    );
    assert!(next.starts_with("/authorize?"), "{next}");

    let cookie =
        passkey::sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    let consent = Answer::read(
        site.http
            .get(site.url(&next))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    assert_eq!(field(&hidden_fields(&consent.text), "client_id"), client_id);
    assert!(site.grants().await.is_empty());
}

#[tokio::test]
async fn signing_out_ends_the_session_but_not_the_connection() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let form = site
        .consent_form(&alex, &site.params(&connection.client_id))
        .await;

    let answer = site
        .http
        .post(site.url("/signout"))
        .header("cookie", &alex.cookie)
        .header("origin", &site.server.connector_origin)
        .form(&[("csrf", field(&form, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(!site.signed_in(&alex.cookie).await);
    assert_eq!(site.connector_status(&connection.access).await, 200);
}

// ---- clients ----

#[tokio::test]
async fn registration_floods_are_slowed_down() {
    let sandbox = sandbox().await;
    let site = shared_with(&sandbox, |config| config.oauth.registrations_per_min = 5).await;
    let metadata = json!({"client_name": "Flood", "redirect_uris": [REDIRECT]});
    for n in 1..=5 {
        let answer = site.try_register(&metadata).await;
        assert_eq!(answer.status, 201, "registration {n}: {}", answer.text);
    }

    let sixth = site.try_register(&metadata).await;
    assert_eq!(sixth.status, 429, "{}", sixth.text);
    assert_eq!(sixth.json()["error"], "slow_down");
    let retry: u64 = sixth.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
}

#[tokio::test]
async fn registration_refuses_plain_http_redirects_to_other_hosts() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    for uri in [
        "http://assistant.example/callback",
        "javascript:alert(1)",
        "https://assistant.example/callback#frag",
    ] {
        let answer = site
            .try_register(&json!({"client_name": "Bad", "redirect_uris": [uri]}))
            .await;
        assert_eq!(answer.status, 400, "{uri}: {}", answer.text);
        assert_eq!(answer.json()["error"], "invalid_client_metadata", "{uri}");
    }
    // Loopback http is what native apps use (RFC 8252): allowed.
    let loopback = site
        .try_register(&json!({"redirect_uris": ["http://127.0.0.1:33418/callback"]}))
        .await;
    assert_eq!(loopback.status, 201, "{}", loopback.text);
}

#[tokio::test]
async fn a_metadata_document_client_id_over_http_gets_a_page() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let params = with(
        &site.params("x"),
        "client_id",
        "http://assistant.example/client.json",
    );

    let page = site.authorize_page(Some(&alex.cookie), &params).await;
    page.assert_page(400);
    assert!(page.text.contains("https"), "{}", page.text);
}

#[tokio::test]
async fn a_metadata_document_on_a_private_address_is_refused_without_hanging() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let params = with(&site.params("x"), "client_id", "https://127.0.0.1:1/x.json");

    let page = tokio::time::timeout(
        Duration::from_secs(10),
        site.authorize_page(Some(&alex.cookie), &params),
    )
    .await
    .expect("answered within 10 s");
    page.assert_page(400);
    assert!(page.text.contains("private or loopback"), "{}", page.text);
}

// ---- removal ----

#[tokio::test]
async fn removing_a_person_ends_their_connections_and_sessions_at_once() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    let sam = site.person("acme", "Sam").await;
    let alexs = site.connect(&alex).await;
    let sams = site.connect(&sam).await;

    let removed = site.server.admin.remove_person(&alex.id).await.unwrap();
    assert_eq!(removed.grants_revoked, 1);

    assert_eq!(site.connector_status(&alexs.access).await, 401);
    site.refresh(&alexs.client_id, &alexs.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!site.signed_in(&alex.cookie).await);
    let sign_in =
        passkey::try_sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    assert_eq!(sign_in.status, 403, "{}", sign_in.body);
    // Sam, same tenant, is untouched.
    assert_eq!(site.connector_status(&sams.access).await, 200);
    assert!(site.signed_in(&sam.cookie).await);
}

#[tokio::test]
async fn revoking_a_grant_ends_that_connection_at_once() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let revoked = site.connect(&alex).await;
    let kept = site.connect(&alex).await;
    let grant = site
        .grants()
        .await
        .into_iter()
        .find(|g| g.client_id == revoked.client_id)
        .unwrap();

    site.server.admin.revoke_grant(&grant.id).await.unwrap();

    assert_eq!(site.connector_status(&revoked.access).await, 401);
    site.refresh(&revoked.client_id, &revoked.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(site.connector_status(&kept.access).await, 200);
    // The person is not locked out: connecting again makes a new, working grant.
    let again = site.connect(&alex).await;
    assert_eq!(site.connector_status(&again.access).await, 200);
}

#[tokio::test]
async fn a_client_revokes_its_own_connection_and_no_one_elses() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    let revoke = |client_id: String| {
        let token = connection.refresh.clone();
        let http = site.http.clone();
        let url = site.url("/revoke");
        async move {
            let form = [("token", token), ("client_id", client_id)];
            http.post(url).form(&form).send().await.unwrap().status()
        }
    };

    // Another client naming the token: answered like any unknown token (RFC 7009), no effect.
    let other = site.register_client().await;
    assert_eq!(revoke(other).await, 200);
    assert_eq!(site.connector_status(&connection.access).await, 200);

    assert_eq!(revoke(connection.client_id.clone()).await, 200);
    assert_eq!(site.connector_status(&connection.access).await, 401);
    site.refresh(&connection.client_id, &connection.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(site.grants().await[0].revoked_at.is_some());
}

#[tokio::test]
async fn removing_a_tenant_ends_its_peoples_connections_and_sessions() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let mut alex = site.person("acme", "Alex").await;
    let gina = site.person("globex", "Gina").await;
    let alexs = site.connect(&alex).await;
    let ginas = site.connect(&gina).await;

    site.server.admin.remove_tenant("acme").await.unwrap();

    assert_eq!(site.connector_status(&alexs.access).await, 401);
    site.refresh(&alexs.client_id, &alexs.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!site.signed_in(&alex.cookie).await);
    let sign_in =
        passkey::try_sign_in(&site.http, &site.server.connector_origin, &mut alex.passkey).await;
    assert_eq!(sign_in.status, 403, "{}", sign_in.body);
    assert!(
        site.server
            .admin
            .people(Some("acme"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(site.connector_status(&ginas.access).await, 200);
    assert!(site.signed_in(&gina.cookie).await);
}

#[tokio::test]
async fn connections_sessions_and_revocations_survive_a_restart() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let site = shared_with(&sandbox, |config| use_data_dir(config, &data_dir)).await;
    let alex = site.person("acme", "Alex").await;
    let kept = site.connect(&alex).await;
    let revoked = site.connect(&alex).await;
    let grant = site
        .grants()
        .await
        .into_iter()
        .find(|g| g.client_id == revoked.client_id);
    site.server
        .admin
        .revoke_grant(&grant.unwrap().id)
        .await
        .unwrap();
    let connector_url = site.connector_url();
    site.server.stop().await;

    // Same data dir, same connector URL (the tokens' audience), same port.
    let port = reqwest::Url::parse(&connector_url).unwrap().port().unwrap();
    let restarted = Site::new(
        TestServer::start_on_localhost_with(&sandbox, &shared_server::SHARED, |config| {
            use_data_dir(config, &data_dir);
            config.connector_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            config.connector_url = Some(connector_url.clone());
        })
        .await,
    );

    assert_eq!(restarted.connector_status(&kept.access).await, 200);
    assert!(restarted.signed_in(&alex.cookie).await);
    assert_eq!(restarted.connector_status(&revoked.access).await, 401);
    restarted
        .refresh(&revoked.client_id, &revoked.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let answer = restarted.refresh(&kept.client_id, &kept.refresh).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

// ---- discovery ----

/// Every path where a client could discover OAuth: RFC 8414, RFC 9728 and OpenID well-known
/// names, bare and suffixed with either door's old or new MCP path, and the endpoints claude.ai
/// appends to an origin.
const DISCOVERY_PATHS: &[&str] = &[
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource/connector",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/oauth-authorization-server/connector",
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/mcp",
    "/.well-known/openid-configuration/connector",
    "/mcp/.well-known/oauth-protected-resource",
    "/mcp/.well-known/openid-configuration",
    "/authorize",
    "/token",
    "/register",
    "/revoke",
];

#[tokio::test]
async fn the_static_door_never_points_at_oauth_and_the_connector_door_does() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let static_token = site.static_token("acme").await;
    let static_mcp = site.static_url("/mcp");

    // The static door: a bare challenge, and nothing to discover at any path, whatever the method.
    for token in [None, Some("smt_not_a_token"), Some(static_token.as_str())] {
        let answer = site.mcp_post(&static_mcp, token).await;
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(
            !challenge.contains("resource_metadata"),
            "{token:?}: {challenge}"
        );
        assert!(!answer.text.contains("oauth-protected-resource"));
    }
    for path in DISCOVERY_PATHS {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let answer = Answer::read(
                site.http
                    .request(method.clone(), site.static_url(path))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(answer.status, 404, "{method} {path} on the static door");
            assert!(
                !answer.text.contains("authorization_endpoint")
                    && !answer.text.contains("authorization_servers"),
                "{method} {path}: {}",
                answer.text
            );
        }
    }
    // The old connector path names the new URL, and nothing a client could follow.
    let moved = site.mcp_post(&site.static_url("/connector"), None).await;
    assert_eq!(moved.status, 410);
    assert!(moved.text.contains(&site.connector_url()), "{}", moved.text);
    assert!(moved.header("www-authenticate").is_none());

    // The connector door: exactly `/mcp`, its challenge pointing at the path-suffixed metadata.
    let expected = format!(
        r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
        site.server.connector_origin
    );
    for token in [None, Some("sma_not_a_token"), Some(static_token.as_str())] {
        let answer = site.mcp_post(&site.connector_url(), token).await;
        assert_eq!(answer.status, 401);
        let challenge = answer.header("www-authenticate").unwrap();
        assert!(challenge.starts_with(&expected), "{challenge}");
    }
    assert!(site.connector_url().ends_with("/mcp"));
    // Both protected-resource forms, `resource` byte-equal to the connector URL.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let metadata = Answer::read(site.http.get(site.url(path)).send().await.unwrap()).await;
        assert_eq!(metadata.status, 200, "{path}");
        assert_eq!(metadata.json()["resource"], site.connector_url(), "{path}");
        assert_eq!(
            metadata.json()["authorization_servers"],
            json!([site.server.connector_origin])
        );
    }
    // The authorization server on the same origin, every endpoint at its root.
    let metadata = Answer::read(
        site.http
            .get(site.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let origin = &site.server.connector_origin;
    assert_eq!(metadata.json()["issuer"], *origin);
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(metadata.json()[key], format!("{origin}{path}"));
    }
    // The retired `/connector` path is nothing on the connector door either.
    let old = site.mcp_post(&site.url("/connector"), None).await;
    assert_eq!(old.status, 404);
}

// ---- two servers ----

#[tokio::test]
async fn shared_and_isolated_tokens_mean_nothing_to_each_other() {
    let sandbox = sandbox().await;
    let shared = shared(&sandbox).await;
    let isolated = Site::new(
        TestServer::start_on_localhost_with(&sandbox, &isolated_server::ISOLATED, |config| {
            config.tenant = Some("acme".into())
        })
        .await,
    );
    isolated
        .server
        .provision_isolated(sandbox.fixture().owner("acme").unwrap())
        .await;
    let mut shared_alex = shared.person("acme", "Alex").await;
    let isolated_alex = isolated.person("acme", "Alex").await;
    let from_shared = shared.connect(&shared_alex).await;
    let from_isolated = isolated.connect(&isolated_alex).await;

    assert_eq!(shared.connector_status(&from_shared.access).await, 200);
    assert_eq!(isolated.connector_status(&from_isolated.access).await, 200);
    assert_eq!(isolated.connector_status(&from_shared.access).await, 401);
    assert_eq!(shared.connector_status(&from_isolated.access).await, 401);
    // No static door takes an access token, its own server's or the other's.
    for site in [&shared, &isolated] {
        for token in [&from_shared.access, &from_isolated.access] {
            let answer = site.mcp_post(&site.static_url("/mcp"), Some(token)).await;
            assert_eq!(answer.status, 401);
        }
    }
    isolated
        .refresh(&from_shared.client_id, &from_shared.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // Both on `localhost` (cookies and passkeys ignore ports): each server's cookie has a name
    // of its own, and a session of one signs nobody in on the other.
    assert!(
        shared_alex.cookie.starts_with("studio_mcp_shared_session="),
        "{}",
        shared_alex.cookie
    );
    assert!(
        isolated_alex
            .cookie
            .starts_with("studio_mcp_isolated_acme_session="),
        "{}",
        isolated_alex.cookie
    );
    assert!(!isolated.signed_in(&shared_alex.cookie).await);
    assert!(!shared.signed_in(&isolated_alex.cookie).await);
    // A browser offers both servers' passkeys, each named after its server; picking the other
    // server's says exactly that.
    let invited = isolated.invite("acme", "Dana Ruiz").await;
    let options = passkey::invite_options(&isolated.http, &invited.invite_url).await;
    let user = &options.body["publicKey"]["user"];
    assert_eq!(
        user["name"], "Dana Ruiz \u{2014} acme Inc, studio-mcp isolated",
        "{user}"
    );
    assert_eq!(user["displayName"], user["name"]);
    let wrong = passkey::try_sign_in(
        &isolated.http,
        &isolated.server.connector_origin,
        &mut shared_alex.passkey,
    )
    .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        wrong
            .body
            .to_string()
            .contains("This passkey is for another studio-mcp server"),
        "{}",
        wrong.body
    );
}

/// Without a connector URL a server has no OAuth door and no people: nobody can be invited,
/// and the static door's old `/connector` says there is none.
#[tokio::test]
async fn a_server_without_a_connector_door_has_no_people_pages() {
    let sandbox = sandbox().await;
    let server = TestServer::start_on_localhost_with(&sandbox, &shared_server::SHARED, |config| {
        config.connector_listen = None;
        config.connector_url = None;
    })
    .await;
    assert!(server.connector_url.is_empty());
    let tenant = server.provision_owner(&sandbox, "acme").await;
    let refused = server
        .admin
        .invite_person(
            "acme",
            &common::runtime::admin::InviteRequest {
                name: "Alex".into(),
                email: None,
                role: None,
                expires_days: None,
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("no connector door"), "{refused}");
    assert!(refused.contains("STUDIO_MCP_CONNECTOR_URL"), "{refused}");
    let info = server.admin.server().await.unwrap();
    assert_eq!(info.connector_url, None);
    let (status, text) = server
        .post_raw_at(&format!("{}/connector", server.public_url), None, "{}")
        .await;
    assert_eq!(status, 410);
    assert!(text.contains("no connector door"), "{text}");
    let (status, _) = server
        .post_raw_at(&format!("{}/register", server.public_url), None, "{}")
        .await;
    assert_eq!(status, 404);
    // Static tokens work as ever.
    let client = server.client(&tenant.token).await;
    ok_json(&call(&client, "whoami", json!({})).await);
}

/// A grant made for another connector URL (the operator moved the connector to a new host)
/// refreshes into nothing: refused before rotation, naming the reason, the grant left alone.
#[tokio::test]
async fn a_refresh_keeps_the_audience_and_a_moved_connector_refuses_old_grants() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let site = shared_with(&sandbox, |config| use_data_dir(config, &data_dir)).await;
    let alex = site.person("acme", "Alex").await;
    let connection = site.connect(&alex).await;
    // Refreshed tokens keep the audience: they open this connector, nothing else.
    let answer = site
        .refresh(&connection.client_id, &connection.refresh)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let refreshed = answer.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = answer.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(site.connector_status(&refreshed).await, 200);
    let answer = site
        .mcp_post(&site.static_url("/mcp"), Some(&refreshed))
        .await;
    assert_eq!(answer.status, 401);
    site.server.stop().await;

    // The same store behind a connector on another origin.
    let moved = TestServer::start_on_localhost_with(&sandbox, &shared_server::SHARED, |config| {
        use_data_dir(config, &data_dir);
        config.connector_url = Some("http://localhost:1/mcp".into());
    })
    .await;
    let answer = Answer::read(
        reqwest::Client::new()
            .post(format!("http://{}/token", moved.connector_addr))
            .header("host", "localhost:1")
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", connection.client_id.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.assert_oauth_error(400, "invalid_grant");
    assert!(answer.text.contains("connect again"), "{}", answer.text);
    let grants = moved.admin.grants(None).await.unwrap();
    assert!(grants.iter().all(|g| g.revoked_at.is_none()), "{grants:?}");
}

// ---- secrets ----

#[tokio::test]
async fn no_secret_of_the_flow_is_logged_shown_or_stored() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Debug everywhere on the server side; the test's own MCP client is not the product.
    tracing_subscriber::fmt()
        .with_env_filter(
            "debug,rmcp::transport::streamable_http_client=off,rmcp::service::client=off",
        )
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let sandbox = sandbox().await;
    // A data dir of our own: it must outlive the server to be searched.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let site = shared_with(&sandbox, |config| use_data_dir(config, &data_dir)).await;

    let invited = site.invite("acme", "Alex").await;
    let invite_secret = invited.invite_url.rsplit('/').next().unwrap().to_owned();
    let (mut passkey, first_cookie) =
        passkey::register_with_invite(&site.http, &invited.invite_url).await;
    let cookie = passkey::sign_in(&site.http, &site.server.connector_origin, &mut passkey).await;
    let alex = Person {
        id: invited.person.id.clone(),
        passkey,
        cookie,
    };
    let client_id = site.register_client().await;
    let code = site.allow(&alex, &client_id).await;
    let tokens = site.exchange(&client_id, &code, VERIFIER).await.json();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = site.refresh(&client_id, &refresh).await.json();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let client = tests::harness::connect(&site.connector_url(), &new_access, None)
        .await
        .unwrap();
    ok_json(&call(&client, "whoami", json!({})).await);
    // Refusals log too: a replayed code and refresh token, an old access token after revocation.
    site.exchange(&client_id, &code, VERIFIER).await;
    site.refresh(&client_id, &refresh).await;
    site.connector_status(&access).await;

    let secrets: Vec<(&str, &str)> = vec![
        ("invite", &invite_secret),
        (
            "first session cookie",
            first_cookie.split_once('=').unwrap().1,
        ),
        ("session cookie", alex.cookie.split_once('=').unwrap().1),
        ("code", &code),
        ("access token", &access),
        ("refresh token", &refresh),
        ("rotated access token", &new_access),
        ("rotated refresh token", &new_refresh),
    ];
    let admin_answers = format!(
        "{}\n{}\n{}",
        serde_json::to_string(&site.server.admin.people(None).await.unwrap()).unwrap(),
        serde_json::to_string(&site.grants().await).unwrap(),
        serde_json::to_string(&site.audit().await).unwrap(),
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("tool call"), "logging was not captured");
    for (what, secret) in &secrets {
        // Even a distinctive slice of a secret must not appear.
        let probe = &secret[secret.len() - 20..];
        assert!(
            !admin_answers.contains(probe),
            "an admin answer shows the {what}"
        );
        assert!(!logged.contains(probe), "the {what} reached the logs");
    }

    site.server.stop().await;
    let stored = stored(&data_dir);
    assert!(stored.len() > 3, "store files expected");
    for (name, bytes) in stored {
        for (what, secret) in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds the {what} in clear"
            );
        }
    }
}

/// The connector door answers only to its own origin: another `Host` (its bound IP address, the
/// static door's) is refused before anything is read, on `/mcp`, the token endpoint and the
/// pages alike, and a page's form refuses a foreign `Origin`.
#[tokio::test]
async fn the_connector_door_answers_only_to_its_own_origin() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let http = reqwest::Client::new();
    let addr = &site.server.connector_addr;
    let static_host = site.server.public_url.trim_start_matches("http://");
    for host in [addr.as_str(), static_host, "connect.evil.example"] {
        for (method, path) in [
            (reqwest::Method::POST, "/mcp"),
            (reqwest::Method::POST, "/token"),
            (
                reqwest::Method::GET,
                "/.well-known/oauth-protected-resource/mcp",
            ),
            (reqwest::Method::GET, "/signin"),
        ] {
            let answer = http
                .request(method.clone(), format!("http://{addr}{path}"))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 403, "{method} {path} with Host {host}");
        }
    }
    let answer = Answer::read(
        site.http
            .post(site.url("/signin/options"))
            .header("origin", &site.server.public_url)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
}

// ---- anonymous callers (issue 20: audit flood, per-source limits, registration cap, open
// redirect, client names) ----

/// POST `/register` as if from `source` (an `X-Forwarded-For` the test server trusts when
/// `STUDIO_MCP_TRUSTED_PROXIES` names 127.0.0.1).
async fn register_from(site: &Site, source: &str, name: &str) -> Answer {
    let response = site
        .http
        .post(site.url("/register"))
        .header("x-forwarded-for", source)
        .json(&json!({"client_name": name, "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    Answer::read(response).await
}

async fn metrics(site: &Site) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", site.server.admin_url))
        .bearer_auth(&site.server.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Refusals anyone can cause without holding anything — unknown codes and refresh tokens, a
/// registration over its limit — are counted in metrics and logged sampled, not audited one by
/// one: with the per-source limit out of the way, a flood leaves the audit log as it was.
#[tokio::test]
async fn anonymous_token_refusals_are_counted_not_audited() {
    let sandbox = sandbox().await;
    let site = shared_with(&sandbox, |config| {
        config.oauth.registrations_per_min = 1;
        config.oauth.registrations_global_per_min = 1;
    })
    .await;
    let client_id = site.register_client().await;
    let before = site.audit().await.len();
    for n in 0..200 {
        let code = format!("smk_not_a_code_{n}");
        site.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await
        .assert_oauth_error(400, "invalid_grant");
        let refresh = format!("smr_not_a_token_{n}");
        site.refresh(&client_id, &refresh)
            .await
            .assert_oauth_error(400, "invalid_grant");
        let flood = site
            .try_register(&json!({"client_name": "Flood", "redirect_uris": [REDIRECT]}))
            .await;
        assert_eq!(flood.status, 429, "{}", flood.text);
    }
    let after = site.audit().await.len();
    assert!(after <= before + 2, "audit records {before} → {after}");
    let text = metrics(&site).await;
    for line in [
        r#"studio_mcp_oauth_refusals_total{refusal="token:unknown_code"} 200"#,
        r#"studio_mcp_oauth_refusals_total{refusal="refresh:unknown_refresh"} 200"#,
        r#"studio_mcp_oauth_refusals_total{refusal="register:rate_limited_source"} 200"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

/// Each source has a budget of its own on the anonymous endpoints: one client spending its
/// budget leaves every other one theirs. A source is the TCP peer, or the client a trusted
/// proxy names; IPv6 sources are /64 prefixes; an untrusted peer cannot name another source.
#[tokio::test]
async fn registrations_are_limited_per_source_with_a_ceiling_for_all() {
    let sandbox = sandbox().await;
    let site = shared_with(&sandbox, |config| {
        config.oauth.registrations_per_min = 3;
        config.oauth.registrations_global_per_min = 8;
        config.trusted_proxies = common::config::parse_trusted_proxies("127.0.0.1").unwrap();
    })
    .await;
    for n in 0..3 {
        let answer = register_from(&site, "203.0.113.1", "A").await;
        assert_eq!(answer.status, 201, "A {n}: {}", answer.text);
    }
    let refused = register_from(&site, "203.0.113.1", "A").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.text.contains("your network address"),
        "{}",
        refused.text
    );
    // Another source is not affected; what a client claims before the proxy's entry is not
    // believed (the rightmost untrusted hop is the source).
    let b = register_from(&site, "198.51.100.9, 203.0.113.2", "B").await;
    assert_eq!(b.status, 201, "{}", b.text);
    // One IPv6 /64 is one source.
    for n in 0..3 {
        let answer = register_from(&site, &format!("2001:db8:1:2::{}", n + 1), "C").await;
        assert_eq!(answer.status, 201, "C {n}: {}", answer.text);
    }
    let c = register_from(&site, "2001:db8:1:2:ffff::9", "C").await;
    assert_eq!(c.status, 429, "{}", c.text);
    // Seven so far: one more source fits under the ceiling, then none does.
    assert_eq!(register_from(&site, "192.0.2.10", "D").await.status, 201);
    let over = register_from(&site, "192.0.2.11", "E").await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert!(over.text.contains("on this server"), "{}", over.text);
}

/// Without a trusted proxy, `X-Forwarded-For` names nothing: every request from one peer is one
/// source, whatever it claims; and every anonymous endpoint of the connector door (not only
/// registration) limits each source.
#[tokio::test]
async fn an_untrusted_forwarded_header_is_ignored_and_every_anonymous_endpoint_is_limited() {
    let sandbox = sandbox().await;
    let site = shared_with(&sandbox, |config| {
        config.oauth.requests_per_min = 10;
    })
    .await;
    for n in 0..10 {
        let answer = Answer::read(
            site.http
                .post(site.url("/token"))
                .header("x-forwarded-for", format!("203.0.113.{n}"))
                .form(&[("grant_type", "refresh_token")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 400, "{n}: {}", answer.text);
    }
    for path in ["/token", "/register", "/signin/options"] {
        let answer = Answer::read(
            site.http
                .post(site.url(path))
                .header("x-forwarded-for", "198.51.100.77")
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 429, "{path}: {}", answer.text);
        assert!(answer.header("retry-after").is_some(), "{path}");
    }
    // The MCP endpoint keeps its own limits (per tenant), not this one.
    let token = site.static_token("acme").await;
    let answer = site.mcp_post(&site.static_url("/mcp"), Some(&token)).await;
    assert_eq!(answer.status, 200);
}

/// A full cap of registrations waiting unused never refuses a connector: the newest takes the
/// oldest unused one's place, and the metrics count what was dropped.
#[tokio::test]
async fn a_full_registration_cap_drops_the_oldest_unused_not_new_clients() {
    let sandbox = sandbox().await;
    let site = shared_with(&sandbox, |config| {
        config.oauth.max_unused_registrations = 5;
    })
    .await;
    let alex = site.person("acme", "Alex").await;
    // A client in use is never dropped, however old.
    let used = site.register_client().await;
    site.allow(&alex, &used).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let answer = site
            .try_register(
                &json!({"client_name": format!("Flood {n}"), "redirect_uris": [REDIRECT]}),
            )
            .await;
        assert_eq!(answer.status, 201, "{n}: {}", answer.text);
        ids.push(answer.json()["client_id"].as_str().unwrap().to_owned());
    }
    // Five wait at most: seven were dropped (the oldest; within one second all are as old),
    // the newest is there, the used one stays.
    let mut present = 0;
    for id in &ids {
        let page = site
            .authorize_page(Some(&alex.cookie), &site.params(id))
            .await;
        if page.status == 200 {
            present += 1;
        } else {
            page.assert_page(400);
            assert!(page.text.contains("not registered here"), "{}", page.text);
        }
    }
    assert_eq!(present, 5);
    let newest = ids.last().unwrap();
    site.authorize_page(Some(&alex.cookie), &site.params(newest))
        .await
        .assert_page(200);
    site.authorize_page(Some(&alex.cookie), &site.params(&used))
        .await
        .assert_page(200);
    let text = metrics(&site).await;
    assert!(
        text.contains(
            r#"studio_mcp_oauth_refusals_total{refusal="register:evicted_oldest_unused"} 7"#
        ),
        "{text}"
    );
}

/// RFC 9700 §4.11.2: anyone can register any https redirect URI, so `/authorize` with a bad
/// request never redirects there — signed in or not, nothing leaves this origin before a person
/// has seen the consent for that client.
#[tokio::test]
async fn authorize_never_redirects_an_error_before_consent() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let evil = "https://phish.example/landing";
    let registered = site
        .try_register(&json!({"client_name": "Redirector", "redirect_uris": [evil]}))
        .await;
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    let bad = [
        ("client_id", client_id.as_str()),
        ("redirect_uri", evil),
        ("response_type", "x"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    for cookie in [None, Some(alex.cookie.as_str())] {
        let answer = site.authorize_page(cookie, &bad).await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert!(answer.header("location").is_none(), "redirected");
        assert!(
            !answer.text.contains("phish.example/landing?"),
            "{}",
            answer.text
        );
    }
}

/// A registered `client_name` is cleaned as metadata documents' names are: no bidi control or
/// invisible character reaches the consent page (or the registration's answer).
#[tokio::test]
async fn a_registered_client_name_loses_bidi_and_invisible_characters() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let answer = site
        .try_register(&json!({
            "client_name": "Claude\u{202e}edualC\u{200b} Helper\u{2066}",
            "redirect_uris": [REDIRECT],
        }))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["client_name"], "ClaudeedualC Helper");
    let client_id = answer.json()["client_id"].as_str().unwrap().to_owned();
    let page = site
        .authorize_page(Some(&alex.cookie), &site.params(&client_id))
        .await;
    page.assert_page(200);
    assert!(page.text.contains("ClaudeedualC Helper"), "{}", page.text);
    for c in ['\u{202e}', '\u{200b}', '\u{2066}'] {
        assert!(
            !page.text.contains(c),
            "U+{:04X} on the consent page",
            c as u32
        );
    }
}

/// A variation selector selects nothing after white space: a registered name that starts with
/// a space and a selector does not keep the selector, invisible, once the space is trimmed (the
/// fuzz target domain_inputs found it). Neither the answer nor the consent page carries it.
#[tokio::test]
async fn a_registered_name_keeps_no_selector_that_followed_a_trimmed_space() {
    let sandbox = sandbox().await;
    let site = shared(&sandbox).await;
    let alex = site.person("acme", "Alex").await;
    let answer = site
        .try_register(&json!({
            "client_name": "\u{2000}\u{fe0f}Claude \u{e0100}Helper",
            "redirect_uris": [REDIRECT],
        }))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["client_name"], "Claude Helper");
    let client_id = answer.json()["client_id"].as_str().unwrap().to_owned();
    let page = site
        .authorize_page(Some(&alex.cookie), &site.params(&client_id))
        .await;
    page.assert_page(200);
    assert!(page.text.contains("Claude Helper"), "{}", page.text);
    for c in ['\u{fe0f}', '\u{e0100}'] {
        assert!(
            !page.text.contains(c),
            "U+{:04X} on the consent page",
            c as u32
        );
    }
}
