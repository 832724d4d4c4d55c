//! Checks of the host's networking: the node services' ports are free, the cluster's ranges stay clear of the
//! node's network, the kernel forwards and filters bridged traffic (Linux), and the CNI config and kube-proxy
//! name the same network.

use super::Check;
use crate::preflight::facts::{Facts, PortState};
use crate::settings::Settings;
use ipnet::IpNet;

/// The ports the node services listen on, and who needs them.
pub const PORTS: [(u16, &str); 3] =
    [(10250, "kubelet API"), (10256, "kube-proxy health"), (10249, "kube-proxy metrics")];

pub(super) fn port_check(f: &Facts, port: u16, service: &str) -> Check {
    let name = format!("port-{port}");
    let Some(fact) = f.ports.iter().find(|p| p.port == port) else {
        return Check::skip(&name, format!("{service} port {port} was not checked"));
    };
    match &fact.state {
        PortState::Free => Check::pass(&name, format!("{service} port {port} is free")),
        PortState::InUse { holder: Some(h) } if h.program.as_ref().is_some_and(|p| f.own_programs.contains(p)) => {
            Check::pass(
                &name,
                format!(
                    "{service} port {port} is held by wkjoin's {} (pid {})",
                    h.program.as_deref().unwrap_or_default(),
                    h.pid
                ),
            )
        }
        PortState::InUse { holder: None } if f.services_started => Check::pass(
            &name,
            format!("{service} port {port} is in use; the state file says wkjoin started the node services"),
        ),
        PortState::InUse { holder } => {
            let who = match holder {
                Some(h) => format!(" by {} (pid {})", h.program.as_deref().unwrap_or("an unknown program"), h.pid),
                None => String::new(),
            };
            Check::fail(
                &name,
                format!("{service} port {port} is already in use{who}"),
                "stop the other kubelet/kube-proxy (or whatever holds it) first; `wkjoin reset` removes an earlier join",
            )
        }
        PortState::Unknown { reason } => Check::warn(
            &name,
            format!("could not check {service} port {port}: {reason}"),
            "run preflight as root/Administrator",
        ),
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub(super) fn networks(s: &Settings) -> Check {
    const NAME: &str = "networks";
    let fix = "choose --cluster-cidr and --service-cidr outside the node's network (and each other)";
    if overlaps(&s.cluster_cidr, &s.service_cidr) {
        return Check::fail(
            NAME,
            format!("cluster CIDR {} overlaps service CIDR {}", s.cluster_cidr, s.service_cidr),
            fix,
        );
    }
    let Some(node) = s.node_network else {
        return Check::warn(
            NAME,
            format!(
                "the node's network is unknown{}; cluster {} and service {} do not overlap",
                s.node_ip.map(|ip| format!(" (no interface has {ip})")).unwrap_or_default(),
                s.cluster_cidr,
                s.service_cidr
            ),
            "give --node-ip with an address of this host",
        );
    };
    for (what, net) in [("cluster CIDR", s.cluster_cidr), ("service CIDR", s.service_cidr)] {
        if overlaps(&net, &node) {
            return Check::fail(NAME, format!("{what} {net} overlaps the node's network {node}"), fix);
        }
    }
    Check::pass(
        NAME,
        format!(
            "node network {node}, cluster CIDR {} and service CIDR {} are disjoint",
            s.cluster_cidr, s.service_cidr
        ),
    )
}

pub(super) fn sysctls(f: &Facts) -> Vec<Check> {
    let value = |key: &str| f.sysctls.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    let key = "net.ipv4.ip_forward";
    out.push(match value(key) {
        Some(Some(v)) if v.trim() == "1" => Check::pass("ip-forward", format!("{key} = 1")),
        Some(Some(v)) => Check::fail(
            "ip-forward",
            format!("{key} = {}: pod traffic to other nodes is not forwarded", v.trim()),
            format!("sysctl -w {key}=1 (and persist it in /etc/sysctl.d/)"),
        ),
        Some(None) => {
            Check::fail("ip-forward", format!("{key} does not exist"), "enable IPv4 forwarding in the kernel")
        }
        None => Check::skip("ip-forward", format!("{key} was not read")),
    });
    let key = "net.bridge.bridge-nf-call-iptables";
    out.push(match value(key) {
        Some(Some(v)) if v.trim() == "1" => Check::pass("bridge-nf-call-iptables", format!("{key} = 1")),
        Some(Some(v)) => Check::warn(
            "bridge-nf-call-iptables",
            format!("{key} = {}: Service traffic between pods on the same bridge bypasses kube-proxy", v.trim()),
            format!("sysctl -w {key}=1 (and persist it in /etc/sysctl.d/)"),
        ),
        Some(None) => Check::warn(
            "bridge-nf-call-iptables",
            format!("{key} does not exist (br_netfilter is not loaded)"),
            format!(
                "modprobe br_netfilter && sysctl -w {key}=1 (persist both in /etc/modules-load.d/ and /etc/sysctl.d/)"
            ),
        ),
        None => Check::skip("bridge-nf-call-iptables", format!("{key} was not read")),
    });
    out
}

pub(super) fn network_name(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "network-name";
    if let Some(env) = &f.kube_network_env
        && env != &s.network_name
    {
        return Check::warn(
            NAME,
            format!("KUBE_NETWORK={env} in this environment, but the pod network is named {}", s.network_name),
            format!(
                "unset KUBE_NETWORK or give --network-name {env}: kube-proxy must name the same network as the CNI config"
            ),
        );
    }
    let Some(cni) = &f.cni_config else {
        return Check::skip(NAME, format!("no CNI config yet; both will be named {}", s.network_name));
    };
    match &cni.network_name {
        None => Check::warn(
            NAME,
            format!("cannot read the network name from {}: {}", cni.path, cni.error.as_deref().unwrap_or("no `name`")),
            format!("remove {} (wkjoin join writes it again) or `wkjoin reset`", cni.path),
        ),
        Some(n) if n == &s.network_name => {
            Check::pass(NAME, format!("the CNI config and kube-proxy (KUBE_NETWORK) both name network {n}"))
        }
        Some(n) => Check::fail(
            NAME,
            format!(
                "{} names network {n} but kube-proxy would be given KUBE_NETWORK={}: kube-proxy then cannot find its network",
                cni.path, s.network_name
            ),
            format!("give --network-name {n}, or `wkjoin reset` and join again"),
        ),
    }
}
