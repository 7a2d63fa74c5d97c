//! The shared server's tool catalog: one tool per file, registered here and nowhere else.
//! High-risk tools are deliberately absent: they live only in the isolated server's crate.

mod analytics_query;
mod cms_fields;
mod content_audit;
mod github_get_repo;
mod github_list_commits;
mod github_list_deployments;
mod github_list_workflow_runs;
mod site_status;
mod webflow_create_item;
mod webflow_create_items;
mod webflow_get_collection;
mod webflow_get_item;
mod webflow_get_page_content;
mod webflow_get_site;
mod webflow_list_assets;
mod webflow_list_collections;
mod webflow_list_comments;
mod webflow_list_form_submissions;
mod webflow_list_forms;
mod webflow_list_items;
mod webflow_list_pages;
mod webflow_list_sites;
mod webflow_update_asset;
mod webflow_update_item;
mod webflow_update_page_settings;

use common::mcp::{Catalog, ToolEntry, ToolError};
pub use common::tools::NoArgs;
use common::tools::whoami;

pub fn shared_catalog() -> Catalog {
    Catalog::new(vec![
        ToolEntry::of::<whoami::Whoami>(),
        ToolEntry::of::<webflow_list_sites::ListSites>(),
        ToolEntry::of::<webflow_get_site::GetSite>(),
        ToolEntry::of::<webflow_list_pages::ListPages>(),
        ToolEntry::of::<webflow_get_page_content::GetPageContent>(),
        ToolEntry::of::<webflow_update_page_settings::UpdatePageSettings>(),
        ToolEntry::of::<webflow_list_assets::ListAssets>(),
        ToolEntry::of::<webflow_update_asset::UpdateAsset>(),
        ToolEntry::of::<webflow_list_forms::ListForms>(),
        ToolEntry::of::<webflow_list_form_submissions::ListFormSubmissions>(),
        ToolEntry::of::<webflow_list_comments::ListComments>(),
        ToolEntry::of::<webflow_list_collections::ListCollections>(),
        ToolEntry::of::<webflow_get_collection::GetCollection>(),
        ToolEntry::of::<webflow_list_items::ListItems>(),
        ToolEntry::of::<webflow_get_item::GetItem>(),
        ToolEntry::of::<webflow_create_item::CreateItem>(),
        ToolEntry::of::<webflow_create_items::CreateItems>(),
        ToolEntry::of::<webflow_update_item::UpdateItem>(),
        ToolEntry::of::<analytics_query::AnalyticsQuery>(),
        ToolEntry::of::<github_get_repo::GetRepo>(),
        ToolEntry::of::<github_list_commits::ListCommits>(),
        ToolEntry::of::<github_list_workflow_runs::ListWorkflowRuns>(),
        ToolEntry::of::<github_list_deployments::ListDeployments>(),
        ToolEntry::of::<site_status::SiteStatus>(),
        ToolEntry::of::<content_audit::ContentAudit>(),
    ])
}

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

/// `per_page`/`page` paging as GitHub spells it.
pub struct GithubPaging {
    pub per_page: Option<u32>,
    pub page: Option<u32>,
}

impl GithubPaging {
    pub fn resolve(&self) -> Result<(u32, u32), ToolError> {
        let per_page = self.per_page.unwrap_or(30);
        if !(1..=100).contains(&per_page) {
            return Err(ToolError::InvalidArguments(format!(
                "per_page must be between 1 and 100, got {per_page}"
            )));
        }
        let page = self.page.unwrap_or(1);
        if !(1..=10_000).contains(&page) {
            return Err(ToolError::InvalidArguments(format!(
                "page must be 1 or more, got {page}"
            )));
        }
        Ok((per_page, page))
    }
}

/// A branch or environment name as a query value: no control characters, sane length.
pub fn branch_name(name: &str) -> Result<&str, ToolError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ToolError::InvalidArguments(format!(
            "`{}` is not a valid branch or environment name",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(name)
}
