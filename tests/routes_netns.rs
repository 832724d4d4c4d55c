//! The routes reconciler against real kernel routing tables, in network namespaces these tests create.
//! (Node lists are given directly here; the lab end-to-end tests take them from a real API server.)

use crate::util::netns::Netns;
use std::net::IpAddr;
use wkjoin::layout::Os;
use wkjoin::plan::NextHop;
use wkjoin::routes::reconcile::{Report, reconcile};
use wkjoin::routes::{ClusterNode, RouteChange};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};

fn node(name: &str, cidr: &str, addr: &str) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        pod_cidrs: vec![cidr.parse().unwrap()],
        internal_ips: vec![addr.parse::<IpAddr>().unwrap()],
    }
}

/// A master and two workers; this namespace is worker-1 (172.31.0.11).
fn three_nodes() -> Vec<ClusterNode> {
    vec![
        node("master", "10.244.0.0/24", "172.31.0.10"),
        node("worker-1", "10.244.1.0/24", "172.31.0.11"),
        node("worker-2", "10.244.2.0/24", "172.31.0.12"),
    ]
}

fn settings(root: &std::path::Path) -> Settings {
    let p = PartialSettings {
        node_name: Some("worker-1".into()),
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/16".parse().unwrap()),
        ..Default::default()
    };
    resolve(Os::Linux, Some(&root.to_string_lossy()), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
}

fn pass(ns: &Netns, s: &Settings, nodes: Vec<ClusterNode>) -> Report {
    let s = s.clone();
    ns.run(false, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let table = wkjoin::host::RouteTable::connect().unwrap();
            reconcile(&table, &s, NextHop::NodeIp, None, &nodes, false).await.unwrap()
        })
    })
}

fn count(r: &Report) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for ch in &r.diff.changes {
        match ch {
            RouteChange::Add(_) => c.0 += 1,
            RouteChange::Replace { .. } => c.1 += 1,
            RouteChange::Delete(_) => c.2 += 1,
        }
    }
    c
}

#[test]
fn reconcile_adds_is_idempotent_follows_next_hops_and_removes_departed_nodes() {
    let ns = Netns::new("life", "172.31.0.11/24");
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let cluster = three_nodes();

    let r = pass(&ns, &s, cluster.clone());
    assert_eq!(count(&r), (3, 0, 0), "{r:?}");
    assert_eq!(
        ns.owned_routes(),
        [
            "10.96.0.0/16 dev eth0 scope link",
            "10.244.0.0/24 via 172.31.0.10 dev eth0",
            "10.244.2.0/24 via 172.31.0.12 dev eth0"
        ]
    );

    let r = pass(&ns, &s, cluster.clone());
    assert_eq!(count(&r), (0, 0, 0), "second pass must change nothing: {r:?}");
    assert_eq!(r.diff.unchanged, 3);

    let mut moved = cluster.clone();
    moved[2] = node("worker-2", "10.244.2.0/24", "172.31.0.13");
    let r = pass(&ns, &s, moved.clone());
    assert_eq!(count(&r), (0, 1, 0), "{r:?}");
    assert!(ns.owned_routes().contains(&"10.244.2.0/24 via 172.31.0.13 dev eth0".to_string()));

    moved.remove(2);
    let r = pass(&ns, &s, moved);
    assert_eq!(count(&r), (0, 0, 1), "{r:?}");
    assert!(!ns.owned_routes().iter().any(|l| l.starts_with("10.244.2.0/24")), "{:?}", ns.owned_routes());
    let state = std::fs::read_to_string(root.path().join("wkjoin-state.json")).unwrap();
    assert!(!state.contains("10.244.2.0/24") && state.contains("10.244.0.0/24"), "{state}");
}

#[test]
fn foreign_routes_are_never_touched_and_conflicts_are_reported() {
    let ns = Netns::new("foreign", "172.31.0.11/24");
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    ns.ip(&["route", "add", "10.244.5.0/24", "via", "172.31.0.99"]); // conflicts with worker-5's route
    ns.ip(&["route", "add", "10.200.0.0/16", "via", "172.31.0.98"]); // unrelated
    ns.ip(&["route", "add", "default", "via", "172.31.0.1"]); // covers the service range
    let before = ns.ip(&["route", "show", "proto", "boot"]);

    let r = pass(
        &ns,
        &s,
        vec![node("worker-1", "10.244.1.0/24", "172.31.0.11"), node("worker-5", "10.244.5.0/24", "172.31.0.15")],
    );
    assert_eq!(r.diff.conflicts.len(), 1, "{r:?}");
    assert_eq!(r.diff.conflicts[0].foreign.to_string(), "10.244.5.0/24 via 172.31.0.99 dev eth0");
    assert!(
        r.diff.changes.is_empty(),
        "nothing to add: the only desired route is blocked, the default covers services"
    );
    assert_eq!(ns.ip(&["route", "show", "proto", "boot"]), before, "foreign routes unchanged");
    assert!(ns.owned_routes().is_empty());
}

