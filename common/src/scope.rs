//! Per-resource scoping for ids that do not name their site: pages, collections, assets and
//! forms. Before a tool names such an id upstream, it must appear in the tenant's index, built
//! only from listings of the tenant's *own* sites with the tenant's own token. A foreign id is
//! therefore refused without the upstream ever seeing it.
//!
//! Each kind of listing is its own index ([`Group`]): pages and collections, which most tools
//! need, are listed together; assets and forms only when a tool asks about one, so a tenant that
//! never touches them pays no listing of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{TenantId, WebflowId};
use crate::tenant::Tenant;
use crate::upstream::UpstreamError;
use crate::upstream::webflow::Webflow;

/// An unknown id triggers at most one rebuild per tenant in this window, so random ids cannot
/// be used to amplify upstream traffic.
const REBUILD_AFTER: Duration = Duration::from_secs(10);
/// Even known ids are re-checked this often, so a page moved away stops being reachable.
const MAX_AGE: Duration = Duration::from_secs(300);
const PAGE_LIMIT: u32 = 100;
/// Most pages (or assets, forms) indexed per site: Webflow sites are far smaller than this; the
/// cap bounds work if an upstream misbehaves.
const MAX_INDEXED: u32 = 10_000;

struct Indexed {
    /// Each known id, with the site it was listed under.
    ids: HashMap<(Kind, WebflowId), WebflowId>,
    built_at: Instant,
}

/// Whose index, of which listings.
type Key = (TenantId, Group);

#[derive(Default)]
pub struct ResourceIndex {
    tenants: Mutex<HashMap<Key, Arc<Indexed>>>,
    /// One rebuild per tenant and group at a time: concurrent calls that need one wait for it
    /// and use its result, rather than each listing the tenant's sites again.
    rebuilds: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

/// The kinds of id the index knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Page,
    Collection,
    Asset,
    Form,
}

/// The listings one rebuild makes: a kind's ids are learned from its group's listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Group {
    /// Pages and collections.
    Structure,
    Assets,
    Forms,
}

impl Kind {
    fn group(self) -> Group {
        match self {
            Kind::Page | Kind::Collection => Group::Structure,
            Kind::Asset => Group::Assets,
            Kind::Form => Group::Forms,
        }
    }

    /// How a refusal names it.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::Collection => "collection",
            Kind::Asset => "asset",
            Kind::Form => "form",
        }
    }
}

impl ResourceIndex {
    /// Forgets a tenant's index (its sites changed).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut map) = self.tenants.lock() {
            map.retain(|(t, _), _| t != tenant);
        }
        if let Ok(mut gates) = self.rebuilds.lock() {
            gates.retain(|(t, _), _| t != tenant);
        }
    }

    /// Whether `id` is one of `tenant`'s pages, collections, assets or forms (`kind`). When the
    /// id is unknown and the index old enough, the index is rebuilt with the tenant's own
    /// Webflow client, which `webflow` makes only then (a cached answer decrypts no
    /// credential). The caller turns `false` into its refusal.
    pub async fn contains<'w, E: From<UpstreamError>>(
        &self,
        tenant: &Tenant,
        webflow: impl FnOnce() -> Result<Webflow<'w>, E>,
        id: &WebflowId,
        kind: Kind,
    ) -> Result<bool, E> {
        let key = (tenant.id.clone(), kind.group());
        let contains = |ix: &Indexed| ix.ids.contains_key(&(kind, id.clone()));
        let cached = self.cached(&key);
        if let Some(ix) = &cached {
            let age = ix.built_at.elapsed();
            if age < MAX_AGE && contains(ix) {
                return Ok(true);
            }
            if age < REBUILD_AFTER {
                return Ok(false);
            }
        }
        let asked = Instant::now();
        let gate = self.rebuild_gate(&key);
        let _rebuilding = gate.lock().await;
        // Someone else rebuilt while this call waited: their index is as fresh as ours would be.
        let fresh = match self.cached(&key) {
            Some(ix) if ix.built_at >= asked => ix,
            _ => {
                // Straight from Webflow: an id the index does not know may be brand new.
                let webflow = webflow()?.refreshing();
                let fresh = Arc::new(build(tenant, &webflow, kind.group()).await?);
                if let Ok(mut map) = self.tenants.lock() {
                    map.insert(key, fresh.clone());
                }
                fresh
            }
        };
        Ok(contains(&fresh))
    }

    /// The site `id` was listed under, if the tenant's index holds it now (after
    /// [`Self::contains`] said yes, it does unless the index was forgotten in between).
    pub fn site_of(&self, tenant: &TenantId, id: &WebflowId, kind: Kind) -> Option<WebflowId> {
        self.cached(&(tenant.clone(), kind.group()))?
            .ids
            .get(&(kind, id.clone()))
            .cloned()
    }

    fn rebuild_gate(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        match self.rebuilds.lock() {
            Ok(mut gates) => gates.entry(key.clone()).or_default().clone(),
            // A poisoned map only loses the single-flight, not the check.
            Err(_) => Arc::default(),
        }
    }

    fn cached(&self, key: &Key) -> Option<Arc<Indexed>> {
        self.tenants.lock().ok()?.get(key).cloned()
    }
}

async fn build(
    tenant: &Tenant,
    webflow: &Webflow<'_>,
    group: Group,
) -> Result<Indexed, UpstreamError> {
    let mut ids = HashMap::new();
    for site in &tenant.webflow_sites {
        let mut add = |kind: Kind, id: &str| {
            if let Ok(id) = WebflowId::parse(kind.noun(), id) {
                ids.insert((kind, id), site.clone());
            }
        };
        match group {
            Group::Structure => {
                let mut offset = 0;
                loop {
                    let list = webflow.list_pages(site, offset, PAGE_LIMIT, None).await?;
                    let got = list.pages.len() as u32;
                    list.pages.iter().for_each(|p| add(Kind::Page, &p.id));
                    offset += got;
                    if got == 0 || offset >= list.pagination.total || offset >= MAX_INDEXED {
                        break;
                    }
                }
                let list = webflow.list_collections(site).await?;
                list.collections
                    .iter()
                    .for_each(|c| add(Kind::Collection, &c.id));
            }
            Group::Assets => {
                let mut offset = 0;
                loop {
                    let list = webflow.list_assets(site, offset, PAGE_LIMIT).await?;
                    let got = list.assets.len() as u32;
                    list.assets.iter().for_each(|a| add(Kind::Asset, &a.id));
                    offset += got;
                    if got == 0 || offset >= list.pagination.total || offset >= MAX_INDEXED {
                        break;
                    }
                }
            }
            Group::Forms => {
                let mut offset = 0;
                loop {
                    let list = webflow.list_forms(site, offset, PAGE_LIMIT).await?;
                    let got = list.forms.len() as u32;
                    list.forms.iter().for_each(|f| add(Kind::Form, &f.id));
                    offset += got;
                    if got == 0 || offset >= list.pagination.total || offset >= MAX_INDEXED {
                        break;
                    }
                }
            }
        }
    }
    Ok(Indexed {
        ids,
        built_at: Instant::now(),
    })
}
