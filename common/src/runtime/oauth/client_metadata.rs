//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, as the MCP
//! authorization spec of 2025-11-25 uses them): a connector's `client_id` is an https URL, and
//! the authorization server fetches the JSON document at that URL to learn the client's name
//! and redirect URIs.
//!
//! Whoever starts a sign-in chooses that URL, so the fetch is treated as hostile: https only,
//! every address the host resolves to must be public (checked in the resolver the HTTP client
//! connects through, so a DNS answer cannot change between the check and the connection), no
//! redirects, one deadline for the whole fetch, a size cap, and a document that must name
//! itself and describe a public client. Answers, failures included, are cached so that a flood
//! of sign-ins does not become a flood of fetches.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use reqwest::{Url, redirect};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// A failed fetch is remembered this long at most, so a bad `client_id` costs one fetch per
/// half minute however often it is tried, and a fixed document is seen soon.
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Documents (and failures) remembered at most; the oldest goes first.
const MAX_CACHE_ENTRIES: usize = 1000;
/// `client_uri` and `logo_uri` longer than this are dropped.
const MAX_DISPLAY_URI_BYTES: usize = 2048;

/// What a fetch may do.
#[derive(Clone, Debug)]
pub struct ClientMetadataPolicy {
    /// Fetch from loopback, private and other non-public addresses too. For tests and local
    /// development only: in production it would let anyone make the server call its neighbours.
    pub allow_private: bool,
    /// Root certificates trusted besides the system's (a test CA, a corporate CA).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// A longer document is refused, not truncated.
    pub max_bytes: usize,
    /// For the whole fetch: name lookup, connection, TLS, answer and body.
    pub timeout: Duration,
    /// How long a good document is remembered (less if its `Cache-Control: max-age` says so).
    pub cache_ttl: Duration,
}

impl Default for ClientMetadataPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            extra_roots: Vec::new(),
            max_bytes: 16 * 1024,
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// A validated client metadata document: what the authorization server needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientMetadata {
    /// The URL the document was fetched from, which the document names as its `client_id`.
    pub client_id: String,
    /// As [`crate::text::clean_name`] keeps it: without any character a person would not see
    /// (controls, bidi controls, invisible characters), trimmed, 100 characters at most.
    pub client_name: Option<String>,
    /// An https URL, or `None` if the document gave none or an unusable one.
    pub client_uri: Option<String>,
    /// An https URL, or `None` if the document gave none or an unusable one.
    pub logo_uri: Option<String>,
    /// As written in the document (compare them exactly); at least one, each allowed.
    pub redirect_uris: Vec<String>,
    /// Always `"none"`: only public clients are accepted.
    pub token_endpoint_auth_method: String,
}

/// Why a client's metadata could not be used. Each message is a sentence for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetadataError {
    #[error("the client metadata fetcher could not be set up: {0}")]
    Setup(String),
    #[error("the client_id is not a valid URL")]
    NotAUrl,
    #[error("the client's metadata URL must use https")]
    NotHttps,
    #[error("the client's metadata URL must not contain a user name or password")]
    HasUserinfo,
    #[error("the client's metadata URL must not contain a fragment (#…)")]
    HasFragment,
    #[error("the client's metadata URL must have a path after the host name")]
    NoPath,
    #[error("the client's metadata URL must not contain \".\" or \"..\" path segments")]
    DotSegment,
    #[error(
        "the client's metadata URL is not written in its normal form (for example, capital \
         letters in the host name or a default port)"
    )]
    NotCanonical,
    #[error("the client's metadata host name could not be resolved")]
    Unresolvable,
    #[error("the client's metadata URL points at a private or loopback address")]
    PrivateAddress,
    #[error("the client's metadata server could not be reached")]
    Unreachable,
    #[error("a secure connection to the client's metadata server could not be established")]
    Tls,
    #[error("the client's metadata server did not answer within {}", human(.after))]
    Timeout { after: Duration },
    #[error(
        "the client's metadata server answered with a redirect ({status}), which is not followed"
    )]
    Redirect { status: u16 },
    #[error(
        "the client's metadata server answered with HTTP status {status} instead of the document"
    )]
    Status { status: u16 },
    #[error("the client's metadata document could not be read from its server")]
    Transfer,
    #[error("the client's metadata document is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the client's metadata document is not valid JSON")]
    NotJson,
    #[error("the client's metadata document is not a JSON object")]
    NotObject,
    #[error("the client's metadata document has no {field}")]
    MissingField { field: &'static str },
    #[error("the client's metadata document's {field} is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the document's client_id does not equal the URL it was fetched from")]
    ClientIdMismatch,
    #[error(
        "the client's metadata document contains a client secret, which a public client must not have"
    )]
    HasClientSecret,
    #[error(
        "the client's metadata document asks for the token endpoint authentication method \
         \"{method}\", but only public clients (\"none\") are supported"
    )]
    UnsupportedAuthMethod { method: String },
    #[error("the client's metadata document lists no redirect URIs")]
    NoRedirectUris,
    #[error(
        "redirect URI number {number} in the client's metadata document is not allowed: {reason}"
    )]
    BadRedirectUri { number: usize, reason: &'static str },
}

