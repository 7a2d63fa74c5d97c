//! The store's records over the key-value layer (`kv.rs`), and [`Store`], which holds them:
//! tenants, token records (only the SHA-256 of each token) and sealed upstream secrets here;
//! people (`people.rs`), approvals (`approvals.rs`) and the audit log (`audit.rs`) beside them.
//! Opened here embedded in a directory; `store.rs` opens it in PostgreSQL, so that no code here
//! names an engine.
//!
//! Tenants and the token index live in memory (`records/index.rs`). In an embedded store the
//! index's durable form is the journal `tokens.idx` (`records/journal.rs`); in a shared one the
//! index is loaded and kept in step by the engine's change feed, which is then its only writer.

mod index;
mod journal;
#[cfg(test)]
mod tests;
mod upstream_writes;

use std::path::Path;
use std::sync::{Arc, RwLock};

use self::index::{IndexFollower, TokenIndex};
use self::journal::Journal;
use super::kv::{Db, Entry, Tree};
use super::{Removed, StoreError, TokenEntry, TokenRecord, TokenTenant, decode, encode};
use crate::domain::TenantId;
use crate::secrets::SecretKind;
use crate::tenant::Tenant;
use crate::tenant_state::TenantLive;

/// The store, whichever engine holds it: its records over the key-value layer. Cheap to clone
/// (handles to shared state). Opened here in a directory; in PostgreSQL by `store.rs`, which
/// alone names an engine.
#[derive(Clone)]
pub struct Store {
    db: Db,
    tenants_tree: Tree,
    tokens: Tree,
    token_ids: Tree,
    secrets: Tree,
    audit: super::audit::AuditLog,
    approvals: super::approvals::Approvals,
    people: super::people::People,
    /// What the hot path needs of every token, by token hash, and the in-memory copy of every
    /// tenant, so a request never reads a tree (reading 100k token records through sled costs
    /// tens of MB of resident memory). Loaded at open from `tokens.idx` and the tenants' tree,
    /// or by the change feed; every write keeps it in step, so a revocation or tenant change is
    /// seen by the very next request. About 20 bytes a token.
    token_index: Arc<RwLock<TokenIndex>>,
    /// `tokens.idx`, the index's durable form (embedded store only; `records/journal.rs`).
    token_journal: Option<Arc<Journal>>,
    /// Notices of upstream writes, for the other replicas' read caches (shared store only;
    /// `records/upstream_writes.rs`).
    upstream_writes: Option<Tree>,
}

/// The format of the embedded store this binary writes, kept in the `meta` tree. A store
/// written before the marker existed (the releases up to 2026-12-07) is format 1.
pub const STORE_FORMAT: u32 = 2;
const FORMAT_KEY: &[u8] = b"format";

/// Brings an embedded store written by an earlier release to [`STORE_FORMAT`], once; refuses one
/// written by a newer release, naming both versions, before anything else reads it.
///
/// 1 → 2: the records did not change shape (fields added since read as their defaults: a
/// tenant stored before `page-write` keeps exactly its toolsets); only the marker is written.
fn upgrade(db: &Db, dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    let found = match meta.get(FORMAT_KEY)? {
        None => 1,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| StoreError::Corrupt("the store's format marker does not read".into()))?,
    };
    if found > STORE_FORMAT {
        return Err(StoreError::Schema(format!(
            "the store in {} is format {found}, newer than this binary knows ({STORE_FORMAT}): \
             run the release that wrote it or a newer one, or restore a backup of format \
             {STORE_FORMAT}",
            dir.display()
        )));
    }
    if found < STORE_FORMAT {
        meta.insert(FORMAT_KEY, STORE_FORMAT.to_string())?;
        meta.flush()?;
        tracing::info!(
            from = found,
            to = STORE_FORMAT,
            "store: upgraded the embedded store's format"
        );
    }
    Ok(())
}

