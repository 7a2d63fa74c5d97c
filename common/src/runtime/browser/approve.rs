//! Approvals by a person: the `/approve/{id}` page an approval link opens, the decision, and
//! carrying out what was approved — on the instance itself, at once, exactly once.
//!
//! Design: **the instance runs the action on approval.** The approver sees the outcome on the
//! page; the model learns it by calling the tool again with the same arguments. The model never
//! holds anything that makes an action run: the page needs a signed-in approver of the tenant
//! (passkey) and the session's CSRF token, the admin API needs the operator's token.
//!
//! Exactly once, also across `kill -9`: the decision is made durable (`approved`), then the
//! action is claimed (`running`, durable, by compare-and-swap: one claimer ever), then the tool
//! runs with the claimed approval in its context (the only way its gate proceeds), then the
//! outcome is recorded (`done`/`failed`). A crash leaves `approved` (nothing was sent: reported
//! as approved, not run) or `running` (it may have acted: reported, never run again).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::mcp::{Services, ToolContext};
use crate::runtime::browser::pages::{self, MessageKind};
use crate::runtime::browser::signin::{self, SignedIn};
use crate::runtime::server::state::{AppState, Event};
use crate::store::approvals::{Approval, ApprovalError, Standing, State as ApprovalState};
use crate::store::people::Role;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/approve/{id}", get(show).post(decide))
}

/// Posts a short note that an approval waits to the operator's webhook, if one is set: the tool
/// and the link, never the arguments. Fire and forget; failures are logged without the URL.
/// `place` says where to decide: `at <url>`, or the operator's command.
pub fn notify_waiting(services: &Services, approval: &Approval, place: &str) {
    let Some(webhook) = services.approval_webhook.clone() else {
        return;
    };
    let text = format!(
        "studio-mcp: an approval is waiting for {} ({}) {place}",
        approval.tenant, approval.tool
    );
    let client = services.webflow.client().clone();
    tokio::spawn(async move {
        let sent = client
            .post(&webhook)
            .timeout(std::time::Duration::from_secs(5))
            .json(&json!({ "text": text }))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                "approval webhook refused the note"
            ),
            Err(e) => tracing::warn!(error = %e.without_url(), "approval webhook unreachable"),
        }
    });
}

/// Records a decision and, on approval, carries the action out. `by` is a person id, or
/// `operator` for the admin API.
pub async fn decide_and_run(
    state: &AppState,
    id: &str,
    approve: bool,
    by: &str,
) -> Result<Approval, ApprovalError> {
    let now = state.services.clock.now();
    let decided = state
        .services
        .store
        .approvals()
        .decide(id, approve, by, now)?;
    state.record(&Event {
        tenant: decided.tenant.as_str(),
        action: if approve {
            "approval:approve"
        } else {
            "approval:deny"
        },
        outcome: "ok",
        person: Some(by),
        client: None,
        subject: &json!({ "approval": decided.id, "tool": decided.tool }),
    });
    let span = crate::trace::approval_step(
        "decided",
        &decided.id,
        &decided.tool,
        if approve { "approved" } else { "denied" },
        decided.trace.as_deref(),
    );
    if !approve {
        return Ok(decided);
    }
    let ran = span.in_scope(|| {
        crate::trace::approval_step(
            "ran",
            &decided.id,
            &decided.tool,
            "",
            decided.trace.as_deref(),
        )
    });
    let outcome = carry_out(state, id).instrument(ran.clone()).await;
    let finished = match &outcome {
        Ok(done) if matches!(done.state, ApprovalState::Done { ok: true, .. }) => "done",
        _ => "failed",
    };
    crate::trace::own(&ran, "approval.state", finished);
    outcome
}

/// Claims an approved action and runs it through its tool, once.
async fn carry_out(state: &AppState, id: &str) -> Result<Approval, ApprovalError> {
    let approvals = state.services.store.approvals();
    let claimed = approvals.claim(id, state.services.clock.now())?;
    let started = std::time::Instant::now();
    let outcome = run_tool(state, &claimed).await;
    let (ok, value, kind) = match outcome {
        Ok(value) => (true, value.get("result").cloned().unwrap_or(value), "ok"),
        Err((kind, message)) => (false, json!({ "error": message }), kind),
    };
    let by = match &claimed.state {
        ApprovalState::Running { by, .. } => by.clone(),
        _ => String::new(),
    };
    tracing::info!(tenant = %claimed.tenant, tool = %claimed.tool, approval = %claimed.id, outcome = kind, elapsed_ms = started.elapsed().as_millis() as u64, "approved action carried out");
    state.record(&Event {
        tenant: claimed.tenant.as_str(),
        action: &claimed.tool,
        outcome: kind,
        person: Some(&by),
        client: None,
        subject: &serde_json::Value::Object(claimed.args.clone()),
    });
    approvals.finish(id, ok, value, state.services.clock.now())
}

