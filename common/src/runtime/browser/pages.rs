//! The server-rendered pages people see: the invite (create a passkey), sign-in, OAuth consent
//! and plain message pages, plus the one script (`PASSKEY_JS`) that runs the WebAuthn ceremony.
//!
//! Pure rendering: the handlers that serve these live elsewhere. The readers are marketing people,
//! not developers, so every page says in plain words what is happening and what to do next.
//! Every value a page shows goes through [`escape`], which also makes visible each character a
//! person would not see (`⟨U+202E⟩`, see [`crate::text`]): names, previews and outcomes come
//! from models, upstreams and clients, and what the person reads must be what runs. Only values
//! the browser sends back or follows (hidden fields, the script's URLs, links) keep their exact
//! characters, through [`escape_exact`], and are never shown as text. Pages carry no inline
//! script (the CSP forbids it) and no external resource, and all but the passkey step work
//! without JavaScript.

/// The passkey ceremony script, served at `GET /assets/passkey.js`.
pub const PASSKEY_JS: &str = include_str!("assets/passkey.js");

/// Where pages load the passkey script from.
const PASSKEY_JS_PATH: &str = "/assets/passkey.js";

use crate::store::people::Role;

/// The page an invite link opens: create a passkey.
#[derive(Debug, Clone)]
pub struct InvitePage {
    pub server_name: String,
    pub person_name: String,
    pub tenant_name: String,
    pub role: Role,
    /// Where the script asks for the registration options.
    pub options_url: String,
    /// Where the script sends the new credential.
    pub finish_url: String,
}

/// Sign in with an existing passkey.
#[derive(Debug, Clone)]
pub struct SigninPage {
    pub server_name: String,
    pub options_url: String,
    pub finish_url: String,
    /// Same-site path to open after signing in, when the server's answer names none.
    pub next: String,
    /// Why the person is here, e.g. "Your sign-in expired."
    pub notice: Option<String>,
}

/// The OAuth consent page: allow an AI application to connect.
#[derive(Debug, Clone)]
pub struct ConsentPage {
    pub server_name: String,
    pub person_name: String,
    pub tenant_name: String,
    /// The name the client registered for itself: untrusted, shown as such.
    pub client_name: String,
    /// The host the browser returns to after the decision.
    pub redirect_host: String,
    /// What the connection will be able to do, one plain sentence each.
    pub capabilities: Vec<String>,
    /// Fields echoed back verbatim with the decision: the OAuth parameters and `csrf`.
    pub hidden: Vec<(String, String)>,
    /// The form's action, e.g. `/authorize`.
    pub action: String,
}

/// How a message page's heading looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Info,
    Success,
    Problem,
}

impl MessageKind {
    fn class(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Problem => "problem",
        }
    }
}

/// A page that only tells the person something: done, expired, already used, an error.
#[derive(Debug, Clone)]
pub struct MessagePage {
    pub server_name: String,
    pub title: String,
    /// Plain text; a blank line starts a new paragraph.
    pub body: String,
    /// `(href, label)`; an href that is neither a path nor http(s) is shown as plain text.
    pub link: Option<(String, String)>,
    pub kind: MessageKind,
}

/// Text as a page shows it: every character a person would not see made visible as a marker
/// (`⟨U+202E⟩`), then escaped for HTML element content and quoted attribute values alike. The
/// one way a page shows a value, whoever wrote it.
pub fn escape(s: &str) -> String {
    escape_exact(&crate::text::visible(s))
}

