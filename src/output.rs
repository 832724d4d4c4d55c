//! How commands print data: the `-o table|json|yaml` choice and the JSON/YAML writer. Below the commands, so
//! steps can print their reports without knowing the command line.

use serde::Serialize;
use std::io::Write;

/// Exit codes, as documented in the README and `wkjoin --help`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const VALIDATION_FAILED: i32 = 3;
    pub const NOT_AVAILABLE: i32 = 4;
    pub const INTERRUPTED: i32 = 130;
}

/// Output format for commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Writes `value` as JSON (table and json) or YAML.
pub fn write_data(w: &mut impl Write, format: OutputFormat, value: &impl Serialize) -> std::io::Result<()> {
    match format {
        OutputFormat::Yaml => w.write_all(serde_yaml::to_string(value).expect("serializable").as_bytes()),
        _ => {
            serde_json::to_writer_pretty(&mut *w, value).expect("serializable");
            w.write_all(b"\n")
        }
    }
}
