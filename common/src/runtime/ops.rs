//! The operator's subcommands both binaries share: the command line over the admin API
//! (`cli`), `doctor` (why a connector fails, checked from outside), the revocation and
//! restore drills, and store backups and their restore (`store`).

pub mod cli;
pub mod doctor;
pub mod drill;
pub mod restore_drill;
pub mod store;