/// Escapes for HTML without changing a character: only for values the browser sends back or
/// follows (hidden form fields such as an OAuth `state`, the script's URLs, link targets), which
/// must round-trip exactly and are never shown as text.
fn escape_exact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub fn invite_page(v: &InvitePage) -> String {
    let person = escape(&v.person_name);
    let tenant = escape(&v.tenant_name);
    let role = match v.role {
        Role::Member => format!(
            "You are invited as a <strong>member</strong>: you can connect AI assistants to \
             {tenant}&#39;s data."
        ),
        Role::Approver => format!(
            "You are invited as an <strong>approver</strong>: you can connect AI assistants to \
             {tenant}&#39;s data, and you also approve high-risk actions such as publishing \
             the website."
        ),
    };
    let body = format!(
        r#"<h1>Create your passkey</h1>
<p>Hello {person}. Create a passkey to connect your AI assistant to {tenant}&#39;s website data.</p>
<p>{role}</p>
<p>A passkey is stored on this device (or in your password manager) and replaces a password.
Your browser will ask you to confirm with your fingerprint, face or device PIN.</p>
{button}
{status}
<noscript><p class="problem">This step needs JavaScript. Please turn JavaScript on in your browser, then reload this page.</p></noscript>"#,
        button = passkey_button(
            "register",
            "Create my passkey",
            &v.options_url,
            &v.finish_url,
            None
        ),
        status = STATUS_LINE,
    );
    document(&v.server_name, "Create your passkey", &body, true)
}

pub fn signin_page(v: &SigninPage) -> String {
    let notice = v
        .notice
        .as_deref()
        .map(|n| format!("<p class=\"notice\">{}</p>\n", escape(n)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>
{notice}<p>Sign in with the passkey you created when you accepted your invite.
Your browser will ask you to confirm with your fingerprint, face or device PIN.</p>
{button}
{status}
<noscript><p class="problem">Signing in needs JavaScript. Please turn JavaScript on in your browser, then reload this page.</p></noscript>
<p>No passkey yet? Ask your studio for an invite link.</p>"#,
        button = passkey_button(
            "signin",
            "Sign in with my passkey",
            &v.options_url,
            &v.finish_url,
            Some(&v.next)
        ),
        status = STATUS_LINE,
    );
    document(&v.server_name, "Sign in", &body, true)
}

pub fn consent_page(v: &ConsentPage) -> String {
    let person = escape(&v.person_name);
    let tenant = escape(&v.tenant_name);
    let client = escape(&v.client_name);
    let host = escape(&v.redirect_host);
    let capabilities = if v.capabilities.is_empty() {
        "<p>It will only be able to see who you are.</p>".to_owned()
    } else {
        let items: String = v
            .capabilities
            .iter()
            .map(|c| format!("<li>{}</li>\n", escape(c)))
            .collect();
        format!("<p>If you allow it, the connection will be able to:</p>\n<ul>\n{items}</ul>")
    };
    let hidden: String = v
        .hidden
        .iter()
        .map(|(name, value)| hidden_input(name, value))
        .collect();
    // The sign-out form needs the same CSRF token the consent form carries.
    let signout_csrf = v
        .hidden
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(name, value)| hidden_input(name, value))
        .unwrap_or_default();
    let body = format!(
        r#"<p class="small">Signed in as <strong>{person}</strong> for <strong>{tenant}</strong>.</p>
<h1>Allow an AI application to connect?</h1>
<p>An application that calls itself <strong>&ldquo;{client}&rdquo;</strong> wants to connect to
{tenant}&#39;s data on your behalf. That is the name the application gives itself; only allow it
if you have just asked your AI assistant to connect.</p>
{capabilities}
<p>The connection lasts until you disconnect it in your AI assistant or the studio removes it; you can ask the studio to do so at any time.</p>
<p>After you choose, your browser goes back to <strong>{host}</strong>.</p>
<form method="post" action="{action}">
{hidden}<div class="actions">
<button type="submit" name="decision" value="allow">Allow access</button>
<button type="submit" name="decision" value="deny" class="secondary">Cancel</button>
</div>
</form>
<form method="post" action="/signout" class="signout">
{signout_csrf}<p class="small">Not {person}? <button type="submit" class="link">Sign out</button></p>
</form>"#,
        action = escape_exact(&v.action),
    );
    document(&v.server_name, "Allow access?", &body, false)
}

/// The page an approval link opens: exactly what will happen, and (for an approver, while it
/// waits) the two buttons.
#[derive(Debug, Clone)]
pub struct ApprovalPage {
    pub server_name: String,
    pub person_name: String,
    pub tenant_name: String,
    /// What the action is, in words ("Publish the website").
    pub action_title: String,
    /// The preview computed when the action was requested, shown field by field.
    pub preview: serde_json::Value,
    /// A sentence on where it stands (waiting, approved by …, done, denied, expired).
    pub status: String,
    /// The result or error once carried out.
    pub outcome: Option<serde_json::Value>,
    /// Whether this person may approve or deny now.
    pub can_decide: bool,
    /// Why not, when they are signed in but may not (a member).
    pub why_not: Option<String>,
    pub csrf: String,
    pub action: String,
}