type Outcome = Result<Arc<ClientMetadata>, ClientMetadataError>;

/// Fetches, validates and caches client metadata documents. Cheap to clone; clones share the
/// HTTP client and the cache.
#[derive(Clone)]
pub struct ClientMetadataFetcher {
    inner: Arc<Inner>,
}

struct Inner {
    policy: ClientMetadataPolicy,
    client: reqwest::Client,
    cache: Mutex<Cache>,
    /// Fetches under way, so that concurrent requests for one URL share a single fetch.
    in_flight: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
}

impl std::fmt::Debug for ClientMetadataFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadataFetcher")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl ClientMetadataFetcher {
    pub fn new(policy: ClientMetadataPolicy) -> Result<Self, ClientMetadataError> {
        crate::upstream::install_crypto_provider();
        let resolver = CheckedResolver {
            allow_private: policy.allow_private,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("studio-mcp/", env!("CARGO_PKG_VERSION")))
            .https_only(true)
            .redirect(redirect::Policy::none())
            // A proxy would resolve the host itself, past the address check.
            .no_proxy()
            .dns_resolver(resolver)
            .tls_certs_merge(policy.extra_roots.iter().cloned())
            .connect_timeout(policy.timeout)
            .timeout(policy.timeout)
            // Fetches are rare and to hosts anyone names: keep no idle connections to them.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| ClientMetadataError::Setup(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                client,
                cache: Mutex::new(Cache::default()),
                in_flight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether `client_id` is meant as a metadata URL rather than a registered client's id.
    /// An http one is then refused by [`Self::fetch`] with a clear message.
    pub fn is_metadata_url(client_id: &str) -> bool {
        let starts = |prefix: &str| {
            client_id
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        starts("https://") || starts("http://")
    }

    /// The validated document for `client_id`, from the cache or fetched now.
    pub async fn fetch(&self, client_id: &str) -> Result<Arc<ClientMetadata>, ClientMetadataError> {
        let inner = &*self.inner;
        // A malformed URL costs nothing to refuse again, so it takes no room in the cache.
        let url = match parse_client_id(client_id) {
            Ok(url) => url,
            Err(err) => {
                log_outcome(client_id, &Err(err.clone()));
                return Err(err);
            }
        };
        if let Some(outcome) = inner.cached(client_id) {
            tracing::debug!(client_id = %shown(client_id), "client metadata from the cache");
            return outcome;
        }
        let slot = inner.in_flight_slot(client_id);
        slot.get_or_init(|| inner.fetch_and_remember(client_id, &url, &slot))
            .await
            .clone()
    }
}

impl Inner {
    fn cached(&self, key: &str) -> Option<Outcome> {
        lock(&self.cache).get(key, Instant::now())
    }

    fn in_flight_slot(&self, key: &str) -> Arc<OnceCell<Outcome>> {
        lock(&self.in_flight)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    async fn fetch_and_remember(
        &self,
        client_id: &str,
        url: &Url,
        slot: &Arc<OnceCell<Outcome>>,
    ) -> Outcome {
        // Dropped last, also when the caller gives up mid-fetch: the slot must not outlive it.
        let _in_flight = InFlight {
            map: &self.in_flight,
            key: client_id,
            slot,
        };
        let timeout = self.policy.timeout;
        let fetched = tokio::time::timeout(timeout, self.fetch_uncached(client_id, url))
            .await
            .unwrap_or(Err(ClientMetadataError::Timeout { after: timeout }));
        let (outcome, ttl) = match fetched {
            Ok((metadata, freshness)) => {
                (Ok(Arc::new(metadata)), freshness.ttl(self.policy.cache_ttl))
            }
            Err(err) => (Err(err), FAILURE_TTL.min(self.policy.cache_ttl)),
        };
        log_outcome(client_id, &outcome);
        lock(&self.cache).insert(client_id, outcome.clone(), ttl, Instant::now());
        outcome
    }

    async fn fetch_uncached(
        &self,
        client_id: &str,
        url: &Url,
    ) -> Result<(ClientMetadata, Freshness), ClientMetadataError> {
        let (body, freshness) = self.download(url).await?;
        Ok((parse_document(&body, client_id)?, freshness))
    }

    async fn download(&self, url: &Url) -> Result<(Vec<u8>, Freshness), ClientMetadataError> {
        // The HTTP client connects to an IP literal without asking the resolver, so check it here.
        if let Some(ip) = url.host_str().and_then(literal_ip)
            && !self.policy.allow_private
            && !is_public(ip)
        {
            return Err(ClientMetadataError::PrivateAddress);
        }
        let timeout = self.policy.timeout;
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&e, timeout))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ClientMetadataError::Redirect {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ClientMetadataError::Status {
                status: status.as_u16(),
            });
        }
        let freshness = Freshness::of(response.headers());
        let limit = self.policy.max_bytes;
        let too_large = ClientMetadataError::TooLarge { limit };
        if response
            .content_length()
            .is_some_and(|announced| announced > limit as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&e, timeout))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, freshness))
    }
}

