//! People and what they hold: passkeys, invites, browser sessions, and the OAuth state of the
//! connections they allow (registered clients, authorization codes, grants with their rotating
//! refresh tokens, access tokens).
//!
//! Every secret handed out here — invite, session, consent ticket, code, access and refresh
//! token — is 32 random bytes; only its SHA-256 is stored, so a copy of the store grants nothing.
//! A passkey ceremony is not stored while it runs (its state travels sealed with the browser);
//! only its random id, once it completes, so that it completes once. Access tokens are also
//! held in memory (like the static token index), so checking one on `/connector` never touches
//! sled, and revoking a grant, a person or a tenant drops them from memory before the call
//! returns: the very next request is refused.
//!
//! A person belongs to exactly one tenant. A studio's staff member who works for several clients
//! gets one person (one invite, one passkey) per tenant: a grant is always for one tenant, each
//! isolated instance has its own store anyway, and removing someone from one client can then
//! never touch their access to another.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::StoreError;
pub use super::ids::{digest, new_id, new_secret};
use super::kv::{Db, Entry, Follower, Tree};
use crate::domain::TenantId;
use crate::hashing::DigestHasher;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May connect AI assistants to the tenant's data.
    Member,
    /// Also approves high-risk actions.
    Approver,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "member" => Some(Self::Member),
            "approver" => Some(Self::Approver),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Approver => "approver",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
    pub created_at: u64,
    /// The WebAuthn user handle (a UUID): what a discoverable passkey names at sign-in.
    pub user_handle: String,
    /// Registered passkeys as the WebAuthn library serialises them (public keys and counters;
    /// no secret). Never shown in admin answers, only counted.
    #[serde(default)]
    pub passkeys: Vec<serde_json::Value>,
    #[serde(default)]
    pub last_sign_in_at: Option<u64>,
}

/// What admin answers show of a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PersonView {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
    pub created_at: u64,
    pub passkeys: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in_at: Option<u64>,
}

impl From<&Person> for PersonView {
    fn from(p: &Person) -> Self {
        Self {
            id: p.id.clone(),
            tenant: p.tenant.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            role: p.role,
            created_at: p.created_at,
            passkeys: p.passkeys.len(),
            last_sign_in_at: p.last_sign_in_at,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invite {
    pub person: String,
    pub tenant: TenantId,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub person: String,
    pub tenant: TenantId,
    pub created_at: u64,
    pub expires_at: u64,
}

/// A one-click ticket kept until its form comes back (or it expires), and taken exactly once:
/// the consent form's. Passkey ceremonies are no longer kept here (they travel sealed, see
/// [`People::spend_ceremony`]); records of kind `register` or `signin` a previous version
/// stored are only swept once expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ceremony {
    /// `consent` (older versions also stored `register` and `signin`).
    pub kind: String,
    /// The invite's digest (hex) for a registration.
    #[serde(default)]
    pub invite: Option<String>,
    pub state: serde_json::Value,
    pub expires_at: u64,
}

/// A passkey ceremony that completed: remembered, under its random id, until its sealed state
/// could no longer be opened anyway, so that it completes once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SpentCeremony {
    expires_at: u64,
}

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

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The record under `key`, if any.
fn get<T: for<'de> Deserialize<'de>>(tree: &Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(&v)).transpose()
}

/// Every record of `tree` that `keep` keeps.
fn scan<T: for<'de> Deserialize<'de>>(
    tree: &Tree,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    let mut kept = Vec::new();
    for (_, value) in tree.iter()? {
        let record: T = decode(&value)?;
        if keep(&record) {
            kept.push(record);
        }
    }
    Ok(kept)
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Io("in-memory access-token index lock poisoned".into())
}

