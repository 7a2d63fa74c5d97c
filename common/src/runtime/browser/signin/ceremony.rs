//! A passkey ceremony between its two requests: sealed (ChaCha20-Poly1305, the master key every
//! replica shares) into the `ceremony` string the browser sends back, not stored. Starting one
//! is anonymous and costs the store nothing, and any replica can finish what another started;
//! only a ceremony that completes is recorded (`People::spend_ceremony`), so that it completes
//! once. Plain functions over typed inputs and an explicit `now`: no HTTP here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::secrets::{MasterKey, SecretError};

/// How long a passkey ceremony may take in the browser.
pub const TTL_SECS: u64 = 300;
/// How long a completed ceremony's id outlives its expiry: a replica whose clock is behind
/// another's still opens the ceremony a little after the other's sweep would have dropped it.
pub const SKEW_SECS: u64 = 120;
/// The longest `ceremony` string opened: real ones are 0.5-2 KiB (the registration's grows
/// with the passkeys a person already has), and the passkey endpoints read 64 KiB at most.
const MAX_TOKEN_CHARS: usize = 32 * 1024;

/// Which ceremony: each opens only as itself. Sealed as its name (`signin`, `register`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `/signin/options` → `/signin/finish`.
    #[serde(rename = "signin")]
    SignIn,
    /// `/invite/{secret}/options` → `/invite/{secret}/finish`.
    Register,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "signin",
            Kind::Register => "register",
        }
    }
}

/// What the browser carries, once opened: webauthn-rs's state and what the finish checks.
#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    /// 16 random bytes (hex): what single use records.
    id: String,
    /// Also in the associated data; kept here so that an opened ceremony says what it is.
    kind: Kind,
    /// The invite's digest (hex), for a registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invite: Option<String>,
    expires_at: u64,
    state: T,
}

/// A ceremony opened for its finish.
#[derive(Debug)]
pub struct Opened<T> {
    /// Its random id, recorded once it completes.
    pub id: [u8; 16],
    /// The digest (hex) of the invite a registration is for.
    pub invite: Option<String>,
    pub expires_at: u64,
    pub state: T,
}

/// Why a `ceremony` string cannot be finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a ceremony of this kind from this server: cut short, altered, another kind, another
    /// server's, or one a previous version stored (its id no longer opens).
    Unreadable,
    /// Past its five minutes.
    Expired,
    /// Completed already: the store says so, never `open`.
    Used,
}

/// Seals `state` for `kind` on the server tagged `server`, until `expires_at`: the opaque
/// `ceremony` string (base64url) for the browser.
pub fn seal<T: Serialize>(
    key: &MasterKey,
    server: &[u8],
    kind: Kind,
    invite: Option<&[u8; 32]>,
    state: &T,
    expires_at: u64,
) -> Result<String, SecretError> {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let plain = serde_json::to_vec(&Sealed {
        id: hex::encode(id),
        kind,
        invite: invite.map(hex::encode),
        expires_at,
        state,
    })
    .map_err(|_| SecretError::Encrypt)?;
    let sealed = key.seal_ceremony(kind.as_str(), server, &plain)?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

/// Opens a `ceremony` string as `kind` on the server tagged `server` at `now`. Anything that
/// does not open whole is `Unreadable`; nothing here panics on what a browser sent.
pub fn open<T: DeserializeOwned>(
    key: &MasterKey,
    server: &[u8],
    kind: Kind,
    token: &str,
    now: u64,
) -> Result<Opened<T>, Refused> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(Refused::Unreadable);
    }
    let blob = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| Refused::Unreadable)?;
    let plain = key
        .open_ceremony(kind.as_str(), server, &blob)
        .map_err(|_| Refused::Unreadable)?;
    let sealed: Sealed<T> = serde_json::from_slice(&plain).map_err(|_| Refused::Unreadable)?;
    let id = hex::decode(&sealed.id)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or(Refused::Unreadable)?;
    if sealed.kind != kind {
        return Err(Refused::Unreadable);
    }
    if sealed.expires_at <= now {
        return Err(Refused::Expired);
    }
    Ok(Opened {
        id,
        invite: sealed.invite,
        expires_at: sealed.expires_at,
        state: sealed.state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const SERVER: &[u8] = b"tag-a";

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[3; 32])
    }

    #[test]
    fn a_ceremony_opens_as_itself_until_it_expires() {
        let key = key();
        let invite = [9u8; 32];
        let token = seal(
            &key,
            SERVER,
            Kind::Register,
            Some(&invite),
            &json!({"challenge": "c"}),
            1_000,
        )
        .unwrap();
        let opened: Opened<Value> = open(&key, SERVER, Kind::Register, &token, 999).unwrap();
        assert_eq!(opened.state, json!({"challenge": "c"}));
        assert_eq!(opened.invite, Some(hex::encode(invite)));
        assert_eq!(opened.expires_at, 1_000);
        assert_eq!(
            open::<Value>(&key, SERVER, Kind::Register, &token, 1_000).unwrap_err(),
            Refused::Expired
        );
        // Another kind, another server, another key: unreadable.
        assert_eq!(
            open::<Value>(&key, SERVER, Kind::SignIn, &token, 0).unwrap_err(),
            Refused::Unreadable
        );
        assert_eq!(
            open::<Value>(&key, b"tag-b", Kind::Register, &token, 0).unwrap_err(),
            Refused::Unreadable
        );
        assert_eq!(
            open::<Value>(
                &MasterKey::from_bytes(&[4; 32]),
                SERVER,
                Kind::Register,
                &token,
                0
            )
            .unwrap_err(),
            Refused::Unreadable
        );
    }

    #[test]
    fn each_ceremony_has_its_own_id() {
        let key = key();
        let a = seal(&key, SERVER, Kind::SignIn, None, &json!(1), 10).unwrap();
        let b = seal(&key, SERVER, Kind::SignIn, None, &json!(1), 10).unwrap();
        let a: Opened<Value> = open(&key, SERVER, Kind::SignIn, &a, 0).unwrap();
        let b: Opened<Value> = open(&key, SERVER, Kind::SignIn, &b, 0).unwrap();
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn a_cut_altered_or_foreign_string_is_unreadable_without_a_panic() {
        let key = key();
        let token = seal(&key, SERVER, Kind::SignIn, None, &json!({"s": 1}), 10).unwrap();
        let mut bent = token.clone().into_bytes();
        let middle = bent.len() / 2;
        bent[middle] = if bent[middle] == b'A' { b'B' } else { b'A' };
        let bent = String::from_utf8(bent).unwrap();
        let long = "A".repeat(MAX_TOKEN_CHARS + 4);
        for garbled in [
            "",
            "smc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "not base64!",
            &token[..token.len() - 1],
            &token[..20],
            &bent,
            &long,
        ] {
            assert_eq!(
                open::<Value>(&key, SERVER, Kind::SignIn, garbled, 0).unwrap_err(),
                Refused::Unreadable,
                "{garbled:.40}"
            );
        }
        // Sealed right but not the expected state: unreadable, not a panic.
        assert_eq!(
            open::<Vec<u8>>(&key, SERVER, Kind::SignIn, &token, 0).unwrap_err(),
            Refused::Unreadable
        );
    }
}
