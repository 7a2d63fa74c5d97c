//! The shared multi-tenant studio-mcp server: MCP over Streamable HTTP at `/mcp` for every
//! client's token, the admin API on its own listener, and the admin CLI that talks to it.

pub mod admin;
pub mod cli;
pub mod compose;
pub mod drill;
pub mod onboard;
pub mod routes;
pub mod startup;
pub mod telemetry;
