//! Token buckets. Per tenant, so one client's burst cannot eat the quota every other client
//! shares; per upstream credential, so we stay inside each vendor's quota (Webflow: 60/min per
//! token) instead of learning about it from 429s. Refusals say when to retry.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::hashing::IdHasher;
use crate::tenant::Tenant;

/// One tenant's tool-call bucket, made at its first request; kept in the tenant's live state
/// (`tenant_state.rs`) so a request reaches it without a lookup.
#[derive(Default)]
pub struct TenantBucket(Mutex<Option<Bucket>>);

pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Refill rate per second and capacity of a bucket allowing `per_min` a minute with
/// `burst_secs` worth of burst (at least one call).
fn rate(per_min: u32, burst_secs: f64) -> (f64, f64) {
    let per_sec = f64::from(per_min.max(1)) / 60.0;
    (per_sec, (per_sec * burst_secs).max(1.0))
}

/// Past this many keys, [`Buckets::take`] forgets the full buckets before adding one.
const MAX_KEYS: usize = 50_000;

impl Bucket {
    fn tokens_at(&self, per_sec: f64, capacity: f64, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.last).as_secs_f64() * per_sec).min(capacity)
    }

    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            last: now,
        }
    }

    /// Refills for the time since the last call, then takes one token or says how many seconds
    /// until one is free.
    fn take(&mut self, per_sec: f64, capacity: f64, now: Instant) -> Result<(), u64> {
        let refill = now.duration_since(self.last).as_secs_f64() * per_sec;
        self.tokens = (self.tokens + refill).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// Buckets keyed by `K`, each refilled at `per_min` a minute and holding `burst_secs` worth.
pub struct Buckets<K> {
    buckets: Mutex<HashMap<K, Bucket, IdHasher>>,
}

impl<K> std::fmt::Debug for Buckets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Buckets(..)")
    }
}

impl<K: Eq + Hash> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// Whether [`Self::take`] would succeed now, without taking anything.
    pub fn would_allow(&self, key: &K, per_min: u32, burst_secs: f64) -> Result<(), u64> {
        let (per_sec, capacity) = rate(per_min, burst_secs);
        let Ok(buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let Some(bucket) = buckets.get(key) else {
            return Ok(());
        };
        let tokens = (bucket.tokens + bucket.last.elapsed().as_secs_f64() * per_sec).min(capacity);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }

    /// Takes one token, or returns the seconds until one is free.
    pub fn take(&self, key: &K, per_min: u32, burst_secs: f64) -> Result<(), u64> {
        let (per_sec, capacity) = rate(per_min, burst_secs);
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned limiter must not take the service down
        };
        // Look up before inserting: the key is cloned once per key, not once per call.
        if !buckets.contains_key(key) {
            // Keyed by anonymous sources the map could grow without end: past a size, forget
            // the buckets that have refilled (a full bucket is what a new key gets anyway).
            if buckets.len() >= MAX_KEYS {
                buckets.retain(|_, b| b.tokens_at(per_sec, capacity, now) < capacity);
            }
            buckets.insert(key.clone(), Bucket::full(capacity, now));
        }
        match buckets.get_mut(key) {
            Some(bucket) => bucket.take(per_sec, capacity, now),
            None => Ok(()),
        }
    }
}

/// Tool calls per tenant. The bucket, kept in the tenant's [`TenantLive`], holds ten seconds'
/// worth, so short bursts pass.
///
/// Several replicas: each takes an equal share of every tenant's budget, by the live-replica
/// count the heartbeat keeps (one atomic load a call, nothing shared per call). The load
/// balancer spreads calls round-robin, so the shares add up to the budget; a tenant whose calls
/// all reach one replica gets that replica's share.
pub struct RateLimiter {
    default_per_min: u32,
    replicas: Option<Arc<AtomicU32>>,
}

impl RateLimiter {
    pub fn new(default_per_min: u32) -> Self {
        Self {
            default_per_min,
            replicas: None,
        }
    }

    /// Divides every budget by the live-replica count `replicas` holds.
    pub fn shared_by(mut self, replicas: Option<Arc<AtomicU32>>) -> Self {
        self.replicas = replicas;
        self
    }

    pub fn check(&self, tenant: &Tenant, bucket: &TenantBucket) -> Result<(), u64> {
        let budget = tenant.rate_limit_per_min.unwrap_or(self.default_per_min);
        let replicas = self
            .replicas
            .as_ref()
            .map_or(1, |r| r.load(Ordering::Relaxed).max(1));
        let per_min = budget.div_ceil(replicas);
        let (per_sec, capacity) = rate(per_min, 10.0);
        let now = Instant::now();
        let Ok(mut bucket) = bucket.0.lock() else {
            return Ok(()); // a poisoned limiter must not take the service down
        };
        bucket
            .get_or_insert_with(|| Bucket::full(capacity, now))
            .take(per_sec, capacity, now)
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
        .into_tenant(crate::domain::TenantId::parse(id).unwrap(), 0)
        .unwrap()
    }

    #[test]
    fn a_burst_drains_one_bucket_only() {
        let limiter = RateLimiter::new(600);
        let slow = tenant("slow", Some(6)); // one call per 10 s, bucket of 1
        let fast = tenant("fast", None);
        let (slow_live, fast_live) = (TenantBucket::default(), TenantBucket::default());
        assert!(limiter.check(&slow, &slow_live).is_ok());
        let wait = limiter.check(&slow, &slow_live).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        for _ in 0..100 {
            assert!(limiter.check(&fast, &fast_live).is_ok());
        }
    }

    #[test]
    fn a_minute_of_burst_for_upstream_quotas() {
        let quota: Buckets<[u8; 32]> = Buckets::default();
        for _ in 0..60 {
            assert!(quota.take(&[1; 32], 60, 60.0).is_ok());
        }
        assert_eq!(quota.take(&[1; 32], 60, 60.0), Err(1));
        assert!(quota.take(&[2; 32], 60, 60.0).is_ok());
    }

    #[test]
    fn many_keys_do_not_grow_the_map_without_end_nor_forget_a_spent_bucket() {
        // Ten a second, a second's burst: a bucket taken from refills within 0.1 s.
        let sources: Buckets<u32> = Buckets::default();
        for _ in 0..10 {
            assert!(sources.take(&0, 600, 1.0).is_ok());
        }
        for key in 1..MAX_KEYS as u32 {
            assert!(sources.take(&key, 600, 1.0).is_ok());
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(sources.take(&u32::MAX, 600, 1.0).is_ok());
        let buckets = sources.buckets.lock().unwrap();
        // The refilled ones are forgotten; the one spent ten times is not yet full, and kept.
        assert!(buckets.len() <= 2, "{}", buckets.len());
        assert!(buckets.contains_key(&0) && buckets.contains_key(&u32::MAX));
    }
}
