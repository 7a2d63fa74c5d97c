//! A server process: start-up, the accept loop and its limits, the two doors' routers and their
//! edge checks, the state every handler shares, per-source limits and logging.

pub mod front;
pub mod listener;
pub mod routes;
pub mod source;
pub mod spec;
pub mod startup;
pub mod state;
pub mod telemetry;
