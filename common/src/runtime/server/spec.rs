//! What makes one kind of studio-mcp server differ from another: its spec, which each binary's
//! crate defines and the runtime runs.

use std::future::Future;
use std::pin::Pin;

use secrecy::SecretString;

use crate::mcp::{Catalog, ResourceCatalog, Services};
use crate::secrets::SecretKind;
use crate::tenant::Tenant;

/// What makes one kind of studio-mcp server differ from another. The shared server and each
/// isolated instance run this same runtime with a different spec; the isolated server's tools
/// exist only in its own crate, so they cannot end up in the shared binary.
pub struct ServerSpec {
    /// Reported to clients as the server's name.
    pub name: &'static str,
    /// What people see on sign-in and consent pages.
    pub title: &'static str,
    /// What a connection will be able to do, in plain words, for the consent page; `{tenant}`
    /// is replaced by the tenant's name.
    pub capabilities: &'static [&'static str],
    pub instructions: &'static str,
    pub catalog: fn() -> Catalog,
    /// The server's MCP resources (the shared server's Webflow sites and collections).
    pub resources: Option<&'static ResourceCatalog>,
    /// Serve exactly one tenant, named by `STUDIO_MCP_TENANT`.
    pub single_tenant: bool,
    /// Has high-risk tools that wait for a person's approval: serve `/approve/{id}` and the
    /// admin API's approvals.
    pub approvals: bool,
    /// Proves an upstream credential works for a tenant before onboarding stores it.
    pub verify: VerifyFn,
}

/// `verify(services, tenant, kind, secret)`: `Err` says what is wrong with the credential; `Ok`
/// carries warnings for the operator (a Webflow scope some of the tenant's tools need).
pub type VerifyFn = for<'a> fn(
    &'a Services,
    &'a Tenant,
    SecretKind,
    &'a SecretString,
) -> Pin<
    Box<dyn Future<Output = Result<crate::verify::Warnings, String>> + Send + 'a>,
>;
