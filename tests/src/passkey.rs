//! A software passkey authenticator, so that Rust tests can register and sign in as a person in
//! milliseconds: P-256 keys, `none` attestation, discoverable credentials. A real browser with a
//! virtual authenticator drives the same pages in `tests/oauth/e2e.py`; this one is for speed.
//!
//! It speaks the JSON the server's pages hand to `navigator.credentials` (webauthn-rs's
//! serialisation, binary as unpadded base64url) and answers what a browser would post back.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// authData flags: user present, user verified, attested credential data included.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// One credential the authenticator made.
#[derive(Clone)]
struct Credential {
    rp_id: String,
    id: Vec<u8>,
    user_handle: Vec<u8>,
    key: SigningKey,
    counter: u32,
}

/// A passkey authenticator in a browser whose pages come from `origin`. A clone is a copied
/// device: same keys, its own signature counters.
#[derive(Clone)]
pub struct SoftPasskey {
    origin: String,
    credentials: Vec<Credential>,
}

impl SoftPasskey {
    /// `origin`: what the browser would put in `clientDataJSON`, e.g. `http://localhost:8787`.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.trim_end_matches('/').to_owned(),
            credentials: Vec::new(),
        }
    }

    /// `navigator.credentials.create`: `options` is `{publicKey: …}` (or the inner object).
    /// Returns the `RegisterPublicKeyCredential` JSON.
    pub fn register(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = options["challenge"].as_str().expect("options.challenge");
        let rp_id = options["rp"]["id"]
            .as_str()
            .expect("options.rp.id")
            .to_owned();
        let user_handle = b64_decode(options["user"]["id"].as_str().expect("options.user.id"));
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let key = random_key();

        let mut auth_data = auth_data_head(&rp_id, UP | UV | AT, 0);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID: none
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key));

        let mut attestation = cbor_head(5, 3);
        attestation.extend(cbor_text("fmt"));
        attestation.extend(cbor_text("none"));
        attestation.extend(cbor_text("attStmt"));
        attestation.extend(cbor_head(5, 0));
        attestation.extend(cbor_text("authData"));
        attestation.extend(cbor_bytes(&auth_data));

        let client_data = self.client_data("webauthn.create", challenge);
        let answer = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        });
        self.credentials.push(Credential {
            rp_id,
            id,
            user_handle,
            key,
            counter: 0,
        });
        answer
    }

    /// `navigator.credentials.get` for a discoverable sign-in (or one naming allowed
    /// credentials): the newest matching credential answers. Returns the `PublicKeyCredential`
    /// JSON, with the user handle.
    pub fn assert(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = options["challenge"]
            .as_str()
            .expect("options.challenge")
            .to_owned();
        let rp_id = options["rpId"].as_str().expect("options.rpId").to_owned();
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c["id"].as_str().map(b64_decode))
                    .collect()
            })
            .unwrap_or_default();
        let client_data = self.client_data("webauthn.get", &challenge);
        let credential = self
            .credentials
            .iter_mut()
            .rev()
            .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .expect("a credential for this relying party");
        credential.counter += 1;
        let auth_data = auth_data_head(&rp_id, UP | UV, credential.counter);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = credential.key.sign(&signed);
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&credential.user_handle),
            },
            "extensions": {},
        })
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }
}

fn random_key() -> SigningKey {
    loop {
        let mut scalar = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut scalar);
        // Zero or past the group order: practically never; draw again.
        if let Ok(key) = SigningKey::from_slice(&scalar) {
            return key;
        }
    }
}

/// SHA-256(rpId) | flags | signCount.
fn auth_data_head(rp_id: &str, flags: u8, counter: u32) -> Vec<u8> {
    let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
    data.push(flags);
    data.extend_from_slice(&counter.to_be_bytes());
    data
}

/// The public key as a COSE_Key: `{1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}`.
fn cose_key(key: &SigningKey) -> Vec<u8> {
    let point = key.verifying_key().to_sec1_bytes(); // 0x04 | x | y
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    let mut cose = cbor_head(5, 5);
    cose.extend([0x01, 0x02]); // kty: EC2
    cose.extend([0x03, 0x26]); // alg: -7
    cose.extend([0x20, 0x01]); // crv: P-256
    cose.push(0x21); // x
    cose.extend(cbor_bytes(&point[1..33]));
    cose.push(0x22); // y
    cose.extend(cbor_bytes(&point[33..]));
    cose
}

