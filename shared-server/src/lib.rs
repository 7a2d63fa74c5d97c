//! The shared multi-tenant studio-mcp server: its catalog of low-risk tools (`tools/`), its
//! Webflow resources, its own subcommands (`compose`, `onboard`) and the spec it hands to the
//! runtime in `common`. Nothing of the isolated server's (publish, DNS, billing) is here.

pub mod cli;
pub mod compose;
pub mod onboard;
pub mod resources;
pub mod tenant_args;
pub mod tools;

use std::future::Future;
use std::pin::Pin;

use common::mcp::Services;
use common::runtime::server::spec::ServerSpec;
use common::secrets::SecretKind;
use common::tenant::{Tenant, Toolset};
use common::upstream::webflow::scope;
use common::verify::{Need, Warnings};
use secrecy::SecretString;

/// The Webflow scopes `tenant`'s tools need, by the toolsets it has (each operation's
/// `security` in Webflow's spec). Writes count only where the tenant may write.
pub fn webflow_needs(tenant: &Tenant) -> Vec<Need> {
    let need = |scope, by, basic| Need { scope, by, basic };
    let writes = !tenant.read_only;
    let mut needs = Vec::new();
    if tenant.has_toolset(Toolset::Webflow) {
        let by = "the webflow toolset (every site, page and CMS read)";
        needs.extend([
            need(scope::SITES_READ, by, true),
            need(scope::PAGES_READ, by, true),
            need(scope::CMS_READ, by, true),
            need(
                scope::ASSETS_READ,
                "webflow_list_assets (webflow toolset)",
                false,
            ),
            need(
                scope::COMMENTS_READ,
                "webflow_list_comments (webflow toolset)",
                false,
            ),
        ]);
    }
    if writes && tenant.has_toolset(Toolset::CmsWrite) && !tenant.writable_collections.is_empty() {
        needs.push(need(
            scope::CMS_WRITE,
            "the cms-write toolset (drafts)",
            false,
        ));
    }
    if writes && tenant.has_toolset(Toolset::PageWrite) {
        let by = "the page-write toolset (webflow_update_page_settings)";
        needs.push(need(scope::PAGES_WRITE, by, false));
    }
    if writes && tenant.has_toolset(Toolset::AssetWrite) {
        let by = "the asset-write toolset (webflow_update_asset)";
        needs.extend([
            need(scope::ASSETS_READ, by, false),
            need(scope::ASSETS_WRITE, by, false),
        ]);
    }
    if tenant.has_toolset(Toolset::Forms) {
        let by = "the forms toolset (webflow_list_forms, webflow_list_form_submissions)";
        needs.push(need(scope::FORMS_READ, by, false));
    }
    needs
}

/// The shared server uses Webflow, Plausible and GitHub credentials.
pub fn verify_shared<'a>(
    services: &'a Services,
    tenant: &'a Tenant,
    kind: SecretKind,
    secret: &'a SecretString,
) -> Pin<Box<dyn Future<Output = Result<Warnings, String>> + Send + 'a>> {
    Box::pin(async move {
        match kind {
            SecretKind::Webflow => {
                let needs = webflow_needs(tenant);
                common::verify::webflow(&services.webflow, secret, tenant, &needs).await
            }
            SecretKind::Plausible => common::verify::plausible(&services.plausible, secret, tenant)
                .await
                .map(|()| Warnings::new()),
            SecretKind::Github => common::verify::github(&services.github, secret, tenant)
                .await
                .map(|()| Warnings::new()),
            other => Err(format!(
                "the shared server does not use {other} credentials"
            )),
        }
    })
}

pub const SHARED: ServerSpec = ServerSpec {
    name: "studio-mcp-shared",
    title: "Studio MCP",
    capabilities: &[
        "Read {tenant}'s Webflow sites, pages and CMS collections",
        "Draft and edit CMS items in the collections your studio opened for writing (never publish)",
        "Read {tenant}'s website analytics (Plausible)",
        "Look up {tenant}'s code repositories and deploy status (GitHub)",
        "Check {tenant}'s content for problems such as missing alt text or broken links",
    ],
    instructions: "Tools for this client's Webflow sites, analytics and repositories. Every call \
        acts for the tenant that owns the bearer token; `whoami` shows which tenant and what it is \
        bound to. A result carrying `cached_for_secs` was built from upstream answers kept that \
        many seconds (10 s at most for anything showing publish or edit state, 5 minutes for \
        collection schemas); drafts written here are read back fresh at once.",
    catalog: tools::shared_catalog,
    resources: Some(&resources::WEBFLOW_RESOURCES),
    single_tenant: false,
    approvals: false,
    verify: verify_shared,
};
