//! Notices of upstream writes between replicas: a write made through one replica (a CMS draft)
//! makes answers that every replica's read cache may hold stale. The writer records what it
//! made stale (an upstream and a path prefix) in a watched tree, so the change feed tells every
//! replica, and returns once they have applied it; each replica's cache hears it through a
//! follower. With one process (sled) there is no one to tell: its own cache is all there is.

use std::sync::Arc;

use super::Store;
use crate::store::kv::{Entry, Follower};
use crate::store::{StoreError, encode};

/// The watched tree of notices: key = what was written (`<upstream> <path prefix>`), value =
/// when (Unix seconds), so each notice is a change even when the key is not new.
pub(crate) const TREE: &str = "upstream_writes";

/// What a replica's read cache hears: a prefix written elsewhere, or `None` when the feed was
/// reloaded (anything may have changed meanwhile).
pub type Hear = dyn Fn(Option<&str>) + Send + Sync;

impl Store {
    /// Tells the other replicas sharing this store that an upstream write made `what` stale;
    /// returns once every live replica has applied it. Nothing to do with one process.
    pub fn announce_upstream_write(&self, what: &str) -> Result<(), StoreError> {
        match &self.upstream_writes {
            Some(tree) => tree.insert(what.as_bytes(), encode(&crate::now_unix())?),
            None => Ok(()),
        }
    }

    /// Calls `hear` with every upstream write announced from now on (by any replica, this one
    /// included). Nothing is ever heard with one process.
    pub fn hear_upstream_writes(&self, hear: Box<Hear>) {
        if self.upstream_writes.is_some() {
            self.db.add_follower(Arc::new(Notices(hear)));
        }
    }
}

struct Notices(Box<Hear>);

impl Follower for Notices {
    fn apply(&self, tree: &str, key: &[u8], _value: Option<&[u8]>) {
        if tree == TREE {
            (self.0)(Some(&String::from_utf8_lossy(key)));
        }
    }

    fn replace(&self, tree: &str, _entries: &[Entry], first: bool) {
        if tree == TREE && first {
            (self.0)(None);
        }
    }
}
