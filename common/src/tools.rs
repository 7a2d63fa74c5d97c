//! The one tool both catalogs have, `whoami`, and what every tool file may use. Every other
//! tool lives in its server's crate.

pub mod whoami;

use schemars::JsonSchema;
use serde::Deserialize;

/// Arguments of a tool that takes none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}
