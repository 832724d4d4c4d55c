//! Diagnosis: reads the pattern of results and explains each failure with the most likely cause and its fix.
//! Pure: the same results always give the same hints.

use super::matrix::{Check, Kind, LocalMachine, NodeInfo, NodeOs, Source, Target};
use super::report::{CellResult, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One diagnosis and the failed cells it explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    pub text: String,
    pub cells: Vec<String>,
}

struct Facts<'a> {
    nodes: &'a [NodeInfo],
    by_key: BTreeMap<(Check, Kind, Source, Target), Verdict>,
    /// (on, to): `on` has no working route to `to`'s pod CIDR, as host → pod evidence shows.
    missing_routes: BTreeSet<(String, String)>,
    /// The machine running wkjoin (`--local`).
    local: Option<&'a LocalMachine>,
}

impl Facts<'_> {
    fn get(&self, check: Check, kind: Kind, source: Source, target: Target) -> Option<Verdict> {
        self.by_key.get(&(check, kind, source, target)).copied()
    }
    fn fails(&self, check: Check, kind: Kind, source: Source, target: Target) -> bool {
        self.get(check, kind, source, target) == Some(Verdict::Fail)
    }
    fn passes(&self, check: Check, kind: Kind, source: Source, target: Target) -> bool {
        self.get(check, kind, source, target) == Some(Verdict::Pass)
    }
    fn node_ping_fails(&self, a: &str, b: &str) -> bool {
        // (a TCP ping where ICMP is known to be blocked)
        [Kind::Icmp, Kind::Tcp]
            .into_iter()
            .any(|k| self.fails(Check::NodePing, k, Source::Host(a.into()), Target::Node(b.into())))
    }
    /// Pods on `b` answer from `b` itself (so the pod network there works).
    fn local_pods_fail(&self, b: &str) -> bool {
        self.fails(Check::NodeToPod, Kind::Http, Source::Host(b.into()), Target::Pod(b.into()))
            || self.fails(Check::PodToPod, Kind::Http, Source::Pod(b.into()), Target::Pod(b.into()))
    }
    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

fn route_hint(f: &Facts, on: &str, to: &str) -> String {
    let (cidr, gw, ip, os) = match (f.node(on), f.node(to)) {
        (Some(o), Some(t)) => (
            t.pod_cidr.map(|c| c.to_string()).unwrap_or_else(|| "(no pod CIDR)".into()),
            t.gateway().map(|g| g.to_string()).unwrap_or_else(|| "<a pod IP>".into()),
            t.ip.to_string(),
            o.os,
        ),
        _ => ("?".into(), "?".into(), "?".into(), NodeOs::Linux),
    };
    let check = match os {
        NodeOs::Linux => format!("`ip route get {gw}` on {on} should say `via {ip}`"),
        NodeOs::Windows => format!("`route print {gw}` on {on} should show {cidr} via {ip}"),
    };
    format!(
        "missing or wrong host-gw route on {on} to {to}'s pod CIDR {cidr} (via {ip}): {on} → pods on {to} fails \
         while node ping {on} → {to} and {to}'s own pods pass; {check}; run `wkjoin routes` on {on}"
    )
}

