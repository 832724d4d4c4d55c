//! Desired vs actual: what to add, replace and delete among wkjoin's own routes, and which foreign routes
//! stand in the way (reported, never touched).

use super::{Route, RouteChange, TableRoute};
use serde::Serialize;
use std::collections::HashMap;

/// A desired route that a route wkjoin does not own already claims with another next hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub desired: Route,
    pub foreign: Route,
    pub origin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteDiff {
    pub changes: Vec<RouteChange>,
    pub conflicts: Vec<Conflict>,
    /// Desired routes already in place (ours, or a foreign route with the same next hop).
    pub unchanged: usize,
}

type Key = (ipnet::IpNet, Option<String>);

fn key(r: &Route) -> Key {
    (r.destination, r.interface.clone())
}

/// Matches routes by destination and interface (Windows keeps one route per NIC for the same prefix).
pub fn diff(desired: &[Route], actual: &[TableRoute]) -> RouteDiff {
    let mut ours: HashMap<Key, &Route> = HashMap::new();
    let mut foreign: HashMap<ipnet::IpNet, Vec<&TableRoute>> = HashMap::new();
    for t in actual {
        if t.owned {
            ours.insert(key(&t.route), &t.route);
        } else {
            foreign.entry(t.route.destination).or_default().push(t);
        }
    }
    let mut d = RouteDiff::default();
    for want in desired {
        if let Some(have) = ours.remove(&key(want)) {
            // A route asked for without a metric has the kernel's (1024 for IPv6): that is not a difference.
            let metric_ok = want.metric.is_none() || have.metric == want.metric;
            if have.destination == want.destination && have.gateway == want.gateway && metric_ok {
                d.unchanged += 1;
            } else {
                d.changes.push(RouteChange::Replace { from: have.clone(), to: want.clone() });
            }
            continue;
        }
        match foreign.get(&want.destination) {
            Some(others) if others.iter().any(|t| t.route.gateway == want.gateway) => d.unchanged += 1,
            Some(others) => d.conflicts.push(Conflict {
                desired: want.clone(),
                foreign: others[0].route.clone(),
                origin: others[0].origin.clone(),
            }),
            None => d.changes.push(RouteChange::Add(want.clone())),
        }
    }
    let mut stale: Vec<&Route> = ours.into_values().collect();
    stale.sort();
    d.changes.extend(stale.into_iter().map(|r| RouteChange::Delete(r.clone())));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Route {
        let parts: Vec<&str> = s.split_whitespace().collect();
        Route::via(parts[0].parse().unwrap(), parts[1].parse().unwrap(), "eth0")
    }

    fn t(s: &str, owned: bool) -> TableRoute {
        TableRoute { route: r(s), owned, origin: if owned { "proto 147".into() } else { "static".into() } }
    }

    #[test]
    fn a_kernel_metric_on_a_route_asked_for_without_one_is_no_change() {
        let want = r("fd00:244::/64 fd00:31::10");
        let have = TableRoute { route: want.clone().with_metric(1024), owned: true, origin: "proto 147".into() };
        let d = diff(std::slice::from_ref(&want), &[have]);
        assert_eq!((d.changes.len(), d.unchanged), (0, 1), "{d:?}");
        // A metric wkjoin asks for (Windows) still counts.
        let d = diff(
            &[want.clone().with_metric(300)],
            &[TableRoute { route: want.with_metric(250), owned: true, origin: String::new() }],
        );
        assert_eq!(d.changes.len(), 1, "{d:?}");
    }

    #[test]
    fn adds_replaces_deletes_only_owned_and_reports_conflicts() {
        let desired = [
            r("10.244.1.0/24 172.30.0.11"),
            r("10.244.2.0/24 172.30.0.12"),
            r("10.244.3.0/24 172.30.0.13"),
            r("10.244.4.0/24 172.30.0.14"),
            r("10.244.5.0/24 172.30.0.15"),
        ];
        let actual = [
            t("10.244.1.0/24 172.30.0.11", true),  // in place
            t("10.244.2.0/24 172.30.0.99", true),  // next hop changed
            t("10.244.4.0/24 172.30.0.99", false), // foreign, different next hop: conflict
            t("10.244.5.0/24 172.30.0.15", false), // foreign, same next hop: fine
            t("10.244.9.0/24 172.30.0.19", true),  // node gone
            t("10.244.8.0/24 172.30.0.18", false), // foreign, unrelated: untouched
        ];
        let d = diff(&desired, &actual);
        assert_eq!(
            d.changes,
            [
                RouteChange::Replace { from: r("10.244.2.0/24 172.30.0.99"), to: r("10.244.2.0/24 172.30.0.12") },
                RouteChange::Add(r("10.244.3.0/24 172.30.0.13")),
                RouteChange::Delete(r("10.244.9.0/24 172.30.0.19")),
            ]
        );
        assert_eq!(d.conflicts.len(), 1);
        assert_eq!(d.conflicts[0].foreign, r("10.244.4.0/24 172.30.0.99"));
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn second_pass_is_a_no_op() {
        let desired = [r("10.244.1.0/24 172.30.0.11")];
        let d = diff(&desired, &[t("10.244.1.0/24 172.30.0.11", true)]);
        assert!(d.changes.is_empty() && d.conflicts.is_empty() && d.unchanged == 1);
    }
}
