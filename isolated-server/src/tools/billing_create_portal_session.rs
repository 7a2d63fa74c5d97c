//! `billing_create_portal_session`: a Stripe billing-portal link for the tenant's own customer,
//! after a person approves; the request carries an `Idempotency-Key` derived from the approval.

use common::domain::DnsName;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tools::billing_list_invoices::customer;
use crate::tools::{Step, with_approval};
use crate::upstream::stripe::{PortalSession, Stripe};

pub struct CreatePortalSession;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Ignored unless it differs from this tenant's customer, which is refused.
    #[serde(default)]
    pub customer: Option<String>,
    /// Where the portal sends the person back: an https URL on one of this client's own
    /// domains (its site's custom domains or the hosts the studio configured).
    #[serde(default)]
    pub return_url: Option<String>,
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
    const DESCRIPTION: &'static str = "Create a Stripe billing-portal session for this client's own customer and return its \
         one-time URL (payment methods, invoices, plan). Needs a person: the call returns a \
         preview and an approval link for an approver of this client; the action runs once they \
         approve. Call again with the same arguments to see the outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = Step<Preview, PortalSession>;

    fn available(tenant: &Tenant) -> bool {
        tenant.stripe_customer.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let customer = customer(ctx, args.customer.as_deref())?;
        // Bound to the customer as resolved now.
        let args = Args {
            customer: Some(customer.as_str().to_owned()),
            ..args
        };
        if let Some(url) = &args.return_url {
            check_return_url(ctx, url).await?;
        }
        let token = ctx.credential(SecretKind::Stripe)?;
        let preview = async || {
            Ok(Preview {
                action: "create a billing-portal session (a one-time link to this customer's billing)",
                customer: customer.as_str().to_owned(),
                return_url: args.return_url.clone(),
            })
        };
        let act = async |approved: &_| {
            // One approval, one key: any retry of this request is the same request to Stripe.
            let approval = ctx.approval.map(|a| a.id.as_str()).unwrap_or_default();
            let seed = format!("{}:{approval}", ctx.tenant.id);
            let key = format!(
                "studio-mcp-{}",
                hex::encode(&Sha256::digest(seed.as_bytes())[..16])
            );
            let stripe = Stripe {
                upstream: &ctx.services.stripe,
                token,
            };
            Ok(stripe
                .create_portal_session(approved, &customer, args.return_url.as_deref(), &key)
                .await?)
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}

/// A return URL must be https, on a host of the tenant's own: one of its configured
/// `billing_return_hosts`, or a custom domain of its site that it may publish to. Anything else
/// (a look-alike or phishing site) is refused before Stripe is asked.
async fn check_return_url(ctx: &ToolContext<'_>, raw: &str) -> Result<(), ToolError> {
    let invalid = |why: &str| ToolError::InvalidArguments(format!("return_url: {why}"));
    // The approver reads this URL in the preview; a hidden character would make it read as
    // another address.
    common::text::refuse_unseen(
        "return_url",
        raw,
        "the approval preview read differently from what runs",
    )
    .map_err(ToolError::InvalidArguments)?;
    if raw.len() > 2048 || raw.chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid("not a URL"));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| invalid("not a URL"))?;
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must be an https URL without user information"));
    }
    let host = url
        .host_str()
        .and_then(|h| DnsName::parse(h).ok())
        .ok_or_else(|| invalid("must name a host"))?;
    let tenant = ctx.tenant;
    if tenant.billing_return_hosts.iter().any(|h| h.covers(&host)) {
        return Ok(());
    }
    let mut own = tenant
        .billing_return_hosts
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>();
    if !tenant.custom_domains.is_empty() {
        let webflow = ctx.webflow()?;
        for site in &tenant.webflow_sites {
            let info = webflow.get_site(site).await?;
            for domain in info.custom_domains {
                if !tenant
                    .custom_domains
                    .iter()
                    .any(|d| d.as_str() == domain.id)
                {
                    continue;
                }
                if let Some(name) = domain.url.as_deref().and_then(|u| DnsName::parse(u).ok()) {
                    if name == host {
                        return Ok(());
                    }
                    own.push(name.to_string());
                }
            }
        }
    }
    Err(ToolError::NotPermitted(if own.is_empty() {
        format!(
            "return_url host `{host}` is not one of this client's domains, and none are configured; \
             the studio can add one with `isolated-server tenant set --billing-return-host`"
        )
    } else {
        format!(
            "return_url host `{host}` is not one of this client's domains ({})",
            own.join(", ")
        )
    }))
}
