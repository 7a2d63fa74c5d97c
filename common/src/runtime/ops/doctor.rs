//! `doctor <connector url>`: what claude.ai and ChatGPT check before they ever call a tool, run
//! against a deployment from anywhere, one line per step with the fix in an operator's words.
//!
//! The steps follow a connector's own order: the URL (https on port 443 and the path exactly
//! `/mcp`, since claude.ai fails on anything else), DNS, TLS with a certificate that verifies, the
//! unauthenticated `POST /mcp` and its 401's `resource_metadata`, both protected-resource forms
//! (Claude Desktop asks for the path-suffixed one first) with `resource` byte-equal to the URL,
//! the authorization server's metadata on the same origin, `/authorize`, `/token` and `/revoke`
//! at the root (claude.ai has called them there whatever the metadata said), and a dynamic
//! registration round trip up to the point where a person would sign in. With `--static-url`,
//! the static door's origin must carry no OAuth discovery at all: Claude Code drops its static
//! header as soon as it finds any. Redirects are never followed: a connector does not follow them
//! either, so each one is a finding.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use rand::RngCore as _;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, StatusCode, Url, redirect};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::runtime::server::telemetry::printable;

/// The `client_name` of the doctor's own registrations: the server recognises them by the
/// prefix and lets them expire after [`crate::runtime::oauth::DOCTOR_CLIENT_TTL_SECS`] instead of a day.
pub const DOCTOR_CLIENT_NAME: &str = "studio-mcp doctor check (expires in minutes)";
/// The doctor's registered redirect URI: https (which every server accepts), on a name that can
/// never resolve (RFC 6761), so no code could ever be delivered anywhere.
pub const DOCTOR_REDIRECT_URI: &str = "https://studio-mcp-doctor.invalid/callback";

/// Said of a plain-http loopback connector: it is the local demo, not a mistake.
pub const LOCAL_DEMO: &str =
    "fine for Claude Code and mcp-remote here; claude.ai and ChatGPT need https on port 443";

/// An answer is read up to this many bytes; metadata documents are a few hundred.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// A value a server sent is shown up to this many characters.
const MAX_SHOWN_CHARS: usize = 160;

