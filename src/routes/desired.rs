//! The routes a node should have, computed purely from the Node list and the host's interfaces.

use super::{ClusterNode, HostNetwork, Interface, Route, WINDOWS_MGMT_NIC_METRIC, WINDOWS_POD_NIC_METRIC};
use crate::layout::Os;
use crate::plan::NextHop;
use crate::settings::nth_address;
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOptions {
    pub self_node: String,
    pub os: Os,
    pub next_hop: NextHop,
    pub cluster_cidr: IpNet,
    /// Whether the cluster CIDR was given or discovered (a default is no ground to refuse a node's range).
    pub cluster_cidr_known: bool,
    pub service_cidr: IpNet,
    /// The management interface; found from the node's InternalIP when not given.
    pub primary_interface: Option<String>,
    /// Windows: the pod network's host vNIC, e.g. `vEthernet (cbr0)`.
    pub pod_interface: Option<String>,
    /// Windows: the API server, given a /32 on the management NIC as the guide does.
    pub api_server: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesError {
    #[error(
        "next hop {gateway} of node {node} is not on any directly connected network (this host has: {connected}); \
         give this host an interface on the network of {gateway}, or use --next-hop pod-gateway if the cluster is built that way"
    )]
    NextHopUnreachable { node: String, gateway: IpAddr, connected: String },
    #[error(
        "nodes {a_node} ({a}) and {b_node} ({b}) claim overlapping pod CIDRs: the controller manager's allocations are inconsistent; fix or delete one of the nodes"
    )]
    PodCidrsOverlap { a_node: String, a: IpNet, b_node: String, b: IpNet },
    #[error(
        "pod CIDR {pod_cidr} of node {node} overlaps {what} {net}: routing it would hijack that range; fix --cluster-cidr on the controller manager"
    )]
    PodCidrOverlapsNetwork { node: String, pod_cidr: IpNet, what: &'static str, net: IpNet },
    #[error(
        "pod CIDR {pod_cidr} of node {node} is not inside the cluster CIDR {cluster_cidr}: it is skipped (no route to it); fix the node's spec.podCIDR or --cluster-cidr"
    )]
    PodCidrOutsideCluster { node: String, pod_cidr: IpNet, cluster_cidr: IpNet },
    #[error("pod CIDR {pod_cidr} of node {node} covers every address: it is skipped (no route to it)")]
    PodCidrEverything { node: String, pod_cidr: IpNet },
    #[error("cannot tell this host's management interface: give --interface (interfaces: {names})")]
    NoPrimaryInterface { names: String },
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn connected_interface(host: &HostNetwork, ip: IpAddr) -> Option<&Interface> {
    host.interfaces.iter().find(|i| i.networks.iter().any(|n| n.contains(&ip)))
}

fn describe_connected(host: &HostNetwork) -> String {
    let nets: Vec<String> = host
        .interfaces
        .iter()
        .flat_map(|i| {
            i.networks.iter().filter(|n| !n.addr().is_loopback()).map(move |n| format!("{} {}", i.name, n.trunc()))
        })
        .collect();
    if nets.is_empty() { "none".into() } else { nets.join(", ") }
}

/// Pairs of nodes whose pod CIDRs overlap (sorted sweep: O(n log n) for thousands of nodes).
fn overlapping_pod_cidrs(nodes: &[ClusterNode]) -> Vec<RoutesError> {
    let mut all: Vec<(&IpNet, &str)> =
        nodes.iter().flat_map(|n| n.pod_cidrs.iter().map(move |c| (c, n.name.as_str()))).collect();
    all.sort_by_key(|(c, _)| (c.network(), c.prefix_len()));
    let mut out = Vec::new();
    for (i, (a, a_node)) in all.iter().enumerate() {
        for (b, b_node) in all[i + 1..].iter().take_while(|(b, _)| a.contains(&b.network())) {
            out.push(RoutesError::PodCidrsOverlap {
                a_node: a_node.to_string(),
                a: **a,
                b_node: b_node.to_string(),
                b: **b,
            });
        }
    }
    out
}

