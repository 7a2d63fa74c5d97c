//! The operator's subcommands both binaries share: the command line over the admin API
//! (`cli`), `doctor` (why a connector fails, checked from outside), and the revocation drill.

pub mod cli;
pub mod doctor;
pub mod drill;
