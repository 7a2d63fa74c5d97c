//! The upstream read cache: answers to upstream GETs kept for a short lifetime that each call
//! site chooses ([`Freshness`]), per tenant *and* credential, in one byte-bounded store for the
//! whole process; identical reads in flight share one upstream request.
//!
//! - **Keys.** Upstream, tenant, SHA-256 of the credential, path and query (GETs only): one
//!   tenant's entry is never another's, and a new credential misses.
//! - **Lifetimes** are measured against the server's [`Clock`], so tests move time instead of
//!   waiting. Errors are never kept.
//! - **Invalidation** is by upstream path prefix, for every tenant: a write marks its prefix
//!   with a new sequence number, and an entry (or a request in flight) older than a mark over
//!   its path is not served. The marks outlive the longest lifetime, then go. On replicas the
//!   mark travels through the store's change feed ([`ReadCache::announce_with`]).
//! - **Freshness of a result.** A tool call runs inside [`observed`], which reports the age of
//!   the oldest cached answer the call used (the `cached_for_secs` of its result).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use quick_cache::Lifecycle;

use super::UpstreamError;
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::metrics::Metrics;

/// How long an answer may be served from the cache, chosen where the call is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Collections and their field schemas: they change only in the Designer, and a draft
    /// refused against a cached schema is checked again against a fresh one. 5 minutes.
    Schema,
    /// Commit history: new commits are added, old ones do not change. 60 s.
    History,
    /// Anything that shows publish or edit state (`lastPublished`, `lastUpdated`: sites,
    /// pages, items), page content, workflow runs and deployments: another process (an
    /// isolated instance's publish, the Designer, CI) changes them without telling us. 10 s.
    Live,
}

impl Freshness {
    pub const fn secs(self) -> u64 {
        match self {
            Freshness::Schema => 300,
            Freshness::History => 60,
            Freshness::Live => 10,
        }
    }

    /// The longest lifetime of all: how long an invalidation mark must be remembered.
    const LONGEST_SECS: u64 = Freshness::Schema.secs();
}

/// What one cache entry is found by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub upstream: &'static str,
    pub tenant: TenantId,
    /// SHA-256 of the credential: never the credential itself.
    pub credential: [u8; 32],
    /// The path with its query, as sent (GET only).
    pub target: String,
}

impl Key {
    /// The path without its query: what invalidation prefixes are compared with.
    fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }
}

/// One kept answer: its body as the upstream sent it, and when it was fetched.
#[derive(Debug)]
pub(super) struct Entry {
    pub body: Box<[u8]>,
    /// Clock seconds when the answer was asked for.
    pub fetched_at: u64,
    pub expires_at: u64,
    /// The invalidation sequence when the request was sent: a later mark over its path wins.
    seq: u64,
}

/// Entries weigh their bytes (body, key and bookkeeping), so the bound is in bytes.
#[derive(Clone)]
struct Bytes;

/// Bookkeeping per entry beyond body and target: key, `Arc`, hash table slot.
const ENTRY_OVERHEAD: u64 = 160;

impl quick_cache::Weighter<Key, Arc<Entry>> for Bytes {
    fn weight(&self, key: &Key, entry: &Arc<Entry>) -> u64 {
        (entry.body.len() + key.target.len() + key.tenant.as_str().len()) as u64 + ENTRY_OVERHEAD
    }
}

/// Counts evictions (by upstream) as they happen.
#[derive(Clone)]
struct Evictions(Option<Arc<Metrics>>);

impl Lifecycle<Key, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), key: Key, _entry: Arc<Entry>) {
        if let Some(metrics) = &self.0 {
            metrics.record_upstream_cache_eviction(key.upstream);
        }
    }
}

type Store =
    quick_cache::sync::Cache<Key, Arc<Entry>, Bytes, quick_cache::DefaultHashBuilder, Evictions>;

/// A write over a path prefix: its sequence number, and when (clock seconds).
#[derive(Clone, Copy, Debug)]
struct Mark {
    seq: u64,
    at: u64,
}

type FlightOutcome = tokio::sync::watch::Receiver<Option<Result<Arc<Entry>, UpstreamError>>>;

/// A request in flight that others may wait for: the sequence it was sent under, and where
/// its outcome will be told (`None` until then; the sender dropped without a value means the
/// leader gave up, and a waiter tries again).
struct Flight {
    id: u64,
    seq: u64,
    outcome: FlightOutcome,
}

/// Tells the other replicas that a prefix was written (the store's change feed), done once
/// they have applied it.
pub type Announce = dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync;