/// Removes a fetch's slot from the in-flight map when the fetch ends or is abandoned. Callers
/// still waiting on the slot keep their `Arc` and take the fetch over if it was abandoned.
struct InFlight<'a> {
    map: &'a Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
    key: &'a str,
    slot: &'a Arc<OnceCell<Outcome>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = lock(self.map);
        if map
            .get(self.key)
            .is_some_and(|current| Arc::ptr_eq(current, self.slot))
        {
            map.remove(self.key);
        }
    }
}

/// The cache and the in-flight map hold no invariant a panicking holder could break halfway,
/// so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log_outcome(client_id: &str, outcome: &Outcome) {
    match outcome {
        Ok(_) => {
            tracing::info!(client_id = %shown(client_id), outcome = "accepted", "client metadata fetched")
        }
        Err(err) => {
            tracing::info!(client_id = %shown(client_id), outcome = %err, "client metadata refused")
        }
    }
}

/// A `client_id` as logged: anyone can send a long one.
fn shown(client_id: &str) -> &str {
    match client_id.char_indices().nth(300) {
        Some((end, _)) => &client_id[..end],
        None => client_id,
    }
}

/// "5 s" or "250 ms", as the timeout message shows it.
fn human(duration: &Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

// ---------------------------------------------------------------------------------------------
// The URL

/// Checks `client_id` against the draft's rules for a client identifier URL. The URL must also
/// be in the form the parser writes it: the parser silently removes dot segments, default ports
/// and the like, and the document must name exactly the string that was fetched.
pub fn parse_client_id(client_id: &str) -> Result<Url, ClientMetadataError> {
    let url = Url::parse(client_id).map_err(|_| ClientMetadataError::NotAUrl)?;
    if url.scheme() != "https" {
        return Err(ClientMetadataError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientMetadataError::HasUserinfo);
    }
    if url.fragment().is_some() {
        return Err(ClientMetadataError::HasFragment);
    }
    if has_dot_segment(client_id) {
        return Err(ClientMetadataError::DotSegment);
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err(ClientMetadataError::NoPath);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ClientMetadataError::NotAUrl);
    }
    if url.as_str() != client_id {
        return Err(ClientMetadataError::NotCanonical);
    }
    Ok(url)
}

