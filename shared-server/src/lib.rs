//! The shared multi-tenant studio-mcp server: MCP over Streamable HTTP at `/mcp` for every
//! client's token, the admin API on its own listener, and the admin CLI that talks to it.

/// `println!` that never panics: when the reader has gone away (`| head`), output stops
/// quietly instead of aborting the command with a broken-pipe panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod admin;
pub mod cli;
pub mod compose;
pub mod drill;
pub mod listener;
pub mod onboard;
pub mod routes;
pub mod startup;
pub mod telemetry;
