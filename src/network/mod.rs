//! The pod network as pure values: a CNI `bridge` config on Linux; on Windows an HNS L2Bridge/L2Tunnel network
//! and its win-bridge CNI config. One network name serves the CNI config and kube-proxy's `KUBE_NETWORK`.

use crate::settings::{NetworkMode, Settings, nth_address};
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

/// Windows: the win-bridge CNI config with portMappings, OutBoundNAT exceptions and ROUTE policies.
pub fn windows_cni_config(s: &Settings, pod_cidr: IpNet) -> String {
    let pod = pod_cidr.trunc();
    let mut nat_exceptions = vec![s.cluster_cidr.to_string(), s.service_cidr.to_string()];
    if let Some(mgmt) = s.node_network {
        nat_exceptions.push(mgmt.to_string());
    }
    let mut policies = vec![
        json!({ "Name": "EndpointPolicy", "Value": { "Type": "OutBoundNAT", "ExceptionList": nat_exceptions } }),
        json!({ "Name": "EndpointPolicy", "Value": { "Type": "ROUTE", "DestinationPrefix": s.service_cidr.to_string(), "NeedEncap": true } }),
    ];
    if let Some(ip) = s.node_ip {
        policies.push(json!({ "Name": "EndpointPolicy", "Value": { "Type": "ROUTE", "DestinationPrefix": format!("{ip}/32"), "NeedEncap": true } }));
    }
    let mut conf = json!({
        "cniVersion": "0.2.0",
        "name": s.network_name,
        "type": "win-bridge",
        "capabilities": { "portMappings": true, "dns": true },
        "ipam": {
            "subnet": pod.to_string(),
            "routes": [{ "GW": nth_address(pod, 2).to_string() }]
        },
        "dns": {
            "Nameservers": [s.cluster_dns.to_string()],
            "Search": [format!("svc.{}", s.cluster_domain)]
        },
        "policies": policies
    });
    if let Some(iface) = &s.interface {
        conf["master"] = json!(iface);
    }
    serde_json::to_string_pretty(&conf).expect("json") + "\n"
}
