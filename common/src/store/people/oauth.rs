//! The OAuth state of the connections people allow: clients registered through dynamic
//! registration, authorization codes (redeemed once), grants with their rotating refresh
//! tokens, and access tokens, which are also held in memory so that checking one on
//! `/connector` never reads a tree; revoking a grant drops them from memory before it returns.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{People, get, new_id, new_secret, poisoned, scan};
use crate::domain::TenantId;
use crate::hashing::DigestHasher;
use crate::store::StoreError;
use crate::store::kv::{Entry, Follower};
use crate::store::{decode, encode};

/// A client registered through RFC 7591 dynamic registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub created_at: u64,
    /// Set on the first authorization; a registration never used expires.
    #[serde(default)]
    pub used_at: Option<u64>,
}

/// An authorization code's binding, stored under the code's digest until redeemed (once).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub person: String,
    pub tenant: TenantId,
    pub expires_at: u64,
}

/// One connection a person allowed: a client, for one tenant and one audience. Its refresh
/// token rotates on every use; only the current one's digest is live.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub tenant: TenantId,
    pub person: String,
    pub person_name: String,
    pub client_id: String,
    pub client_name: String,
    pub audience: String,
    pub scope: String,
    pub created_at: u64,
    pub refreshed_at: u64,
    /// The refresh token's lifetime ends here unless it is used (each use extends it).
    pub expires_at: u64,
    /// Hex SHA-256 of the current refresh token.
    pub refresh: String,
    #[serde(default)]
    pub revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_because: Option<String>,
}

/// What admin answers show of a grant (everything but the refresh digest).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantView {
    pub id: String,
    pub tenant: TenantId,
    pub person: String,
    pub person_name: String,
    pub client_id: String,
    pub client_name: String,
    pub audience: String,
    pub created_at: u64,
    pub refreshed_at: u64,
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_because: Option<String>,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            id: g.id.clone(),
            tenant: g.tenant.clone(),
            person: g.person.clone(),
            person_name: g.person_name.clone(),
            client_id: g.client_id.clone(),
            client_name: g.client_name.clone(),
            audience: g.audience.clone(),
            created_at: g.created_at,
            refreshed_at: g.refreshed_at,
            expires_at: g.expires_at,
            revoked_at: g.revoked_at,
            revoked_because: g.revoked_because.clone(),
        }
    }
}

/// An access token's binding: what the request path needs, held in memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub grant: String,
    pub tenant: TenantId,
    pub person: String,
    pub person_name: String,
    pub client_id: String,
    pub audience: String,
    pub expires_at: u64,
}

/// The tokens a grant hands out; each appears here once, in the answer to the client.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub grant: Grant,
}

