//! Bearer tokens: JWTs signed (HS256) with the server's own key, `sub` = tenant, `aud` = the
//! server's public URL, `jti` = token id. A token passes only when its signature, audience and
//! expiry check out *and* the stored record for its SHA-256 agrees and is not revoked.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::TenantId;
use crate::secrets::{SecretError, write_private_file};
use crate::store::{Store, StoreError, TokenRecord, TokenTenant};
use crate::tenant::Tenant;
use crate::tenant_state::TenantLive;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed bearer token")]
    Malformed,
    #[error("token signature is not valid for this server")]
    BadSignature,
    #[error("token was issued for another server")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not known to this server")]
    Unknown,
    #[error("token has been revoked")]
    Revoked,
    #[error("token's tenant no longer exists")]
    NoTenant,
    #[error("token store unavailable")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::Unknown => "unknown",
            AuthError::Revoked => "revoked",
            AuthError::NoTenant => "no_tenant",
            AuthError::Store(_) => "store_unavailable",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// Signs and checks this server's tokens. Cheap to share behind an `Arc`.
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: String,
    /// Tokens whose signature, audience and claims checked out, by SHA-256 of the exact token:
    /// the same token again needs only its expiry and its stored record checked (the record is
    /// read on every request, so a revocation still counts at once). Bounded; a restart, and a
    /// new key with it, empties it.
    verified: quick_cache::sync::Cache<[u8; 32], Verified>,
}

/// What a verified token's claims say that every request still needs.
#[derive(Clone)]
struct Verified {
    sub: Arc<str>,
    exp: u64,
}

/// Verified tokens kept: a studio's tokens in use, many times over; about 100 bytes each.
const VERIFIED_TOKENS: usize = 4096;

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token: the only moment the plaintext exists.
pub struct IssuedToken {
    pub token: SecretString,
    pub record: TokenRecord,
}

impl TokenAuthority {
    /// Loads the signing key from `path`, generating it (mode 0600) on first start.
    pub fn load_or_generate(path: &Path, audience: &str) -> Result<Self, SecretError> {
        let shown = path.display().to_string();
        let key = match std::fs::read_to_string(path) {
            // An empty or short key (a first start interrupted mid-write, a truncated copy)
            // would sign tokens anyone could forge: refuse it rather than use it.
            Ok(text) => match hex::decode(text.trim()) {
                Ok(key) if key.len() >= MIN_SIGNING_KEY_BYTES => key,
                _ => return Err(SecretError::BadSigningKey { path: shown }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private_file(path, hex::encode(&key).as_bytes()).map_err(|source| {
                    SecretError::KeyFile {
                        path: shown,
                        source,
                    }
                })?;
                key
            }
            Err(source) => {
                return Err(SecretError::KeyFile {
                    path: shown,
                    source,
                });
            }
        };
        Ok(Self::from_key(&key, audience))
    }

    pub fn from_key(key: &[u8], audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            audience: audience.to_owned(),
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        }
    }

    /// Signs a new token and stores its record (by hash). The plaintext is returned once.
    pub fn issue(
        &self,
        store: &Store,
        tenant: &TenantId,
        label: &str,
        ttl_secs: u64,
        now: u64,
    ) -> Result<IssuedToken, AuthError> {
        let mut id = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let claims = Claims {
            sub: tenant.to_string(),
            aud: self.audience.clone(),
            jti: format!("tok_{}", hex::encode(id)),
            iat: now,
            exp: now.saturating_add(ttl_secs),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Malformed)?;
        let record = TokenRecord {
            id: claims.jti,
            tenant: tenant.clone(),
            label: label.chars().take(200).collect(),
            created_at: now,
            expires_at: Some(claims.exp),
            revoked_at: None,
        };
        store.insert_token(&token_hash(&token), &record)?;
        Ok(IssuedToken {
            token: SecretString::from(token),
            record,
        })
    }

    /// The whole check, run on every MCP request.
    pub fn authenticate(&self, store: &Store, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty()
            || token.len() > 4096
            || token.bytes().filter(|b| *b == b'.').count() != 2
        {
            return Err(AuthError::Malformed);
        }
        let hash = token_hash(token);
        let verified = match self.verified.get(&hash) {
            // Expired as jsonwebtoken counts it (no leeway): `exp` is the last valid second.
            Some(v) if v.exp < jsonwebtoken::get_current_timestamp() => {
                return Err(AuthError::Expired);
            }
            Some(v) => v,
            None => {
                let claims =
                    jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                        .map_err(|e| {
                            use jsonwebtoken::errors::ErrorKind as K;
                            match e.kind() {
                                K::InvalidSignature | K::InvalidAlgorithm => {
                                    AuthError::BadSignature
                                }
                                K::InvalidAudience => AuthError::WrongAudience,
                                K::ExpiredSignature => AuthError::Expired,
                                _ => AuthError::Malformed,
                            }
                        })?
                        .claims;
                let verified = Verified {
                    sub: claims.sub.into(),
                    exp: claims.exp,
                };
                self.verified.insert(hash, verified.clone());
                verified
            }
        };
        // The key is the hash of this exact token, so a match pins its id as well.
        match store.token_tenant(&hash, &verified.sub)? {
            TokenTenant::Tenant(tenant, live) => Ok(Caller {
                tenant,
                live,
                actor: None,
            }),
            TokenTenant::Unknown => Err(AuthError::Unknown),
            TokenTenant::Revoked => Err(AuthError::Revoked),
            TokenTenant::NoTenant => Err(AuthError::NoTenant),
        }
    }
}