/// A JSON value as nested definition lists, every string escaped.
fn json_html(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "<em>none</em>".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => escape(&n.to_string()),
        Value::String(s) => escape(s),
        Value::Array(items) if items.is_empty() => "<em>none</em>".into(),
        Value::Array(items) => {
            let li: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", json_html(i)))
                .collect();
            format!("<ul>{li}</ul>")
        }
        Value::Object(map) => {
            let rows: String = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<dt>{}</dt><dd>{}</dd>",
                        escape(&k.replace('_', " ")),
                        json_html(v)
                    )
                })
                .collect();
            format!("<dl>{rows}</dl>")
        }
    }
}

/// Whether any key or string in `value` holds a character [`escape`] shows as a marker.
fn json_has_unseen(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => crate::text::first_unseen(s).is_some(),
        Value::Array(items) => items.iter().any(json_has_unseen),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| crate::text::first_unseen(k).is_some() || json_has_unseen(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Said under a preview or outcome that shows markers, so the approver knows what they mean.
const MARKERS_NOTE: &str = "<p class=\"notice\">Marks like <strong>⟨U+…⟩</strong> stand for \
characters that are invisible or change how the text around them reads. They are part of the \
request exactly as it was made; if you did not expect them, deny it.</p>";

pub fn approval_page(v: &ApprovalPage) -> String {
    let person = escape(&v.person_name);
    let tenant = escape(&v.tenant_name);
    let outcome = v
        .outcome
        .as_ref()
        .map(|o| format!("<h2>Outcome</h2>\n{}", json_html(o)))
        .unwrap_or_default();
    let marked = json_has_unseen(&v.preview) || v.outcome.as_ref().is_some_and(json_has_unseen);
    let note = if marked { MARKERS_NOTE } else { "" };
    let decide = if v.can_decide {
        format!(
            r#"<p>Approve only if this is what you asked for. On approval it happens at once, exactly once.</p>
<form method="post" action="{action}">
{csrf}<div class="actions">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</div>
</form>"#,
            action = escape_exact(&v.action),
            csrf = hidden_input("csrf", &v.csrf),
        )
    } else {
        v.why_not
            .as_ref()
            .map(|w| format!("<p class=\"notice\">{}</p>", escape(w)))
            .unwrap_or_default()
    };
    let body = format!(
        r#"<p class="small">Signed in as <strong>{person}</strong> for <strong>{tenant}</strong>.</p>
<h1>{title}</h1>
<p>{status}</p>
<h2>What will happen</h2>
{preview}
{outcome}
{note}
{decide}"#,
        title = escape(&v.action_title),
        status = escape(&v.status),
        preview = json_html(&v.preview),
    );
    document(&v.server_name, &v.action_title, &body, false)
}

pub fn message_page(v: &MessagePage) -> String {
    let paragraphs: String = v
        .body
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>\n", escape(p)))
        .collect();
    let link = match &v.link {
        Some((href, label)) if is_safe_href(href) => {
            format!(
                "<p><a href=\"{}\">{}</a></p>\n",
                escape_exact(href),
                escape(label)
            )
        }
        Some((_, label)) => format!("<p>{}</p>\n", escape(label)),
        None => String::new(),
    };
    let body = format!(
        "<h1 class=\"{class}\">{title}</h1>\n{paragraphs}{link}",
        class = v.kind.class(),
        title = escape(&v.title),
    );
    document(&v.server_name, &v.title, &body, false)
}

/// The line the script writes progress and problems to; screen readers announce changes.
const STATUS_LINE: &str = r#"<p id="status" role="status" aria-live="polite"></p>"#;

fn passkey_button(
    mode: &str,
    label: &str,
    options_url: &str,
    finish_url: &str,
    next: Option<&str>,
) -> String {
    let next = next
        .map(|n| format!(" data-next=\"{}\"", escape_exact(n)))
        .unwrap_or_default();
    format!(
        "<p><button type=\"button\" id=\"passkey\" data-mode=\"{mode}\" data-options=\"{options}\" \
         data-finish=\"{finish}\"{next}>{label}</button></p>",
        mode = escape_exact(mode),
        options = escape_exact(options_url),
        finish = escape_exact(finish_url),
        label = escape(label),
    )
}

fn hidden_input(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
        escape_exact(name),
        escape_exact(value)
    )
}

/// A same-site path or an http(s) URL: anything else (`javascript:`, `data:`) is not linked.
fn is_safe_href(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    (href.starts_with('/') && !href.starts_with("//") && !href.starts_with("/\\"))
        || lower.starts_with("https://")
        || lower.starts_with("http://")
}

/// One small stylesheet for every page: readable on a phone, large tap targets, no web fonts.
const STYLE: &str = r#"
:root { color-scheme: light dark; --accent: #1f5fbf; --ok: #1d7a3a; --bad: #b3261e; --muted: #5f6368; }
* { box-sizing: border-box; }
body { margin: 0; font: 1.0625rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 0.75rem 1rem; border-bottom: 1px solid #8884; color: var(--muted); font-size: 0.9375rem; }
main { max-width: 34rem; margin: 0 auto; padding: 1.25rem 1rem 3rem; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0.5rem 0 1rem; }
h1.success { color: var(--ok); }
h1.problem, .problem { color: var(--bad); }
h1.info { color: var(--accent); }
ul { padding-left: 1.25rem; }
dl { margin: 0.25rem 0 0.75rem; }
dt { font-weight: 600; }
dd { margin: 0 0 0.5rem 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.125rem; margin: 1.25rem 0 0.5rem; }
li { margin: 0.25rem 0; }
.small { font-size: 0.9375rem; color: var(--muted); }
.notice { padding: 0.75rem 1rem; border-left: 4px solid var(--accent); background: #1f5fbf14; }
.actions { display: flex; flex-wrap: wrap; gap: 0.75rem; margin: 1.5rem 0; }
button { font: inherit; font-weight: 600; padding: 0.75rem 1.25rem; min-height: 3rem; border-radius: 0.5rem;
  border: 2px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: inherit; border-color: #8888; }
button.link { padding: 0; min-height: 0; border: 0; background: none; color: var(--accent); font-weight: 400;
  text-decoration: underline; }
button:disabled { opacity: 0.6; cursor: progress; }
button:focus-visible, a:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
#status { min-height: 1.5em; font-weight: 600; }
a { color: var(--accent); }
@media (prefers-color-scheme: dark) { :root { --accent: #8ab4f8; --ok: #81c995; --bad: #f28b82; --muted: #bdc1c6; }
  button { color: #111; } button.secondary { color: inherit; } }
"#;

/// Wraps a page body in the shared document: head, stylesheet, header with the server's name,
/// and the passkey script when the page runs the ceremony.
fn document(server_name: &str, title: &str, body: &str, with_script: bool) -> String {
    let script = if with_script {
        format!("<script src=\"{PASSKEY_JS_PATH}\" defer></script>\n")
    } else {
        String::new()
    };
    let server = escape(server_name);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="same-origin">
<title>{title} – {server}</title>
<style>{STYLE}</style>
{script}</head>
<body>
<header>{server}</header>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// Security headers every answer of the browser pages carries, set once as a layer on their
/// router: no framing (clickjacking a consent button), no inline or foreign scripts, no caching
/// (unless the answer says otherwise, as the script does), no referrer to other sites (page
/// URLs can carry an invite). `same-origin`, not `no-referrer`: under `no-referrer` a browser
/// sends `Origin: null` with a form POST, which the Origin check rightly refuses.
pub async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
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
            html.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            )
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
        assert!(html.contains(
            r#"<button type="submit" name="decision" value="allow">Allow access</button>"#
        ));
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
            body: "You can close this tab and go back to Claude.\n\nNeed help? Ask your studio."
                .into(),
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
        assert!(html.contains(
            "Signed in as <strong>Al⟨U+00AD⟩ex</strong> for <strong>Ac⟨U+FEFF⟩me</strong>"
        ));
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
}