/// Cluster data is not trusted: a pod CIDR that is everything, outside the cluster CIDR, over the service range
/// or the node network, or claimed by two nodes, is dropped with its reason; every other node keeps its routes.
pub fn screen(nodes: &[ClusterNode], opts: &RouteOptions, host: &HostNetwork) -> (Vec<ClusterNode>, Vec<RoutesError>) {
    let mut rejected = Vec::new();
    let mut bad: Vec<(String, IpNet)> = Vec::new();
    let pod_ifaces = [opts.pod_interface.as_deref(), Some("cbr0")];
    for n in nodes {
        for cidr in &n.pod_cidrs {
            let node = n.name.clone();
            // The most specific reason first: hijacking the node network is worse than being out of range.
            let on_node_net = host
                .interfaces
                .iter()
                .filter(|i| !pod_ifaces.contains(&Some(i.name.as_str())))
                .find_map(|i| i.networks.iter().find(|net| overlaps(cidr, &net.trunc())));
            let reason = if cidr.prefix_len() == 0 {
                Some(RoutesError::PodCidrEverything { node, pod_cidr: *cidr })
            } else if let Some(net) = on_node_net {
                Some(RoutesError::PodCidrOverlapsNetwork {
                    node,
                    pod_cidr: *cidr,
                    what: "the node network",
                    net: net.trunc(),
                })
            } else if overlaps(cidr, &opts.service_cidr) {
                Some(RoutesError::PodCidrOverlapsNetwork {
                    node,
                    pod_cidr: *cidr,
                    what: "the service CIDR",
                    net: opts.service_cidr,
                })
            } else if opts.cluster_cidr_known
                && cidr.addr().is_ipv4() == opts.cluster_cidr.addr().is_ipv4()
                && !opts.cluster_cidr.contains(cidr)
            {
                Some(RoutesError::PodCidrOutsideCluster { node, pod_cidr: *cidr, cluster_cidr: opts.cluster_cidr })
            } else {
                None
            };
            if let Some(r) = reason {
                bad.push((n.name.clone(), *cidr));
                rejected.push(r);
            }
        }
    }
    let keep = |nodes: &[ClusterNode], bad: &[(String, IpNet)]| -> Vec<ClusterNode> {
        nodes
            .iter()
            .map(|n| ClusterNode {
                pod_cidrs: n.pod_cidrs.iter().filter(|c| !bad.contains(&(n.name.clone(), **c))).copied().collect(),
                ..n.clone()
            })
            .collect()
    };
    // Overlaps are judged among the ranges that are plausible on their own (a 0.0.0.0/0 would overlap them all).
    let plausible = keep(nodes, &bad);
    for e in overlapping_pod_cidrs(&plausible) {
        if let RoutesError::PodCidrsOverlap { a_node, a, b_node, b } = &e {
            bad.extend([(a_node.clone(), *a), (b_node.clone(), *b)]);
        }
        rejected.push(e);
    }
    (keep(nodes, &bad), rejected)
}

fn primary_interface<'a>(nodes: &[ClusterNode], opts: &'a RouteOptions, host: &'a HostNetwork) -> Option<&'a str> {
    let me = nodes.iter().find(|n| n.name == opts.self_node);
    let by_address = me
        .into_iter()
        .flat_map(|n| &n.internal_ips)
        .find_map(|ip| host.interfaces.iter().find(|i| i.networks.iter().any(|net| net.addr() == *ip)));
    if let Some(name) = &opts.primary_interface {
        // Windows: once the L2Bridge network exists the address is on `vEthernet (<name>)`, not on the adapter
        // named by --interface: a named interface without addresses gives way to the one holding the node's.
        let named_holds_addresses = host.interfaces.iter().any(|i| &i.name == name && !i.networks.is_empty());
        return match (named_holds_addresses, by_address) {
            (false, Some(iface)) if opts.os == Os::Windows => Some(&iface.name),
            _ => Some(name),
        };
    }
    if let Some(iface) = by_address {
        return Some(&iface.name);
    }
    host.routes
        .iter()
        .find(|r| !r.owned && r.route.destination.prefix_len() == 0)
        .and_then(|r| r.route.interface.as_deref())
}

