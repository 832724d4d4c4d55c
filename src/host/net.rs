//! Routes and interfaces as the host's routing table knows them: the vocabulary the route backends (rtnetlink,
//! IP Helper) speak, with no notion of nodes or pod CIDRs.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The Linux route protocol number that marks a route as wkjoin's (`ip route show proto 147`).
pub const LINUX_ROUTE_PROTOCOL: u8 = 147;

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

/// One change to the routing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum RouteChange {
    Add(Route),
    Replace { from: Route, to: Route },
    Delete(Route),
}
