//! The sled engine of the key-value layer: the embedded store in one directory, held by one
//! process (the default, and always the isolated server's). Here: opening it (a second opener
//! is refused as `StoreError::Locked`), sled's errors as `StoreError`, an atomic batch over
//! several trees as one sled transaction, and the dump of every tree that `store migrate`
//! copies into PostgreSQL. The trees' point operations are sled's own, called from `kv.rs`.

use std::path::Path;

use sled::Transactional;

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
    let mut out = Vec::new();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        if name == "__sled__default" {
            continue;
        }
        let tree = db.open_tree(&name)?;
        let mut entries = Vec::new();
        for entry in tree.iter() {
            let (k, v) = entry?;
            entries.push((k.to_vec(), v.to_vec()));
        }
        out.push((name, entries));
    }
    Ok(out)
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
