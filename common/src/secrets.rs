//! Upstream credentials, encrypted at rest with ChaCha20-Poly1305. The key comes from a file
//! named by the configuration, never from the database, so a copy of the store alone reveals
//! nothing. Each ciphertext is bound (as associated data) to its tenant and kind, so a blob
//! copied to another tenant's slot fails to decrypt instead of lending its credential.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::TenantId;

const NONCE_LEN: usize = 12;

/// Which upstream a stored credential is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    Webflow,
    /// A Webflow App's OAuth access token (code grant): the only kind Webflow accepts on its
    /// custom code endpoints, where a site token is refused.
    #[serde(rename = "webflow-app")]
    WebflowApp,
    Plausible,
    Github,
    Cloudflare,
    Stripe,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Webflow => "webflow",
            SecretKind::WebflowApp => "webflow-app",
            SecretKind::Plausible => "plausible",
            SecretKind::Github => "github",
            SecretKind::Cloudflare => "cloudflare",
            SecretKind::Stripe => "stripe",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "webflow" => Ok(SecretKind::Webflow),
            "webflow-app" => Ok(SecretKind::WebflowApp),
            "plausible" => Ok(SecretKind::Plausible),
            "github" => Ok(SecretKind::Github),
            "cloudflare" => Ok(SecretKind::Cloudflare),
            "stripe" => Ok(SecretKind::Stripe),
            other => Err(format!(
                "unknown secret kind `{other}` (use webflow, webflow-app, plausible, github, \
                 cloudflare or stripe)"
            )),
        }
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("master key file {path} must hold 64 hex characters (a 32-byte key)")]
    BadKey { path: String },
    #[error(
        "signing key file {path} must hold at least 64 hex characters (a 32-byte key); delete it to generate a new one (every issued token then stops working)"
    )]
    BadSigningKey { path: String },
    #[error("stored secret could not be decrypted: wrong master key or tampered data")]
    Decrypt,
    #[error("secret could not be encrypted")]
    Encrypt,
}

