//! The Windows IP Helper calls a diff turns into, as plain values: decided (and tested) here, executed by
//! the thin FFI in `host::windows`.

use super::net::{Interface, Route, RouteChange};
use ipnet::IpNet;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IpHelperOp {
    /// `CreateIpForwardEntry2`
    Create,
    /// `DeleteIpForwardEntry2`
    Delete,
}

/// One `MIB_IPFORWARD_ROW2` to create or delete (protocol `MIB_IPPROTO_NETMGMT`, persistent like New-NetRoute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpHelperCall {
    pub op: IpHelperOp,
    pub interface_index: u32,
    pub destination: IpNet,
    /// The unspecified address for an on-link route, as `New-NetRoute -NextHop 0.0.0.0` does.
    pub next_hop: IpAddr,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route} names interface {interface:?}, which this host does not have (interfaces: {known})")]
pub struct UnknownInterface {
    pub route: String,
    pub interface: Option<String>,
    pub known: String,
}

fn call(op: IpHelperOp, r: &Route, interfaces: &[Interface]) -> Result<IpHelperCall, UnknownInterface> {
    let iface = interfaces.iter().find(|i| Some(&i.name) == r.interface.as_ref()).ok_or_else(|| UnknownInterface {
        route: r.to_string(),
        interface: r.interface.clone(),
        known: interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let unspecified = if r.destination.addr().is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    Ok(IpHelperCall {
        op,
        interface_index: iface.index,
        destination: r.destination,
        next_hop: r.gateway.unwrap_or(unspecified),
        metric: r.metric.unwrap_or(0),
    })
}

/// Replacing is delete-then-create: IP Helper keys a row by interface, prefix and next hop, so a new next
/// hop is a new row.
pub fn calls(changes: &[RouteChange], interfaces: &[Interface]) -> Result<Vec<IpHelperCall>, UnknownInterface> {
    let mut out = Vec::new();
    for c in changes {
        match c {
            RouteChange::Add(r) => out.push(call(IpHelperOp::Create, r, interfaces)?),
            RouteChange::Delete(r) => out.push(call(IpHelperOp::Delete, r, interfaces)?),
            RouteChange::Replace { from, to } => {
                out.push(call(IpHelperOp::Delete, from, interfaces)?);
                out.push(call(IpHelperOp::Create, to, interfaces)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_becomes_create_and_delete_rows() {
        let ifaces = vec![
            Interface { name: "Ethernet".into(), index: 4, networks: vec![] },
            Interface { name: "vEthernet (cbr0)".into(), index: 9, networks: vec![] },
        ];
        let old =
            Route::via("10.244.2.0/24".parse().unwrap(), "172.30.0.99".parse().unwrap(), "Ethernet").with_metric(300);
        let new =
            Route::via("10.244.2.0/24".parse().unwrap(), "172.30.0.12".parse().unwrap(), "Ethernet").with_metric(300);
        let own = Route::on_link("10.244.1.0/24".parse().unwrap(), "vEthernet (cbr0)").with_metric(250);
        let c = calls(
            &[RouteChange::Add(own), RouteChange::Replace { from: old, to: new.clone() }, RouteChange::Delete(new)],
            &ifaces,
        )
        .unwrap();
        let ops: Vec<(IpHelperOp, u32, String, u32)> =
            c.iter().map(|c| (c.op, c.interface_index, c.next_hop.to_string(), c.metric)).collect();
        assert_eq!(
            ops,
            [
                (IpHelperOp::Create, 9, "0.0.0.0".into(), 250),
                (IpHelperOp::Delete, 4, "172.30.0.99".into(), 300),
                (IpHelperOp::Create, 4, "172.30.0.12".into(), 300),
                (IpHelperOp::Delete, 4, "172.30.0.12".into(), 300),
            ]
        );
        let bad = Route::on_link("10.0.0.0/8".parse().unwrap(), "Wi-Fi");
        let e = calls(&[RouteChange::Add(bad)], &ifaces).unwrap_err();
        assert!(e.to_string().contains("\"Wi-Fi\"") && e.to_string().contains("Ethernet, vEthernet (cbr0)"), "{e}");
    }
}
