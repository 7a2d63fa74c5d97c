//! The approval by a person every high-risk tool goes through, and the proof that it happened.
//!
//! A high-risk tool hands [`with_approval`] its bound arguments, how to preview the action and
//! how to act; the gate decides which runs. Acting needs an [`Approved`], which only the gate
//! makes (its field is private to this module, and the tools are not inside it), and every
//! high-risk upstream call (publish, DNS changes, the billing portal) takes one: a tool that
//! tried to act without a person's approval would not compile.

use common::approvals::{self, Approval, Standing, State};
use common::mcp::{ToolContext, ToolError};
use serde::Serialize;

/// The answer of a high-risk tool. The model never makes one act: the first call records a
/// pending approval and answers with its link; a person approves it on this instance's page (or
/// the operator through the admin API), and the instance carries it out at once. Calling again
/// with the same arguments tells what became of it.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Step<P, R> {
    ApprovalRequired {
        preview: P,
        approval_id: String,
        /// The approvers' page; absent when the instance has no connector door (then the
        /// operator approves with `isolated-server approval approve <id>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        approval_url: Option<String>,
        expires_in_secs: u64,
        next_step: String,
    },
    /// Carried out (returned to the runtime that runs an approved action).
    Done { result: R },
    /// What became of an earlier request for exactly this action.
    #[serde(untagged)]
    Known(Known),
}