impl Store {
    /// The embedded store in `dir` (created if missing; refused if another process has it),
    /// with its token journal `tokens.idx` and its audit log's day files under `audit/`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let started = std::time::Instant::now();
        let db = Db::embedded(dir)?;
        upgrade(&db, dir)?;
        let tokens = db.open_tree("tokens")?;
        let sled_ms = started.elapsed().as_secs_f64() * 1e3;
        let (journal, index) = Journal::open(&dir.join("tokens.idx"), &tokens)?;
        let journal_ms = started.elapsed().as_secs_f64() * 1e3 - sled_ms;
        let store = Self {
            tenants_tree: db.open_tree("tenants")?,
            tokens,
            token_ids: db.open_tree("token_ids")?,
            secrets: db.open_tree("secrets")?,
            audit: super::audit::AuditLog::open(&dir.join("audit"))?,
            approvals: super::approvals::Approvals::new(db.open_tree("approvals")?),
            people: super::people::People::open(&db, crate::now_unix())?,
            db,
            token_index: Arc::new(RwLock::new(index)),
            token_journal: Some(Arc::new(journal)),
            upstream_writes: None,
        };
        let mut tenants = 0;
        {
            let mut index = store.token_index.write().map_err(poisoned)?;
            for (_, value) in store.tenants_tree.iter()? {
                let tenant: Tenant = decode(&value)?;
                index.attach(&Arc::new(tenant));
                tenants += 1;
            }
        }
        tracing::debug!(
            tenants,
            sled_ms,
            journal_ms,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "store opened"
        );
        Ok(store)
    }

    /// The records in a store several processes share (`db`, with `audit` beside it): the
    /// token index and tenants are loaded by the engine's change feed, which keeps them in
    /// step from then on.
    pub(super) fn open_shared(db: Db, audit: super::audit::AuditLog) -> Result<Self, StoreError> {
        let token_index = Arc::new(RwLock::new(TokenIndex::default()));
        let upstream_writes = Some(db.open_tree(upstream_writes::TREE)?);
        let store = Self {
            tenants_tree: db.open_tree("tenants")?,
            tokens: db.open_tree("tokens")?,
            token_ids: db.open_tree("token_ids")?,
            secrets: db.open_tree("secrets")?,
            audit,
            approvals: super::approvals::Approvals::new(db.open_tree("approvals")?),
            people: super::people::People::open(&db, crate::now_unix())?,
            db,
            token_index: token_index.clone(),
            token_journal: None,
            upstream_writes,
        };
        store.db.add_follower(Arc::new(IndexFollower(token_index)));
        store.db.follow()?;
        Ok(store)
    }

    /// The engine the records live in (for `store.rs`, which names it).
    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    /// With PostgreSQL the change feed alone writes the in-memory index (in commit order), so
    /// a writer must not: two writers could leave an older value last.
    fn own_index(&self) -> bool {
        self.token_journal.is_some()
    }

    /// Every tree of an embedded (sled) store, for `store migrate`.
    pub fn dump(&self) -> Result<Vec<(String, Vec<Entry>)>, StoreError> {
        self.db.dump()
    }

    /// Every record of one moment while the store serves (`store backup`): the trees as the
    /// engine's snapshot reads them (`kv.rs`), and the audit records written until then.
    pub fn snapshot(&self) -> Result<super::backup::Snapshot, StoreError> {
        let (trees, audit) = self.db.snapshot()?;
        let audit = match audit {
            Some(rows) => rows,
            None => self
                .audit
                .export()?
                .iter()
                .map(|record| {
                    serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(super::backup::Snapshot { trees, audit })
    }

    /// Makes every write so far durable; called by admin actions before they answer.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// People, passkeys, sessions and OAuth grants (`people.rs`).
    pub fn people(&self) -> &super::people::People {
        &self.people
    }

    /// The request path of OAuth tokens: an unexpired access token's binding, from memory; with
    /// PostgreSQL, only while this replica's lease holds (as for static tokens).
    pub fn access_token(
        &self,
        hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<Arc<super::people::AccessEntry>>, StoreError> {
        self.db.vouch()?;
        Ok(self.people.access_token(hash, now))
    }

    /// A tenant and its live state, from memory (the request path of OAuth tokens).
    pub fn tenant_live(&self, id: &TenantId) -> Option<(Arc<Tenant>, Arc<TenantLive>)> {
        self.token_index.read().ok()?.tenant_and_live(id)
    }

    pub fn audit(&self) -> &super::audit::AuditLog {
        &self.audit
    }

    /// Pending high-risk actions and people's decisions (`approvals.rs`).
    pub fn approvals(&self) -> &super::approvals::Approvals {
        &self.approvals
    }

    // ---- tenants ----

    /// Creates a tenant; `TenantExists` if the id is taken.
    pub fn add_tenant(&self, tenant: Tenant) -> Result<Arc<Tenant>, StoreError> {
        let key = tenant.id.as_str().as_bytes().to_vec();
        let value = encode(&tenant)?;
        let swapped = self
            .tenants_tree
            .compare_and_swap(key, None, Some(&value))?;
        if !swapped {
            return Err(StoreError::TenantExists(tenant.id));
        }
        self.flush()?;
        let tenant = Arc::new(tenant);
        if self.own_index() {
            self.token_index.write().map_err(poisoned)?.attach(&tenant);
        }
        Ok(tenant)
    }

    /// Creates or replaces a tenant.
    pub fn put_tenant(&self, tenant: Tenant) -> Result<Arc<Tenant>, StoreError> {
        self.tenants_tree
            .insert(tenant.id.as_str().as_bytes(), encode(&tenant)?)?;
        self.flush()?;
        let tenant = Arc::new(tenant);
        if self.own_index() {
            self.token_index.write().map_err(poisoned)?.attach(&tenant);
        }
        Ok(tenant)
    }

    /// Removes a tenant: revokes every token it has (durably, each journaled before sled, so
    /// that no token of it can act for a tenant later created under the same id) and every
    /// grant, removes its people, deletes its sealed secrets and approvals, then its record.
    /// Its audit history stays.
    pub fn remove_tenant(&self, id: &TenantId, at: u64) -> Result<Removed, StoreError> {
        let mut removed = Removed::default();
        let live: Vec<TokenRecord> = self
            .tokens(Some(id))?
            .into_iter()
            .filter(|r| r.revoked_at.is_none())
            .collect();
        removed.tokens_revoked = self.revoke_tokens(live, at)?;
        let prefix = format!("{id}\0");
        for (key, _) in self.secrets.scan_prefix(prefix.as_bytes())? {
            self.secrets.remove(key)?;
            removed.secrets_deleted += 1;
        }
        self.approvals.forget_tenant(id)?;
        self.people.remove_tenant(id, at)?;
        removed.existed = self.tenants_tree.remove(id.as_str().as_bytes())?.is_some();
        self.flush()?;
        if self.own_index() {
            self.token_index.write().map_err(poisoned)?.detach(id);
        }
        Ok(removed)
    }

    /// Deletes one sealed secret (undoing a write); `Ok` if there was none.
    pub fn delete_secret(&self, tenant: &TenantId, kind: SecretKind) -> Result<(), StoreError> {
        self.secrets.remove(secret_key(tenant, kind))?;
        self.flush()
    }

    pub fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.token_index.read().ok()?.tenant(id)
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<_> = self
            .token_index
            .read()
            .map(|index| index.tenants.iter().flatten().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a: &Arc<Tenant>, b| a.id.cmp(&b.id));
        all
    }

    // ---- tokens ----

    /// Stores a token's record under the SHA-256 of the token.
    pub fn insert_token(&self, hash: &[u8; 32], record: &TokenRecord) -> Result<(), StoreError> {
        let value = encode(record)?;
        self.db.batch(&[
            self.token_ids
                .write(record.id.as_bytes(), Some(hash.to_vec())),
            self.tokens.write(hash, Some(value)),
        ])?;
        self.flush()?;
        // A crash before this line leaves the token out of the journal: it is then found by
        // the fallback to its stored record in `token_by_hash`, so it still works.
        if let Some(journal) = &self.token_journal {
            journal.issued(hash, &record.tenant)?;
        }
        self.index_token(*hash, record);
        Ok(())
    }

    fn index_token(&self, hash: [u8; 32], record: &TokenRecord) {
        if !self.own_index() {
            return;
        }
        if let Ok(mut index) = self.token_index.write() {
            index.set(&hash, &record.tenant, record.revoked_at.is_some());
        }
    }

    /// The hot path: the tenant a token with SHA-256 `hash` and subject `subject` acts for, in
    /// one read-locked map lookup; one point read of its stored record for a token the journal
    /// missed.
    pub fn token_tenant(&self, hash: &[u8; 32], subject: &str) -> Result<TokenTenant, StoreError> {
        if self.db.shared() {
            return self.token_tenant_shared(hash, subject);
        }
        if let Ok(index) = self.token_index.read()
            && let Some(found) = index.resolve(hash, subject)
        {
            return Ok(found);
        }
        Ok(match self.stored_token(hash)? {
            None => TokenTenant::Unknown,
            Some(entry) if entry.tenant.as_str() != subject => TokenTenant::Unknown,
            Some(entry) if entry.revoked => TokenTenant::Revoked,
            Some(entry) => match self
                .token_index
                .read()
                .map_err(poisoned)?
                .tenant_and_live(&entry.tenant)
            {
                Some((tenant, live)) => TokenTenant::Tenant(tenant, live),
                None => TokenTenant::NoTenant,
            },
        })
    }

    /// With PostgreSQL: the index alone, and only while this replica's lease holds; a replica
    /// cut off from the change feed for longer may have missed a revocation.
    fn token_tenant_shared(
        &self,
        hash: &[u8; 32],
        subject: &str,
    ) -> Result<TokenTenant, StoreError> {
        self.db.vouch()?;
        Ok(self
            .token_index
            .read()
            .map_err(poisoned)?
            .resolve(hash, subject)
            .unwrap_or(TokenTenant::Unknown))
    }

    /// Every tenant's live state (rate-limit bucket, metric series), by tenant id (the metrics
    /// exposition reads the call series).
    pub fn live_states(&self) -> Vec<(TenantId, Arc<TenantLive>)> {
        let Ok(index) = self.token_index.read() else {
            return Vec::new();
        };
        let mut all: Vec<_> = index
            .names
            .iter()
            .cloned()
            .zip(index.live.iter().cloned())
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The token's tenant and revocation: the index, or its stored record for a token the
    /// journal missed.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenEntry>, StoreError> {
        if let Ok(index) = self.token_index.read()
            && let Some(entry) = index.get(hash)
        {
            return Ok(Some(entry));
        }
        if self.db.shared() {
            return Ok(None);
        }
        self.stored_token(hash)
    }

    /// A token the journal missed (a crash between the write of its record and the journal
    /// line): read from its record, and put in the index so the next request finds it there.
    fn stored_token(&self, hash: &[u8; 32]) -> Result<Option<TokenEntry>, StoreError> {
        match self.tokens.get(hash)? {
            Some(v) => {
                let record: TokenRecord = decode(&v)?;
                let mut revoked = record.revoked_at.is_some();
                if let Ok(mut index) = self.token_index.write() {
                    revoked |= index.revoked_unindexed.contains(hash);
                    index.insert_if_absent(hash, &record.tenant, revoked);
                }
                Ok(Some(TokenEntry {
                    tenant: record.tenant,
                    revoked,
                }))
            }
            None => Ok(None),
        }
    }

    /// Revokes several tokens at once (one acknowledgement round with PostgreSQL); how many.
    fn revoke_tokens(&self, records: Vec<TokenRecord>, at: u64) -> Result<usize, StoreError> {
        if self.own_index() {
            for record in &records {
                self.revoke_token(&record.id, at)?;
            }
            return Ok(records.len());
        }
        let mut writes = Vec::new();
        for mut record in records {
            let Some(hash) = self.token_ids.get(record.id.as_bytes())? else {
                continue;
            };
            record.revoked_at = Some(at);
            writes.push(self.tokens.write(hash, Some(encode(&record)?)));
        }
        self.db.batch(&writes)?;
        Ok(writes.len())
    }

    pub fn revoke_token(&self, id: &str, at: u64) -> Result<TokenRecord, StoreError> {
        let hash = self
            .token_ids
            .get(id.as_bytes())?
            .ok_or_else(|| StoreError::NoToken(id.chars().take(64).collect()))?;
        let current = self
            .tokens
            .get(&hash)?
            .ok_or_else(|| StoreError::NoToken(id.chars().take(64).collect()))?;
        let mut record: TokenRecord = decode(&current)?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(at);
            // Journal first: a crash between the two writes then leaves the token refused
            // (revoked in the index), never accepted.
            if let Some(journal) = &self.token_journal {
                journal.revoked(&hash)?;
            }
            self.tokens.insert(&hash, encode(&record)?)?;
            // Revocation must survive a crash right after the admin call returns.
            self.flush()?;
            if let Ok(key) = <[u8; 32]>::try_from(&hash[..]) {
                self.index_token(key, &record);
            }
        }
        Ok(record)
    }

    /// Token records (never tokens), oldest first, optionally of one tenant.
    pub fn tokens(&self, tenant: Option<&TenantId>) -> Result<Vec<TokenRecord>, StoreError> {
        let mut out = Vec::new();
        for (_, value) in self.tokens.iter()? {
            let record: TokenRecord = decode(&value)?;
            if tenant.is_none_or(|t| &record.tenant == t) {
                out.push(record);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    // ---- secrets ----

    pub fn put_secret(
        &self,
        tenant: &TenantId,
        kind: SecretKind,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.secrets.insert(secret_key(tenant, kind), sealed)?;
        self.flush()
    }

    pub fn secret(
        &self,
        tenant: &TenantId,
        kind: SecretKind,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.secrets.get(secret_key(tenant, kind))
    }

    /// Which kinds of secret a tenant has stored (names only, never values).
    pub fn secret_kinds(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{tenant}\0");
        let mut kinds = Vec::new();
        for (key, _) in self.secrets.scan_prefix(prefix.as_bytes())? {
            if let Some(kind) = key.get(prefix.len()..) {
                kinds.push(String::from_utf8_lossy(kind).into_owned());
            }
        }
        Ok(kinds)
    }
}

fn secret_key(tenant: &TenantId, kind: SecretKind) -> Vec<u8> {
    format!("{tenant}\0{kind}").into_bytes()
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Io("in-memory index lock poisoned".into())
}
