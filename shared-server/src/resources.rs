//! The tenant's Webflow sites and collection schemas as MCP resources, scoped exactly like the
//! tools: `webflow://sites/{site_id}` and `webflow://collections/{collection_id}`.

use rmcp::model::{Resource, ResourceContents, ResourceTemplate};

use common::mcp::{ResourceCatalog, ToolContext, ToolError};
use common::tenant::Toolset;

const SITE: &str = "webflow://sites/";
const COLLECTION: &str = "webflow://collections/";
const JSON: &str = "application/json";

/// What the shared server's spec hands to the runtime.
pub static WEBFLOW_RESOURCES: ResourceCatalog = ResourceCatalog {
    visible,
    templates,
    list: |ctx| Box::pin(list(ctx)),
    read: |ctx, uri| Box::pin(read(ctx, uri)),
};

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{SITE}{{site_id}}"), "webflow-site")
            .with_title("Webflow site")
            .with_description(
                "One of this tenant's Webflow sites (settings, domains, publish times)",
            )
            .with_mime_type(JSON),
        ResourceTemplate::new(
            format!("{COLLECTION}{{collection_id}}"),
            "webflow-collection",
        )
        .with_title("CMS collection schema")
        .with_description("A CMS collection of this tenant's with its field schema")
        .with_mime_type(JSON),
    ]
}

/// Whether the tenant sees Webflow resources at all.
pub fn visible(ctx: &ToolContext<'_>) -> bool {
    ctx.tenant.has_toolset(Toolset::Webflow)
}

/// The tenant's sites (from its binding) and their collections (read with its own token).
pub async fn list(ctx: &ToolContext<'_>) -> Result<Vec<Resource>, ToolError> {
    let mut out = Vec::new();
    for site in &ctx.tenant.webflow_sites {
        out.push(
            Resource::new(format!("{SITE}{site}"), format!("site {site}"))
                .with_description("Webflow site settings, custom domains and publish times")
                .with_mime_type(JSON),
        );
    }
    let webflow = ctx.webflow()?;
    for site in &ctx.tenant.webflow_sites {
        for c in webflow.list_collections(site).await?.collections {
            let name = c.display_name.clone().unwrap_or_else(|| c.id.clone());
            out.push(
                Resource::new(
                    format!("{COLLECTION}{}", c.id),
                    format!("collection {name}"),
                )
                .with_description("CMS collection field schema")
                .with_mime_type(JSON),
            );
        }
    }
    Ok(out)
}

pub async fn read(ctx: &ToolContext<'_>, uri: &str) -> Result<ResourceContents, ToolError> {
    let value = if let Some(id) = uri.strip_prefix(SITE) {
        let site = ctx.site(Some(id))?;
        serde_json::to_string_pretty(&ctx.webflow()?.get_site(&site).await?)
    } else if let Some(id) = uri.strip_prefix(COLLECTION) {
        let collection = ctx.collection(id).await?;
        serde_json::to_string_pretty(&ctx.webflow()?.get_collection(&collection).await?)
    } else {
        return Err(ToolError::InvalidArguments(format!(
            "unknown resource `{}` (use {SITE}{{site_id}} or {COLLECTION}{{collection_id}})",
            uri.chars().take(100).collect::<String>()
        )));
    };
    let text = value.map_err(|e| ctx.internal("resource encoding", &e))?;
    Ok(ResourceContents::text(text, uri).with_mime_type(JSON))
}
