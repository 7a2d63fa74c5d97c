//! `doctor` against a real server behind a TLS front on `connect.studio.test`, against the local
//! http demo, and against small fixture servers that each imitate one misconfigured deployment:
//! it passes the healthy ones and names the one problem in each of the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use common::runtime::ops::doctor::{self, DoctorArgs};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tests::connector::sandbox;
use tests::harness::{TestServer, config_for};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const HOST: &str = "connect.studio.test";
const ORIGIN: &str = "https://connect.studio.test";
const URL: &str = "https://connect.studio.test/mcp";

// ---- the healthy cases ----

#[tokio::test]
async fn a_real_server_behind_tls_passes_every_step() {
    let sandbox = sandbox().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config_for(tmp.path(), &sandbox.base_url());
    config.connector_url = Some(URL.to_owned());
    let server = TestServer::start_with(config).await;
    assert_eq!(server.connector_url, URL);
    let front = Front::start(server.connector_addr.parse().unwrap()).await;

    let mut args = front.args(URL);
    args.static_url = Some(server.mcp_url.clone());
    let (ok, lines) = run(&args).await;

    assert!(ok, "a healthy server passes");
    for line in &lines {
        assert!(line.starts_with("ok    "), "every step passes: {line}");
    }
    for step in [
        "https on 443",
        "path /mcp",
        "DNS",
        "TLS",
        "MCP endpoint",
        "401 resource_metadata",
        "protected resource (/mcp form)",
        "protected resource (root form)",
        "authorization server metadata",
        "PKCE S256",
        "client authentication none",
        "dynamic registration",
        "client ID metadata documents",
        "/authorize at the root",
        "/token at the root",
        "/revoke at the root",
        "registration round trip",
        "static origin",
        "static 401",
        "verdict",
    ] {
        line_of(&lines, "ok", step);
    }
    assert!(line_of(&lines, "ok", "registration round trip").contains("a person would sign in"));
}

#[tokio::test]
async fn a_local_http_demo_is_fine_for_claude_code_but_not_for_claude_ai() {
    let sandbox = sandbox().await;
    let server = TestServer::start(&sandbox).await;
    assert!(
        server.connector_url.starts_with("http://localhost:"),
        "{}",
        server.connector_url
    );
    let mut args = args(&server.connector_url);
    args.static_url = Some(server.mcp_url.clone());
    let (ok, lines) = run(&args).await;

    assert!(!ok, "exit 1: claude.ai could not use it");
    let https = line_of(&lines, "FAIL", "https on 443");
    assert!(
        https.contains(
            "fine for Claude Code and mcp-remote here; claude.ai and ChatGPT need https on port 443"
        ),
        "{https}"
    );
    let verdict = line_of(&lines, "FAIL", "verdict");
    assert!(
        verdict.contains("fine for Claude Code and mcp-remote here"),
        "{verdict}"
    );
    // Everything else about the demo is right.
    for line in &lines {
        let expected = line.starts_with("ok    ")
            || line.starts_with("FAIL  https on 443:")
            || line.starts_with("FAIL  verdict:");
        assert!(expected, "the other steps pass: {line}");
    }
    line_of(&lines, "ok", "connection");
    line_of(&lines, "ok", "registration round trip");
}

#[tokio::test]
async fn the_fixture_imitating_a_healthy_deployment_passes() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(ok, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("ok    ")), "{lines:#?}");
}

// ---- the URL, DNS and TLS ----

#[tokio::test]
async fn an_unresolvable_name_fails_at_dns_and_nothing_is_tried() {
    let (ok, lines) = run(&args("https://connect.studio.invalid/mcp")).await;
    assert!(!ok);
    let dns = line_of(&lines, "FAIL", "DNS");
    assert!(
        dns.contains("connect.studio.invalid does not resolve"),
        "{dns}"
    );
    assert!(dns.contains("Fix: create an A"), "{dns}");
    line_of(&lines, "skip", "TLS");
    line_of(&lines, "skip", "registration round trip");
}

