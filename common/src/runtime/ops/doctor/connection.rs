//! The steps up to the first answer: the URL's shape, DNS, and the unauthenticated
//! `POST /mcp` with its 401's `resource_metadata`.

use std::net::IpAddr;

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{StatusCode, Url};

use super::http::{Answer, Target, fetch};
use super::*;

impl Doctor<'_> {
    /// https on 443 and the path exactly `/mcp`, from the URL alone.
    pub(super) fn url_shape(&mut self, url: &Url, raw: &str, local_demo: bool) {
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

    /// Whether the host has an address to connect to.
    pub(super) async fn dns(&mut self, target: &Target, local_demo: bool) -> bool {
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
    pub(super) async fn mcp_endpoint(
        &mut self,
        target: &Target,
        raw: &str,
    ) -> Option<Option<String>> {
        let answer = match fetch(target.mcp_initialize()).await {
            Ok(answer) => answer,
            Err(e) => {
                self.connection_failed(target.connection_step(), target, &e);
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
        if answer.status != StatusCode::UNAUTHORIZED {
            let (what, fix) = mcp_problem(&answer, target, raw);
            self.report.fail(STEP_MCP, &what, &fix);
            self.report
                .line(Mark::Skip, STEP_401, "there was no 401 to read", None);
            return Some(None);
        }
        self.report.ok(
            STEP_MCP,
            &format!(
                "POST {} answers 401: sign-in needed, as it should",
                shown(raw)
            ),
        );
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
}

/// What is wrong with the MCP endpoint's answer to an unauthenticated `initialize` (anything
/// but a 401), and the fix.
fn mcp_problem(answer: &Answer, target: &Target, raw: &str) -> (String, String) {
    let status = answer.status;
    let answered = || {
        format!(
            "POST {} answers {}{}",
            shown(raw),
            status_text(status),
            answer.summary()
        )
    };
    if status.is_redirection() {
        (
            format!(
                "POST {} answers {} with a redirect to {}; connectors do not follow redirects on the MCP endpoint",
                shown(raw),
                status_text(status),
                shown(&answer.location())
            ),
            "serve MCP at exactly this URL: no redirect, no trailing-slash rewrite, no \
             http-to-https hop in front of it"
                .to_owned(),
        )
    } else if status == StatusCode::NOT_FOUND {
        (
            answered(),
            "point the connector URL at the server's connector door, whose MCP endpoint is \
             exactly /mcp, and let the proxy forward /mcp unchanged (no path prefix)"
                .to_owned(),
        )
    } else if status == StatusCode::FORBIDDEN || status == StatusCode::MISDIRECTED_REQUEST {
        (
            answered(),
            format!(
                "the server refuses requests for a host it does not serve: \
                 STUDIO_MCP_CONNECTOR_URL must name {} exactly, and the proxy must pass the \
                 Host header through",
                target.origin
            ),
        )
    } else if status.is_success() {
        (
            format!(
                "POST {} answers {} without asking anyone to sign in",
                shown(raw),
                status_text(status)
            ),
            "this is not a connector door (which always asks for a token): check the URL and \
             what the proxy forwards it to"
                .to_owned(),
        )
    } else {
        (
            answered(),
            "the proxy must forward POST /mcp to the connector listener; the server's log \
             says more"
                .to_owned(),
        )
    }
}

pub(super) fn is_loopback_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether claude.ai, on the internet, could reach `ip`.
pub(super) fn is_public(ip: IpAddr) -> bool {
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
pub(super) fn resource_metadata_param(challenges: &[String]) -> Option<String> {
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
