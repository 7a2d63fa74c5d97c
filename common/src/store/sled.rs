//! The sled engine of the key-value layer: the embedded store in one directory, held by one
//! process (the default, and always the isolated server's). Here: opening it (a second opener
//! is refused as `StoreError::Locked`), sled's errors as `StoreError`, an atomic batch over
//! several trees as one sled transaction, the dump of every tree that `store migrate`
//! copies into PostgreSQL, and the [`Recorder`] that makes a backup's read of every tree one
//! moment's while writers go on. The trees' point operations are sled's own, called from
//! `kv.rs`.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use sled::{IVec, Transactional};

use super::{EngineWrite, Entry, StoreError};

/// The sled database in `dir`, created if missing; `Locked` if another process has it open.
pub(super) fn open(dir: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir)
        // Small cache: the working set is token records and tenants, and the product's
        // memory goal (< 50 MB with 100k tokens) leaves little room for more.
        .cache_capacity(8 * 1024 * 1024)
        .flush_every_ms(Some(200))
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            other => error(other),
        })
}

/// Every write (a value `None` deletes its key), or none, in one transaction over the trees
/// the writes name.
pub(super) fn batch(writes: &[EngineWrite<'_, sled::Tree>]) -> Result<(), StoreError> {
    let mut trees: Vec<&sled::Tree> = Vec::new();
    let mut slots = Vec::with_capacity(writes.len());
    for (tree, _, _) in writes {
        let slot = match trees.iter().position(|t| t.name() == tree.name()) {
            Some(i) => i,
            None => {
                trees.push(*tree);
                trees.len() - 1
            }
        };
        slots.push(slot);
    }
    trees.as_slice().transaction(|view| {
        for ((_, key, value), slot) in writes.iter().zip(&slots) {
            let tree = &view[*slot];
            match value {
                Some(value) => tree.insert(*key, *value)?,
                None => tree.remove(*key)?,
            };
        }
        Ok::<_, sled::transaction::ConflictableTransactionError<StoreError>>(())
    })?;
    Ok(())
}

/// Every tree but sled's own default one, with all its entries (for `store migrate`).
pub(super) fn dump(db: &sled::Db) -> Result<Vec<(String, Vec<Entry>)>, StoreError> {
    Ok(own(dump_shared(db)?))
}

/// Every tree by name with its entries as sled holds them.
type Shared = Vec<(String, Vec<(IVec, IVec)>)>;

/// Every tree's entries as sled holds them (a value longer than a few bytes is shared, not
/// copied); [`own`] copies them.
fn dump_shared(db: &sled::Db) -> Result<Shared, StoreError> {
    let mut out = Vec::new();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        if name == "__sled__default" {
            continue;
        }
        let tree = db.open_tree(&name)?;
        let entries = tree.iter().collect::<Result<Vec<_>, _>>()?;
        out.push((name, entries));
    }
    Ok(out)
}

fn own(trees: Shared) -> Vec<(String, Vec<Entry>)> {
    trees
        .into_iter()
        .map(|(name, entries)| {
            let entries = entries
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            (name, entries)
        })
        .collect()
}

/// sled has no snapshot across trees. A backup reads every tree while writers go on, and the
/// recorder makes that read one moment's: from the moment the read begins until it ends, each
/// write first keeps what its keys held before their first change (an undo log), and the read
/// is then corrected with it. Writers never wait for the read, only for the instant it begins
/// or ends (while writes in flight finish); during it they are serialized, each with one point
/// read per key more. Every sled write goes through [`Recorder::write`] (`kv.rs`).
#[derive(Default)]
pub struct Recorder {
    /// Writers hold it shared; a snapshot's beginning and end hold it alone.
    gate: RwLock<()>,
    /// Whether a snapshot is reading: changed only with `gate` held alone.
    recording: AtomicBool,
    /// What each key changed since the snapshot began held before, by tree and key.
    undo: Mutex<HashMap<(IVec, IVec), Option<IVec>>>,
    /// One snapshot at a time.
    reading: Mutex<()>,
}

impl Recorder {
    /// Runs `write`, which changes `keys` of their trees; during a snapshot, first keeps what
    /// each key held before its first change since the snapshot began.
    pub(super) fn write<R>(
        &self,
        keys: &[(&sled::Tree, &[u8])],
        write: impl FnOnce() -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _writing = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if !self.recording.load(Ordering::Acquire) {
            return write();
        }
        let mut undo = self.undo.lock().unwrap_or_else(PoisonError::into_inner);
        for (tree, key) in keys {
            if let Slot::Vacant(slot) = undo.entry((tree.name(), IVec::from(*key))) {
                slot.insert(tree.get(key)?);
            }
        }
        write()
    }

