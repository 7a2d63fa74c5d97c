//! Per-resource scoping for ids that do not name their site: pages and collections. Before a
//! tool names such an id upstream, it must appear in the tenant's index, built only from
//! listings of the tenant's *own* sites with the tenant's own token. A foreign id is therefore
//! refused without the upstream ever seeing it.

use std::collections::{HashMap, HashSet};
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
/// Webflow sites are far smaller than this; the cap bounds work if an upstream misbehaves.
const MAX_PAGES_INDEXED: u32 = 10_000;

struct Indexed {
    pages: HashSet<WebflowId>,
    collections: HashSet<WebflowId>,
    built_at: Instant,
}

#[derive(Default)]
pub struct ResourceIndex {
    tenants: Mutex<HashMap<TenantId, Arc<Indexed>>>,
    /// One rebuild per tenant at a time: concurrent calls that need one wait for it and use
    /// its result, rather than each listing the tenant's sites again.
    rebuilds: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

/// The kinds of id the index knows.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Page,
    Collection,
}

impl ResourceIndex {
    /// Forgets a tenant's index (its sites changed).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut map) = self.tenants.lock() {
            map.remove(tenant);
        }
        if let Ok(mut gates) = self.rebuilds.lock() {
            gates.remove(tenant);
        }
    }

    /// Whether `id` is one of `tenant`'s pages or collections. When the id is unknown and the
    /// index old enough, the index is rebuilt with the tenant's own Webflow client, which
    /// `webflow` makes only then (a cached answer decrypts no credential). The caller turns
    /// `false` into its refusal.
    pub async fn contains<'w, E: From<UpstreamError>>(
        &self,
        tenant: &Tenant,
        webflow: impl FnOnce() -> Result<Webflow<'w>, E>,
        id: &WebflowId,
        kind: Kind,
    ) -> Result<bool, E> {
        let contains = |ix: &Indexed| match kind {
            Kind::Page => ix.pages.contains(id),
            Kind::Collection => ix.collections.contains(id),
        };
        let cached = self.cached(&tenant.id);
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
        let gate = self.rebuild_gate(&tenant.id);
        let _rebuilding = gate.lock().await;
        // Someone else rebuilt while this call waited: their index is as fresh as ours would be.
        let fresh = match self.cached(&tenant.id) {
            Some(ix) if ix.built_at >= asked => ix,
            _ => {
                // Straight from Webflow: an id the index does not know may be brand new.
                let fresh = Arc::new(build(tenant, &webflow()?.refreshing()).await?);
                if let Ok(mut map) = self.tenants.lock() {
                    map.insert(tenant.id.clone(), fresh.clone());
                }
                fresh
            }
        };
        Ok(contains(&fresh))
    }

    fn rebuild_gate(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        match self.rebuilds.lock() {
            Ok(mut gates) => gates.entry(tenant.clone()).or_default().clone(),
            // A poisoned map only loses the single-flight, not the check.
            Err(_) => Arc::default(),
        }
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<Indexed>> {
        self.tenants.lock().ok()?.get(tenant).cloned()
    }
}

async fn build(tenant: &Tenant, webflow: &Webflow<'_>) -> Result<Indexed, UpstreamError> {
    let mut pages = HashSet::new();
    let mut collections = HashSet::new();
    for site in &tenant.webflow_sites {
        let mut offset = 0;
        loop {
            let list = webflow.list_pages(site, offset, PAGE_LIMIT).await?;
            let got = list.pages.len() as u32;
            pages.extend(
                list.pages
                    .iter()
                    .filter_map(|p| WebflowId::parse("page", &p.id).ok()),
            );
            offset += got;
            if got == 0 || offset >= list.pagination.total || offset >= MAX_PAGES_INDEXED {
                break;
            }
        }
        let list = webflow.list_collections(site).await?;
        collections.extend(
            list.collections
                .iter()
                .filter_map(|c| WebflowId::parse("collection", &c.id).ok()),
        );
    }
    Ok(Indexed {
        pages,
        collections,
        built_at: Instant::now(),
    })
}
