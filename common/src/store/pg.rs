//! The PostgreSQL engine of the key-value layer: what several shared-server replicas share.
//! Here: connecting (a deadpool pool on the engine's own runtime, rustls when the URL asks for
//! TLS), the statements behind a [`PgTree`] and an atomic batch, and the audit table's. The
//! schema, its migrations and `store migrate`'s import are in `pg/schema.rs`; the change feed,
//! the heartbeat and the lease in `pg/feed.rs`.
//!
//! - **Tables.** `kv (tree, key, value)` holds every record the sled backend keeps in its
//!   trees, byte for byte (JSON values, SHA-256 keys); `audit` the audit records; the others
//!   serve the change feed and the shared keys' check (`pg/schema.rs` lists them all).
//! - **Blocking edge.** The store's interface is synchronous (sled's is), so every statement
//!   runs on this engine's own small runtime and the caller waits on a channel; a statement
//!   that does not answer in time is an `Unavailable` error, never a hang.
//! - **Watched writes.** A write to a tree every replica holds in memory ([`WATCHED`]) logs
//!   its change in the same transaction and returns only once every live replica has applied
//!   it (`pg/feed.rs`).

mod feed;
mod schema;
mod statement;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::feed::{CHANGE_LOCK, CHANNEL, settle};
pub use self::feed::{Follower, WATCHED};
pub use self::statement::Statement;
use super::{EngineWrite, Entry, StoreError};

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

/// This process as one of the replicas sharing the database, as the runtime sees it: its health
/// for `/healthz`, the number of live replicas rate limits divide by, the shared keys' check at
/// start, and leaving the heartbeat table at shutdown. Nothing of the engine's reads or writes.
#[derive(Clone, Copy)]
pub struct Replica<'a>(&'a Pg);

impl<'a> Replica<'a> {
    pub(super) fn new(pg: &'a Pg) -> Self {
        Self(pg)
    }

    pub fn replica_name(&self) -> &'a str {
        self.0.replica_name()
    }

    /// `host:port/db` (never credentials).
    pub fn target(&self) -> &'a str {
        self.0.target()
    }

    /// Whether the change feed's connection is up.
    pub fn connected(&self) -> bool {
        self.0.connected()
    }

    /// Why the change feed last lost the database, if it has.
    pub fn last_error(&self) -> Option<String> {
        self.0.last_error()
    }

    /// Whether this replica's lease holds, so that it may act on what it holds in memory.
    pub fn vouches(&self) -> bool {
        self.0.vouches()
    }

    /// How many replicas heartbeat now (this one included); rate limits divide by it.
    pub fn live_replicas(&self) -> Arc<AtomicU32> {
        self.0.live_replicas()
    }

    /// Records a shared key's fingerprint on first use; refuses this replica if its key
    /// differs from the one the others use.
    pub fn check_fingerprint(
        &self,
        name: &'static str,
        fingerprint: String,
    ) -> Result<(), StoreError> {
        self.0.check_fingerprint(name, fingerprint)
    }

    /// Leaves the heartbeat table (a clean shutdown: nobody waits for this replica).
    pub fn leave(&self) {
        self.0.leave();
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
        pg.block(Statement::new("CONNECT", "", ""), async move {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot reach PostgreSQL at {target}: {}",
                    with_causes(&e)
                ))
            })?;
            schema::migrate(&mut client).await
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
    ///
    /// `statement` names the work in traces: its operation and table (`SELECT`, `kv`) and the
    /// tree, if one. Its span is the caller's child, carried to the engine's runtime explicitly.
    pub fn block<T: Send + 'static>(
        &self,
        statement: Statement,
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
        let span = statement.span();
        self.inner.handle.spawn(async move {
            let answer = match tokio::time::timeout(limit, work.instrument(span.clone())).await {
                Ok(answer) => answer,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {target} did not answer within {} s",
                    limit.as_secs()
                ))),
            };
            if let Err(e) = &answer {
                statement::failed(&span, e);
            }
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

    /// Every write (a value `None` deletes its key), or none, in one transaction.
    pub fn batch(&self, writes: &[EngineWrite<'_, PgTree>]) -> Result<(), StoreError> {
        let ops = writes
            .iter()
            .map(|(tree, key, value)| {
                let op = match value {
                    Some(v) => Op::Put(v.to_vec()),
                    None => Op::Delete,
                };
                (tree.name, key.to_vec(), op)
            })
            .collect();
        self.run(ops).map(|_| ())
    }

    /// Runs `ops`: one statement alone, several in one transaction; a write to a watched tree
    /// also logs and announces the change, then waits for every live replica to apply it.
    fn run(&self, ops: Vec<(&'static str, Vec<u8>, Op)>) -> Result<Vec<Outcome>, StoreError> {
        let watched = ops.iter().any(|(tree, _, _)| WATCHED.contains(tree));
        let inner = self.inner.clone();
        let statement = match ops.as_slice() {
            [(tree, _, op)] => Statement::new(
                match op {
                    Op::Put(_) => "INSERT",
                    Op::Delete | Op::Take => "DELETE",
                    Op::Swap(..) => "UPDATE",
                },
                "kv",
                tree,
            ),
            _ => Statement::new("BATCH", "kv", ""),
        };
        self.block(statement, async move {
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

    /// Audit rows (time, tenant, record), in one statement. Shared, not copied: the writer
    /// keeps its batch for a retry until this has succeeded.
    pub fn insert_audit(&self, rows: Arc<Vec<AuditRow>>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.block(Statement::new("INSERT", "audit", ""), async move {
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
        self.block(Statement::new("SELECT", "audit", ""), async move {
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
        self.block(Statement::new("DELETE", "audit", ""), async move {
            let client = inner.pool.get().await?;
            let n = client
                .execute("DELETE FROM audit WHERE at_ms < $1", &[&before_ms])
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
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
        self.pg
            .block(Statement::new("SELECT", "kv", tree), async move {
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
        self.pg
            .block(Statement::new("SELECT", "kv", tree), async move {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_host_port_and_database_and_never_the_password() {
        let config: tokio_postgres::Config =
            "postgres://studio:s3cret-pw@db.internal:6543/studio_mcp?sslmode=require"
                .parse()
                .unwrap();
        let target = target_of(&config);
        assert_eq!(target, "db.internal:6543/studio_mcp");
        assert!(!target.contains("s3cret"));
        let bare: tokio_postgres::Config = "host=/run/postgresql user=x".parse().unwrap();
        assert_eq!(target_of(&bare), "/run/postgresql:5432/postgres");
    }

    #[test]
    fn an_error_says_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let tls = E("invalid peer certificate: UnknownIssuer", None);
        let io = E("error performing TLS handshake", Some(Box::new(tls)));
        let top = E("error performing TLS handshake", Some(Box::new(io)));
        assert_eq!(
            with_causes(&top),
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn a_database_that_cannot_be_reached_is_unavailable_not_a_hang() {
        // Port 1 on loopback refuses at once; the error names the target, not the password.
        let options = PgOptions {
            op_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        };
        let refused = Pg::connect("postgres://u:pw-never-shown@127.0.0.1:1/db", options);
        match refused {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.contains("PostgreSQL"), "{why}");
                assert!(!why.contains("pw-never-shown"), "{why}");
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("connected to port 1"),
        }
    }
}
