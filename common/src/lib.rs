//! Everything both studio-mcp servers are built from: the tenant model, tokens, the store,
//! encrypted secrets, audit, rate limits, metrics, upstream API clients, the MCP plumbing that
//! turns a tool catalog into a server, and the HTTP runtime (`runtime`) both binaries run.
//!
//! Only `runtime` knows about sockets and axum: the rest gets base URLs, credentials and clocks
//! injected. No tool of either catalog lives here but `whoami`, which both have, and no
//! high-risk upstream call (publish, DNS changes, billing) at all.

/// `println!` that never panics: when the reader has gone away (`| head`), output stops
/// quietly instead of aborting the command with a broken-pipe panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod clock;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod mcp;
pub mod metrics;
pub mod ratelimit;
pub mod runtime;
pub mod scope;
pub mod secrets;
pub mod store;
/// The audit log and the approvals are part of the store; kept at these paths too.
pub use store::{approvals, audit};
pub mod tenant;
pub mod tenant_state;
pub mod text;
pub mod token;
pub mod tools;
pub mod trace;
pub mod upstream;
pub mod verify;

/// Seconds since the Unix epoch, by the wall clock ([`clock::Clock`] is what the runtime reads).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
