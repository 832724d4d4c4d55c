//! Diagnosis: reads the pattern of results and explains each failure with the most likely cause and its fix.
//! Pure: the same results always give the same hints.
//!
//! The rules are in two parts: cells probed from the nodes (nodes) and from the machine running wkjoin (local).

mod local;
mod nodes;

use nodes::hint_for;

use super::matrix::{Check, Kind, LocalMachine, NodeInfo, Source, Target};
use super::report::{CellResult, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One diagnosis and the failed cells it explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    pub text: String,
    pub cells: Vec<String>,
}

struct Facts<'a> {
    nodes: &'a [NodeInfo],
    by_key: BTreeMap<(Check, Kind, Source, Target), Verdict>,
    /// (on, to): `on` has no working route to `to`'s pod CIDR, as host → pod evidence shows.
    missing_routes: BTreeSet<(String, String)>,
    /// The machine running wkjoin (`--local`).
    local: Option<&'a LocalMachine>,
}

impl Facts<'_> {
    fn get(&self, check: Check, kind: Kind, source: Source, target: Target) -> Option<Verdict> {
        self.by_key.get(&(check, kind, source, target)).copied()
    }
    fn fails(&self, check: Check, kind: Kind, source: Source, target: Target) -> bool {
        self.get(check, kind, source, target) == Some(Verdict::Fail)
    }
    fn passes(&self, check: Check, kind: Kind, source: Source, target: Target) -> bool {
        self.get(check, kind, source, target) == Some(Verdict::Pass)
    }
    fn node_ping_fails(&self, a: &str, b: &str) -> bool {
        // (a TCP ping where ICMP is known to be blocked)
        [Kind::Icmp, Kind::Tcp]
            .into_iter()
            .any(|k| self.fails(Check::NodePing, k, Source::Host(a.into()), Target::Node(b.into())))
    }
    /// Pods on `b` answer from `b` itself (so the pod network there works).
    fn local_pods_fail(&self, b: &str) -> bool {
        self.fails(Check::NodeToPod, Kind::Http, Source::Host(b.into()), Target::Pod(b.into()))
            || self.fails(Check::PodToPod, Kind::Http, Source::Pod(b.into()), Target::Pod(b.into()))
    }
    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Fills `hint` on every failed cell and returns the hints grouped by text, in first-seen order. `local` is the
/// machine running wkjoin when `--local` cells ran.
pub fn diagnose(results: &mut [CellResult], nodes: &[NodeInfo], local: Option<&LocalMachine>) -> Vec<Hint> {
    let by_key = results
        .iter()
        .map(|r| ((r.cell.check, r.cell.kind, r.cell.source.clone(), r.cell.target.clone()), r.result))
        .collect();
    let mut f = Facts { nodes, by_key, missing_routes: BTreeSet::new(), local };
    // Evidence for routes: host → pod (the reply goes to a node IP, so only the sender's route matters) and
    // gateway → node (the reply goes to the gateway's pod CIDR, so only the receiver's route matters).
    let mut missing = BTreeSet::new();
    for r in results.iter().filter(|r| r.result == Verdict::Fail && r.cell.crosses_nodes()) {
        let (a, b) = (r.cell.source.node().unwrap_or_default(), r.cell.target.node());
        let pair = match (&r.cell.check, &r.cell.source) {
            (Check::NodeToPod, Source::Host(_)) => (a, b),
            (Check::GatewayPing, Source::Gateway(_)) => (b, a),
            _ => continue,
        };
        if !f.node_ping_fails(pair.0, pair.1) && !f.node_ping_fails(pair.1, pair.0) && !f.local_pods_fail(pair.1) {
            missing.insert((pair.0.to_string(), pair.1.to_string()));
        }
    }
    f.missing_routes = missing;

    let mut hints: Vec<Hint> = Vec::new();
    for r in results.iter_mut() {
        if r.result != Verdict::Fail {
            continue;
        }
        // a hint set while running (e.g. from the pod's own reason) is more specific than a pattern
        let text = r.hint.clone().unwrap_or_else(|| hint_for(&f, &r.cell.check, &r.cell.source, &r.cell.target));
        match hints.iter_mut().find(|h| h.text == text) {
            Some(h) => h.cells.push(r.cell.id.clone()),
            None => hints.push(Hint { text: text.clone(), cells: vec![r.cell.id.clone()] }),
        }
        r.hint = Some(text);
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::nodes;
    use super::super::matrix::{Selection, matrix};
    use super::*;

    pub(super) fn run(n: usize, fails: &[&str]) -> (Vec<CellResult>, Vec<Hint>) {
        run_with(n, fails, None)
    }

    pub(super) fn run_with(n: usize, fails: &[&str], local: Option<LocalMachine>) -> (Vec<CellResult>, Vec<Hint>) {
        let ns = nodes(n);
        let mut results: Vec<CellResult> = matrix(&ns, &Selection { local: local.clone(), ..Default::default() })
            .into_iter()
            .map(|c| {
                let v = if fails.iter().any(|f| c.id.contains(f)) { Verdict::Fail } else { Verdict::Pass };
                CellResult::new(c, v)
            })
            .collect();
        let hints = diagnose(&mut results, &ns, local.as_ref());
        (results, hints)
    }

    pub(super) fn hint<'a>(results: &'a [CellResult], id: &str) -> &'a str {
        results.iter().find(|r| r.cell.id == id).unwrap_or_else(|| panic!("{id}")).hint.as_deref().unwrap_or("")
    }
    #[test]
    fn route_fault_gives_one_hint_for_all_its_cells() {
        let (results, hints) = run(
            3,
            &[
                "host:master->pod:worker-1",
                "pod:master->pod:worker-1",
                "pod:worker-1->pod:master",
                "gateway:worker-1->node:master",
            ],
        );
        let failed = results.iter().filter(|r| r.result == Verdict::Fail).count();
        assert_eq!(hints.len(), 1, "{hints:#?}");
        assert_eq!(hints[0].cells.len(), failed);
        assert!(hints[0].text.starts_with("missing or wrong host-gw route on master to worker-1"));
        assert!(results.iter().filter(|r| r.result == Verdict::Pass).all(|r| r.hint.is_none()));
    }
}
