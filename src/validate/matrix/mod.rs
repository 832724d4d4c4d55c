//! The connectivity matrix as pure values: which cells (source → target probes) exist for a set of Ready
//! nodes, and the exact command each one runs once the addresses are known.
//!
//! cell (what a cell is) → limitations (cells known not to work) → commands (what each cell runs); this module
//! computes the cells for a selection of nodes and checks.

mod cell;
mod commands;
mod limitations;

pub use cell::{Cell, Check, Kind, NodeInfo, NodeOs, Selector, Source, Target};
pub use commands::{Addresses, Probe, probe};
pub use limitations::{ICMP_BLOCKED, KUBELET_PORT, LIMITATIONS, OFF_CLUSTER_SERVICE, icmp_blocked};

use limitations::limitation;
use serde::Serialize;
use std::collections::BTreeMap;

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

#[cfg(test)]
pub(crate) mod tests {
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
}
