//! The audit log: one record per tool call and per admin action, in its own sled tree, keyed by
//! time so reads are range scans and retention is a prefix delete. Records hold a digest of the
//! arguments, never their values: no tokens, secrets or CMS field contents.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::StoreError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The tenant acted for, or `admin` for admin actions.
    pub tenant: String,
    /// Tool name, or `admin:<action>`.
    pub action: String,
    /// First 16 bytes of the SHA-256 of the canonical arguments, hex.
    pub args_digest: String,
    /// `ok`, or the kind of failure (`invalid_arguments`, `not_yours`, `upstream`, …).
    pub outcome: String,
    pub duration_us: u64,
    pub request_id: String,
}

#[derive(Clone)]
pub struct AuditLog {
    tree: sled::Tree,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Digest of a JSON value; `serde_json` maps keep keys sorted, so equal arguments digest equally.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}

impl AuditLog {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// Appends a record. Not flushed per call: sled's periodic flush bounds loss on a crash to
    /// a fraction of a second, and a flush per tool call would cost more than the call.
    pub fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut key = [0u8; 12];
        key[..8].copy_from_slice(&record.at_ms.to_be_bytes());
        key[8..].copy_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let value = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// Newest first, at most `limit`, optionally one tenant's, from `since_ms` on.
    pub fn query(
        &self,
        tenant: Option<&str>,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in self.tree.range(since_ms.to_be_bytes()..).rev() {
            let (_, value) = entry?;
            let record: AuditRecord =
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if tenant.is_none_or(|t| record.tenant == t) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Deletes records older than `before_ms`; returns how many.
    pub fn prune(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.tree.range(..before_ms.to_be_bytes()) {
            let (key, _) = entry?;
            self.tree.remove(key)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64, tenant: &str) -> AuditRecord {
        AuditRecord {
            at_ms,
            tenant: tenant.into(),
            action: "whoami".into(),
            args_digest: digest(&serde_json::json!({})),
            outcome: "ok".into(),
            duration_us: 1,
            request_id: "r".into(),
        }
    }

    #[test]
    fn query_filters_orders_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::new(db.open_tree("audit").unwrap());
        for (at, t) in [(10, "a"), (20, "b"), (30, "a"), (40, "a")] {
            log.append(&record(at, t)).unwrap();
        }
        let a: Vec<u64> = log
            .query(Some("a"), 0, 10)
            .unwrap()
            .iter()
            .map(|r| r.at_ms)
            .collect();
        assert_eq!(a, [40, 30, 10]);
        assert_eq!(log.query(None, 25, 10).unwrap().len(), 2);
        assert_eq!(log.query(None, 0, 1).unwrap()[0].at_ms, 40);
        assert_eq!(log.prune(25).unwrap(), 2);
        assert_eq!(log.query(None, 0, 10).unwrap().len(), 2);
    }
}
