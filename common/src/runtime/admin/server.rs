//! What the server says of itself: `GET /v1/server` (its name and doors), `GET /v1/audit`
//! and the Prometheus `GET /metrics`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::AdminResult;
use crate::runtime::server::state::AppState;

/// `GET /v1/server`: what this server is and where its two doors are, for the CLI (onboard
/// prints the connector URL, or says there is none).
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    /// The static door's MCP endpoint (static bearer tokens).
    pub mcp_url: String,
    /// The connector door's MCP endpoint (OAuth); `None` without one.
    #[serde(default)]
    pub connector_url: Option<String>,
}

pub(super) async fn server_info(State(state): State<Arc<AppState>>) -> Json<ServerInfo> {
    Json(ServerInfo {
        name: state.spec.name.to_owned(),
        mcp_url: format!("{}{}", state.public_url, crate::config::MCP_PATH),
        connector_url: state.connector.as_ref().map(|d| d.url.clone()),
    })
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub since_ms: Option<u64>,
    pub limit: Option<usize>,
}

/// Prometheus text; scrape with the admin token as a bearer credential.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        format!(
            "{}# HELP studio_mcp_audit_dropped_total Audit records dropped because the write queue was full.\n# TYPE studio_mcp_audit_dropped_total counter\nstudio_mcp_audit_dropped_total {}\n",
            state.services.metrics.render(
                state
                    .services
                    .store
                    .live_states()
                    .iter()
                    .map(|(id, live)| (id, &live.calls))
            ),
            state.services.store.audit().dropped()
        ),
    )
}

pub(super) async fn read_audit(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<AuditFilter>,
) -> AdminResult<Json<Vec<crate::audit::AuditRecord>>> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let records = state.services.store.audit().query(
        filter.tenant.as_deref(),
        filter.since_ms.unwrap_or(0),
        limit,
    )?;
    Ok(Json(records))
}
