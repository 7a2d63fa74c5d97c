//! `dns_delete_record`: removes a record under one of the tenant's allowed names.

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::dns;
use crate::tools::{Step, with_approval};
use crate::upstream::cloudflare::DnsRecord;

pub struct DeleteRecord;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The tenant's zone id; may be left out.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// The record to delete (from `dns_list_records`).
    pub record_id: String,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub zone_id: String,
    pub before: DnsRecord,
    pub after: Option<DnsRecord>,
    /// The other records with its name, which stay.
    pub others_with_same_name: Vec<DnsRecord>,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub deleted_record_id: String,
}

impl Tool for DeleteRecord {
    const NAME: &'static str = "dns_delete_record";
    const TITLE: &'static str = "Delete a DNS record";
    const DESCRIPTION: &'static str = "Delete a DNS record of this client's Cloudflare zone under one of its allowed names. \
         Needs a person: the call returns a preview and an approval link for an approver of this \
         client; the action runs once they approve. Call again with the same arguments to see the \
         outcome.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = Step<Preview, Deleted>;

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
        let cloudflare = dns::cloudflare(ctx)?;
        // The record is looked up only past the gate: once an approved delete has run, the
        // record is gone, and the model must still learn the outcome.
        let preview = async || {
            let (id, before) = dns::existing(ctx, &cloudflare, &zone, &args.record_id).await?;
            let (same_name, _) = cloudflare
                .list(&zone, Some(&before.name), None, 1, 100)
                .await?;
            Ok(Preview {
                action: "delete this DNS record",
                zone_id: zone.to_string(),
                others_with_same_name: same_name.into_iter().filter(|r| r.id != id).collect(),
                before,
                after: None,
            })
        };
        let act = async |approved: &_| {
            let (id, _) = dns::existing(ctx, &cloudflare, &zone, &args.record_id).await?;
            let deleted = cloudflare.delete(approved, &zone, &id).await?;
            Ok(Deleted {
                deleted_record_id: deleted.id,
            })
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