#[test]
fn a_large_batch_applies_every_route_and_a_failure_in_it_names_its_route() {
    let ns = Netns::new("batch", "172.31.0.11/24");
    // 1 200 routes span several netlink batches; number 700 has a next hop on no connected network.
    let changes: Vec<RouteChange> = (0..1200u32)
        .map(|i| {
            let dst = format!("10.{}.{}.0/24", 100 + i / 256, i % 256).parse().unwrap();
            let gw: IpAddr = if i == 700 { "192.0.2.1".parse().unwrap() } else { "172.31.0.12".parse().unwrap() };
            RouteChange::Add(wkjoin::routes::Route::via(dst, gw, "eth0"))
        })
        .collect();
    let err = ns.run(false, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let table = wkjoin::host::RouteTable::connect().unwrap();
            let net = table.snapshot(&[]).await.unwrap();
            table.apply(&changes, &net.interfaces).await.unwrap_err().to_string()
        })
    });
    assert!(err.contains("10.102.188.0/24 via 192.0.2.1"), "the error does not name the failed route: {err}");
    let owned = ns.owned_routes();
    assert_eq!(owned.len(), 1199, "every other route of the batch is in place");
    assert!(owned.iter().any(|r| r.starts_with("10.104.175.0/24 via 172.31.0.12")), "the last route is in place");
}

#[test]
fn recorded_routes_are_restored_after_a_reboot_emptied_the_table() {
    let ns = Netns::new("restore", "172.31.0.11/24");
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let cluster = three_nodes();
    pass(&ns, &s, cluster);
    let before = ns.owned_routes();
    assert_eq!(before.len(), 3, "{before:?}");
    ns.ip(&["route", "flush", "proto", "147"]);
    assert!(ns.owned_routes().is_empty());
    let s2 = s.clone();
    let restored = ns.run(false, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let table = wkjoin::host::RouteTable::connect().unwrap();
            wkjoin::routes::reconcile::restore(&table, &s2).await.unwrap()
        })
    });
    assert_eq!(restored, 3);
    assert_eq!(ns.owned_routes(), before);
}

/// Dual-stack nodes: the IPv6 pod CIDRs get routes via the nodes' IPv6 addresses, and a second pass finds them in
/// place (the kernel's IPv6 metric must not look like a change), so the table settles.
#[test]
fn dual_stack_routes_settle_in_the_kernel() {
    let ns = Netns::new("dual", "172.31.0.11/24");
    ns.ip(&["-6", "addr", "add", "fd00:31::11/64", "dev", "eth0", "nodad"]);
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let dual = |name: &str, v4: &str, v6: &str, a4: &str, a6: &str| ClusterNode {
        name: name.into(),
        pod_cidrs: vec![v4.parse().unwrap(), v6.parse().unwrap()],
        internal_ips: vec![a4.parse().unwrap(), a6.parse().unwrap()],
    };
    let nodes = vec![
        dual("master", "10.244.0.0/24", "fd00:244::/64", "172.31.0.10", "fd00:31::10"),
        dual("worker-1", "10.244.1.0/24", "fd00:244:0:1::/64", "172.31.0.11", "fd00:31::11"),
        dual("worker-2", "10.244.2.0/24", "fd00:244:0:2::/64", "172.31.0.12", "fd00:31::12"),
    ];
    let r = pass(&ns, &s, nodes.clone());
    let v6 = ns.ip(&["-6", "route", "show", "proto", "147"]);
    assert!(v6.contains("fd00:244::/64 via fd00:31::10 dev eth0"), "{v6}\n{r:?}");
    assert!(v6.contains("fd00:244:0:2::/64 via fd00:31::12 dev eth0"), "{v6}");
    for _ in 0..2 {
        let again = pass(&ns, &s, nodes.clone());
        assert_eq!(count(&again), (0, 0, 0), "the table must settle: {again:?}\n{v6}");
    }
}
