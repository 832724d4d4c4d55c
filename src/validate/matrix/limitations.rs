//! The known limitations, as tables: cells known not to work on an OS or mode (not run, reported as such), and
//! the hosts whose firewall drops ICMP (their ping cells connect to the kubelet instead).

use super::{Check, NodeInfo, NodeOs, Selection};

/// Known limitations, in one table: (check, source OS, same node?) → reason. `None` for "same node" matches both.
pub const LIMITATIONS: &[(Check, NodeOs, Option<bool>, &str)] = &[
    (
        Check::ServiceFromNode,
        NodeOs::Windows,
        None,
        "a Windows node's host cannot reach Service ClusterIPs: kube-proxy programs HNS load balancers for \
         containers only (the guide's known limitation)",
    ),
    (
        Check::Hostport,
        NodeOs::Windows,
        Some(true),
        "a Windows node cannot reach its own hostPort mappings (WinNAT/HNS does not hairpin host traffic)",
    ),
];

/// `--local` off-cluster: the decision is to not run these cells rather than fail them, as `wkjoin validate --help`
/// says (ClusterIPs are virtual: only a node's kube-proxy answers them, so failing there says nothing about the cluster).
pub const OFF_CLUSTER_SERVICE: &str = "this machine is not a Ready node (none of its addresses is a node's \
     InternalIP): Service ClusterIPs answer only on nodes, where kube-proxy programs them; run --local on a node \
     (e.g. the master) to check node → Service";

pub(super) fn limitation(check: Check, source_os: NodeOs, same_node: bool) -> Option<&'static str> {
    LIMITATIONS
        .iter()
        .find(|(c, os, same, _)| *c == check && *os == source_os && same.is_none_or(|s| s == same_node))
        .map(|(_, _, _, reason)| *reason)
}

/// Where ICMP echo to a node's host is known to be dropped: its ping cells connect to the kubelet instead.
pub const ICMP_BLOCKED: &[(NodeOs, &str)] = &[(
    NodeOs::Windows,
    "Windows Firewall drops inbound ICMPv4 echo requests by default (rule \"File and Printer Sharing (Echo \
     Request - ICMPv4-In)\")",
)];
/// The port a ping falls back to: every joined node's kubelet listens on it.
pub const KUBELET_PORT: u16 = 10250;

/// Why ICMP to this node is not used (the table above, or `--icmp-blocked`).
pub fn icmp_blocked(node: &NodeInfo, sel: &Selection) -> Option<&'static str> {
    if sel.icmp_blocked.contains(&node.name) {
        return Some("ICMP to this node is blocked (--icmp-blocked)");
    }
    ICMP_BLOCKED.iter().find(|(os, _)| *os == node.os).map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::super::tests::nodes;
    use super::super::{Addresses, Kind, Selection, matrix, probe};
    use super::*;

    #[test]
    fn hosts_known_to_drop_icmp_are_pinged_over_tcp() {
        let mut ns = nodes(3);
        ns[2].os = NodeOs::Windows;
        let sel = Selection { icmp_blocked: vec!["worker-1".into()], ..Default::default() };
        let cells = matrix(&ns, &sel);
        let kind = |id: &str| cells.iter().find(|c| c.id == id).map(|c| c.kind);
        assert_eq!(kind("node-ping/tcp/host:master->node:worker-2"), Some(Kind::Tcp), "Windows: the table");
        assert_eq!(kind("node-ping/tcp/host:master->node:worker-1"), Some(Kind::Tcp), "--icmp-blocked");
        assert_eq!(kind("gateway-ping/tcp/gateway:master->node:worker-1"), Some(Kind::Tcp));
        assert_eq!(kind("node-ping/icmp/host:worker-1->node:master"), Some(Kind::Icmp));
        // pods on those nodes are still pinged: the host's firewall is not the pod's
        assert_eq!(kind("pod-to-pod/icmp/pod:master->pod:worker-2"), Some(Kind::Icmp));
        assert_eq!(cells.len(), matrix(&nodes(3), &Selection::default()).len());
        let addrs = Addresses::default();
        let name = |n: &str| format!("web-{n}");
        let c = cells.iter().find(|c| c.id == "node-ping/tcp/host:master->node:worker-1").unwrap();
        assert_eq!(probe(c, &ns, &addrs, &name).unwrap().display(), "nc -w 2 172.30.0.11 10250 -e true");
        let mut win_src = ns.clone();
        win_src[0].os = NodeOs::Windows;
        let c = cells.iter().find(|c| c.id == "node-ping/tcp/host:master->node:worker-1").unwrap();
        let p = probe(c, &win_src, &addrs, &name).unwrap();
        assert!(p.display().contains("ConnectAsync('172.30.0.11', 10250)") && p.expect.as_deref() == Some("True"));
    }

    #[test]
    fn windows_limitations_come_from_the_table() {
        let mut ns = nodes(2);
        ns[1].os = NodeOs::Windows;
        let cells = matrix(&ns, &Selection::default());
        let lim = |id: &str| cells.iter().find(|c| c.id == id).unwrap().limitation;
        assert!(lim("service-from-node/http/host:worker-1->service:master").is_some());
        assert!(lim("service-from-node/http/host:master->service:worker-1").is_none());
        assert!(lim("hostport/http/host:worker-1->hostport:worker-1").is_some());
        assert!(lim("hostport/http/host:worker-1->hostport:master").is_none());
        assert!(lim("service-from-pod/http/pod:worker-1->service:master").is_none());
    }
}