    /// Every tree (but sled's default one) with all its entries, as of the moment this began.
    pub(super) fn snapshot(&self, db: &sled::Db) -> Result<Vec<(String, Vec<Entry>)>, StoreError> {
        let _alone = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        self.recording_is(true);
        let walked = dump_shared(db);
        let undo = self.recording_is(false);
        let mut trees = walked?;
        let mut by_tree: BTreeMap<String, Vec<(IVec, Option<IVec>)>> = BTreeMap::new();
        for ((tree, key), before) in undo {
            let name = String::from_utf8_lossy(&tree).into_owned();
            by_tree.entry(name).or_default().push((key, before));
        }
        for (name, changes) in by_tree {
            let index = match trees.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    trees.push((name, Vec::new()));
                    trees.len() - 1
                }
            };
            let entries = &mut trees[index].1;
            let mut held: BTreeMap<IVec, IVec> = std::mem::take(entries).into_iter().collect();
            for (key, before) in changes {
                match before {
                    Some(value) => held.insert(key, value),
                    None => held.remove(&key),
                };
            }
            *entries = held.into_iter().collect();
        }
        Ok(own(trees))
    }

    /// Starts or stops recording, once the writes in flight are done; the undo log kept.
    fn recording_is(&self, on: bool) -> HashMap<(IVec, IVec), Option<IVec>> {
        let _alone = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.recording.store(on, Ordering::Release);
        std::mem::take(&mut *self.undo.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn error(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if io.raw_os_error() == Some(28) => StoreError::Full,
        sled::Error::Io(io) => StoreError::Io(io.to_string()),
        sled::Error::Corruption { .. } => StoreError::Corrupt("sled reported corruption".into()),
        other => StoreError::Io(other.to_string()),
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        error(e)
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Db;

    /// Writers that keep trees `a` and `b` equal with each batch (updates, new keys and
    /// removals) never let a snapshot taken among them
    /// see the two differ: each snapshot is one moment's, though it reads `a` before `b` and
    /// the writers never wait for it.
    #[test]
    fn a_snapshot_among_writers_is_one_moments() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::embedded(dir.path()).unwrap();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        for i in 0..20_000u32 {
            let key = i.to_be_bytes();
            db.batch(&[
                a.write(key, Some(b"0".to_vec())),
                b.write(key, Some(b"0".to_vec())),
            ])
            .unwrap();
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        let written = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for writer in 0..3u32 {
                let (db, a, b, stop, written) = (&db, &a, &b, &stop, &written);
                scope.spawn(move || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = ((n.wrapping_mul(7919) + writer * 101) % 25_000).to_be_bytes();
                        let value = format!("{writer}-{n}").into_bytes();
                        let write = |v: Option<Vec<u8>>| [a.write(key, v.clone()), b.write(key, v)];
                        if n.is_multiple_of(3) {
                            db.batch(&write(None)).unwrap();
                        } else {
                            db.batch(&write(Some(value))).unwrap();
                        }
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let seen: Vec<_> = (0..5)
                .map(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    let before = written.load(Ordering::Relaxed);
                    let snapshot = db.snapshot();
                    (snapshot, written.load(Ordering::Relaxed) - before)
                })
                .collect();
            stop.store(true, Ordering::Relaxed);
            let during: u64 = seen.iter().map(|(_, n)| n).sum();
            assert!(during > 0, "no write ran while a snapshot read");
            for (snapshot, _) in seen {
                let (trees, _) = snapshot.unwrap();
                let tree = |name: &str| {
                    trees
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, entries)| entries.clone())
                        .unwrap_or_default()
                };
                let (seen_a, seen_b) = (tree("a"), tree("b"));
                assert!(seen_a.len() > 10_000, "{}", seen_a.len());
                assert!(
                    seen_a == seen_b,
                    "the snapshot saw `a` and `b` at different moments"
                );
            }
        });
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path()).unwrap();
        let second = open(dir.path());
        assert!(
            matches!(second, Err(StoreError::Locked(_))),
            "{:?}",
            second.err()
        );
    }
}
