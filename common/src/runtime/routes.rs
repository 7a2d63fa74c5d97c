//! The MCP listener: `/mcp` (Streamable HTTP, stateless) behind bearer-token auth, and
//! `/healthz`. Every MCP request is authenticated on its own; no session carries a tenant.

use std::sync::Arc;

use crate::config::origin_host;
use crate::mcp::{Authenticated, McpServer};
use crate::token::AuthError;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::runtime::state::AppState;

/// Largest MCP request body accepted; tool arguments are small.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(state: Arc<AppState>, shutdown: CancellationToken) -> Router {
    let server = McpServer::new(
        state.services.clone(),
        state.catalog.clone(),
        state.spec.name,
        state.spec.instructions,
        state.spec.resources,
    );
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_allowed_hosts([origin_host(&state.public_url).to_owned()])
        .with_cancellation_token(shutdown);
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let public = Arc::new(PublicOrigin::parse(&state.public_url));
    Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(state, authenticate))
        .layer(middleware::from_fn_with_state(public, check_origin))
        .route("/healthz", get(healthz))
}

/// The public URL's scheme, host and port: the only authority a request may name, and the
/// only `Origin` a browser may send from.
#[derive(Debug)]
pub struct PublicOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl PublicOrigin {
    /// `public_url` was validated at start-up as `http(s)://host[:port]`; anything unreadable
    /// matches nothing.
    pub fn parse(public_url: &str) -> Self {
        let (scheme, authority) = public_url.split_once("://").unwrap_or(("", ""));
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority, default_port(&scheme)).unwrap_or_default();
        Self { scheme, host, port }
    }

    /// `Host` or an absolute-form target's authority: same host, same port (defaults counted).
    pub fn is_authority(&self, authority: &str) -> bool {
        !self.host.is_empty()
            && split_authority(authority, default_port(&self.scheme))
                .is_some_and(|(host, port)| host == self.host && port == self.port)
    }

    /// An `Origin` header: same scheme, host and port.
    pub fn is_origin(&self, origin: &str) -> bool {
        match origin.split_once("://") {
            Some((scheme, authority)) => {
                scheme.eq_ignore_ascii_case(&self.scheme) && self.is_authority(authority)
            }
            None => false,
        }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// `host[:port]` (with `[v6]` hosts) to a lowercase host and a port; `None` if malformed.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let authority: http::uri::Authority = authority.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = match authority.port() {
        Some(port) => port.as_u16(),
        None => default_port,
    };
    Some((authority.host().to_ascii_lowercase(), port))
}

/// Refuses (403) a request whose `Host` or absolute-form target names another authority than
/// the public URL, or whose `Origin` is not the public URL's (a web page elsewhere must not
/// drive this server through a visitor's browser). Requests without `Origin` — every
/// non-browser client — are not affected by the `Origin` rule.
async fn check_origin(
    State(public): State<Arc<PublicOrigin>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let target = request.uri().authority().map(|a| a.as_str());
    let refusal = if target.is_some_and(|t| !public.is_authority(t)) {
        Some("the request names another server than this one")
    } else if target.is_none() && !host.is_some_and(|h| public.is_authority(h)) {
        Some("the Host header does not name this server's public URL")
    } else if request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| !o.to_str().is_ok_and(|o| public.is_origin(o)))
    {
        Some("requests from this Origin are not allowed")
    } else {
        None
    };
    match refusal {
        None => next.run(request).await,
        Some(why) => (StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Resolves the bearer token to its tenant, or answers 401 with `WWW-Authenticate`.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::token::bearer);
    let outcome = match token {
        None => Err(AuthError::Missing),
        Some(token) => state.authority.authenticate(&state.services.store, token),
    }
    // Belt and braces for an isolated instance: its own key and audience already refuse other
    // servers' tokens, and its store holds only its tenant; still, never serve anyone else.
    .and_then(|caller| match &state.pinned {
        Some(pinned) if &caller.tenant.id != pinned => Err(AuthError::Unknown),
        _ => Ok(caller),
    });
    match outcome {
        Ok(caller) => {
            // Every authenticated request counts against the tenant's limit, whatever it asks
            // for (resource reads and unknown tools too); the handler refuses the ones that work.
            let over_limit = state
                .services
                .limiter
                .check(&caller.tenant, &caller.live.bucket)
                .err();
            if over_limit.is_some() {
                state
                    .services
                    .metrics
                    .record_rate_limited(caller.tenant.id.as_str());
            }
            request.extensions_mut().insert(Authenticated {
                tenant: caller.tenant,
                live: caller.live,
                request_id: crate::mcp::request_id(),
                over_limit,
            });
            next.run(request).await
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "token store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "token store unavailable; try again shortly",
            )
                .into_response()
        }
        Err(e) => {
            // Anyone can send these, thousands a second: one line per window, with a count.
            if let Some(suppressed) = state.refusals.tick() {
                tracing::info!(reason = %e, suppressed, "refused MCP request (unauthenticated; at most one line per 10 s)");
            }
            state.services.metrics.record_token_refusal(e.reason());
            unauthorized(&e)
        }
    }
}

fn unauthorized(error: &AuthError) -> Response {
    let challenge = match error {
        AuthError::Missing => r#"Bearer realm="studio-mcp""#.to_owned(),
        other => format!(
            r#"Bearer realm="studio-mcp", error="invalid_token", error_description="{other}""#
        ),
    };
    let mut response = Response::new(Body::from(format!("401 Unauthorized: {error}\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::PublicOrigin;

    #[test]
    fn authorities_and_origins_must_match_scheme_host_and_port() {
        let public = PublicOrigin::parse("https://MCP.studio.example");
        assert!(public.is_authority("mcp.studio.example"));
        assert!(public.is_authority("mcp.studio.example:443"));
        assert!(!public.is_authority("mcp.studio.example:8443"));
        assert!(!public.is_authority("evil.example"));
        assert!(!public.is_authority("user@mcp.studio.example"));
        assert!(public.is_origin("https://mcp.studio.example"));
        assert!(!public.is_origin("http://mcp.studio.example"));
        assert!(!public.is_origin("null"));
        let local = PublicOrigin::parse("http://127.0.0.1:8787");
        assert!(local.is_authority("127.0.0.1:8787"));
        assert!(!local.is_authority("127.0.0.1:1"));
        assert!(!local.is_authority("127.0.0.1"));
        let v6 = PublicOrigin::parse("http://[::1]:8787");
        assert!(v6.is_authority("[::1]:8787"));
    }
}