/// Whether the path of the URL as written has a `.` or `..` segment, `%2e` spelled or not.
fn has_dot_segment(raw: &str) -> bool {
    let after_scheme = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let before_query = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(after_scheme);
    // The parser takes a backslash for a slash in https URLs.
    let Some(path_start) = before_query.find(['/', '\\']) else {
        return false;
    };
    before_query[path_start..]
        .split(['/', '\\'])
        .any(|segment| {
            let segment = segment.to_ascii_lowercase().replace("%2e", ".");
            segment == "." || segment == ".."
        })
}

/// The address in a URL's host if it is an IP literal (`127.0.0.1`, `[::1]`).
fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// Whether `ip` is an address on the public internet, and so safe to fetch from.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", the unspecified address among them
        || a == 10 // RFC 1918
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata services among them
        || (a == 172 && (16..32).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // ::ffff:a.b.c.d reaches the IPv4 address a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7]));
    }
    // Only global unicast (2000::/3) is routed on the internet. Outside it: ::, ::1, the
    // IPv4-compatible ::/96, discard 100::/64, local NAT64 64:ff9b:1::/48, unique-local
    // fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 6to4 (2002::/16) reaches the IPv4 address in its next 32 bits.
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2]));
    }
    let special = match s[0] {
        // IETF protocol assignments 2001::/23 (Teredo, benchmarking, ORCHID); documentation.
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // Documentation (RFC 9637).
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !special
}

/// Why the resolver refused a name; found again in the HTTP client's error chain.
#[derive(Debug, thiserror::Error)]
enum AddressRefused {
    #[error("the name has no address")]
    Unresolvable,
    #[error("the name resolves to a non-public address")]
    NotPublic,
}

/// The HTTP client's only resolver: it resolves a name and hands the client exactly the
/// addresses it checked, all of which must be public. Checking here rather than before the
/// request means a second DNS answer (rebinding) never reaches a connection.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|_| AddressRefused::Unresolvable)?;
            let addrs: Vec<SocketAddr> = found.collect();
            if addrs.is_empty() {
                return Err(AddressRefused::Unresolvable.into());
            }
            if !allow_private && !addrs.iter().all(|addr| is_public(addr.ip())) {
                return Err(AddressRefused::NotPublic.into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Turns the HTTP client's error into a sentence, looking through its causes for the
/// resolver's refusal or a TLS failure.
fn transport_error(err: &reqwest::Error, timeout: Duration) -> ClientMetadataError {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<AddressRefused>() {
            return match refused {
                AddressRefused::Unresolvable => ClientMetadataError::Unresolvable,
                AddressRefused::NotPublic => ClientMetadataError::PrivateAddress,
            };
        }
        if current.is::<rustls::Error>() {
            return ClientMetadataError::Tls;
        }
        // An io::Error skips the error it wraps in `source()` (TLS failures arrive as one
        // io::Error inside another): step into it instead.
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => current.source(),
        };
    }
    if err.is_timeout() {
        ClientMetadataError::Timeout { after: timeout }
    } else if err.is_connect() {
        ClientMetadataError::Unreachable
    } else {
        ClientMetadataError::Transfer
    }
}

// ---------------------------------------------------------------------------------------------
// The document

/// A fetched document's body, validated as `client_id`'s metadata (public for the fuzz targets).
pub fn parse_document(body: &[u8], client_id: &str) -> Result<ClientMetadata, ClientMetadataError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ClientMetadataError::NotJson)?;
    let Value::Object(doc) = value else {
        return Err(ClientMetadataError::NotObject);
    };
    match string_field(&doc, "client_id")? {
        None => return Err(ClientMetadataError::MissingField { field: "client_id" }),
        Some(named) if named != client_id => return Err(ClientMetadataError::ClientIdMismatch),
        Some(_) => {}
    }
    // The draft forbids both for a document-identified client; we only serve public clients.
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(ClientMetadataError::HasClientSecret);
    }
    let method = string_field(&doc, "token_endpoint_auth_method")?.unwrap_or("none");
    if method != "none" {
        return Err(ClientMetadataError::UnsupportedAuthMethod {
            method: printable_token(method),
        });
    }
    let redirect_uris = redirect_uris(&doc)?;
    Ok(ClientMetadata {
        client_id: client_id.to_owned(),
        // The same cleaning as a dynamically registered client's name.
        client_name: string_field(&doc, "client_name")?.and_then(crate::text::clean_name),
        client_uri: string_field(&doc, "client_uri")?.and_then(display_uri),
        logo_uri: string_field(&doc, "logo_uri")?.and_then(display_uri),
        redirect_uris,
        token_endpoint_auth_method: "none".to_owned(),
    })
}

