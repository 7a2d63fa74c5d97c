//! The PostgreSQL engine of the key-value layer: what several shared-server replicas share.
//!
//! - **Tables** (migration 1): `kv (tree, key, value)` holds every record the sled backend keeps
//!   in its trees, byte for byte (JSON values, SHA-256 keys); `changes (seq, tree, key)` logs
//!   every write to a tree replicas hold in memory (tenants, static tokens, OAuth access
//!   tokens); `replicas` is the heartbeat each live replica writes; `audit` the audit records;
//!   `meta` fingerprints of the shared keys. Migrations are embedded and versioned in
//!   `studio_mcp_schema`, applied at start under an advisory lock; a schema newer than the
//!   binary is refused.
//! - **Blocking edge.** The store's interface is synchronous (sled's is), so every statement
//!   runs on this engine's own small runtime and the caller waits on a channel; a statement
//!   that does not answer in time is an `Unavailable` error, never a hang.
//! - **Change feed.** A write to a watched tree commits its `changes` row in the same
//!   transaction, under a transaction-scoped advisory lock so sequence numbers commit in order,
//!   and `NOTIFY`s. Each replica's follower (one connection: `LISTEN`, catch-up from the last
//!   applied sequence, heartbeat) applies changes to memory by re-reading the current value, so
//!   applying twice or late is harmless. The writer returns only once its own follower and every
//!   live replica have applied the change, or fails naming the replica that has not.
//! - **Lease.** A replica vouches for its in-memory tokens only while its last heartbeat is
//!   younger than the lease; the others stop waiting for it exactly then. A replica cut off from
//!   the database for longer refuses tokens rather than honour one revoked elsewhere.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::kv::{Entry, Write};

/// Trees every replica holds in memory: a write to one is logged, announced and acknowledged.
pub const WATCHED: [&str; 3] = ["tenants", "tokens", "oauth_access"];

const CHANNEL: &str = "studio_mcp_changes";
/// Serialises writers of the change log, so sequence numbers commit in order.
const CHANGE_LOCK: i64 = 0x5354_4d43_0001;
const MIGRATION_LOCK: i64 = 0x5354_4d43_0002;

/// Versioned schema, oldest first; never edit one that has shipped, add the next.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE kv (
        tree text NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (tree, key)
    );
    CREATE TABLE changes (
        seq bigserial PRIMARY KEY,
        tree text NOT NULL,
        key bytea NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE replicas (
        id text PRIMARY KEY,
        name text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        seen_at timestamptz NOT NULL DEFAULT now(),
        applied bigint NOT NULL DEFAULT 0
    );
    -- One row a tool call, written in batches: kept cheap to insert (the record as the JSON
    -- text the server wrote, `record::json->>'action'` to query it; a BRIN index on the time,
    -- which arrives in order, instead of B-trees: measured 0.9 µs a row against 8.9 µs as
    -- jsonb with a key and two B-trees). Queries are a time range, then a filter.
    CREATE TABLE audit (
        at_ms bigint NOT NULL,
        tenant text NOT NULL,
        record text NOT NULL
    );
    CREATE INDEX audit_at ON audit USING brin (at_ms);
    CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL);",
)];

/// How long the change log keeps a row; a replica away for longer reloads everything.
const CHANGES_KEPT_SECS: i64 = 3600;

/// How a replica takes part: its name in errors and `/healthz`, and its timings.
#[derive(Clone)]
pub struct PgOptions {
    pub replica_name: String,
    /// A replica is live while its last heartbeat is younger than this.
    pub lease: Duration,
    /// How long a write waits for every live replica to apply it.
    pub ack_timeout: Duration,
    /// How long one statement may take before the caller gets `Unavailable`.
    pub op_timeout: Duration,
    pub pool_size: usize,
    /// The password, when the URL carries none (read from a secret file).
    pub password: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            replica_name: default_replica_name(),
            lease: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(5),
            pool_size: 8,
            password: None,
        }
    }
}

fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!("{host}:{}", std::process::id())
}

