//! `wkjoin validate`: the guide's connectivity matrix. Plans the run; the checks land with the validate issue.

use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;

pub fn plan(s: &Settings) -> Plan {
    let mut plan = Plan::new(Step::Validate, "prove node, pod and service networking");
    plan.push(Action::Validate { node: s.node_name.clone() });
    plan
}