fn string_field<'a>(
    doc: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ClientMetadataError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClientMetadataError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn redirect_uris(doc: &Map<String, Value>) -> Result<Vec<String>, ClientMetadataError> {
    let wrong_type = ClientMetadataError::WrongType {
        field: "redirect_uris",
        expected: "a list of strings",
    };
    let list = match doc.get("redirect_uris") {
        None | Some(Value::Null) => return Err(ClientMetadataError::NoRedirectUris),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(wrong_type),
    };
    if list.is_empty() {
        return Err(ClientMetadataError::NoRedirectUris);
    }
    let mut uris = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let Value::String(uri) = entry else {
            return Err(wrong_type);
        };
        check_redirect_uri(uri).map_err(|reason| ClientMetadataError::BadRedirectUri {
            number: index + 1,
            reason,
        })?;
        uris.push(uri.clone());
    }
    Ok(uris)
}

/// A redirect URI may be https; http only to the machine itself, for native apps (RFC 8252
/// section 7.3); or a private-use scheme such as `com.example.app:/cb` (section 7.1), which
/// must contain a dot, so `javascript:` and `data:` are out. Never with a fragment. Also used
/// for dynamically registered clients; the error says why, in words for a person.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "it is not an absolute URL")?;
    if url.fragment().is_some() {
        return Err("it contains a fragment (#…)");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) => Ok(()),
        "http" => Err("plain http is only allowed for localhost, 127.0.0.1 and [::1]"),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(
            "its scheme must be https, http to a loopback address, or a private-use scheme such as com.example.app",
        ),
    }
}

/// `client_uri` and `logo_uri` are only shown (a link, an image): an unusable one is dropped
/// rather than refusing the client.
fn display_uri(raw: &str) -> Option<String> {
    if raw.len() > MAX_DISPLAY_URI_BYTES {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let usable = url.scheme() == "https" && url.username().is_empty() && url.password().is_none();
    usable.then(|| raw.to_owned())
}

/// An authentication method name as an error message may repeat it.
fn printable_token(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(40)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Caching

/// What the answer's `Cache-Control` allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Freshness {
    store: bool,
    max_age: Option<Duration>,
}

impl Freshness {
    fn of(headers: &HeaderMap) -> Self {
        let mut freshness = Self {
            store: true,
            max_age: None,
        };
        let directives = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for directive in directives {
            let directive = directive.trim().to_ascii_lowercase();
            // no-cache asks to revalidate before each use, which this cache cannot do.
            if directive == "no-store" || directive == "no-cache" {
                freshness.store = false;
            } else if let Some(seconds) = directive.strip_prefix("max-age=") {
                let Ok(seconds) = seconds.trim_matches('"').parse::<u64>() else {
                    freshness.store = false;
                    continue;
                };
                let age = Duration::from_secs(seconds);
                freshness.max_age = Some(freshness.max_age.map_or(age, |m| m.min(age)));
            }
        }
        freshness
    }

    fn ttl(self, policy_ttl: Duration) -> Duration {
        if !self.store {
            return Duration::ZERO;
        }
        self.max_age.map_or(policy_ttl, |age| age.min(policy_ttl))
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Cached>,
    next_seq: u64,
}

struct Cached {
    outcome: Outcome,
    expires: Instant,
    /// Insertion order: the smallest is evicted first.
    seq: u64,
}

impl Cache {
    fn get(&mut self, key: &str, now: Instant) -> Option<Outcome> {
        let cached = self.entries.get(key)?;
        if cached.expires > now {
            return Some(cached.outcome.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: &str, outcome: Outcome, ttl: Duration, now: Instant) {
        self.entries.remove(key);
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.retain(|_, cached| cached.expires > now);
        }
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, cached)| cached.seq)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.next_seq += 1;
        self.entries.insert(
            key.to_owned(),
            Cached {
                outcome,
                expires: now + ttl,
                seq: self.next_seq,
            },
        );
    }
}

#[cfg(test)]
mod tests;