/// Whoever holds in-memory copies of watched trees (the token index, the access-token index).
pub trait Follower: Send + Sync {
    /// The current value of one key (`None`: deleted).
    fn apply(&self, tree: &str, key: &[u8], value: Option<&[u8]>);
    /// Entries of `tree` as a reload reads them, in key order and in chunks: the first chunk
    /// (`first`) replaces what memory holds of the tree, the next ones add to it. `tenants`
    /// comes in one chunk.
    fn replace(&self, tree: &str, entries: &[Entry], first: bool);
}

#[derive(Clone)]
pub struct Pg {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// `host:port/db`, for messages: never the password.
    target: String,
    replica: String,
    options: PgOptions,
    /// Highest change sequence this replica has applied to memory; -1 before the first load.
    applied: AtomicI64,
    connected: AtomicBool,
    /// Set once the first load is done: from then on a lost feed means a lost database.
    following: AtomicBool,
    /// Until when this replica may vouch for its memory (see the lease above), in nanoseconds
    /// after `epoch`; 0 before the first heartbeat. An atomic: every request reads it.
    lease_until: AtomicU64,
    epoch: Instant,
    live_replicas: Arc<AtomicU32>,
    last_error: Mutex<Option<String>>,
    followers: RwLock<Vec<Arc<dyn Follower>>>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Ok(mut runtime) = self.runtime.lock()
            && let Some(runtime) = runtime.take()
        {
            // Dropping a runtime inside another one's task would panic; this never blocks.
            runtime.shutdown_background();
        }
    }
}

/// A named tree of the `kv` table.
#[derive(Clone)]
pub struct PgTree {
    pg: Pg,
    name: &'static str,
}

/// What one statement of a batch does.
enum Op {
    Put(Vec<u8>),
    Delete,
    Take,
    Swap(Option<Vec<u8>>, Option<Vec<u8>>),
}

enum Outcome {
    Done(bool),
    Taken(Option<Vec<u8>>),
}

/// An error and its causes, `: `-joined (a TLS failure's reason is two levels down).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            return match db.code().code() {
                "53100" => StoreError::Full,
                _ => StoreError::Io(format!("PostgreSQL: {}", db.message())),
            };
        }
        StoreError::Unavailable(format!("PostgreSQL: {}", with_causes(&e)))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(format!("PostgreSQL: {}", with_causes(&other))),
        }
    }
}

fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