/// A CBOR item head: major type and argument (lengths here stay below 2^16).
fn cbor_head(major: u8, len: usize) -> Vec<u8> {
    let major = major << 5;
    match len {
        0..=23 => vec![major | len as u8],
        24..=0xff => vec![major | 24, len as u8],
        _ => {
            let mut head = vec![major | 25];
            head.extend_from_slice(&(len as u16).to_be_bytes());
            head
        }
    }
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut item = cbor_head(2, bytes.len());
    item.extend_from_slice(bytes);
    item
}

fn cbor_text(text: &str) -> Vec<u8> {
    let mut item = cbor_head(3, text.len());
    item.extend_from_slice(text.as_bytes());
    item
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

// ---- the browser side of the pages ----

/// The scheme, host and port of a URL: what a browser calls its origin.
pub fn origin_of(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).expect("a URL");
    parsed.origin().ascii_serialization()
}

/// A browser's HTTP client for a server whose public URL is `http://localhost:<port>`: it sends
/// `Host: localhost:<port>` but always connects to 127.0.0.1 (where the test server listens),
/// and never follows redirects, so tests see each 303.
pub fn browser(public_url: &str) -> reqwest::Client {
    common::upstream::install_crypto_provider();
    let url = reqwest::Url::parse(public_url).expect("public URL");
    let port = url.port_or_known_default().expect("a port");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            url.host_str().expect("a host"),
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .build()
        .expect("browser client")
}

/// The `name=value` pair a `Set-Cookie` header sets (what a later `Cookie:` header carries).
pub fn cookie_from(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .find(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
}

/// A passkey step's outcome: status, JSON body and the session cookie if one was set.
pub struct Step {
    pub status: u16,
    pub body: Value,
    /// `name=value`, for a later `Cookie:` header.
    pub cookie: Option<String>,
    /// The whole `Set-Cookie` header, attributes included.
    pub set_cookie: Option<String>,
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Step {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let cookie = cookie_from(&response);
    let set_cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    Step {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        cookie,
        set_cookie,
    }
}

/// `POST /invite/{secret}/options`: the registration options (with their `ceremony`).
pub async fn invite_options(http: &reqwest::Client, invite_url: &str) -> Step {
    post_json(http, &format!("{invite_url}/options"), &json!({})).await
}

/// `POST /invite/{secret}/finish` with `passkey`'s answer to `options`.
pub async fn invite_finish(
    http: &reqwest::Client,
    invite_url: &str,
    passkey: &mut SoftPasskey,
    options: &Value,
) -> Step {
    let credential = passkey.register(options);
    let body = json!({"ceremony": options["ceremony"], "credential": credential});
    post_json(http, &format!("{invite_url}/finish"), &body).await
}

/// Opens an invite link as a person would: a new passkey registered, signed in. Returns the
/// passkey and the session cookie (`studio_mcp_session=…`).
pub async fn register_with_invite(
    http: &reqwest::Client,
    invite_url: &str,
) -> (SoftPasskey, String) {
    let mut passkey = SoftPasskey::new(&origin_of(invite_url));
    let options = invite_options(http, invite_url).await;
    assert_eq!(options.status, 200, "invite options: {}", options.body);
    let finish = invite_finish(http, invite_url, &mut passkey, &options.body).await;
    assert_eq!(finish.status, 200, "invite finish: {}", finish.body);
    let cookie = finish.cookie.expect("a session cookie after registration");
    (passkey, cookie)
}

/// Signs in on `public_url` with `passkey` (discoverable: no user name); the outcome.
pub async fn try_sign_in(
    http: &reqwest::Client,
    public_url: &str,
    passkey: &mut SoftPasskey,
) -> Step {
    let options = post_json(http, &format!("{public_url}/signin/options"), &json!({})).await;
    assert_eq!(options.status, 200, "sign-in options: {}", options.body);
    let credential = passkey.assert(&options.body);
    let body = json!({"ceremony": options.body["ceremony"], "credential": credential});
    post_json(http, &format!("{public_url}/signin/finish"), &body).await
}

/// Signs in on `public_url` with `passkey`; the session cookie.
pub async fn sign_in(
    http: &reqwest::Client,
    public_url: &str,
    passkey: &mut SoftPasskey,
) -> String {
    let step = try_sign_in(http, public_url, passkey).await;
    assert_eq!(step.status, 200, "sign-in: {}", step.body);
    step.cookie.expect("a session cookie after sign-in")
}
