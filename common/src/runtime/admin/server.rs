//! What the server says of itself: `GET /v1/server` (its name and doors), `GET /v1/audit`
//! and the Prometheus `GET /metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{AdminError, AdminResult};
use crate::runtime::server::state::AppState;
use crate::store::approvals::Standing;

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

/// Prometheus text; scrape with the metrics token (or the admin token) as a bearer credential. Besides the counters
/// kept as calls happen, a few gauges read at scrape time: pending approvals and how long the
/// oldest has waited, and (on PostgreSQL) this replica's connection, lease and live peers.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let services = &state.services;
    let mut text = services.metrics.render(
        services
            .store
            .live_states()
            .iter()
            .map(|(id, live)| (id, &live.calls)),
    );
    let mut gauge = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    gauge(
        "studio_mcp_audit_dropped_total",
        "counter",
        "Audit records dropped because the write queue was full.",
        services.store.audit().dropped().to_string(),
    );
    let now = services.clock.now();
    if let Ok(all) = services.store.approvals().list(None) {
        let pending: Vec<u64> = all
            .iter()
            .filter(|a| a.standing(now) == Standing::Pending)
            .map(|a| now.saturating_sub(a.created_at))
            .collect();
        gauge(
            "studio_mcp_approvals_pending",
            "gauge",
            "High-risk actions waiting for a person's decision.",
            pending.len().to_string(),
        );
        gauge(
            "studio_mcp_approval_oldest_pending_seconds",
            "gauge",
            "How long the oldest pending approval has waited (0 when none).",
            pending.iter().max().copied().unwrap_or(0).to_string(),
        );
    }
    if let Some(replica) = services.store.replica() {
        let flag = |b: bool| u8::from(b).to_string();
        gauge(
            "studio_mcp_replica_connected",
            "gauge",
            "Whether this replica's change-feed connection to PostgreSQL is up.",
            flag(replica.connected()),
        );
        gauge(
            "studio_mcp_replica_lease_held",
            "gauge",
            "Whether this replica's lease holds (it serves token-bearing requests only then).",
            flag(replica.vouches()),
        );
        gauge(
            "studio_mcp_replicas_live",
            "gauge",
            "Replicas with a live heartbeat, as this one sees them.",
            replica
                .live_replicas()
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
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

/// `POST /v1/store/backup`: every record of one moment as a backup file (`store/backup.rs`),
/// taken while the server serves. Sealed secrets stay sealed; no key and no admin token is in
/// it. Read off the request path (a blocking read of every tree).
pub(super) async fn backup(State(state): State<Arc<AppState>>) -> AdminResult<impl IntoResponse> {
    let started = std::time::Instant::now();
    let store = state.services.store.clone();
    let header = crate::store::backup::Header {
        format: crate::store::backup::FORMAT,
        server: state.spec.name.to_owned(),
        tenant: state.pinned.as_ref().map(ToString::to_string),
        taken_at_ms: crate::now_unix().saturating_mul(1000),
        counts: Default::default(),
        keys: state
            .key_fingerprints
            .iter()
            .map(|(what, fingerprint)| ((*what).to_owned(), fingerprint.clone()))
            .collect(),
        sha256: String::new(),
    };
    // Off the async threads, the file's encoding too (about 0.4 s at 100k tokens): on a
    // one-thread runtime it would hold every request up.
    let (file, records) = tokio::task::spawn_blocking(move || {
        let snapshot = store.snapshot()?;
        let records: u64 = snapshot.counts().values().sum();
        Ok::<_, crate::store::StoreError>((
            crate::store::backup::write(header, &snapshot)?,
            records,
        ))
    })
    .await
    .map_err(|e| AdminError(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    tracing::info!(
        records,
        bytes = file.len(),
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "admin: store backup taken"
    );
    super::audit_admin(
        &state,
        "store_backup",
        "admin",
        &serde_json::json!({"records": records, "bytes": file.len()}),
    );
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        file,
    ))
}
