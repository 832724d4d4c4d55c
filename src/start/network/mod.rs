//! The pod network as pure values: a CNI `bridge` config on Linux; on Windows an HNS L2Bridge/L2Tunnel network
//! and its win-bridge CNI config. One network name serves the CNI config and kube-proxy's `KUBE_NETWORK`.

use crate::settings::{NetworkMode, Runtime, Settings, nth_address};
use ipnet::IpNet;
use serde_json::json;

/// File name of the CNI config wkjoin writes into the CNI config directory.
pub const CNI_CONF_FILE: &str = "10-wkjoin.conflist";

/// Linux: `bridge` (`cbr0`, host-local IPAM over the pod CIDR, the bridge as gateway) + `portmap` for hostPort.
pub fn linux_cni_config(s: &Settings, pod_cidr: IpNet) -> String {
    let conf = json!({
        "cniVersion": "0.4.0",
        "name": s.network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cbr0",
                "isGateway": true,
                // Host-gateway routing: pod traffic to other nodes keeps its pod source address.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.trunc().to_string() }]],
                    "routes": [{ "dst": if pod_cidr.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" } }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&conf).expect("json") + "\n"
}

fn hns_type(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::L2bridge => "L2Bridge",
        NetworkMode::L2tunnel => "L2Tunnel",
    }
}

/// Windows: the HCN (schema v2) network over the pod CIDR; the platform reserves `.1` as the gateway.
pub fn hns_network(s: &Settings, pod_cidr: IpNet) -> String {
    let pod = pod_cidr.trunc();
    let mut net = json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": s.network_name,
        "Type": hns_type(s.network_mode),
        "Ipams": [{
            "Type": "Static",
            "Subnets": [{
                "IpAddressPrefix": pod.to_string(),
                "Routes": [{ "NextHop": nth_address(pod, 1).to_string(), "DestinationPrefix": "0.0.0.0/0" }]
            }]
        }]
    });
    if let Some(iface) = &s.interface {
        net["Policies"] = json!([{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": iface } }]);
    }
    serde_json::to_string_pretty(&net).expect("json") + "\n"
}

/// The host endpoint on the pod network (`<podCIDR>.2`), named after the network, as in the guide.
pub fn host_endpoint(s: &Settings, pod_cidr: IpNet) -> (String, std::net::IpAddr) {
    (format!("{}_ep", s.network_name), nth_address(pod_cidr.trunc(), 2))
}

/// Windows: a CNI config list with one `win-bridge` plugin (containernetworking/plugins), in the shape win-bridge
/// reads (see docs/windows.md for the upstream files):
/// - containerd: the HCN (v2) API, `apiVersion: 2`, policies with `Settings` (`OutBoundNAT` exceptions, `SDNRoute`);
/// - Docker (the kubelet's dockershim, Kubernetes < 1.24): the HNS (v1) API and its flat policies (`ExceptionList`,
///   `ROUTE`).
///
/// `host-local` hands out addresses from `.3` on: the platform reserves `.1`, and `.2` is the host endpoint that
/// win-bridge makes every pod's gateway ("needs to be x.2"). The network name is the list's `name`, which libcni
/// gives the plugin: win-bridge looks up the HNS network by it, and kube-proxy's `KUBE_NETWORK` names it too.
pub fn windows_cni_config(s: &Settings, pod_cidr: IpNet) -> String {
    let pod = pod_cidr.trunc();
    let hcn = s.runtime == Runtime::Containerd;
    // Traffic to these keeps the pod's address; the rest leaves NATed to the node's address.
    let mut nat_exceptions = vec![s.cluster_cidr.to_string(), s.service_cidr.to_string()];
    if let Some(mgmt) = s.node_network {
        nat_exceptions.push(mgmt.to_string());
    }
    // Sent to the host (encapsulated to the host vNIC) instead of out on the wire: Service IPs for kube-proxy's
    // load balancers, and the node's own address.
    let mut host_routes = vec![s.service_cidr.to_string()];
    if let Some(ip) = s.node_ip {
        host_routes.push(IpNet::from(ip).to_string());
    }
    let policy = |value: serde_json::Value| json!({ "name": "EndpointPolicy", "value": value });
    let mut policies = Vec::new();
    if hcn {
        policies.push(policy(json!({ "Type": "OutBoundNAT", "Settings": { "Exceptions": nat_exceptions } })));
        for dst in host_routes {
            policies.push(policy(
                json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": dst, "NeedEncap": true } }),
            ));
        }
    } else {
        policies.push(policy(json!({ "Type": "OutBoundNAT", "ExceptionList": nat_exceptions })));
        for dst in host_routes {
            policies.push(policy(json!({ "Type": "ROUTE", "DestinationPrefix": dst, "NeedEncap": true })));
        }
    }
    let mut plugin = json!({ "type": "win-bridge" });
    if hcn {
        plugin["apiVersion"] = json!(2);
    }
    plugin["capabilities"] = json!({ "portMappings": true, "dns": true });
    plugin["ipam"] = json!({
        "type": "host-local",
        "subnet": pod.to_string(),
        "rangeStart": nth_address(pod, 3).to_string(),
        "gateway": nth_address(pod, 2).to_string()
    });
    // Used when the runtime passes no DNS of its own (the `dns` capability carries the pod's).
    plugin["dns"] = json!({
        "nameservers": [s.cluster_dns.to_string()],
        "search": [format!("svc.{}", s.cluster_domain)]
    });
    plugin["policies"] = json!(policies);
    let conf = json!({
        "cniVersion": "0.3.1",
        "name": s.network_name,
        "plugins": [plugin]
    });
    serde_json::to_string_pretty(&conf).expect("json") + "\n"
}

/// The node's own pod CIDR, as the controller manager assigned it, checked before it goes into the CNI config or
/// an HNS network: cluster data is not trusted to be sane.
pub fn check_pod_cidr(s: &Settings, cidr: IpNet) -> Result<(), String> {
    let overlaps = |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
    let cluster_known = !matches!(s.origins.cluster_cidr, None | Some(crate::settings::Origin::Default));
    let same_family = cidr.addr().is_ipv4() == s.cluster_cidr.addr().is_ipv4();
    if cidr.prefix_len() == 0 {
        return Err(format!("node {}'s pod CIDR {cidr} is every address", s.node_name));
    }
    if s.node_ip.is_some_and(|ip| cidr.contains(&ip)) {
        return Err(format!("node {}'s pod CIDR {cidr} covers the node's own address", s.node_name));
    }
    if overlaps(&cidr, &s.service_cidr) {
        return Err(format!("node {}'s pod CIDR {cidr} overlaps the service CIDR {}", s.node_name, s.service_cidr));
    }
    if cluster_known && same_family && !s.cluster_cidr.contains(&cidr) {
        return Err(format!("node {}'s pod CIDR {cidr} is outside the cluster CIDR {}", s.node_name, s.cluster_cidr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Os;
    use crate::settings::{HostFacts, Origin, PartialSettings, resolve};
    use serde_json::Value;

    fn windows(runtime: Runtime) -> Value {
        let p = PartialSettings {
            node_name: Some("win-1".into()),
            node_ip: Some("172.30.0.11".parse().unwrap()),
            runtime: Some(runtime),
            ..Default::default()
        };
        let s = resolve(Os::Windows, None, &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap();
        serde_json::from_str(&windows_cni_config(&s, "10.244.1.0/24".parse().unwrap())).unwrap()
    }

    // The shapes only; tests/upstream.rs has win-bridge's own code read them.
    #[test]
    fn windows_cni_config_is_a_list_in_the_runtimes_hns_api() {
        for (runtime, api, route) in [(Runtime::Containerd, Some(2), "SDNRoute"), (Runtime::Docker, None, "ROUTE")] {
            let c = windows(runtime);
            assert_eq!(c["name"], "cbr0");
            let plugins = c["plugins"].as_array().unwrap();
            assert_eq!(plugins.len(), 1);
            let p = &plugins[0];
            assert_eq!((p["type"].as_str(), p["apiVersion"].as_i64()), (Some("win-bridge"), api));
            assert_eq!(p["ipam"]["type"], "host-local");
            assert_eq!(p["ipam"]["rangeStart"], "10.244.1.3", "{runtime:?}: .2 is the host endpoint");
            let types: Vec<&str> =
                p["policies"].as_array().unwrap().iter().map(|x| x["value"]["Type"].as_str().unwrap()).collect();
            assert_eq!(types, ["OutBoundNAT", route, route], "{runtime:?}");
        }
    }
}
