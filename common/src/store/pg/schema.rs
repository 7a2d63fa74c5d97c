//! The database as the PostgreSQL engine finds and leaves it: the versioned schema and its
//! migrations, the shared keys' fingerprints, and `store migrate`'s import of a sled store.
//!
//! - **Tables** (migration 1): `kv (tree, key, value)` holds every record the sled backend keeps
//!   in its trees, byte for byte (JSON values, SHA-256 keys); `changes (seq, tree, key)` logs
//!   every write to a tree replicas hold in memory (tenants, static tokens, OAuth access
//!   tokens); `replicas` is the heartbeat each live replica writes; `audit` the audit records;
//!   `meta` fingerprints of the shared keys. Migrations are embedded and versioned in
//!   `studio_mcp_schema`, applied at start under an advisory lock; a schema newer than the
//!   binary is refused.

use super::{AuditRow, Pg, Statement, insert_audit_rows};
use crate::store::{Entry, StoreError};

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

impl Pg {
    /// Records the shared keys' fingerprints on first use; refuses a replica whose keys differ
    /// from the ones the others use (tokens would not verify, secrets would not open).
    pub fn check_fingerprint(
        &self,
        name: &'static str,
        fingerprint: String,
    ) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.block(Statement::new("INSERT", "meta", ""), async move {
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

    /// Every tree's entries and every audit record (as the JSON text the server wrote) of one
    /// moment: one repeatable-read, read-only transaction, so writers never wait for it.
    #[allow(clippy::type_complexity)]
    pub fn export(&self) -> Result<(Vec<(String, Vec<Entry>)>, Vec<String>), StoreError> {
        let inner = self.inner.clone();
        self.block(Statement::new("SELECT", "kv", ""), async move {
            let mut client = inner.pool.get().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut trees: Vec<(String, Vec<Entry>)> = Vec::new();
            for row in tx
                .query("SELECT tree, key, value FROM kv ORDER BY tree, key", &[])
                .await?
            {
                let tree: String = row.try_get(0)?;
                let entry: Entry = (row.try_get(1)?, row.try_get(2)?);
                match trees.last_mut() {
                    Some((name, entries)) if *name == tree => entries.push(entry),
                    _ => trees.push((tree, vec![entry])),
                }
            }
            let audit = tx
                .query("SELECT record FROM audit ORDER BY at_ms", &[])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            tx.commit().await?;
            Ok((trees, audit))
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
        self.block(Statement::new("BATCH", "kv", ""), async move {
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
}

pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
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
