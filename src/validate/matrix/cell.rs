//! What a cell of the matrix is: the checks and probe kinds (with their stable ids and the `--only`/`--skip`
//! selectors), the nodes as the matrix sees them, and where a probe runs from and what it reaches.

use ipnet::IpNet;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The guide's checks, with stable ids (`--only`/`--skip`, JSON, JUnit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Node host ↔ node host (ICMP).
    NodePing,
    /// Each node ↔ its own pod gateway (the bridge's first address), and other nodes from that address.
    GatewayPing,
    /// The sample web pod on each node becomes Ready.
    SampleReady,
    /// Node host → sample pod IP :80.
    NodeToPod,
    /// Node host → node IP : hostPort.
    Hostport,
    /// Pod → sample pod (ICMP and HTTP), same node and across nodes.
    PodToPod,
    /// Node host → Service ClusterIP :80.
    ServiceFromNode,
    /// Pod → Service ClusterIP :80.
    ServiceFromPod,
    /// Pod → Service name (cluster DNS).
    ServiceDns,
}

impl Check {
    pub const ALL: [Check; 9] = [
        Check::NodePing,
        Check::GatewayPing,
        Check::SampleReady,
        Check::NodeToPod,
        Check::Hostport,
        Check::PodToPod,
        Check::ServiceFromNode,
        Check::ServiceFromPod,
        Check::ServiceDns,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Check::NodePing => "node-ping",
            Check::GatewayPing => "gateway-ping",
            Check::SampleReady => "sample-ready",
            Check::NodeToPod => "node-to-pod",
            Check::Hostport => "hostport",
            Check::PodToPod => "pod-to-pod",
            Check::ServiceFromNode => "service-from-node",
            Check::ServiceFromPod => "service-from-pod",
            Check::ServiceDns => "service-dns",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Icmp,
    /// A TCP connect to the kubelet port, where ICMP is known to be blocked (see `ICMP_BLOCKED`).
    Tcp,
    Http,
    Dns,
    /// Waiting for a pod to become Ready (no probe command).
    Ready,
}

impl Kind {
    pub fn id(self) -> &'static str {
        match self {
            Kind::Icmp => "icmp",
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Dns => "dns",
            Kind::Ready => "ready",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// `--only`/`--skip` values: a check id or a probe kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Check(Check),
    Kind(Kind),
}

impl FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(c) = Check::ALL.into_iter().find(|c| c.id() == s) {
            return Ok(Selector::Check(c));
        }
        if let Some(k) = [Kind::Icmp, Kind::Tcp, Kind::Http, Kind::Dns].into_iter().find(|k| k.id() == s) {
            return Ok(Selector::Kind(k));
        }
        let checks: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        Err(format!("unknown check {s:?}: use one of {}, or a probe kind: icmp, tcp, http, dns", checks.join(", ")))
    }
}

