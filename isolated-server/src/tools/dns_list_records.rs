//! `dns_list_records`: records of the tenant's zone (`GET /client/v4/zones/{zone}/dns_records`).

use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tenant, Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::dns;
use crate::upstream::cloudflare::{DnsRecord, ResultInfo};

pub struct ListRecords;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The tenant's zone id; may be left out.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// Only records with this exact name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only records of this type (A, AAAA, CNAME, TXT, MX…).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
    /// Records per page, 5-100 (default 50).
    #[serde(default)]
    pub per_page: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub zone_id: String,
    pub records: Vec<DnsRecord>,
    pub result_info: ResultInfo,
}

impl Tool for ListRecords {
    const NAME: &'static str = "dns_list_records";
    const TITLE: &'static str = "List DNS records";
    const DESCRIPTION: &'static str = "List the DNS records of this client's Cloudflare zone, optionally by \
         exact name or type. Paged with page/per_page.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = None;
    type Args = Args;
    type Output = Output;

    fn available(tenant: &Tenant) -> bool {
        tenant.dns_zone.is_some()
    }

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        let zone = dns::zone(ctx, args.zone_id.as_deref())?;
        let per_page = args.per_page.unwrap_or(50);
        if !(5..=100).contains(&per_page) {
            return Err(ToolError::InvalidArguments(format!(
                "per_page must be 5-100, got {per_page}"
            )));
        }
        let page = args.page.unwrap_or(1).max(1);
        let name = args
            .name
            .as_deref()
            .map(common::domain::DnsName::parse)
            .transpose()?;
        if let Some(kind) = &args.kind
            && !kind.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ToolError::InvalidArguments(format!(
                "type: `{kind}` is not a record type"
            )));
        }
        let (records, result_info) = dns::cloudflare(ctx)?
            .list(
                &zone,
                name.as_ref().map(|n| n.as_str()),
                args.kind.as_deref(),
                page,
                per_page,
            )
            .await?;
        Ok(Output {
            zone_id: zone.to_string(),
            records,
            result_info,
        })
    }
}
