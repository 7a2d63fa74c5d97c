//! The state both listeners' routers share: the server's spec, services, catalog, keys and
//! settings. Its own module so the admin API, the MCP routes and start-up each depend on it, not
//! on one another.

use std::sync::Arc;

use secrecy::SecretString;

use crate::domain::TenantId;
use crate::mcp::{Catalog, Services};
use crate::runtime::spec::ServerSpec;
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
    pub public_url: String,
    pub token_ttl_secs: u64,
    pub audit_retention_ms: u64,
    /// Samples the log line for unauthenticated refusals.
    pub refusals: crate::runtime::telemetry::Sampled,
}
