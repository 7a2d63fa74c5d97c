//! The two doors' routers: the static door (`/mcp` for static bearer tokens, `/healthz`) and
//! the connector door (`/mcp` for OAuth access tokens, the authorization server and people's
//! pages). Every MCP request is authenticated on its own; no session carries a tenant.

use std::sync::Arc;

use crate::config::{MCP_PATH, origin_host};
use crate::mcp::{Authenticated, McpServer, Traced};
use crate::token::{AuthError, Caller};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::runtime::browser::signin;
use crate::runtime::oauth;
use crate::runtime::server::front::{self, Front};
use crate::runtime::server::source;
use crate::runtime::server::state::AppState;
use axum::extract::DefaultBodyLimit;

/// Largest MCP request body accepted; tool arguments are small.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which front answers a door's `/mcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McpFront {
    /// The stateless JSON fast path, with rmcp's transport for everything else.
    Fast,
    /// rmcp's transport for everything.
    Rmcp,
}

impl McpFront {
    fn of(state: &AppState) -> Self {
        if state.fast_path {
            McpFront::Fast
        } else {
            McpFront::Rmcp
        }
    }
}

/// The MCP endpoint for one door: stateless, JSON answers, only `origin`'s host accepted; the
/// fast path in front of rmcp's transport unless `front` says otherwise.
fn mcp_endpoint(
    state: &AppState,
    origin: &str,
    shutdown: CancellationToken,
    front: McpFront,
) -> MethodRouter {
    let server = Traced(McpServer::new(
        state.services.clone(),
        state.catalog.clone(),
        state.spec.name,
        state.spec.instructions,
        state.spec.resources,
    ));
    let host = origin_host(origin);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_allowed_hosts([host.to_owned()])
        .with_cancellation_token(shutdown);
    let factory = server.clone();
    let rmcp = StreamableHttpService::new(
        move || Ok(factory.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let front = Front::new(server, rmcp, host, MAX_BODY_BYTES, front == McpFront::Fast);
    any(front::serve).with_state(Arc::new(front))
}

/// The static door (`STUDIO_MCP_PUBLIC_URL`): `/mcp` for static bearer tokens, `/healthz`, and
/// nothing else. **No** OAuth or protected-resource document at any path and no discovery hint
/// in its 401: Claude Code drops a configured `Authorization` header once it finds OAuth
/// discovery for a server (anthropics/claude-code#59467).
pub fn static_router(state: Arc<AppState>, shutdown: CancellationToken) -> Router {
    let front = McpFront::of(&state);
    static_router_with(state, shutdown, front)
}

/// [`static_router`] with `/mcp` answered by `front`.
pub fn static_router_with(
    state: Arc<AppState>,
    shutdown: CancellationToken,
    front: McpFront,
) -> Router {
    let public = Arc::new(PublicOrigin::parse(&state.public_url));
    let mcp = mcp_endpoint(&state, &state.public_url, shutdown, front);
    let moved = any(connector_moved).with_state(state.clone());
    let health = get(healthz).with_state(state.clone());
    // `route_layer`: the checks run on `/mcp` only, so any other path is a plain 404 (a 401
    // there would invite a client to look for a way to authenticate).
    Router::new()
        .route(MCP_PATH, mcp)
        .route_layer(middleware::from_fn_with_state(
            (state, Door::Static),
            authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(
            (public, Callers::OwnPages),
            refuse_foreign,
        ))
        .route("/connector", moved)
        .route("/healthz", health)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Any path a door does not serve. Answered before the body is read, so the connection closes
/// and says so ([`refuse_unread`]).
async fn not_found() -> Response {
    refuse_unread(StatusCode::NOT_FOUND.into_response())
}

/// A path a door serves, with a method it does not.
async fn method_not_allowed() -> Response {
    refuse_unread(StatusCode::METHOD_NOT_ALLOWED.into_response())
}

/// The connector door (`STUDIO_MCP_CONNECTOR_URL`), laid out the way claude.ai and ChatGPT
/// behave rather than only as the specs allow: MCP at exactly `/mcp` for OAuth access tokens,
/// both protected-resource metadata forms, and the authorization server with every endpoint
/// and page at the origin's root (claude.ai has appended `/authorize`, `/token`, `/register`
/// to the origin, ignoring metadata). `None` when the server has no connector door.
pub fn connector_router(state: Arc<AppState>, shutdown: CancellationToken) -> Option<Router> {
    let front = McpFront::of(&state);
    connector_router_with(state, shutdown, front)
}

/// [`connector_router`] with `/mcp` answered by `front`.
pub fn connector_router_with(
    state: Arc<AppState>,
    shutdown: CancellationToken,
    front: McpFront,
) -> Option<Router> {
    let door = state.connector.clone()?;
    let origin = Arc::new(PublicOrigin::parse(&door.origin));
    let mcp = mcp_endpoint(&state, &door.origin, shutdown, front);
    let oauth_mcp = Router::new()
        .route(MCP_PATH, mcp)
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Door::Connector),
            authenticate,
        ));
    // Pages a person's browser opens (cookies): Host and Origin must be the connector's.
    let mut browser = signin::router().merge(oauth::browser_router());
    if state.spec.approvals {
        browser = browser.merge(crate::runtime::browser::approve::router());
    }
    // Everything on this door but `/mcp` answers anonymous callers: each source within its
    // budget (`per_source_limit`), so one client can neither flood the store nor starve others.
    let per_source = || middleware::from_fn_with_state(state.clone(), per_source_limit);
    let browser = browser
        .layer(middleware::map_response(
            crate::runtime::browser::pages::security_headers,
        ))
        .layer(DefaultBodyLimit::max(signin::MAX_FORM_BYTES))
        .route_layer(per_source())
        .with_state(state.clone());
    let health = get(healthz).with_state(state.clone());
    // Metadata, registration, token and revocation: called from anywhere, never with cookies.
    let api = oauth::api_router()
        .layer(DefaultBodyLimit::max(oauth::MAX_REQUEST_BYTES))
        .route_layer(per_source())
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            (origin.clone(), Callers::AnyPage),
            refuse_foreign,
        ));
    Some(
        Router::new()
            .merge(oauth_mcp)
            .merge(browser)
            .route_layer(middleware::from_fn_with_state(
                (origin, Callers::OwnPages),
                refuse_foreign,
            ))
            .merge(api)
            .route("/healthz", health)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
    )
}

