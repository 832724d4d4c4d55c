//! The state file under the root dir: which steps completed, with a digest of their plan, so a re-run can
//! skip what is done and still correct, and `wkjoin status` can report it.

use crate::host::{Host, HostError};
use crate::plan::{Plan, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StepRecord {
    /// RFC 3339, UTC.
    pub completed_at: String,
    /// Digest of the step's plan: it changes whenever any input of the step changes.
    pub digest: String,
    pub summary: String,
}

/// One binary installed by `wkjoin fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstalledFile {
    pub name: String,
    pub path: String,
    pub size: u64,
    /// SHA-256 of the file as installed: what a re-run checks to know the binary is still intact.
    pub sha256: String,
    /// What the binary's own version command reported, when it could run on this host.
    #[serde(default)]
    pub version: Option<String>,
}

/// A node archive's binaries as installed (or kept for `--rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstalledRelease {
    /// The version asked for (`v1.20.2`), or the archive's own when installed from `--archive`.
    pub version: Option<String>,
    pub os: String,
    pub arch: String,
    /// Where the archive came from: a URL or a local path.
    pub source: String,
    /// SHA-512 of the whole archive.
    pub archive_sha512: String,
    /// The published (or given) checksum it was verified against before anything was installed,
    /// `sha512:<hex>` or `sha256:<hex>`.
    pub checksum: String,
    pub installed_at: String,
    pub bin_dir: String,
    pub files: Vec<InstalledFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    pub format: u32,
    pub wkjoin_version: String,
    pub node_name: Option<String>,
    pub steps: BTreeMap<Step, StepRecord>,
    /// The node binaries in place (absent in files written before `wkjoin fetch` existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binaries: Option<InstalledRelease>,
    /// The binaries they replaced, kept for `wkjoin fetch --rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_binaries: Option<InstalledRelease>,
    /// Windows: the HNS network wkjoin created (an existing one it found is not wkjoin's to remove or recreate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hns_network: Option<HnsNetworkRecord>,
    /// Windows: the CNI plugins wkjoin installed into the runtime's CNI bin dir (only those: `reset` removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_plugins: Option<InstalledRelease>,
    /// Routes wkjoin created (Windows has no owner tag on routes; Linux also keeps them for `reset`).
    #[serde(default)]
    pub routes: Vec<crate::host::net::Route>,
    /// The container runtime's config file as wkjoin changed it, so `reset` can restore exactly that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfigChange>,
}

/// An HNS network wkjoin created, with the pod CIDR it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HnsNetworkRecord {
    pub name: String,
    pub subnet: ipnet::IpNet,
}

/// One change wkjoin made to the container runtime's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuntimeConfigChange {
    pub file: String,
    /// The original file's copy; absent when there was no file (reset then removes the one wkjoin wrote).
    pub backup: Option<String>,
    /// SHA-256 of the original (what reset must get back), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_sha256: Option<String>,
    /// SHA-256 of the file wkjoin wrote: reset restores only while the file is still exactly that.
    pub written_sha256: String,
    /// The runtime's service, restarted after the file changes.
    pub service: String,
    pub restart: Vec<String>,
    pub endpoint: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: FORMAT,
            wkjoin_version: env!("CARGO_PKG_VERSION").to_string(),
            node_name: None,
            steps: BTreeMap::new(),
            binaries: None,
            previous_binaries: None,
            cni_plugins: None,
            hns_network: None,
            routes: Vec::new(),
            runtime_config: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the state file {} is damaged ({message}); move it away and re-run `wkjoin join`, which redoes every step", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("the state file {} was written by a newer wkjoin (format {found}, this one reads {FORMAT}); upgrade wkjoin", path.display())]
    TooNew { path: PathBuf, found: u32 },
    #[error(transparent)]
    Write(#[from] HostError),
}

impl State {
    /// `None` when the host has no state file (never joined, or reset).
    pub fn load(path: &Path) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: path.to_path_buf(), source }),
        };
        let state: State = serde_json::from_str(&text)
            .map_err(|e| StateError::Corrupt { path: path.to_path_buf(), message: e.to_string() })?;
        if state.format > FORMAT {
            return Err(StateError::TooNew { path: path.to_path_buf(), found: state.format });
        }
        Ok(Some(state))
    }

    pub fn save(&self, path: &Path, host: &mut impl Host) -> Result<(), StateError> {
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        host.write_file(path, &json, false)?;
        Ok(())
    }

    pub fn record(&mut self, plan: &Plan, now: SystemTime) {
        self.steps.insert(
            plan.step,
            StepRecord {
                completed_at: humantime::format_rfc3339_seconds(now).to_string(),
                digest: plan.digest(),
                summary: plan.summary.clone(),
            },
        );
    }

    /// True when `plan` was completed before with exactly the same inputs.
    pub fn is_done(&self, plan: &Plan) -> bool {
        self.steps.get(&plan.step).is_some_and(|r| r.digest == plan.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Plan};

    #[test]
    fn a_changed_plan_is_not_done() {
        let mut p = Plan::new(Step::Routes, "r");
        let mut s = State::default();
        s.record(&p, SystemTime::UNIX_EPOCH);
        assert!(s.is_done(&p));
        assert_eq!(s.steps[&Step::Routes].completed_at, "1970-01-01T00:00:00Z");
        p.push(Action::Validate { node: "n".into() });
        assert!(!s.is_done(&p));
    }

    #[test]
    fn files_written_before_fetch_existed_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"format":1,"wkjoin-version":"0.1.0","node-name":"n","steps":{}}"#).unwrap();
        let s = State::load(&path).unwrap().unwrap();
        assert_eq!((s.binaries, s.previous_binaries), (None, None));
        let json = serde_json::to_string(&State::default()).unwrap();
        assert!(!json.contains("binaries"), "absent records are not written: {json}");
    }
}