/// rustls with the platform's roots (and `SSL_CERT_FILE`), used when the URL's `sslmode` asks
/// for TLS (`prefer`, libpq's default, falls back to plain text if the server offers none).
fn tls() -> MakeRustlsConnect {
    crate::upstream::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    MakeRustlsConnect::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Pg {
    /// Connects, applies migrations, and returns the engine; nothing is followed yet
    /// ([`Self::follow`]).
    pub fn connect(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "STUDIO_MCP_STORE is not a PostgreSQL URL this server understands: {e}"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        config.application_name("studio-mcp");
        if let Some(password) = &options.password
            && config.get_password().is_none()
        {
            config.password(password.as_bytes());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let tls = tls();
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.op_timeout))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(3)))
            .build()
            .map_err(|e| StoreError::Io(format!("cannot build the PostgreSQL pool: {e}")))?;
        let pg = Pg {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Mutex::new(Some(runtime)),
                pool,
                target: target_of(&config),
                config,
                tls,
                replica: super::ids::new_id("r_"),
                options,
                applied: AtomicI64::new(-1),
                connected: AtomicBool::new(false),
                following: AtomicBool::new(false),
                lease_until: AtomicU64::new(0),
                epoch: Instant::now(),
                live_replicas: Arc::new(AtomicU32::new(1)),
                last_error: Mutex::new(None),
                followers: RwLock::new(Vec::new()),
                stop: CancellationToken::new(),
            }),
        };
        let pool = pg.inner.pool.clone();
        let target = pg.inner.target.clone();
        pg.block(async move {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot reach PostgreSQL at {target}: {}",
                    with_causes(&e)
                ))
            })?;
            migrate(&mut client).await
        })?;
        Ok(pg)
    }

    /// `host:port/db` (never credentials).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    pub fn replica_name(&self) -> &str {
        &self.inner.options.replica_name
    }

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

    pub fn tree(&self, name: &'static str) -> PgTree {
        PgTree {
            pg: self.clone(),
            name,
        }
    }

    /// Runs `work` on the engine's runtime and waits for it, at most the op timeout (plus the
    /// acknowledgement wait a watched write may add). Once the replica follows the feed, a
    /// database its feed cannot reach fails the call at once rather than after a timeout.
    /// Called from a multi-threaded runtime's worker, the wait hands the worker's other tasks
    /// over first (`block_in_place`), so requests served from memory never queue behind it.
    pub fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.inner.following.load(Ordering::Acquire) && !self.connected() {
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL at {} is unreachable ({}); nothing was written",
                self.inner.target,
                self.last_error()
                    .unwrap_or_else(|| "the change feed is reconnecting".into())
            )));
        }
        let limit = self.inner.options.op_timeout + self.inner.options.ack_timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let target = self.inner.target.clone();
        self.inner.handle.spawn(async move {
            let answer = match tokio::time::timeout(limit, work).await {
                Ok(answer) => answer,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {target} did not answer within {} s",
                    limit.as_secs()
                ))),
            };
            let _ = tx.send(answer);
        });
        let wait = move || {
            rx.recv_timeout(limit + Duration::from_secs(1))
                .map_err(|_| StoreError::Unavailable("the PostgreSQL runtime stopped".into()))?
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
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

    /// Every write, or none, in one transaction.
    pub fn batch(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        let mut ops = Vec::with_capacity(writes.len());
        for write in writes {
            let super::kv::Tree::Pg(tree) = write.tree else {
                return Err(StoreError::Io("one batch cannot span two engines".into()));
            };
            let op = match &write.value {
                Some(v) => Op::Put(v.clone()),
                None => Op::Delete,
            };
            ops.push((tree.name, write.key.clone(), op));
        }
        self.run(ops).map(|_| ())
    }

    /// Runs `ops`: one statement alone, several in one transaction; a write to a watched tree
    /// also logs and announces the change, then waits for every live replica to apply it.
    fn run(&self, ops: Vec<(&'static str, Vec<u8>, Op)>) -> Result<Vec<Outcome>, StoreError> {
        let watched = ops.iter().any(|(tree, _, _)| WATCHED.contains(tree));
        let inner = self.inner.clone();
        self.block(async move {
            let mut client = inner.pool.get().await?;
            if !watched && ops.len() <= 1 {
                let mut out = Vec::with_capacity(ops.len());
                for (tree, key, op) in &ops {
                    out.push(execute(&**client, tree, key, op).await?);
                }
                return Ok(out);
            }
            let tx = client.transaction().await?;
            if watched {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOCK])
                    .await?;
            }
            let mut out = Vec::with_capacity(ops.len());
            let mut seq = None;
            for (tree, key, op) in &ops {
                let outcome = execute(&*tx, tree, key, op).await?;
                let changed = match &outcome {
                    Outcome::Done(changed) => *changed,
                    Outcome::Taken(value) => value.is_some(),
                };
                if changed && WATCHED.contains(tree) {
                    let row = tx
                        .query_one(
                            "INSERT INTO changes (tree, key) VALUES ($1, $2) RETURNING seq",
                            &[tree, key],
                        )
                        .await?;
                    seq = Some(row.try_get::<_, i64>(0)?);
                }
                out.push(outcome);
            }
            if seq.is_some() {
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
            }
            tx.commit().await?;
            drop(client);
            if let Some(seq) = seq {
                settle(&inner, seq).await?;
            }
            Ok(out)
        })
    }

    /// Audit records, in one statement.
    /// Audit rows (time, tenant, record), in one statement. Shared, not copied: the writer
    /// keeps its batch for a retry until this has succeeded.
    pub fn insert_audit(&self, rows: Arc<Vec<AuditRow>>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let client = inner.pool.get().await?;
            insert_audit_rows(&**client, &rows).await
        })
    }

    /// Audit records (JSON text), newest first.
    pub fn query_audit(
        &self,
        tenant: Option<String>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let client = inner.pool.get().await?;
            let rows = client
                .query(
                    "SELECT record FROM audit
                     WHERE at_ms >= $1 AND ($2::text IS NULL OR tenant = $2)
                     ORDER BY at_ms DESC LIMIT $3",
                    &[&since_ms, &tenant, &limit],
                )
                .await?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(StoreError::from))
                .collect()
        })
    }

    /// Deletes audit records older than `before_ms`; how many.
    pub fn prune_audit(&self, before_ms: i64) -> Result<usize, StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let client = inner.pool.get().await?;
            let n = client
                .execute("DELETE FROM audit WHERE at_ms < $1", &[&before_ms])
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Records the shared keys' fingerprints on first use; refuses a replica whose keys differ
    /// from the ones the others use (tokens would not verify, secrets would not open).
    pub fn check_fingerprint(
        &self,
        name: &'static str,
        fingerprint: String,
    ) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let client = inner.pool.get().await?;
            client
                .execute(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &fingerprint],
                )
                .await?;
            let row = client
                .query_one("SELECT value FROM meta WHERE name = $1", &[&name])
                .await?;
            let stored: String = row.try_get(0)?;
            if stored == fingerprint {
                Ok(())
            } else {
                Err(StoreError::Schema(format!(
                    "this replica's {name} (fingerprint {fingerprint}) differs from the one the \
                     database was first used with ({stored}); give every replica the same key files"
                )))
            }
        })
    }

    /// Copies a whole store into an empty database, in one transaction: every tree, then the
    /// audit records; counts are verified before commit. Refused if the database holds records.
    pub fn import(
        &self,
        trees: Vec<(String, Vec<Entry>)>,
        audit: Vec<AuditRow>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let held: i64 = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM kv) + (SELECT count(*) FROM audit)",
                    &[],
                )
                .await?
                .try_get(0)?;
            if held > 0 {
                return Err(StoreError::Schema(format!(
                    "the database at {} already holds {held} records; migrate into an empty one",
                    inner.target
                )));
            }
            let mut expected = Vec::new();
            for (tree, entries) in &trees {
                for chunk in entries.chunks(5_000) {
                    let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) = chunk
                        .iter()
                        .map(|(k, v)| (k.as_slice(), v.as_slice()))
                        .unzip();
                    tx.execute(
                        "INSERT INTO kv (tree, key, value)
                         SELECT $1, k, v FROM UNNEST($2::bytea[], $3::bytea[]) AS x(k, v)",
                        &[tree, &keys, &values],
                    )
                    .await?;
                }
                expected.push((tree.clone(), entries.len() as i64));
            }
            for chunk in audit.chunks(5_000) {
                insert_audit_rows(&*tx, chunk).await?;
            }
            expected.push(("audit".into(), audit.len() as i64));
            let mut found = Vec::new();
            for (tree, want) in &expected {
                let got: i64 = if tree == "audit" {
                    tx.query_one("SELECT count(*) FROM audit", &[])
                        .await?
                        .try_get(0)?
                } else {
                    tx.query_one("SELECT count(*) FROM kv WHERE tree = $1", &[tree])
                        .await?
                        .try_get(0)?
                };
                if got != *want {
                    return Err(StoreError::Corrupt(format!(
                        "{tree}: copied {want} records but the database counts {got}; nothing \
                         was committed"
                    )));
                }
                found.push((tree.clone(), got));
            }
            tx.commit().await?;
            Ok(found)
        })
    }

    /// Leaves the heartbeat table (a clean shutdown: nobody waits for this replica).
    pub fn leave(&self) {
        let inner = self.inner.clone();
        let _ = self.block(async move {
            let client = inner.pool.get().await?;
            client
                .execute("DELETE FROM replicas WHERE id = $1", &[&inner.replica])
                .await?;
            Ok(())
        });
        self.inner.stop.cancel();
    }
}

