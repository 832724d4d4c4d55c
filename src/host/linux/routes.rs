//! The kernel routing table through rtnetlink. wkjoin's routes carry their own protocol number, so
//! ownership survives restarts and is visible with `ip route show proto 147`.

use crate::host::HostError;
use crate::host::net::{HostNetwork, Interface, LINUX_ROUTE_PROTOCOL, Route, RouteChange, TableRoute};
use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};
use std::collections::HashMap;
use std::net::IpAddr;

const MAIN_TABLE: u8 = 254;

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

    /// Applies the changes as batches of netlink requests, many per `sendmsg`. Only a batch's last request
    /// asks for an acknowledgement: the kernel handles a batch in order and reports failures on their own,
    /// so one read per batch proves all of it done. Failures name their route; the first is returned.
    pub async fn apply(&self, changes: &[RouteChange], interfaces: &[Interface]) -> Result<(), HostError> {
        let index: HashMap<&str, u32> = interfaces.iter().map(|i| (i.name.as_str(), i.index)).collect();
        let mut requests = Vec::with_capacity(changes.len());
        for c in changes {
            let (op, route, kind, flags) = match c {
                // Never NLM_F_REPLACE on add: an identical foreign route must fail loudly, not be taken over.
                RouteChange::Add(r) => ("add route", r, Kind::New, NLM_F_CREATE | NLM_F_EXCL),
                RouteChange::Replace { to, .. } => ("replace route", to, Kind::New, NLM_F_CREATE | NLM_F_REPLACE),
                RouteChange::Delete(r) => ("delete route", r, Kind::Del, 0),
            };
            let msg = message(route, &index).map_err(|e| netlink(op, Some(route), e))?;
            let payload = match kind {
                Kind::New => RouteNetlinkMessage::NewRoute(msg),
                Kind::Del => RouteNetlinkMessage::DelRoute(msg),
            };
            requests.push((op, route, payload, flags));
        }
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| netlink("open a netlink socket", None, e))?;
        socket.bind_auto().map_err(|e| netlink("bind a netlink socket", None, e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| netlink("connect a netlink socket", None, e))?;
        let mut first_error = None;
        let mut start = 0;
        while start < requests.len() {
            let end = batch_end(&requests, start);
            let mut buf = Vec::with_capacity(BATCH_BYTES);
            for (i, (_, _, payload, flags)) in requests[start..end].iter().enumerate() {
                let seq = (start + i + 1) as u32;
                let mut header = NetlinkHeader::default();
                header.flags = NLM_F_REQUEST | flags | if start + i + 1 == end { NLM_F_ACK } else { 0 };
                header.sequence_number = seq;
                let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload.clone()));
                msg.finalize();
                let at = buf.len();
                buf.resize(at + msg.buffer_len(), 0);
                msg.serialize(&mut buf[at..]);
            }
            socket.send(&buf, 0).map_err(|e| netlink("send route requests", None, e))?;
            // Read until the batch's last request is acknowledged; errors for earlier ones arrive first.
            let mut rx = vec![0u8; 64 * 1024];
            'batch: loop {
                let n = socket.recv(&mut &mut rx[..], 0).map_err(|e| netlink("read route replies", None, e))?;
                let mut at = 0;
                while at < n {
                    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[at..n])
                        .map_err(|e| netlink("read route replies", None, e))?;
                    at += (reply.header.length as usize).max(16).next_multiple_of(4);
                    let seq = reply.header.sequence_number as usize;
                    if let NetlinkPayload::Error(e) = reply.payload
                        && let Some(code) = e.code
                        && (1..=requests.len()).contains(&seq)
                    {
                        let (op, route, _, _) = &requests[seq - 1];
                        let err = std::io::Error::from_raw_os_error(-code.get());
                        tracing::debug!("{op} {route}: {err}");
                        first_error.get_or_insert_with(|| netlink(op, Some(route), err));
                    }
                    if seq == end {
                        break 'batch;
                    }
                }
            }
            start = end;
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A batch fills at most this many bytes: well under the socket's default send buffer.
const BATCH_BYTES: usize = 32 * 1024;
/// Bytes a route request takes at most (header, route message, destination, gateway, interface, metric).
const MAX_REQUEST_BYTES: usize = 128;

enum Kind {
    New,
    Del,
}

fn batch_end<T>(requests: &[T], start: usize) -> usize {
    (start + BATCH_BYTES / MAX_REQUEST_BYTES).min(requests.len())
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
