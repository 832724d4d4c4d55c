//! Hints for cells probed from the nodes (a host, its pod gateway, a pod): the node network first, then the pod
//! network on the node itself, then host-gw routes (as the evidence shows them missing), then kube-proxy, cluster
//! DNS and hostPort.

use super::Facts;
use super::local::local_hint;
use crate::validate::matrix::{Check, Kind, NodeOs, Source, Target};

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

pub(super) fn hint_for(f: &Facts, check: &Check, source: &Source, target: &Target) -> String {
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
    use super::super::tests::{hint, run};

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
}