#[tokio::test]
async fn a_certificate_no_public_authority_signed_fails_tls() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let mut args = front.args(URL);
    args.ca_file = None;
    let (ok, lines) = run(&args).await;
    assert!(!ok);
    let tls = line_of(&lines, "FAIL", "TLS");
    assert!(
        tls.contains("not signed by an authority clients trust"),
        "{tls}"
    );
    assert!(tls.contains("Let's Encrypt"), "{tls}");
    line_of(&lines, "skip", "MCP endpoint");
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_tls() {
    let front = Front::start_for(fixture(Break::Nothing).await, "other.studio.test").await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let tls = line_of(&lines, "FAIL", "TLS");
    assert!(tls.contains("does not name connect.studio.test"), "{tls}");
}

#[tokio::test]
async fn https_on_another_port_than_443_fails() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let url = format!("https://{HOST}:{}/mcp", front.port);
    let mut args = front.args(&url);
    // A port in the URL: only the address moves.
    args.connect_to = vec![format!("{HOST}:{0}:127.0.0.1:{0}", front.port)];
    let (ok, lines) = run(&args).await;
    assert!(!ok);
    let https = line_of(&lines, "FAIL", "https on 443");
    assert!(
        https.contains(&format!(
            "uses port {}; claude.ai connects only over https on port 443",
            front.port
        )),
        "{https}"
    );
}