async fn run_tool(
    state: &AppState,
    approval: &Approval,
) -> Result<serde_json::Value, (&'static str, String)> {
    let tenant = state.services.store.tenant(&approval.tenant).ok_or((
        "no_tenant",
        "the client is no longer served here".to_owned(),
    ))?;
    let entry = state
        .catalog
        .get(&approval.tool)
        .filter(|e| e.allowed_for(&tenant))
        .ok_or((
            "unknown_tool",
            format!("`{}` is no longer allowed for this client", approval.tool),
        ))?;
    let request_id = crate::mcp::request_id();
    let ctx = ToolContext {
        tenant: &tenant,
        actor: None,
        approval: Some(approval),
        services: &state.services,
        request_id: &request_id,
    };
    entry
        .invoke(&ctx, approval.args.clone())
        .await
        .map_err(|e| (e.kind(), e.to_string()))
}

// ---- the page ----

/// The tool's own title ("Publish the Webflow site"), from the catalog: this module names no
/// high-risk tool (their names must not appear in the shared binary).
fn action_title(state: &AppState, tool: &str) -> String {
    state
        .catalog
        .get(tool)
        .and_then(|e| e.definition.title.clone())
        .unwrap_or_else(|| "A high-risk action".to_owned())
}

fn status_sentence(a: &Approval, now: u64) -> String {
    match (&a.state, a.standing(now)) {
        (_, Standing::Expired) => {
            "This request expired before anyone decided. Nothing was done; ask your \
             AI assistant again if it is still wanted."
                .into()
        }
        (ApprovalState::Pending, _) => format!(
            "Waiting for an approver's decision (the request expires in {} minutes). Nothing has \
             happened yet.",
            a.expires_at.saturating_sub(now).div_ceil(60)
        ),
        (ApprovalState::Approved { .. }, _) => {
            "Approved, but not carried out: the server stopped before it began. Nothing was sent; \
             ask your AI assistant again."
                .into()
        }
        (ApprovalState::Running { .. }, _) => "Approved and being carried out. If this stays, the \
             server stopped while carrying it out: it may have taken effect and will not be \
             repeated."
            .into(),
        (ApprovalState::Denied { .. }, _) => "Denied. Nothing was done.".into(),
        (ApprovalState::Done { ok: true, .. }, _) => "Approved and carried out.".into(),
        (ApprovalState::Done { ok: false, .. }, _) => {
            "Approved, but carrying it out failed; see the outcome.".into()
        }
    }
}

fn page_for(state: &AppState, me: &SignedIn, a: &Approval, notice: Option<&str>) -> Response {
    let now = state.services.clock.now();
    let pending = a.standing(now) == Standing::Pending;
    let approver = me.person.role == Role::Approver;
    let outcome = match &a.state {
        ApprovalState::Done { outcome, .. } => Some(outcome.clone()),
        _ => None,
    };
    let mut status = status_sentence(a, now);
    if let Some(notice) = notice {
        status = format!("{notice} {status}");
    }
    signin::page(
        StatusCode::OK,
        pages::approval_page(&pages::ApprovalPage {
            server_name: signin::server_name(state),
            person_name: me.person.name.clone(),
            tenant_name: signin::tenant_name(state, &a.tenant),
            action_title: action_title(state, &a.tool),
            preview: a.preview.clone(),
            status,
            outcome,
            can_decide: pending && approver,
            why_not: (pending && !approver).then(|| {
                "You can see this request, but only an approver of this client can approve or \
                 deny it. Ask one of them to open this link."
                    .to_owned()
            }),
            csrf: me.csrf.clone(),
            action: format!("/approve/{}", a.id),
        }),
    )
}

/// The approval `id`, if it exists here and belongs to the signed-in person's tenant; otherwise
/// the page that says why (the same for unknown and foreign ids: nothing to enumerate).
fn find(state: &AppState, me: &SignedIn, id: &str) -> Result<Approval, Box<Response>> {
    match state.services.store.approvals().get(id) {
        Ok(Some(a)) if a.tenant == me.person.tenant => Ok(a),
        Ok(_) => Err(Box::new(signin::message(
            state,
            StatusCode::NOT_FOUND,
            MessageKind::Problem,
            "This approval link is not valid here",
            "It is unknown on this server, was for another client, or was copied incompletely. \
             Nothing was done.",
        ))),
        Err(e) => Err(Box::new(signin::unavailable(state, &e))),
    }
}

