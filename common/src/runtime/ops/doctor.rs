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
//!
//! Here: the arguments, the report and its verdict, and the driver that runs the steps in order.
//! The steps live beside it: `connection` (URL, DNS, first `POST /mcp`), `discovery` (protected
//! resource and authorization server metadata), `flow` (root endpoints and the registration round
//! trip), `static_door` (`--static-url`); `http` is the client they all fetch with.

mod connection;
mod discovery;
mod flow;
mod http;
mod static_door;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use reqwest::{StatusCode, Url};

use crate::runtime::server::telemetry::printable;

use connection::is_loopback_host;
use http::{ConnectTo, parse_connect_to};

/// The `client_name` of the doctor's own registrations: the server recognises them by the
/// prefix and lets them expire after [`crate::runtime::oauth::DOCTOR_CLIENT_TTL_SECS`] instead of an hour.
pub const DOCTOR_CLIENT_NAME: &str = "studio-mcp doctor check (expires in minutes)";
/// The doctor's registered redirect URI: https (which every server accepts), on a name that can
/// never resolve (RFC 6761), so no code could ever be delivered anywhere.
pub const DOCTOR_REDIRECT_URI: &str = "https://studio-mcp-doctor.invalid/callback";

/// Said of a plain-http loopback connector: it is the local demo, not a mistake.
pub const LOCAL_DEMO: &str =
    "fine for Claude Code and mcp-remote here; claude.ai and ChatGPT need https on port 443";

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
const STEP_ROOT_AUTHORIZE: &str = "/authorize at the root";
const STEP_ROOT_TOKEN: &str = "/token at the root";
const STEP_ROOT_REVOKE: &str = "/revoke at the root";
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
    STEP_ROOT_AUTHORIZE,
    STEP_ROOT_TOKEN,
    STEP_ROOT_REVOKE,
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
// The driver

struct Doctor<'a> {
    report: Report<'a>,
    timeout: Duration,
    connect_to: Vec<ConnectTo>,
    roots: Vec<reqwest::Certificate>,
}

impl Doctor<'_> {
    /// The connector URL's checks. Returns whether it is a plain-http loopback demo.
    async fn connector(&mut self, raw: &str) -> anyhow::Result<bool> {
        let raw = raw.trim();
        let Some(url) = http_url(raw) else {
            self.report.fail(
                "URL",
                &format!("{} is not an http(s) URL", shown(raw)),
                "give the connector URL as people paste it, e.g. https://connect.studio.example/mcp",
            );
            return Ok(false);
        };
        let local_demo = url.scheme() == "http" && is_loopback_host(&url);
        self.url_shape(&url, raw, local_demo);
        let Some(target) = self.target(&url)? else {
            return Ok(local_demo);
        };
        if !self.dns(&target, local_demo).await {
            self.report.skip_all(
                &[target.connection_step()],
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
}

/// `raw` as a URL if it is an http(s) one with a host.
fn http_url(raw: &str) -> Option<Url> {
    Url::parse(raw)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
}

/// `scheme://host[:port]`.
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
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