#[tokio::test]
async fn plain_http_on_a_public_name_fails_without_the_demo_excuse() {
    let backend = fixture(Break::Nothing).await;
    let mut args = args(&format!("http://{HOST}/mcp"));
    args.connect_to = vec![format!("{HOST}:80:{backend}")];
    let (ok, lines) = run(&args).await;
    assert!(!ok);
    let https = line_of(&lines, "FAIL", "https on 443");
    assert!(
        https.contains("is plain http; claude.ai and ChatGPT connect only over https on port 443"),
        "{https}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("mcp-remote")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_path_other_than_mcp_fails() {
    let front = Front::start(fixture(Break::McpElsewhere).await).await;
    let (ok, lines) = run(&front.args(&format!("{ORIGIN}/api/mcp"))).await;
    assert!(!ok);
    let path = line_of(&lines, "FAIL", "path /mcp");
    assert!(
        path.contains("\"/api/mcp\"; claude.ai fails on anything but exactly /mcp"),
        "{path}"
    );
}

// ---- the MCP endpoint and its 401 ----

#[tokio::test]
async fn mcp_served_at_another_path_is_a_404_at_mcp() {
    let front = Front::start(fixture(Break::McpElsewhere).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let mcp = line_of(&lines, "FAIL", "MCP endpoint");
    assert!(mcp.contains("answers 404 Not Found"), "{mcp}");
    assert!(mcp.contains("exactly /mcp"), "{mcp}");
}

#[tokio::test]
async fn a_redirect_on_mcp_is_a_finding() {
    let front = Front::start(fixture(Break::McpRedirects).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let mcp = line_of(&lines, "FAIL", "MCP endpoint");
    assert!(
        mcp.contains("308 Permanent Redirect with a redirect to \"/mcp/\""),
        "{mcp}"
    );
}

#[tokio::test]
async fn a_401_without_resource_metadata_fails() {
    let front = Front::start(fixture(Break::No401Metadata).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let challenge = line_of(&lines, "FAIL", "401 resource_metadata");
    assert!(
        challenge.contains("names no resource_metadata"),
        "{challenge}"
    );
    assert!(challenge.contains("static door"), "{challenge}");
}

// ---- the metadata ----

#[tokio::test]
async fn no_path_suffixed_protected_resource_fails() {
    let front = Front::start(fixture(Break::NoSuffixedPrm).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let prm = line_of(&lines, "FAIL", "protected resource (/mcp form)");
    assert!(
        prm.contains("/.well-known/oauth-protected-resource/mcp answers 404"),
        "{prm}"
    );
    assert!(
        prm.contains("Claude Desktop asks for this form first"),
        "{prm}"
    );
    line_of(&lines, "ok", "protected resource (root form)");
}

#[tokio::test]
async fn a_resource_not_byte_equal_to_the_url_fails() {
    let front = Front::start(fixture(Break::ResourceNotExact).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    for step in [
        "protected resource (/mcp form)",
        "protected resource (root form)",
    ] {
        let prm = line_of(&lines, "FAIL", step);
        assert!(
            prm.contains("has resource \"https://connect.studio.test/mcp/\", not byte-equal to the connector URL \"https://connect.studio.test/mcp\""),
            "{prm}"
        );
        assert!(prm.contains("STUDIO_MCP_CONNECTOR_URL"), "{prm}");
    }
}

#[tokio::test]
async fn metadata_without_s256_fails() {
    let front = Front::start(fixture(Break::NoS256).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let pkce = line_of(&lines, "FAIL", "PKCE S256");
    assert!(pkce.contains("lacks S256"), "{pkce}");
}

#[tokio::test]
async fn metadata_without_a_registration_endpoint_fails() {
    let front = Front::start(fixture(Break::NoRegistration).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let dcr = line_of(&lines, "FAIL", "dynamic registration");
    assert!(dcr.contains("no registration_endpoint"), "{dcr}");
}

#[tokio::test]
async fn an_authorization_server_on_another_origin_fails() {
    let front = Front::start(fixture(Break::AsOtherOrigin).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let origin = line_of(&lines, "FAIL", "authorization server origin");
    assert!(
        origin.contains("names \"https://auth.studio.test\" as its authorization server, not https://connect.studio.test"),
        "{origin}"
    );
}

#[tokio::test]
async fn a_token_endpoint_not_at_the_root_fails() {
    let front = Front::start(fixture(Break::TokenNotAtRoot).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let token = line_of(&lines, "FAIL", "/token at the root");
    assert!(
        token.contains("POST https://connect.studio.test/token answers 404"),
        "{token}"
    );
    let meta = line_of(&lines, "warn", "authorization server metadata");
    assert!(
        meta.contains("token_endpoint is \"https://connect.studio.test/oauth/token\""),
        "{meta}"
    );
}

#[tokio::test]
async fn a_registration_the_server_refuses_fails_the_round_trip() {
    let front = Front::start(fixture(Break::AuthorizeRefusesClient).await).await;
    let (ok, lines) = run(&front.args(URL)).await;
    assert!(!ok);
    let round_trip = line_of(&lines, "FAIL", "registration round trip");
    assert!(
        round_trip
            .contains("answers 400 Bad Request (\"The application could not be identified.\")"),
        "{round_trip}"
    );
}

// ---- the static origin ----

#[tokio::test]
async fn a_static_origin_serving_discovery_fails() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let static_door = static_fixture(true).await;
    let mut args = front.args(URL);
    args.static_url = Some(format!("http://{static_door}/mcp"));
    let (ok, lines) = run(&args).await;
    assert!(!ok);
    let found = line_of(&lines, "FAIL", "static origin");
    assert!(
        found.contains(&format!(
            "http://{static_door}/.well-known/oauth-protected-resource answers 200 OK with OAuth; Claude Code then drops the static Authorization header"
        )),
        "{found}"
    );
    // Only that one path is named.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("FAIL  static origin:"))
            .count(),
        1,
        "{lines:#?}"
    );
    line_of(&lines, "ok", "static 401");
}

#[tokio::test]
async fn a_clean_static_origin_passes() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let static_door = static_fixture(false).await;
    let mut args = front.args(URL);
    args.static_url = Some(format!("http://{static_door}/mcp"));
    let (ok, lines) = run(&args).await;
    assert!(ok, "{lines:#?}");
    line_of(&lines, "ok", "static origin");
}

#[tokio::test]
async fn the_connector_given_as_the_static_url_fails() {
    let front = Front::start(fixture(Break::Nothing).await).await;
    let mut args = front.args(URL);
    args.static_url = Some(URL.to_owned());
    let (ok, lines) = run(&args).await;
    assert!(!ok);
    let same = line_of(&lines, "FAIL", "static origin");
    assert!(same.contains("is on the connector's origin"), "{same}");
}

#[tokio::test]
async fn unusable_arguments_are_an_error_not_a_finding() {
    let mut bad = args(URL);
    bad.connect_to = vec!["connect.studio.test:443".into()];
    assert!(
        doctor::run(&bad, &mut Vec::new()).await.is_err(),
        "--connect-to without an address"
    );
    let mut bad = args(URL);
    bad.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(
        doctor::run(&bad, &mut Vec::new()).await.is_err(),
        "--ca-file missing"
    );
}

// ---- helpers ----

fn args(url: &str) -> DoctorArgs {
    DoctorArgs {
        url: url.to_owned(),
        static_url: None,
        connect_to: Vec::new(),
        ca_file: None,
        timeout: 5,
    }
}

/// Runs the doctor in-process: whether it passed, and its lines (also printed, for a failing
/// test's output).
async fn run(args: &DoctorArgs) -> (bool, Vec<String>) {
    let mut out = Vec::new();
    let ok = doctor::run(args, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    (ok, text.lines().map(str::to_owned).collect())
}

/// The one line with `mark` for `step`.
fn line_of<'a>(lines: &'a [String], mark: &str, step: &str) -> &'a str {
    let prefix = format!("{mark:<6}{step}: ");
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
    assert!(!found.is_empty(), "no `{prefix}` line in {lines:#?}");
    found[0]
}

/// A TLS front on 127.0.0.1 for `connect.studio.test` (a CA of its own, in a PEM file), passing
/// the bytes on to a plain-http backend, as a deployment's proxy does.
struct Front {
    port: u16,
    ca_file: tempfile::NamedTempFile,
}

impl Front {
    async fn start(backend: SocketAddr) -> Front {
        Self::start_for(backend, HOST).await
    }

    async fn start_for(backend: SocketAddr, name: &str) -> Front {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "studio-mcp doctor test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(pem(ca.der()).as_bytes()).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Front { port, ca_file }
    }

    /// The doctor's arguments for `url` through this front, trusting its CA.
    fn args(&self, url: &str) -> DoctorArgs {
        DoctorArgs {
            connect_to: vec![format!("{HOST}:443:127.0.0.1:{}", self.port)],
            ca_file: Some(self.ca_file.path().to_owned()),
            ..args(url)
        }
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = "-----BEGIN CERTIFICATE-----\n".to_owned();
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What a fixture deployment gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Break {
    Nothing,
    /// MCP at `/api/mcp`, so `/mcp` is a 404.
    McpElsewhere,
    /// `/mcp` redirects to `/mcp/`.
    McpRedirects,
    /// The 401 is a bare `Bearer realm=…`.
    No401Metadata,
    /// Only the root protected-resource form.
    NoSuffixedPrm,
    /// `resource` with a trailing slash.
    ResourceNotExact,
    /// `code_challenge_methods_supported: ["plain"]`.
    NoS256,
    /// No `registration_endpoint` in the metadata.
    NoRegistration,
    /// `authorization_servers` names another origin.
    AsOtherOrigin,
    /// The token endpoint at `/oauth/token`, and nothing at `/token`.
    TokenNotAtRoot,
    /// `/authorize` does not know the client `/register` just made.
    AuthorizeRefusesClient,
}

/// A plain-http server imitating a connector door for `connect.studio.test`, with `broken`
/// wrong.
async fn fixture(broken: Break) -> SocketAddr {
    let resource = if broken == Break::ResourceNotExact {
        format!("{URL}/")
    } else {
        URL.to_owned()
    };
    let server = if broken == Break::AsOtherOrigin {
        "https://auth.studio.test"
    } else {
        ORIGIN
    };
    let prm = json!({
        "resource": resource,
        "authorization_servers": [server],
        "scopes_supported": ["mcp"],
    });
    let token_path = if broken == Break::TokenNotAtRoot {
        "/oauth/token"
    } else {
        "/token"
    };
    let mut metadata = json!({
        "issuer": ORIGIN,
        "authorization_endpoint": format!("{ORIGIN}/authorize"),
        "token_endpoint": format!("{ORIGIN}{token_path}"),
        "registration_endpoint": format!("{ORIGIN}/register"),
        "revocation_endpoint": format!("{ORIGIN}/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": [if broken == Break::NoS256 { "plain" } else { "S256" }],
        "token_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": true,
    });
    if broken == Break::NoRegistration {
        metadata
            .as_object_mut()
            .unwrap()
            .remove("registration_endpoint");
    }
    let mcp_path = if broken == Break::McpElsewhere {
        "/api/mcp"
    } else {
        "/mcp"
    };
    let challenge = if broken == Break::No401Metadata {
        r#"Bearer realm="studio-mcp""#.to_owned()
    } else {
        format!(
            r#"Bearer resource_metadata="{ORIGIN}/.well-known/oauth-protected-resource/mcp", scope="mcp""#
        )
    };
    let mcp = move || {
        let challenge = challenge.clone();
        async move {
            if broken == Break::McpRedirects {
                return redirect("/mcp/");
            }
            let mut response = (StatusCode::UNAUTHORIZED, "sign in first").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).unwrap(),
            );
            response
        }
    };
    let known_client = if broken == Break::AuthorizeRefusesClient {
        "someone-else"
    } else {
        "fixture-client"
    };
    let mut app = Router::new()
        .route(mcp_path, post(mcp))
        .route("/.well-known/oauth-protected-resource", json_route(prm.clone()))
        .route(
            "/.well-known/oauth-authorization-server",
            json_route(metadata),
        )
        .route(
            "/authorize",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let known = q.get("client_id").map(String::as_str) == Some(known_client)
                    && q.get("code_challenge_method").map(String::as_str) == Some("S256");
                if known {
                    (StatusCode::OK, Html("<html><body><h1>Sign in</h1></body></html>"))
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        Html("<html><head><title>No</title></head><body><p>The application could not be identified.</p></body></html>"),
                    )
                }
            }),
        )
        .route(
            token_path,
            post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": "invalid_request", "error_description": "grant_type is missing" })),
                )
            }),
        )
        .route(
            "/register",
            post(|| async {
                (
                    StatusCode::CREATED,
                    Json(json!({ "client_id": "fixture-client", "token_endpoint_auth_method": "none" })),
                )
            }),
        )
        .route("/revoke", post(|| async { StatusCode::OK }));
    if broken != Break::NoSuffixedPrm {
        app = app.route("/.well-known/oauth-protected-resource/mcp", json_route(prm));
    }
    serve(app).await
}

/// A plain-http server imitating a static door: `/mcp` answers a bare Bearer 401, and (if
/// `leaky`) the root protected-resource document is there too.
async fn static_fixture(leaky: bool) -> SocketAddr {
    let mut app = Router::new().route(
        "/mcp",
        post(|| async {
            let mut response = (StatusCode::UNAUTHORIZED, "token needed").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="studio-mcp""#),
            );
            response
        }),
    );
    if leaky {
        app = app.route(
            "/.well-known/oauth-protected-resource",
            json_route(
                json!({ "resource": "http://static/mcp", "authorization_servers": [ORIGIN] }),
            ),
        );
    }
    serve(app).await
}

fn json_route(value: Value) -> axum::routing::MethodRouter {
    get(move || {
        let value = value.clone();
        async move { Json(value) }
    })
}

fn redirect(to: &'static str) -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    response
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