pub struct ReadCache {
    entries: Store,
    flights: Mutex<HashMap<Key, Flight>>,
    /// upstream → path prefix → its latest write.
    marks: RwLock<HashMap<&'static str, HashMap<String, Mark>>>,
    seq: AtomicU64,
    next_flight: AtomicU64,
    clock: Clock,
    metrics: Option<Arc<Metrics>>,
    announce: std::sync::OnceLock<Box<Announce>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .finish()
    }
}

/// An answer's average size, as the store's bookkeeping of recently evicted keys is sized by
/// it (nothing is allocated up front: an idle cache costs nothing).
const TYPICAL_ENTRY_BYTES: u64 = 16 * 1024;

/// Whether an answer came from the cache, was shared with a request in flight, or was fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Hit,
    Coalesced,
    Fetched,
}

impl Source {
    pub(super) fn label(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Coalesced => "coalesced",
            Source::Fetched => "miss",
        }
    }
}

/// What [`ReadCache::begin`] found: an answer, or the duty to fetch one.
pub(super) enum Begun<'c> {
    Found(Arc<Entry>, Source),
    Failed(UpstreamError),
    Lead(Leader<'c>),
}

/// The one caller that fetches for everyone waiting on the same key. Dropped without
/// [`ReadCache::finish`] (its caller gave up), its flight ends and the waiters try again.
pub(super) struct Leader<'c> {
    cache: &'c ReadCache,
    key: Key,
    flight: u64,
    seq: u64,
    fetched_at: u64,
    sender: tokio::sync::watch::Sender<Option<Result<Arc<Entry>, UpstreamError>>>,
}

impl Drop for Leader<'_> {
    /// The flight ends with its leader, told or not: later callers start their own.
    fn drop(&mut self) {
        self.cache.land(&self.key, self.flight);
    }
}

impl ReadCache {
    /// A cache of at most `max_bytes` for every upstream and tenant together.
    pub fn new(max_bytes: u64, clock: Clock, metrics: Option<Arc<Metrics>>) -> Self {
        let items = usize::try_from(max_bytes / TYPICAL_ENTRY_BYTES)
            .unwrap_or(usize::MAX)
            .max(64);
        Self {
            entries: Store::with(
                items,
                max_bytes,
                Bytes,
                quick_cache::DefaultHashBuilder::default(),
                Evictions(metrics.clone()),
            ),
            flights: Mutex::default(),
            marks: RwLock::default(),
            seq: AtomicU64::new(0),
            next_flight: AtomicU64::new(0),
            clock,
            metrics,
            announce: std::sync::OnceLock::new(),
        }
    }

    /// Every write's prefix goes to `announce` too, so that other replicas drop their entries
    /// (set once, at start; a single process needs none).
    pub fn announce_with(&self, announce: Box<Announce>) {
        let _ = self.announce.set(announce);
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    fn count(&self, upstream: &'static str, what: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.record_upstream_cache(upstream, what);
        }
    }