/// `/connector` on the static door, where connectors were added before the doors had origins
/// of their own: a plain answer naming the new URL, and nothing a client could discover.
async fn connector_moved(State(state): State<Arc<AppState>>) -> Response {
    let text = match &state.connector {
        Some(door) => format!(
            "410 Gone: connectors now connect to {} (the connector URL); remove this one and \
             add that URL instead\n",
            door.url
        ),
        None => {
            "410 Gone: this server has no connector door; use /mcp with a bearer token\n".to_owned()
        }
    };
    refuse_unread((StatusCode::GONE, text).into_response())
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

/// Whose pages may drive an endpoint through a visitor's browser.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Callers {
    /// Only this origin's own pages: a browser `Origin` must be the public URL's (a web page
    /// elsewhere must not drive this server through a visitor's browser). Requests without
    /// `Origin` — every non-browser client — are not affected.
    OwnPages,
    /// Any site's page (OAuth metadata, registration, token, revocation: no cookies, so no
    /// ambient authority to abuse).
    AnyPage,
}

/// Refuses (403) a request whose `Host` or absolute-form target names another authority than
/// the public URL, or (for [`Callers::OwnPages`]) whose `Origin` is not the public URL's.
async fn refuse_foreign(
    State((public, callers)): State<(Arc<PublicOrigin>, Callers)>,
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
    } else if callers == Callers::OwnPages
        && request
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
        Some(why) => refuse_unread(
            (StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response(),
        ),
    }
}

/// `ok`; with PostgreSQL, `degraded: …` (200) while the database is unreachable and this
/// replica still serves from memory within its lease, `unavailable: …` (503) once it no
/// longer can, so a load balancer stops sending it calls.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let Some(pg) = state.services.store.replica() else {
        return "ok".into_response();
    };
    let name = pg.replica_name();
    if pg.connected() {
        return format!("ok: replica {name}, PostgreSQL {}", pg.target()).into_response();
    }
    let why = pg
        .last_error()
        .unwrap_or_else(|| "not connected yet".into());
    if pg.vouches() {
        format!(
            "degraded: replica {name} cannot reach PostgreSQL ({why}); serving from memory, \
             writes fail until it is back"
        )
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unavailable: replica {name} has not reached PostgreSQL for longer than its \
                 lease ({why})"
            ),
        )
            .into_response()
    }
}

/// The request's bearer token, if it has one.
fn bearer_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::token::bearer)
}

/// Which door a request came through: what proves who it is, and how a refusal reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// A static token the operator issued (`STUDIO_MCP_PUBLIC_URL`).
    Static,
    /// An OAuth access token a person's connection holds (`STUDIO_MCP_CONNECTOR_URL`).
    Connector,
}

/// Resolves the bearer token to the [`Caller`] it speaks for, as its door accepts tokens, or
/// answers 401 with the door's `WWW-Authenticate`.
async fn authenticate(
    State((state, door)): State<(Arc<AppState>, Door)>,
    request: Request,
    next: Next,
) -> Response {
    let state = &*state;
    let outcome = match (door, bearer_token(&request)) {
        (_, None) => Err(AuthError::Missing),
        (Door::Static, Some(token)) => state.authority.authenticate(&state.services.store, token),
        (Door::Connector, Some(token)) => connector_caller(state, token),
    }
    // Belt and braces for an isolated instance: its own key and audience already refuse other
    // servers' tokens, and its store holds only its tenant; still, never serve anyone else.
    .and_then(|caller| match &state.pinned {
        Some(pinned) if &caller.tenant.id != pinned => Err(AuthError::Unknown),
        _ => Ok(caller),
    });
    match outcome {
        Ok(caller) => admit(state, request, caller, next).await,
        Err(AuthError::Store(e)) => {
            state.services.metrics.record_store_error(e.kind());
            tracing::warn!(error = %e, "token store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "token store unavailable; try again shortly",
            )
                .into_response()
        }
        Err(e) => {
            // Anyone can send these, thousands a second: one line per window, with a count.
            match door {
                Door::Static => {
                    if let Some(suppressed) = state.refusals.tick() {
                        tracing::info!(reason = %e, suppressed, "refused MCP request (unauthenticated; at most one line per 10 s)");
                    }
                    state.services.metrics.record_token_refusal(e.reason());
                }
                // A connector's first request carries no token: that is discovery, not a refusal.
                Door::Connector if matches!(e, AuthError::Missing) => {}
                Door::Connector => {
                    state.services.metrics.record_token_refusal("oauth");
                    if let Some(suppressed) = state.refusals.tick() {
                        tracing::info!(
                            suppressed,
                            "refused connector request (unknown, expired or revoked access token; at most one line per 10 s)"
                        );
                    }
                }
            }
            unauthorized(state, door, &e)
        }
    }
}

