//! What the server keeps about each tenant while it runs and never stores: its rate-limit
//! bucket and its tool-call metric series. The token index hands it over with the tenant, so a
//! tool call reaches both without another lookup (at 10,000 tenants each per-tenant map was a
//! few cache misses on every call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::metrics::CallStats;
use crate::ratelimit::Bucket;

#[derive(Default)]
pub struct TenantLive {
    /// The tenant's tool-call bucket, made at its first call.
    pub(crate) bucket: Mutex<Option<Bucket>>,
    /// Per tool: a tenant calls a handful, so a short list beats a map.
    pub(crate) calls: RwLock<Vec<(&'static str, Arc<CallStats>)>>,
    /// The Unix second of the last rate-limit refusal written to the audit log.
    refusal_audited: AtomicU64,
}

impl TenantLive {
    /// True for the first rate-limit refusal in each second.
    pub fn first_refusal_this_second(&self) -> bool {
        let now = crate::now_unix();
        self.refusal_audited.swap(now, Ordering::AcqRel) != now
    }
}

impl std::fmt::Debug for TenantLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantLive(..)")
    }
}
