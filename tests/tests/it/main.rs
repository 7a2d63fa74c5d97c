//! Every end-to-end, property and fuzz test in one binary, a module per area (matklad's
//! "Delete Cargo Integration Tests"): the world links once. nextest still runs each test in a
//! process of its own, so a test's environment, rlimits and globals stay its own; filter an
//! area with `-E 'test(/^oauth::/)'`.

mod approval_elicitation;
mod approval_webhook;
mod approvals;
mod approvals_binary;
mod assets;
mod audit_log;
mod auth;
mod backups;
mod blast_radius;
mod bulk_drafts;
mod catalog;
mod cms_writes;
mod comments;
mod compose;
mod doctor;
mod forms;
mod front;
mod fuzz;
mod hardening;
mod hardening_binary;
mod isolated;
mod isolated_property;
mod isolation_property;
mod locales;
mod metrics;
mod no_secret_leaks;
mod oauth;
mod one_worker_thread;
mod operations;
mod page_settings;
mod protocol_edges;
mod rate_limits;
mod replicas;
mod signin;
mod store_postgres;
mod traces;
mod upstream_cache;
mod webflow_reads;
