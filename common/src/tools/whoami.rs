//! `whoami`: which tenant this token belongs to and what it is bound to. No upstream call.

use serde::Serialize;

use crate::mcp::{Effect, Tool, ToolContext, ToolError};
use crate::tenant::{Tier, Toolset};
use crate::tools::NoArgs;

pub struct Whoami;

#[derive(Debug, Serialize)]
pub struct WhoamiOutput {
    pub tenant: String,
    pub name: String,
    /// The person an OAuth connection acts for (absent for a static token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<WhoamiPerson>,
    pub toolsets: Vec<Toolset>,
    pub read_only: bool,
    pub webflow_sites: Vec<String>,
    pub writable_collections: Vec<String>,
    pub plausible_site: Option<String>,
    pub github_repos: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_domains: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_zone: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_customer: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deletable_collections: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct WhoamiPerson {
    pub id: String,
    pub name: String,
    pub client: String,
}

impl Tool for Whoami {
    const NAME: &'static str = "whoami";
    const TITLE: &'static str = "Who am I";
    const DESCRIPTION: &'static str = "Show the tenant this connection acts for: its id and name, the toolsets it has, \
         whether it is read-only, and the Webflow sites, collections, analytics site and repositories it is bound to.";
    const TIER: Tier = Tier::Read;
    const EFFECT: Effect = Effect::Reads;
    const TOOLSET: Option<Toolset> = None;
    type Args = NoArgs;
    type Output = WhoamiOutput;

    async fn run(ctx: &ToolContext<'_>, _args: NoArgs) -> Result<WhoamiOutput, ToolError> {
        let t = ctx.tenant;
        Ok(WhoamiOutput {
            tenant: t.id.to_string(),
            name: t.name.clone(),
            person: ctx.actor.map(|a| WhoamiPerson {
                id: a.person.clone(),
                name: a.person_name.clone(),
                client: a.client_id.clone(),
            }),
            toolsets: t.toolsets.clone(),
            read_only: t.read_only,
            webflow_sites: t.webflow_sites.iter().map(ToString::to_string).collect(),
            writable_collections: t
                .writable_collections
                .iter()
                .map(ToString::to_string)
                .collect(),
            plausible_site: t.plausible_site.as_ref().map(|s| s.as_str().to_owned()),
            github_repos: t.github_repos.iter().map(ToString::to_string).collect(),
            custom_domains: t.custom_domains.iter().map(ToString::to_string).collect(),
            dns_zone: t.dns_zone.as_ref().map(ToString::to_string),
            dns_names: t.dns_names.iter().map(ToString::to_string).collect(),
            stripe_customer: t.stripe_customer.as_ref().map(|c| c.as_str().to_owned()),
            deletable_collections: t
                .deletable_collections
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
}
