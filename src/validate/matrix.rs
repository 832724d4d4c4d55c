//! The connectivity matrix as pure values: which cells (source → target probes) exist for a set of Ready
//! nodes, and the exact command each one runs once the addresses are known.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
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
    fn matches(self, cell: &Cell) -> bool {
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
    fn new(check: Check, kind: Kind, source: Source, target: Target) -> Cell {
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

fn limitation(check: Check, source_os: NodeOs, same_node: bool) -> Option<&'static str> {
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

/// The machine running wkjoin, for `--local` cells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalMachine {
    pub os: NodeOs,
    /// The Ready node this machine is (one of its addresses is the node's InternalIP), if any.
    pub node: Option<String>,
}

/// What to compute the matrix for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Also cells from the machine running wkjoin (`--local`).
    pub local: Option<LocalMachine>,
    /// Only cells touching this node (`--node`).
    pub focus: Option<String>,
    /// Only these checks/kinds (`--only`); empty = all.
    pub only: Vec<Selector>,
    /// Without these checks/kinds (`--skip`).
    pub skip: Vec<Selector>,
    /// Nodes whose hosts drop ICMP (`--icmp-blocked`): their ping cells are TCP connects instead.
    pub icmp_blocked: Vec<String>,
}

impl Selection {
    fn keeps(&self, cell: &Cell) -> bool {
        let focused = match &self.focus {
            None => true,
            Some(n) => cell.source.node() == Some(n) || cell.target.node() == n,
        };
        focused
            && (self.only.is_empty() || self.only.iter().any(|s| s.matches(cell)))
            && !self.skip.iter().any(|s| s.matches(cell))
    }
}

/// Every cell for these nodes, in a stable order (check, then source, then target).
pub fn matrix(nodes: &[NodeInfo], sel: &Selection) -> Vec<Cell> {
    let mut cells = Vec::new();
    let os: BTreeMap<&str, NodeOs> = nodes.iter().map(|n| (n.name.as_str(), n.os)).collect();
    for a in nodes {
        let an = || a.name.clone();
        cells.push(Cell::new(Check::SampleReady, Kind::Ready, Source::Api, Target::Ready(an())));
        cells.push(Cell::new(Check::GatewayPing, Kind::Icmp, Source::Host(an()), Target::Gateway(an())));
        cells.push(Cell::new(Check::ServiceDns, Kind::Dns, Source::Pod(an()), Target::ServiceName(an())));
        for b in nodes {
            let bn = || b.name.clone();
            if a.name != b.name {
                // pinging a node's host: TCP where ICMP is known to be blocked (the cell's kind says so)
                let ping = if icmp_blocked(b, sel).is_some() { Kind::Tcp } else { Kind::Icmp };
                cells.push(Cell::new(Check::NodePing, ping, Source::Host(an()), Target::Node(bn())));
                cells.push(Cell::new(Check::GatewayPing, ping, Source::Gateway(an()), Target::Node(bn())));
            }
            cells.push(Cell::new(Check::NodeToPod, Kind::Http, Source::Host(an()), Target::Pod(bn())));
            cells.push(Cell::new(Check::Hostport, Kind::Http, Source::Host(an()), Target::HostPort(bn())));
            cells.push(Cell::new(Check::PodToPod, Kind::Icmp, Source::Pod(an()), Target::Pod(bn())));
            cells.push(Cell::new(Check::PodToPod, Kind::Http, Source::Pod(an()), Target::Pod(bn())));
            cells.push(Cell::new(Check::ServiceFromNode, Kind::Http, Source::Host(an()), Target::Service(bn())));
            cells.push(Cell::new(Check::ServiceFromPod, Kind::Http, Source::Pod(an()), Target::Service(bn())));
        }
        if sel.local.is_some() {
            let ping = if icmp_blocked(a, sel).is_some() { Kind::Tcp } else { Kind::Icmp };
            cells.push(Cell::new(Check::NodePing, ping, Source::Local, Target::Node(an())));
            cells.push(Cell::new(Check::NodeToPod, Kind::Http, Source::Local, Target::Pod(an())));
            cells.push(Cell::new(Check::Hostport, Kind::Http, Source::Local, Target::HostPort(an())));
            cells.push(Cell::new(Check::ServiceFromNode, Kind::Http, Source::Local, Target::Service(an())));
        }
    }
    cells.retain(|c| sel.keeps(c));
    for c in &mut cells {
        if let Some(src) = c.source.node() {
            c.limitation = limitation(c.check, os[src], src == c.target.node());
        } else if let (Source::Local, Some(local)) = (&c.source, &sel.local) {
            // on a node, this machine is that node's host; off-cluster it is no node at all
            c.limitation = match &local.node {
                Some(me) => limitation(c.check, local.os, me == c.target.node()),
                None if c.check == Check::ServiceFromNode => Some(OFF_CLUSTER_SERVICE),
                None => None,
            };
        }
    }
    cells.sort_by(|x, y| (x.check, &x.source, &x.target, x.kind).cmp(&(y.check, &y.source, &y.target, y.kind)));
    cells
}

