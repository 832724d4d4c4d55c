//! The kernel routing table through rtnetlink. wkjoin's routes carry their own protocol number, so
//! ownership survives restarts and is visible with `ip route show proto 147`.

use crate::host::HostError;
use crate::routes::{HostNetwork, Interface, LINUX_ROUTE_PROTOCOL, Route, RouteChange, TableRoute};
use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};
use std::collections::HashMap;
use std::net::IpAddr;

const MAIN_TABLE: u8 = 254;
/// Requests in flight at once: enough to hide the round trip, bounded so the socket buffer never overflows.
const IN_FLIGHT: usize = 64;

fn netlink(op: &'static str, route: Option<&Route>, e: impl std::fmt::Display) -> HostError {
    HostError::Routing { op, route: route.map(Route::to_string), message: e.to_string() }
}

/// A connection to the kernel's routing table in the calling thread's network namespace.
pub struct RouteTable {
    handle: Handle,
}

impl RouteTable {
    /// Must be called inside a tokio runtime; the connection task lives as long as the runtime.
    pub fn connect() -> Result<Self, HostError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| netlink("open a netlink socket", None, e))?;
        tokio::spawn(conn);
        Ok(RouteTable { handle })
    }

    /// Interfaces with their networks and every unicast route of the main table, IPv4 and IPv6.
    /// `_recorded` is the Windows backend's ownership list; Linux knows ownership from the protocol.
    pub async fn snapshot(&self, _recorded: &[Route]) -> Result<HostNetwork, HostError> {
        let mut names = HashMap::new();
        let mut links = self.handle.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(|e| netlink("list interfaces", None, e))? {
            let name = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            names.insert(msg.header.index, name.unwrap_or_else(|| format!("if{}", msg.header.index)));
        }
        let mut networks: HashMap<u32, Vec<IpNet>> = HashMap::new();
        let mut addrs = self.handle.address().get().execute();
        while let Some(msg) = addrs.try_next().await.map_err(|e| netlink("list addresses", None, e))? {
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(net) = addr.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok()) {
                networks.entry(msg.header.index).or_default().push(net);
            }
        }
        let mut interfaces: Vec<Interface> = names
            .iter()
            .map(|(index, name)| Interface {
                name: name.clone(),
                index: *index,
                networks: networks.remove(index).unwrap_or_default(),
            })
            .collect();
        interfaces.sort_by_key(|i| i.index);

        let mut routes = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let filter = match version {
                IpVersion::V4 => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
                IpVersion::V6 => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
            };
            let mut stream = self.handle.route().get(filter).execute();
            while let Some(msg) = stream.try_next().await.map_err(|e| netlink("list routes", None, e))? {
                if let Some(t) = table_route(&msg, &names) {
                    routes.push(t);
                }
            }
        }
        Ok(HostNetwork { interfaces, routes })
    }

    /// Applies the changes, many requests in flight at once; the first failure is returned after the
    /// others complete, naming its route.
    pub async fn apply(&self, changes: &[RouteChange], interfaces: &[Interface]) -> Result<(), HostError> {
        let index: HashMap<&str, u32> = interfaces.iter().map(|i| (i.name.as_str(), i.index)).collect();
        let results: Vec<Result<(), HostError>> = futures::stream::iter(changes)
            .map(|c| self.apply_one(c, &index))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn apply_one(&self, change: &RouteChange, index: &HashMap<&str, u32>) -> Result<(), HostError> {
        match change {
            RouteChange::Add(r) => {
                let msg = message(r, index).map_err(|e| netlink("add route", Some(r), e))?;
                // Never NLM_F_REPLACE on add: an identical foreign route must fail loudly, not be taken over.
                self.handle.route().add(msg).execute().await.map_err(|e| netlink("add route", Some(r), e))
            }
            RouteChange::Replace { to, .. } => {
                let msg = message(to, index).map_err(|e| netlink("replace route", Some(to), e))?;
                self.handle
                    .route()
                    .add(msg)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| netlink("replace route", Some(to), e))
            }
            RouteChange::Delete(r) => {
                let msg = message(r, index).map_err(|e| netlink("delete route", Some(r), e))?;
                self.handle.route().del(msg).execute().await.map_err(|e| netlink("delete route", Some(r), e))
            }
        }
    }
}

fn message(r: &Route, index: &HashMap<&str, u32>) -> Result<RouteMessage, String> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.destination.network(), r.destination.prefix_len())
        .map_err(|e| e.to_string())?
        .protocol(RouteProtocol::Other(LINUX_ROUTE_PROTOCOL))
        .table_id(MAIN_TABLE as u32);
    if let Some(gw) = r.gateway {
        b = b.gateway(gw).map_err(|e| e.to_string())?;
    } else {
        b = b.scope(RouteScope::Link);
    }
    if let Some(name) = &r.interface {
        let idx = index.get(name.as_str()).ok_or_else(|| format!("no interface named {name}"))?;
        b = b.output_interface(*idx);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    Ok(b.build())
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A unicast main-table route as wkjoin sees it; anything else (local, broadcast, multicast) is skipped.
fn table_route(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<TableRoute> {
    let h = &msg.header;
    if h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = h.table as u32;
    let (mut dst, mut gateway, mut oif, mut metric) = (None, None, None, None);
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != MAIN_TABLE as u32 {
        return None;
    }
    let unspecified = match h.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let destination = IpNet::new(dst.unwrap_or(unspecified), h.destination_prefix_length).ok()?;
    let (owned, origin) = match h.protocol {
        RouteProtocol::Other(LINUX_ROUTE_PROTOCOL) => (true, format!("proto {LINUX_ROUTE_PROTOCOL} (wkjoin)")),
        RouteProtocol::Other(n) => (false, format!("proto {n}")),
        p => (false, format!("{p:?}").to_lowercase()),
    };
    Some(TableRoute {
        route: Route { destination, gateway, interface: oif.and_then(|i| names.get(&i).cloned()), metric },
        owned,
        origin,
    })
}
