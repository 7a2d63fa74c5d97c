//! Structure-aware fuzzing of the request path on the stable toolchain: proptest strategies
//! that mutate real requests (`mutate`), driven for a time budget per target with panics,
//! hangs and runaway allocations caught (`driver`), against the real parsing code. One test per
//! target; `STUDIO_MCP_FUZZ_SECS` sets the budget (CI's fuzzing stage gives each 20 s), and each
//! prints "fuzz <target>: N executions in S s".

// A harness that cannot set itself up should fail loudly at the faulty line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod domain;
mod driver;
mod edge;
pub(crate) mod mcp;
mod mutate;
mod oauth;
mod store;
mod webauthn;
pub(crate) mod world;

/// The address-space cap is in force in a fuzz process: an allocation no request could need
/// fails (where it would otherwise succeed lazily and take the machine's memory page by page).
#[test]
fn a_runaway_allocation_fails_under_the_cap() {
    driver::guard();
    let mut runaway: Vec<u8> = Vec::new();
    assert!(runaway.try_reserve_exact(16 << 30).is_err());
}
