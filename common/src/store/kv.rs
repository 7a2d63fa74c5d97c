//! The key-value layer under the store: named trees of byte keys and values, with the handful
//! of operations the store's records need (point reads and writes, take, compare-and-swap,
//! scans, and an atomic batch over several trees). Two engines offer it: sled (`sled.rs`),
//! embedded, one process; PostgreSQL (`pg.rs`), shared by every replica. `Db` and `Tree` are
//! one or the other, and this file alone dispatches between them. The records above it
//! (`records.rs`, `people.rs`, `approvals.rs`) are written once against this layer, so both
//! backends keep the same contract by construction; what differs they ask here in the
//! layer's own words: whether other processes share the trees, registering a [`Follower`] of
//! the change feed, whether this process may still vouch for what it holds in memory.

use std::path::Path;
use std::sync::Arc;

pub use super::Entry;
pub use super::pg::Follower;
use super::pg::{Pg, PgTree};
use super::{EngineWrite, StoreError};

/// The engine the trees live in.
#[derive(Clone)]
pub enum Db {
    Sled(sled::Db, Barrier),
    Pg(Pg),
}

/// One named tree of the engine.
#[derive(Clone)]
pub enum Tree {
    Sled(sled::Tree, Barrier),
    Pg(PgTree),
}

/// sled's writes all go through it, so that a backup reads every tree as of one moment
/// (`sled.rs`); PostgreSQL's backup is one repeatable-read transaction instead.
pub type Barrier = Arc<super::sled::Recorder>;

/// Every tree by name with all its entries.
pub type Trees = Vec<(String, Vec<Entry>)>;

/// One write of an atomic batch: `value` `None` deletes the key.
pub struct Write<'a> {
    pub tree: &'a Tree,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Db {
    /// The embedded engine (sled) in `dir`, created if missing; `Locked` if another process
    /// has it open.
    pub(super) fn embedded(dir: &Path) -> Result<Self, StoreError> {
        super::sled::open(dir).map(|db| Db::Sled(db, Barrier::default()))
    }

    /// A tree named at run time (a restore's): sled opens any; PostgreSQL's trees are rows.
    pub(super) fn open_tree_named(&self, name: &str) -> Result<Tree, StoreError> {
        match self {
            Db::Sled(db, barrier) => Ok(Tree::Sled(db.open_tree(name)?, barrier.clone())),
            Db::Pg(_) => Err(StoreError::Io(
                "a PostgreSQL restore goes through import".into(),
            )),
        }
    }

    pub fn open_tree(&self, name: &'static str) -> Result<Tree, StoreError> {
        Ok(match self {
            Db::Sled(db, barrier) => Tree::Sled(db.open_tree(name)?, barrier.clone()),
            Db::Pg(pg) => Tree::Pg(pg.tree(name)),
        })
    }

    /// Makes every write so far durable (PostgreSQL's are once their statement returns).
    pub fn flush(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(db, _) => {
                db.flush()?;
                Ok(())
            }
            Db::Pg(_) => Ok(()),
        }
    }

    /// Applies every write or none.
    pub fn batch(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        match self {
            Db::Sled(_, barrier) => {
                let writes = engine_writes(writes, |tree| match tree {
                    Tree::Sled(tree, _) => Some(tree),
                    Tree::Pg(_) => None,
                })?;
                let keys: Vec<_> = writes.iter().map(|(tree, key, _)| (*tree, *key)).collect();
                barrier.write(&keys, || super::sled::batch(&writes))
            }
            Db::Pg(pg) => pg.batch(&engine_writes(writes, |tree| match tree {
                Tree::Pg(tree) => Some(tree),
                Tree::Sled(..) => None,
            })?),
        }
    }

    /// Whether other processes write these trees too (PostgreSQL's replicas). In-memory copies
    /// of them are then the change feed's to keep in step, in commit order, and a writer here
    /// must leave them alone; with sled every write is this process's own.
    pub(super) fn shared(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// Registers an in-memory copy for the change feed to keep in step (before
    /// [`Self::follow`]). sled has no feed: there the writers keep their copies themselves.
    pub(super) fn add_follower(&self, follower: Arc<dyn Follower>) {
        if let Db::Pg(pg) = self {
            pg.add_follower(follower);
        }
    }

    /// Loads every follower, then keeps them in step in the background (PostgreSQL).
    pub(super) fn follow(&self) -> Result<(), StoreError> {
        match self {
            Db::Pg(pg) => pg.follow(),
            Db::Sled(..) => Ok(()),
        }
    }

    /// `Unavailable` once this process may no longer act on its in-memory copies: with
    /// PostgreSQL once its lease has ended (it may have missed a revocation); never with sled.
    pub(super) fn vouch(&self) -> Result<(), StoreError> {
        match self {
            Db::Pg(pg) => pg.vouch(),
            Db::Sled(..) => Ok(()),
        }
    }

    /// Every tree with all its entries, for `store migrate` (from sled only).
    pub(super) fn dump(&self) -> Result<Vec<(String, Vec<Entry>)>, StoreError> {
        match self {
            Db::Sled(db, _) => super::sled::dump(db),
            Db::Pg(_) => Err(StoreError::Io("only a sled store can be copied out".into())),
        }
    }

    /// Every tree with all its entries as of one moment, while the store serves and nobody
    /// waits: sled's read corrected by the writes' undo log (`sled.rs`), PostgreSQL's one
    /// repeatable-read transaction. With the audit records of that moment
    /// when the engine holds them (PostgreSQL's table; sled's live beside it in files).
    pub(super) fn snapshot(&self) -> Result<(Trees, Option<Vec<String>>), StoreError> {
        match self {
            Db::Sled(db, barrier) => {
                let mut trees = barrier.snapshot(db)?;
                // As PostgreSQL answers: by name, empty trees left out.
                trees.retain(|(_, entries)| !entries.is_empty());
                trees.sort_by(|a, b| a.0.cmp(&b.0));
                Ok((trees, None))
            }
            Db::Pg(pg) => {
                let (trees, audit) = pg.export()?;
                Ok((trees, Some(audit)))
            }
        }
    }

    /// The PostgreSQL engine, when that is this one (`store.rs` hands its replica to the
    /// runtime).
    pub fn pg(&self) -> Option<&Pg> {
        match self {
            Db::Pg(pg) => Some(pg),
            Db::Sled(..) => None,
        }
    }
}

