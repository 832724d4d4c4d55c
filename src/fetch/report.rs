//! What a fetch did, as `wkjoin fetch` prints it (a table, or `-o json`) and `wkjoin join` reads it.

use crate::state::InstalledRelease;
use serde::Serialize;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Installed,
    AlreadyInstalled,
    RolledBack,
}

/// The result of `wkjoin fetch`, printed as a table or `-o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub outcome: Outcome,
    /// Bytes read from the network (0 when the cache or installed binaries served).
    pub downloaded_bytes: u64,
    pub from_cache: bool,
    /// `sha512` or `sha256`, and where the expected value came from.
    pub verified_with: Option<String>,
    pub installed: InstalledRelease,
    /// What `--rollback` would restore.
    pub previous: Option<InstalledRelease>,
    pub warnings: Vec<String>,
    /// Files already in place that wkjoin did not install, so did not touch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_alone: Vec<String>,
    /// Windows: the CNI plugins, installed after the node binaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_plugins: Option<Box<Report>>,
}
