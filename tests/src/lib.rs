//! The test harness: sandbox upstreams, a real shared server on `127.0.0.1:0` with a temp data
//! dir, and typed helpers that talk to it through a real MCP client and the admin API.

// A harness that cannot set itself up should fail the test loudly at the faulty line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod connector;
pub mod harness;
pub mod otlp;
pub mod passkey;
pub mod postgres;
pub mod sandbox;
