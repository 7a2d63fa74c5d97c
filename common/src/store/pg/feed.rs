//! The change feed that keeps every replica's memory in step, and the lease that says how long
//! a replica may act on what it holds.
//!
//! - **Change feed.** A write to a watched tree commits its `changes` row in the same
//!   transaction, under a transaction-scoped advisory lock so sequence numbers commit in order,
//!   and `NOTIFY`s. Each replica's follower (one connection: `LISTEN`, catch-up from the last
//!   applied sequence, heartbeat) applies changes to memory by re-reading the current value, so
//!   applying twice or late is harmless. The writer returns only once its own follower and every
//!   live replica have applied the change, or fails naming the replica that has not.
//! - **Lease.** A replica vouches for its in-memory tokens only while its last heartbeat is
//!   younger than the lease; the others stop waiting for it exactly then. A replica cut off from
//!   the database for longer refuses tokens rather than honour one revoked elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::AsyncMessage;

use super::{Inner, Pg, Statement};
use crate::store::{Entry, StoreError};

/// Trees every replica holds in memory (or, `upstream_writes`, acts on: notices for the read
/// caches): a write to one is logged, announced and acknowledged.
pub const WATCHED: [&str; 4] = ["tenants", "tokens", "oauth_access", "upstream_writes"];

pub(super) const CHANNEL: &str = "studio_mcp_changes";
/// Serialises writers of the change log, so sequence numbers commit in order.
pub(super) const CHANGE_LOCK: i64 = 0x5354_4d43_0001;

/// How long the change log keeps a row; a replica away for longer reloads everything.
const CHANGES_KEPT_SECS: i64 = 3600;

/// Whoever holds in-memory copies of watched trees (the token index, the access-token index).
pub trait Follower: Send + Sync {
    /// The current value of one key (`None`: deleted).
    fn apply(&self, tree: &str, key: &[u8], value: Option<&[u8]>);
    /// Entries of `tree` as a reload reads them, in key order and in chunks: the first chunk
    /// (`first`) replaces what memory holds of the tree, the next ones add to it. `tenants`
    /// comes in one chunk.
    fn replace(&self, tree: &str, entries: &[Entry], first: bool);
}

impl Pg {
    /// How many replicas heartbeat now (this one included); rate limits divide by it.
    pub fn live_replicas(&self) -> Arc<AtomicU32> {
        self.inner.live_replicas.clone()
    }

    /// Whether the follower's connection is up.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// `Unavailable` once this replica's lease has ended: cut off from the change feed for
    /// longer, it may have missed a revocation, so no token may be honoured from its memory.
    pub fn vouch(&self) -> Result<(), StoreError> {
        if self.vouches() {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "replica {} has not reached PostgreSQL for longer than its lease and cannot vouch \
             that a token is still valid",
            self.replica_name()
        )))
    }

    /// Whether this replica's memory is current enough to act on: its lease is unexpired.
    pub fn vouches(&self) -> bool {
        let now = self.inner.epoch.elapsed().as_nanos();
        now < u128::from(self.inner.lease_until.load(Ordering::Acquire))
    }

    /// Registers an in-memory copy to keep in step (before [`Self::follow`]).
    pub fn add_follower(&self, follower: Arc<dyn Follower>) {
        if let Ok(mut followers) = self.inner.followers.write() {
            followers.push(follower);
        }
    }

    /// Loads every watched tree into the followers, then keeps them in step in the background:
    /// returns once memory is loaded and this replica has joined the heartbeat table.
    pub fn follow(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        self.inner.handle.spawn(follow(inner, ready_tx));
        ready_rx
            .recv_timeout(self.inner.options.op_timeout * 6)
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "PostgreSQL at {}: the change feed did not start",
                    self.inner.target
                ))
            })?
    }

    /// Leaves the heartbeat table (a clean shutdown: nobody waits for this replica).
    pub fn leave(&self) {
        let inner = self.inner.clone();
        let _ = self.block(Statement::new("DELETE", "replicas", ""), async move {
            let client = inner.pool.get().await?;
            client
                .execute("DELETE FROM replicas WHERE id = $1", &[&inner.replica])
                .await?;
            Ok(())
        });
        self.inner.stop.cancel();
    }
}

