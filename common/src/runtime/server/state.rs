//! The state both listeners' routers share: the server's spec, services, catalog, keys and
//! settings. Its own module so the admin API, the MCP routes and start-up each depend on it, not
//! on one another.

use std::sync::Arc;

use secrecy::SecretString;

use crate::domain::TenantId;
use crate::mcp::{Catalog, Services};
use crate::runtime::server::spec::ServerSpec;
use crate::token::TokenAuthority;

/// What both routers share.
pub struct AppState {
    pub spec: &'static ServerSpec,
    /// The one tenant of a single-tenant (isolated) instance.
    pub pinned: Option<TenantId>,
    pub services: Arc<Services>,
    pub catalog: Arc<Catalog>,
    pub authority: TokenAuthority,
    pub admin_token: SecretString,
    /// Opens `GET /metrics` only (besides the admin token): what Prometheus is given.
    pub metrics_token: SecretString,
    /// The static door's origin: static tokens' audience, and the only `Host` `/mcp` answers.
    pub public_url: String,
    /// Whether `/mcp` takes stateless JSON requests on the fast path (`STUDIO_MCP_FAST_PATH`).
    pub fast_path: bool,
    /// The fingerprints of the key files the store's records need (`signing.key`,
    /// `master.key`), as a backup records them.
    pub key_fingerprints: Vec<(&'static str, String)>,
    /// The OAuth door, if configured: everything people and connectors use lives there.
    pub connector: Option<ConnectorDoor>,
    pub token_ttl_secs: u64,
    pub audit_retention_ms: u64,
    /// Samples the log line for unauthenticated refusals.
    pub refusals: crate::runtime::server::telemetry::Sampled,
    /// The WebAuthn relying party; `None` without a connector door, or when its URL has no
    /// domain name.
    pub passkeys: Option<webauthn_rs::Webauthn>,
    /// Lifetimes and limits of sign-in and OAuth.
    pub oauth: crate::config::OAuthConfig,
    /// Fetches and caches Client ID Metadata Documents.
    pub client_metadata: crate::runtime::oauth::client_metadata::ClientMetadataFetcher,
    /// Dynamic client registrations per source, and all of them together.
    pub registrations: crate::ratelimit::Buckets<crate::runtime::server::source::Source>,
    pub registrations_per_min: u32,
    pub registrations_global: crate::ratelimit::Buckets<()>,
    pub registrations_global_per_min: u32,
    /// Requests to the anonymous endpoints (OAuth, sign-in), per source.
    pub sources: crate::ratelimit::Buckets<crate::runtime::server::source::Source>,
    pub oauth_requests_per_min: u32,
    /// Proxies whose `X-Forwarded-For` names the source.
    pub trusted_proxies: crate::runtime::server::source::TrustedProxies,
}

/// The connector (OAuth) door: its own listener and origin, MCP at exactly `/mcp` (claude.ai
/// calls no other path), the authorization server and people's pages at the origin's root.
#[derive(Clone, Debug)]
pub struct ConnectorDoor {
    /// `scheme://host[:port]/mcp`: the protected resource, and every access token's audience.
    pub url: String,
    /// `scheme://host[:port]`: the issuer, and where invite, sign-in and approval pages live.
    pub origin: String,
}

impl ConnectorDoor {
    pub fn new(url: String) -> Self {
        let origin = crate::config::connector_origin(&url).to_owned();
        Self { url, origin }
    }

    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }
}

/// Something a person, a client or the operator did, for the audit log.
pub struct Event<'a> {
    /// The tenant acted for, or `admin`.
    pub tenant: &'a str,
    /// `admin:<action>`, `oauth:<step>`, `signin:<step>`.
    pub action: &'a str,
    /// `ok`, or the kind of refusal.
    pub outcome: &'a str,
    pub person: Option<&'a str>,
    pub client: Option<&'a str>,
    /// What was acted on; only its digest is kept (never a value).
    pub subject: &'a serde_json::Value,
}

impl AppState {
    /// Appends an event to the audit log; a failure is logged, never shown to the caller.
    pub fn record(&self, event: &Event<'_>) {
        let record = crate::audit::AuditRecord {
            at_ms: crate::audit::now_ms(),
            tenant: event.tenant.to_owned(),
            action: event.action.chars().take(64).collect(),
            args_digest: crate::audit::digest(event.subject),
            outcome: event.outcome.to_owned(),
            duration_us: 0,
            request_id: crate::mcp::request_id().to_string(),
            person: event.person.map(str::to_owned),
            client: event.client.map(|c| c.chars().take(200).collect()),
        };
        if let Err(e) = self.services.store.audit().append(record) {
            tracing::error!(error = %e, "audit record not written");
        }
    }
}
