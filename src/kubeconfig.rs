//! `wkjoin config`: the cluster credentials on the node. Plans the install; validation and minting land
//! with the config issue.

use crate::plan::{Action, Contents, Plan, Step};
use crate::settings::Settings;

/// `source`: the kubeconfig given with `--kubeconfig`/`--from`, installed as `<root>/config`.
pub fn plan(s: &Settings, source: Option<&str>) -> Plan {
    let mut plan = Plan::new(Step::Config, "install the node's cluster credentials (owner-only)");
    match source {
        Some(src) => {
            plan.push(Action::WriteFile {
                path: s.layout().kubeconfig(),
                contents: Contents::Credentials { source: src.to_string() },
                private: true,
            });
        }
        None => {
            plan.push(Action::Deferred {
                what: format!("install credentials as {}", s.layout().kubeconfig()),
                needs: "--kubeconfig names the node's kubeconfig".into(),
            });
        }
    }
    plan
}
