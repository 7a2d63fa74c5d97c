//! `dns_create_record`: adds a record under one of the tenant's allowed names, after a person approves.

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::dns::{self, RecordArgs};
use crate::tools::{Step, with_approval};
use crate::upstream::cloudflare::{DnsRecord, RecordInput};

pub struct CreateRecord;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The tenant's zone id; may be left out.
    #[serde(default)]
    pub zone_id: Option<String>,
    pub record: RecordArgs,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub zone_id: String,
    pub before: Option<DnsRecord>,
    pub after: RecordInput,
    /// Records that already have this name (a CNAME cannot share its name).
    pub existing_with_same_name: Vec<DnsRecord>,
}

impl Tool for CreateRecord {
    const NAME: &'static str = "dns_create_record";
    const TITLE: &'static str = "Create a DNS record";
    const DESCRIPTION: &'static str = "Create a DNS record in this client's Cloudflare zone, under one of its allowed names. \
         Needs a person: the call returns a preview and an approval link for an approver of this \
         client; the action runs once they approve. Call again with the same arguments to see the \
         outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = Step<Preview, DnsRecord>;

    fn available(tenant: &Tenant) -> bool {
        tenant.dns_zone.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let zone = dns::zone(ctx, args.zone_id.as_deref())?;
        // Bound to the zone as resolved now, not as the tenant's settings may be when approved.
        let args = Args {
            zone_id: Some(zone.to_string()),
            ..args
        };
        let input = dns::input(ctx, &args.record)?;
        let cloudflare = dns::cloudflare(ctx)?;
        let preview = async || {
            let (existing, _) = cloudflare
                .list(&zone, Some(&input.name), None, 1, 100)
                .await?;
            Ok(Preview {
                action: "create this DNS record",
                zone_id: zone.to_string(),
                before: None,
                after: input.clone(),
                existing_with_same_name: existing,
            })
        };
        let act = async |approved: &_| Ok(cloudflare.write(approved, &zone, None, &input).await?);
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
