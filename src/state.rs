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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    pub format: u32,
    pub wkjoin_version: String,
    pub node_name: Option<String>,
    pub steps: BTreeMap<Step, StepRecord>,
    /// Routes wkjoin created (Windows has no owner tag on routes; Linux also keeps them for `reset`).
    #[serde(default)]
    pub routes: Vec<crate::routes::Route>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: FORMAT,
            wkjoin_version: env!("CARGO_PKG_VERSION").to_string(),
            node_name: None,
            steps: BTreeMap::new(),
            routes: Vec::new(),
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
}
