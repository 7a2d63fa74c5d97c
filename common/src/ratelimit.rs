//! Per-tenant token buckets: one client's burst cannot eat the upstream quota every other
//! client shares, nor the server's CPU. Refills continuously; a refusal says when to retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::domain::TenantId;
use crate::tenant::Tenant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    default_per_min: u32,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    pub fn new(default_per_min: u32) -> Self {
        Self {
            default_per_min,
            buckets: Mutex::default(),
        }
    }

    /// Takes one call from the tenant's bucket, or returns the seconds until one is free.
    /// The bucket holds ten seconds' worth of calls (at least one), so short bursts pass.
    pub fn check(&self, tenant: &Tenant) -> Result<(), u64> {
        let per_min = tenant
            .rate_limit_per_min
            .unwrap_or(self.default_per_min)
            .max(1);
        let per_sec = f64::from(per_min) / 60.0;
        let capacity = (per_sec * 10.0).max(1.0);
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned limiter must not take the service down
        };
        let bucket = buckets.entry(tenant.id.clone()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let refill = now.duration_since(bucket.last).as_secs_f64() * per_sec;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WebflowId;
    use crate::tenant::TenantSpec;

    fn tenant(id: &str, per_min: Option<u32>) -> Tenant {
        TenantSpec {
            name: id.into(),
            webflow_sites: vec![WebflowId::parse("s", "aaaaaaaaaaaaaaaaaaaaaaaa").unwrap()],
            rate_limit_per_min: per_min,
            ..Default::default()
        }
        .into_tenant(TenantId::parse(id).unwrap(), 0)
        .unwrap()
    }

    #[test]
    fn a_burst_drains_one_bucket_only() {
        let limiter = RateLimiter::new(600);
        let slow = tenant("slow", Some(6)); // one call per 10 s, bucket of 1
        let fast = tenant("fast", None);
        assert!(limiter.check(&slow).is_ok());
        let wait = limiter.check(&slow).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        for _ in 0..100 {
            assert!(limiter.check(&fast).is_ok());
        }
    }
}
