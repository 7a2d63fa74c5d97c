//! WebAuthn client data and authenticator data, as our relying party (`signin::relying_party`,
//! webauthn-rs) reads what a browser posts: a real registration and a real sign-in from the
//! software passkey (`tests/src/passkey.rs`, P-256, real messages) against real challenges,
//! mutated as structures — the credential's JSON, the `clientDataJSON` inside it, the
//! attestation object rebuilt in CBOR with its format, statement and authenticator data
//! changed field by field (flags, counter, credential id length, COSE key, extensions), the
//! assertion's authenticator data and DER signature — then decoded and finished exactly as
//! `signin/invite.rs` and `signin/passkey.rs` do. A third target posts mutated finishes
//! (ceremony token included) to the real `/signin/finish`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use tests::passkey::SoftPasskey;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn};

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, ByteOp, JsonCase};
use crate::fuzz::world::{Server, peer, runtime, sandbox, send};

const ORIGIN: &str = "http://localhost:8787";

fn relying_party() -> Webauthn {
    common::runtime::browser::signin::relying_party(ORIGIN, "studio-mcp fuzz").unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

// ---- a little CBOR, to rebuild what the authenticator sends ----

#[derive(Clone, Debug)]
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Cbor>),
    Map(Vec<(Cbor, Cbor)>),
}

fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend([major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

impl Cbor {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => head(0, *i as u64, out),
            Cbor::Int(i) => head(1, (-1 - *i) as u64, out),
            Cbor::Bytes(b) => {
                head(2, b.len() as u64, out);
                out.extend(b);
            }
            Cbor::Text(t) => {
                head(3, t.len() as u64, out);
                out.extend(t.as_bytes());
            }
            Cbor::Array(items) => {
                head(4, items.len() as u64, out);
                for item in items {
                    item.write(out);
                }
            }
            Cbor::Map(members) => {
                head(5, members.len() as u64, out);
                for (k, v) in members {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

fn text(t: &str) -> Cbor {
    Cbor::Text(t.to_owned())
}

/// The `authData` byte string inside the software passkey's attestation object (`fmt`,
/// `attStmt`, `authData`, in that order).
fn auth_data_of(attestation: &[u8]) -> Vec<u8> {
    let at = attestation
        .windows(8)
        .position(|w| w == b"authData")
        .unwrap()
        + 8;
    let (len, start) = match attestation[at] {
        0x58 => (usize::from(attestation[at + 1]), at + 2),
        0x59 => (
            usize::from(u16::from_be_bytes([
                attestation[at + 1],
                attestation[at + 2],
            ])),
            at + 3,
        ),
        short => (usize::from(short & 0x1f), at + 1),
    };
    attestation[start..start + len].to_vec()
}

/// A change to authenticator data: `rpIdHash(32) | flags(1) | signCount(4) | [aaguid(16) |
/// credIdLen(2) | credId | COSE key] | [extensions]`.
#[derive(Clone, Debug)]
enum AuthDataOp {
    Flags(u8),
    Counter(u32),
    CredentialIdLength(u16),
    RpIdHash(u8),
    /// Extensions (CBOR) appended, the ED flag set or not.
    Extensions(bool, u8),
    /// Bytes after the fixed 37 (the attested credential data) changed.
    Tail(Vec<ByteOp>),
    Bytes(Vec<ByteOp>),
}

fn auth_data_op() -> BoxedStrategy<AuthDataOp> {
    prop_oneof![
        2 => any::<u8>().prop_map(AuthDataOp::Flags),
        1 => select(vec![0u32, 1, u32::MAX, 0x8000_0000]).prop_map(AuthDataOp::Counter),
        2 => select(vec![0u16, 1, 15, 17, 1023, 1024, u16::MAX]).prop_map(AuthDataOp::CredentialIdLength),
        1 => any::<u8>().prop_map(AuthDataOp::RpIdHash),
        2 => (any::<bool>(), 0u8..6).prop_map(|(ed, kind)| AuthDataOp::Extensions(ed, kind)),
        3 => prop::collection::vec(mutate::byte_op(), 1..=3).prop_map(AuthDataOp::Tail),
        1 => prop::collection::vec(mutate::byte_op(), 1..=2).prop_map(AuthDataOp::Bytes),
    ]
    .boxed()
}

/// Extensions an authenticator may append: credProtect, credProps, hmac-secret, junk.
fn extensions(kind: u8) -> Vec<u8> {
    let value = match kind {
        0 => Cbor::Map(vec![(text("credProtect"), Cbor::Int(3))]),
        1 => Cbor::Map(vec![(text("hmac-secret"), Cbor::Int(1))]),
        2 => Cbor::Map(vec![(
            text("credProps"),
            Cbor::Map(vec![(text("rk"), Cbor::Int(1))]),
        )]),
        3 => Cbor::Map(vec![(
            Cbor::Int(-1),
            Cbor::Array(vec![Cbor::Bytes(vec![0; 4])]),
        )]),
        4 => Cbor::Array(Vec::new()),
        _ => Cbor::Map(vec![(text("minPinLength"), Cbor::Int(i64::MAX))]),
    };
    value.to_vec()
}

fn apply_auth_data(mut data: Vec<u8>, ops: &[AuthDataOp]) -> Vec<u8> {
    for op in ops {
        match op {
            AuthDataOp::Flags(mask) if data.len() > 32 => data[32] ^= mask,
            AuthDataOp::Counter(n) if data.len() >= 37 => {
                data[33..37].copy_from_slice(&n.to_be_bytes())
            }
            AuthDataOp::CredentialIdLength(n) if data.len() >= 55 => {
                data[53..55].copy_from_slice(&n.to_be_bytes());
            }
            AuthDataOp::RpIdHash(b) if !data.is_empty() => {
                let at = usize::from(*b) % data.len().min(32);
                data[at] ^= 0x5a;
            }
            AuthDataOp::Extensions(ed, kind) => {
                if *ed && data.len() > 32 {
                    data[32] |= 0x80;
                }
                data.extend(extensions(*kind));
            }
            AuthDataOp::Tail(ops) if data.len() > 37 => {
                let tail = mutate::apply_bytes(data.split_off(37), ops);
                data.extend(tail);
            }
            AuthDataOp::Bytes(ops) => data = mutate::apply_bytes(data, ops),
            _ => {}
        }
    }
    data
}

/// The attestation statement formats webauthn-rs knows, with statements of the right shape
/// but the wrong content, and nonsense.
fn attestation_format() -> BoxedStrategy<(String, Cbor)> {
    let sig = Cbor::Bytes(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
    let cert = Cbor::Bytes(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    let choices = vec![
        ("none".to_owned(), Cbor::Map(Vec::new())),
        (
            "none".to_owned(),
            Cbor::Map(vec![(text("alg"), Cbor::Int(-7))]),
        ),
        (
            "packed".to_owned(),
            Cbor::Map(vec![
                (text("alg"), Cbor::Int(-7)),
                (text("sig"), sig.clone()),
            ]),
        ),
        (
            "packed".to_owned(),
            Cbor::Map(vec![
                (text("alg"), Cbor::Int(-7)),
                (text("sig"), sig.clone()),
                (text("x5c"), Cbor::Array(vec![cert.clone()])),
            ]),
        ),
        (
            "fido-u2f".to_owned(),
            Cbor::Map(vec![
                (text("sig"), sig.clone()),
                (text("x5c"), Cbor::Array(vec![cert.clone()])),
            ]),
        ),
        (
            "tpm".to_owned(),
            Cbor::Map(vec![
                (text("ver"), text("2.0")),
                (text("alg"), Cbor::Int(-257)),
            ]),
        ),
        (
            "android-key".to_owned(),
            Cbor::Map(vec![
                (text("alg"), Cbor::Int(-7)),
                (text("sig"), sig),
                (text("x5c"), Cbor::Array(vec![])),
            ]),
        ),
        (
            "apple".to_owned(),
            Cbor::Map(vec![(text("x5c"), Cbor::Array(vec![cert]))]),
        ),
        (
            "android-safetynet".to_owned(),
            Cbor::Map(vec![
                (text("ver"), text("1")),
                (text("response"), Cbor::Bytes(b"a.b.c".to_vec())),
            ]),
        ),
        ("".to_owned(), Cbor::Int(0)),
    ];
    prop_oneof![
        6 => Just(("none".to_owned(), Cbor::Map(Vec::new()))),
        3 => select(choices),
    ]
    .boxed()
}

// ---- registration ----

#[derive(Clone, Debug)]
struct Registration {
    credential: JsonCase,
    client_data: JsonCase,
    format: (String, Cbor),
    auth_data: Vec<AuthDataOp>,
    /// Applied to the attestation object's bytes after it is rebuilt.
    attestation: Vec<ByteOp>,
    /// Applied to the credential's JSON text last.
    text: Vec<ByteOp>,
}

impl Registration {
    fn to_bytes(&self, auth_data: &[u8]) -> Vec<u8> {
        let (fmt, statement) = &self.format;
        let attestation = Cbor::Map(vec![
            (text("fmt"), text(fmt)),
            (text("attStmt"), statement.clone()),
            (
                text("authData"),
                Cbor::Bytes(apply_auth_data(auth_data.to_vec(), &self.auth_data)),
            ),
        ]);
        let attestation = mutate::apply_bytes(attestation.to_vec(), &self.attestation);
        let mut credential = self.credential.value.clone();
        if let Some(response) = credential
            .get_mut("response")
            .and_then(Value::as_object_mut)
        {
            // Only where the mutated credential still has them: a removed field stays removed.
            if response.contains_key("attestationObject") {
                response.insert("attestationObject".into(), json!(b64(&attestation)));
            }
            if response.contains_key("clientDataJSON") {
                response.insert(
                    "clientDataJSON".into(),
                    json!(b64(&self.client_data.to_bytes())),
                );
            }
        }
        let doc = JsonCase {
            value: credential,
            twice: self.credential.twice.clone(),
        };
        mutate::apply_bytes(doc.to_bytes(), &self.text)
    }
}

fn structural_bytes() -> BoxedStrategy<Vec<ByteOp>> {
    prop_oneof![6 => Just(Vec::new()), 1 => prop::collection::vec(mutate::byte_op(), 1..=3)].boxed()
}

/// Passkey registration: `RegisterPublicKeyCredential` from bytes, then
/// `finish_passkey_registration` against the real challenge's state.
#[test]
fn webauthn_registration() {
    let webauthn = relying_party();
    let (options, state) = webauthn
        .start_passkey_registration(Uuid::new_v4(), "ada", "Ada Lovelace", None)
        .unwrap();
    let options = serde_json::to_value(&options).unwrap();
    let answer = SoftPasskey::new(ORIGIN).register(&options);
    let client_data: Value = serde_json::from_slice(&unb64(
        answer["response"]["clientDataJSON"].as_str().unwrap(),
    ))
    .unwrap();
    let auth_data = auth_data_of(&unb64(
        answer["response"]["attestationObject"].as_str().unwrap(),
    ));
    // The seed itself must pass, or the target reaches nothing.
    let seed: RegisterPublicKeyCredential = serde_json::from_value(answer.clone()).unwrap();
    webauthn.finish_passkey_registration(&seed, &state).unwrap();

    let context: Vec<String> = vec![
        ORIGIN.into(),
        "http://localhost:8788".into(),
        "webauthn.create".into(),
        "webauthn.get".into(),
        options["publicKey"]["challenge"]
            .as_str()
            .unwrap()
            .to_owned(),
        answer["id"].as_str().unwrap().to_owned(),
    ];
    let strategy = (
        mutate::json(vec![answer], &context, &["/response/", "/"]),
        prop_oneof![
            3 => Just(JsonCase { value: client_data.clone(), twice: Vec::new() }),
            2 => mutate::json(vec![client_data], &context, &[]),
        ],
        attestation_format(),
        prop::collection::vec(auth_data_op(), 0..=3),
        structural_bytes(),
        structural_bytes(),
    )
        .prop_map(
            |(credential, client_data, format, auth_data, attestation, text)| Registration {
                credential,
                client_data,
                format,
                auth_data,
                attestation,
                text,
            },
        );
    fuzz("webauthn_registration", strategy, |case| {
        let body = case.to_bytes(&auth_data);
        let Ok(credential) = serde_json::from_slice::<RegisterPublicKeyCredential>(&body) else {
            note("not a credential");
            return Ok(());
        };
        match webauthn.finish_passkey_registration(&credential, &state) {
            Ok(_) => note("registered"),
            Err(e) => note(
                format!("refused: {e:?}")
                    .chars()
                    .take(60)
                    .collect::<String>(),
            ),
        }
        Ok(())
    });
}

// ---- sign-in ----

#[derive(Clone, Debug)]
struct Assertion {
    credential: JsonCase,
    client_data: JsonCase,
    auth_data: Vec<AuthDataOp>,
    signature: Vec<ByteOp>,
    text: Vec<ByteOp>,
}

impl Assertion {
    /// The credential's JSON; `challenge` (old, new) puts a new challenge into the client
    /// data, so the assertion answers a ceremony started after it was made.
    fn to_bytes(
        &self,
        auth_data: &[u8],
        signature: &[u8],
        challenge: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let mut client_data = self.client_data.to_bytes();
        if let Some((old, new)) = challenge {
            client_data = mutate::fill(&client_data, old, new);
        }
        let mut credential = self.credential.value.clone();
        if let Some(response) = credential
            .get_mut("response")
            .and_then(Value::as_object_mut)
        {
            let fields = [
                (
                    "authenticatorData",
                    apply_auth_data(auth_data.to_vec(), &self.auth_data),
                ),
                ("clientDataJSON", client_data.clone()),
                (
                    "signature",
                    mutate::apply_bytes(signature.to_vec(), &self.signature),
                ),
            ];
            for (name, bytes) in fields {
                if response.contains_key(name) {
                    response.insert(name.into(), json!(b64(&bytes)));
                }
            }
        }
        let doc = JsonCase {
            value: credential,
            twice: self.credential.twice.clone(),
        };
        mutate::apply_bytes(doc.to_bytes(), &self.text)
    }
}

fn assertions(answer: &Value, context: &[String]) -> impl Strategy<Value = Assertion> + use<> {
    let client_data: Value = serde_json::from_slice(&unb64(
        answer["response"]["clientDataJSON"].as_str().unwrap(),
    ))
    .unwrap();
    (
        mutate::json(vec![answer.clone()], context, &["/response/", "/"]),
        prop_oneof![
            3 => Just(JsonCase { value: client_data.clone(), twice: Vec::new() }),
            2 => mutate::json(vec![client_data], context, &[]),
        ],
        prop::collection::vec(auth_data_op(), 0..=3),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(mutate::byte_op(), 1..=3)],
        structural_bytes(),
    )
        .prop_map(
            |(credential, client_data, auth_data, signature, text)| Assertion {
                credential,
                client_data,
                auth_data,
                signature,
                text,
            },
        )
}

/// Discoverable sign-in: `PublicKeyCredential` from bytes, the user handle identified, then
/// `finish_discoverable_authentication_v2` (as `signin/passkey.rs` calls it) against the real
/// challenge's state and the passkey.
#[test]
fn webauthn_authentication() {
    let webauthn = relying_party();
    let (options, state) = webauthn
        .start_passkey_registration(Uuid::new_v4(), "ada", "Ada Lovelace", None)
        .unwrap();
    let mut passkey = SoftPasskey::new(ORIGIN);
    let registered = passkey.register(&serde_json::to_value(&options).unwrap());
    let registered: RegisterPublicKeyCredential = serde_json::from_value(registered).unwrap();
    let key = webauthn
        .finish_passkey_registration(&registered, &state)
        .unwrap();
    let (options, state) = webauthn.start_discoverable_authentication().unwrap();
    let answer = passkey.assert(&serde_json::to_value(&options).unwrap());
    let auth_data = unb64(answer["response"]["authenticatorData"].as_str().unwrap());
    let signature = unb64(answer["response"]["signature"].as_str().unwrap());
    let seed: PublicKeyCredential = serde_json::from_value(answer.clone()).unwrap();
    webauthn
        .finish_discoverable_authentication_v2(&seed, state.clone(), &key)
        .unwrap();

    let context: Vec<String> = vec![
        ORIGIN.into(),
        "webauthn.get".into(),
        answer["id"].as_str().unwrap().to_owned(),
        answer["response"]["userHandle"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    fuzz(
        "webauthn_authentication",
        assertions(&answer, &context),
        |case| {
            let body = case.to_bytes(&auth_data, &signature, None);
            let Ok(credential) = serde_json::from_slice::<PublicKeyCredential>(&body) else {
                note("not a credential");
                return Ok(());
            };
            if let Err(e) = webauthn.identify_discoverable_authentication(&credential) {
                note(
                    format!("unidentified: {e:?}")
                        .chars()
                        .take(60)
                        .collect::<String>(),
                );
                return Ok(());
            }
            match webauthn.finish_discoverable_authentication_v2(&credential, state.clone(), &key) {
                Ok(_) => note("signed in"),
                Err(e) => note(
                    format!("refused: {e:?}")
                        .chars()
                        .take(60)
                        .collect::<String>(),
                ),
            }
            Ok(())
        },
    );
}

/// How a sign-in finish names its ceremony.
#[derive(Clone, Debug)]
enum Ceremony {
    /// The token `/signin/options` just gave.
    Fresh,
    /// That token, changed.
    Changed(Vec<ByteOp>),
    Other(String),
}

/// `POST /signin/finish` on the real server: a fresh ceremony from `/signin/options` (or a
/// changed or made-up one) and a mutated assertion by the person's registered passkey.
#[test]
fn webauthn_signin_finish() {
    let rt = runtime();
    let sandbox = rt.block_on(sandbox());
    let (server, _) = rt.block_on(Server::shared(&sandbox));
    let (mut passkey, _) = rt.block_on(server.person("acme", "Ada"));
    let options_request = || {
        axum::http::Request::post("/signin/options")
            .header("host", &server.connector_host)
            .header("origin", &server.connector_origin)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap()
    };
    let options = rt
        .block_on(send(&server.connector, options_request(), peer(3)))
        .unwrap();
    let options: Value = serde_json::from_slice(&options.body).unwrap();
    let answer = passkey.assert(&options);
    // The challenge the seed answers; each input answers the ceremony started for it instead.
    let first = options["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let context: Vec<String> = vec![server.connector_origin.clone(), "webauthn.get".into()];
    let strategy = (
        assertions(&answer, &context),
        prop_oneof![
            6 => Just(Ceremony::Fresh),
            2 => prop::collection::vec(mutate::byte_op(), 1..=3).prop_map(Ceremony::Changed),
            1 => mutate::string(&context).prop_map(Ceremony::Other),
        ],
    );
    let auth_data = unb64(answer["response"]["authenticatorData"].as_str().unwrap());
    let signature = unb64(answer["response"]["signature"].as_str().unwrap());
    fuzz(
        "webauthn_signin_finish",
        strategy,
        |(case, ceremony): &(Assertion, Ceremony)| {
            rt.block_on(async {
                let options = send(&server.connector, options_request(), peer(3)).await?;
                let options: Value = serde_json::from_slice(&options.body).unwrap_or_default();
                let fresh = options["ceremony"].as_str().unwrap_or_default().to_owned();
                let challenge = options["publicKey"]["challenge"]
                    .as_str()
                    .unwrap_or_default();
                let token = match ceremony {
                    Ceremony::Fresh => fresh,
                    Ceremony::Changed(ops) => {
                        String::from_utf8_lossy(&mutate::apply_bytes(fresh.into_bytes(), ops))
                            .into_owned()
                    }
                    Ceremony::Other(s) => s.clone(),
                };
                let mut body =
                    format!("{{\"ceremony\":{},\"credential\":", Value::from(token)).into_bytes();
                body.extend(case.to_bytes(&auth_data, &signature, Some((&first, challenge))));
                body.push(b'}');
                let request = axum::http::Request::post("/signin/finish")
                    .header("host", &server.connector_host)
                    .header("origin", &server.connector_origin)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                let finished = send(&server.connector, request, peer(3)).await?;
                let why: Value = serde_json::from_slice(&finished.body).unwrap_or_default();
                note(format!(
                    "{} {}",
                    finished.status.as_u16(),
                    why["error"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(40)
                        .collect::<String>()
                ));
                Ok(())
            })
        },
    );
}
