//! The Windows routing table through IP Helper (`GetIpForwardTable2`, `CreateIpForwardEntry2`,
//! `DeleteIpForwardEntry2`). Thin FFI: which rows to touch is decided in `routes::iphelper`.
//! Windows has no route owner tag, so wkjoin's routes are those recorded in its state file, matched exactly.

use crate::host::HostError;
use crate::host::iphelper::{IpHelperOp, calls};
use crate::host::net::{HostNetwork, Interface, Route, RouteChange, TableRoute};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use windows_sys::Win32::Foundation::NO_ERROR;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ConvertInterfaceLuidToAlias, CreateIpForwardEntry2, DeleteIpForwardEntry2, FreeMibTable, GetIpForwardTable2,
    GetUnicastIpAddressTable, InitializeIpForwardEntry, MIB_IPFORWARD_ROW2, MIB_IPFORWARD_TABLE2,
    MIB_UNICASTIPADDRESS_TABLE,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6, AF_UNSPEC, MIB_IPPROTO_NETMGMT, SOCKADDR_INET};

fn failed(op: &'static str, route: Option<&str>, code: u32) -> HostError {
    HostError::Routing {
        op,
        route: route.map(str::to_string),
        message: format!("{} (Windows error {code})", std::io::Error::from_raw_os_error(code as i32)),
    }
}

fn to_ip(sa: &SOCKADDR_INET) -> Option<IpAddr> {
    // SAFETY: si_family is the common first field of every union member and says which one is valid.
    unsafe {
        match sa.si_family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.Ipv4.sin_addr.S_un.S_addr)))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(sa.Ipv6.sin6_addr.u.Byte))),
            _ => None,
        }
    }
}

fn to_sockaddr(ip: IpAddr) -> SOCKADDR_INET {
    let mut sa = SOCKADDR_INET::default();
    match ip {
        IpAddr::V4(v4) => {
            sa.Ipv4.sin_family = AF_INET;
            sa.Ipv4.sin_addr.S_un.S_addr = u32::from(v4).to_be();
        }
        IpAddr::V6(v6) => {
            sa.Ipv6.sin6_family = AF_INET6;
            sa.Ipv6.sin6_addr.u.Byte = v6.octets();
        }
    }
    sa
}

fn alias(row: &MIB_IPFORWARD_ROW2) -> Option<String> {
    let mut buf = [0u16; 257];
    // SAFETY: the LUID comes from the table row; the buffer length is passed in characters.
    let rc = unsafe { ConvertInterfaceLuidToAlias(&row.InterfaceLuid, buf.as_mut_ptr(), buf.len()) };
    (rc == NO_ERROR).then(|| String::from_utf16_lossy(&buf[..buf.iter().position(|&c| c == 0).unwrap_or(0)]))
}

fn forward_rows() -> Result<Vec<MIB_IPFORWARD_ROW2>, HostError> {
    let mut table: *mut MIB_IPFORWARD_TABLE2 = std::ptr::null_mut();
    // SAFETY: IP Helper allocates the table; it is copied out and freed with FreeMibTable below.
    unsafe {
        let rc = GetIpForwardTable2(AF_UNSPEC, &mut table);
        if rc != NO_ERROR {
            return Err(failed("read the routing table", None, rc));
        }
        let rows = std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize).to_vec();
        FreeMibTable(table as *const _);
        Ok(rows)
    }
}

fn interface_networks() -> Result<HashMap<u32, Vec<IpNet>>, HostError> {
    let mut table: *mut MIB_UNICASTIPADDRESS_TABLE = std::ptr::null_mut();
    let mut out: HashMap<u32, Vec<IpNet>> = HashMap::new();
    // SAFETY: as for forward_rows.
    unsafe {
        let rc = GetUnicastIpAddressTable(AF_UNSPEC, &mut table);
        if rc != NO_ERROR {
            return Err(failed("read the interface addresses", None, rc));
        }
        for row in std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize) {
            if let Some(net) = to_ip(&row.Address).and_then(|ip| IpNet::new(ip, row.OnLinkPrefixLength).ok()) {
                out.entry(row.InterfaceIndex).or_default().push(net);
            }
        }
        FreeMibTable(table as *const _);
    }
    Ok(out)
}

