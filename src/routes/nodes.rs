//! What routing needs from a Kubernetes Node.

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterNode {
    pub name: String,
    pub pod_cidrs: Vec<IpNet>,
    pub internal_ips: Vec<IpAddr>,
}

/// `spec.podCIDRs` (or the older single `spec.podCIDR`) and the `InternalIP` addresses; unparsable values are
/// skipped with a warning rather than failing the whole reconcile.
pub fn from_node(node: &Node) -> ClusterNode {
    let name = node.metadata.name.clone().unwrap_or_default();
    let spec = node.spec.as_ref();
    let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if cidrs.is_empty()
        && let Some(c) = spec.and_then(|s| s.pod_cidr.clone())
    {
        cidrs.push(c);
    }
    let pod_cidrs = cidrs
        .iter()
        .filter_map(|c| match c.parse::<IpNet>() {
            Ok(n) => Some(n.trunc()),
            Err(_) => {
                tracing::warn!("node {name}: ignoring unparsable pod CIDR {c:?}");
                None
            }
        })
        .collect();
    let internal_ips = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|addrs| addrs.iter().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect())
        .unwrap_or_default();
    ClusterNode { name, pod_cidrs, internal_ips }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dual_stack_and_legacy_nodes() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "w1"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "w1"},
                {"type": "InternalIP", "address": "172.30.0.11"},
                {"type": "InternalIP", "address": "fd00::11"}
            ]}
        }))
        .unwrap();
        let c = from_node(&n);
        assert_eq!(c.pod_cidrs.len(), 2);
        assert_eq!(c.internal_ips, vec!["172.30.0.11".parse::<IpAddr>().unwrap(), "fd00::11".parse().unwrap()]);
        let legacy: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "old"}, "spec": {"podCIDR": "10.244.9.0/24"}
        }))
        .unwrap();
        assert_eq!(from_node(&legacy).pod_cidrs, vec!["10.244.9.0/24".parse::<IpNet>().unwrap()]);
    }
}
