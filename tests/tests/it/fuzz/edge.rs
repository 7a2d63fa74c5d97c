//! The edge before any body is read: `Authorization` parsing (`token::bearer`, any scheme,
//! spacing and bytes), static tokens checked by `TokenAuthority::authenticate` (JWTs with
//! their header and claims mutated and then re-signed with the server's own key, so the
//! claims and the store lookup are reached, not only the signature check), OAuth access tokens
//! on the connector door, the `Host`, absolute-form and `Origin` checks (`PublicOrigin`), the
//! peer and `X-Forwarded-For`, and methods and paths around `/mcp`, on both doors.

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, Bytes};
use crate::fuzz::world::{Server, peer, runtime, sandbox, send};

const INITIALIZE: &str = tests::connector::INITIALIZE;

#[derive(Clone, Debug)]
struct Edge {
    connector: bool,
    method: &'static str,
    /// The request target: a path, or an absolute form naming some authority.
    target: String,
    authorization: Option<Bytes>,
    /// `None`: the door's own host.
    host: Option<String>,
    origin: Option<String>,
    forwarded: Option<String>,
    peer: u8,
}

/// How a mutated JWT is signed.
#[derive(Clone, Debug)]
enum Signature {
    /// The original token's signature.
    Original,
    /// A valid HS256 signature by this server's key over the mutated header and claims.
    Resigned,
    None,
    Other(String),
}

fn b64_json(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `token` (a JWT) with its header and claims mutated, then signed one of the [`Signature`]
/// ways; or the token's text itself mutated.
fn jwt(token: String, key: Vec<u8>, context: &[String]) -> BoxedStrategy<String> {
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let (header, claims) = (b64_json(&parts[0]), b64_json(&parts[1]));
    let mut header_seeds = vec![header.clone()];
    for alg in ["none", "HS512", "RS256", "hs256"] {
        let mut other = header.clone();
        other["alg"] = Value::from(alg);
        header_seeds.push(other);
    }
    let original = parts[2].clone();
    let structured = (
        // The header changed one time in four, so that most tokens reach their claims.
        prop_oneof![
            3 => Just(mutate::JsonCase { value: header, twice: Vec::new() }),
            1 => mutate::json(header_seeds, context, &[]),
        ],
        mutate::json(vec![claims], context, &[]),
        prop_oneof![
            1 => Just(Signature::Original),
            4 => Just(Signature::Resigned),
            1 => Just(Signature::None),
            1 => mutate::string(context).prop_map(Signature::Other),
        ],
    )
        .prop_map(move |(header, claims, signature)| {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_bytes()),
                URL_SAFE_NO_PAD.encode(claims.to_bytes())
            );
            let signature = match signature {
                Signature::Original => original.clone(),
                Signature::Resigned => jsonwebtoken::crypto::sign(
                    signed.as_bytes(),
                    &EncodingKey::from_secret(&key),
                    Algorithm::HS256,
                )
                .unwrap(),
                Signature::None => String::new(),
                Signature::Other(s) => s,
            };
            format!("{signed}.{signature}")
        });
    prop_oneof![
        1 => Just(token.clone()),
        6 => structured,
        3 => mutate::text(vec![token], context),
    ]
    .boxed()
}

/// An `Authorization` value: a scheme, a separator and a credential, its bytes then
/// sometimes mangled.
fn authorization(credential: BoxedStrategy<String>, context: &[String]) -> BoxedStrategy<Bytes> {
    let schemes = select(vec![
        "bearer", "BEARER", "Basic", "Bearer\t", "", "Token", "DPoP", " Bearer",
    ]);
    let separators = select(vec!["  ", "\t", "", " \t "]);
    (
        prop_oneof![
            12 => Just("Bearer".to_owned()),
            4 => schemes.prop_map(str::to_owned),
            1 => mutate::string(context),
        ],
        prop_oneof![8 => Just(" "), 1 => separators],
        credential,
        prop_oneof![8 => Just(""), 1 => select(vec![" ", "  ", ",", ", Bearer x"])],
        mutate::bytes_ops(),
    )
        .prop_map(|(scheme, sep, credential, tail, ops)| {
            let value = format!("{scheme}{sep}{credential}{tail}");
            Bytes(mutate::apply_bytes(value.into_bytes(), &ops))
        })
        .boxed()
}

