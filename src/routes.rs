//! `wkjoin routes`: host-gateway routes for the pod and service ranges. Plans the reconcile; the
//! reconciler lands with the routes issue.

use crate::plan::{Action, NextHop, Plan, Step};
use crate::settings::Settings;

pub fn plan(s: &Settings, next_hop: NextHop) -> Plan {
    let mut plan = Plan::new(Step::Routes, "host-gateway routes to every node's pod CIDR");
    plan.push(Action::ReconcileRoutes {
        node: s.node_name.clone(),
        cluster_cidr: s.cluster_cidr,
        service_cidr: s.service_cidr,
        next_hop,
    });
    plan
}
