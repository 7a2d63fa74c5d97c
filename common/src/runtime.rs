//! The HTTP runtime both servers run, each with its own [`server::spec::ServerSpec`], in rooms:
//! - `server`: start-up, the accept loop and its limits, the doors' routers and their edge
//!   (Host/Origin, bearer auth, per-source limits), the shared state, logging;
//! - `oauth`: the connector door's authorization server (RFC 6749/7591/8414/9728 steps);
//! - `browser`: what people see: invite, sign-in and consent pages, approval pages, passkeys;
//! - `admin`: the admin API, by resource, and its client;
//! - `ops`: the subcommands both binaries share (`doctor`, the revocation drill, the CLI).
//!
//! The only part of `common` that knows about axum, hyper and sockets.

pub mod admin;
pub mod browser;
pub mod oauth;
pub mod ops;
pub mod server;