/// Every unicast address of the host with its on-link prefix and its interface's alias (`Ethernet`,
/// `vEthernet (Ethernet)`): the node IP, the management subnet and the interface that holds them.
pub fn interface_addresses() -> Vec<(String, IpNet)> {
    let mut table: *mut MIB_UNICASTIPADDRESS_TABLE = std::ptr::null_mut();
    let mut out = Vec::new();
    // SAFETY: IP Helper allocates the table, which is read within its NumEntries and freed with FreeMibTable;
    // the alias buffer is ours and NUL-terminated by the call.
    unsafe {
        if GetUnicastIpAddressTable(AF_UNSPEC, &mut table) != NO_ERROR {
            return out;
        }
        for row in std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize) {
            let Some(net) = to_ip(&row.Address).and_then(|ip| IpNet::new(ip, row.OnLinkPrefixLength).ok()) else {
                continue;
            };
            let mut buf = [0u16; 257];
            let name = match ConvertInterfaceLuidToAlias(&row.InterfaceLuid, buf.as_mut_ptr(), buf.len()) {
                NO_ERROR => String::from_utf16_lossy(&buf[..buf.iter().position(|c| *c == 0).unwrap_or(0)]),
                _ => format!("if{}", row.InterfaceIndex),
            };
            out.push((name, net));
        }
        FreeMibTable(table as *const _);
    }
    out
}

/// The index of the interface that holds `address` (IP Helper), if one does.
pub fn interface_index_of(address: IpAddr) -> Option<u32> {
    let mut table: *mut MIB_UNICASTIPADDRESS_TABLE = std::ptr::null_mut();
    // SAFETY: IP Helper allocates the table, read within its NumEntries and freed with FreeMibTable.
    unsafe {
        if GetUnicastIpAddressTable(AF_UNSPEC, &mut table) != NO_ERROR {
            return None;
        }
        let rows = std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize);
        let found = rows.iter().find(|r| to_ip(&r.Address) == Some(address)).map(|r| r.InterfaceIndex);
        FreeMibTable(table as *const _);
        found
    }
}

/// The host's IP Helper routing table.
pub struct RouteTable;

impl RouteTable {
    pub fn connect() -> Result<Self, HostError> {
        Ok(RouteTable)
    }

    /// `recorded`: the routes the state file says wkjoin created; only exact matches count as owned.
    pub async fn snapshot(&self, recorded: &[Route]) -> Result<HostNetwork, HostError> {
        let rows = forward_rows()?;
        let mut networks = interface_networks()?;
        let mut names: HashMap<u32, String> = HashMap::new();
        let mut routes = Vec::new();
        for row in &rows {
            let name = names
                .entry(row.InterfaceIndex)
                .or_insert_with(|| alias(row).unwrap_or_else(|| format!("if{}", row.InterfaceIndex)))
                .clone();
            let Some(dst) = to_ip(&row.DestinationPrefix.Prefix) else { continue };
            let Ok(destination) = IpNet::new(dst, row.DestinationPrefix.PrefixLength) else { continue };
            let gateway = to_ip(&row.NextHop).filter(|ip| !ip.is_unspecified());
            let route = Route { destination, gateway, interface: Some(name), metric: Some(row.Metric) };
            let owned = recorded.contains(&route);
            routes.push(TableRoute { route, owned, origin: format!("protocol {}", row.Protocol) });
        }
        let mut interfaces: Vec<Interface> = names
            .into_iter()
            .map(|(index, name)| Interface { name, index, networks: networks.remove(&index).unwrap_or_default() })
            .collect();
        interfaces.sort_by_key(|i| i.index);
        Ok(HostNetwork { interfaces, routes })
    }

    pub async fn apply(&self, changes: &[RouteChange], interfaces: &[Interface]) -> Result<(), HostError> {
        let planned = calls(changes, interfaces).map_err(|e| HostError::Routing {
            op: "plan",
            route: Some(e.route.clone()),
            message: e.to_string(),
        })?;
        for c in planned {
            let mut row = MIB_IPFORWARD_ROW2::default();
            // SAFETY: initialises a caller-owned row to the documented defaults before filling it in.
            unsafe { InitializeIpForwardEntry(&mut row) };
            row.InterfaceIndex = c.interface_index;
            row.DestinationPrefix.Prefix = to_sockaddr(c.destination.network());
            row.DestinationPrefix.PrefixLength = c.destination.prefix_len();
            row.NextHop = to_sockaddr(c.next_hop);
            row.Metric = c.metric;
            row.Protocol = MIB_IPPROTO_NETMGMT;
            let route = format!("{} via {} if {}", c.destination, c.next_hop, c.interface_index);
            // SAFETY: the row is fully initialised above and only read by the call.
            let (op, rc) = match c.op {
                IpHelperOp::Create => ("add route", unsafe { CreateIpForwardEntry2(&row) }),
                IpHelperOp::Delete => ("delete route", unsafe { DeleteIpForwardEntry2(&row) }),
            };
            if rc != NO_ERROR {
                return Err(failed(op, Some(&route), rc));
            }
        }
        Ok(())
    }
}