/// An earlier approval for exactly these arguments, as the model is told it.
#[derive(Debug, Serialize)]
pub struct Known {
    /// `waiting_for_approval`, `denied`, `approved`, `running`, `done` or `failed`.
    pub status: &'static str,
    pub approval_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// A person approved exactly this action (tool, tenant, arguments) and the runtime is carrying
/// it out now. Only [`gate`] makes one.
pub struct Approved {
    _private: (),
}

/// What a high-risk tool does with a call.
enum Gate {
    /// No request for exactly this action is open: preview it and ask for approval.
    Request,
    /// Tell the model what became of its earlier request.
    Known(Known),
    /// A person approved exactly this action and the runtime is carrying it out: act.
    Proceed(Approved),
}

/// Runs a high-risk call: tells the model what became of an earlier request for exactly these
/// arguments, or records a new request with `preview`'s result, or (for the approval the runtime
/// is carrying out) acts. `args` are the tool's arguments as bound now (zone, site or customer
/// resolved); their digest binds the approval to them exactly.
pub async fn with_approval<P: Serialize, R>(
    ctx: &ToolContext<'_>,
    tool: &'static str,
    args: &impl Serialize,
    preview: impl AsyncFnOnce() -> Result<P, ToolError>,
    act: impl AsyncFnOnce(&Approved) -> Result<R, ToolError>,
) -> Result<Step<P, R>, ToolError> {
    match gate(ctx, tool, args)? {
        Gate::Known(known) => {
            common::trace::own_current("approval.id", known.approval_id.clone());
            common::trace::own_current("approval.state", known.status);
            Ok(Step::Known(known))
        }
        Gate::Request => {
            let preview = preview().await?;
            request(ctx, tool, args, preview)
        }
        Gate::Proceed(approved) => Ok(Step::Done {
            result: act(&approved).await?,
        }),
    }
}

fn approval_url(ctx: &ToolContext<'_>, id: &str) -> Option<String> {
    ctx.services
        .approval_base
        .as_ref()
        .map(|base| format!("{base}/approve/{id}"))
}

/// Where a person decides: the approval page, or the operator's command without one.
fn where_to_approve(ctx: &ToolContext<'_>, id: &str) -> String {
    match approval_url(ctx, id) {
        Some(url) => format!("at {url}"),
        None => format!(
            "by the studio's operator (`isolated-server approval approve {id}`; this instance has \
             no approvers' page)"
        ),
    }
}

/// `args` are the tool's typed arguments; their digest binds an approval to them exactly.
fn gate(
    ctx: &ToolContext<'_>,
    tool: &'static str,
    args: &impl Serialize,
) -> Result<Gate, ToolError> {
    let digest = common::audit::digest(args);
    let tenant = &ctx.tenant.id;
    if let Some(approved) = ctx.approval {
        let matches = approved.tool == tool
            && &approved.tenant == tenant
            && approved.args_digest == digest
            && matches!(approved.state, State::Running { .. });
        return if matches {
            Ok(Gate::Proceed(Approved { _private: () }))
        } else {
            Err(ToolError::NotPermitted(
                "the approved action does not match these arguments; nothing was done".into(),
            ))
        };
    }
    let approvals = ctx.services.store.approvals();
    let now = ctx.services.clock.now();
    let Some(earlier) = approvals
        .latest_for(tenant, tool, &digest)
        .map_err(|e| ctx.store_error(e))?
    else {
        return Ok(Gate::Request);
    };
    let by = |state: &State| match state {
        State::Approved { by, .. }
        | State::Denied { by, .. }
        | State::Running { by, .. }
        | State::Done { by, .. } => Some(by.clone()),
        State::Pending => None,
    };
    let decided_by = by(&earlier.state);
    let known = |status, message: String, result| Known {
        status,
        approval_id: earlier.id.clone(),
        approval_url: approval_url(ctx, &earlier.id),
        decided_by: decided_by.clone(),
        message,
        result,
    };
    let report = |known: Known| -> Result<Gate, ToolError> {
        approvals
            .mark_reported(&earlier.id)
            .map_err(|e| ToolError::NotPermitted(e.to_string()))?;
        Ok(Gate::Known(known))
    };
    Ok(match (earlier.standing(now), &earlier.state) {
        (Standing::Pending, _) => Gate::Known(known(
            "waiting_for_approval",
            format!(
                "Nothing has been done. This exact action is still waiting for a person to \
                 approve it {}; it expires in {} s.",
                where_to_approve(ctx, &earlier.id),
                earlier.expires_at.saturating_sub(now)
            ),
            None,
        )),
        (Standing::Approved, _) => Gate::Known(known(
            "approved",
            "A person approved this action; it has not started yet, or the server stopped \
             before it began (then nothing was sent). Call again in a moment; if it stays \
             approved, ask for a new approval."
                .into(),
            None,
        )),
        (Standing::Running, _) => Gate::Known(known(
            "running",
            "A person approved this action and it is being carried out. If it stays running, the \
             server stopped while carrying it out: it may have taken effect and will not be \
             retried; check before asking again."
                .into(),
            None,
        )),
        (Standing::Denied, _) if !earlier.reported => report(known(
            "denied",
            "A person denied this action; nothing was done. Do not retry unless the person asks \
             for it again."
                .into(),
            None,
        ))?,
        (Standing::Done, State::Done { outcome, .. }) if !earlier.reported => report(known(
            "done",
            "A person approved this action and it was carried out; the result is attached.".into(),
            Some(outcome.clone()),
        ))?,
        (Standing::Failed, State::Done { outcome, .. }) if !earlier.reported => report(known(
            "failed",
            "A person approved this action, but carrying it out failed; the error is attached."
                .into(),
            Some(outcome.clone()),
        ))?,
        // Expired, or settled and already told: a call for the same action is a new request.
        _ => Gate::Request,
    })
}

/// Records a pending approval for this action with the preview the person will see, and answers
/// with its link.
fn request<P: Serialize, R>(
    ctx: &ToolContext<'_>,
    tool: &'static str,
    args: &impl Serialize,
    preview: P,
) -> Result<Step<P, R>, ToolError> {
    let args_value = match serde_json::to_value(args) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ctx.internal("approval arguments", &"not an object")),
    };
    let now = ctx.services.clock.now();
    let ttl = ctx.services.approval_ttl_secs;
    let digest = common::audit::digest(args);
    // Say so when this replaces a request for the same action that nobody answered in time.
    let earlier_expired = ctx
        .services
        .store
        .approvals()
        .latest_for(&ctx.tenant.id, tool, &digest)
        .map_err(|e| ctx.store_error(e))?
        .is_some_and(|a| a.standing(now) == Standing::Expired);
    let approval = Approval {
        id: approvals::new_id(),
        tenant: ctx.tenant.id.clone(),
        tool: tool.to_owned(),
        args: args_value,
        args_digest: digest,
        preview: serde_json::to_value(&preview).unwrap_or_default(),
        requested_by: ctx.actor.map(|a| a.person.clone()),
        created_at: now,
        seq: approvals::seq_now(),
        expires_at: now + ttl,
        state: State::Pending,
        reported: false,
        trace: common::trace::current_traceparent(),
    };
    ctx.services
        .store
        .approvals()
        .request(&approval)
        .map_err(|e| ctx.store_error(e))?;
    common::trace::own_current("approval.id", approval.id.clone());
    common::trace::own_current("approval.state", "pending");
    drop(common::trace::approval_step(
        "requested",
        &approval.id,
        tool,
        "pending",
        None,
    ));
    let url = approval_url(ctx, &approval.id);
    let where_ = where_to_approve(ctx, &approval.id);
    common::runtime::browser::approve::notify_waiting(ctx.services, &approval, &where_);
    let earlier = if earlier_expired {
        "The earlier request for this exact action expired unanswered; this is a new one. "
    } else {
        ""
    };
    let next_step = match &url {
        Some(url) => format!(
            "{earlier}Nothing has changed yet. Show the person this link: {url} . An approver of {} \
             opens it, signs in with their passkey, sees exactly this preview and approves or \
             denies; on approval this instance carries the action out at once, exactly once. \
             Afterwards, call this tool again with the same arguments to learn the outcome. You \
             cannot approve it yourself.",
            ctx.tenant.name
        ),
        None => format!(
            "{earlier}Nothing has changed yet. This action waits for the studio's operator to \
             approve it (approval id {}); on approval this instance carries it out at once, \
             exactly once. Afterwards, call this tool again with the same arguments to learn the \
             outcome. You cannot approve it yourself.",
            approval.id
        ),
    };
    Ok(Step::ApprovalRequired {
        preview,
        approval_id: approval.id,
        next_step,
        approval_url: url,
        expires_in_secs: ttl,
    })
}
