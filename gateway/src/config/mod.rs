//! Configuration: one TOML file read into [`Config`] (what the operator wrote), then
//! checked once into [`Settings`] (what the gateway runs with).
//!
//! Every secret can be given inline, as a `*_file` path, or through an environment
//! variable named in its documentation; files win over inline values, environment
//! variables over both. Unknown keys are rejected with the path to the key.
//!
//! | file | what |
//! |---|---|
//! | `schema.rs` | the file's shape: [`Config`] and its sections, defaults, doc per key |
//! | `settings.rs` | [`Settings`], [`Location`], [`Policy`]: checked, with secrets resolved |
//! | `units.rs` | human units: sizes (`4M`) and durations (`15m`) |

mod constraints;
mod limits;
mod schema;
mod settings;
pub mod units;

use std::path::PathBuf;

pub use constraints::{Check, Constraints};
pub use limits::LimitsConfig;
pub use schema::*;
pub use settings::*;
pub use units::{HumanDuration, Size};

/// A configuration problem, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the offending key.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

#[cfg(test)]
mod tests;
