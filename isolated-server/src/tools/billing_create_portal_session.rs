//! `billing_create_portal_session`: a Stripe billing-portal link for the tenant's own customer,
//! after confirmation; the request carries an `Idempotency-Key` derived from the confirmation.

use common::mcp::{Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tools::billing_list_invoices::customer;
use crate::tools::{Gate, Step, gate};
use crate::upstream::stripe::{PortalSession, Stripe};

pub struct CreatePortalSession;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Ignored unless it differs from this tenant's customer, which is refused.
    #[serde(default)]
    pub customer: Option<String>,
    /// Where the portal sends the person back (https URL).
    #[serde(default)]
    pub return_url: Option<String>,
    /// The code from the preview; leave out to get the preview.
    #[serde(default, skip_serializing)]
    pub confirmation_code: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub customer: String,
    pub return_url: Option<String>,
}

impl Tool for CreatePortalSession {
    const NAME: &'static str = "billing_create_portal_session";
    const TITLE: &'static str = "Open the billing portal";
    const DESCRIPTION: &'static str = "Create a Stripe billing-portal session for this client's own customer \
         and return its one-time URL (payment methods, invoices, plan). Two steps: preview and \
         confirmation_code first, then the same call with the code.";
    const TIER: Tier = Tier::HighRisk;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = Step<Preview, PortalSession>;

    fn available(tenant: &Tenant) -> bool {
        tenant.stripe_customer.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let customer = customer(ctx, args.customer.as_deref())?;
        if let Some(url) = &args.return_url
            && !(url.starts_with("https://")
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err(ToolError::InvalidArguments(
                "return_url must be an https URL".into(),
            ));
        }
        let token = ctx.credential(SecretKind::Stripe)?;
        let code = args.confirmation_code.clone();
        match gate(ctx, Self::NAME, &args, code.as_deref())? {
            Gate::Preview(code) => {
                let preview = Preview {
                    action: "create a billing-portal session (a one-time link to this customer's billing)",
                    customer: customer.as_str().to_owned(),
                    return_url: args.return_url,
                };
                Ok(Step::preview(ctx, preview, code, Self::NAME))
            }
            Gate::Proceed => {
                // One confirmation, one key: any retry of this request is the same request to Stripe.
                let seed = format!("{}:{}", ctx.tenant.id, code.unwrap_or_default());
                let key = format!(
                    "studio-mcp-{}",
                    hex::encode(&Sha256::digest(seed.as_bytes())[..16])
                );
                let stripe = Stripe {
                    upstream: &ctx.services.stripe,
                    token,
                };
                let session = stripe
                    .create_portal_session(&customer, args.return_url.as_deref(), &key)
                    .await?;
                Ok(Step::Done { result: session })
            }
        }
    }
}
