//! The nodes a run validates: the Ready nodes with an InternalIP as the matrix sees them (with notes on the ones
//! left out), and, for `--local`, this machine and the node it is.

use super::matrix::{LocalMachine, NodeInfo, NodeOs};
use k8s_openapi::api::core::v1::Node;

/// This machine, for `--local`: its OS, and the Ready node it is (one of its addresses is that node's InternalIP).
pub(super) fn local_machine(nodes: &[NodeInfo]) -> LocalMachine {
    let os = match crate::layout::Os::host() {
        crate::layout::Os::Windows => NodeOs::Windows,
        crate::layout::Os::Linux => NodeOs::Linux,
    };
    let node = nodes.iter().find(|n| crate::host::is_local_address(n.ip)).map(|n| n.name.clone());
    LocalMachine { os, node }
}

/// Reads the Ready nodes; notes on the ones left out.
pub fn node_infos(nodes: &[Node]) -> (Vec<NodeInfo>, Vec<String>) {
    let mut ready = Vec::new();
    let mut notes = Vec::new();
    for n in nodes {
        let c = crate::routes::from_node(n);
        let status = n.status.as_ref();
        let is_ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !is_ready {
            notes.push(format!("node {} is not Ready: not validated", c.name));
            continue;
        }
        let Some(ip) = c.internal_ips.iter().find(|i| i.is_ipv4()).or(c.internal_ips.first()).copied() else {
            notes.push(format!("node {} has no InternalIP: not validated", c.name));
            continue;
        };
        let os_name = status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.operating_system.clone())
            .or_else(|| n.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/os").cloned()))
            .unwrap_or_default();
        let os = if os_name == "windows" { NodeOs::Windows } else { NodeOs::Linux };
        let pod_cidr = c.pod_cidrs.iter().find(|n| n.addr().is_ipv4() == ip.is_ipv4()).copied();
        ready.push(NodeInfo { name: c.name, os, ip, pod_cidr });
    }
    ready.sort_by(|a, b| a.name.cmp(&b.name));
    (ready, notes)
}
