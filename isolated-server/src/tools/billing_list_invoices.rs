//! `billing_list_invoices`: the tenant's own Stripe invoices (`GET /v1/invoices?customer=…`).

use common::domain::StripeCustomer;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::upstream::stripe::{InvoiceList, Stripe};

pub struct ListInvoices;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Ignored unless it differs from this tenant's customer, which is refused.
    #[serde(default)]
    pub customer: Option<String>,
    /// 1-100 (default 10).
    #[serde(default)]
    pub limit: Option<u32>,
    /// An invoice id (`in_…`) to page after.
    #[serde(default)]
    pub starting_after: Option<String>,
}

/// The tenant's customer; a different one named by the caller is refused.
pub fn customer(ctx: &ToolContext<'_>, asked: Option<&str>) -> Result<StripeCustomer, ToolError> {
    let own = ctx.tenant.stripe_customer.clone().ok_or_else(|| {
        ToolError::NotPermitted("no Stripe customer is set for this tenant".into())
    })?;
    match asked {
        Some(raw) if raw != own.as_str() => {
            let asked = StripeCustomer::parse(raw)?;
            Err(ToolError::NotYours {
                what: "customer",
                id: asked.as_str().to_owned(),
            })
        }
        _ => Ok(own),
    }
}

impl Tool for ListInvoices {
    const NAME: &'static str = "billing_list_invoices";
    const TITLE: &'static str = "List invoices";
    const DESCRIPTION: &'static str = "List this client's Stripe invoices (newest first): number, status, amounts, due date, link.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = InvoiceList;

    fn available(tenant: &Tenant) -> bool {
        tenant.stripe_customer.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<InvoiceList, ToolError> {
        let customer = customer(ctx, args.customer.as_deref())?;
        let limit = args.limit.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(ToolError::InvalidArguments(format!(
                "limit must be 1-100, got {limit}"
            )));
        }
        if let Some(after) = &args.starting_after
            && !(after.starts_with("in_")
                && after.len() <= 64
                && after
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(ToolError::InvalidArguments(
                "starting_after must be an invoice id (in_...)".into(),
            ));
        }
        let stripe = Stripe {
            upstream: &ctx.services.stripe,
            token: ctx.credential(SecretKind::Stripe)?,
        };
        Ok(stripe
            .invoices(&customer, limit, args.starting_after.as_deref())
            .await?)
    }
}