/// `shared-server doctor` / `isolated-server doctor`.
#[derive(Clone, Debug, clap::Args)]
pub struct DoctorArgs {
    /// The connector URL people paste into claude.ai or ChatGPT, e.g.
    /// https://connect.studio.example/mcp (STUDIO_MCP_CONNECTOR_URL).
    pub url: String,
    /// The static door's MCP URL (STUDIO_MCP_PUBLIC_URL + /mcp): its origin must carry no OAuth
    /// discovery, or Claude Code drops its static token and tries OAuth instead.
    #[arg(long, value_name = "URL")]
    pub static_url: Option<String>,
    /// Connect to ADDR:PORT2 whenever HOST:PORT is asked for, instead of looking HOST up, as
    /// curl's --connect-to does (repeatable): to check a server before DNS points at it. With a
    /// port in the URL itself only the address can change (PORT2 = PORT).
    #[arg(long = "connect-to", value_name = "HOST:PORT:ADDR:PORT2")]
    pub connect_to: Vec<String>,
    /// Also trust the certificate authorities in this PEM file (a private or test CA; claude.ai
    /// and ChatGPT trust only public ones).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Seconds each request (and the DNS lookup) may take.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Runs the subcommand: lines on standard output; exit 0 when a connector would work, 1 when
/// not, 2 when the arguments themselves are unusable (an unreadable `--ca-file`, …).
pub fn main(args: &DoctorArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("doctor: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(run(args, &mut stdout)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("doctor: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Checks `args.url` as a connector would, writing one line per step to `out` as it goes.
/// `Ok(true)` when a connector would work; `Err` only for unusable arguments.
pub async fn run(args: &DoctorArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<bool> {
    let connect_to = args
        .connect_to
        .iter()
        .map(|s| parse_connect_to(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let roots = match &args.ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
            reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("--ca-file {}: not a PEM certificate bundle", path.display())
            })?
        }
        None => Vec::new(),
    };
    let mut doctor = Doctor {
        report: Report {
            out,
            failures: Vec::new(),
        },
        timeout: Duration::from_secs(args.timeout.max(1)),
        connect_to,
        roots,
    };
    let local_demo = doctor.connector(&args.url).await?;
    if let Some(static_url) = &args.static_url {
        doctor.static_origin(static_url, &args.url).await?;
    }
    let failures = doctor.report.failures.clone();
    let report = &mut doctor.report;
    if failures.is_empty() {
        report.ok(
            "verdict",
            &format!(
                "a connector would work: paste {} into claude.ai, ChatGPT or Claude Desktop",
                args.url.trim()
            ),
        );
    } else if local_demo && failures.iter().all(|f| f == STEP_HTTPS) {
        report.line(Mark::Fail, "verdict", LOCAL_DEMO, None);
    } else {
        report.line(
            Mark::Fail,
            "verdict",
            &format!(
                "a connector would not work yet: {} problem{} above",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" }
            ),
            None,
        );
    }
    Ok(failures.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Lines

const STEP_HTTPS: &str = "https on 443";
const STEP_PATH: &str = "path /mcp";
const STEP_DNS: &str = "DNS";
const STEP_MCP: &str = "MCP endpoint";
const STEP_401: &str = "401 resource_metadata";
const STEP_PRM_SUFFIXED: &str = "protected resource (/mcp form)";
const STEP_PRM_ROOT: &str = "protected resource (root form)";
const STEP_AS: &str = "authorization server metadata";
const STEP_S256: &str = "PKCE S256";
const STEP_NONE: &str = "client authentication none";
const STEP_DCR: &str = "dynamic registration";
const STEP_CIMD: &str = "client ID metadata documents";
const STEP_ROUND_TRIP: &str = "registration round trip";
const STEP_STATIC: &str = "static origin";
const STEP_STATIC_401: &str = "static 401";

/// What comes after the connection, skipped when there is none.
const AFTER_CONNECTION: &[&str] = &[
    STEP_MCP,
    STEP_401,
    STEP_PRM_SUFFIXED,
    STEP_PRM_ROOT,
    STEP_AS,
    STEP_S256,
    STEP_NONE,
    STEP_DCR,
    STEP_CIMD,
    "/authorize at the root",
    "/token at the root",
    "/revoke at the root",
    STEP_ROUND_TRIP,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Mark {
    fn tag(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Warn => "warn",
            Mark::Fail => "FAIL",
            Mark::Skip => "skip",
        }
    }
}

struct Report<'a> {
    out: &'a mut (dyn Write + Send),
    /// The steps that failed, in order (one entry per failed line).
    failures: Vec<String>,
}

impl Report<'_> {
    /// `ok    step: what`, or `FAIL  step: what. Fix: fix`. Values a server sent are in `what`,
    /// so the whole line is made printable: no server can move an operator's cursor.
    fn line(&mut self, mark: Mark, step: &str, what: &str, fix: Option<&str>) {
        let mut text = format!("{:<6}{step}: {what}", mark.tag());
        if let Some(fix) = fix {
            text.push_str(". Fix: ");
            text.push_str(fix);
        }
        if mark == Mark::Fail {
            self.failures.push(step.to_owned());
        }
        // A closed standard output (a pager quit early) must not stop the checks' exit code.
        let _ = writeln!(self.out, "{}", printable(&text));
        let _ = self.out.flush();
    }

    fn ok(&mut self, step: &str, what: &str) {
        self.line(Mark::Ok, step, what, None);
    }

    fn warn(&mut self, step: &str, what: &str, fix: &str) {
        self.line(Mark::Warn, step, what, Some(fix));
    }

    fn fail(&mut self, step: &str, what: &str, fix: &str) {
        self.line(Mark::Fail, step, what, Some(fix));
    }

    fn skip_all(&mut self, steps: &[&str], why: &str) {
        for step in steps {
            self.line(Mark::Skip, step, why, None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

struct Doctor<'a> {
    report: Report<'a>,
    timeout: Duration,
    connect_to: Vec<ConnectTo>,
    roots: Vec<reqwest::Certificate>,
}

/// A URL under check, with the client that reaches it.
struct Target {
    url: Url,
    /// `scheme://host[:port]`, the port only when not the scheme's default.
    origin: String,
    host: String,
    port: u16,
    /// From `--connect-to`.
    pinned: Option<SocketAddr>,
    client: Client,
}

impl Target {
    /// Where a connection goes, for messages.
    fn place(&self) -> String {
        match self.pinned {
            Some(addr) => format!("{}:{} (→ {addr} by --connect-to)", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Doctor<'_> {
    /// The connector URL's checks. Returns whether it is a plain-http loopback demo.
    async fn connector(&mut self, raw: &str) -> anyhow::Result<bool> {
        let raw = raw.trim();
        let url = match Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
            _ => {
                self.report.fail(
                    "URL",
                    &format!("{} is not an http(s) URL", shown(raw)),
                    "give the connector URL as people paste it, e.g. https://connect.studio.example/mcp",
                );
                return Ok(false);
            }
        };
        let local_demo = url.scheme() == "http" && is_loopback_host(&url);
        self.url_shape(&url, raw, local_demo);
        let Some(target) = self.target(&url)? else {
            return Ok(local_demo);
        };
        if !self.dns(&target, local_demo).await {
            self.report.skip_all(
                &[connection_step(&target)],
                "there is no address to connect to",
            );
            self.report
                .skip_all(AFTER_CONNECTION, "there is no address to connect to");
            return Ok(local_demo);
        }
        let Some(challenge) = self.mcp_endpoint(&target, raw).await else {
            self.report
                .skip_all(AFTER_CONNECTION, "no connection to the server");
            return Ok(local_demo);
        };
        let authorization_servers = self.resource_metadata(&target, raw, challenge).await;
        let metadata = self
            .server_metadata(&target, authorization_servers.as_deref())
            .await;
        self.root_endpoints(&target).await;
        self.round_trip(&target, raw, metadata.as_ref()).await;
        Ok(local_demo)
    }

    /// https on 443 and the path exactly `/mcp`, from the URL alone.
    fn url_shape(&mut self, url: &Url, raw: &str, local_demo: bool) {
        let port = url.port_or_known_default().unwrap_or(0);
        let public_fix = "put the connector door behind a TLS proxy on a public name \
                          (deploy/ does this with Caddy) and set STUDIO_MCP_CONNECTOR_URL to \
                          https://<that name>/mcp, without a port";
        if url.scheme() == "http" && local_demo {
            self.report.fail(
                STEP_HTTPS,
                &format!("{} is plain http on this machine: {LOCAL_DEMO}", shown(raw)),
                public_fix,
            );
        } else if url.scheme() == "http" {
            self.report.fail(
                STEP_HTTPS,
                &format!(
                    "{} is plain http; claude.ai and ChatGPT connect only over https on port 443",
                    shown(raw)
                ),
                public_fix,
            );
        } else if port != 443 {
            self.report.fail(
                STEP_HTTPS,
                &format!(
                    "{} uses port {port}; claude.ai connects only over https on port 443",
                    shown(raw)
                ),
                "serve the connector on port 443 (the TLS proxy listens on 443 and forwards to \
                 the connector listener) and drop the port from STUDIO_MCP_CONNECTOR_URL",
            );
        } else {
            self.report.ok(STEP_HTTPS, "https, port 443");
        }
        let extras = !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some();
        if url.path() != "/mcp" || extras {
            self.report.fail(
                STEP_PATH,
                &format!(
                    "the URL's path is {}{}; claude.ai fails on anything but exactly /mcp",
                    shown(url.path()),
                    if extras {
                        " with a user name, query or fragment"
                    } else {
                        ""
                    }
                ),
                &format!(
                    "use {}/mcp: the connector door serves MCP there and nowhere else",
                    origin_of(url)
                ),
            );
        } else {
            self.report.ok(STEP_PATH, "exactly /mcp");
        }
    }

    /// The client for `url`, with `--connect-to` applied. `None` (after a failed line) if the
    /// client cannot be built.
    fn target(&mut self, url: &Url) -> anyhow::Result<Option<Target>> {
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

    /// Whether the host has an address to connect to.
    async fn dns(&mut self, target: &Target, local_demo: bool) -> bool {
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        if let Some(addr) = target.pinned {
            self.report.ok(
                STEP_DNS,
                &format!("{host} → {addr} by --connect-to (DNS not consulted)"),
            );
            return true;
        }
        if host.parse::<IpAddr>().is_ok() {
            self.report.ok(
                STEP_DNS,
                &format!("{host} is an address: nothing to look up"),
            );
            return true;
        }
        let lookup =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, target.port))).await;
        let mut addrs: Vec<IpAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            Ok(Err(e)) => {
                self.report.fail(
                    STEP_DNS,
                    &format!("{host} does not resolve ({e})"),
                    &format!(
                        "create an A (and AAAA) record for {host} pointing at the server or its \
                         TLS proxy; a new record can take a while to be seen everywhere"
                    ),
                );
                return false;
            }
            Err(_) => {
                self.report.fail(
                    STEP_DNS,
                    &format!(
                        "looking {host} up took longer than {} s",
                        self.timeout.as_secs()
                    ),
                    "check this machine's DNS resolver, then the domain's name servers",
                );
                return false;
            }
        };
        addrs.dedup();
        if addrs.is_empty() {
            self.report.fail(
                STEP_DNS,
                &format!("{host} has no address"),
                &format!("create an A (and AAAA) record for {host}"),
            );
            return false;
        }
        let list = addrs
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if !local_demo && addrs.iter().all(|ip| !is_public(*ip)) {
            self.report.warn(
                STEP_DNS,
                &format!(
                    "{host} → {list}: only private or loopback addresses, which claude.ai and \
                     ChatGPT, connecting from the internet, cannot reach"
                ),
                "publish the public address of the server's TLS proxy (a DNS server that \
                 answers differently inside your network shows this here only)",
            );
        } else {
            self.report.ok(STEP_DNS, &format!("{host} → {list}"));
        }
        true
    }

    /// The first request: an MCP `initialize` without a token, as a connector's first call.
    /// Reports the connection (TLS) and the endpoint; `None` if there was no answer, else the
    /// 401's `resource_metadata` if any.
    async fn mcp_endpoint(&mut self, target: &Target, raw: &str) -> Option<Option<String>> {
        let answer = match fetch(mcp_initialize(&target.client, target.url.as_str())).await {
            Ok(answer) => answer,
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(connection_step(target), &what, &fix);
                return None;
            }
        };
        if target.url.scheme() == "https" {
            self.report.ok(
                "TLS",
                &format!(
                    "{} answered over TLS with a certificate that verifies for {}",
                    target.place(),
                    target.host
                ),
            );
        } else {
            self.report.ok(
                "connection",
                &format!("{} answers (plain http)", target.place()),
            );
        }
        let status = answer.status;
        if status == StatusCode::UNAUTHORIZED {
            self.report.ok(
                STEP_MCP,
                &format!(
                    "POST {} answers 401: sign-in needed, as it should",
                    shown(raw)
                ),
            );
        } else if status.is_redirection() {
            self.report.fail(
                STEP_MCP,
                &format!(
                    "POST {} answers {} with a redirect to {}; connectors do not follow redirects on the MCP endpoint",
                    shown(raw),
                    status_text(status),
                    shown(&answer.location())
                ),
                "serve MCP at exactly this URL: no redirect, no trailing-slash rewrite, no \
                 http-to-https hop in front of it",
            );
        } else if status == StatusCode::NOT_FOUND {
            self.report.fail(
                STEP_MCP,
                &format!(
                    "POST {} answers 404 Not Found{}",
                    shown(raw),
                    answer.summary()
                ),
                "point the connector URL at the server's connector door, whose MCP endpoint is \
                 exactly /mcp, and let the proxy forward /mcp unchanged (no path prefix)",
            );
        } else if status == StatusCode::FORBIDDEN || status == StatusCode::MISDIRECTED_REQUEST {
            self.report.fail(
                STEP_MCP,
                &format!(
                    "POST {} answers {}{}",
                    shown(raw),
                    status_text(status),
                    answer.summary()
                ),
                &format!(
                    "the server refuses requests for a host it does not serve: \
                     STUDIO_MCP_CONNECTOR_URL must name {} exactly, and the proxy must pass the \
                     Host header through",
                    target.origin
                ),
            );
        } else if status.is_success() {
            self.report.fail(
                STEP_MCP,
                &format!(
                    "POST {} answers {} without asking anyone to sign in",
                    shown(raw),
                    status_text(status)
                ),
                "this is not a connector door (which always asks for a token): check the URL and \
                 what the proxy forwards it to",
            );
        } else {
            self.report.fail(
                STEP_MCP,
                &format!(
                    "POST {} answers {}{}",
                    shown(raw),
                    status_text(status),
                    answer.summary()
                ),
                "the proxy must forward POST /mcp to the connector listener; the server's log \
                 says more",
            );
        }
        if status != StatusCode::UNAUTHORIZED {
            self.report
                .line(Mark::Skip, STEP_401, "there was no 401 to read", None);
            return Some(None);
        }
        let challenges = answer.all(WWW_AUTHENTICATE);
        match resource_metadata_param(&challenges) {
            Some(url) => {
                self.report.ok(
                    STEP_401,
                    &format!("WWW-Authenticate names resource_metadata {}", shown(&url)),
                );
                Some(Some(url))
            }
            None => {
                self.report.fail(
                    STEP_401,
                    &format!(
                        "the 401's WWW-Authenticate ({}) names no resource_metadata, so a \
                         connector cannot find where to sign in",
                        shown(&challenges.join(", "))
                    ),
                    "this looks like the static door (STUDIO_MCP_PUBLIC_URL); connectors need the \
                     connector door's URL (STUDIO_MCP_CONNECTOR_URL)",
                );
                Some(None)
            }
        }
    }

    /// Both protected-resource forms (and the one the 401 names, if it is neither). Returns
    /// the `authorization_servers` of the first good one.
    async fn resource_metadata(
        &mut self,
        target: &Target,
        resource: &str,
        named: Option<String>,
    ) -> Option<Vec<String>> {
        let root = target.at("/.well-known/oauth-protected-resource");
        let path = target.url.path();
        let suffixed = (path != "/").then(|| format!("{root}{path}"));
        let mut forms = Vec::new();
        if let Some(suffixed) = &suffixed {
            forms.push((STEP_PRM_SUFFIXED, suffixed.clone()));
        }
        forms.push((STEP_PRM_ROOT, root.clone()));
        if let Some(named) = named.filter(|n| Some(n) != suffixed.as_ref() && n != &root) {
            forms.push(("protected resource (named by the 401)", named));
        }
        let mut servers = None;
        for (step, doc_url) in forms {
            let answer = fetch(target.client.get(&doc_url)).await;
            match answer.map_err(|e| connection_problem(&e, target, self.timeout)) {
                Err((what, fix)) => self.report.fail(step, &what, &fix),
                Ok(answer) => match read_resource_metadata(&answer, &doc_url, resource) {
                    Ok(found) => {
                        self.report.ok(
                            step,
                            &format!(
                                "{doc_url}: resource is byte-equal to the URL; authorization server {}",
                                shown(&found.join(", "))
                            ),
                        );
                        servers.get_or_insert(found);
                    }
                    Err((what, fix)) => {
                        let fix = if step == STEP_PRM_SUFFIXED
                            && answer.status == StatusCode::NOT_FOUND
                        {
                            format!(
                                "Claude Desktop asks for this form first: route every \
                                 /.well-known/ path of {} to the connector door (a proxy that \
                                 forwards only /mcp drops it)",
                                target.host
                            )
                        } else {
                            fix
                        };
                        self.report.fail(step, &what, &fix);
                    }
                },
            }
        }
        servers
    }

    /// RFC 8414 metadata, on the connector's own origin whatever the resource metadata names
    /// (claude.ai goes there regardless). Returns the document if there is one.
    async fn server_metadata(
        &mut self,
        target: &Target,
        servers: Option<&[String]>,
    ) -> Option<Map<String, Value>> {
        let named = servers.and_then(|s| s.first()).cloned();
        let named_url = named.as_deref().and_then(|n| Url::parse(n).ok());
        let same_origin = named_url
            .as_ref()
            .is_some_and(|u| origin_of(u) == target.origin);
        if let Some(named) = &named
            && !same_origin
        {
            self.report.fail(
                "authorization server origin",
                &format!(
                    "the resource metadata names {} as its authorization server, not {}; \
                         claude.ai calls /authorize, /token and /register on {} itself",
                    shown(named),
                    target.origin,
                    target.origin
                ),
                &format!(
                    "serve the authorization server on the connector's own origin and name \
                         {} in authorization_servers (studio-mcp's connector door does both)",
                    target.origin
                ),
            );
        }
        // RFC 8414 §3.1: the issuer's path goes after the well-known name.
        let (issuer, issuer_path) = match (&named, &named_url) {
            (Some(named), Some(url)) if same_origin => {
                (named.clone(), url.path().trim_end_matches('/').to_owned())
            }
            _ => (target.origin.clone(), String::new()),
        };
        let doc_url = target.at(&format!(
            "/.well-known/oauth-authorization-server{issuer_path}"
        ));
        let later = [STEP_S256, STEP_NONE, STEP_DCR, STEP_CIMD];
        let answer = match fetch(target.client.get(&doc_url)).await {
            Ok(answer) => answer,
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(STEP_AS, &what, &fix);
                self.report
                    .skip_all(&later, "no authorization server metadata");
                return None;
            }
        };
        let fix_route = format!(
            "route /.well-known/oauth-authorization-server on {} to the connector door",
            target.host
        );
        let doc = if answer.status.is_redirection() {
            self.report.fail(
                STEP_AS,
                &format!(
                    "GET {doc_url} answers {} with a redirect to {}; it is not followed",
                    status_text(answer.status),
                    shown(&answer.location())
                ),
                &fix_route,
            );
            None
        } else if !answer.status.is_success() {
            self.report.fail(
                STEP_AS,
                &format!(
                    "GET {doc_url} answers {}{}",
                    status_text(answer.status),
                    answer.summary()
                ),
                &fix_route,
            );
            None
        } else if let Some(doc) = answer.json_object() {
            Some(doc)
        } else {
            self.report.fail(
                STEP_AS,
                &format!("{doc_url} is not a JSON object"),
                &fix_route,
            );
            None
        };
        let Some(doc) = doc else {
            self.report
                .skip_all(&later, "no authorization server metadata");
            return None;
        };
        match doc.get("issuer").and_then(Value::as_str) {
            Some(found) if found == issuer => self.report.ok(
                STEP_AS,
                &format!(
                    "{doc_url}: issuer {}, on the connector's origin",
                    shown(found)
                ),
            ),
            found => self.report.fail(
                STEP_AS,
                &format!(
                    "{doc_url} has issuer {}, not {}; clients stop at a metadata document for \
                     another issuer (RFC 8414 §3.3)",
                    found.map_or_else(|| "(none)".to_owned(), shown),
                    shown(&issuer)
                ),
                "the issuer must be the connector's origin exactly: check \
                 STUDIO_MCP_CONNECTOR_URL and that the proxy passes the Host header through",
            ),
        }
        let not_studio = "this document is not the one studio-mcp's connector door serves (it \
                          always advertises it): check what the proxy forwards \
                          /.well-known/oauth-authorization-server to";
        if listed(&doc, "code_challenge_methods_supported", "S256") {
            self.report
                .ok(STEP_S256, "code_challenge_methods_supported has S256");
        } else {
            self.report.fail(
                STEP_S256,
                "code_challenge_methods_supported lacks S256; claude.ai and ChatGPT refuse an \
                 authorization server without PKCE S256",
                not_studio,
            );
        }
        if listed(&doc, "token_endpoint_auth_methods_supported", "none") {
            self.report
                .ok(STEP_NONE, "token_endpoint_auth_methods_supported has none");
        } else {
            self.report.fail(
                STEP_NONE,
                "token_endpoint_auth_methods_supported lacks none; connectors are public \
                 clients with no secret",
                not_studio,
            );
        }
        match doc.get("registration_endpoint").and_then(Value::as_str) {
            Some(endpoint) => self.report.ok(
                STEP_DCR,
                &format!("registration_endpoint {}", shown(endpoint)),
            ),
            None => self.report.fail(
                STEP_DCR,
                "no registration_endpoint; claude.ai and ChatGPT register themselves \
                 (dynamic client registration) before the sign-in",
                not_studio,
            ),
        }
        if doc.get("client_id_metadata_document_supported") == Some(&Value::Bool(true)) {
            self.report
                .ok(STEP_CIMD, "client_id_metadata_document_supported is true");
        } else {
            self.report.warn(
                STEP_CIMD,
                "client_id_metadata_document_supported is not true; clients that prefer \
                 metadata documents fall back to dynamic registration",
                not_studio,
            );
        }
        for (field, path) in [
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("registration_endpoint", "/register"),
        ] {
            let expected = target.at(path);
            if let Some(found) = doc.get(field).and_then(Value::as_str)
                && found != expected
            {
                self.report.warn(
                    STEP_AS,
                    &format!(
                        "{field} is {}, not {expected}; claude.ai has called {expected} whatever \
                         the metadata said",
                        shown(found)
                    ),
                    &format!("serve {path} at the root of {}", target.origin),
                );
            }
        }
        Some(doc)
    }

    /// `/authorize`, `/token` and `/revoke` where claude.ai looks for them: at the root.
    async fn root_endpoints(&mut self, target: &Target) {
        let fix = |path: &str| {
            format!(
                "serve {path} at the root of {} (route it to the connector door); claude.ai \
                 calls it there whatever the metadata says",
                target.origin
            )
        };
        let url = target.at("/authorize");
        let step = "/authorize at the root";
        match fetch(target.client.get(&url)).await {
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(step, &what, &fix);
            }
            Ok(a) if missing(a.status) => self.report.fail(
                step,
                &format!("GET {url} answers {}", status_text(a.status)),
                &fix("/authorize"),
            ),
            Ok(a) => self.report.ok(
                step,
                &format!(
                    "GET {url} answers {} (a page for a person)",
                    status_text(a.status)
                ),
            ),
        }
        let url = target.at("/token");
        let step = "/token at the root";
        let request = target
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=");
        match fetch(request).await {
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(step, &what, &fix);
            }
            Ok(a) if a.oauth_error().is_some() => self.report.ok(
                step,
                &format!(
                    "POST {url} answers {} with an OAuth error, as a token endpoint does to an \
                     empty request",
                    status_text(a.status)
                ),
            ),
            Ok(a) => self.report.fail(
                step,
                &format!(
                    "POST {url} answers {}{} instead of an OAuth error",
                    status_text(a.status),
                    a.summary()
                ),
                &fix("/token"),
            ),
        }
        let url = target.at("/revoke");
        let step = "/revoke at the root";
        let request = target
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("token=studio-mcp-doctor-probe");
        match fetch(request).await {
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(step, &what, &fix);
            }
            Ok(a) if a.status == StatusCode::OK || a.oauth_error().is_some() => self.report.ok(
                step,
                &format!("POST {url} answers {}", status_text(a.status)),
            ),
            // Revocation is how a connector says goodbye; without it sign-in still works.
            Ok(a) => self.report.warn(
                step,
                &format!(
                    "POST {url} answers {}{}",
                    status_text(a.status),
                    a.summary()
                ),
                &fix("/revoke"),
            ),
        }
    }

    /// Registers a client as claude.ai does, then asks `/authorize` for a sign-in with it, PKCE
    /// S256 and `resource` = the URL, stopping where a person would have to act.
    async fn round_trip(
        &mut self,
        target: &Target,
        resource: &str,
        metadata: Option<&Map<String, Value>>,
    ) {
        let register = target.at("/register");
        let registration = json!({
            "client_name": DOCTOR_CLIENT_NAME,
            "redirect_uris": [DOCTOR_REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let answer = match fetch(target.client.post(&register).json(&registration)).await {
            Ok(answer) => answer,
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(STEP_ROUND_TRIP, &what, &fix);
                return;
            }
        };
        let client_id = answer
            .json_object()
            .and_then(|doc| {
                doc.get("client_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|_| answer.status.is_success());
        let Some(client_id) = client_id else {
            let fix = match answer.status {
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => format!(
                    "serve /register at the root of {} (route it to the connector door); \
                     claude.ai registers there whatever the metadata says",
                    target.origin
                ),
                StatusCode::TOO_MANY_REQUESTS => {
                    "the server limits registrations per minute: run doctor again in a minute"
                        .to_owned()
                }
                _ => "the server's log says why it refused the registration".to_owned(),
            };
            self.report.fail(
                STEP_ROUND_TRIP,
                &format!(
                    "POST {register} answers {}{} instead of a new client_id",
                    status_text(answer.status),
                    answer.summary()
                ),
                &fix,
            );
            return;
        };
        let verifier = random_b64(32);
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
        let state = random_b64(16);
        let authorize_base = metadata
            .and_then(|m| m.get("authorization_endpoint").and_then(Value::as_str))
            .filter(|a| *a == target.at("/authorize"))
            .map_or_else(|| target.at("/authorize"), str::to_owned);
        let mut authorize = match Url::parse(&authorize_base) {
            Ok(url) => url,
            Err(e) => {
                self.report.fail(
                    STEP_ROUND_TRIP,
                    &format!("{} is not a URL ({e})", shown(&authorize_base)),
                    "check STUDIO_MCP_CONNECTOR_URL",
                );
                return;
            }
        };
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", DOCTOR_REDIRECT_URI)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", resource)
            .append_pair("scope", "mcp");
        let answer = match fetch(target.client.get(authorize.as_str())).await {
            Ok(answer) => answer,
            Err(e) => {
                let (what, fix) = connection_problem(&e, target, self.timeout);
                self.report.fail(STEP_ROUND_TRIP, &what, &fix);
                return;
            }
        };
        let registered = format!(
            "POST /register made client {} (named as a doctor check, it expires unused within \
             minutes)",
            shown(&client_id)
        );
        if answer.status.is_success() {
            self.report.ok(
                STEP_ROUND_TRIP,
                &format!(
                    "{registered}; GET /authorize with it, PKCE S256 and resource={} answers {}: \
                     a person would sign in now",
                    shown(resource),
                    status_text(answer.status)
                ),
            );
            return;
        }
        if answer.status.is_redirection() {
            let location = answer.location();
            let to = authorize.join(&location).ok();
            let back_to_client = to
                .as_ref()
                .is_some_and(|u| u.as_str().starts_with(DOCTOR_REDIRECT_URI));
            if !back_to_client {
                self.report.ok(
                    STEP_ROUND_TRIP,
                    &format!(
                        "{registered}; GET /authorize with it, PKCE S256 and resource={} \
                         redirects to {}: a person would sign in now",
                        shown(resource),
                        shown(&location)
                    ),
                );
                return;
            }
            let pairs: Vec<(String, String)> = to
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let error = get("error");
            let fix = if error == "invalid_target" {
                format!(
                    "the server's own resource is not {resource}: set STUDIO_MCP_CONNECTOR_URL \
                     to exactly that URL and restart"
                )
            } else {
                "the server's log says why it refused the request".to_owned()
            };
            self.report.fail(
                STEP_ROUND_TRIP,
                &format!(
                    "{registered}; GET /authorize sent the client back with error {}: {}",
                    shown(&error),
                    shown(&get("error_description"))
                ),
                &fix,
            );
            return;
        }
        let fix = if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            "passkeys need the connector on a domain name over https (or localhost): set \
             STUDIO_MCP_CONNECTOR_URL to https://<name>/mcp; if it is, the server's store may be \
             down (see its log)"
        } else {
            "the server's log says why it refused the request"
        };
        self.report.fail(
            STEP_ROUND_TRIP,
            &format!(
                "{registered}; GET /authorize with it answers {}{} instead of asking a person to \
                 sign in",
                status_text(answer.status),
                answer.summary()
            ),
            fix,
        );
    }

    /// The static door's origin: its own, and free of anything that would make Claude Code
    /// think it speaks OAuth.
    async fn static_origin(&mut self, raw: &str, connector: &str) -> anyhow::Result<()> {
        let raw = raw.trim();
        let url = match Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
            _ => {
                self.report.fail(
                    STEP_STATIC,
                    &format!("--static-url {} is not an http(s) URL", shown(raw)),
                    "give the static door's MCP URL, STUDIO_MCP_PUBLIC_URL + /mcp",
                );
                return Ok(());
            }
        };
        let origin = origin_of(&url);
        if Url::parse(connector.trim()).is_ok_and(|c| origin_of(&c) == origin) {
            self.report.fail(
                STEP_STATIC,
                &format!(
                    "the static URL is on the connector's origin {origin}: Claude Code finds the \
                     OAuth discovery there and drops its static token"
                ),
                "give each door its own origin (another host name, or another port for a local \
                 demo): STUDIO_MCP_PUBLIC_URL and STUDIO_MCP_CONNECTOR_URL",
            );
            return Ok(());
        }
        let Some(target) = self.target(&url)? else {
            return Ok(());
        };
        let mut found = Vec::new();
        let mut probes = 0;
        for path in STATIC_DISCOVERY {
            let doc_url = target.at(path);
            probes += 1;
            match fetch(target.client.get(&doc_url)).await {
                Err(e) => {
                    let (what, fix) = connection_problem(&e, &target, self.timeout);
                    self.report.fail(STEP_STATIC, &what, &fix);
                    self.report
                        .skip_all(&[STEP_STATIC_401], "no connection to the static origin");
                    return Ok(());
                }
                Ok(a) => {
                    let document = a.status.is_success() && a.json_object().is_some();
                    if document || a.status.is_redirection() || a.oauth_json() {
                        found.push((doc_url, a));
                    }
                }
            }
        }
        for (path, form) in [
            ("/authorize", None),
            ("/token", Some("grant_type=")),
            ("/register", Some("")),
            ("/revoke", Some("token=studio-mcp-doctor-probe")),
        ] {
            let endpoint = target.at(path);
            probes += 1;
            let request = match form {
                None => target.client.get(&endpoint),
                Some("") => target.client.post(&endpoint).json(&json!({})),
                Some(body) => target
                    .client
                    .post(&endpoint)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body),
            };
            if let Ok(a) = fetch(request).await
                && (a.status.is_success() || a.status.is_redirection() || a.oauth_json())
            {
                found.push((endpoint, a));
            }
        }
        if found.is_empty() {
            self.report.ok(
                STEP_STATIC,
                &format!(
                    "{origin}: none of the {probes} OAuth discovery documents and endpoints \
                     Claude Code probes answers"
                ),
            );
        }
        for (at, answer) in found {
            let what = if answer.status.is_redirection() {
                format!("a redirect to {}", shown(&answer.location()))
            } else {
                "OAuth".to_owned()
            };
            self.report.fail(
                STEP_STATIC,
                &format!(
                    "{at} answers {} with {what}; Claude Code then drops the static \
                     Authorization header and tries OAuth",
                    status_text(answer.status)
                ),
                "serve nothing but /mcp and /healthz on the static host: route OAuth discovery \
                 and sign-in to the connector host only (STUDIO_MCP_CONNECTOR_URL)",
            );
        }
        match fetch(mcp_initialize(&target.client, url.as_str())).await {
            Err(e) => {
                let (what, fix) = connection_problem(&e, &target, self.timeout);
                self.report.fail(STEP_STATIC_401, &what, &fix);
            }
            Ok(a) if a.status == StatusCode::UNAUTHORIZED => {
                let challenges = a.all(WWW_AUTHENTICATE);
                match resource_metadata_param(&challenges) {
                    None => self.report.ok(
                        STEP_STATIC_401,
                        &format!(
                            "POST {} answers 401 with a bare Bearer challenge",
                            shown(raw)
                        ),
                    ),
                    Some(named) => self.report.fail(
                        STEP_STATIC_401,
                        &format!(
                            "POST {} answers 401 naming resource_metadata {}; Claude Code then \
                             switches to OAuth and drops its static token",
                            shown(raw),
                            shown(&named)
                        ),
                        "the static door's 401 must be a bare `Bearer realm=…`: --static-url must \
                         be the static door (STUDIO_MCP_PUBLIC_URL + /mcp), not the connector",
                    ),
                }
            }
            Ok(a) => self.report.warn(
                STEP_STATIC_401,
                &format!(
                    "POST {} answers {}{}, not 401",
                    shown(raw),
                    status_text(a.status),
                    a.summary()
                ),
                "check that --static-url is the static door's MCP URL (STUDIO_MCP_PUBLIC_URL + \
                 /mcp)",
            ),
        }
        Ok(())
    }
}

