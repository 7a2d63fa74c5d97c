//! A tenant: one client of the studio, with the resources it is bound to and what it may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{
    DnsName, PlausibleSite, RepoName, StripeCustomer, TenantId, WebflowId, ZoneId,
};

/// Groups of tools a tenant can be granted. `whoami` belongs to none: everyone has it.
///
/// A stored tenant keeps the list it was given, so an upgrade never widens what an existing
/// tenant may write: a new kind of write gets a toolset of its own. Such a toolset is also left
/// out of [`Toolset::DEFAULT`], so that no tenant writes anything an operator did not grant by
/// name (as CMS writes need collections named writable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Toolset {
    Webflow,
    CmsWrite,
    /// Page settings (title, slug, SEO, Open Graph) on the staged site.
    PageWrite,
    /// Asset alt text.
    AssetWrite,
    /// Form definitions and their submissions: personal data (names, emails, messages), so
    /// granted by name only, never by default.
    Forms,
    Analytics,
    Github,
}

impl Toolset {
    pub const ALL: [Toolset; 7] = [
        Toolset::Webflow,
        Toolset::CmsWrite,
        Toolset::PageWrite,
        Toolset::AssetWrite,
        Toolset::Forms,
        Toolset::Analytics,
        Toolset::Github,
    ];

    /// What a tenant created without a list of toolsets gets: every toolset of the first
    /// release. `page-write`, `asset-write` and `forms` (personal data) must be granted by name.
    pub const DEFAULT: [Toolset; 4] = [
        Toolset::Webflow,
        Toolset::CmsWrite,
        Toolset::Analytics,
        Toolset::Github,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Webflow => "webflow",
            Toolset::CmsWrite => "cms-write",
            Toolset::PageWrite => "page-write",
            Toolset::AssetWrite => "asset-write",
            Toolset::Forms => "forms",
            Toolset::Analytics => "analytics",
            Toolset::Github => "github",
        }
    }
}

impl fmt::Display for Toolset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Toolset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Toolset::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown toolset `{s}` (use webflow, cms-write, page-write, asset-write, \
                     forms, analytics or github)"
                )
            })
    }
}

/// How much a tool can change. High-risk tools exist only in the isolated server's binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Read,
    ScopedWrite,
    HighRisk,
}

/// The stored tenant record. It is also the admin API's wire shape: it holds no secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    #[serde(default)]
    pub webflow_sites: Vec<WebflowId>,
    #[serde(default)]
    pub writable_collections: Vec<WebflowId>,
    #[serde(default)]
    pub plausible_site: Option<PlausibleSite>,
    #[serde(default)]
    pub github_repos: Vec<RepoName>,
    pub toolsets: Vec<Toolset>,
    #[serde(default)]
    pub read_only: bool,
    /// Tool calls per minute; `None` uses the server's default.
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
    /// Isolated instance only: Webflow custom domain ids it may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_domains: Vec<WebflowId>,
    /// Isolated instance only: the Cloudflare zone it may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_zone: Option<ZoneId>,
    /// Isolated instance only: record names (or `*.suffix` patterns) it may change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<DnsName>,
    /// Isolated instance only: its Stripe customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_customer: Option<StripeCustomer>,
    /// Isolated instance only: hosts (or `*.suffix` patterns) the billing portal may send a
    /// person back to, besides the site's own custom domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub billing_return_hosts: Vec<DnsName>,
    /// Isolated instance only: CMS collections whose items it may delete or unpublish (each
    /// still behind a person's approval). A record stored before this existed names none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deletable_collections: Vec<WebflowId>,
    pub created_at: u64,
}

impl Tenant {
    pub fn has_toolset(&self, toolset: Toolset) -> bool {
        self.toolsets.contains(&toolset)
    }

    pub fn owns_site(&self, site: &WebflowId) -> bool {
        self.webflow_sites.contains(site)
    }

    pub fn may_write_collection(&self, collection: &WebflowId) -> bool {
        !self.read_only && self.writable_collections.contains(collection)
    }

    /// Whether the operator named `collection` for item deletions and unpublishing.
    pub fn may_delete_from(&self, collection: &WebflowId) -> bool {
        !self.read_only && self.deletable_collections.contains(collection)
    }
}

/// What an operator sends to create or change a tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TenantSpec {
    pub name: String,
    #[serde(default)]
    pub webflow_sites: Vec<WebflowId>,
    #[serde(default)]
    pub writable_collections: Vec<WebflowId>,
    #[serde(default)]
    pub plausible_site: Option<PlausibleSite>,
    #[serde(default)]
    pub github_repos: Vec<RepoName>,
    /// `None` grants [`Toolset::DEFAULT`].
    #[serde(default)]
    pub toolsets: Option<Vec<Toolset>>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
    #[serde(default)]
    pub custom_domains: Vec<WebflowId>,
    #[serde(default)]
    pub dns_zone: Option<ZoneId>,
    #[serde(default)]
    pub dns_names: Vec<DnsName>,
    #[serde(default)]
    pub stripe_customer: Option<StripeCustomer>,
    #[serde(default)]
    pub billing_return_hosts: Vec<DnsName>,
    #[serde(default)]
    pub deletable_collections: Vec<WebflowId>,
}