/// Waits until this replica and every other live one have applied change `seq`; the error
/// names the first that has not within the acknowledgement timeout.
pub(super) async fn settle(inner: &Arc<Inner>, seq: i64) -> Result<(), StoreError> {
    let deadline = Instant::now() + inner.options.ack_timeout;
    let mut pause = Duration::from_micros(500);
    while inner.applied.load(Ordering::Acquire) < seq {
        if Instant::now() >= deadline {
            return Err(StoreError::Lagging(format!(
                "this replica ({}) has not applied its own change {seq} within {} s: its \
                 connection to PostgreSQL is down",
                inner.options.replica_name,
                inner.options.ack_timeout.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    let lease = inner.options.lease.as_secs_f64();
    let mut pause = Duration::from_micros(500);
    loop {
        let client = inner.pool.get().await?;
        let lagging = client
            .query_opt(
                "SELECT name, applied FROM replicas
                 WHERE id <> $1 AND applied < $2
                   AND seen_at > now() - make_interval(secs => $3)
                 ORDER BY name LIMIT 1",
                &[&inner.replica, &seq, &lease],
            )
            .await?;
        drop(client);
        let Some(row) = lagging else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            let name: String = row.try_get(0)?;
            return Err(StoreError::Lagging(format!(
                "replica {name} has not applied change {seq} within {} s; the change is stored, \
                 but {name} may still act on what it replaced until it catches up or its {} s \
                 lease ends",
                inner.options.ack_timeout.as_secs(),
                inner.options.lease.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn followers(inner: &Inner) -> Vec<Arc<dyn Follower>> {
    inner
        .followers
        .read()
        .map(|f| f.clone())
        .unwrap_or_default()
}

/// The follower: connect, listen, catch up, heartbeat; on any failure mark the replica
/// disconnected and start over with a growing pause. `ready` hears the first load's outcome.
async fn follow(inner: Arc<Inner>, ready: std::sync::mpsc::SyncSender<Result<(), StoreError>>) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = follow_once(&inner, &mut ready).await;
        inner.connected.store(false, Ordering::Release);
        match outcome {
            Ok(()) => return,
            Err(e) => {
                let message = e.to_string();
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(error = %message, "lost the PostgreSQL change feed; reconnecting");
                if let Ok(mut last) = inner.last_error.lock() {
                    *last = Some(message);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = inner.stop.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

async fn follow_once(
    inner: &Arc<Inner>,
    ready: &mut Option<std::sync::mpsc::SyncSender<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    let (client, mut connection) = inner.config.connect(inner.tls.clone()).await?;
    let (notify_tx, mut notify_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = notify_tx.send(());
                }
                Ok(_) => {}
                Err(e) => return StoreError::from(e),
            }
        }
        StoreError::Unavailable("PostgreSQL closed the change-feed connection".into())
    });
    // Listening before catching up: a change committed in between is both read and announced.
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    catch_up(inner, &client, true).await?;
    heartbeat(inner, &client).await?;
    inner.connected.store(true, Ordering::Release);
    inner.following.store(true, Ordering::Release);
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    } else {
        tracing::info!("PostgreSQL change feed restored");
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            Some(()) = notify_rx.recv() => {
                while notify_rx.try_recv().is_ok() {}
                catch_up(inner, &client, false).await?;
                client
                    .execute(
                        "UPDATE replicas SET applied = $2 WHERE id = $1",
                        &[&inner.replica, &inner.applied.load(Ordering::Acquire)],
                    )
                    .await?;
            }
            _ = ticks.tick() => {
                heartbeat(inner, &client).await?;
                beats += 1;
                if beats.is_multiple_of(60) {
                    client
                        .execute(
                            "DELETE FROM changes WHERE at < now() - make_interval(secs => $1)
                               AND seq < (SELECT max(seq) FROM changes)",
                            &[&(CHANGES_KEPT_SECS as f64)],
                        )
                        .await?;
                }
            }
            e = &mut driver => {
                return Err(e.unwrap_or_else(|e| StoreError::Io(e.to_string())));
            }
            () = inner.stop.cancelled() => {
                driver.abort();
                return Ok(());
            }
        }
    }
}

/// Applies every change after the last applied one. On (re)connecting (`connecting`), it
/// reloads every watched tree instead when the log no longer reaches back that far, or on the
/// first load; a connected follower is never an hour behind, so the check is not repeated.
async fn catch_up(
    inner: &Inner,
    client: &tokio_postgres::Client,
    connecting: bool,
) -> Result<(), StoreError> {
    let applied = inner.applied.load(Ordering::Acquire);
    if applied < 0 {
        return reload(inner, client).await;
    }
    if connecting {
        let oldest: Option<i64> = client
            .query_one("SELECT min(seq) FROM changes", &[])
            .await?
            .try_get(0)?;
        if oldest.is_some_and(|oldest| oldest > applied + 1) {
            return reload(inner, client).await;
        }
    }
    let mut from = applied;
    loop {
        let rows = client
            .query(
                "SELECT c.seq, c.tree, c.key, kv.value FROM changes c
                 LEFT JOIN kv ON kv.tree = c.tree AND kv.key = c.key
                 WHERE c.seq > $1 ORDER BY c.seq LIMIT 10000",
                &[&from],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let followers = followers(inner);
        for row in &rows {
            let tree: &str = row.try_get(1)?;
            let key: &[u8] = row.try_get(2)?;
            let value: Option<&[u8]> = row.try_get(3)?;
            for follower in &followers {
                follower.apply(tree, key, value);
            }
            from = row.try_get(0)?;
        }
        inner.applied.store(from, Ordering::Release);
        if rows.len() < 10_000 {
            break;
        }
    }
    Ok(())
}

async fn reload(inner: &Inner, client: &tokio_postgres::Client) -> Result<(), StoreError> {
    // The sequence first: a change committed while the trees are read is applied again after.
    let upto: i64 = client
        .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])
        .await?
        .try_get(0)?;
    let followers = followers(inner);
    for tree in WATCHED {
        // One query, its rows streamed and handed over in chunks, so 100,000 tokens never
        // sit in memory twice at once. `tenants` comes in one chunk.
        let chunk = if tree == "tenants" {
            usize::MAX
        } else {
            10_000
        };
        let rows = client
            .query_raw("SELECT key, value FROM kv WHERE tree = $1", [tree])
            .await?;
        futures::pin_mut!(rows);
        let mut entries: Vec<Entry> = Vec::new();
        let mut first = true;
        loop {
            let row = rows.next().await.transpose()?;
            let done = row.is_none();
            if let Some(row) = row {
                entries.push((row.try_get(0)?, row.try_get(1)?));
            }
            if done || entries.len() >= chunk {
                for follower in &followers {
                    follower.replace(tree, &entries, first);
                }
                first = false;
                entries.clear();
            }
            if done {
                break;
            }
        }
    }
    inner.applied.store(upto, Ordering::Release);
    Ok(())
}

/// Writes this replica's heartbeat and renews its lease — but only once it has applied every
/// change up to the log's newest. After any gap longer than the lease (a pause, a stalled
/// runtime, a lost connection) the tick can come before the queued notifications; renewing
/// then would let this replica honour a token whose revocation another one has already reported
/// done. So a replica behind the log catches up first, and vouches again only for what it has
/// applied.
///
/// The newest sequence is read in a statement of its own, *after* the heartbeat has committed:
/// read in the same statement, its snapshot would predate the heartbeat's commit, and a
/// revocation committing in between would be missed here while its writer, not yet seeing this
/// heartbeat, stopped waiting for this replica. Read after, any change it misses commits after
/// the heartbeat, and its writer waits for this replica to apply it.
async fn heartbeat(inner: &Inner, client: &tokio_postgres::Client) -> Result<(), StoreError> {
    let lease = inner.options.lease.as_secs_f64();
    for _ in 0..3 {
        // The lease runs from before the heartbeat: an answer that waited (a pause) buys
        // nothing past what was true when it was asked.
        let sent = Instant::now();
        let applied = inner.applied.load(Ordering::Acquire);
        let row = client
            .query_one(
                "WITH me AS (
                    INSERT INTO replicas (id, name, applied) VALUES ($1, $2, $3)
                    ON CONFLICT (id) DO UPDATE SET seen_at = now(), applied = EXCLUDED.applied
                    RETURNING id
                )
                SELECT count(*) + 1 FROM replicas
                WHERE seen_at > now() - make_interval(secs => $4) AND id <> $1",
                &[
                    &inner.replica,
                    &inner.options.replica_name,
                    &applied,
                    &lease,
                ],
            )
            .await?;
        let live: i64 = row.try_get(0)?;
        inner
            .live_replicas
            .store(u32::try_from(live).unwrap_or(1).max(1), Ordering::Relaxed);
        let newest: i64 = client
            .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])
            .await?
            .try_get(0)?;
        if applied >= newest {
            let until = (sent + inner.options.lease).duration_since(inner.epoch);
            inner.lease_until.store(
                u64::try_from(until.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Release,
            );
            return Ok(());
        }
        catch_up(inner, client, false).await?;
    }
    // Still behind after catching up three times (a flood of changes): the lease is not renewed
    // on this tick; the next one tries again.
    Ok(())
}
