//! OAuth discovery: both protected-resource forms (RFC 9728) and the authorization server's
//! metadata (RFC 8414) on the connector's own origin.

use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};

use super::http::{Answer, Target, fetch};
use super::*;

impl Doctor<'_> {
    /// Both protected-resource forms (and the one the 401 names, if it is neither). Returns
    /// the `authorization_servers` of the first good one.
    pub(super) async fn resource_metadata(
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
            let answer = match fetch(target.client.get(&doc_url)).await {
                Ok(answer) => answer,
                Err(e) => {
                    self.connection_failed(step, target, &e);
                    continue;
                }
            };
            match read_resource_metadata(&answer, &doc_url, resource) {
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
                    let fix = if step == STEP_PRM_SUFFIXED && answer.status == StatusCode::NOT_FOUND
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
            }
        }
        servers
    }

    /// RFC 8414 metadata, on the connector's own origin whatever the resource metadata names
    /// (claude.ai goes there regardless). Returns the document if there is one.
    pub(super) async fn server_metadata(
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
        let fix_route = format!(
            "route /.well-known/oauth-authorization-server on {} to the connector door",
            target.host
        );
        let doc = match fetch(target.client.get(&doc_url)).await {
            Err(e) => {
                self.connection_failed(STEP_AS, target, &e);
                None
            }
            Ok(answer) => match json_document(&answer, &doc_url) {
                Ok(doc) => Some(doc),
                Err(what) => {
                    self.report.fail(STEP_AS, &what, &fix_route);
                    None
                }
            },
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
    let doc = json_document(answer, doc_url).map_err(|what| {
        (
            what,
            "route every /.well-known/ path of the connector host to the connector door".to_owned(),
        )
    })?;
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

/// The JSON object a metadata URL answers with; otherwise what is wrong with the answer (a
/// redirect, which is not followed, an error status, or a body that is no JSON object).
fn json_document(answer: &Answer, doc_url: &str) -> Result<Map<String, Value>, String> {
    if answer.status.is_redirection() {
        return Err(format!(
            "GET {doc_url} answers {} with a redirect to {}; it is not followed",
            status_text(answer.status),
            shown(&answer.location())
        ));
    }
    if !answer.status.is_success() {
        return Err(format!(
            "GET {doc_url} answers {}{}",
            status_text(answer.status),
            answer.summary()
        ));
    }
    answer
        .json_object()
        .ok_or_else(|| format!("{doc_url} is not a JSON object"))
}
