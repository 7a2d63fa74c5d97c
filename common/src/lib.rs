//! Everything both studio-mcp servers share: the tenant model, tokens, the sled store, encrypted
//! secrets, upstream API clients and the MCP plumbing that turns a tool catalog into a server.
//!
//! Nothing here knows about sockets or axum: callers inject base URLs, credentials and clocks.

pub mod audit;
pub mod config;
pub mod confirm;
pub mod domain;
pub mod hashing;
pub mod mcp;
pub mod metrics;
pub mod ratelimit;
pub mod resources;
pub mod scope;
pub mod secrets;
pub mod store;
pub mod tenant;
pub mod tenant_state;
pub mod token;
pub mod tools;
pub mod upstream;
pub mod verify;

/// Seconds since the Unix epoch; the one clock the store and tokens agree on.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