/// Addresses known once the sample is running; `None` renders as a placeholder.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub namespace: String,
    pub domain: String,
    pub host_port: u16,
    /// Per node: its sample pod's IP, and the ClusterIP of its Service.
    pub pod_ips: BTreeMap<String, IpAddr>,
    pub cluster_ips: BTreeMap<String, IpAddr>,
    /// Per node: the Service name in front of its sample pod.
    pub service_names: BTreeMap<String, String>,
    /// The OS of the machine running wkjoin (the commands of `--local` cells).
    pub local_os: NodeOs,
}

impl Addresses {
    pub fn fqdn(&self, node: &str) -> String {
        let svc = self.service_names.get(node).cloned().unwrap_or_else(|| format!("<service of {node}>"));
        format!("{svc}.{}.svc.{}", self.namespace, self.domain)
    }
}

/// The command a cell runs and what its output must contain to pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub argv: Vec<String>,
    /// A string the output must contain (e.g. the sample pod's name, the resolved ClusterIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

impl Probe {
    /// The same probe with its own HTTP timeout set to `secs` (`timeout N` on Linux, `curl.exe -m N` on Windows,
    /// `curl -m N` for `--local`).
    pub fn with_timeout(&self, secs: u64) -> Probe {
        let mut p = self.clone();
        let flag = match p.argv.first().map(String::as_str) {
            Some("timeout") => Some(0),
            Some("curl.exe" | "curl") => p.argv.iter().position(|a| a == "-m"),
            _ => None,
        };
        if let Some(i) = flag
            && i + 1 < p.argv.len()
        {
            p.argv[i + 1] = secs.to_string();
        }
        p
    }

    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| if a.contains([' ', '*']) { format!("'{a}'") } else { a.clone() })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn ip_or(ip: Option<&IpAddr>, what: &str) -> String {
    ip.map(|i| i.to_string()).unwrap_or_else(|| format!("<{what}>"))
}