/// The routes this node should have; pod CIDRs that fail [`screen`] get none, and are reported as warnings.
pub fn desired(nodes: &[ClusterNode], opts: &RouteOptions, host: &HostNetwork) -> Result<Vec<Route>, RoutesError> {
    let (healthy, rejected) = screen(nodes, opts, host);
    for r in &rejected {
        tracing::warn!("{r}");
    }
    // A rejected range gets no new route, and keeps the one wkjoin already had: bad data never removes routes.
    let rejected_ranges: Vec<IpNet> = nodes
        .iter()
        .flat_map(|n| n.pod_cidrs.iter())
        .filter(|c| !healthy.iter().any(|h| h.pod_cidrs.contains(c)))
        .copied()
        .collect();
    let kept: Vec<Route> = host
        .routes
        .iter()
        .filter(|r| r.owned && rejected_ranges.contains(&r.route.destination))
        .map(|r| r.route.clone())
        .collect();
    let nodes = healthy.as_slice();
    let primary = primary_interface(nodes, opts, host).map(str::to_string);
    let need_primary = || {
        primary.clone().ok_or_else(|| RoutesError::NoPrimaryInterface {
            names: host.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    };
    let windows = opts.os == Os::Windows;
    let mut routes = Vec::new();

    if opts.next_hop == NextHop::PodGateway {
        // The guide's scheme: the whole cluster range on-link, each pod CIDR via its `.2` host endpoint.
        routes.push(Route::on_link(opts.cluster_cidr, &need_primary()?));
    }
    for n in nodes {
        for cidr in &n.pod_cidrs {
            if n.name == opts.self_node {
                if windows {
                    routes.push(Route::on_link(*cidr, &need_primary()?).with_metric(WINDOWS_MGMT_NIC_METRIC));
                }
                continue;
            }
            let (gateway, iface) = match opts.next_hop {
                NextHop::NodeIp => {
                    let Some(ip) = n.internal_ips.iter().find(|ip| ip.is_ipv4() == cidr.addr().is_ipv4()) else {
                        tracing::warn!("node {}: no InternalIP of the family of {cidr} yet; no route to it", n.name);
                        continue;
                    };
                    let iface = connected_interface(host, *ip).ok_or_else(|| RoutesError::NextHopUnreachable {
                        node: n.name.clone(),
                        gateway: *ip,
                        connected: describe_connected(host),
                    })?;
                    (*ip, iface.name.clone())
                }
                NextHop::PodGateway => (nth_address(*cidr, 2), need_primary()?),
            };
            if windows {
                if let Some(pod_if) = &opts.pod_interface {
                    routes.push(Route::via(*cidr, gateway, pod_if).with_metric(WINDOWS_POD_NIC_METRIC));
                }
                routes.push(Route::via(*cidr, gateway, &iface).with_metric(WINDOWS_MGMT_NIC_METRIC));
            } else {
                routes.push(Route::via(*cidr, gateway, &iface));
            }
        }
    }

    // Without a route covering the service range, host → ClusterIP fails with "network unreachable" before
    // kube-proxy's rules ever see the packet.
    let covered = host.routes.iter().any(|r| {
        !r.owned
            && r.route.destination.addr().is_ipv4() == opts.service_cidr.addr().is_ipv4()
            && r.route.destination.contains(&opts.service_cidr)
    });
    if !covered {
        let mut r = Route::on_link(opts.service_cidr, &need_primary()?);
        if windows {
            r = r.with_metric(WINDOWS_MGMT_NIC_METRIC);
        }
        routes.push(r);
    }
    if windows
        && let Some(api) = opts.api_server
        && let Some(iface) = connected_interface(host, api)
    {
        let host_prefix = if api.is_ipv4() { 32 } else { 128 };
        routes.push(
            Route::on_link(IpNet::new(api, host_prefix).expect("valid prefix"), &iface.name)
                .with_metric(WINDOWS_MGMT_NIC_METRIC),
        );
    }
    routes.extend(kept);
    routes.sort();
    routes.dedup();
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::super::TableRoute;
    use super::*;

    fn node(name: &str, cidr: &str, ip: &str) -> ClusterNode {
        ClusterNode {
            name: name.into(),
            pod_cidrs: vec![cidr.parse().unwrap()],
            internal_ips: vec![ip.parse().unwrap()],
        }
    }

    fn host(default_route: bool) -> HostNetwork {
        let mut routes = vec![];
        if default_route {
            routes.push(TableRoute {
                route: Route::via("0.0.0.0/0".parse().unwrap(), "172.30.0.254".parse().unwrap(), "eth0"),
                owned: false,
                origin: "static".into(),
            });
        }
        HostNetwork {
            interfaces: vec![
                Interface { name: "lo".into(), index: 1, networks: vec!["127.0.0.1/8".parse().unwrap()] },
                Interface { name: "eth0".into(), index: 2, networks: vec!["172.30.0.11/24".parse().unwrap()] },
            ],
            routes,
        }
    }

    fn opts(os: Os, next_hop: NextHop) -> RouteOptions {
        RouteOptions {
            self_node: "worker-1".into(),
            os,
            next_hop,
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            cluster_cidr_known: true,
            service_cidr: "10.96.0.0/16".parse().unwrap(),
            primary_interface: None,
            pod_interface: None,
            api_server: None,
        }
    }

    fn cluster() -> Vec<ClusterNode> {
        vec![
            node("master", "10.244.0.0/24", "172.30.0.10"),
            node("worker-1", "10.244.1.0/24", "172.30.0.11"),
            node("worker-2", "10.244.2.0/24", "172.30.0.12"),
        ]
    }

    fn show(routes: &[Route]) -> Vec<String> {
        routes.iter().map(Route::to_string).collect()
    }

    #[test]
    fn linux_routes_every_other_node_via_its_internal_ip_plus_service_range() {
        let r = desired(&cluster(), &opts(Os::Linux, NextHop::NodeIp), &host(false)).unwrap();
        assert_eq!(
            show(&r),
            [
                "10.96.0.0/16 on-link dev eth0",
                "10.244.0.0/24 via 172.30.0.10 dev eth0",
                "10.244.2.0/24 via 172.30.0.12 dev eth0",
            ]
        );
    }

    #[test]
    fn a_default_route_covers_the_service_range() {
        let r = desired(&cluster(), &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap();
        assert!(!show(&r).iter().any(|s| s.starts_with("10.96.")), "{r:?}");
    }

    #[test]
    fn guide_scheme_uses_the_pod_gateway_and_cluster_range_on_link() {
        let r = desired(&cluster(), &opts(Os::Linux, NextHop::PodGateway), &host(true)).unwrap();
        assert_eq!(
            show(&r),
            [
                "10.244.0.0/16 on-link dev eth0",
                "10.244.0.0/24 via 10.244.0.2 dev eth0",
                "10.244.2.0/24 via 10.244.2.2 dev eth0",
            ]
        );
    }

    /// --interface Ethernet names the adapter; after the L2Bridge network is created the node's address is on
    /// `vEthernet (Ethernet)` and the adapter has none: routes follow the address (flannel does the same).
    #[test]
    fn windows_routes_follow_the_node_address_to_the_vnic() {
        let mut o = opts(Os::Windows, NextHop::NodeIp);
        o.primary_interface = Some("Ethernet".into());
        let mut h = host(false);
        h.interfaces[1].name = "vEthernet (Ethernet)".into();
        h.interfaces.push(Interface { name: "Ethernet".into(), index: 3, networks: vec![] });
        let r = desired(&cluster(), &o, &h).unwrap();
        assert!(r.iter().all(|r| r.interface.as_deref() == Some("vEthernet (Ethernet)")), "{:?}", show(&r));
        // Before the network exists the adapter holds the address: the name given is used.
        let r = desired(&cluster(), &o, &{
            let mut h = host(false);
            h.interfaces[1].name = "Ethernet".into();
            h
        })
        .unwrap();
        assert!(r.iter().all(|r| r.interface.as_deref() == Some("Ethernet")), "{:?}", show(&r));
    }

    #[test]
    fn windows_adds_the_guide_extras() {
        let mut o = opts(Os::Windows, NextHop::NodeIp);
        o.pod_interface = Some("vEthernet (cbr0)".into());
        o.api_server = Some("172.30.0.10".parse().unwrap());
        let r = desired(&cluster(), &o, &host(false)).unwrap();
        assert_eq!(
            show(&r),
            [
                "10.96.0.0/16 on-link dev eth0 metric 300",
                "10.244.0.0/24 via 172.30.0.10 dev eth0 metric 300",
                "10.244.0.0/24 via 172.30.0.10 dev vEthernet (cbr0) metric 250",
                "10.244.1.0/24 on-link dev eth0 metric 300",
                "10.244.2.0/24 via 172.30.0.12 dev eth0 metric 300",
                "10.244.2.0/24 via 172.30.0.12 dev vEthernet (cbr0) metric 250",
                "172.30.0.10/32 on-link dev eth0 metric 300",
            ]
        );
    }

    #[test]
    fn dual_stack_nodes_get_a_route_per_family() {
        let mut nodes = cluster();
        nodes[2].pod_cidrs.push("fd00:10:244:2::/64".parse().unwrap());
        nodes[2].internal_ips.push("fd00::12".parse().unwrap());
        let mut h = host(true);
        h.interfaces[1].networks.push("fd00::11/64".parse().unwrap());
        h.routes.push(TableRoute {
            route: Route::via("::/0".parse().unwrap(), "fd00::1".parse().unwrap(), "eth0"),
            owned: false,
            origin: "static".into(),
        });
        let r = desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &h).unwrap();
        assert!(show(&r).contains(&"fd00:10:244:2::/64 via fd00::12 dev eth0".to_string()), "{r:?}");
    }

    #[test]
    fn an_unreachable_next_hop_names_the_problem() {
        let mut nodes = cluster();
        nodes.push(node("far", "10.244.3.0/24", "192.168.77.5"));
        let e = desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap_err();
        assert!(
            e.to_string().contains("next hop 192.168.77.5 of node far") && e.to_string().contains("eth0 172.30.0.0/24"),
            "{e}"
        );
    }

    #[test]
    fn hostile_pod_cidrs_are_skipped_with_their_reason_and_healthy_nodes_keep_their_routes() {
        let healthy = desired(&cluster(), &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap();
        let cases: [(&str, &str, &str); 5] = [
            ("dup", "10.244.2.128/25", "overlapping pod CIDRs"),
            ("lan", "172.30.0.0/25", "overlaps the node network 172.30.0.0/24"),
            ("svc", "10.96.1.0/24", "overlaps the service CIDR 10.96.0.0/16"),
            ("away", "10.99.0.0/24", "not inside the cluster CIDR 10.244.0.0/16"),
            ("all", "0.0.0.0/0", "covers every address"),
        ];
        for (name, cidr, why) in cases {
            let mut nodes = cluster();
            nodes.push(node(name, cidr, "172.30.0.13"));
            let (_, rejected) = screen(&nodes, &opts(Os::Linux, NextHop::NodeIp), &host(true));
            assert!(
                rejected.iter().any(|r| r.to_string().contains(why) && r.to_string().contains(name)),
                "{name}: {rejected:?}"
            );
            let r = desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap();
            assert!(!show(&r).iter().any(|l| l.starts_with(cidr)), "{name}: {r:?}");
            if name != "dup" {
                assert_eq!(r, healthy, "{name}: one bad node changed the routes of the others");
            }
        }
        // A range wkjoin already routes keeps its route when it turns bad: bad data never removes routes.
        let mut h = host(true);
        h.routes.push(TableRoute {
            route: Route::via("10.244.2.0/24".parse().unwrap(), "172.30.0.12".parse().unwrap(), "eth0"),
            owned: true,
            origin: "wkjoin".into(),
        });
        let mut nodes = cluster();
        nodes.push(node("whole", "10.244.0.0/16", "172.30.0.13"));
        let r = show(&desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &h).unwrap());
        assert!(r.contains(&"10.244.2.0/24 via 172.30.0.12 dev eth0".to_string()), "{r:?}");
        assert!(!r.iter().any(|l| l.starts_with("10.244.0.0/16")), "{r:?}");
        // A cluster CIDR that is only wkjoin's default is no ground to refuse a node's range.
        let mut nodes = cluster();
        nodes.push(node("away", "10.99.0.0/24", "172.30.0.13"));
        let guessed = RouteOptions { cluster_cidr_known: false, ..opts(Os::Linux, NextHop::NodeIp) };
        let r = show(&desired(&nodes, &guessed, &host(true)).unwrap());
        assert!(r.iter().any(|l| l.starts_with("10.99.0.0/24")), "{r:?}");
        // Two nodes claiming one range: neither gets a route (which one is right cannot be told), the rest do.
        let mut nodes = cluster();
        nodes.push(node("dup", "10.244.2.128/25", "172.30.0.13"));
        let r = show(&desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap());
        assert!(!r.iter().any(|l| l.starts_with("10.244.2.")), "{r:?}");
        assert!(r.iter().any(|l| l.starts_with("10.244.0.0/24")), "{r:?}");
    }

    #[test]
    fn nodes_without_address_or_cidr_are_skipped() {
        let nodes = vec![
            ClusterNode { name: "new".into(), pod_cidrs: vec![], internal_ips: vec!["172.30.0.20".parse().unwrap()] },
            ClusterNode {
                name: "noip".into(),
                pod_cidrs: vec!["10.244.7.0/24".parse().unwrap()],
                internal_ips: vec![],
            },
        ];
        let r = desired(&nodes, &opts(Os::Linux, NextHop::NodeIp), &host(true)).unwrap();
        assert!(r.is_empty(), "{r:?}");
    }
}
