//! `webflow_publish_site`: publishes the tenant's site to its own custom domains and/or the
//! webflow.io subdomain, at most once a minute per site, after a person approves who has seen
//! what goes live (the pages and CMS items changed since the last publish).

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tier, Toolset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::publish_changes::{self, Changes};
use crate::tools::{Step, with_approval};
use crate::upstream::webflow_publish::{self, SitePublished};

pub struct PublishSite;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
    /// Custom domain ids to publish to (default: all of this tenant's custom domains).
    #[serde(default)]
    pub custom_domains: Option<Vec<String>>,
    /// Also publish to the site's webflow.io subdomain (default false).
    #[serde(default)]
    pub publish_to_webflow_subdomain: bool,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    pub site_id: String,
    pub site_name: Option<String>,
    pub domains: Vec<String>,
    pub publish_to_webflow_subdomain: bool,
    pub last_published: Option<String>,
    /// Seconds until Webflow allows the next publish of this site, if not now.
    pub next_publish_in_secs: Option<u64>,
    /// What goes live: the pages and CMS items changed since the last publish.
    pub what_changes: Changes,
}

/// Webflow allows one publish a minute per site.
const PUBLISHES_PER_MIN: u32 = 1;

impl Tool for PublishSite {
    const NAME: &'static str = "webflow_publish_site";
    const TITLE: &'static str = "Publish the Webflow site";
    const DESCRIPTION: &'static str = "Publish this client's Webflow site to its custom domains and/or the webflow.io \
         subdomain. Needs a person: the call returns a preview and an approval link for an \
         approver of this client; the action runs once they approve. Call again with the same \
         arguments to see the outcome. At most once a minute per site.";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Step<Preview, SitePublished>;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let site = ctx.site(args.site_id.as_deref())?;
        let domains: Vec<WebflowId> = match &args.custom_domains {
            None => ctx.tenant.custom_domains.clone(),
            Some(ids) => ids
                .iter()
                .map(|raw| {
                    let id = WebflowId::parse("custom_domains", raw)?;
                    if ctx.tenant.custom_domains.contains(&id) {
                        Ok(id)
                    } else {
                        Err(ToolError::NotYours {
                            what: "custom domain",
                            id: id.to_string(),
                        })
                    }
                })
                .collect::<Result<_, ToolError>>()?,
        };
        if domains.is_empty() && !args.publish_to_webflow_subdomain {
            return Err(ToolError::InvalidArguments(
                "nothing to publish to: give custom_domains or publish_to_webflow_subdomain: true"
                    .into(),
            ));
        }
        // The approval binds what the preview shows: the site and the domains as resolved now,
        // not as the tenant's settings may be when a person approves.
        let args = Args {
            site_id: Some(site.to_string()),
            custom_domains: Some(domains.iter().map(ToString::to_string).collect()),
            ..args
        };
        let gate_key = format!("publish:{site}");
        let next = ctx
            .services
            .gates
            .would_allow(&gate_key, PUBLISHES_PER_MIN, 60.0)
            .err();
        let token = ctx.credential(SecretKind::Webflow)?;
        let preview = async || {
            // Read now, not from the cache: the approver decides on what is staged this minute.
            let webflow = ctx.webflow()?.refreshing();
            let info = webflow.get_site(&site).await?;
            let what_changes = publish_changes::since_last_publish(&webflow, &site, &info).await;
            let urls = domains
                .iter()
                .map(|d| {
                    info.custom_domains
                        .iter()
                        .find(|c| c.id == d.as_str())
                        .and_then(|c| c.url.clone())
                        .unwrap_or_else(|| d.to_string())
                })
                .collect();
            Ok(Preview {
                action: "publish the site's current staged version, replacing what is live",
                site_id: site.to_string(),
                site_name: info.display_name,
                domains: urls,
                publish_to_webflow_subdomain: args.publish_to_webflow_subdomain,
                last_published: info.last_published,
                next_publish_in_secs: next,
                what_changes,
            })
        };
        let act = async |approved: &_| {
            if let Err(secs) = ctx.services.gates.take(&gate_key, PUBLISHES_PER_MIN, 60.0) {
                return Err(ToolError::RateLimited {
                    retry_after_secs: secs,
                });
            }
            Ok(webflow_publish::publish_site(
                approved,
                &ctx.services.webflow,
                &token,
                &site,
                &domains,
                args.publish_to_webflow_subdomain,
            )
            .await?)
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}