impl TenantSpec {
    pub fn into_tenant(self, id: TenantId, created_at: u64) -> Result<Tenant, String> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err("tenant name must be 1-200 characters".into());
        }
        if self.webflow_sites.is_empty() {
            return Err("a tenant needs at least one Webflow site (--webflow-site)".into());
        }
        if self.rate_limit_per_min == Some(0) {
            return Err("rate limit must be at least 1 call per minute".into());
        }
        let mut toolsets = self.toolsets.unwrap_or_else(|| Toolset::DEFAULT.to_vec());
        toolsets.sort();
        toolsets.dedup();
        Ok(Tenant {
            id,
            name,
            webflow_sites: dedup(self.webflow_sites),
            writable_collections: dedup(self.writable_collections),
            plausible_site: self.plausible_site,
            github_repos: dedup(self.github_repos),
            toolsets,
            read_only: self.read_only,
            rate_limit_per_min: self.rate_limit_per_min,
            custom_domains: dedup(self.custom_domains),
            dns_zone: self.dns_zone,
            dns_names: dedup(self.dns_names),
            stripe_customer: self.stripe_customer,
            billing_return_hosts: dedup(self.billing_return_hosts),
            deletable_collections: dedup(self.deletable_collections),
            created_at,
        })
    }
}

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// A change to a tenant: every field left out stays as it is; lists given replace the old ones.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TenantPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub webflow_sites: Option<Vec<WebflowId>>,
    #[serde(default)]
    pub writable_collections: Option<Vec<WebflowId>>,
    #[serde(default)]
    pub plausible_site: Option<PlausibleSite>,
    #[serde(default)]
    pub clear_plausible_site: bool,
    #[serde(default)]
    pub github_repos: Option<Vec<RepoName>>,
    #[serde(default)]
    pub toolsets: Option<Vec<Toolset>>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
}

impl TenantPatch {
    pub fn apply(self, tenant: &Tenant) -> Result<Tenant, String> {
        let spec = TenantSpec {
            name: self.name.unwrap_or_else(|| tenant.name.clone()),
            webflow_sites: self
                .webflow_sites
                .unwrap_or_else(|| tenant.webflow_sites.clone()),
            writable_collections: self
                .writable_collections
                .unwrap_or_else(|| tenant.writable_collections.clone()),
            plausible_site: if self.clear_plausible_site {
                None
            } else {
                self.plausible_site
                    .or_else(|| tenant.plausible_site.clone())
            },
            github_repos: self
                .github_repos
                .unwrap_or_else(|| tenant.github_repos.clone()),
            toolsets: Some(self.toolsets.unwrap_or_else(|| tenant.toolsets.clone())),
            read_only: self.read_only.unwrap_or(tenant.read_only),
            rate_limit_per_min: self.rate_limit_per_min.or(tenant.rate_limit_per_min),
            custom_domains: tenant.custom_domains.clone(),
            dns_zone: tenant.dns_zone.clone(),
            dns_names: tenant.dns_names.clone(),
            stripe_customer: tenant.stripe_customer.clone(),
            billing_return_hosts: tenant.billing_return_hosts.clone(),
            deletable_collections: tenant.deletable_collections.clone(),
        };
        spec.into_tenant(tenant.id.clone(), tenant.created_at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A tenant stored before `page-write`, `asset-write` and `forms` existed keeps exactly its
    /// toolsets on upgrade, and a patch that does not name toolsets keeps them too; a new
    /// tenant gets them only by name.
    #[test]
    fn an_upgrade_grants_no_new_toolset() {
        let stored = serde_json::json!({
            "id": "acme", "name": "Acme", "webflow_sites": ["0123456789abcdef01234567"],
            "toolsets": ["webflow", "cms-write", "analytics", "github"], "created_at": 1
        });
        let old: Tenant = serde_json::from_value(stored).unwrap();
        assert!(!old.has_toolset(Toolset::PageWrite));
        assert!(!old.has_toolset(Toolset::AssetWrite));
        assert!(!old.has_toolset(Toolset::Forms));
        // Nor does it gain a collection to delete from.
        assert!(old.deletable_collections.is_empty());
        let patched = TenantPatch {
            read_only: Some(false),
            ..TenantPatch::default()
        }
        .apply(&old)
        .unwrap();
        assert_eq!(patched.toolsets, old.toolsets);
        assert!(patched.deletable_collections.is_empty());

        let spec = TenantSpec {
            name: "New".into(),
            webflow_sites: old.webflow_sites.clone(),
            ..TenantSpec::default()
        };
        let new = spec.clone().into_tenant(old.id.clone(), 2).unwrap();
        assert_eq!(new.toolsets, old.toolsets);
        assert!(!new.has_toolset(Toolset::AssetWrite));
        assert!(!new.has_toolset(Toolset::Forms));
        let granted = TenantSpec {
            toolsets: Some(vec![
                Toolset::Webflow,
                Toolset::PageWrite,
                Toolset::AssetWrite,
            ]),
            ..spec
        };
        let granted = granted.into_tenant(old.id.clone(), 3).unwrap();
        assert!(granted.has_toolset(Toolset::PageWrite));
        assert!(granted.has_toolset(Toolset::AssetWrite));
        assert_eq!("page-write".parse(), Ok(Toolset::PageWrite));
        assert_eq!("asset-write".parse(), Ok(Toolset::AssetWrite));
        assert_eq!("forms".parse(), Ok(Toolset::Forms));
    }
}