    /// A fresh entry for `key`, or the request in flight for it, or the duty to fetch it.
    pub(super) async fn begin(&self, key: Key) -> Begun<'_> {
        loop {
            let now = self.clock.now();
            if let Some(entry) = self.entries.get(&key) {
                if now < entry.expires_at && !self.marked_since(&key, entry.seq) {
                    self.count(key.upstream, Source::Hit.label());
                    return Begun::Found(entry, Source::Hit);
                }
                self.entries
                    .remove_if(&key, |kept| Arc::ptr_eq(kept, &entry));
            }
            let (flight, mut outcome) = {
                let Ok(mut flights) = self.flights.lock() else {
                    return Begun::Lead(self.lead(key, now).0);
                };
                match flights.get(&key) {
                    Some(flight) if !self.marked_since(&key, flight.seq) => {
                        (flight.id, flight.outcome.clone())
                    }
                    _ => {
                        let (leader, outcome) = self.lead(key.clone(), now);
                        let flight = Flight {
                            id: leader.flight,
                            seq: leader.seq,
                            outcome,
                        };
                        flights.insert(key, flight);
                        return Begun::Lead(leader);
                    }
                }
            };
            // Counted on joining, so that waiters show while the request is still out.
            self.count(key.upstream, Source::Coalesced.label());
            let told = outcome
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|told| told.clone());
            match told {
                Some(Ok(entry)) => return Begun::Found(entry, Source::Coalesced),
                Some(Err(e)) => return Begun::Failed(e),
                // The leader gave up before an answer (its caller went away): its flight goes,
                // and this caller tries again, perhaps as the new leader.
                None => self.land(&key, flight),
            }
        }
    }

    /// A new leader for `key`, and the receiver its waiters will hear the outcome on.
    fn lead(&self, key: Key, now: u64) -> (Leader<'_>, FlightOutcome) {
        self.count(key.upstream, Source::Fetched.label());
        let (sender, receiver) = tokio::sync::watch::channel(None);
        let leader = Leader {
            cache: self,
            key,
            flight: self.next_flight.fetch_add(1, Ordering::Relaxed),
            seq: self.seq.load(Ordering::Acquire),
            fetched_at: now,
            sender,
        };
        (leader, receiver)
    }

    /// The duty to fetch `key` anew, whatever is kept or in flight; the answer replaces what
    /// is kept.
    pub(super) fn refresh(&self, key: Key) -> Leader<'_> {
        self.lead(key, self.clock.now()).0
    }

    /// How many seconds ago `entry`'s answer was fetched.
    pub(super) fn age(&self, entry: &Entry) -> u64 {
        self.clock.now().saturating_sub(entry.fetched_at)
    }

    /// Forgets flight `id` of `key`, if it is still the one in the map.
    fn land(&self, key: &Key, id: u64) {
        if let Ok(mut flights) = self.flights.lock()
            && flights.get(key).is_some_and(|f| f.id == id)
        {
            flights.remove(key);
        }
    }

    /// The leader's outcome: kept (a success, for `freshness`, unless a write came in between)
    /// and told to every waiter.
    pub(super) fn finish(
        &self,
        leader: Leader<'_>,
        outcome: Result<Vec<u8>, UpstreamError>,
        freshness: Freshness,
    ) {
        let outcome = outcome.map(|body| {
            Arc::new(Entry {
                body: body.into_boxed_slice(),
                fetched_at: leader.fetched_at,
                expires_at: leader.fetched_at + freshness.secs(),
                seq: leader.seq,
            })
        });
        if let Ok(entry) = &outcome
            && !self.marked_since(&leader.key, leader.seq)
        {
            self.entries.insert(leader.key.clone(), entry.clone());
        }
        // Later callers find the entry (or, after an error, start afresh), not this flight.
        self.land(&leader.key, leader.flight);
        leader.sender.send_replace(Some(outcome));
    }

    /// Drops `upstream`'s entries under `prefix` (at segment boundaries), for every tenant,
    /// here and, through the announcement, on the other replicas.
    pub(super) async fn invalidate(&self, upstream: &'static str, prefix: &str) {
        self.mark(upstream, prefix);
        if let Some(announce) = self.announce.get() {
            announce(format!("{upstream} {prefix}")).await;
        }
    }

    /// An announcement heard from another replica (`None`: anything may have changed, drop
    /// everything).
    pub fn heard(&self, what: Option<&str>) {
        match what.and_then(|w| w.split_once(' ')) {
            Some((upstream, prefix)) => match KNOWN_UPSTREAMS.iter().find(|u| **u == upstream) {
                Some(upstream) => self.mark(upstream, prefix),
                None => self.entries.clear(),
            },
            None => self.entries.clear(),
        }
    }

    fn mark(&self, upstream: &'static str, prefix: &str) {
        let now = self.clock.now();
        let Ok(mut marks) = self.marks.write() else {
            self.entries.clear();
            return;
        };
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let prefixes = marks.entry(upstream).or_default();
        prefixes.insert(
            prefix.trim_end_matches('/').to_owned(),
            Mark { seq, at: now },
        );
        // A mark older than the longest lifetime covers only entries that have expired.
        if prefixes.len() > 1024 {
            prefixes.retain(|_, mark| mark.at + Freshness::LONGEST_SECS + 1 >= now);
        }
    }

    /// Whether a write over `key`'s path was marked after sequence `seq`.
    fn marked_since(&self, key: &Key, seq: u64) -> bool {
        if self.seq.load(Ordering::Acquire) <= seq {
            return false;
        }
        let Ok(marks) = self.marks.read() else {
            return true;
        };
        let Some(prefixes) = marks.get(key.upstream) else {
            return false;
        };
        let path = key.path();
        let mut end = path.len();
        loop {
            if prefixes
                .get(&path[..end])
                .is_some_and(|mark| mark.seq > seq)
            {
                return true;
            }
            match path[..end].rfind('/') {
                Some(0) | None => return false,
                Some(slash) => end = slash,
            }
        }
    }
}

/// The upstreams whose names an announcement may carry (names are `&'static str` here).
const KNOWN_UPSTREAMS: [&str; 5] = ["Webflow", "Plausible", "GitHub", "Cloudflare", "Stripe"];

tokio::task_local! {
    /// The age in seconds of the oldest cached answer the current tool call used.
    static OLDEST: Cell<Option<u64>>;
}

/// Runs `call`, and says how old the oldest cached answer it used was (`None`: every answer
/// came fresh from upstream).
pub async fn observed<F: Future>(call: F) -> (F::Output, Option<u64>) {
    OLDEST
        .scope(Cell::new(None), async move {
            let output = call.await;
            (output, OLDEST.with(Cell::get))
        })
        .await
}