/// The key that seals upstream credentials. `Debug` never shows it.
pub struct MasterKey {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Loads the key, or creates it (mode 0600) when the file does not exist yet.
    /// Returns whether it was generated so the caller can say so in the log.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), SecretError> {
        let shown = path.display().to_string();
        let io = |source| SecretError::KeyFile {
            path: shown.clone(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadKey {
                    path: shown.clone(),
                })?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey {
                    path: shown.clone(),
                })?;
                Ok((Self::from_bytes(&key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private_file(path, hex::encode(key).as_bytes()).map_err(io)?;
                Ok((Self::from_bytes(&key), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    pub fn seal(
        &self,
        tenant: &TenantId,
        kind: SecretKind,
        secret: &SecretString,
    ) -> Result<Vec<u8>, SecretError> {
        self.seal_with(
            &associated_data(tenant, kind),
            secret.expose_secret().as_bytes(),
        )
    }

    pub fn open(
        &self,
        tenant: &TenantId,
        kind: SecretKind,
        blob: &[u8],
    ) -> Result<SecretString, SecretError> {
        let plain = self.open_with(&associated_data(tenant, kind), blob)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Decrypt)
    }

    /// Seals the state of a passkey ceremony for the browser to carry from its first step to
    /// its second, so that a ceremony nobody finishes costs the store nothing. `kind` and
    /// `server` (which server started it) are associated data under a prefix no upstream
    /// secret's has: a ceremony opens only as the same kind on the same server, and never as
    /// a credential, nor a credential as a ceremony.
    pub fn seal_ceremony(
        &self,
        kind: &str,
        server: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        self.seal_with(&ceremony_data(kind, server), plain)
    }

    /// Opens what [`Self::seal_ceremony`] sealed with the same `kind` and `server`.
    pub fn open_ceremony(
        &self,
        kind: &str,
        server: &[u8],
        blob: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        self.open_with(&ceremony_data(kind, server), blob)
    }

    /// A random nonce, then the ciphertext and its tag.
    fn seal_with(&self, aad: &[u8], msg: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
            .map_err(|_| SecretError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open_with(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, SecretError> {
        if blob.len() < NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| SecretError::Decrypt)
    }
}

fn associated_data(tenant: &TenantId, kind: SecretKind) -> Vec<u8> {
    format!("studio-mcp/v1/{tenant}/{kind}").into_bytes()
}

/// `studio-mcp ceremony v1`, NUL, kind, NUL, server: differs from every upstream secret's
/// `studio-mcp/v1/…` at its eleventh byte, and the kinds (fixed words) hold no NUL.
fn ceremony_data(kind: &str, server: &[u8]) -> Vec<u8> {
    let mut aad = b"studio-mcp ceremony v1\0".to_vec();
    aad.extend_from_slice(kind.as_bytes());
    aad.push(0);
    aad.extend_from_slice(server);
    aad
}

/// Writes a file only its owner can read, creating parent folders as needed.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Written whole beside the target, then linked into place: a start interrupted mid-write
    // leaves no file (or a stray `.tmp`), never an empty or partial key at `path`. The link
    // fails if `path` exists, as `create_new` would.
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_only_opens_for_its_tenant_and_kind() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let secret = SecretString::from("wf-token-123");
        let blob = key.seal(&acme, SecretKind::Webflow, &secret).unwrap();
        assert!(!blob.windows(12).any(|w| w == b"wf-token-123"));
        let opened = key.open(&acme, SecretKind::Webflow, &blob).unwrap();
        assert_eq!(opened.expose_secret(), "wf-token-123");
        assert!(key.open(&globex, SecretKind::Webflow, &blob).is_err());
        assert!(key.open(&acme, SecretKind::Github, &blob).is_err());
        assert!(
            MasterKey::from_bytes(&[8; 32])
                .open(&acme, SecretKind::Webflow, &blob)
                .is_err()
        );
    }

    #[test]
    fn a_sealed_ceremony_opens_only_as_its_kind_on_its_server_and_never_as_a_secret() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let blob = key.seal_ceremony("signin", b"server-a", b"state").unwrap();
        assert_eq!(
            key.open_ceremony("signin", b"server-a", &blob).unwrap(),
            b"state"
        );
        assert!(key.open_ceremony("register", b"server-a", &blob).is_err());
        assert!(key.open_ceremony("signin", b"server-b", &blob).is_err());
        assert!(
            MasterKey::from_bytes(&[8; 32])
                .open_ceremony("signin", b"server-a", &blob)
                .is_err()
        );
        // Neither kind of blob opens as the other.
        let acme = TenantId::parse("acme").unwrap();
        assert!(key.open(&acme, SecretKind::Webflow, &blob).is_err());
        let secret = key
            .seal(&acme, SecretKind::Webflow, &SecretString::from("x"))
            .unwrap();
        assert!(key.open_ceremony("webflow", b"acme", &secret).is_err());
        // Cut or altered anywhere, it does not open.
        assert!(
            key.open_ceremony("signin", b"server-a", &blob[..11])
                .is_err()
        );
        for i in [0, NONCE_LEN, blob.len() - 1] {
            let mut bent = blob.clone();
            bent[i] ^= 1;
            assert!(key.open_ceremony("signin", b"server-a", &bent).is_err());
        }
    }

    #[test]
    fn a_generated_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let (first, generated) = MasterKey::load_or_generate(&path).unwrap();
        assert!(generated);
        let (second, generated) = MasterKey::load_or_generate(&path).unwrap();
        assert!(!generated);
        let t = TenantId::parse("acme").unwrap();
        let blob = first
            .seal(&t, SecretKind::Github, &SecretString::from("x"))
            .unwrap();
        assert!(second.open(&t, SecretKind::Github, &blob).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
