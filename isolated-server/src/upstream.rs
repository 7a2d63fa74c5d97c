//! The high-risk upstream calls: Webflow publishing, item removal and custom code, Cloudflare DNS
//! changes, Stripe billing.
//! They exist in this crate only, so the shared server's binary cannot contain them.

pub mod cloudflare;
pub mod stripe;
pub mod webflow_custom_code;
pub mod webflow_items;
pub mod webflow_publish;
