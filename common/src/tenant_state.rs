//! What the server keeps about each tenant while it runs and never stores: its rate-limit
//! bucket and its tool-call metric series. The token index hands it over with the tenant, so a
//! tool call reaches both without another lookup (at 10,000 tenants each per-tenant map was a
//! few cache misses on every call).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::TenantCalls;
use crate::ratelimit::TenantBucket;

#[derive(Default)]
pub struct TenantLive {
    /// The tenant's rate-limit bucket.
    pub bucket: TenantBucket,
    /// The tenant's tool-call metric series.
    pub calls: TenantCalls,
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