/// Notes an answer `age` seconds old for the tool call running, if any.
pub(super) fn used(age: u64) {
    let _ = OLDEST.try_with(|oldest| {
        oldest.set(Some(oldest.get().map_or(age, |o| o.max(age))));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, target: &str) -> Key {
        Key {
            upstream: "Webflow",
            tenant: TenantId::parse(tenant).unwrap(),
            credential: [7; 32],
            target: target.to_owned(),
        }
    }

    async fn fill(cache: &ReadCache, key: Key, body: &str) {
        match cache.begin(key).await {
            Begun::Lead(leader) => {
                cache.finish(leader, Ok(body.as_bytes().to_vec()), Freshness::Live);
            }
            _ => panic!("expected to lead"),
        }
    }

    async fn found(cache: &ReadCache, key: Key) -> Option<String> {
        match cache.begin(key).await {
            Begun::Found(entry, _) => Some(String::from_utf8(entry.body.to_vec()).unwrap()),
            Begun::Lead(_) => None,
            Begun::Failed(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn an_entry_is_served_to_its_own_key_only_until_it_expires() {
        let clock = Clock::default();
        let cache = ReadCache::new(1 << 20, clock.clone(), None);
        fill(&cache, key("acme", "/v2/sites"), "acme's").await;
        assert_eq!(
            found(&cache, key("acme", "/v2/sites")).await.as_deref(),
            Some("acme's")
        );
        assert_eq!(found(&cache, key("globex", "/v2/sites")).await, None);
        let mut other_credential = key("acme", "/v2/sites");
        other_credential.credential = [8; 32];
        assert_eq!(found(&cache, other_credential).await, None);
        clock.advance(Freshness::Live.secs());
        assert_eq!(found(&cache, key("acme", "/v2/sites")).await, None);
    }

    #[tokio::test]
    async fn a_write_drops_what_lies_under_its_prefix_and_nothing_else() {
        let cache = ReadCache::new(1 << 20, Clock::default(), None);
        let items = "/v2/collections/c1/items?offset=0&limit=100";
        for target in [
            items,
            "/v2/collections/c1/items/i1",
            "/v2/collections/c1",
            "/v2/collections/c10/items",
        ] {
            fill(&cache, key("acme", target), "x").await;
        }
        cache
            .invalidate("Webflow", "/v2/collections/c1/items")
            .await;
        assert_eq!(found(&cache, key("acme", items)).await, None);
        assert_eq!(
            found(&cache, key("acme", "/v2/collections/c1/items/i1")).await,
            None
        );
        assert!(
            found(&cache, key("acme", "/v2/collections/c1"))
                .await
                .is_some()
        );
        assert!(
            found(&cache, key("acme", "/v2/collections/c10/items"))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_answer_asked_for_before_a_write_is_not_kept() {
        let cache = ReadCache::new(1 << 20, Clock::default(), None);
        let Begun::Lead(leader) = cache.begin(key("acme", "/v2/collections/c1/items")).await else {
            panic!("expected to lead");
        };
        cache.invalidate("Webflow", "/v2/collections/c1").await;
        cache.finish(leader, Ok(b"old".to_vec()), Freshness::Live);
        assert_eq!(
            found(&cache, key("acme", "/v2/collections/c1/items")).await,
            None
        );
    }

    #[tokio::test]
    async fn a_waiter_whose_leader_gives_up_fetches_itself() {
        let cache = Arc::new(ReadCache::new(1 << 20, Clock::default(), None));
        let Begun::Lead(leader) = cache.begin(key("acme", "/v2/sites")).await else {
            panic!("expected to lead");
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                matches!(cache.begin(key("acme", "/v2/sites")).await, Begun::Lead(_))
            })
        };
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "the waiter waits for the leader");
        drop(leader);
        assert!(
            waiter.await.unwrap(),
            "the waiter leads once the leader is gone"
        );
        assert!(matches!(
            cache.begin(key("acme", "/v2/sites")).await,
            Begun::Lead(_)
        ));
    }

    #[tokio::test]
    async fn the_bound_is_in_bytes() {
        let cache = ReadCache::new(64 * 1024, Clock::default(), None);
        let body = "x".repeat(4096);
        for i in 0..100 {
            fill(&cache, key("acme", &format!("/v2/collections/c{i}")), &body).await;
        }
        assert!(cache.bytes() <= 64 * 1024, "{} bytes held", cache.bytes());
    }

    #[tokio::test]
    async fn observed_reports_the_oldest_answer_used() {
        let (_, none) = observed(async {}).await;
        assert_eq!(none, None);
        let (_, oldest) = observed(async {
            used(3);
            used(7);
            used(0);
        })
        .await;
        assert_eq!(oldest, Some(7));
    }
}
