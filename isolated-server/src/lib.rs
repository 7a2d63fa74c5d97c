//! The isolated studio-mcp server: one process per client, the only binary that can publish a
//! site, change DNS or open a billing portal. It runs the runtime in `common` (auth edge, admin
//! API, store) with its own catalog, its own keys and data dir, pinned to one tenant.

pub mod cli;
pub mod tools;
pub mod upstream;
pub mod verify;

use common::runtime::server::spec::ServerSpec;

pub const ISOLATED: ServerSpec = ServerSpec {
    name: "studio-mcp-isolated",
    title: "Studio MCP: high-risk actions",
    capabilities: &[
        "Prepare publishing {tenant}'s Webflow site or CMS items",
        "Prepare changes to {tenant}'s DNS records",
        "Prepare a link to {tenant}'s billing portal",
        "Each of these acts only after an approver of {tenant} approves it on this server's own page",
    ],
    instructions: "High-risk actions for one client: publish the Webflow site or CMS items, change \
        DNS records, open the billing portal. Nothing acts on your word: each call returns a preview \
        and an approval link; show the link to the person. An approver of this client approves or \
        denies it on this server's page, and on approval the action runs at once, exactly once. \
        Call again with the same arguments to learn the outcome.",
    catalog: tools::isolated_catalog,
    resources: None,
    single_tenant: true,
    approvals: true,
    verify: verify::verify_isolated,
};
