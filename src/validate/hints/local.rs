//! Hints for `--local` cells: this machine is outside the pods' world, so what it lacks is its own route to the
//! pod network, or a kube-proxy (off-cluster, ClusterIPs are not expected to answer).

use super::Facts;
use crate::validate::matrix::{Check, Kind, NodeOs, Source, Target};
use crate::validate::report::Verdict;

/// `--local` cells: this machine is outside the pods' world, so what it lacks is its own route or kube-proxy.
pub(super) fn local_hint(f: &Facts, check: Check, target: &Target) -> String {
    let b = target.node();
    let node = f.node(b);
    let ip = node.map(|n| n.ip.to_string()).unwrap_or_default();
    let from_local = |check, kind, target| f.get(check, kind, Source::Local, target);
    if check == Check::NodePing {
        return format!(
            "this machine cannot ping {b} ({ip}): check its route to the node network (`ip route get {ip}`; \
             Windows: `route print`) and that {b} allows ICMP echo"
        );
    }
    if from_local(Check::NodePing, Kind::Icmp, Target::Node(b.into())) == Some(Verdict::Fail) {
        return format!("this machine cannot ping {b} on the node network: fix that first (see node-ping)");
    }
    let own_pod_answers = f.passes(Check::NodeToPod, Kind::Http, Source::Host(b.into()), Target::Pod(b.into()));
    match check {
        Check::NodeToPod if own_pod_answers => {
            let Some(cidr) = node.and_then(|n| n.pod_cidr) else {
                return format!("{b} has no pod CIDR: this machine has no route to its pods");
            };
            let add = match f.local.map(|l| l.os).unwrap_or_default() {
                NodeOs::Linux => format!("`ip route add {cidr} via {ip}`"),
                NodeOs::Windows => format!("`route -p add {} mask {} {ip}`", cidr.network(), cidr.netmask()),
            };
            format!(
                "this machine has no route to {b}'s pod CIDR {cidr} (gateway {ip}, {b}'s node IP): {b}'s pod \
                 answers on {b} itself but not from here; run `wkjoin routes` on this machine or add the route \
                 ({add}); either needs this machine on the nodes' network"
            )
        }
        Check::Hostport if from_local(Check::NodeToPod, Kind::Http, Target::Pod(b.into())) == Some(Verdict::Pass) => {
            format!(
                "hostPort on {b}: its pod answers this machine by IP but not on the hostPort of {b} ({ip}): the CNI \
                 config on {b} lacks the portmap plugin with capabilities.portMappings, or a firewall on {b} drops \
                 the port"
            )
        }
        Check::ServiceFromNode => {
            let from_nodes: Vec<Verdict> = f
                .by_key
                .iter()
                .filter(|((c, _, s, t), _)| *c == Check::ServiceFromNode && matches!(s, Source::Host(_)) && t == target)
                .map(|(_, v)| *v)
                .collect();
            if !from_nodes.is_empty() && from_nodes.iter().all(|v| *v == Verdict::Pass) {
                format!(
                    "the Service of {b} answers on every node but not on this machine: it is not a node running \
                     kube-proxy (ClusterIPs answer only where kube-proxy programs them), which is expected \
                     off-cluster; run --local on a node to check node → Service"
                )
            } else {
                format!(
                    "the Service of {b} does not answer from this machine: if it is a node, kube-proxy on it is not \
                     running or not programming Services (check its log and `wkjoin status`)"
                )
            }
        }
        _ => format!(
            "this machine cannot reach the {target}: check this machine's routes and firewall towards {b} ({ip}) \
             and compare with the same cells from {b}'s host"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hint, run_with};
    use super::*;
    use crate::validate::matrix::LocalMachine;

    /// (failing cells, cell to look at, words its hint must contain, words it must not contain); `--local` on a
    /// Linux machine that is no node (but here, so the Service cells run as on a node, to test their hints)
    #[test]
    fn local_hint_rules() {
        let lin = LocalMachine { os: NodeOs::Linux, node: None };
        type Rule<'a> = (&'a [&'a str], &'a str, &'a [&'a str], &'a [&'a str]);
        let table: &[Rule] = &[
            // off-cluster without routes to the pod network: every node's pod fails from here only
            (
                &["local->pod:"],
                "node-to-pod/http/local->pod:worker-2",
                &[
                    "this machine has no route to worker-2's pod CIDR 10.244.2.0/24",
                    "gateway 172.30.0.12",
                    "`wkjoin routes` on this machine",
                    "`ip route add 10.244.2.0/24 via 172.30.0.12`",
                ],
                &["missing or wrong host-gw route on"],
            ),
            // the node's own pod does not answer on the node either: not this machine's route
            (
                &["local->pod:worker-1", "host:worker-1->pod:worker-1"],
                "node-to-pod/http/local->pod:worker-1",
                &["routes and firewall towards worker-1"],
                &["has no route"],
            ),
            (
                &["local->node:worker-1"],
                "node-ping/icmp/local->node:worker-1",
                &["cannot ping worker-1 (172.30.0.11)"],
                &[],
            ),
            (
                &["local->node:worker-1", "local->pod:worker-1"],
                "node-to-pod/http/local->pod:worker-1",
                &["fix that first"],
                &["has no route"],
            ),
            // ClusterIPs answer on every node but not here: not a node running kube-proxy
            (
                &["local->service:"],
                "service-from-node/http/local->service:master",
                &["not a node running kube-proxy", "expected off-cluster", "run --local on a node"],
                &[],
            ),
            (
                &["local->service:", "host:worker-2->service:master"],
                "service-from-node/http/local->service:master",
                &["kube-proxy on it is not"],
                &["expected off-cluster"],
            ),
            (&["local->hostport:worker-1"], "hostport/http/local->hostport:worker-1", &["portmap"], &[]),
        ];
        for (fails, id, words, not) in table {
            let (results, _) = run_with(3, fails, Some(lin.clone()));
            let h = hint(&results, id);
            for w in *words {
                assert!(h.contains(w), "fails {fails:?}: hint of {id} lacks {w:?}: {h}");
            }
            for w in *not {
                assert!(!h.contains(w), "fails {fails:?}: hint of {id} has {w:?}: {h}");
            }
        }
        // the route command follows this machine's OS
        let win = LocalMachine { os: NodeOs::Windows, node: None };
        let (results, hints) = run_with(3, &["local->pod:"], Some(win));
        let h = hint(&results, "node-to-pod/http/local->pod:worker-1");
        assert!(h.contains("`route -p add 10.244.1.0 mask 255.255.255.0 172.30.0.11`"), "{h}");
        // one hint per node's CIDR; the pod-side cells are untouched
        assert_eq!(hints.len(), 3, "{hints:#?}");
        assert!(results.iter().filter(|r| r.cell.source != Source::Local).all(|r| r.hint.is_none()));
    }
}
