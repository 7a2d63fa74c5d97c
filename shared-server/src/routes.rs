//! The MCP listener: `/mcp` (Streamable HTTP, stateless) behind bearer-token auth, and
//! `/healthz`. Every MCP request is authenticated on its own; no session carries a tenant.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::config::origin_host;
use common::mcp::{Authenticated, McpServer};
use common::token::AuthError;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::startup::AppState;

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
    Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(state, authenticate))
        .route("/healthz", get(healthz))
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
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
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
            let request_id = common::mcp::request_id();
            request.extensions_mut().insert(Authenticated {
                tenant: caller.tenant,
                live: caller.live,
                request_id,
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
            tracing::info!(reason = %e, "refused MCP request");
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
