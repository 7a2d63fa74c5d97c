//! The isolated catalog and the two-step confirmation every high-risk tool goes through.

mod billing_create_portal_session;
mod billing_list_invoices;
mod dns;
mod dns_create_record;
mod dns_delete_record;
mod dns_list_records;
mod dns_update_record;
mod webflow_publish_items;
mod webflow_publish_site;

use common::confirm::ConfirmError;
use common::mcp::{Catalog, ToolContext, ToolEntry, ToolError};
use common::tools::whoami::Whoami;
use serde::Serialize;

pub fn isolated_catalog() -> Catalog {
    Catalog::new(vec![
        ToolEntry::of::<Whoami>(),
        ToolEntry::of::<webflow_publish_site::PublishSite>(),
        ToolEntry::of::<webflow_publish_items::PublishItems>(),
        ToolEntry::of::<dns_list_records::ListRecords>(),
        ToolEntry::of::<dns_create_record::CreateRecord>(),
        ToolEntry::of::<dns_update_record::UpdateRecord>(),
        ToolEntry::of::<dns_delete_record::DeleteRecord>(),
        ToolEntry::of::<billing_list_invoices::ListInvoices>(),
        ToolEntry::of::<billing_create_portal_session::CreatePortalSession>(),
    ])
}

/// The answer of a high-risk tool: a preview with a code to confirm, or what was done.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Step<P, R> {
    ConfirmationRequired {
        preview: P,
        confirmation_code: String,
        expires_in_secs: u64,
        next_step: String,
    },
    Done {
        result: R,
    },
}

/// Whether to show a preview (with a fresh code) or act (the code was valid for exactly this).
pub enum Gate {
    Preview(String),
    Proceed,
}

/// `args` must serialize without its `confirmation_code` (`#[serde(skip_serializing)]`), so
/// the code is bound to every other argument exactly.
pub fn gate(
    ctx: &ToolContext<'_>,
    tool: &'static str,
    args: &impl Serialize,
    code: Option<&str>,
) -> Result<Gate, ToolError> {
    let digest = common::audit::digest(args);
    let tenant = ctx.tenant.id.as_str();
    let confirmations = ctx.services.store.confirmations();
    let now = common::audit::now_ms();
    match code {
        None => confirmations
            .issue(
                tenant,
                tool,
                &digest,
                now,
                ctx.services.confirm_ttl_secs * 1000,
            )
            .map(Gate::Preview)
            .map_err(|e| ctx.store_error(e)),
        Some(code) => match confirmations.redeem(code.trim(), tenant, tool, &digest, now) {
            Ok(()) => Ok(Gate::Proceed),
            Err(ConfirmError::Store(e)) => Err(ctx.store_error(e)),
            Err(e) => Err(ToolError::NotPermitted(e.to_string())),
        },
    }
}

impl<P, R> Step<P, R> {
    pub fn preview(ctx: &ToolContext<'_>, preview: P, code: String, tool: &str) -> Self {
        Step::ConfirmationRequired {
            preview,
            confirmation_code: code,
            expires_in_secs: ctx.services.confirm_ttl_secs,
            next_step: format!(
                "Nothing has changed yet. Show this preview to the person; if they agree, call {tool} \
                 again with the same arguments plus confirmation_code."
            ),
        }
    }
}
