//! The store: the one interface every tool, the auth edge and the admin API reach persistent
//! state through. Its records (`records.rs`, which defines [`Store`]; `people.rs`,
//! `approvals.rs`; ids and digests from `ids.rs`) are written once over a key-value layer
//! (`kv.rs`) with two engines: sled (`sled.rs`), embedded, one process (the default, and always
//! the isolated server's); PostgreSQL (`pg.rs`), shared by several shared-server replicas, each
//! keeping the request path in memory and in step through a change feed (`pg/feed.rs`). The
//! audit log (`audit.rs`) writes day files or the database's table.
//!
//! This file holds the words every layer shares (`StoreError`, `Entry`, the token records) and
//! the one part of the interface that names an engine: [`Store::open_pg`], [`Store::replica`]
//! and [`migrate_to_postgres`]. The records never name one; they reach it through `kv.rs`.
//!
//! # Contract every backend keeps
//! - **Durable before answering.** A write returns only once it survives a crash (tenant and
//!   token writes, revocations, secrets, removals); the admin API answers after the write.
//! - **Atomic where it matters.** `add_tenant` creates or fails with `TenantExists`, never
//!   overwrites; `insert_token` stores the record and its id index together; an approval
//!   moves forward by compare-and-swap, so it is decided once and claimed (run) at most once;
//!   `remove_tenant` revokes every token before it deletes anything, so a crash part-way leaves
//!   tokens refused.
//! - **Revocation is never undone.** A revoked token stays refused, across restarts, whatever
//!   tenant is later created under the same id.
//! - **In memory, kept in step.** Tenants and the token index (token digest → tenant, revoked)
//!   are held in memory and updated by every write, so the request path (`token_tenant`,
//!   `tenant`) never waits on I/O. With PostgreSQL every replica learns every write through the
//!   change feed, and a write that replicas hold in memory (tenants, tokens, access tokens:
//!   issue, revocation, removal, policy) returns only once every live replica has applied it,
//!   or fails naming the one that has not (`StoreError::Lagging`).
//! - **Secrets stay sealed.** Upstream credentials are stored and returned only as AEAD blobs
//!   (`secrets.rs` seals and opens them); tokens only as SHA-256 digests.
//! - **Audit is append-only** and pruned only by retention (`audit.rs`).
//! - **People and OAuth** (`people.rs`): invites, sessions, consent tickets, codes, access and
//!   refresh tokens are stored only as SHA-256 digests; an invite, a consent ticket and a code
//!   are taken exactly once among concurrent callers; a passkey ceremony travels sealed in the
//!   browser and is recorded only when it completes, once (compare-and-swap), so an anonymous
//!   caller starting ceremonies grows nothing; a refresh token rotates by compare-and-swap,
//!   and a rotated-out one presented again revokes its grant; revoking a grant or removing a
//!   person or tenant drops their access tokens from the in-memory index before it returns.

pub mod approvals;
pub mod audit;
pub mod backup;
mod ids;
pub mod kv;
pub mod people;
pub mod pg;
mod records;
mod sled;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::TenantId;
use crate::tenant::Tenant;
use crate::tenant_state::TenantLive;

pub use self::pg::{Pg, PgOptions, Replica};
pub use self::records::{STORE_FORMAT, Store};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "the store at {0} is locked by another process (is a server already running on this data dir?)"
    )]
    Locked(String),
    #[error("the store is out of disk space")]
    Full,
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("tenant `{0}` already exists")]
    TenantExists(TenantId),
    #[error("no tenant `{0}`")]
    NoTenant(String),
    #[error("no token with id `{0}`")]
    NoToken(String),
    /// The database cannot be reached or did not answer in time.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A change is stored but a live replica has not applied it in time.
    #[error("{0}")]
    Lagging(String),
    /// The database cannot be used as it is (schema, keys, contents).
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    /// A label for the error's kind (metrics, traces), without what its text names.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Lagging(_) => "lagging",
            StoreError::Full => "full",
            StoreError::Locked(_) => "locked",
            StoreError::Io(_) => "io",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Schema(_) => "schema",
            StoreError::TenantExists(_) | StoreError::NoTenant(_) | StoreError::NoToken(_) => {
                "not_found"
            }
        }
    }
}

/// A key and its value, as a scan returns them: the shape every engine hands the records.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch as an engine takes it: one of its trees `T`, the key, and the
/// value (`None` deletes the key).
pub type EngineWrite<'a, T> = (&'a T, &'a [u8], Option<&'a [u8]>);

/// What is kept about an issued token. The token itself is not: only its SHA-256 is the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: TenantId,
    pub label: String,
    pub created_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub revoked_at: Option<u64>,
}

/// What [`Store::remove_tenant`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Whether there was a tenant record to remove.
    pub existed: bool,
    pub tokens_revoked: usize,
    pub secrets_deleted: usize,
}

/// The part of a token record each request checks. The key is the hash of the exact token, so
/// a match also pins the token id; the tenant is compared with the token's subject.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenEntry {
    pub tenant: TenantId,
    pub revoked: bool,
}

/// What a token is worth to a request whose token names `subject`.
#[derive(Clone, Debug)]
pub enum TokenTenant {
    /// Not issued here, or issued for another tenant than the token says.
    Unknown,
    Revoked,
    /// The tenant has been removed.
    NoTenant,
    /// The tenant and its live state (rate-limit bucket, metric series).
    Tenant(Arc<Tenant>, Arc<TenantLive>),
}

