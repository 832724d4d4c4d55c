//! `wkjoin routes`: host-gateway routes computed from the Node list (pure), diffed against the host's
//! table, and reconciled — adding, fixing and removing only routes wkjoin owns.

mod desired;
mod diff;
pub mod iphelper;
mod nodes;

pub use desired::{RouteOptions, RoutesError, desired};
pub use diff::{Conflict, RouteChange, RouteDiff, diff};
pub use nodes::{ClusterNode, from_node};

use crate::plan::{Action, NextHop, Plan, Step};
use crate::settings::Settings;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The Linux route protocol number that marks a route as wkjoin's (`ip route show proto 147`).
pub const LINUX_ROUTE_PROTOCOL: u8 = 147;
/// Windows route metrics, as the guide's later scripts use: pod vNIC first, then the management NIC.
pub const WINDOWS_POD_NIC_METRIC: u32 = 250;
pub const WINDOWS_MGMT_NIC_METRIC: u32 = 300;

/// One route: destination, next hop (none = on-link), interface, metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    pub destination: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

impl Route {
    pub fn via(destination: IpNet, gateway: IpAddr, interface: &str) -> Self {
        Route { destination, gateway: Some(gateway), interface: Some(interface.to_string()), metric: None }
    }

    pub fn on_link(destination: IpNet, interface: &str) -> Self {
        Route { destination, gateway: None, interface: Some(interface.to_string()), metric: None }
    }

    pub fn with_metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        match self.gateway {
            Some(gw) => write!(f, " via {gw}")?,
            None => f.write_str(" on-link")?,
        }
        if let Some(i) = &self.interface {
            write!(f, " dev {i}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

/// A route found in the host's table, and whether wkjoin owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRoute {
    pub route: Route,
    pub owned: bool,
    /// Who installed it, as the host reports it (Linux: `kernel`, `static`, `proto 147`, ...).
    pub origin: String,
}

/// A network interface and the networks of its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub networks: Vec<IpNet>,
}

/// What the host's routing looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostNetwork {
    pub interfaces: Vec<Interface>,
    pub routes: Vec<TableRoute>,
}

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
