//! The shared server's tool catalog: one tool per file, registered here and nowhere else.
//! High-risk tools are deliberately absent: they live only in the isolated server's crate.

mod webflow_get_collection;
mod webflow_get_item;
mod webflow_get_page_content;
mod webflow_get_site;
mod webflow_list_collections;
mod webflow_list_items;
mod webflow_list_pages;
mod webflow_list_sites;
pub mod whoami;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::mcp::{Catalog, ToolEntry, ToolError};

pub fn shared_catalog() -> Catalog {
    Catalog::new(vec![
        ToolEntry::of::<whoami::Whoami>(),
        ToolEntry::of::<webflow_list_sites::ListSites>(),
        ToolEntry::of::<webflow_get_site::GetSite>(),
        ToolEntry::of::<webflow_list_pages::ListPages>(),
        ToolEntry::of::<webflow_get_page_content::GetPageContent>(),
        ToolEntry::of::<webflow_list_collections::ListCollections>(),
        ToolEntry::of::<webflow_get_collection::GetCollection>(),
        ToolEntry::of::<webflow_list_items::ListItems>(),
        ToolEntry::of::<webflow_get_item::GetItem>(),
    ])
}

/// Arguments of a tool that takes none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `offset`/`limit` paging as Webflow spells it (the fields sit in each tool's arguments:
/// `serde(flatten)` would hide which field a type error is about).
#[derive(Debug, Default)]
pub struct Paging {
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

impl Paging {
    pub const MAX_LIMIT: u32 = 100;

    pub fn resolve(&self) -> Result<(u32, u32), ToolError> {
        let limit = self.limit.unwrap_or(Self::MAX_LIMIT);
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(ToolError::InvalidArguments(format!(
                "limit must be between 1 and {}, got {limit}",
                Self::MAX_LIMIT
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > 1_000_000 {
            return Err(ToolError::InvalidArguments(format!(
                "offset {offset} is too large"
            )));
        }
        Ok((offset, limit))
    }
}
