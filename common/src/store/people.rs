//! People and what they hold: passkeys, invites, browser sessions, completed passkey
//! ceremonies; the OAuth state of the connections they allow (registered clients, authorization
//! codes, grants with their rotating refresh tokens, access tokens) is in `people/oauth.rs`.
//! [`People`] holds the trees of both and sweeps what has expired.
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

mod oauth;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use self::oauth::{
    AccessEntry, AuthCode, Grant, GrantError, GrantView, RegisteredClient, TokenPair,
};
use self::oauth::{AccessFollower, AccessIndex, key16};
pub use super::ids::{digest, new_id, new_secret};
use super::kv::{Db, Tree};
use super::{StoreError, decode, encode};
use crate::domain::TenantId;

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
    pub kind: TicketKind,
    /// The invite's digest (hex) for a registration.
    #[serde(default)]
    pub invite: Option<String>,
    pub state: serde_json::Value,
    pub expires_at: u64,
}

/// What a kept ticket is for; stored as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// The consent form's one-click ticket.
    Consent,
    /// A passkey registration or sign-in an older version stored (only swept, once expired).
    Register,
    #[serde(rename = "signin")]
    SignIn,
    /// Any other kind a record may carry: never taken for a form.
    #[serde(other)]
    Other,
}

/// A passkey ceremony that completed: remembered, under its random id, until its sealed state
/// could no longer be opened anyway, so that it completes once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SpentCeremony {
    expires_at: u64,
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
