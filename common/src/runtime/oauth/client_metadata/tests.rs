//! Unit tests of client metadata documents: fetches against a local TLS test server, the URL
//! and address rules, and the cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;

/// What the test server answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Sent before the answer's first byte.
    delay: Duration,
    /// Without it the body ends when the connection closes.
    content_length: bool,
}

impl Reply {
    fn json(value: &Value) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: value.to_string().into_bytes(),
            delay: Duration::ZERO,
            content_length: true,
        }
    }
}

/// Given the URL a request was for, the answer.
type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A throwaway CA and a certificate for `localhost` signed by it.
struct TestPki {
    ca: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> TestPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client-metadata test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    TestPki {
        ca: ca.der().clone(),
        server: Arc::new(server),
    }
}

/// An HTTPS server on 127.0.0.1 that counts connections and requests and answers each
/// request with its handler's reply, written by hand so a test can send what it likes.
struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start(pki: &TestPki, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (acceptor, handler, reqs) = (acceptor.clone(), handler.clone(), reqs.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    reqs.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let reply = handler(&format!("https://localhost:{port}{path}"));
                    tokio::time::sleep(reply.delay).await;
                    let mut out =
                        format!("HTTP/1.1 {} Test\r\nConnection: close\r\n", reply.status);
                    for (name, value) in &reply.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    if reply.content_length {
                        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                    }
                    out.push_str("\r\n");
                    let _ = tls.write_all(out.as_bytes()).await;
                    let _ = tls.write_all(&reply.body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            connections,
            requests,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/client.json", self.port)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn policy(pki: &TestPki) -> ClientMetadataPolicy {
    ClientMetadataPolicy {
        allow_private: true,
        extra_roots: vec![reqwest::Certificate::from_der(&pki.ca).unwrap()],
        ..ClientMetadataPolicy::default()
    }
}

fn good_document(url: &str) -> Value {
    json!({
        "client_id": url,
        "client_name": "  Claude\u{202e}  ",
        "client_uri": "https://claude.ai",
        "logo_uri": "javascript:alert(1)",
        "redirect_uris": [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "com.example.app:/oauth2redirect",
        ],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// Changes a good document into the one a test needs, given the URL it is served at.
type Edit = fn(&str, &mut Map<String, Value>);

/// A server answering every request with `edit(good document)`.
async fn serving(pki: &TestPki, edit: Edit) -> TestServer {
    TestServer::start(
        pki,
        Arc::new(move |url: &str| {
            let mut doc = good_document(url);
            if let Value::Object(map) = &mut doc {
                edit(url, map);
            }
            Reply::json(&doc)
        }),
    )
    .await
}

async fn fetch_from(server: &TestServer, pki: &TestPki) -> Outcome {
    let fetcher = ClientMetadataFetcher::new(policy(pki)).unwrap();
    fetcher.fetch(&server.url()).await
}

#[tokio::test]
async fn a_good_document_is_fetched_then_served_from_the_cache() {
    let pki = pki();
    let server = serving(&pki, |_, _| {}).await;
    let fetcher = ClientMetadataFetcher::new(policy(&pki)).unwrap();
    let url = server.url();

    let metadata = fetcher.fetch(&url).await.unwrap();
    assert_eq!(
        *metadata,
        ClientMetadata {
            client_id: url.clone(),
            client_name: Some("Claude".to_owned()),
            client_uri: Some("https://claude.ai".to_owned()),
            logo_uri: None,
            redirect_uris: vec![
                "https://claude.ai/api/mcp/auth_callback".to_owned(),
                "http://127.0.0.1:33418/callback".to_owned(),
                "com.example.app:/oauth2redirect".to_owned(),
            ],
            token_endpoint_auth_method: "none".to_owned(),
        }
    );
    let again = fetcher.fetch(&url).await.unwrap();
    assert!(Arc::ptr_eq(&metadata, &again));
    // A clone shares the cache.
    fetcher.clone().fetch(&url).await.unwrap();
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn no_store_and_max_age_zero_are_not_cached() {
    let pki = pki();
    for directive in ["no-store", "max-age=0"] {
        let server = TestServer::start(
            &pki,
            Arc::new(move |url: &str| {
                let mut reply = Reply::json(&good_document(url));
                reply.headers.push(("Cache-Control", directive.to_owned()));
                reply
            }),
        )
        .await;
        let fetcher = ClientMetadataFetcher::new(policy(&pki)).unwrap();
        fetcher.fetch(&server.url()).await.unwrap();
        fetcher.fetch(&server.url()).await.unwrap();
        assert_eq!(server.requests(), 2, "{directive}");
    }
}

#[tokio::test]
async fn concurrent_fetches_of_one_url_share_a_request() {
    let pki = pki();
    let server = TestServer::start(
        &pki,
        Arc::new(|url: &str| Reply {
            delay: Duration::from_millis(300),
            ..Reply::json(&good_document(url))
        }),
    )
    .await;
    let fetcher = ClientMetadataFetcher::new(policy(&pki)).unwrap();
    let url = server.url();
    let (a, b, c) = tokio::join!(
        fetcher.fetch(&url),
        fetcher.fetch(&url),
        fetcher.fetch(&url)
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn failures_are_cached_too() {
    let pki = pki();
    let server = serving(&pki, |_, doc| {
        doc.insert(
            "client_id".into(),
            json!("https://elsewhere.example/client.json"),
        );
    })
    .await;
    let fetcher = ClientMetadataFetcher::new(policy(&pki)).unwrap();
    for _ in 0..3 {
        assert_eq!(
            fetcher.fetch(&server.url()).await,
            Err(ClientMetadataError::ClientIdMismatch)
        );
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_http_url_is_refused() {
    let pki = pki();
    let server = serving(&pki, |_, _| {}).await;
    let fetcher = ClientMetadataFetcher::new(policy(&pki)).unwrap();
    let url = format!("http://localhost:{}/client.json", server.port);
    assert!(ClientMetadataFetcher::is_metadata_url(&url));
    let err = fetcher.fetch(&url).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::NotHttps);
    assert_eq!(err.to_string(), "the client's metadata URL must use https");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn loopback_is_refused_without_a_connection() {
    let pki = pki();
    let server = serving(&pki, |_, _| {}).await;
    let strict = ClientMetadataFetcher::new(ClientMetadataPolicy {
        allow_private: false,
        ..policy(&pki)
    })
    .unwrap();
    for url in [
        server.url(),
        format!("https://127.0.0.1:{}/client.json", server.port),
        format!("https://[::1]:{}/client.json", server.port),
        format!("https://[::ffff:7f00:1]:{}/client.json", server.port),
    ] {
        let err = strict.fetch(&url).await.unwrap_err();
        assert_eq!(err, ClientMetadataError::PrivateAddress, "{url}");
        assert_eq!(
            err.to_string(),
            "the client's metadata URL points at a private or loopback address"
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_document_too_large_is_refused() {
    let pki = pki();
    for content_length in [true, false] {
        let server = TestServer::start(
            &pki,
            Arc::new(move |url: &str| {
                let mut doc = good_document(url);
                doc["padding"] = json!("x".repeat(20_000));
                Reply {
                    content_length,
                    ..Reply::json(&doc)
                }
            }),
        )
        .await;
        let err = fetch_from(&server, &pki).await.unwrap_err();
        assert_eq!(err, ClientMetadataError::TooLarge { limit: 16 * 1024 });
        assert_eq!(
            err.to_string(),
            "the client's metadata document is larger than 16384 bytes"
        );
    }
}

#[tokio::test]
async fn a_slow_server_is_given_up_on_at_the_timeout() {
    let pki = pki();
    let server = TestServer::start(
        &pki,
        Arc::new(|url: &str| Reply {
            delay: Duration::from_secs(30),
            ..Reply::json(&good_document(url))
        }),
    )
    .await;
    let timeout = Duration::from_millis(500);
    let fetcher = ClientMetadataFetcher::new(ClientMetadataPolicy {
        timeout,
        ..policy(&pki)
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = fetcher.fetch(&server.url()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, ClientMetadataError::Timeout { after: timeout });
    assert_eq!(
        err.to_string(),
        "the client's metadata server did not answer within 500 ms"
    );
    assert!(took >= timeout && took < timeout * 3, "took {took:?}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let pki = pki();
    let server = TestServer::start(
        &pki,
        Arc::new(|url: &str| {
            if url.ends_with("/client.json") {
                Reply {
                    status: 302,
                    headers: vec![("Location", url.replace("client.json", "other.json"))],
                    ..Reply::json(&json!({}))
                }
            } else {
                Reply::json(&good_document(url))
            }
        }),
    )
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::Redirect { status: 302 });
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_error_status_is_named() {
    let pki = pki();
    let server = TestServer::start(
        &pki,
        Arc::new(|_: &str| Reply {
            status: 404,
            ..Reply::json(&json!({"error": "not found"}))
        }),
    )
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::Status { status: 404 });
    assert!(err.to_string().contains("404"));
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let pki = pki();
    let server = serving(&pki, |_, _| {}).await;
    let stranger = self::pki();
    let err = fetch_from(&server, &stranger).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::Tls);
}

#[tokio::test]
async fn a_client_id_mismatch_is_refused() {
    let pki = pki();
    let server = serving(&pki, |url, doc| {
        // Differs only in case: the comparison is exact.
        doc.insert("client_id".into(), json!(url.replace("client", "Client")));
    })
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::ClientIdMismatch);
    assert_eq!(
        err.to_string(),
        "the document's client_id does not equal the URL it was fetched from"
    );
}

#[tokio::test]
async fn missing_or_bad_redirect_uris_are_refused() {
    let pki = pki();
    let cases: [(Edit, ClientMetadataError); 5] = [
        (
            |_, doc| {
                doc.remove("redirect_uris");
            },
            ClientMetadataError::NoRedirectUris,
        ),
        (
            |_, doc| {
                doc.insert("redirect_uris".into(), json!([]));
            },
            ClientMetadataError::NoRedirectUris,
        ),
        (
            |_, doc| {
                doc.insert("redirect_uris".into(), json!("https://a.example/cb"));
            },
            ClientMetadataError::WrongType {
                field: "redirect_uris",
                expected: "a list of strings",
            },
        ),
        (
            |_, doc| {
                doc.insert(
                    "redirect_uris".into(),
                    json!(["https://a.example/cb", "http://a.example/cb"]),
                );
            },
            ClientMetadataError::BadRedirectUri {
                number: 2,
                reason: "plain http is only allowed for localhost, 127.0.0.1 and [::1]",
            },
        ),
        (
            |_, doc| {
                doc.insert("redirect_uris".into(), json!(["javascript:alert(1)"]));
            },
            ClientMetadataError::BadRedirectUri {
                number: 1,
                reason: "its scheme must be https, http to a loopback address, or a private-use scheme such as com.example.app",
            },
        ),
    ];
    for (edit, expected) in cases {
        let server = serving(&pki, edit).await;
        let err = fetch_from(&server, &pki).await.unwrap_err();
        assert_eq!(err, expected);
    }
    let err = ClientMetadataError::NoRedirectUris;
    assert_eq!(
        err.to_string(),
        "the client's metadata document lists no redirect URIs"
    );
}

#[tokio::test]
async fn a_confidential_client_is_refused() {
    let pki = pki();
    let server = serving(&pki, |_, doc| {
        doc.insert(
            "token_endpoint_auth_method".into(),
            json!("client_secret_basic"),
        );
    })
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert_eq!(
        err,
        ClientMetadataError::UnsupportedAuthMethod {
            method: "client_secret_basic".to_owned()
        }
    );

    let server = serving(&pki, |_, doc| {
        doc.insert("client_secret".into(), json!("hunter2"));
    })
    .await;
    let err = fetch_from(&server, &pki).await.unwrap_err();
    assert_eq!(err, ClientMetadataError::HasClientSecret);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused() {
    let pki = pki();
    for (body, expected) in [
        (&b"<html>hello</html>"[..], ClientMetadataError::NotJson),
        (&b"[1, 2]"[..], ClientMetadataError::NotObject),
    ] {
        let server = TestServer::start(
            &pki,
            Arc::new(move |_: &str| Reply {
                body: body.to_vec(),
                ..Reply::json(&json!({}))
            }),
        )
        .await;
        assert_eq!(fetch_from(&server, &pki).await.unwrap_err(), expected);
    }
}

/// Collects what the fetcher logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_log_names_the_client_and_the_outcome_but_never_the_document() {
    let pki = pki();
    let server = serving(&pki, |_, doc| {
        doc.insert("software_statement".into(), json!("BODY-MARKER"));
        doc.insert("client_name".into(), json!("NAME-MARKER"));
    })
    .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With a single dispatcher registered, tracing-core decides whether a call site is
    // enabled by asking the default of the thread that first reaches it, which may be
    // another test's thread with no subscriber; a second live dispatcher makes it ask all.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    fetch_from(&server, &pki).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains(&server.url()), "{log}");
    assert!(log.contains("accepted"), "{log}");
    assert!(!log.contains("MARKER"), "{log}");
}

#[test]
fn client_id_urls_follow_the_draft() {
    let ok = "https://app.example.com/oauth/client.json?v=2";
    assert!(parse_client_id(ok).is_ok());
    for (url, expected) in [
        ("client-123", ClientMetadataError::NotAUrl),
        (
            "http://app.example.com/client.json",
            ClientMetadataError::NotHttps,
        ),
        (
            "ftp://app.example.com/client.json",
            ClientMetadataError::NotHttps,
        ),
        (
            "https://user:pw@app.example.com/c.json",
            ClientMetadataError::HasUserinfo,
        ),
        (
            "https://user@app.example.com/c.json",
            ClientMetadataError::HasUserinfo,
        ),
        (
            "https://app.example.com/c.json#x",
            ClientMetadataError::HasFragment,
        ),
        (
            "https://app.example.com/c.json#",
            ClientMetadataError::HasFragment,
        ),
        ("https://app.example.com", ClientMetadataError::NoPath),
        ("https://app.example.com/", ClientMetadataError::NoPath),
        (
            "https://app.example.com/a/../c.json",
            ClientMetadataError::DotSegment,
        ),
        (
            "https://app.example.com/./c.json",
            ClientMetadataError::DotSegment,
        ),
        (
            "https://app.example.com/a/%2E%2e/c.json",
            ClientMetadataError::DotSegment,
        ),
        (
            "https://app.example.com/a\\..\\c.json",
            ClientMetadataError::DotSegment,
        ),
        (
            "https://app.example.com/a/..",
            ClientMetadataError::DotSegment,
        ),
        (
            "https://App.Example.com/c.json",
            ClientMetadataError::NotCanonical,
        ),
        (
            "https://app.example.com:443/c.json",
            ClientMetadataError::NotCanonical,
        ),
        (
            "HTTPS://app.example.com/c.json",
            ClientMetadataError::NotCanonical,
        ),
        (
            "https://app.example.com/a b.json",
            ClientMetadataError::NotCanonical,
        ),
    ] {
        assert_eq!(parse_client_id(url).unwrap_err(), expected, "{url}");
    }
    assert!(parse_client_id("https://app.example.com/.well-known/client").is_ok());
}

#[test]
fn metadata_urls_are_told_from_client_ids() {
    assert!(ClientMetadataFetcher::is_metadata_url(
        "https://a.example/c"
    ));
    assert!(ClientMetadataFetcher::is_metadata_url("HTTP://a.example/c"));
    assert!(!ClientMetadataFetcher::is_metadata_url("mcp_client_1234"));
    assert!(!ClientMetadataFetcher::is_metadata_url("https:"));
    assert!(!ClientMetadataFetcher::is_metadata_url(""));
}

#[test]
fn only_public_addresses_pass() {
    for private in [
        "0.0.0.0",
        "0.1.2.3",
        "10.1.2.3",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "127.9.9.9",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:db8::1",
        "2002:7f00:1::1",
        "3fff::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ] {
        let ip: IpAddr = private.parse().unwrap();
        assert!(!is_public(ip), "{private} passed");
    }
    for public in [
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.0.1",
        "172.32.0.1",
        "192.0.1.1",
        "198.20.0.1",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::1",
    ] {
        let ip: IpAddr = public.parse().unwrap();
        assert!(is_public(ip), "{public} refused");
    }
}

#[test]
fn ip_literal_hosts_are_recognised() {
    assert_eq!(literal_ip("127.0.0.1"), Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(literal_ip("[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(literal_ip("localhost"), None);
    assert_eq!(literal_ip("example.com"), None);
}

#[test]
fn redirect_uris_follow_rfc_8252() {
    for ok in [
        "https://claude.ai/api/mcp/auth_callback",
        "https://chatgpt.com/connector_platform_oauth_redirect?x=1",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:9999/cb",
        "com.example.app:/oauth2redirect",
        "com.example.app://callback",
    ] {
        assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
    }
    for bad in [
        "/relative/cb",
        "https://a.example/cb#frag",
        "http://a.example/cb",
        "http://127.0.0.2/cb",
        "http://localhost.evil.example/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "myapp:/cb",
    ] {
        assert!(check_redirect_uri(bad).is_err(), "{bad} passed");
    }
}

#[test]
fn display_uris_must_be_https() {
    assert_eq!(
        display_uri("https://a.example/logo.png"),
        Some("https://a.example/logo.png".to_owned())
    );
    assert_eq!(display_uri("http://a.example/logo.png"), None);
    assert_eq!(display_uri("javascript:alert(1)"), None);
    assert_eq!(display_uri("https://u:p@a.example/"), None);
    assert_eq!(
        display_uri(&format!("https://a.example/{}", "a".repeat(3000))),
        None
    );
}

#[test]
fn cache_control_limits_the_time_a_document_is_kept() {
    let ttl = Duration::from_secs(300);
    let of = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, value.parse().unwrap());
        Freshness::of(&headers).ttl(ttl)
    };
    assert_eq!(Freshness::of(&HeaderMap::new()).ttl(ttl), ttl);
    assert_eq!(of("public, max-age=60"), Duration::from_secs(60));
    assert_eq!(of("max-age=86400"), ttl);
    assert_eq!(of("no-store"), Duration::ZERO);
    assert_eq!(of("No-Cache"), Duration::ZERO);
    assert_eq!(of("max-age=banana"), Duration::ZERO);
}

#[test]
fn the_cache_holds_at_most_its_cap_and_evicts_the_oldest() {
    let mut cache = Cache::default();
    let now = Instant::now();
    let ttl = Duration::from_secs(60);
    for i in 0..=MAX_CACHE_ENTRIES {
        cache.insert(
            &format!("k{i}"),
            Err(ClientMetadataError::NotJson),
            ttl,
            now,
        );
    }
    assert_eq!(cache.entries.len(), MAX_CACHE_ENTRIES);
    assert!(cache.get("k0", now).is_none());
    assert!(cache.get("k1", now).is_some());
    assert!(cache.get(&format!("k{MAX_CACHE_ENTRIES}"), now).is_some());
    // Entries expire.
    assert!(cache.get("k1", now + ttl).is_none());
    // A zero lifetime removes what was there.
    cache.insert("k2", Err(ClientMetadataError::NotJson), Duration::ZERO, now);
    assert!(cache.get("k2", now).is_none());
}

#[test]
fn the_timeout_reads_as_a_person_would_say_it() {
    assert_eq!(
        ClientMetadataError::Timeout {
            after: Duration::from_secs(5)
        }
        .to_string(),
        "the client's metadata server did not answer within 5 s"
    );
}