/// An audit record as a row: its time (ms), its tenant, the record's JSON text.
pub type AuditRow = (i64, String, String);

async fn insert_audit_rows(
    client: &impl tokio_postgres::GenericClient,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    let at: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let tenants: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let records: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    client
        .execute(
            "INSERT INTO audit (at_ms, tenant, record)
             SELECT a, t, r FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS x(a, t, r)",
            &[&at, &tenants, &records],
        )
        .await?;
    Ok(())
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS studio_mcp_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM studio_mcp_schema",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Schema(format!(
            "the database schema is version {current}, newer than this binary knows ({known}); \
             run the newer binary, or restore a database of version {known}"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO studio_mcp_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}

async fn execute(
    client: &impl tokio_postgres::GenericClient,
    tree: &str,
    key: &[u8],
    op: &Op,
) -> Result<Outcome, StoreError> {
    Ok(match op {
        Op::Put(value) => {
            client
                .execute(
                    "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&tree, &key, value],
                )
                .await?;
            Outcome::Done(true)
        }
        Op::Delete => Outcome::Done(
            client
                .execute(
                    "DELETE FROM kv WHERE tree = $1 AND key = $2",
                    &[&tree, &key],
                )
                .await?
                > 0,
        ),
        Op::Take => Outcome::Taken(
            client
                .query_opt(
                    "DELETE FROM kv WHERE tree = $1 AND key = $2 RETURNING value",
                    &[&tree, &key],
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        ),
        Op::Swap(None, Some(new)) => Outcome::Done(
            client
                .execute(
                    "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&tree, &key, new],
                )
                .await?
                == 1,
        ),
        Op::Swap(Some(old), Some(new)) => Outcome::Done(
            client
                .execute(
                    "UPDATE kv SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3",
                    &[&tree, &key, old, new],
                )
                .await?
                == 1,
        ),
        Op::Swap(Some(old), None) => Outcome::Done(
            client
                .execute(
                    "DELETE FROM kv WHERE tree = $1 AND key = $2 AND value = $3",
                    &[&tree, &key, old],
                )
                .await?
                == 1,
        ),
        Op::Swap(None, None) => Outcome::Done(
            client
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM kv WHERE tree = $1 AND key = $2)",
                    &[&tree, &key],
                )
                .await?
                .try_get::<_, bool>(0)?,
        ),
    })
}

