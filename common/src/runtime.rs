//! The HTTP runtime both servers run, each with its own [`spec::ServerSpec`]: start-up, the
//! accept loop and its limits, the MCP listener's edge (Host/Origin, bearer auth, rate limit),
//! the admin API and its client, the subcommands both binaries share, and logging. The only
//! part of `common` that knows about axum, hyper and sockets.

pub mod admin;
pub mod admin_client;
pub mod approve;
pub mod cli;
pub mod doctor;
pub mod drill;
pub mod listener;
pub mod oauth;
pub mod pages;
pub mod routes;
pub mod signin;
pub mod source;
pub mod spec;
pub mod startup;
pub mod state;
pub mod telemetry;