fn edges(
    server: &Server,
    token: &str,
    access: &str,
    context: &[String],
) -> impl Strategy<Value = Edge> {
    let static_auth = authorization(
        jwt(token.to_owned(), server.signing_key.clone(), context),
        context,
    );
    let connector_auth = authorization(
        prop_oneof![
            3 => Just(access.to_owned()),
            2 => mutate::text(vec![access.to_owned(), token.to_owned()], context),
        ]
        .boxed(),
        context,
    );
    let hosts: Vec<String> = [
        server.static_host.clone(),
        server.connector_host.clone(),
        "localhost".into(),
        "127.0.0.1".into(),
        "evil.example".into(),
        format!("user@{}", server.static_host),
        format!("{}:0", server.static_host),
        "[::1]:80".into(),
    ]
    .into();
    let origins: Vec<String> = [
        format!("http://{}", server.static_host),
        server.connector_origin.clone(),
        "https://evil.example".into(),
        "null".into(),
        format!("HTTP://{}", server.connector_host.to_uppercase()),
    ]
    .into();
    let paths = select(vec![
        "/mcp",
        "/mcp/",
        "/MCP",
        "/mcp?x=1",
        "//mcp",
        "/mcp/../mcp",
        "/%6dcp",
        "/connector",
        "/",
    ]);
    let target = prop_oneof![
        20 => Just("/mcp".to_owned()),
        3 => paths.prop_map(str::to_owned),
        1 => select(hosts.clone()).prop_map(|h| format!("http://{h}/mcp")),
        1 => mutate::text(vec!["/mcp".into()], context),
    ];
    let text_or = |list: Vec<String>| -> BoxedStrategy<Option<String>> {
        prop_oneof![
            12 => Just(None),
            3 => select(list.clone()).prop_map(Some),
            1 => mutate::text(list, context).prop_map(Some),
        ]
        .boxed()
    };
    let forwarded = text_or(vec![
        "198.51.100.9".into(),
        "198.51.100.9, 203.0.113.1".into(),
        "2001:db8::1".into(),
        "unknown".into(),
    ]);
    (
        any::<bool>(),
        prop_oneof![
            12 => Just("POST"),
            1 => select(vec!["GET", "DELETE", "OPTIONS", "PUT", "HEAD", "PATCH"]),
        ],
        target,
        (
            prop_oneof![1 => Just(None), 8 => static_auth.prop_map(Some)],
            prop_oneof![1 => Just(None), 8 => connector_auth.prop_map(Some)],
        ),
        text_or(hosts),
        text_or(origins),
        forwarded,
        any::<u8>(),
    )
        .prop_map(
            |(connector, method, target, (statik, oauth), host, origin, forwarded, peer)| Edge {
                connector,
                method,
                target,
                authorization: if connector { oauth } else { statik },
                host,
                origin,
                forwarded,
                peer,
            },
        )
}

fn request(server: &Server, edge: &Edge) -> Option<Request<Body>> {
    let own_host = if edge.connector {
        &server.connector_host
    } else {
        &server.static_host
    };
    let mut builder = Request::builder()
        .method(edge.method)
        .uri(edge.target.as_str())
        .header("host", edge.host.as_deref().unwrap_or(own_host))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(value) = &edge.authorization {
        builder = builder.header("authorization", value.0.as_slice());
    }
    if let Some(origin) = &edge.origin {
        builder = builder.header("origin", origin.as_bytes());
    }
    if let Some(forwarded) = &edge.forwarded {
        builder = builder.header("x-forwarded-for", forwarded.as_bytes());
    }
    // A target or header value no HTTP parser would pass on is not a case.
    builder.body(Body::from(INITIALIZE)).ok()
}

/// Both doors' `/mcp` with any `Authorization`, `Host`, `Origin`, peer, method and target.
#[test]
fn edge_authorization_and_headers() {
    let rt = runtime();
    let sandbox = rt.block_on(sandbox());
    let (server, tenant) = rt.block_on(Server::shared(&sandbox));
    let access = rt.block_on(async {
        let (_, cookie) = server.person("acme", "Ada").await;
        let (_, access, _) = server.connect(&cookie).await;
        access
    });
    let mut context = crate::fuzz::mcp::context(&sandbox);
    context.extend([
        "acme".into(),
        "globex".into(),
        server.connector_url.clone(),
        format!("http://{}", server.static_host),
        "4102444800".into(),
        "1".into(),
    ]);
    fuzz(
        "edge_authorization_and_headers",
        edges(&server, &tenant.token, &access, &context),
        |edge| {
            let Some(request) = request(&server, edge) else {
                note("not sendable");
                return Ok(());
            };
            let router = if edge.connector {
                &server.connector
            } else {
                &server.statik
            };
            let answer = rt.block_on(send(router, request, peer(edge.peer)))?;
            // No answer repeats a credential (a refusal quoting the token it refused).
            let whole = format!("{:?} {}", answer.headers, answer.text());
            if whole.contains(&tenant.token) || whole.contains(&access) {
                return Err(format!("an answer carries a token: {whole}"));
            }
            // A refusal's reason, from its challenge: how far the token got.
            let why = answer
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("error_description=\"").nth(1))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default();
            note(format!(
                "{} {} {why}",
                if edge.connector {
                    "connector"
                } else {
                    "static"
                },
                answer.status.as_u16()
            ));
            Ok(())
        },
    );
}
