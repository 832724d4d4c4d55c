//! `wkjoin routes`: host-gateway routes computed from the Node list (pure), diffed against the host's
//! table, and reconciled — adding, fixing and removing only routes wkjoin owns.

mod desired;
mod diff;
mod nodes;
pub mod reconcile;

pub use desired::{RouteOptions, RoutesError, desired};
pub use diff::{Conflict, RouteDiff, diff};
pub use nodes::{ClusterNode, from_node};

use crate::plan::{Action, NextHop, Plan, Step};
use crate::settings::Settings;

pub use crate::host::iphelper;
pub use crate::host::net::{HostNetwork, Interface, LINUX_ROUTE_PROTOCOL, Route, RouteChange, TableRoute};

/// The service that keeps this node's host-gateway routes in sync with the Node list (`wkjoin routes --watch`).
pub const ROUTES_WATCHER: &str = "wkjoin-routes";

/// Windows route metrics, as the guide's later scripts use: pod vNIC first, then the management NIC.
pub const WINDOWS_POD_NIC_METRIC: u32 = 250;
pub const WINDOWS_MGMT_NIC_METRIC: u32 = 300;

/// The join pipeline's routes step: resolved against the cluster and the host when it runs.
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

/// The concrete plan of `wkjoin routes`: the changes of a diff as actions.
pub fn changes_plan(d: &RouteDiff) -> Plan {
    let mut plan = Plan::new(Step::Routes, "host-gateway routes to every node's pod CIDR");
    for c in &d.changes {
        plan.push(match c {
            RouteChange::Add(r) => Action::AddRoute { route: r.clone() },
            RouteChange::Replace { from, to } => Action::ReplaceRoute { from: from.clone(), to: to.clone() },
            RouteChange::Delete(r) => Action::DeleteRoute { route: r.clone() },
        });
    }
    plan
}