/// `GET /approve/{id}`.
async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let notice =
        "An AI assistant asked for a high-risk action. Sign in with your passkey to see it.";
    match signed_in_with(&state, &headers, &id, notice) {
        Ok((me, a)) => page_for(&state, &me, &a, None),
        Err(page) => *page,
    }
}

/// The signed-in person and the approval `id` of their tenant; otherwise the sign-in page
/// (with `notice`) that comes back here, or the page saying there is no such approval.
fn signed_in_with(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    notice: &str,
) -> Result<(SignedIn, Approval), Box<Response>> {
    let me = signin::require_signed_in(state, headers, &format!("/approve/{id}"), Some(notice))?;
    let approval = find(state, &me, id)?;
    Ok((me, approval))
}

#[derive(Deserialize, Default)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

/// `POST /approve/{id}`: an approver's decision.
async fn decide(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: DecisionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let notice = "Your sign-in expired. Sign in again with your passkey; nothing was decided.";
    let (me, approval) = match signed_in_with(&state, &headers, &id, notice) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let refused = |outcome: &str| {
        state.record(&Event {
            tenant: me.person.tenant.as_str(),
            action: "approval:refused",
            outcome,
            person: Some(&me.person.id),
            client: None,
            subject: &json!({ "approval": approval.id }),
        });
    };
    if !me.csrf_matches(&form.csrf) {
        refused("csrf");
        return signin::message(
            &state,
            StatusCode::FORBIDDEN,
            MessageKind::Problem,
            "This form could not be accepted",
            "It expired or did not come from this site's own page. Nothing was decided; open the \
             approval link again.",
        );
    }
    if me.person.role != Role::Approver {
        refused("not_approver");
        return signin::message(
            &state,
            StatusCode::FORBIDDEN,
            MessageKind::Problem,
            "Only an approver can decide",
            "You are a member of this client, not an approver. Nothing was decided.",
        );
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return signin::message(
                &state,
                StatusCode::BAD_REQUEST,
                MessageKind::Problem,
                "No decision was sent",
                "Nothing was decided; open the approval link again.",
            );
        }
    };
    match decide_and_run(&state, &id, approve, &me.person.id).await {
        Ok(a) => page_for(&state, &me, &a, None),
        Err(ApprovalError::Store(e)) => signin::unavailable(&state, &e),
        Err(e) => {
            refused("not_pending");
            match find(&state, &me, &id) {
                Ok(a) => page_for(&state, &me, &a, Some(&format!("Not done: {e}."))),
                Err(page) => *page,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn approval(state: ApprovalState) -> Approval {
        Approval {
            id: "apr_x".into(),
            tenant: TenantId::parse("acme").unwrap(),
            tool: "dns_create_record".into(),
            args: serde_json::Map::new(),
            args_digest: String::new(),
            preview: serde_json::Value::Null,
            requested_by: None,
            created_at: 100,
            seq: 0,
            expires_at: 700,
            state,
            reported: false,
            trace: None,
        }
    }

    #[test]
    fn the_page_says_where_an_approval_stands_and_what_was_done() {
        let by = || "p1".to_owned();
        let cases = [
            (ApprovalState::Pending, 100, "expires in 10 minutes"),
            (ApprovalState::Pending, 700, "expired before anyone decided"),
            (
                ApprovalState::Approved { by: by(), at: 1 },
                800,
                "not carried out",
            ),
            (
                ApprovalState::Running { by: by(), at: 1 },
                800,
                "will not be repeated",
            ),
            (ApprovalState::Denied { by: by(), at: 1 }, 800, "Denied"),
            (
                ApprovalState::Done {
                    by: by(),
                    at: 1,
                    ok: true,
                    outcome: serde_json::Value::Null,
                },
                800,
                "Approved and carried out.",
            ),
            (
                ApprovalState::Done {
                    by: by(),
                    at: 1,
                    ok: false,
                    outcome: serde_json::Value::Null,
                },
                800,
                "carrying it out failed",
            ),
        ];
        for (state, now, says) in cases {
            let sentence = status_sentence(&approval(state), now);
            assert!(sentence.contains(says), "{sentence:?} should say {says:?}");
        }
    }
}
