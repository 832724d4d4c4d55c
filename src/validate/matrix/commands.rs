//! The exact command each cell runs, once the addresses are known: for the source's OS (busybox on Linux pods,
//! PowerShell and curl.exe on Windows), and for `--local` the equivalent command of this machine.

use super::{Cell, KUBELET_PORT, Kind, NodeInfo, NodeOs, Source, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

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
mod tests {
    use super::super::tests::nodes;
    use super::super::{LocalMachine, Selection, matrix};
    use super::*;

    fn addrs(n: usize) -> Addresses {
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
