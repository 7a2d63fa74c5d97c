//! The token index: every token's tenant and revocation, and every tenant with its live state,
//! in memory, so the request path answers from one map lookup. The PostgreSQL change feed's view
//! of it (`IndexFollower`) is here too; its durable form in an embedded store is `journal.rs`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::TenantId;
use crate::hashing::{DigestHasher, IdHasher};
use crate::store::decode;
use crate::store::kv::{Entry, Follower};
use crate::store::{TokenEntry, TokenRecord, TokenTenant};
use crate::tenant::Tenant;
use crate::tenant_state::TenantLive;

/// Token → (tenant number, revoked), with tenant ids interned, in 20 bytes a token: the key is
/// the first 16 bytes of the token's SHA-256 (finding another signed token that shares them
/// would take 2^128 tries; the journal and sled keep all 32), the value the tenant's number with
/// the revoked flag in its top bit. 100k tokens: under 3 MB.
#[derive(Default)]
pub(super) struct TokenIndex {
    pub(super) entries: HashMap<[u8; 16], u32, DigestHasher>,
    pub(super) names: Vec<TenantId>,
    /// By tenant number, the tenant as the store holds it (none once removed) and its live
    /// state: a request goes from token to both in one map lookup.
    pub(super) tenants: Vec<Option<Arc<Tenant>>>,
    pub(super) live: Vec<Arc<TenantLive>>,
    numbers: HashMap<TenantId, u32, IdHasher>,
    /// Revocations journaled for tokens whose issue line is missing (a crash right after the
    /// record was written): the fallback to the stored record must still treat these as revoked.
    pub(super) revoked_unindexed: std::collections::HashSet<[u8; 32]>,
}

const REVOKED: u32 = 1 << 31;

fn index_key(hash: &[u8; 32]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

impl TokenIndex {
    pub(super) fn with_capacity(tokens: usize) -> Self {
        Self {
            entries: HashMap::with_capacity_and_hasher(tokens, DigestHasher),
            ..Self::default()
        }
    }

    pub(super) fn number(&mut self, tenant: &TenantId) -> u32 {
        if let Some(n) = self.numbers.get(tenant) {
            return *n;
        }
        // Two billion tenants would be needed to reach the revoked bit.
        let n = (self.names.len() as u32) & !REVOKED;
        self.names.push(tenant.clone());
        self.tenants.push(None);
        self.live.push(Arc::default());
        self.numbers.insert(tenant.clone(), n);
        n
    }

    /// Store a token unless the index already has a state for it (which is newer).
    pub(super) fn insert_if_absent(&mut self, hash: &[u8; 32], tenant: &TenantId, revoked: bool) {
        if !self.entries.contains_key(&index_key(hash)) {
            self.set(hash, tenant, revoked);
        }
    }

    /// Replay's form of [`Self::insert_if_absent`], with the tenant already numbered.
    pub(super) fn insert_numbered_if_absent(&mut self, hash: &[u8; 32], tenant: u32) {
        self.entries.entry(index_key(hash)).or_insert(tenant);
    }

    pub(super) fn set(&mut self, hash: &[u8; 32], tenant: &TenantId, revoked: bool) {
        let n = self.number(tenant);
        let value = if revoked { n | REVOKED } else { n };
        self.entries.insert(index_key(hash), value);
    }

    pub(super) fn revoke(&mut self, hash: &[u8; 32]) {
        match self.entries.get_mut(&index_key(hash)) {
            Some(entry) => *entry |= REVOKED,
            None => {
                self.revoked_unindexed.insert(*hash);
            }
        }
    }

    pub(super) fn attach(&mut self, tenant: &Arc<Tenant>) {
        let n = self.number(&tenant.id) as usize;
        if let Some(slot) = self.tenants.get_mut(n) {
            *slot = Some(tenant.clone());
        }
    }

    pub(super) fn detach(&mut self, tenant: &TenantId) {
        if let Some(n) = self.numbers.get(tenant)
            && let Some(slot) = self.tenants.get_mut(*n as usize)
        {
            *slot = None;
        }
    }

    /// `None` when the token is not in the index (the caller then reads its stored record).
    pub(super) fn resolve(&self, hash: &[u8; 32], subject: &str) -> Option<TokenTenant> {
        let value = *self.entries.get(&index_key(hash))?;
        let n = (value & !REVOKED) as usize;
        let revoked = value & REVOKED != 0;
        let (id, tenant) = match self.tenants.get(n)? {
            Some(tenant) => (tenant.id.as_str(), Some(tenant)),
            None => (self.names.get(n)?.as_str(), None),
        };
        Some(match tenant {
            _ if id != subject => TokenTenant::Unknown,
            _ if revoked => TokenTenant::Revoked,
            Some(tenant) => TokenTenant::Tenant(tenant.clone(), self.live.get(n)?.clone()),
            None => TokenTenant::NoTenant,
        })
    }

    pub(super) fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        let n = *self.numbers.get(id)?;
        self.tenants.get(n as usize)?.clone()
    }

    pub(super) fn tenant_and_live(&self, id: &TenantId) -> Option<(Arc<Tenant>, Arc<TenantLive>)> {
        let n = *self.numbers.get(id)? as usize;
        Some((self.tenants.get(n)?.clone()?, self.live.get(n)?.clone()))
    }

    pub(super) fn get(&self, hash: &[u8; 32]) -> Option<TokenEntry> {
        let value = *self.entries.get(&index_key(hash))?;
        let tenant = self.names.get((value & !REVOKED) as usize)?.clone();
        Some(TokenEntry {
            tenant,
            revoked: value & REVOKED != 0,
        })
    }
}