/// Who a request speaks for, whichever door it came through: the tenant, its live state
/// (rate-limit bucket, metrics) and, for an OAuth access token, the person's connection.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub live: Arc<TenantLive>,
    /// The grant an OAuth access token belongs to; none for a static token.
    pub actor: Option<Arc<crate::store::people::AccessEntry>>,
}

/// The credential of an `Authorization: Bearer <credential>` header value. The scheme is
/// case-insensitive (RFC 7235 §2.1); an empty credential is no credential.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim_start().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// Signing keys shorter than this are refused: HS256 wants at least the hash's 32 bytes.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WebflowId;
    use crate::tenant::TenantSpec;
    use secrecy::ExposeSecret;

    fn setup() -> (tempfile::TempDir, Store, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let id = TenantId::parse("acme").unwrap();
        let tenant = TenantSpec {
            name: "Acme".into(),
            webflow_sites: vec![WebflowId::parse("site", "aaaaaaaaaaaaaaaaaaaaaaaa").unwrap()],
            ..Default::default()
        }
        .into_tenant(id.clone(), 0)
        .unwrap();
        store.add_tenant(tenant).unwrap();
        (dir, store, id)
    }

    #[test]
    fn bearer_schemes_are_case_insensitive_and_never_empty() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc "), Some("abc"));
        assert_eq!(bearer("bearer  abc"), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn an_empty_or_short_signing_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        for text in ["", "  \n", "abcd", &"ab".repeat(31)] {
            std::fs::write(&path, text).unwrap();
            let err = TokenAuthority::load_or_generate(&path, "http://a").unwrap_err();
            assert!(matches!(err, SecretError::BadSigningKey { .. }), "{err}");
        }
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        assert!(TokenAuthority::load_or_generate(&path, "http://a").is_ok());
    }

    /// A token verified once is not verified again, but its expiry and its record still are.
    #[test]
    fn a_verified_token_still_expires_and_is_still_revoked() {
        let (_dir, store, acme) = setup();
        let now = crate::now_unix();
        let auth = TokenAuthority::from_key(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "http://a");
        let issued = auth.issue(&store, &acme, "t", 3600, now).unwrap();
        let token = issued.token.expose_secret();
        assert!(auth.authenticate(&store, token).is_ok());
        let hash = token_hash(token);
        assert!(
            auth.verified.get(&hash).is_some(),
            "kept after its first check"
        );
        assert!(auth.authenticate(&store, token).is_ok());
        // Its expiry passes (as if time moved on): refused, from what was kept.
        auth.verified.insert(
            hash,
            Verified {
                sub: "acme".into(),
                exp: now - 1,
            },
        );
        assert!(matches!(
            auth.authenticate(&store, token),
            Err(AuthError::Expired)
        ));
        // Revoked: refused at once, though its signature was checked before.
        let fresh = auth.issue(&store, &acme, "u", 3600, now).unwrap();
        let fresh_token = fresh.token.expose_secret();
        assert!(auth.authenticate(&store, fresh_token).is_ok());
        store.revoke_token(&fresh.record.id, now).unwrap();
        assert!(matches!(
            auth.authenticate(&store, fresh_token),
            Err(AuthError::Revoked)
        ));
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let (_dir, store, acme) = setup();
        let now = crate::now_unix();
        let auth = TokenAuthority::from_key(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "http://a");
        let issued = auth.issue(&store, &acme, "t", 3600, now).unwrap();
        let token = issued.token.expose_secret();
        assert_eq!(auth.authenticate(&store, token).unwrap().tenant.id, acme);

        let other_key = TokenAuthority::from_key(b"k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2", "http://a");
        assert!(matches!(
            other_key.authenticate(&store, token),
            Err(AuthError::BadSignature)
        ));
        let other_aud = TokenAuthority::from_key(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "http://b");
        assert!(matches!(
            other_aud.authenticate(&store, token),
            Err(AuthError::WrongAudience)
        ));
        assert!(matches!(
            auth.authenticate(&store, "abc"),
            Err(AuthError::Malformed)
        ));

        let expired = auth.issue(&store, &acme, "old", 10, now - 100).unwrap();
        assert!(matches!(
            auth.authenticate(&store, expired.token.expose_secret()),
            Err(AuthError::Expired)
        ));

        // Signed with our key but never stored (e.g. a forged issue or a wiped record).
        let stray = TokenAuthority::from_key(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "http://a");
        let other_dir = tempfile::tempdir().unwrap();
        let other_store = Store::open(other_dir.path()).unwrap();
        let unstored = stray.issue(&other_store, &acme, "x", 3600, now).unwrap();
        assert!(matches!(
            auth.authenticate(&store, unstored.token.expose_secret()),
            Err(AuthError::Unknown)
        ));

        store.revoke_token(&issued.record.id, now).unwrap();
        assert!(matches!(
            auth.authenticate(&store, token),
            Err(AuthError::Revoked)
        ));
    }
}
