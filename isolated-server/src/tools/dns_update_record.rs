//! `dns_update_record`: changes a record whose current and new names are both allowed.

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::dns::{self, RecordArgs};
use crate::tools::{Step, with_approval};
use crate::upstream::cloudflare::{DnsRecord, RecordInput};

pub struct UpdateRecord;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The tenant's zone id; may be left out.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// The record to change (from `dns_list_records`).
    pub record_id: String,
    /// The record as it should be afterwards.
    pub record: RecordArgs,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub zone_id: String,
    pub before: DnsRecord,
    pub after: RecordInput,
    /// The other records that have the name it will have.
    pub others_with_same_name: Vec<DnsRecord>,
}

impl Tool for UpdateRecord {
    const NAME: &'static str = "dns_update_record";
    const TITLE: &'static str = "Change a DNS record";
    const DESCRIPTION: &'static str = "Change a DNS record of this client's Cloudflare zone; both its current and its new name \
         must be allowed. Needs a person: the call returns a preview and an approval link for an \
         approver of this client; the action runs once they approve. Call again with the same \
         arguments to see the outcome.";
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
        let (id, before) = dns::existing(ctx, &cloudflare, &zone, &args.record_id).await?;
        if !before.kind.eq_ignore_ascii_case(&input.kind) {
            return Err(ToolError::InvalidArguments(format!(
                "type: Cloudflare cannot change a {} record into {}; delete it and create a new one",
                before.kind, input.kind
            )));
        }
        let preview = async || {
            let (same_name, _) = cloudflare
                .list(&zone, Some(&input.name), None, 1, 100)
                .await?;
            Ok(Preview {
                action: "change this DNS record",
                zone_id: zone.to_string(),
                others_with_same_name: same_name.into_iter().filter(|r| r.id != id).collect(),
                before,
                after: input.clone(),
            })
        };
        let act =
            async |approved: &_| Ok(cloudflare.write(approved, &zone, Some(&id), &input).await?);
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