/// Waits until this replica and every other live one have applied change `seq`; the error
/// names the first that has not within the acknowledgement timeout.
async fn settle(inner: &Arc<Inner>, seq: i64) -> Result<(), StoreError> {
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

impl PgTree {
    fn one(&self, key: &[u8], op: Op) -> Result<Outcome, StoreError> {
        self.pg
            .run(vec![(self.name, key.to_vec(), op)])?
            .pop()
            .ok_or_else(|| StoreError::Io("PostgreSQL returned no outcome".into()))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.pg.inner.clone();
        let (tree, key) = (self.name, key.to_vec());
        self.pg.block(async move {
            let client = inner.pool.get().await?;
            Ok(client
                .query_opt(
                    "SELECT value FROM kv WHERE tree = $1 AND key = $2",
                    &[&tree, &key],
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?)
        })
    }

    pub fn write(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let op = match value {
            Some(v) => Op::Put(v.to_vec()),
            None => Op::Delete,
        };
        self.one(key, op).map(|_| ())
    }

    pub fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.one(key, Op::Take)? {
            Outcome::Taken(value) => Ok(value),
            Outcome::Done(_) => Ok(None),
        }
    }

    pub fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let op = Op::Swap(old.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        match self.one(key, op)? {
            Outcome::Done(swapped) => Ok(swapped),
            Outcome::Taken(_) => Ok(false),
        }
    }

    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let inner = self.pg.inner.clone();
        let (tree, prefix) = (self.name, prefix.to_vec());
        self.pg.block(async move {
            let client = inner.pool.get().await?;
            let rows = client
                .query(
                    "SELECT key, value FROM kv
                     WHERE tree = $1 AND substring(key FROM 1 FOR length($2::bytea)) = $2::bytea
                     ORDER BY key",
                    &[&tree, &prefix],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }
}