/// Fills `hint` on every failed cell and returns the hints grouped by text, in first-seen order. `local` is the
/// machine running wkjoin when `--local` cells ran.
pub fn diagnose(results: &mut [CellResult], nodes: &[NodeInfo], local: Option<&LocalMachine>) -> Vec<Hint> {
    let by_key = results
        .iter()
        .map(|r| ((r.cell.check, r.cell.kind, r.cell.source.clone(), r.cell.target.clone()), r.result))
        .collect();
    let mut f = Facts { nodes, by_key, missing_routes: BTreeSet::new(), local };
    // Evidence for routes: host → pod (the reply goes to a node IP, so only the sender's route matters) and
    // gateway → node (the reply goes to the gateway's pod CIDR, so only the receiver's route matters).
    let mut missing = BTreeSet::new();
    for r in results.iter().filter(|r| r.result == Verdict::Fail && r.cell.crosses_nodes()) {
        let (a, b) = (r.cell.source.node().unwrap_or_default(), r.cell.target.node());
        let pair = match (&r.cell.check, &r.cell.source) {
            (Check::NodeToPod, Source::Host(_)) => (a, b),
            (Check::GatewayPing, Source::Gateway(_)) => (b, a),
            _ => continue,
        };
        if !f.node_ping_fails(pair.0, pair.1) && !f.node_ping_fails(pair.1, pair.0) && !f.local_pods_fail(pair.1) {
            missing.insert((pair.0.to_string(), pair.1.to_string()));
        }
    }
    f.missing_routes = missing;

    let mut hints: Vec<Hint> = Vec::new();
    for r in results.iter_mut() {
        if r.result != Verdict::Fail {
            continue;
        }
        // a hint set while running (e.g. from the pod's own reason) is more specific than a pattern
        let text = r.hint.clone().unwrap_or_else(|| hint_for(&f, &r.cell.check, &r.cell.source, &r.cell.target));
        match hints.iter_mut().find(|h| h.text == text) {
            Some(h) => h.cells.push(r.cell.id.clone()),
            None => hints.push(Hint { text: text.clone(), cells: vec![r.cell.id.clone()] }),
        }
        r.hint = Some(text);
    }
    hints
}