/// What MCP clients probe for OAuth on a server's origin: RFC 9728 (root and path-suffixed,
/// for `/mcp` and the retired `/connector`), RFC 8414 and OpenID discovery in each of the
/// forms the TypeScript SDK tries for an issuer with the path `/mcp`.
const STATIC_DISCOVERY: &[&str] = &[
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource/connector",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/mcp",
    "/mcp/.well-known/openid-configuration",
];

fn connection_step(target: &Target) -> &'static str {
    if target.url.scheme() == "https" {
        "TLS"
    } else {
        "connection"
    }
}

/// The request a connector sends first: `initialize`, without a token.
fn mcp_initialize(client: &Client, url: &str) -> RequestBuilder {
    client
        .post(url)
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

/// Statuses that say "nothing here".
fn missing(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 405 | 410) || status.is_server_error()
}

/// Whether `doc[field]` is an array holding `value`.
fn listed(doc: &Map<String, Value>, field: &str, value: &str) -> bool {
    doc.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(value)))
}

/// A protected-resource document's `authorization_servers`, if it is a good one for `resource`;
/// otherwise what is wrong and the fix.
fn read_resource_metadata(
    answer: &Answer,
    doc_url: &str,
    resource: &str,
) -> Result<Vec<String>, (String, String)> {
    let route =
        "route every /.well-known/ path of the connector host to the connector door".to_owned();
    if answer.status.is_redirection() {
        return Err((
            format!(
                "GET {doc_url} answers {} with a redirect to {}; it is not followed",
                status_text(answer.status),
                shown(&answer.location())
            ),
            route,
        ));
    }
    if !answer.status.is_success() {
        return Err((
            format!(
                "GET {doc_url} answers {}{}",
                status_text(answer.status),
                answer.summary()
            ),
            route,
        ));
    }
    let Some(doc) = answer.json_object() else {
        return Err((format!("{doc_url} is not a JSON object"), route));
    };
    match doc.get("resource").and_then(Value::as_str) {
        Some(found) if found == resource => {}
        Some(found) => {
            return Err((
                format!(
                    "{doc_url} has resource {}, not byte-equal to the connector URL {}; clients \
                     reject metadata for another resource (RFC 9728 §3.3)",
                    shown(found),
                    shown(resource)
                ),
                format!(
                    "set STUDIO_MCP_CONNECTOR_URL to exactly {resource}, the URL people paste, \
                     and restart"
                ),
            ));
        }
        None => {
            return Err((
                format!("{doc_url} has no resource"),
                "serve the connector door's own document there".to_owned(),
            ));
        }
    }
    let servers: Vec<String> = doc
        .get("authorization_servers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if servers.is_empty() {
        return Err((
            format!("{doc_url} names no authorization_servers"),
            "serve the connector door's own document there".to_owned(),
        ));
    }
    Ok(servers)
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// An answer, its body read up to [`MAX_BODY_BYTES`].
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json_object(&self) -> Option<Map<String, Value>> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// An RFC 6749 error answer's `error`.
    fn oauth_error(&self) -> Option<String> {
        self.json_object()?
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// JSON that only an OAuth server would send.
    fn oauth_json(&self) -> bool {
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

    fn all(&self, name: reqwest::header::HeaderName) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    fn location(&self) -> String {
        self.all(LOCATION)
            .into_iter()
            .next()
            .unwrap_or_else(|| "(no Location)".to_owned())
    }

    /// ` (error "x": description)` or ` ("the page's words")`, or nothing: what a person reading
    /// the line needs to know of the body.
    fn summary(&self) -> String {
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

async fn fetch(request: RequestBuilder) -> Result<Answer, reqwest::Error> {
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

// ---------------------------------------------------------------------------------------------
// Small pieces

/// One `--connect-to HOST:PORT:ADDR:PORT2`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConnectTo {
    host: String,
    port: u16,
    to: SocketAddr,
}

fn parse_connect_to(raw: &str) -> anyhow::Result<ConnectTo> {
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
fn pinned_for(url: &Url, entries: &[ConnectTo]) -> anyhow::Result<Option<SocketAddr>> {
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

/// `scheme://host[:port]`.
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn is_loopback_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether claude.ai, on the internet, could reach `ip`.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// `resource_metadata` from `WWW-Authenticate` values (RFC 9728 §5.1): a token or a quoted
/// string, at a parameter boundary.
fn resource_metadata_param(challenges: &[String]) -> Option<String> {
    const NAME: &str = "resource_metadata=";
    for value in challenges {
        let lower = value.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find(NAME) {
            let at = from + i;
            let boundary = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
            if boundary {
                let rest = &value[at + NAME.len()..];
                return Some(match rest.strip_prefix('"') {
                    Some(quoted) => {
                        let mut out = String::new();
                        let mut chars = quoted.chars();
                        while let Some(c) = chars.next() {
                            match c {
                                '\\' => out.extend(chars.next()),
                                '"' => break,
                                c => out.push(c),
                            }
                        }
                        out
                    }
                    None => rest
                        .split([',', ' ', '\t'])
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            from = at + NAME.len();
        }
    }
    None
}

/// The words of an HTML page, without its head and tags, for a one-line summary.
fn page_text(html: &str) -> String {
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

/// A value a server sent, quoted and cut to a readable length.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(MAX_SHOWN_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn random_b64(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_takes_curls_form() {
        assert_eq!(
            parse_connect_to("Connect.Studio.Test:443:127.0.0.1:8443").unwrap(),
            ConnectTo {
                host: "connect.studio.test".into(),
                port: 443,
                to: "127.0.0.1:8443".parse().unwrap(),
            }
        );
        assert_eq!(
            parse_connect_to("a.example:443:[::1]:9000").unwrap().to,
            "[::1]:9000".parse::<SocketAddr>().unwrap()
        );
        for bad in [
            "a.example",
            "a.example:443",
            "a.example:443:127.0.0.1",
            "a.example:x:127.0.0.1:1",
            ":443:127.0.0.1:1",
            "a.example:443:name.example:1",
            "a.example:443:127.0.0.1:0",
        ] {
            assert!(parse_connect_to(bad).is_err(), "{bad} passed");
        }
    }

    #[test]
    fn connect_to_moves_a_port_only_for_a_url_without_one() {
        let entries = [parse_connect_to("a.example:443:127.0.0.1:8443").unwrap()];
        let default = Url::parse("https://a.example/mcp").unwrap();
        assert_eq!(
            pinned_for(&default, &entries).unwrap(),
            Some("127.0.0.1:8443".parse().unwrap())
        );
        let explicit = Url::parse("https://a.example:443/mcp").unwrap();
        // The url crate drops a default port, so this is the same URL as above.
        assert!(pinned_for(&explicit, &entries).unwrap().is_some());
        let other = Url::parse("https://a.example:8443/mcp").unwrap();
        assert_eq!(pinned_for(&other, &entries).unwrap(), None);
        let moved = [parse_connect_to("a.example:8443:127.0.0.1:9443").unwrap()];
        assert!(pinned_for(&other, &moved).is_err());
        let same = [parse_connect_to("a.example:8443:127.0.0.1:8443").unwrap()];
        assert!(pinned_for(&other, &same).unwrap().is_some());
    }

    #[test]
    fn resource_metadata_is_read_from_the_challenge() {
        let one = |v: &str| resource_metadata_param(&[v.to_owned()]);
        assert_eq!(
            one(r#"Bearer resource_metadata="https://c.example/.well-known/oauth-protected-resource/mcp", scope="mcp""#)
                .as_deref(),
            Some("https://c.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            one("Bearer error=\"invalid_token\",resource_metadata=https://c.example/x").as_deref(),
            Some("https://c.example/x")
        );
        assert_eq!(one(r#"Bearer realm="studio-mcp""#), None);
        assert_eq!(one(r#"Bearer x_resource_metadata="https://no""#), None);
    }

    #[test]
    fn doctor_clients_are_known_by_name() {
        use crate::runtime::oauth::is_doctor_client;
        assert!(is_doctor_client(Some(DOCTOR_CLIENT_NAME)));
        assert!(!is_doctor_client(Some("Claude")));
        assert!(!is_doctor_client(None));
        // What the server keeps of a name must still say it is the doctor's.
        assert_eq!(
            crate::runtime::oauth::clean_name(DOCTOR_CLIENT_NAME),
            DOCTOR_CLIENT_NAME
        );
        assert_eq!(
            crate::runtime::oauth::client_metadata::check_redirect_uri(DOCTOR_REDIRECT_URI),
            Ok(())
        );
    }

    #[test]
    fn pages_are_summarised_by_their_words() {
        let html = "<!doctype html><html><head><title>T</title><style>p{}</style></head>\
                    <body><h1>This connection request cannot be used</h1><p>The application \
                    could not be identified: it&#39;s &quot;gone&quot;.</p></body></html>";
        assert_eq!(
            page_text(html),
            "This connection request cannot be used The application could not be identified: \
             it's \"gone\"."
        );
    }

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["203.0.113.7", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
