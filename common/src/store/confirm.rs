//! Two-step confirmation for high-risk actions. The first call stores a pending confirmation
//! bound to tenant, tool and the exact arguments (by digest) and hands out a random code; only a
//! second call carrying that code, with the same arguments, before it expires, may act. A code
//! is consumed atomically on first use — matching or not — so it can never act twice, and it
//! exists only in the store of the instance that issued it.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::StoreError;

#[derive(Debug, Error)]
pub enum ConfirmError {
    #[error(
        "confirmation code is not valid here (unknown, already used, or issued by another instance); \
         call again without confirmation_code for a fresh preview"
    )]
    Unknown,
    #[error("confirmation code expired; call again without confirmation_code for a fresh preview")]
    Expired,
    #[error(
        "confirmation code was issued for a different action or different arguments and is now void; \
         call again without confirmation_code for a fresh preview"
    )]
    Mismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    tenant: String,
    tool: String,
    args_digest: String,
    expires_at_ms: u64,
}

fn code_key(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

#[derive(Clone)]
pub struct Confirmations {
    tree: sled::Tree,
}

impl Confirmations {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    pub fn issue(
        &self,
        tenant: &str,
        tool: &str,
        args_digest: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<String, StoreError> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let code = format!("cfm_{}", hex::encode(raw));
        let pending = Pending {
            tenant: tenant.to_owned(),
            tool: tool.to_owned(),
            args_digest: args_digest.to_owned(),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let value = serde_json::to_vec(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Only the code's digest is stored: a copy of the store cannot confirm anything.
        self.tree.insert(code_key(&code), value)?;
        // Drop expired codes now and then so the tree stays small.
        self.sweep(now_ms)?;
        self.tree.flush()?;
        Ok(code)
    }

    /// Consumes `code`; succeeds only if it was issued here for exactly this action.
    pub fn redeem(
        &self,
        code: &str,
        tenant: &str,
        tool: &str,
        args_digest: &str,
        now_ms: u64,
    ) -> Result<(), ConfirmError> {
        if code.len() > 64 {
            return Err(ConfirmError::Unknown);
        }
        let key = code_key(code);
        let Some(current) = self.tree.get(key).map_err(StoreError::from)? else {
            return Err(ConfirmError::Unknown);
        };
        // Atomic consume: of two concurrent redemptions, exactly one sees its swap succeed.
        let swapped = self
            .tree
            .compare_and_swap(key, Some(current.clone()), None as Option<&[u8]>)
            .map_err(StoreError::from)?;
        if swapped.is_err() {
            return Err(ConfirmError::Unknown);
        }
        // Durable before acting: after a crash the code is gone, so the action runs at most once.
        self.tree.flush().map_err(StoreError::from)?;
        let pending: Pending =
            serde_json::from_slice(&current).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if pending.expires_at_ms <= now_ms {
            return Err(ConfirmError::Expired);
        }
        if pending.tenant != tenant || pending.tool != tool || pending.args_digest != args_digest {
            return Err(ConfirmError::Mismatch);
        }
        Ok(())
    }

    /// Drops every pending confirmation of `tenant` (the tenant is being removed).
    pub fn forget_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let theirs = serde_json::from_slice::<Pending>(&value)
                .map(|p| p.tenant == tenant)
                .unwrap_or(false);
            if theirs {
                self.tree.remove(key)?;
            }
        }
        self.tree.flush()?;
        Ok(())
    }

    fn sweep(&self, now_ms: u64) -> Result<(), StoreError> {
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let expired = serde_json::from_slice::<Pending>(&value)
                .map(|p| p.expires_at_ms + 3_600_000 <= now_ms)
                .unwrap_or(true);
            if expired {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmations() -> (tempfile::TempDir, Confirmations) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let c = Confirmations::new(db.open_tree("c").unwrap());
        (dir, c)
    }

    #[test]
    fn a_code_acts_once_for_exactly_its_action() {
        let (_d, c) = confirmations();
        let code = c
            .issue("acme", "dns_create_record", "d1", 1_000, 60_000)
            .unwrap();
        assert!(
            c.redeem(&code, "acme", "dns_create_record", "d1", 2_000)
                .is_ok()
        );
        assert!(matches!(
            c.redeem(&code, "acme", "dns_create_record", "d1", 2_000),
            Err(ConfirmError::Unknown)
        ));

        let code = c
            .issue("acme", "dns_create_record", "d1", 1_000, 60_000)
            .unwrap();
        assert!(matches!(
            c.redeem(&code, "acme", "dns_create_record", "d2", 2_000),
            Err(ConfirmError::Mismatch)
        ));
        assert!(matches!(
            c.redeem(&code, "acme", "dns_create_record", "d1", 2_000),
            Err(ConfirmError::Unknown)
        ));

        let code = c.issue("acme", "t", "d", 1_000, 60_000).unwrap();
        assert!(matches!(
            c.redeem(&code, "acme", "t", "d", 61_000),
            Err(ConfirmError::Expired)
        ));
        assert!(matches!(
            c.redeem("cfm_made_up", "acme", "t", "d", 0),
            Err(ConfirmError::Unknown)
        ));

        let code = c.issue("acme", "t", "d", 1_000, 60_000).unwrap();
        assert!(matches!(
            c.redeem(&code, "globex", "t", "d", 2_000),
            Err(ConfirmError::Mismatch)
        ));
    }
}