impl Selector {
    pub(super) fn matches(self, cell: &Cell) -> bool {
        match self {
            Selector::Check(c) => cell.check == c,
            Selector::Kind(k) => cell.kind == k,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOs {
    #[default]
    Linux,
    Windows,
}

/// What the matrix needs from a Ready node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub os: NodeOs,
    pub ip: IpAddr,
    pub pod_cidr: Option<IpNet>,
}

impl NodeInfo {
    /// The node's own address on its pod network: cbr0's `.1` on Linux; on Windows the L2Bridge platform
    /// reserves `.1` and the host endpoint (vEthernet) holds `.2`, as upstream's Windows CNI configs use.
    pub fn gateway(&self) -> Option<IpAddr> {
        let net = self.pod_cidr?;
        let n = match self.os {
            NodeOs::Linux => 1,
            NodeOs::Windows => 2,
        };
        match net.network() {
            IpAddr::V4(a) => Some(IpAddr::V4((u32::from(a) + n).into())),
            IpAddr::V6(a) => Some(IpAddr::V6((u128::from(a) + n as u128).into())),
        }
    }
}

/// Where a probe runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case", tag = "on", content = "node")]
pub enum Source {
    /// The node's network namespace (a hostNetwork probe pod).
    Host(String),
    /// The node's network namespace, with the pod gateway address as the source address.
    Gateway(String),
    /// A probe pod on the pod network of the node.
    Pod(String),
    /// The Kubernetes API (readiness of a pod).
    Api,
    /// The machine running wkjoin (`--local`), outside any pod.
    Local,
}

impl Source {
    pub fn node(&self) -> Option<&str> {
        match self {
            Source::Host(n) | Source::Gateway(n) | Source::Pod(n) => Some(n),
            Source::Api | Source::Local => None,
        }
    }
    /// True when the probe runs in the node's own network namespace.
    pub fn on_host(&self) -> bool {
        matches!(self, Source::Host(_) | Source::Gateway(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Host(n) => write!(f, "host {n}"),
            Source::Gateway(n) => write!(f, "gateway {n}"),
            Source::Pod(n) => write!(f, "pod {n}"),
            Source::Api => f.write_str("api"),
            Source::Local => f.write_str("local"),
        }
    }
}

/// What a probe reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case", tag = "to", content = "node")]
pub enum Target {
    /// The node's InternalIP.
    Node(String),
    /// The node's pod gateway address.
    Gateway(String),
    /// The sample web pod on the node (pod IP :80).
    Pod(String),
    /// The node's InternalIP at the sample's hostPort.
    HostPort(String),
    /// The ClusterIP of the Service in front of the node's sample pod.
    Service(String),
    /// That Service's name, through the cluster DNS.
    ServiceName(String),
    /// The sample web pod on the node becomes Ready.
    Ready(String),
}

impl Target {
    pub fn node(&self) -> &str {
        match self {
            Target::Node(n)
            | Target::Gateway(n)
            | Target::Pod(n)
            | Target::HostPort(n)
            | Target::Service(n)
            | Target::ServiceName(n)
            | Target::Ready(n) => n,
        }
    }
    /// True when the target lives on the pod network (a pod, or a Service in front of one).
    pub fn on_pod_network(&self) -> bool {
        matches!(self, Target::Pod(_) | Target::Service(_) | Target::ServiceName(_) | Target::HostPort(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::Gateway(n) => write!(f, "gateway {n}"),
            Target::Pod(n) => write!(f, "web pod {n}"),
            Target::HostPort(n) => write!(f, "hostPort {n}"),
            Target::Service(n) => write!(f, "service {n}"),
            Target::ServiceName(n) => write!(f, "dns name {n}"),
            Target::Ready(n) => write!(f, "web pod {n}"),
        }
    }
}

/// One probe of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Stable id: `<check>/<kind>/<source>-><target>`, e.g. `pod-to-pod/icmp/pod:master->pod:worker-1`.
    pub id: String,
    pub check: Check,
    pub kind: Kind,
    pub source: Source,
    pub target: Target,
    /// Set when this combination is known not to work (the reason); the cell is then not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limitation: Option<&'static str>,
}

impl Cell {
    pub(super) fn new(check: Check, kind: Kind, source: Source, target: Target) -> Cell {
        let src = match &source {
            Source::Host(n) => format!("host:{n}"),
            Source::Gateway(n) => format!("gateway:{n}"),
            Source::Pod(n) => format!("pod:{n}"),
            Source::Api => "api".to_string(),
            Source::Local => "local".to_string(),
        };
        let tgt = match &target {
            Target::Node(n) => format!("node:{n}"),
            Target::Gateway(n) => format!("gateway:{n}"),
            Target::Pod(n) | Target::Ready(n) => format!("pod:{n}"),
            Target::HostPort(n) => format!("hostport:{n}"),
            Target::Service(n) => format!("service:{n}"),
            Target::ServiceName(n) => format!("dns:{n}"),
        };
        Cell { id: format!("{check}/{kind}/{src}->{tgt}"), check, kind, source, target, limitation: None }
    }

    pub fn crosses_nodes(&self) -> bool {
        self.source.node().is_some_and(|s| s != self.target.node())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_gateway_is_dot_1_on_linux_and_the_host_endpoint_dot_2_on_windows() {
        let node = |os| NodeInfo {
            name: "n".into(),
            os,
            ip: "172.30.0.11".parse().unwrap(),
            pod_cidr: "10.244.3.0/24".parse().ok(),
        };
        assert_eq!(node(NodeOs::Linux).gateway(), "10.244.3.1".parse().ok());
        assert_eq!(node(NodeOs::Windows).gateway(), "10.244.3.2".parse().ok());
        assert_eq!(NodeInfo { pod_cidr: None, ..node(NodeOs::Windows) }.gateway(), None);
    }
}
