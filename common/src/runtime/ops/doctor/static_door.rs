//! `--static-url`: the static door must have an origin of its own that carries no OAuth
//! discovery, or Claude Code drops its static token and tries OAuth.

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{StatusCode, Url};
use serde_json::json;

use super::connection::resource_metadata_param;
use super::flow::{EMPTY_TOKEN_REQUEST, REVOKE_PROBE};
use super::http::fetch;
use super::*;

impl Doctor<'_> {
    /// The static door's origin: its own, and free of anything that would make Claude Code
    /// think it speaks OAuth.
    pub(super) async fn static_origin(&mut self, raw: &str, connector: &str) -> anyhow::Result<()> {
        let raw = raw.trim();
        let Some(url) = http_url(raw) else {
            self.report.fail(
                STEP_STATIC,
                &format!("--static-url {} is not an http(s) URL", shown(raw)),
                "give the static door's MCP URL, STUDIO_MCP_PUBLIC_URL + /mcp",
            );
            return Ok(());
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
                    self.connection_failed(STEP_STATIC, &target, &e);
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
            ("/token", Some(EMPTY_TOKEN_REQUEST)),
            ("/register", Some("")),
            ("/revoke", Some(REVOKE_PROBE)),
        ] {
            let endpoint = target.at(path);
            probes += 1;
            let request = match form {
                None => target.client.get(&endpoint),
                Some("") => target.client.post(&endpoint).json(&json!({})),
                Some(body) => target.post_form(&endpoint, body),
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
        match fetch(target.mcp_initialize()).await {
            Err(e) => self.connection_failed(STEP_STATIC_401, &target, &e),
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
