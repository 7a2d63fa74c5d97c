//! HTTP as the doctor speaks it: one client per URL under check (TLS roots, `--connect-to`,
//! no redirects), answers read up to a bound, and connection failures told in an operator's
//! words.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::bail;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Client, RequestBuilder, StatusCode, Url, redirect};
use serde_json::{Map, Value, json};

use super::{Doctor, origin_of, shown};

/// An answer is read up to this many bytes; metadata documents are a few hundred.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// A URL under check, with the client that reaches it.
pub(super) struct Target {
    pub(super) url: Url,
    /// `scheme://host[:port]`, the port only when not the scheme's default.
    pub(super) origin: String,
    pub(super) host: String,
    pub(super) port: u16,
    /// From `--connect-to`.
    pub(super) pinned: Option<SocketAddr>,
    pub(super) client: Client,
}

impl Target {
    /// Where a connection goes, for messages.
    pub(super) fn place(&self) -> String {
        match self.pinned {
            Some(addr) => format!("{}:{} (→ {addr} by --connect-to)", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    pub(super) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The step a failed connection is reported under.
    pub(super) fn connection_step(&self) -> &'static str {
        if self.url.scheme() == "https" {
            "TLS"
        } else {
            "connection"
        }
    }

    /// The request a connector sends first: `initialize` to the URL, without a token.
    pub(super) fn mcp_initialize(&self) -> RequestBuilder {
        self.client
            .post(self.url.as_str())
            .header(ACCEPT, "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": { "name": "studio-mcp-doctor", "version": env!("CARGO_PKG_VERSION") },
                },
            }))
    }

    /// A form `POST` to `url` on this target.
    pub(super) fn post_form(&self, url: &str, body: &'static str) -> RequestBuilder {
        self.client
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    }
}

impl Doctor<'_> {
    /// The client for `url`, with `--connect-to` applied. `None` (after a failed line) if the
    /// client cannot be built.
    pub(super) fn target(&mut self, url: &Url) -> anyhow::Result<Option<Target>> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        let pinned = pinned_for(url, &self.connect_to)?;
        crate::upstream::install_crypto_provider();
        let mut builder = Client::builder()
            .user_agent(concat!("studio-mcp-doctor/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect::Policy::none())
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tls_certs_merge(self.roots.iter().cloned());
        if let Some(addr) = pinned {
            // A proxy would look the name up itself, past the pinned address.
            builder = builder.no_proxy().resolve(&host, addr);
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(e) => {
                self.report.fail(
                    "HTTP client",
                    &format!("could not be set up: {}", chain(&e)),
                    "check --ca-file and the system's certificate store",
                );
                return Ok(None);
            }
        };
        Ok(Some(Target {
            origin: origin_of(url),
            url: url.clone(),
            host,
            port,
            pinned,
            client,
        }))
    }

    /// A failed line for `step`: why `target` could not be reached, and the fix.
    pub(super) fn connection_failed(&mut self, step: &str, target: &Target, err: &reqwest::Error) {
        let (what, fix) = connection_problem(err, target, self.timeout);
        self.report.fail(step, &what, &fix);
    }
}

/// An answer, its body read up to [`MAX_BODY_BYTES`].
pub(super) struct Answer {
    pub(super) status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    pub(super) fn json_object(&self) -> Option<Map<String, Value>> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// An RFC 6749 error answer's `error`.
    pub(super) fn oauth_error(&self) -> Option<String> {
        self.json_object()?
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// JSON that only an OAuth server would send.
    pub(super) fn oauth_json(&self) -> bool {
        self.json_object().is_some_and(|doc| {
            [
                "error",
                "client_id",
                "issuer",
                "resource",
                "authorization_servers",
                "authorization_endpoint",
            ]
            .iter()
            .any(|k| doc.contains_key(*k))
        })
    }

    pub(super) fn all(&self, name: reqwest::header::HeaderName) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub(super) fn location(&self) -> String {
        self.all(LOCATION)
            .into_iter()
            .next()
            .unwrap_or_else(|| "(no Location)".to_owned())
    }

    /// ` (error "x": description)` or ` ("the page's words")`, or nothing: what a person reading
    /// the line needs to know of the body.
    pub(super) fn summary(&self) -> String {
        if let Some(doc) = self.json_object() {
            if let Some(error) = doc.get("error").and_then(Value::as_str) {
                let description = doc
                    .get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return format!(" (error {}: {})", shown(error), shown(description));
            }
            return String::new();
        }
        let text = String::from_utf8_lossy(&self.body);
        let words = if text.trim_start().starts_with('<') {
            page_text(&text)
        } else {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        if words.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown(&words))
        }
    }
}