/// The part of [`Store`]'s interface that names an engine: the rest (`records.rs`) is written
/// against the key-value layer alone.
impl Store {
    /// The store in PostgreSQL at `url`: migrated, loaded, and following the change feed; the
    /// audit log goes to the database too.
    pub fn open_pg(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let pg = Pg::connect(url, options)?;
        Store::open_shared(kv::Db::Pg(pg.clone()), audit::AuditLog::open_pg(pg)?)
    }

    /// With PostgreSQL, this process as one of the replicas sharing the database: its health,
    /// its lease, the number of live replicas, the shared keys' check, leaving.
    pub fn replica(&self) -> Option<Replica<'_>> {
        self.db().pg().map(Replica::new)
    }
}

/// What `store migrate` copied: records per tree (and `audit`), as the database counts them.
pub type Copied = Vec<(String, i64)>;

/// Copies the sled store in `dir` into the empty PostgreSQL database at `url`, all or nothing:
/// every tree and every audit record in one transaction, committed only once the database's
/// counts equal the source's. The server must be stopped (sled refuses a second opener). The
/// key files' fingerprints go with it, so a replica started with other keys is refused.
pub fn migrate_to_postgres(
    dir: &Path,
    url: &str,
    options: PgOptions,
    key_files: &[(&'static str, String)],
) -> Result<Copied, StoreError> {
    let source = Store::open(dir)?;
    let trees = source.dump()?;
    let audit = source
        .audit()
        .export()?
        .into_iter()
        .filter_map(|r| {
            let json = serde_json::to_string(&r).ok()?;
            Some((i64::try_from(r.at_ms).unwrap_or(i64::MAX), r.tenant, json))
        })
        .collect();
    let pg = Pg::connect(url, options)?;
    let copied = pg.import(trees, audit)?;
    for (what, fingerprint) in key_files {
        pg.check_fingerprint(what, fingerprint.clone())?;
    }
    Ok(copied)
}

/// Writes a backup's records into the data dir `dir`, which must be empty (or not exist), then
/// opens the store there to rebuild what is derived (the token journal) and counts what it
/// holds against the backup. The server must be stopped.
pub fn restore_dir(dir: &Path, snapshot: &backup::Snapshot) -> Result<Copied, StoreError> {
    let occupied = std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(StoreError::Io(format!(
            "{} is not empty: restore into an empty data dir (move this one aside first)",
            dir.display()
        )));
    }
    let audit = parse_audit(&snapshot.audit)?;
    let mut copied: Copied = Vec::new();
    {
        let db = kv::Db::embedded(dir)?;
        for (tree, entries) in &snapshot.trees {
            let tree = db.open_tree_named(tree)?;
            for chunk in entries.chunks(5_000) {
                let writes: Vec<kv::Write<'_>> = chunk
                    .iter()
                    .map(|(key, value)| tree.write(key, Some(value.clone())))
                    .collect();
                db.batch(&writes)?;
            }
        }
        db.flush()?;
        for (tree, entries) in db.snapshot()?.0 {
            let want = snapshot
                .trees
                .iter()
                .find(|(name, _)| *name == tree)
                .map_or(0, |(_, e)| e.len());
            if entries.len() != want {
                return Err(StoreError::Corrupt(format!(
                    "{tree}: restored {want} records but the store counts {}",
                    entries.len()
                )));
            }
            copied.push((tree, i64::try_from(want).unwrap_or(i64::MAX)));
        }
    }
    audit::restore_files(&dir.join("audit"), &audit)?;
    copied.push((
        backup::AUDIT.into(),
        i64::try_from(audit.len()).unwrap_or(i64::MAX),
    ));
    // Opened once here: the token journal is rebuilt from the restored records, and a store
    // that would not open is found now rather than at the server's start.
    drop(Store::open(dir)?);
    Ok(copied)
}

/// Writes a backup's records into the empty PostgreSQL database at `url`, all or nothing (one
/// transaction, counts verified before commit), and records the key files' fingerprints as
/// `store migrate` does.
pub fn restore_postgres(
    url: &str,
    options: PgOptions,
    snapshot: &backup::Snapshot,
    key_files: &[(&'static str, String)],
) -> Result<Copied, StoreError> {
    let audit = parse_audit(&snapshot.audit)?
        .into_iter()
        .zip(&snapshot.audit)
        .map(|(record, json)| {
            (
                i64::try_from(record.at_ms).unwrap_or(i64::MAX),
                record.tenant,
                json.clone(),
            )
        })
        .collect();
    let pg = Pg::connect(url, options)?;
    let copied = pg.import(snapshot.trees.clone(), audit)?;
    for (what, fingerprint) in key_files {
        pg.check_fingerprint(what, fingerprint.clone())?;
    }
    Ok(copied)
}

fn parse_audit(lines: &[String]) -> Result<Vec<audit::AuditRecord>, StoreError> {
    lines
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| StoreError::Corrupt(format!("an audit record does not read: {e}")))
        })
        .collect()
}

/// A record as the store keeps it: JSON, the same bytes in sled and PostgreSQL.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored record read back; one that does not decode is `Corrupt`, never a panic.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