/// An OAuth access token's [`Caller`], from memory: unexpired, unrevoked, for this server's
/// connector URL exactly, and for a tenant that still exists.
fn connector_caller(state: &AppState, token: &str) -> Result<Caller, AuthError> {
    let store = &state.services.store;
    store
        .access_token(
            &crate::store::people::digest(token),
            state.services.clock.now(),
        )?
        // Audience: this server's connector URL, exactly.
        .filter(|a| {
            state
                .connector
                .as_ref()
                .is_some_and(|door| a.audience == door.url)
        })
        .and_then(|actor| {
            let (tenant, live) = store.tenant_live(&actor.tenant)?;
            Some(Caller {
                tenant,
                live,
                actor: Some(actor),
            })
        })
        .ok_or(AuthError::Unknown)
}

/// Counts an authenticated request against its tenant's limit and passes it on, carrying who
/// it is for. Every authenticated request counts, whatever it asks for (resource reads and
/// unknown tools too); the handler refuses the ones that work once over the limit.
async fn admit(state: &AppState, mut request: Request, caller: Caller, next: Next) -> Response {
    let Caller {
        tenant,
        live,
        actor,
    } = caller;
    let over_limit = state.services.limiter.check(&tenant, &live.bucket).err();
    if over_limit.is_some() {
        state
            .services
            .metrics
            .record_rate_limited(tenant.id.as_str());
    }
    request.extensions_mut().insert(Authenticated {
        tenant,
        live,
        request_id: crate::mcp::request_id(),
        over_limit,
        actor,
    });
    next.run(request).await
}

/// A refusal sent before the request's body was read closes the connection: hyper does not
/// drain an unread body, so the connection cannot carry another request, and a client that
/// reused it (after a 401, to retry with a token) would see it drop. `Connection: close` tells
/// it to open a new one.
fn refuse_unread(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The one 401: a bare `Bearer realm` challenge on the static door (its origin advertises no
/// OAuth), the RFC 9728 `resource_metadata` challenge on the connector door.
fn unauthorized(state: &AppState, door: Door, error: &AuthError) -> Response {
    let missing = matches!(error, AuthError::Missing);
    let (challenge, text) = match door {
        Door::Static if missing => (r#"Bearer realm="studio-mcp""#.to_owned(), error.to_string()),
        Door::Static => (
            format!(
                r#"Bearer realm="studio-mcp", error="invalid_token", error_description="{error}""#
            ),
            error.to_string(),
        ),
        Door::Connector => {
            let metadata = oauth::resource_metadata_url(state).unwrap_or_default();
            if missing {
                (
                    format!(
                        r#"Bearer resource_metadata="{metadata}", scope="{}""#,
                        oauth::SCOPE
                    ),
                    "sign in through your AI assistant's connector settings".to_owned(),
                )
            } else {
                let why = "the access token is unknown, expired or revoked";
                (
                    format!(
                        r#"Bearer resource_metadata="{metadata}", error="invalid_token", error_description="{why}""#
                    ),
                    why.to_owned(),
                )
            }
        }
    };
    let mut response = Response::new(Body::from(format!("401 Unauthorized: {text}\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    refuse_unread(response)
}

/// Anonymous endpoints (OAuth, sign-in, consent): each source gets
/// `STUDIO_MCP_OAUTH_REQUESTS_PER_MIN` with a minute's burst; past it, 429 with `Retry-After`,
/// counted and logged sampled, never audited (an anonymous flood must not grow the audit log).
async fn per_source_limit(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let source = source::of_request(&state.trusted_proxies, &request);
    // Handlers with limits of their own (registration) key them by the same source.
    request.extensions_mut().insert(source);
    match state
        .sources
        .take(&source, state.oauth_requests_per_min, 60.0)
    {
        Ok(()) => next.run(request).await,
        Err(retry) => {
            state
                .services
                .metrics
                .record_oauth_refusal("any:rate_limited");
            if let Some(suppressed) = state.refusals.tick() {
                tracing::info!(
                    ?source,
                    suppressed,
                    "refused an OAuth or sign-in request: too many from one source (at most one line per 10 s)"
                );
            }
            source::too_many(retry, "too many requests from your network address")
        }
    }
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