/// A batch as one engine takes it, each write's tree unwrapped by `engine`; refused whole if a
/// write is to another engine's tree.
fn engine_writes<'a, T>(
    writes: &'a [Write<'_>],
    engine: impl Fn(&'a Tree) -> Option<&'a T>,
) -> Result<Vec<EngineWrite<'a, T>>, StoreError> {
    writes
        .iter()
        .map(|write| match engine(write.tree) {
            Some(tree) => Ok((tree, write.key.as_slice(), write.value.as_deref())),
            None => Err(StoreError::Io("one batch cannot span two engines".into())),
        })
        .collect()
}

impl Tree {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Tree::Sled(t, _) => Ok(t.get(key)?.map(|v| v.to_vec())),
            Tree::Pg(t) => t.get(key.as_ref()),
        }
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t, barrier) => barrier.write(&[(t, key.as_ref())], || {
                t.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }),
            Tree::Pg(t) => t.write(key.as_ref(), Some(value.as_ref())),
        }
    }

    /// Deletes the key and returns what it held: of several concurrent callers, exactly one
    /// gets the value (the "take" that makes invites, codes and ceremonies single-use).
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Tree::Sled(t, barrier) => barrier.write(&[(t, key.as_ref())], || {
                Ok(t.remove(key.as_ref())?.map(|v| v.to_vec()))
            }),
            Tree::Pg(t) => t.take(key.as_ref()),
        }
    }

    /// Sets `new` only if the key holds exactly `old` (`None`: absent); whether it did.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t, barrier) => barrier.write(&[(t, key.as_ref())], || {
                Ok(t.compare_and_swap(key.as_ref(), old, new)?.is_ok())
            }),
            Tree::Pg(t) => t.compare_and_swap(key.as_ref(), old, new),
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Result<Vec<Entry>, StoreError> {
        self.scan_prefix(b"")
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        match self {
            Tree::Sled(t, _) => t
                .scan_prefix(prefix)
                .map(|e| {
                    let (k, v) = e?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect(),
            Tree::Pg(t) => t.scan_prefix(prefix),
        }
    }

    /// Makes this tree's writes so far durable (PostgreSQL's are once their statement returns).
    pub fn flush(&self) -> Result<(), StoreError> {
        if let Tree::Sled(t, _) = self {
            t.flush()?;
        }
        Ok(())
    }

    /// One batch write of this tree.
    pub fn write(&self, key: impl AsRef<[u8]>, value: Option<Vec<u8>>) -> Write<'_> {
        Write {
            tree: self,
            key: key.as_ref().to_vec(),
            value,
        }
    }
}
