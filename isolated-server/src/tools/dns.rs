//! What every DNS tool checks before Cloudflare hears of a change: the zone is the tenant's,
//! every record name is covered by the tenant's allowed names, and the record itself is sane.

use std::net::{Ipv4Addr, Ipv6Addr};

use common::domain::{DnsName, ZoneId};
use common::mcp::{ToolContext, ToolError};
use common::secrets::SecretKind;
use common::text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::upstream::cloudflare::{Cloudflare, DnsRecord, RecordInput};

pub const TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX"];

/// What a hidden character in a record's free text would do (see [`common::text::refuse_unseen`]).
const SHOWN: &str = "the approval preview read differently from what runs";

/// A record as the caller describes it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordArgs {
    /// One of A, AAAA, CNAME, TXT, MX.
    #[serde(rename = "type")]
    pub kind: String,
    /// Full record name, e.g. www.example.com; must be one of this tenant's allowed names.
    pub name: String,
    pub content: String,
    /// Seconds, 60-86400, or 1 for automatic (default 1).
    #[serde(default)]
    pub ttl: Option<u32>,
    /// Proxy through Cloudflare (A, AAAA and CNAME only).
    #[serde(default)]
    pub proxied: Option<bool>,
    /// MX priority (required for MX).
    #[serde(default)]
    pub priority: Option<u16>,
    #[serde(default)]
    pub comment: Option<String>,
}

pub fn cloudflare<'a>(ctx: &'a ToolContext<'_>) -> Result<Cloudflare<'a>, ToolError> {
    Ok(Cloudflare {
        upstream: &ctx.services.cloudflare,
        token: ctx.credential(SecretKind::Cloudflare)?,
    })
}

/// The tenant's zone; `zone_id` may be left out, and any other zone is refused.
pub fn zone(ctx: &ToolContext<'_>, zone_id: Option<&str>) -> Result<ZoneId, ToolError> {
    let own = ctx
        .tenant
        .dns_zone
        .clone()
        .ok_or_else(|| ToolError::NotPermitted("no DNS zone is set for this tenant".into()))?;
    match zone_id {
        None => Ok(own),
        Some(raw) => {
            let asked = ZoneId::parse(raw)?;
            if asked == own {
                Ok(own)
            } else {
                Err(ToolError::NotYours {
                    what: "DNS zone",
                    id: asked.to_string(),
                })
            }
        }
    }
}

/// The name, if one of the tenant's allowed names or patterns covers it.
pub fn allowed_name(ctx: &ToolContext<'_>, raw: &str) -> Result<DnsName, ToolError> {
    let name = DnsName::parse(raw)?;
    if ctx
        .tenant
        .dns_names
        .iter()
        .any(|allowed| allowed.covers(&name))
    {
        Ok(name)
    } else {
        Err(ToolError::NotYours {
            what: "DNS name",
            id: name.to_string(),
        })
    }
}

/// The record as it is now, which must itself be under one of the tenant's allowed names.
pub async fn existing(
    ctx: &ToolContext<'_>,
    cloudflare: &Cloudflare<'_>,
    zone: &ZoneId,
    record_id: &str,
) -> Result<(String, DnsRecord), ToolError> {
    let id = self::record_id(record_id)?;
    let record = cloudflare.get(zone, &id).await?;
    allowed_name(ctx, &record.name)?;
    Ok((id, record))
}

pub fn record_id(raw: &str) -> Result<String, ToolError> {
    if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "record_id `{}` is not a Cloudflare record id (32 hexadecimal characters)",
            raw.chars().take(64).collect::<String>()
        )))
    }
}

/// Validates a record and turns it into what Cloudflare is sent.
pub fn input(ctx: &ToolContext<'_>, r: &RecordArgs) -> Result<RecordInput, ToolError> {
    let bad = |m: String| Err(ToolError::InvalidArguments(m));
    let kind = r.kind.to_ascii_uppercase();
    if !TYPES.contains(&kind.as_str()) {
        return bad(format!(
            "type: `{}` is not one of {}",
            r.kind,
            TYPES.join(", ")
        ));
    }
    let name = allowed_name(ctx, &r.name)?;
    let content = r.content.trim();
    // Free text the approver reads in the preview: a character they would not see (a bidi
    // override, a zero-width space) would let the preview read differently from what is sent.
    text::refuse_unseen("content", content, SHOWN).map_err(ToolError::InvalidArguments)?;
    if let Some(comment) = &r.comment {
        text::refuse_unseen("comment", comment, SHOWN).map_err(ToolError::InvalidArguments)?;
    }
    let content_ok = match kind.as_str() {
        "A" => content.parse::<Ipv4Addr>().is_ok(),
        "AAAA" => content.parse::<Ipv6Addr>().is_ok(),
        "CNAME" | "MX" => DnsName::parse(content).is_ok() && !content.starts_with('*'),
        _ => !content.is_empty() && content.len() <= 2048 && !content.chars().any(char::is_control),
    };
    if !content_ok {
        return bad(format!(
            "content: `{}` is not valid for a {kind} record",
            content.chars().take(100).collect::<String>()
        ));
    }
    let ttl = r.ttl.unwrap_or(1);
    if ttl != 1 && !(60..=86_400).contains(&ttl) {
        return bad(format!(
            "ttl must be 1 (automatic) or 60-86400 seconds, got {ttl}"
        ));
    }
    if r.proxied == Some(true) && !matches!(kind.as_str(), "A" | "AAAA" | "CNAME") {
        return bad(format!("proxied: a {kind} record cannot be proxied"));
    }
    if kind == "MX" && r.priority.is_none() {
        return bad("priority: an MX record needs a priority".into());
    }
    if r.comment.as_ref().is_some_and(|c| c.len() > 100) {
        return bad("comment: at most 100 characters".into());
    }
    Ok(RecordInput {
        kind,
        name: name.to_string(),
        content: content.to_owned(),
        ttl,
        proxied: r.proxied,
        priority: r.priority,
        comment: r.comment.clone(),
    })
}