pub(super) async fn fetch(request: RequestBuilder) -> Result<Answer, reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() >= room {
            break;
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// What went wrong connecting, and the fix, in an operator's words.
fn connection_problem(
    err: &reqwest::Error,
    target: &Target,
    timeout: Duration,
) -> (String, String) {
    let place = target.place();
    let host = &target.host;
    if let Some(tls) = find_rustls(err) {
        use rustls::CertificateError as C;
        let (what, fix) = match tls {
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => (
                format!(
                    "the certificate of {place} is not signed by an authority clients trust \
                     (self-signed, a private CA, or the intermediate certificate is missing)"
                ),
                "serve a certificate from a public CA with its full chain (Caddy or certbot \
                 with Let's Encrypt do this); a private CA passes here only with --ca-file, \
                 never for claude.ai"
                    .to_owned(),
            ),
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => (
                format!("the certificate of {place} does not name {host}"),
                format!("get a certificate for {host} (add the name to the TLS proxy's site)"),
            ),
            rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
                format!("the certificate of {place} has expired"),
                "renew it, and check the proxy's automatic renewal".to_owned(),
            ),
            rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => (
                format!("the certificate of {place} is not valid yet"),
                "check the clock of the server and of this machine".to_owned(),
            ),
            rustls::Error::InvalidMessage(_) => (
                format!("{place} does not speak TLS (plain http on an https URL?)"),
                "terminate TLS on port 443 in front of the connector listener".to_owned(),
            ),
            other => (
                format!("TLS with {place} failed: {other}"),
                "check the certificate and the TLS proxy's settings".to_owned(),
            ),
        };
        return (what, fix);
    }
    if err.is_timeout() {
        return (
            format!("no answer from {place} within {} s", timeout.as_secs()),
            format!(
                "check that the firewall lets port {} in and that the address is the server's",
                target.port
            ),
        );
    }
    if refused(err) {
        return (
            format!("nothing accepts connections on {place}"),
            format!(
                "start the server (or the TLS proxy in front of it) and open port {} in the \
                 firewall",
                target.port
            ),
        );
    }
    (
        format!("could not reach {place}: {}", chain(err)),
        "check that the server and its proxy are running and the address is right".to_owned(),
    )
}

/// `err` and its causes. An `io::Error`'s `source` skips the error it wraps (its `Display`
/// already shows it), and TLS errors come wrapped twice (tokio-rustls, then hyper-rustls), so
/// the walk looks inside each `io::Error` instead.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    // A bound, in case some error's source ever pointed back at itself.
    while let Some(e) = next.filter(|_| out.len() < 32) {
        out.push(e);
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The TLS error under a request error, if it is one.
fn find_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    causes(err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<rustls::Error>())
}

fn refused(err: &(dyn std::error::Error + 'static)) -> bool {
    causes(err).into_iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// An error and its causes, each said once.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in causes(err) {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// One `--connect-to HOST:PORT:ADDR:PORT2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ConnectTo {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) to: SocketAddr,
}

pub(super) fn parse_connect_to(raw: &str) -> anyhow::Result<ConnectTo> {
    let bad = || {
        anyhow::anyhow!(
            "--connect-to {raw}: expected HOST:PORT:ADDR:PORT2, e.g. \
             connect.studio.example:443:203.0.113.7:443 (ADDR an IP address, [..] for IPv6)"
        )
    };
    let (host, rest) = if let Some(bracketed) = raw.strip_prefix('[') {
        let (inside, rest) = bracketed.split_once(']').ok_or_else(bad)?;
        (inside, rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        raw.split_once(':').ok_or_else(bad)?
    };
    let (port, to) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let to: SocketAddr = to.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || to.port() == 0 {
        return Err(bad());
    }
    Ok(ConnectTo {
        host: host.to_ascii_lowercase(),
        port,
        to,
    })
}

/// The address `--connect-to` gives `url`'s host and port, if any. reqwest keeps a resolved
/// port only when the URL names none (hyper-util's `set_port`), so with a port in the URL only
/// the address can be replaced.
pub(super) fn pinned_for(url: &Url, entries: &[ConnectTo]) -> anyhow::Result<Option<SocketAddr>> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(0);
    let Some(entry) = entries
        .iter()
        .find(|e| e.host.eq_ignore_ascii_case(host) && e.port == port)
    else {
        return Ok(None);
    };
    if host.parse::<IpAddr>().is_ok() {
        bail!("--connect-to {host}:{port}: the URL names an address, not a host name to redirect");
    }
    if url.port().is_some() && entry.to.port() != port {
        bail!(
            "--connect-to {host}:{port}:{}: with a port in the URL only the address can change; \
             use {host}:{port}:{}:{port}",
            entry.to,
            entry.to.ip()
        );
    }
    Ok(Some(entry.to))
}

/// The words of an HTML page, without its head and tags, for a one-line summary.
pub(super) fn page_text(html: &str) -> String {
    let body = match (html.find("</head>"), html.find("<body")) {
        (Some(end), _) => &html[end..],
        (None, Some(start)) => &html[start..],
        _ => html,
    };
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