fn key16(hash: &[u8; 32]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

type AccessIndex = HashMap<[u8; 16], Arc<AccessEntry>, DigestHasher>;

/// The trees of people and OAuth state, and the in-memory access-token index.
#[derive(Clone)]
pub struct People {
    db: Db,
    people: Tree,
    invites: Tree,
    sessions: Tree,
    ceremonies: Tree,
    /// Random id of every passkey ceremony completed and not yet expired.
    spent_ceremonies: Tree,
    clients: Tree,
    codes: Tree,
    used_codes: Tree,
    grants: Tree,
    /// Digest of every refresh token a live grant ever had → grant id: a rotated-out token
    /// presented again is recognised as a replay and revokes its grant.
    refresh: Tree,
    access: Tree,
    access_index: Arc<RwLock<AccessIndex>>,
}

/// The PostgreSQL change feed's view of the access-token index.
struct AccessFollower(Arc<RwLock<AccessIndex>>);

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
    /// With sled the access-token index is loaded here; with PostgreSQL the change feed loads
    /// it (once the store has registered every follower) and is its only writer from then on.
    pub fn open(db: &Db, now: u64) -> Result<Self, StoreError> {
        let people = Self {
            people: db.open_tree("people")?,
            invites: db.open_tree("invites")?,
            sessions: db.open_tree("sessions")?,
            ceremonies: db.open_tree("ceremonies")?,
            spent_ceremonies: db.open_tree("ceremonies_spent")?,
            clients: db.open_tree("oauth_clients")?,
            codes: db.open_tree("oauth_codes")?,
            used_codes: db.open_tree("oauth_used_codes")?,
            grants: db.open_tree("oauth_grants")?,
            refresh: db.open_tree("oauth_refresh")?,
            access: db.open_tree("oauth_access")?,
            access_index: Arc::default(),
            db: db.clone(),
        };
        if db.shared() {
            db.add_follower(Arc::new(AccessFollower(people.access_index.clone())));
            return Ok(people);
        }
        let mut index = AccessIndex::default();
        for (key, value) in people.access.iter()? {
            let access: AccessEntry = decode(&value)?;
            if access.expires_at <= now {
                people.access.remove(key)?;
                continue;
            }
            if let Ok(hash) = <[u8; 32]>::try_from(key.as_slice()) {
                index.insert(key16(&hash), Arc::new(access));
            }
        }
        *people.access_index.write().map_err(poisoned)? = index;
        Ok(people)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()
    }

    /// Whether this process writes the access-token index itself (sled), or leaves it to the
    /// PostgreSQL change feed, which applies every change in commit order.
    fn own_index(&self) -> bool {
        !self.db.shared()
    }

    // ---- people ----

    pub fn add_person(&self, person: &Person) -> Result<(), StoreError> {
        self.people.insert(person.id.as_bytes(), encode(person)?)?;
        self.flush()
    }

    pub fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        get(&self.people, id.as_bytes())
    }

    /// Every person, or one tenant's, oldest first.
    pub fn people(&self, tenant: Option<&TenantId>) -> Result<Vec<Person>, StoreError> {
        let mut all: Vec<Person> = scan(&self.people, |p: &Person| {
            tenant.is_none_or(|t| &p.tenant == t)
        })?;
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    pub fn person_by_handle(&self, user_handle: &str) -> Result<Option<Person>, StoreError> {
        for (_, value) in self.people.iter()? {
            let person: Person = decode(&value)?;
            if person.user_handle == user_handle {
                return Ok(Some(person));
            }
        }
        Ok(None)
    }

    /// Replaces a person's record with `update(person)`, atomically; `None` if gone.
    pub fn update_person(
        &self,
        id: &str,
        update: impl Fn(&mut Person),
    ) -> Result<Option<Person>, StoreError> {
        loop {
            let Some(current) = self.people.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut person: Person = decode(&current)?;
            update(&mut person);
            let swapped = self.people.compare_and_swap(
                id.as_bytes(),
                Some(&current),
                Some(&encode(&person)?),
            )?;
            if swapped {
                self.flush()?;
                return Ok(Some(person));
            }
        }
    }

    /// Forgets a person's passkeys and ends their sessions (a lost or replaced device), keeping
    /// the person, their role and their connections, and gives them `user_handle` for the
    /// passkey to come; `None` if there is no such person.
    pub fn reset_passkeys(
        &self,
        id: &str,
        user_handle: &str,
    ) -> Result<Option<Person>, StoreError> {
        let Some(person) = self.update_person(id, |p| {
            p.passkeys.clear();
            p.user_handle = user_handle.to_owned();
        })?
        else {
            return Ok(None);
        };
        self.delete_where::<Session>(&self.sessions, |s| s.person == person.id)?;
        self.delete_where::<Invite>(&self.invites, |i| i.person == person.id)?;
        self.flush()?;
        Ok(Some(person))
    }

    /// Removes a person: their grants are revoked (tokens refused from the next request on),
    /// their sessions and invites deleted, then the record. `None` if there was no such person.
    pub fn remove_person(&self, id: &str, at: u64) -> Result<Option<(Person, usize)>, StoreError> {
        let Some(person) = self.person(id)? else {
            return Ok(None);
        };
        let mut revoked = 0;
        for grant in self.grants(Some(&person.tenant))? {
            if grant.person == person.id && grant.revoked_at.is_none() {
                self.revoke_grant(&grant.id, at, "person removed")?;
                revoked += 1;
            }
        }
        self.delete_where::<Session>(&self.sessions, |s| s.person == person.id)?;
        self.delete_where::<Invite>(&self.invites, |i| i.person == person.id)?;
        self.people.remove(id.as_bytes())?;
        self.flush()?;
        Ok(Some((person, revoked)))
    }

    /// Removes every person of a tenant (the tenant is being removed), and its clients' grants.
    pub fn remove_tenant(&self, tenant: &TenantId, at: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for person in self.people(Some(tenant))? {
            self.remove_person(&person.id, at)?;
            removed += 1;
        }
        for grant in self.grants(Some(tenant))? {
            if grant.revoked_at.is_none() {
                self.revoke_grant(&grant.id, at, "tenant removed")?;
            }
        }
        self.delete_where::<Session>(&self.sessions, |s| &s.tenant == tenant)?;
        self.delete_where::<Invite>(&self.invites, |i| &i.tenant == tenant)?;
        self.delete_where::<AuthCode>(&self.codes, |c| &c.tenant == tenant)?;
        self.flush()?;
        Ok(removed)
    }

    /// Deletes every record `matches` picks, in one atomic batch (one acknowledgement round
    /// for a watched tree).
    fn delete_where<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &Tree,
        matches: impl Fn(&T) -> bool,
    ) -> Result<usize, StoreError> {
        let mut writes = Vec::new();
        for (key, value) in tree.iter()? {
            // An unreadable record is not ours to judge here; sweeping removes it.
            if decode::<T>(&value).is_ok_and(|v| matches(&v)) {
                writes.push(tree.write(key, None));
            }
        }
        if !writes.is_empty() {
            self.db.batch(&writes)?;
        }
        Ok(writes.len())
    }

    // ---- invites ----

    pub fn add_invite(&self, hash: &[u8; 32], invite: &Invite) -> Result<(), StoreError> {
        self.invites.insert(hash, encode(invite)?)?;
        self.flush()
    }

    pub fn invite(&self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        get(&self.invites, hash)
    }

    /// Consumes an invite, exactly once among concurrent callers.
    pub fn take_invite(&self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        let taken = self.invites.remove(hash)?;
        self.flush()?;
        taken.map(|v| decode(&v)).transpose()
    }

    // ---- sessions and ceremonies ----

    pub fn add_session(&self, hash: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        self.sessions.insert(hash, encode(session)?)?;
        self.flush()
    }

    /// A live session (unexpired, its person still present).
    pub fn session(&self, hash: &[u8; 32], now: u64) -> Result<Option<Session>, StoreError> {
        let Some(value) = self.sessions.get(hash)? else {
            return Ok(None);
        };
        let session: Session = decode(&value)?;
        if session.expires_at <= now || self.people.get(session.person.as_bytes())?.is_none() {
            return Ok(None);
        }
        Ok(Some(session))
    }

    pub fn end_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.sessions.remove(hash)?;
        self.flush()
    }

    pub fn add_ceremony(&self, hash: &[u8; 32], ceremony: &Ceremony) -> Result<(), StoreError> {
        self.ceremonies.insert(hash, encode(ceremony)?)?;
        self.flush()
    }

    /// Takes a ceremony's state, once; `None` if unknown, used or expired.
    pub fn take_ceremony(&self, hash: &[u8; 32], now: u64) -> Result<Option<Ceremony>, StoreError> {
        let Some(value) = self.ceremonies.remove(hash)? else {
            return Ok(None);
        };
        let ceremony: Ceremony = decode(&value)?;
        Ok((ceremony.expires_at > now).then_some(ceremony))
    }

    /// Whether the passkey ceremony `id` has completed already (a cheap early answer for a
    /// replay; [`Self::spend_ceremony`] is what decides).
    pub fn ceremony_spent(&self, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self.spent_ceremonies.get(id)?.is_some())
    }

    /// Records that the passkey ceremony `id` completed, kept until `expires_at`: `true` for
    /// exactly one of any callers, on any replica (an insert-if-absent), `false` for a replay.
    /// Only a ceremony that completes is ever written, so starting one costs the store nothing.
    pub fn spend_ceremony(&self, id: &[u8], expires_at: u64) -> Result<bool, StoreError> {
        let record = encode(&SpentCeremony { expires_at })?;
        let first = self
            .spent_ceremonies
            .compare_and_swap(id, None, Some(&record))?;
        self.flush()?;
        Ok(first)
    }

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

    /// Drops what has expired: codes, sessions, ceremonies, invites, access tokens, unused
    /// client registrations (after `unused_client_ttl(client)`), and grants past their refresh
    /// lifetime.
    pub fn sweep(
        &self,
        now: u64,
        unused_client_ttl: impl Fn(&RegisteredClient) -> u64,
    ) -> Result<(), StoreError> {
        self.delete_where::<AuthCode>(&self.codes, |c| c.expires_at <= now)?;
        self.delete_where::<Session>(&self.sessions, |s| s.expires_at <= now)?;
        self.delete_where::<Ceremony>(&self.ceremonies, |c| c.expires_at <= now)?;
        self.delete_where::<SpentCeremony>(&self.spent_ceremonies, |c| c.expires_at <= now)?;
        self.delete_where::<Invite>(&self.invites, |i| i.expires_at <= now)?;
        self.delete_where::<RegisteredClient>(&self.clients, |c| {
            c.used_at.is_none() && c.created_at.saturating_add(unused_client_ttl(c)) <= now
        })?;
        self.delete_where::<AccessEntry>(&self.access, |a| a.expires_at <= now)?;
        if self.own_index() {
            self.access_index
                .write()
                .map_err(poisoned)?
                .retain(|_, entry| entry.expires_at > now);
        }
        // Used-code markers outlive their codes by a day, then go.
        let used = self.used_codes.iter()?;
        if used.len() > 10_000 {
            let writes: Vec<_> = used
                .into_iter()
                .map(|(key, _)| self.used_codes.write(key, None))
                .collect();
            self.db.batch(&writes)?;
        }
        for grant in self.grants(None)? {
            if grant.revoked_at.is_none() && grant.expires_at <= now {
                self.revoke_grant(&grant.id, now, "refresh token expired")?;
            }
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "https://connect.example/mcp";

    fn people() -> (tempfile::TempDir, Db, People) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::embedded(dir.path()).unwrap();
        let p = People::open(&db, 0).unwrap();
        (dir, db, p)
    }

    fn person(id: &str, tenant: &str) -> Person {
        Person {
            id: id.into(),
            tenant: TenantId::parse(tenant).unwrap(),
            name: "Alex".into(),
            email: None,
            role: Role::Member,
            created_at: 1,
            user_handle: format!("h-{id}"),
            passkeys: vec![],
            last_sign_in_at: None,
        }
    }

    fn code(person: &str, tenant: &str) -> AuthCode {
        AuthCode {
            client_id: "c1".into(),
            client_name: "Client".into(),
            redirect_uri: "https://c.example/cb".into(),
            code_challenge: "x".into(),
            resource: AUD.into(),
            scope: "mcp".into(),
            person: person.into(),
            tenant: TenantId::parse(tenant).unwrap(),
            expires_at: 100,
        }
    }

    fn grant_for(p: &People, person: &str, tenant: &str) -> TokenPair {
        let (_, hash) = new_secret("c_");
        p.add_code(&hash, &code(person, tenant), 10).unwrap();
        let c = p.redeem_code(&hash, 10, |_| Ok(())).unwrap();
        p.create_grant(&hash, &c, "Alex", 10, 3600, 86400).unwrap()
    }

    #[test]
    fn a_code_is_good_once_and_its_replay_revokes_the_grant() {
        let (_d, _db, p) = people();
        p.add_person(&person("p1", "acme")).unwrap();
        let (_, hash) = new_secret("c_");
        p.add_code(&hash, &code("p1", "acme"), 10).unwrap();
        let c = p.redeem_code(&hash, 10, |_| Ok(())).unwrap();
        let pair = p.create_grant(&hash, &c, "Alex", 10, 3600, 86400).unwrap();
        let access = digest(&pair.access_token);
        assert!(p.access_token(&access, 11).is_some());
        assert!(matches!(
            p.redeem_code(&hash, 12, |_| Ok(())),
            Err(GrantError::CodeReplayed { .. })
        ));
        assert!(p.access_token(&access, 12).is_none());
        assert!(
            p.grant(&pair.grant.id)
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
    }

    #[test]
    fn a_failed_check_still_consumes_the_code() {
        let (_d, _db, p) = people();
        let (_, hash) = new_secret("c_");
        p.add_code(&hash, &code("p1", "acme"), 10).unwrap();
        assert!(matches!(
            p.redeem_code(&hash, 10, |_| Err(GrantError::WrongClient)),
            Err(GrantError::WrongClient)
        ));
        assert!(matches!(
            p.redeem_code(&hash, 10, |_| Ok(())),
            Err(GrantError::UnknownCode)
        ));
    }

    #[test]
    fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant() {
        let (_d, _db, p) = people();
        let first = grant_for(&p, "p1", "acme");
        let second = p
            .refresh(&digest(&first.refresh_token), "c1", AUD, 20, 3600, 86400)
            .unwrap();
        assert!(p.access_token(&digest(&second.access_token), 21).is_some());
        assert!(matches!(
            p.refresh(&digest(&first.refresh_token), "c1", AUD, 22, 3600, 86400),
            Err(GrantError::RefreshReplayed { .. })
        ));
        assert!(p.access_token(&digest(&second.access_token), 23).is_none());
        assert!(p.access_token(&digest(&first.access_token), 23).is_none());
        assert!(matches!(
            p.refresh(&digest(&second.refresh_token), "c1", AUD, 24, 3600, 86400),
            Err(GrantError::UnknownRefresh)
        ));
    }

    #[test]
    fn removing_a_person_revokes_their_grants_and_sessions_and_survives_a_reopen() {
        let (dir, db, p) = people();
        p.add_person(&person("p1", "acme")).unwrap();
        p.add_person(&person("p2", "acme")).unwrap();
        let mine = grant_for(&p, "p1", "acme");
        let theirs = grant_for(&p, "p2", "acme");
        let (_, session) = new_secret("s_");
        p.add_session(
            &session,
            &Session {
                person: "p1".into(),
                tenant: TenantId::parse("acme").unwrap(),
                created_at: 1,
                expires_at: 1000,
            },
        )
        .unwrap();
        assert!(p.session(&session, 5).unwrap().is_some());
        let (_, revoked) = p.remove_person("p1", 30).unwrap().unwrap();
        assert_eq!(revoked, 1);
        assert!(p.session(&session, 5).unwrap().is_none());
        assert!(p.access_token(&digest(&mine.access_token), 31).is_none());
        assert!(p.access_token(&digest(&theirs.access_token), 31).is_some());
        drop(p);
        drop(db);
        // sled's flusher lets go of the directory's lock a moment after the last handle drops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match Db::embedded(dir.path()) {
                Ok(db) => break db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        let p = People::open(&db, 31).unwrap();
        assert!(p.access_token(&digest(&mine.access_token), 32).is_none());
        assert!(p.access_token(&digest(&theirs.access_token), 32).is_some());
        assert!(
            p.access_token(&digest(&theirs.access_token), 4000)
                .is_none()
        );
    }

    #[test]
    fn an_invite_is_taken_once() {
        let (_d, _db, p) = people();
        let (_, hash) = new_secret("i_");
        let invite = Invite {
            person: "p1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            created_at: 1,
            expires_at: 10,
        };
        p.add_invite(&hash, &invite).unwrap();
        assert!(p.take_invite(&hash).unwrap().is_some());
        assert!(p.take_invite(&hash).unwrap().is_none());
    }

    #[test]
    fn a_passkey_ceremony_is_spent_once_and_swept_when_it_expires() {
        let (_d, _db, p) = people();
        assert!(!p.ceremony_spent(b"c1").unwrap());
        assert!(p.spend_ceremony(b"c1", 100).unwrap());
        assert!(p.ceremony_spent(b"c1").unwrap());
        assert!(!p.spend_ceremony(b"c1", 100).unwrap(), "a replay");
        assert!(p.spend_ceremony(b"c2", 200).unwrap());
        p.sweep(150, |_| u64::MAX).unwrap();
        assert!(!p.ceremony_spent(b"c1").unwrap(), "expired: swept");
        assert!(p.ceremony_spent(b"c2").unwrap(), "not yet expired: kept");
    }
}
