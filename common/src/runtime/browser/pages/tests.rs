//! Unit tests of the pages: what each one shows, and that names and messages from clients or
//! models are escaped and their hidden characters made visible.

use super::*;

const NASTY: &str = "\"><script>alert(1)</script>";
const NASTY_ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;";

fn invite(role: Role) -> InvitePage {
    InvitePage {
        server_name: "Acme Studio MCP".into(),
        person_name: "Alex".into(),
        tenant_name: "Acme".into(),
        role,
        options_url: "/invite/abc/options".into(),
        finish_url: "/invite/abc/finish".into(),
    }
}

fn consent() -> ConsentPage {
    ConsentPage {
        server_name: "Acme Studio MCP".into(),
        person_name: "Alex".into(),
        tenant_name: "Acme".into(),
        client_name: "Claude".into(),
        redirect_host: "claude.ai".into(),
        capabilities: vec![
            "Read Acme's Webflow sites and CMS collections".into(),
            "Draft changes for approval".into(),
        ],
        hidden: vec![
            ("client_id".into(), "c1".into()),
            ("state".into(), NASTY.into()),
            ("csrf".into(), "tok&en".into()),
        ],
        action: "/authorize".into(),
    }
}

/// Every page is a whole document, phone-ready, and runs no inline script.
fn assert_document(html: &str) {
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains("<header>Acme Studio MCP</header>"));
    assert!(html.trim_end().ends_with("</html>"));
    for (i, _) in html.match_indices("<script") {
        assert!(html[i..].starts_with(r#"<script src="/assets/passkey.js" defer></script>"#));
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resource"
    );
    assert!(!html.contains(" onclick="));
}

#[test]
fn escape_covers_the_five_characters() {
    assert_eq!(escape(r#"<>&"'"#), "&lt;&gt;&amp;&quot;&#39;");
    assert_eq!(escape("plain text é"), "plain text é");
    assert_eq!(escape("&amp;"), "&amp;amp;");
    assert_eq!(escape(NASTY), NASTY_ESCAPED);
}

#[test]
fn invite_page_explains_and_carries_the_ceremony() {
    let html = invite_page(&invite(Role::Member));
    assert_document(&html);
    assert!(html.contains(
        "Hello Alex. Create a passkey to connect your AI assistant to Acme&#39;s website data."
    ));
    assert!(html.contains("replaces a password"));
    assert!(html.contains("fingerprint, face or device PIN"));
    assert!(html.contains("<strong>member</strong>"));
    assert!(!html.contains("publishing"));
    assert!(html.contains(
        r#"<button type="button" id="passkey" data-mode="register" data-options="/invite/abc/options" data-finish="/invite/abc/finish">Create my passkey</button>"#
    ));
    assert!(html.contains(r#"<p id="status" role="status" aria-live="polite"></p>"#));
    assert!(html.contains("<noscript>"));
    assert!(html.contains(r#"<script src="/assets/passkey.js" defer></script>"#));

    let approver = invite_page(&invite(Role::Approver));
    assert!(approver.contains("<strong>approver</strong>"));
    assert!(approver.contains("approve high-risk actions such as publishing"));
}

#[test]
fn invite_page_escapes_names_and_urls() {
    let mut v = invite(Role::Member);
    v.person_name = NASTY.into();
    v.tenant_name = "Bob & Co".into();
    v.options_url = NASTY.into();
    let html = invite_page(&v);
    assert!(!html.contains("<script>alert"));
    assert!(html.contains(&format!("Hello {NASTY_ESCAPED}.")));
    assert!(html.contains("Bob &amp; Co&#39;s"));
    assert!(html.contains(&format!("data-options=\"{NASTY_ESCAPED}\"")));
}

#[test]
fn signin_page_has_button_next_and_notice() {
    let mut v = SigninPage {
        server_name: "Acme Studio MCP".into(),
        options_url: "/signin/options".into(),
        finish_url: "/signin/finish".into(),
        next: "/authorize?client_id=c1&state=x".into(),
        notice: Some("Your sign-in expired.".into()),
    };
    let html = signin_page(&v);
    assert_document(&html);
    assert!(html.contains(
        r#"<button type="button" id="passkey" data-mode="signin" data-options="/signin/options" data-finish="/signin/finish" data-next="/authorize?client_id=c1&amp;state=x">Sign in with my passkey</button>"#
    ));
    assert!(html.contains(r#"<p class="notice">Your sign-in expired.</p>"#));
    assert!(html.contains("No passkey yet? Ask your studio for an invite link."));
    assert!(html.contains(r#"role="status""#));

    v.notice = None;
    assert!(!signin_page(&v).contains("class=\"notice\""));
    v.notice = Some(NASTY.into());
    assert!(signin_page(&v).contains(NASTY_ESCAPED));
}

#[test]
fn consent_page_is_a_plain_form() {
    let html = consent_page(&consent());
    assert_document(&html);
    assert!(
        !html.contains("<script"),
        "consent works without JavaScript"
    );
    assert!(html.contains(r#"<form method="post" action="/authorize">"#));
    assert!(
        html.contains(
            r#"<button type="submit" name="decision" value="allow">Allow access</button>"#
        )
    );
    assert!(html.contains(r#"name="decision" value="deny" class="secondary">Cancel</button>"#));
    assert!(html.contains("Signed in as <strong>Alex</strong> for <strong>Acme</strong>"));
    assert!(html.contains("&ldquo;Claude&rdquo;"));
    assert!(html.contains("the name the application gives itself"));
    assert!(html.contains("<strong>claude.ai</strong>"));
    assert!(html.contains("<li>Read Acme&#39;s Webflow sites and CMS collections</li>"));
    assert!(html.contains("The connection lasts until you disconnect it in your AI assistant or the studio removes it; you can ask the studio to do so at any time."));
}

#[test]
fn consent_page_echoes_hidden_fields_escaped() {
    let html = consent_page(&consent());
    assert!(html.contains(r#"<input type="hidden" name="client_id" value="c1">"#));
    assert!(html.contains(&format!(
        r#"<input type="hidden" name="state" value="{NASTY_ESCAPED}">"#
    )));
    assert!(!html.contains("<script>alert"));
    // The CSRF token appears twice: in the consent form and in the sign-out form.
    let csrf = r#"<input type="hidden" name="csrf" value="tok&amp;en">"#;
    assert_eq!(html.matches(csrf).count(), 2);
    let signout = &html[html.find(r#"action="/signout""#).unwrap_or(0)..];
    assert!(signout.contains(csrf));
    assert!(signout.contains("Sign out</button>"));
}

#[test]
fn consent_page_escapes_untrusted_client_name() {
    let mut v = consent();
    v.client_name = NASTY.into();
    v.redirect_host = "<evil>".into();
    v.capabilities = vec![];
    let html = consent_page(&v);
    assert!(html.contains(&format!("&ldquo;{NASTY_ESCAPED}&rdquo;")));
    assert!(html.contains("&lt;evil&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<ul>"));
}

#[test]
fn message_page_with_link() {
    let html = message_page(&MessagePage {
        server_name: "Acme Studio MCP".into(),
        title: "Passkey created".into(),
        body: "You can close this tab and go back to Claude.\n\nNeed help? Ask your studio.".into(),
        link: Some(("/signin?next=/a&b=1".into(), "Sign in".into())),
        kind: MessageKind::Success,
    });
    assert_document(&html);
    assert!(!html.contains("<script"));
    assert!(html.contains("<title>Passkey created – Acme Studio MCP</title>"));
    assert!(html.contains(r#"<h1 class="success">Passkey created</h1>"#));
    assert!(html.contains("<p>You can close this tab and go back to Claude.</p>"));
    assert!(html.contains("<p>Need help? Ask your studio.</p>"));
    assert!(html.contains(r#"<a href="/signin?next=/a&amp;b=1">Sign in</a>"#));
}

#[test]
fn message_page_escapes_and_refuses_script_links() {
    let html = message_page(&MessagePage {
        server_name: "Acme Studio MCP".into(),
        title: NASTY.into(),
        body: NASTY.into(),
        link: Some(("javascript:alert(1)".into(), "Try again".into())),
        kind: MessageKind::Problem,
    });
    assert!(!html.contains("<script>alert"));
    assert!(html.contains(&format!(r#"<h1 class="problem">{NASTY_ESCAPED}</h1>"#)));
    assert!(!html.contains("javascript:"));
    assert!(html.contains("<p>Try again</p>"));

    let none = message_page(&MessagePage {
        server_name: "Acme Studio MCP".into(),
        title: "This link expired".into(),
        body: "Ask your studio for a new invite link.".into(),
        link: None,
        kind: MessageKind::Info,
    });
    assert!(none.contains(r#"<h1 class="info">This link expired</h1>"#));
    assert!(!none.contains("<a "));
}

/// A right-to-left override, a zero-width space and a tag character, as a model or an
/// upstream might send them.
const SNEAKY: &str = "Shop\u{202e}gnp.exe\u{200b}\u{e0041}";
const SNEAKY_SHOWN: &str = "Shop⟨U+202E⟩gnp.exe⟨U+200B⟩⟨U+E0041⟩";

fn assert_nothing_unseen(html: &str) {
    assert_eq!(crate::text::first_unseen(&html.replace('\n', "")), None);
}

fn approval() -> ApprovalPage {
    ApprovalPage {
        server_name: "Acme Studio MCP".into(),
        person_name: "Alex".into(),
        tenant_name: "Acme".into(),
        action_title: "Change a DNS record".into(),
        preview: serde_json::json!({
            "action": "change this DNS record",
            "before": {"comment": "Shop origin (owner:acme)", "content": "203.0.113.20"},
            "after": {"comment": null, "content": "198.51.100.9"},
        }),
        status: "Waiting for an approver's decision.".into(),
        outcome: None,
        can_decide: true,
        why_not: None,
        csrf: "tok".into(),
        action: "/approve/apr_1".into(),
    }
}

#[test]
fn approval_page_shows_what_a_preview_hides() {
    let plain = approval_page(&approval());
    assert!(plain.contains("<dt>comment</dt><dd>Shop origin (owner:acme)</dd>"));
    assert!(!plain.contains("Marks like"), "no markers, no note");

    let mut v = approval();
    v.preview["before"]["comment"] = SNEAKY.into();
    v.preview[SNEAKY] = "key".into();
    v.person_name = SNEAKY.into();
    v.tenant_name = SNEAKY.into();
    v.action_title = SNEAKY.into();
    let html = approval_page(&v);
    assert_nothing_unseen(&html);
    assert!(html.contains(&format!("<dt>comment</dt><dd>{SNEAKY_SHOWN}</dd>")));
    assert!(html.contains(&format!("<dt>{SNEAKY_SHOWN}</dt><dd>key</dd>")));
    assert!(html.contains(&format!("Signed in as <strong>{SNEAKY_SHOWN}</strong>")));
    assert!(html.contains(&format!("<h1>{SNEAKY_SHOWN}</h1>")));
    assert!(html.contains(&format!("<title>{SNEAKY_SHOWN} – ")));
    assert!(html.contains("Marks like"));

    // Markers in the outcome alone (an upstream's answer) also bring the note.
    let mut v = approval();
    v.outcome = Some(serde_json::json!({"comment": "a\u{2066}b"}));
    let html = approval_page(&v);
    assert_nothing_unseen(&html);
    assert!(html.contains("<dd>a⟨U+2066⟩b</dd>"));
    assert!(html.contains("Marks like"));
}

#[test]
fn consent_page_shows_what_a_client_name_hides() {
    let mut v = consent();
    v.client_name = "Claude\u{202e}edualC\u{200d}".into();
    v.redirect_host = "claude.ai\u{2067}lave".into();
    v.person_name = "Al\u{00ad}ex".into();
    v.tenant_name = "Ac\u{feff}me".into();
    v.capabilities = vec!["Read\u{2028}everything".into()];
    // The OAuth state goes back exactly as the client sent it: never shown, never changed.
    v.hidden.push(("state2".into(), "s\u{200b}t".into()));
    let html = consent_page(&v);
    assert!(html.contains("&ldquo;Claude⟨U+202E⟩edualC⟨U+200D⟩&rdquo;"));
    assert!(html.contains("<strong>claude.ai⟨U+2067⟩lave</strong>"));
    assert!(
        html.contains(
            "Signed in as <strong>Al⟨U+00AD⟩ex</strong> for <strong>Ac⟨U+FEFF⟩me</strong>"
        )
    );
    assert!(html.contains("<li>Read⟨U+2028⟩everything</li>"));
    assert!(html.contains("<input type=\"hidden\" name=\"state2\" value=\"s\u{200b}t\">"));
    assert_nothing_unseen(&html.replace("s\u{200b}t", ""));
}

#[test]
fn every_page_shows_what_names_and_messages_hide() {
    let mut v = invite(Role::Approver);
    v.person_name = SNEAKY.into();
    v.tenant_name = SNEAKY.into();
    let html = invite_page(&v);
    assert_nothing_unseen(&html);
    assert!(html.contains(&format!("Hello {SNEAKY_SHOWN}.")));

    let html = signin_page(&SigninPage {
        server_name: SNEAKY.into(),
        options_url: "/signin/options".into(),
        finish_url: "/signin/finish".into(),
        next: "/".into(),
        notice: Some(SNEAKY.into()),
    });
    assert_nothing_unseen(&html);
    assert!(html.contains(&format!("<header>{SNEAKY_SHOWN}</header>")));

    let html = message_page(&MessagePage {
        server_name: "Acme Studio MCP".into(),
        title: SNEAKY.into(),
        body: SNEAKY.into(),
        link: Some(("/signin".into(), SNEAKY.into())),
        kind: MessageKind::Problem,
    });
    assert_nothing_unseen(&html);
    assert!(html.contains(&format!("<p>{SNEAKY_SHOWN}</p>")));
    assert!(html.contains(&format!("<a href=\"/signin\">{SNEAKY_SHOWN}</a>")));
}

#[test]
fn safe_hrefs() {
    assert!(is_safe_href("/signin"));
    assert!(is_safe_href("https://claude.ai/"));
    assert!(!is_safe_href("//evil.example"));
    assert!(!is_safe_href("/\\evil.example"));
    assert!(!is_safe_href(" JavaScript:alert(1)"));
    assert!(!is_safe_href("data:text/html,hi"));
}

#[test]
fn script_is_embedded() {
    assert!(PASSKEY_JS.contains("PublicKeyCredential"));
}

#[test]
fn approval_pages_give_dates_in_words_with_their_zone() {
    let mut v = approval();
    v.preview = serde_json::json!({
        "last_published": "2025-05-02T14:05:00.000Z",
        "elsewhere": "2026-12-07T09:30:00+01:00",
        "slug": "2025-plans",
        "not_a_date": "2025-05-02T14:05:00.000Z and more",
    });
    let html = approval_page(&v);
    assert!(
        html.contains(
            "<time datetime=\"2025-05-02T14:05:00.000Z\">Friday 2 May 2025, 14:05 UTC</time>"
        ),
        "{html}"
    );
    // Another offset is told in UTC, saying so.
    assert!(
        html.contains(">Monday 7 December 2026, 08:30 UTC</time>"),
        "{html}"
    );
    assert!(html.contains("<dd>2025-plans</dd>"), "{html}");
    assert!(
        html.contains("<dd>2025-05-02T14:05:00.000Z and more</dd>"),
        "{html}"
    );
    assert!(!html.contains(">2025-05-02T14:05:00.000Z<"), "{html}");
}