/// `--local` cells: this machine is outside the pods' world, so what it lacks is its own route or kube-proxy.
fn local_hint(f: &Facts, check: Check, target: &Target) -> String {
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

fn hint_for(f: &Facts, check: &Check, source: &Source, target: &Target) -> String {
    if *source == Source::Local {
        return local_hint(f, *check, target);
    }
    let a = source.node().unwrap_or_default();
    let b = target.node();
    let cross = a != b;
    let ip_of = |n: &str| f.node(n).map(|x| x.ip.to_string()).unwrap_or_default();

    if *check == Check::NodePing {
        return format!(
            "node network: {a} cannot ping {b} ({}): check the node's InternalIP (`kubectl get node {b} -o wide`) \
             and that ICMP echo is allowed (Windows: `New-NetFirewallRule -DisplayName ICMPv4 -Protocol ICMPv4 \
             -IcmpType 8 -Action Allow`)",
            ip_of(b)
        );
    }
    if cross && (f.node_ping_fails(a, b) || f.node_ping_fails(b, a)) {
        return format!("{a} and {b} cannot ping each other on the node network: fix that first (see node-ping)");
    }
    let same_node_pod_net = !cross
        && matches!(check, Check::PodToPod | Check::NodeToPod | Check::GatewayPing)
        && !matches!(source, Source::Gateway(_));
    if same_node_pod_net {
        return format!(
            "the pod network on {a} itself is broken (pods on {a} unreachable from {a}): check the bridge \
             (`ip addr show cbr0`; Windows: the vEthernet (cbr0) host endpoint), the CNI config and the kubelet \
             log on {a}; fix this before cross-node cells"
        );
    }
    // Routes: which (on, to) pairs this cell depends on.
    let mut needs: Vec<(String, String)> = Vec::new();
    if cross && *check != Check::Hostport {
        if target.on_pod_network() || matches!(target, Target::Gateway(_)) {
            needs.push((a.to_string(), b.to_string()));
        }
        if matches!(source, Source::Pod(_) | Source::Gateway(_)) {
            needs.push((b.to_string(), a.to_string()));
        }
    }
    if *check == Check::ServiceDns {
        // The DNS server's node is unknown here; any node that cannot answer pods on `a` is a suspect.
        needs.extend(f.missing_routes.iter().filter(|(_, to)| to == a).cloned());
    }
    let known: Vec<&(String, String)> = needs.iter().filter(|p| f.missing_routes.contains(*p)).collect();
    if let Some((on, to)) = known.first() {
        let mut text = route_hint(f, on, to);
        if *check == Check::ServiceDns {
            text.push_str(" (replies from the cluster DNS to pods on this node cross that route)");
        }
        return text;
    }
    match check {
        Check::ServiceFromNode | Check::ServiceFromPod => {
            let direct = if *check == Check::ServiceFromNode {
                f.passes(Check::NodeToPod, Kind::Http, Source::Host(a.into()), Target::Pod(b.into()))
            } else {
                f.passes(Check::PodToPod, Kind::Http, Source::Pod(a.into()), Target::Pod(b.into()))
            };
            if direct {
                return format!(
                    "the Service does not answer from {a} although its pod on {b} does (by pod IP): kube-proxy on \
                     {a} is not running or not programming Services; check its log and `wkjoin status` on {a} \
                     (Windows: KUBE_NETWORK must name the pod network)"
                );
            }
        }
        Check::ServiceDns
            if f.fails(Check::ServiceFromPod, Kind::Http, Source::Pod(a.into()), Target::Service(b.into()))
                && f.passes(Check::PodToPod, Kind::Http, Source::Pod(a.into()), Target::Pod(b.into())) =>
        {
            return format!(
                "cluster DNS from pods on {a} fails, and so do Services by ClusterIP from {a} while the pods answer \
                 by IP: the cluster DNS is a Service too, and kube-proxy on {a} is not running or not programming \
                 Services; check its log and `wkjoin status` on {a}"
            );
        }
        Check::ServiceDns
            if f.passes(Check::ServiceFromPod, Kind::Http, Source::Pod(a.into()), Target::Service(b.into())) =>
        {
            return format!(
                "cluster DNS: the Service answers by ClusterIP from pods on {a} but its name does not resolve: \
                     check the kubelet's --cluster-dns and --cluster-domain on {a} and the kube-dns Service and its \
                     endpoints (Windows pods need the FQDN)"
            );
        }
        Check::Hostport if f.passes(Check::NodeToPod, Kind::Http, Source::Host(a.into()), Target::Pod(b.into())) => {
            return format!(
                "hostPort on {b}: the pod answers by its IP but not on the node's port: the CNI config on {b} \
                     lacks the portmap plugin with capabilities.portMappings (Windows: portMappings in win-bridge)"
            );
        }
        Check::GatewayPing if !cross => {
            return format!(
                "{a} cannot reach its own pod gateway: the bridge has no address yet or is down (`ip addr show \
                 cbr0`; Windows: vEthernet (cbr0))"
            );
        }
        _ => {}
    }
    if cross && (target.on_pod_network() || matches!(source, Source::Pod(_) | Source::Gateway(_))) {
        return format!(
            "traffic between {a} and pods on {b} fails while node ping passes: check the host-gw routes to each \
             other's pod CIDRs on both nodes (`wkjoin routes` on {a} and {b}) and that forwarding is enabled"
        );
    }
    "no known pattern: see the command and its output".to_string()
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::nodes;
    use super::super::matrix::{Selection, matrix};
    use super::*;

    fn run(n: usize, fails: &[&str]) -> (Vec<CellResult>, Vec<Hint>) {
        run_with(n, fails, None)
    }

    fn run_with(n: usize, fails: &[&str], local: Option<LocalMachine>) -> (Vec<CellResult>, Vec<Hint>) {
        let ns = nodes(n);
        let mut results: Vec<CellResult> = matrix(&ns, &Selection { local: local.clone(), ..Default::default() })
            .into_iter()
            .map(|c| {
                let v = if fails.iter().any(|f| c.id.contains(f)) { Verdict::Fail } else { Verdict::Pass };
                CellResult::new(c, v)
            })
            .collect();
        let hints = diagnose(&mut results, &ns, local.as_ref());
        (results, hints)
    }

    fn hint<'a>(results: &'a [CellResult], id: &str) -> &'a str {
        results.iter().find(|r| r.cell.id == id).unwrap_or_else(|| panic!("{id}")).hint.as_deref().unwrap_or("")
    }

    /// (failing cells, cell to look at, words its hint must contain)
    #[test]
    fn hint_rules() {
        let table: &[(&[&str], &str, &[&str])] = &[
            // a blackhole route on the master to worker-1's pods
            (
                &[
                    "host:master->pod:worker-1",
                    "pod:master->pod:worker-1",
                    "pod:worker-1->pod:master",
                    "gateway:worker-1->node:master",
                    "pod:master->service:worker-1",
                    "host:master->service:worker-1",
                    "pod:worker-1->service:master",
                    "pod:worker-1->dns:worker-1",
                ],
                "pod-to-pod/icmp/pod:worker-1->pod:master",
                &["route on master", "10.244.1.0/24", "wkjoin routes", "ip route get 10.244.1.1"],
            ),
            (
                &["host:master->pod:worker-1", "pod:master->pod:worker-1"],
                "service-dns/dns/pod:worker-1->dns:worker-1",
                &[],
            ),
            (
                &["host:master->pod:worker-1", "pod:worker-1->dns:worker-1"],
                "service-dns/dns/pod:worker-1->dns:worker-1",
                &["route on master", "cluster DNS"],
            ),
            (
                &["pod:worker-1->dns:worker-1"],
                "service-dns/dns/pod:worker-1->dns:worker-1",
                &["cluster DNS", "--cluster-dns"],
            ),
            (
                &["host:worker-1->service:", "pod:worker-1->service:"],
                "service-from-pod/http/pod:worker-1->service:master",
                &["kube-proxy on worker-1"],
            ),
            // kube-proxy stopped (and its rules cleaned up) on worker-1: every Service from there, DNS included
            (
                &["host:worker-1->service:", "pod:worker-1->service:", "pod:worker-1->dns:worker-1"],
                "service-dns/dns/pod:worker-1->dns:worker-1",
                &["kube-proxy on worker-1", "cluster DNS"],
            ),
            (
                &["host:worker-1->service:", "pod:worker-1->service:", "pod:worker-1->dns:worker-1"],
                "service-from-node/http/host:worker-1->service:worker-2",
                &["kube-proxy on worker-1"],
            ),
            (
                &["host:master->node:worker-1"],
                "node-ping/icmp/host:master->node:worker-1",
                &["node network", "172.30.0.11"],
            ),
            (
                &["host:master->node:worker-1", "host:master->pod:worker-1"],
                "node-to-pod/http/host:master->pod:worker-1",
                &["fix that first"],
            ),
            (&["hostport:worker-1"], "hostport/http/host:master->hostport:worker-1", &["portmap"]),
            (
                &["pod:worker-1->pod:worker-1"],
                "pod-to-pod/http/pod:worker-1->pod:worker-1",
                &["pod network on worker-1 itself"],
            ),
            (
                &["pod:master->pod:worker-1"],
                "pod-to-pod/http/pod:master->pod:worker-1",
                &["wkjoin routes` on master and worker-1"],
            ),
        ];
        for (fails, id, words) in table {
            let (results, _) = run(3, fails);
            let h = hint(&results, id);
            for w in *words {
                assert!(h.contains(w), "fails {fails:?}: hint of {id} lacks {w:?}: {h}");
            }
            if words.is_empty() {
                assert!(h.is_empty(), "{id} passed and has no hint, got {h}");
            }
        }
    }

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

    #[test]
    fn route_fault_gives_one_hint_for_all_its_cells() {
        let (results, hints) = run(
            3,
            &[
                "host:master->pod:worker-1",
                "pod:master->pod:worker-1",
                "pod:worker-1->pod:master",
                "gateway:worker-1->node:master",
            ],
        );
        let failed = results.iter().filter(|r| r.result == Verdict::Fail).count();
        assert_eq!(hints.len(), 1, "{hints:#?}");
        assert_eq!(hints[0].cells.len(), failed);
        assert!(hints[0].text.starts_with("missing or wrong host-gw route on master to worker-1"));
        assert!(results.iter().filter(|r| r.result == Verdict::Pass).all(|r| r.hint.is_none()));
    }
}