/// Why a code or refresh token was refused (the token endpoint's `invalid_grant`).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("the authorization code is unknown, expired or already used")]
    UnknownCode,
    #[error(
        "the authorization code was already used; the connection it made has been revoked \
         (a code is good for one exchange)"
    )]
    CodeReplayed { grant: String },
    #[error("the refresh token is unknown, expired or revoked")]
    UnknownRefresh,
    #[error(
        "the refresh token was already used; the whole connection has been revoked because the \
         token may have been stolen — connect again"
    )]
    RefreshReplayed { grant: String },
    #[error("the token belongs to another client")]
    WrongClient,
    /// The grant was made for another resource (a connector URL since changed): refused
    /// before rotation, so the grant is left as it was.
    #[error(
        "this connection was made for {audience}, not for this server's connector URL; connect \
         again with the current URL"
    )]
    WrongAudience { audience: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The access-token index's key: the first 16 bytes of the token's SHA-256.
pub(super) fn key16(hash: &[u8; 32]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

pub(super) type AccessIndex = HashMap<[u8; 16], Arc<AccessEntry>, DigestHasher>;

/// The PostgreSQL change feed's view of the access-token index.
pub(super) struct AccessFollower(pub(super) Arc<RwLock<AccessIndex>>);

impl AccessFollower {
    fn set(index: &mut AccessIndex, key: &[u8], value: Option<&[u8]>) {
        let Ok(hash) = <[u8; 32]>::try_from(key) else {
            return;
        };
        match value.map(decode::<AccessEntry>) {
            Some(Ok(entry)) => {
                index.insert(key16(&hash), Arc::new(entry));
            }
            Some(Err(e)) => tracing::error!(error = %e, "unreadable access token in the feed"),
            None => {
                index.remove(&key16(&hash));
            }
        }
    }
}

impl Follower for AccessFollower {
    fn apply(&self, tree: &str, key: &[u8], value: Option<&[u8]>) {
        if tree == "oauth_access"
            && let Ok(mut index) = self.0.write()
        {
            Self::set(&mut index, key, value);
        }
    }

    fn replace(&self, tree: &str, entries: &[Entry], first: bool) {
        if tree == "oauth_access"
            && let Ok(mut index) = self.0.write()
        {
            if first {
                index.clear();
            }
            for (key, value) in entries {
                Self::set(&mut index, key, Some(value));
            }
        }
    }
}

impl People {
    // ---- registered clients ----

    pub fn add_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        self.clients
            .insert(client.client_id.as_bytes(), encode(client)?)?;
        self.flush()
    }

    pub fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        get(&self.clients, client_id.as_bytes())
    }

    /// Makes room for one more unused registration: drops the unused ones past their lifetime
    /// (`unused_ttl`), then the oldest unused until fewer than `max` wait. A full cap then never
    /// refuses a new client (it costs the stalest waiting registration instead). Returns how
    /// many were dropped before their time.
    pub fn make_room_for_client(
        &self,
        max: usize,
        now: u64,
        unused_ttl: impl Fn(&RegisteredClient) -> u64,
    ) -> Result<usize, StoreError> {
        let mut unused: Vec<(u64, Vec<u8>, bool)> = self
            .clients
            .iter()?
            .into_iter()
            .filter_map(|(key, value)| {
                let client = decode::<RegisteredClient>(&value).ok()?;
                let expired = client.created_at.saturating_add(unused_ttl(&client)) <= now;
                client
                    .used_at
                    .is_none()
                    .then_some((client.created_at, key, expired))
            })
            .collect();
        unused.sort_by_key(|(created_at, _, _)| *created_at);
        let excess = (unused.len() + 1).saturating_sub(max);
        let mut writes = Vec::new();
        let mut evicted = 0;
        for (i, (_, key, expired)) in unused.into_iter().enumerate() {
            if expired {
                writes.push(self.clients.write(key, None));
            } else if i < excess {
                writes.push(self.clients.write(key, None));
                evicted += 1;
            }
        }
        if !writes.is_empty() {
            self.db.batch(&writes)?;
        }
        Ok(evicted)
    }

    fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError> {
        if let Some(mut client) = self.client(client_id)?
            && client.used_at.is_none()
        {
            client.used_at = Some(at);
            self.clients
                .insert(client_id.as_bytes(), encode(&client)?)?;
        }
        Ok(())
    }

    // ---- codes, grants, tokens ----

    pub fn add_code(&self, hash: &[u8; 32], code: &AuthCode, now: u64) -> Result<(), StoreError> {
        self.mark_client_used(&code.client_id, now)?;
        self.codes.insert(hash, encode(code)?)?;
        self.flush()
    }

    /// Redeems a code: consumed exactly once; the checks on it (client, redirect URI, PKCE) are
    /// the caller's, through `check`, and a code that fails them is consumed all the same. A
    /// code presented again revokes the grant its first use made.
    pub fn redeem_code(
        &self,
        hash: &[u8; 32],
        now: u64,
        check: impl FnOnce(&AuthCode) -> Result<(), GrantError>,
    ) -> Result<AuthCode, GrantError> {
        let Some(value) = self.codes.remove(hash)? else {
            if let Some(grant) = self.used_codes.get(hash)? {
                let grant = String::from_utf8_lossy(&grant).into_owned();
                self.revoke_grant(&grant, now, "authorization code used twice")?;
                return Err(GrantError::CodeReplayed { grant });
            }
            return Err(GrantError::UnknownCode);
        };
        self.flush()?;
        let code: AuthCode = decode(&value)?;
        if code.expires_at <= now {
            return Err(GrantError::UnknownCode);
        }
        check(&code)?;
        Ok(code)
    }

    /// Makes the grant a redeemed code allowed, and its first tokens.
    pub fn create_grant(
        &self,
        code_hash: &[u8; 32],
        code: &AuthCode,
        person_name: &str,
        now: u64,
        access_ttl: u64,
        refresh_ttl: u64,
    ) -> Result<TokenPair, StoreError> {
        let (refresh_token, refresh_hash) = new_secret("smr_");
        let grant = Grant {
            id: new_id("g_"),
            tenant: code.tenant.clone(),
            person: code.person.clone(),
            person_name: person_name.to_owned(),
            client_id: code.client_id.clone(),
            client_name: code.client_name.clone(),
            audience: code.resource.clone(),
            scope: code.scope.clone(),
            created_at: now,
            refreshed_at: now,
            expires_at: now.saturating_add(refresh_ttl),
            refresh: hex::encode(refresh_hash),
            revoked_at: None,
            revoked_because: None,
        };
        self.grants.insert(grant.id.as_bytes(), encode(&grant)?)?;
        self.refresh.insert(refresh_hash, grant.id.as_bytes())?;
        // The access token is in the index before anything can revoke the grant (a second use
        // of the code finds the marker below), so a revocation always finds it.
        let access_token = self.issue_access(&grant, now, access_ttl)?;
        // Kept a while so a second use of the code finds, and revokes, this grant.
        self.used_codes.insert(code_hash, grant.id.as_bytes())?;
        self.flush()?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: access_ttl,
            grant,
        })
    }

    fn issue_access(&self, grant: &Grant, now: u64, ttl: u64) -> Result<String, StoreError> {
        let (token, hash) = new_secret("sma_");
        let entry = AccessEntry {
            grant: grant.id.clone(),
            tenant: grant.tenant.clone(),
            person: grant.person.clone(),
            person_name: grant.person_name.clone(),
            client_id: grant.client_id.clone(),
            audience: grant.audience.clone(),
            expires_at: now.saturating_add(ttl),
        };
        self.access.insert(hash, encode(&entry)?)?;
        if self.own_index() {
            self.access_index
                .write()
                .map_err(poisoned)?
                .insert(key16(&hash), Arc::new(entry));
        }
        Ok(token)
    }

    /// Rotates a refresh token: the presented one must be the grant's current one; a rotated-out
    /// token presented again revokes the grant. The new access token keeps the grant's audience,
    /// which must be `audience` (this server's connector URL) — checked before anything rotates.
    pub fn refresh(
        &self,
        hash: &[u8; 32],
        client_id: &str,
        audience: &str,
        now: u64,
        access_ttl: u64,
        refresh_ttl: u64,
    ) -> Result<TokenPair, GrantError> {
        let Some(grant_id) = self.refresh.get(hash)? else {
            return Err(GrantError::UnknownRefresh);
        };
        let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
        let Some(current) = self.grants.get(grant_id.as_bytes())? else {
            return Err(GrantError::UnknownRefresh);
        };
        let grant: Grant = decode(&current)?;
        if grant.revoked_at.is_some() || grant.expires_at <= now {
            return Err(GrantError::UnknownRefresh);
        }
        if grant.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        if grant.audience != audience {
            return Err(GrantError::WrongAudience {
                audience: grant.audience,
            });
        }
        if grant.refresh != hex::encode(hash) {
            self.revoke_grant(&grant.id, now, "refresh token used twice")?;
            return Err(GrantError::RefreshReplayed { grant: grant.id });
        }
        let (refresh_token, refresh_hash) = new_secret("smr_");
        let mut next = grant.clone();
        next.refresh = hex::encode(refresh_hash);
        next.refreshed_at = now;
        next.expires_at = now.saturating_add(refresh_ttl);
        // The new tokens exist before the swap makes them current: whoever revokes the grant
        // after the swap (a concurrent replay, the operator) then finds and kills them.
        self.refresh.insert(refresh_hash, next.id.as_bytes())?;
        let access_token = self.issue_access(&next, now, access_ttl)?;
        // Of two concurrent uses of the same token, one swaps; the other is a replay. A
        // revocation that landed meanwhile fails the swap too.
        let swapped = self.grants.compare_and_swap(
            grant.id.as_bytes(),
            Some(&current),
            Some(&encode(&next)?),
        )?;
        if !swapped {
            self.revoke_grant(&grant.id, now, "refresh token used twice")?;
            return Err(GrantError::RefreshReplayed { grant: grant.id });
        }
        self.flush()?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: access_ttl,
            grant: next,
        })
    }

    pub fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        get(&self.grants, id.as_bytes())
    }

    /// Every grant, or one tenant's, oldest first (revoked ones too, marked).
    pub fn grants(&self, tenant: Option<&TenantId>) -> Result<Vec<Grant>, StoreError> {
        let mut all: Vec<Grant> = scan(&self.grants, |g: &Grant| {
            tenant.is_none_or(|t| &g.tenant == t)
        })?;
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// Revokes a grant: its access tokens leave memory and sled, its refresh tokens die. `None`
    /// if there is no such grant; an already revoked grant is returned unchanged.
    pub fn revoke_grant(&self, id: &str, at: u64, why: &str) -> Result<Option<Grant>, StoreError> {
        let Some(mut grant) = self.grant(id)? else {
            return Ok(None);
        };
        if grant.revoked_at.is_none() {
            grant.revoked_at = Some(at);
            grant.revoked_because = Some(why.to_owned());
            self.grants.insert(grant.id.as_bytes(), encode(&grant)?)?;
        }
        if self.own_index() {
            self.access_index
                .write()
                .map_err(poisoned)?
                .retain(|_, entry| entry.grant != grant.id);
        }
        self.delete_where::<AccessEntry>(&self.access, |a| a.grant == grant.id)?;
        let dead: Vec<_> = self
            .refresh
            .iter()?
            .into_iter()
            .filter(|(_, value)| value.as_slice() == grant.id.as_bytes())
            .map(|(key, _)| self.refresh.write(key, None))
            .collect();
        self.db.batch(&dead)?;
        self.flush()?;
        Ok(Some(grant))
    }

    /// RFC 7009: revokes the token's grant (a refresh token) or the access token alone. Returns
    /// the grant it touched, if any. Unknown tokens are not an error.
    pub fn revoke_token(
        &self,
        hash: &[u8; 32],
        client_id: Option<&str>,
        at: u64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(grant_id) = self.refresh.get(hash)? {
            let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
            let owned = self
                .grant(&grant_id)?
                .is_some_and(|g| client_id.is_none_or(|c| c == g.client_id));
            if owned {
                self.revoke_grant(&grant_id, at, "revoked by the client")?;
                return Ok(Some(grant_id));
            }
            return Ok(None);
        }
        let Some(entry) = self.access_token(hash, 0) else {
            return Ok(None);
        };
        if client_id.is_some_and(|c| c != entry.client_id) {
            return Ok(None);
        }
        if self.own_index() {
            self.access_index
                .write()
                .map_err(poisoned)?
                .remove(&key16(hash));
        }
        self.access.remove(hash)?;
        self.flush()?;
        Ok(Some(entry.grant.clone()))
    }

    /// The request path: an unexpired access token's binding, from memory.
    pub fn access_token(&self, hash: &[u8; 32], now: u64) -> Option<Arc<AccessEntry>> {
        let entry = self.access_index.read().ok()?.get(&key16(hash))?.clone();
        (entry.expires_at > now).then_some(entry)
    }
}
