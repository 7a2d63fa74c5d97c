//! Random ids, secrets and their digests: what the records (people, grants, approvals) and the
//! PostgreSQL engine (its replica id) mint. A secret is handed out once and only its SHA-256
//! is stored; an id is random too but no secret.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `prefix` then `N` random bytes, base64url without padding.
pub(crate) fn random_text<const N: usize>(prefix: &str) -> String {
    let mut raw = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// A fresh random secret with a readable prefix, and its digest (what is stored).
pub fn new_secret(prefix: &str) -> (String, [u8; 32]) {
    let secret = random_text::<32>(prefix);
    let digest = digest(&secret);
    (secret, digest)
}

pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A short random id for records that are not secrets (people, grants, clients, replicas).
pub fn new_id(prefix: &str) -> String {
    random_text::<9>(prefix)
}
