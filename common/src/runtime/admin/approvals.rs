//! The operator's fallback for approvals of high-risk actions: `GET /v1/approvals`, and
//! approve or deny one (it runs at once, audited as `operator`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{AdminError, AdminResult};
use crate::runtime::server::state::AppState;
use crate::store::approvals::{Approval, ApprovalError};

/// What admin answers show of an approval: everything but nothing secret (arguments are ids,
/// DNS contents and URLs, which the preview shows anyway).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub tenant: String,
    pub tool: String,
    /// `pending`, `expired`, `approved` (not run), `running`, `denied`, `done`, `failed`.
    pub state: String,
    pub preview: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    pub created_at: u64,
    pub expires_at: u64,
}

impl ApprovalView {
    fn of(a: &Approval, now: u64) -> Self {
        use crate::store::approvals::State;
        let (decided_by, outcome) = match &a.state {
            State::Pending => (None, None),
            State::Approved { by, .. } | State::Denied { by, .. } | State::Running { by, .. } => {
                (Some(by.clone()), None)
            }
            State::Done { by, outcome, .. } => (Some(by.clone()), Some(outcome.clone())),
        };
        Self {
            id: a.id.clone(),
            tenant: a.tenant.to_string(),
            tool: a.tool.clone(),
            state: a.standing(now).as_str().to_owned(),
            preview: a.preview.clone(),
            decided_by,
            outcome,
            created_at: a.created_at,
            expires_at: a.expires_at,
        }
    }
}

fn approvals_here(state: &AppState) -> AdminResult<()> {
    if state.spec.approvals {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::NOT_FOUND,
            "this server has no high-risk actions to approve (they live on the isolated instances)"
                .into(),
        ))
    }
}

pub(super) async fn list_approvals(
    State(state): State<Arc<AppState>>,
) -> AdminResult<Json<Vec<ApprovalView>>> {
    approvals_here(&state)?;
    let now = state.services.clock.now();
    let all = state.services.store.approvals().list(None)?;
    Ok(Json(all.iter().map(|a| ApprovalView::of(a, now)).collect()))
}

pub(super) async fn approve_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<ApprovalView>> {
    decide_approval(&state, &id, true).await
}

pub(super) async fn deny_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult<Json<ApprovalView>> {
    decide_approval(&state, &id, false).await
}

/// The operator decides (audited as `operator`); an approval runs at once.
async fn decide_approval(
    state: &AppState,
    id: &str,
    approve: bool,
) -> AdminResult<Json<ApprovalView>> {
    approvals_here(state)?;
    match crate::runtime::browser::approve::decide_and_run(state, id, approve, "operator").await {
        Ok(a) => Ok(Json(ApprovalView::of(&a, state.services.clock.now()))),
        Err(ApprovalError::Store(e)) => Err(e.into()),
        Err(ApprovalError::Unknown) => Err(AdminError(
            StatusCode::NOT_FOUND,
            format!(
                "no approval `{}` on this instance",
                crate::runtime::oauth::clean_name(id)
            ),
        )),
        Err(e) => Err(AdminError(StatusCode::CONFLICT, e.to_string())),
    }
}