fn url(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('<') { format!("[{host}]") } else { host.to_string() };
    if port == 80 { format!("http://{host}/") } else { format!("http://{host}:{port}/") }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The exact command for a cell, for the source node's OS; `None` for cells that run no command (readiness).
/// `sample_name(node)` is the sample pod's name, which its HTTP answer contains. `--local` cells get the
/// equivalent shell command of this machine's OS (wkjoin runs ping itself and speaks HTTP natively: `curl`
/// without a proxy, 5 s).
pub fn probe(
    cell: &Cell,
    nodes: &[NodeInfo],
    addrs: &Addresses,
    sample_name: &dyn Fn(&str) -> String,
) -> Option<Probe> {
    let src_os = match &cell.source {
        Source::Local => addrs.local_os,
        s => nodes.iter().find(|n| Some(n.name.as_str()) == s.node())?.os,
    };
    let local = cell.source == Source::Local;
    let tgt = nodes.iter().find(|n| n.name == cell.target.node())?;
    let windows = src_os == NodeOs::Windows;
    let ping = |dst: String, from: Option<String>| -> Probe {
        let mut argv = if windows { s(&["ping", "-n", "1", "-w", "2000"]) } else { s(&["ping", "-c", "1", "-W", "2"]) };
        if let Some(f) = from {
            argv.push(if windows { "-S" } else { "-I" }.to_string());
            argv.push(f);
        }
        argv.push(dst);
        // Windows ping exits 0 on "Destination host unreachable"; a reply has a TTL.
        Probe { argv, expect: windows.then(|| "TTL=".to_string()) }
    };
    let tcp = |dst: String| -> Probe {
        let port = KUBELET_PORT.to_string();
        if local {
            // connected natively (see local.rs); shown as the command one would type
            Probe { argv: s(&["nc", "-z", "-w", "2", &dst, &port]), expect: None }
        } else if windows {
            let ps = format!("(New-Object Net.Sockets.TcpClient).ConnectAsync('{dst}', {port}).Wait(2000)");
            Probe {
                argv: vec!["powershell".into(), "-NoProfile".into(), "-Command".into(), ps],
                expect: Some("True".into()),
            }
        } else {
            // busybox nc has no -z: `-e true` runs once connected and exits 0
            Probe { argv: s(&["nc", "-w", "2", &dst, &port, "-e", "true"]), expect: None }
        }
    };
    let http = |u: String, expect: Option<String>| -> Probe {
        let argv = if local {
            let curl = if windows { "curl.exe" } else { "curl" };
            vec![curl.into(), "-sS".into(), "-m".into(), "5".into(), "--noproxy".into(), "*".into(), u]
        } else if windows {
            vec!["curl.exe".into(), "-sS".into(), "-m".into(), "5".into(), u]
        } else {
            // busybox wget's own -T crashes in the static build; `timeout` bounds it instead.
            vec!["timeout".into(), "5".into(), "wget".into(), "-qO-".into(), u]
        };
        Probe { argv, expect }
    };
    let tn = tgt.name.as_str();
    let pod_ip = || ip_or(addrs.pod_ips.get(tn), &format!("pod IP of the web pod on {tn}"));
    let svc_ip = || ip_or(addrs.cluster_ips.get(tn), &format!("ClusterIP of the service of {tn}"));
    let hostname = || Some(format!("hostname: {}", sample_name(tn)));
    Some(match &cell.target {
        Target::Ready(_) => return None,
        Target::Node(_) if cell.kind == Kind::Tcp => tcp(tgt.ip.to_string()),
        Target::Node(_) => match &cell.source {
            Source::Gateway(g) => {
                let gw = nodes.iter().find(|n| &n.name == g).and_then(NodeInfo::gateway);
                ping(tgt.ip.to_string(), Some(ip_or(gw.as_ref(), "pod gateway")))
            }
            _ => ping(tgt.ip.to_string(), None),
        },
        Target::Gateway(_) => ping(ip_or(tgt.gateway().as_ref(), &format!("pod gateway of {tn}")), None),
        Target::Pod(_) if cell.kind == Kind::Icmp => ping(pod_ip(), None),
        Target::Pod(_) => http(url(&pod_ip(), 80), hostname()),
        Target::HostPort(_) => http(url(&tgt.ip.to_string(), addrs.host_port), hostname()),
        Target::Service(_) => http(url(&svc_ip(), 80), hostname()),
        Target::ServiceName(_) => {
            let name = addrs.fqdn(tn);
            let expect = addrs.cluster_ips.get(tn).map(|i| i.to_string());
            if windows {
                let ps = format!("(Resolve-DnsName -Type A -Name {name} -ErrorAction Stop).IPAddress");
                Probe { argv: vec!["powershell".into(), "-NoProfile".into(), "-Command".into(), ps], expect }
            } else {
                Probe { argv: vec!["nslookup".into(), name], expect }
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {

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

    use super::*;

    pub fn nodes(n: usize) -> Vec<NodeInfo> {
        (0..n)
            .map(|i| NodeInfo {
                name: if i == 0 { "master".to_string() } else { format!("worker-{i}") },
                os: NodeOs::Linux,
                ip: format!("172.30.0.{}", 10 + i).parse().unwrap(),
                pod_cidr: Some(format!("10.244.{i}.0/24").parse().unwrap()),
            })
            .collect()
    }

    fn count(cells: &[Cell], check: Check) -> usize {
        cells.iter().filter(|c| c.check == check).count()
    }

    #[test]
    fn cell_counts_grow_with_the_node_count() {
        for (n, total) in [(1usize, 9usize), (2, 34), (3, 75)] {
            let cells = matrix(&nodes(n), &Selection::default());
            // per node: ready, gateway, dns; per ordered pair: 6 (incl. same node); per distinct pair: 2
            assert_eq!(cells.len(), 3 * n + 6 * n * n + 2 * n * (n - 1), "{n} nodes");
            assert_eq!(cells.len(), total);
            assert_eq!(count(&cells, Check::NodePing), n * (n - 1));
            assert_eq!(count(&cells, Check::PodToPod), 2 * n * n);
            assert_eq!(count(&cells, Check::SampleReady), n);
            let ids: std::collections::BTreeSet<&str> = cells.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(ids.len(), cells.len(), "ids are unique");
        }
        assert!(matrix(&nodes(1), &Selection::default()).iter().all(|c| !c.crosses_nodes()));
        // --local: 4 more per node (ping, pod, hostPort, Service), all from `local`
        let local = Selection { local: Some(LocalMachine { os: NodeOs::Linux, node: None }), ..Default::default() };
        for (n, total) in [(1usize, 13usize), (2, 42), (3, 87)] {
            let cells = matrix(&nodes(n), &local);
            assert_eq!(cells.len(), total, "{n} nodes with --local");
            let from_local: Vec<&Cell> = cells.iter().filter(|c| c.source == Source::Local).collect();
            assert_eq!(from_local.len(), 4 * n);
            assert_eq!(count(&cells, Check::NodePing), n * (n - 1) + n);
            assert!(from_local.iter().all(|c| c.id.contains("/local->") && !c.crosses_nodes()));
            let ids: std::collections::BTreeSet<&str> = cells.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(ids.len(), cells.len(), "ids are unique");
        }
        let ids: Vec<String> = matrix(&nodes(2), &local)
            .into_iter()
            .filter(|c| c.source == Source::Local && c.target.node() == "worker-1")
            .map(|c| c.id)
            .collect();
        assert_eq!(
            ids,
            [
                "node-ping/icmp/local->node:worker-1",
                "node-to-pod/http/local->pod:worker-1",
                "hostport/http/local->hostport:worker-1",
                "service-from-node/http/local->service:worker-1"
            ]
        );
    }

    #[test]
    fn local_cells_follow_focus_only_skip_and_the_off_cluster_decision() {
        let off = LocalMachine { os: NodeOs::Linux, node: None };
        let sel = Selection { focus: Some("worker-2".into()), local: Some(off.clone()), ..Default::default() };
        let local: Vec<Cell> = matrix(&nodes(3), &sel).into_iter().filter(|c| c.source == Source::Local).collect();
        assert_eq!(local.len(), 4);
        assert!(local.iter().all(|c| c.target.node() == "worker-2"), "{local:?}");
        let sel = Selection {
            only: vec!["node-to-pod".parse().unwrap(), "node-ping".parse().unwrap()],
            skip: vec!["icmp".parse().unwrap()],
            local: Some(off.clone()),
            ..Default::default()
        };
        let cells = matrix(&nodes(2), &sel);
        assert_eq!(cells.iter().filter(|c| c.source == Source::Local).count(), 2, "only node-to-pod from local");
        // off-cluster: ClusterIPs are known not to answer; everything else runs
        let all = matrix(&nodes(2), &Selection { local: Some(off), ..Default::default() });
        for c in all.iter().filter(|c| c.source == Source::Local) {
            let want = (c.check == Check::ServiceFromNode).then_some(OFF_CLUSTER_SERVICE);
            assert_eq!(c.limitation, want, "{}", c.id);
        }
        // on a node, this machine is that node's host: a Linux node has no limitation; a Windows node has the
        // table's (no ClusterIPs from the host, no hairpin to its own hostPort)
        let on = |os| LocalMachine { os, node: Some("worker-1".into()) };
        let lin = matrix(&nodes(2), &Selection { local: Some(on(NodeOs::Linux)), ..Default::default() });
        assert!(lin.iter().filter(|c| c.source == Source::Local).all(|c| c.limitation.is_none()));
        let win = matrix(&nodes(2), &Selection { local: Some(on(NodeOs::Windows)), ..Default::default() });
        let lim = |id: &str| win.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id}")).limitation;
        assert!(lim("service-from-node/http/local->service:master").is_some_and(|l| l.contains("Windows node")));
        assert!(lim("hostport/http/local->hostport:worker-1").is_some());
        assert!(lim("hostport/http/local->hostport:master").is_none());
        assert!(lim("node-to-pod/http/local->pod:master").is_none());
    }

    #[test]
    fn focus_keeps_only_cells_touching_the_node() {
        let sel = Selection { focus: Some("worker-2".into()), ..Default::default() };
        let cells = matrix(&nodes(3), &sel);
        assert!(!cells.is_empty());
        assert!(cells.iter().all(|c| c.source.node() == Some("worker-2") || c.target.node() == "worker-2"));
        assert!(cells.iter().any(|c| c.id == "node-ping/icmp/host:master->node:worker-2"));
        assert!(cells.iter().any(|c| c.id == "node-ping/icmp/host:worker-2->node:worker-1"));
        assert!(!cells.iter().any(|c| c.id == "node-ping/icmp/host:master->node:worker-1"));
    }

    #[test]
    fn only_and_skip_take_check_ids_and_kinds() {
        let all = matrix(&nodes(2), &Selection::default());
        let sel = |only: &[&str], skip: &[&str]| Selection {
            focus: None,
            local: None,
            only: only.iter().map(|s| s.parse().unwrap()).collect(),
            skip: skip.iter().map(|s| s.parse().unwrap()).collect(),
            ..Default::default()
        };
        let pings = matrix(&nodes(2), &sel(&["node-ping"], &[]));
        assert_eq!(pings.len(), 2);
        let icmp = matrix(&nodes(2), &sel(&["icmp"], &[]));
        assert!(icmp.iter().all(|c| c.kind == Kind::Icmp));
        assert_eq!(icmp.len(), all.iter().filter(|c| c.kind == Kind::Icmp).count());
        let no_dns = matrix(&nodes(2), &sel(&[], &["service-dns", "hostport"]));
        assert_eq!(no_dns.len(), all.len() - 2 - 4);
        let pod_http = matrix(&nodes(2), &sel(&["pod-to-pod"], &["icmp"]));
        assert!(pod_http.iter().all(|c| c.check == Check::PodToPod && c.kind == Kind::Http));
        assert_eq!(pod_http.len(), 4);
        let err = "bogus".parse::<Selector>().unwrap_err();
        assert!(err.contains("node-ping") && err.contains("icmp"), "{err}");
    }

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

    pub fn addrs(n: usize) -> Addresses {
        let ns = nodes(n);
        Addresses {
            namespace: "wkjoin-validate-abc".into(),
            domain: "cluster.local".into(),
            host_port: 4444,
            pod_ips: ns
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), format!("10.244.{i}.5").parse().unwrap()))
                .collect(),
            cluster_ips: ns
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), format!("10.96.1.{i}").parse().unwrap()))
                .collect(),
            service_names: ns.iter().enumerate().map(|(i, n)| (n.name.clone(), format!("web-{i}"))).collect(),
            local_os: NodeOs::Linux,
        }
    }

    #[test]
    fn commands_are_exact_per_os() {
        let mut ns = nodes(2);
        let a = addrs(2);
        let name = |n: &str| format!("web-{n}");
        let cells = matrix(&ns, &Selection::default());
        let cmd = |ns: &[NodeInfo], id: &str| {
            let c = cells.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id}"));
            probe(c, ns, &a, &name).map(|p| (p.display(), p.expect))
        };
        assert_eq!(
            cmd(&ns, "gateway-ping/icmp/gateway:master->node:worker-1").unwrap().0,
            "ping -c 1 -W 2 -I 10.244.0.1 172.30.0.11"
        );
        assert_eq!(
            cmd(&ns, "pod-to-pod/http/pod:master->pod:worker-1").unwrap(),
            ("timeout 5 wget -qO- http://10.244.1.5/".into(), Some("hostname: web-worker-1".into()))
        );
        assert_eq!(
            cmd(&ns, "hostport/http/host:master->hostport:worker-1").unwrap().0,
            "timeout 5 wget -qO- http://172.30.0.11:4444/"
        );
        assert_eq!(
            cmd(&ns, "service-dns/dns/pod:worker-1->dns:worker-1").unwrap(),
            ("nslookup web-1.wkjoin-validate-abc.svc.cluster.local".into(), Some("10.96.1.1".into()))
        );
        assert_eq!(cmd(&ns, "sample-ready/ready/api->pod:master"), None);
        ns[1].os = NodeOs::Windows;
        assert_eq!(
            cmd(&ns, "pod-to-pod/icmp/pod:worker-1->pod:master").unwrap(),
            ("ping -n 1 -w 2000 10.244.0.5".into(), Some("TTL=".into()))
        );
        assert_eq!(
            cmd(&ns, "service-from-pod/http/pod:worker-1->service:master").unwrap().0,
            "curl.exe -sS -m 5 http://10.96.1.0/"
        );
        let quick = |id: &str| {
            let c = cells.iter().find(|c| c.id == id).unwrap();
            probe(c, &ns, &a, &name).unwrap().with_timeout(1).display()
        };
        assert_eq!(quick("service-from-pod/http/pod:worker-1->service:master"), "curl.exe -sS -m 1 http://10.96.1.0/");
        assert_eq!(
            quick("service-from-pod/http/pod:master->service:worker-1"),
            "timeout 1 wget -qO- http://10.96.1.1/"
        );
        assert_eq!(quick("pod-to-pod/icmp/pod:master->pod:worker-1"), "ping -c 1 -W 2 10.244.1.5");
        // --local: this machine's ping; HTTP as the equivalent curl (wkjoin speaks it natively, no proxy)
        let mut a = addrs(2);
        let sel = Selection { local: Some(LocalMachine { os: NodeOs::Linux, node: None }), ..Default::default() };
        let local = matrix(&ns, &sel);
        let lcmd = |a: &Addresses, id: &str| {
            let c = local.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id}"));
            probe(c, &ns, a, &name).map(|p| (p.display(), p.expect))
        };
        assert_eq!(lcmd(&a, "node-ping/icmp/local->node:master").unwrap(), ("ping -c 1 -W 2 172.30.0.10".into(), None));
        // worker-1 is a Windows node here: its firewall drops ICMP, so this machine connects to its kubelet
        assert_eq!(
            lcmd(&a, "node-ping/tcp/local->node:worker-1").unwrap(),
            ("nc -z -w 2 172.30.0.11 10250".into(), None)
        );
        assert_eq!(
            lcmd(&a, "node-to-pod/http/local->pod:worker-1").unwrap(),
            ("curl -sS -m 5 --noproxy '*' http://10.244.1.5/".into(), Some("hostname: web-worker-1".into()))
        );
        assert_eq!(
            lcmd(&a, "hostport/http/local->hostport:master").unwrap().0,
            "curl -sS -m 5 --noproxy '*' http://172.30.0.10:4444/"
        );
        let svc = local.iter().find(|c| c.id == "service-from-node/http/local->service:worker-1").unwrap();
        assert_eq!(
            probe(svc, &ns, &a, &name).unwrap().with_timeout(2).display(),
            "curl -sS -m 2 --noproxy '*' http://10.96.1.1/"
        );
        // the local OS decides, not the target's (worker-1 is Windows here)
        a.local_os = NodeOs::Windows;
        assert_eq!(
            lcmd(&a, "node-ping/icmp/local->node:master").unwrap(),
            ("ping -n 1 -w 2000 172.30.0.10".into(), Some("TTL=".into()))
        );
        assert_eq!(
            lcmd(&a, "service-from-node/http/local->service:master").unwrap().0,
            "curl.exe -sS -m 5 --noproxy '*' http://10.96.1.0/"
        );
        // unresolved addresses render as placeholders
        let c = cells.iter().find(|c| c.id == "node-to-pod/http/host:master->pod:worker-1").unwrap();
        let p = probe(c, &ns, &Addresses::default(), &name).unwrap();
        assert!(p.display().contains("<pod IP of the web pod on worker-1>"), "{}", p.display());
    }
}
