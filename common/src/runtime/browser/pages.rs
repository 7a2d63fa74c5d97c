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
        Value::String(s) => match in_words(s) {
            Some(words) => format!(
                "<time datetime=\"{}\">{}</time>",
                escape_exact(s),
                escape(&words)
            ),
            None => escape(s),
        },
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

/// An RFC 3339 timestamp (what upstreams answer: `2025-05-02T14:05:00.000Z`) in words, in UTC
/// and saying so: "Friday 2 May 2025, 14:05 UTC". `None` for anything else.
fn in_words(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    const WORDS: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday] [day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    // Only what looks like a timestamp is tried: a date-like name stays as it was written.
    if s.len() < 20 || !s.bytes().take(4).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let at = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
    at.to_offset(time::UtcOffset::UTC).format(WORDS).ok()
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
    let always = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let h = response.headers_mut();
    for (name, value) in always {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
