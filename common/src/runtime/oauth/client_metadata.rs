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
mod tests {
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
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
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
                    let (acceptor, handler, reqs) =
                        (acceptor.clone(), handler.clone(), reqs.clone());
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
}
