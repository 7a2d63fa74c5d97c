//! The isolated studio-mcp server: one process per client, the only binary that can publish a
//! site, change DNS or open a billing portal. It runs the runtime in `common` (auth edge, admin
//! API, store) with its own catalog, its own keys and data dir, pinned to one tenant.

pub mod cli;
pub mod tools;
pub mod upstream;
pub mod verify;

use common::runtime::spec::ServerSpec;

pub const ISOLATED: ServerSpec = ServerSpec {
    name: "studio-mcp-isolated",
    title: "Studio MCP: high-risk actions",
    capabilities: &[
        "Prepare publishing {tenant}'s Webflow site or CMS items",
        "Prepare changes to {tenant}'s DNS records",
        "Prepare a link to {tenant}'s billing portal",
        "Each of these acts only after a second, explicit confirmation",
    ],
    instructions: "High-risk actions for one client: publish the Webflow site or CMS items, change \
        DNS records, open the billing portal. Every change is two-step: the first call returns a \
        preview and a confirmation_code; repeat the same call with confirmation_code to act.",
    catalog: tools::isolated_catalog,
    resources: None,
    single_tenant: true,
    verify: verify::verify_isolated,
};