/// The PostgreSQL change feed's view of the token index: tenants attach and detach, tokens
/// are set to their stored state.
pub(super) struct IndexFollower(pub(super) Arc<RwLock<TokenIndex>>);

impl IndexFollower {
    fn tenant(index: &mut TokenIndex, key: &[u8], value: Option<&[u8]>) {
        match value.map(decode::<Tenant>) {
            Some(Ok(tenant)) => index.attach(&Arc::new(tenant)),
            Some(Err(e)) => tracing::error!(error = %e, "unreadable tenant record in the feed"),
            None => {
                if let Ok(id) = TenantId::parse(&String::from_utf8_lossy(key)) {
                    index.detach(&id);
                }
            }
        }
    }

    fn token(index: &mut TokenIndex, key: &[u8], value: Option<&[u8]>) {
        let (Ok(hash), Some(Ok(record))) =
            (<[u8; 32]>::try_from(key), value.map(decode::<TokenRecord>))
        else {
            return;
        };
        index.set(&hash, &record.tenant, record.revoked_at.is_some());
    }
}

impl Follower for IndexFollower {
    fn apply(&self, tree: &str, key: &[u8], value: Option<&[u8]>) {
        // Other trees' changes (upstream-write notices) never take the index's lock.
        if tree != "tenants" && tree != "tokens" {
            return;
        }
        let Ok(mut index) = self.0.write() else {
            return;
        };
        match tree {
            "tenants" => Self::tenant(&mut index, key, value),
            "tokens" => Self::token(&mut index, key, value),
            _ => {}
        }
    }

    /// Tenants come in one chunk (and what is absent is detached); tokens are never deleted,
    /// so every chunk only adds.
    fn replace(&self, tree: &str, entries: &[Entry], _first: bool) {
        let Ok(mut index) = self.0.write() else {
            return;
        };
        match tree {
            "tenants" => {
                let present: std::collections::HashSet<&[u8]> =
                    entries.iter().map(|(k, _)| k.as_slice()).collect();
                let gone: Vec<TenantId> = index
                    .tenants
                    .iter()
                    .flatten()
                    .filter(|t| !present.contains(t.id.as_str().as_bytes()))
                    .map(|t| t.id.clone())
                    .collect();
                for id in gone {
                    index.detach(&id);
                }
                for (key, value) in entries {
                    Self::tenant(&mut index, key, Some(value));
                }
            }
            "tokens" => {
                for (key, value) in entries {
                    Self::token(&mut index, key, Some(value));
                }
            }
            _ => {}
        }
    }
}
