//! The isolated catalog and the approval by a person every high-risk tool goes through.

mod billing_create_portal_session;
mod billing_list_invoices;
mod cms_removal;
mod dns;
mod dns_create_record;
mod dns_delete_record;
mod dns_list_records;
mod dns_update_record;
mod publish_changes;
mod webflow_delete_items;
mod webflow_publish_items;
mod webflow_publish_site;
mod webflow_set_custom_code;
mod webflow_unpublish_items;

pub(crate) mod approval;

use common::mcp::{Catalog, ToolEntry};
use common::tools::whoami::Whoami;

pub use self::approval::{Approved, Known, Step, with_approval};

pub fn isolated_catalog() -> Catalog {
    Catalog::new(vec![
        ToolEntry::of::<Whoami>(),
        ToolEntry::of::<webflow_publish_site::PublishSite>(),
        ToolEntry::of::<webflow_publish_items::PublishItems>(),
        ToolEntry::of::<webflow_delete_items::DeleteItems>(),
        ToolEntry::of::<webflow_unpublish_items::UnpublishItems>(),
        ToolEntry::of::<webflow_set_custom_code::SetCustomCode>(),
        ToolEntry::of::<dns_list_records::ListRecords>(),
        ToolEntry::of::<dns_create_record::CreateRecord>(),
        ToolEntry::of::<dns_update_record::UpdateRecord>(),
        ToolEntry::of::<dns_delete_record::DeleteRecord>(),
        ToolEntry::of::<billing_list_invoices::ListInvoices>(),
        ToolEntry::of::<billing_create_portal_session::CreatePortalSession>(),
    ])
}
