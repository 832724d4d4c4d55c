//! Every step's apply runs exactly its printed plan: each plan (Linux and Windows) is applied to a recording
//! host and cluster, and what they received must be, call for call, what the plan's actions say — the re-plan
//! after the pod CIDR included — and nothing else. The recording host is a stand-in: it proves what wkjoin asks
//! of the machine, not how HNS or the SCM answer.

use ipnet::IpNet;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;
use wkjoin::apply::{self, ApplyError};
use wkjoin::cluster::{Cluster, ClusterError};
use wkjoin::host::RouteChange;
use wkjoin::host::recording::{Call, Recording};
use wkjoin::layout::Os;
use wkjoin::plan::{Action, Contents, Plan};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};

/// Answers the Node waits at once and records every operation.
#[derive(Default)]
struct Nodes {
    pod_cidr: Option<IpNet>,
    ops: Vec<String>,
}

impl Cluster for Nodes {
    async fn ready_heartbeat(&mut self, node: &str) -> Result<Option<Timestamp>, ClusterError> {
        self.ops.push(format!("heartbeat {node}"));
        Ok(None)
    }
    async fn await_pod_cidr(&mut self, node: &str, _t: Duration) -> Result<IpNet, ClusterError> {
        self.ops.push(format!("pod-cidr {node}"));
        Ok(self.pod_cidr.expect("a pod CIDR for the test"))
    }
    async fn await_ready(&mut self, node: &str, _s: Option<Timestamp>, _t: Duration) -> Result<(), ClusterError> {
        self.ops.push(format!("ready {node}"));
        Ok(())
    }
    async fn mark_not_ready(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError> {
        self.ops.push(format!("not-ready {node} {kubeconfig}"));
        Ok(())
    }
    async fn delete_node(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError> {
        self.ops.push(format!("delete {node} {kubeconfig}"));
        Ok(())
    }
}

/// The calls (host) and operations (cluster) an action stands for, as its printed form says.
fn expect(a: &Action, replan: &dyn Fn() -> Vec<Action>, calls: &mut Vec<Call>, ops: &mut Vec<String>) {
    match a {
        Action::CreateDir { path } => calls.push(Call::CreateDir(path.clone())),
        Action::WriteFile { path, contents, private } => {
            let contents = match contents {
                Contents::Text { text } => text.clone().into_bytes(),
                Contents::ClusterCa { kubeconfig } => {
                    wkjoin::kube_client::cluster_ca_pem(std::path::Path::new(kubeconfig)).unwrap()
                }
                Contents::Credentials { source } => std::fs::read(source).unwrap(),
            };
            calls.push(Call::WriteFile { path: path.clone(), contents, private: *private });
        }
        Action::RemovePath { path } => calls.push(Call::RemovePath(path.clone())),
        Action::CreateCgroup { path } => calls.push(Call::CreateCgroup(path.clone())),
        Action::InstallSelf { path } => calls.push(Call::InstallSelf(path.clone())),
        Action::Run { program, args, .. } => calls.push(Call::Run { program: program.clone(), args: args.clone() }),
        Action::InstallService(spec) => calls.push(Call::InstallService(spec.clone())),
        Action::StartService { name, restart } => {
            calls.push(Call::StartService { name: name.clone(), restart: *restart })
        }
        Action::StopService { name } => calls.push(Call::StopService(name.clone())),
        Action::RemoveService { name } => calls.push(Call::RemoveService(name.clone())),
        Action::AllowFirewallPort { rule, protocol, port } => {
            calls.push(Call::AllowFirewallPort { rule: rule.clone(), protocol: protocol.clone(), port: *port })
        }
        Action::RemoveFirewallRule { rule } => calls.push(Call::RemoveFirewallRule(rule.clone())),
        Action::CreateHnsNetwork { name, definition } => {
            calls.push(Call::CreateHnsNetwork { name: name.clone(), definition: definition.clone() })
        }
        Action::RemoveHnsNetwork { name } => calls.push(Call::DeleteHnsNetwork(name.clone())),
        Action::WaitForAddress { address, .. } => calls.push(Call::InterfaceWithAddress(*address)),
        Action::CreateHostEndpoint { network, name, address } => {
            calls.push(Call::CreateHostEndpoint { network: network.clone(), name: name.clone(), address: *address })
        }
        Action::EnableForwarding { address } => calls.push(Call::EnableForwarding(*address)),
        Action::RemoveHostEndpoint { name } => calls.push(Call::RemoveHostEndpoint(name.clone())),
        Action::AddRoute { route } => calls.push(Call::ChangeRoutes(vec![RouteChange::Add(route.clone())])),
        Action::ReplaceRoute { from, to } => {
            calls.push(Call::ChangeRoutes(vec![RouteChange::Replace { from: from.clone(), to: to.clone() }]))
        }
        Action::DeleteRoute { route } => calls.push(Call::DeleteRoute(route.clone())),
        Action::StopProcess { pid, program, .. } => {
            calls.push(Call::StopProcess { pid: *pid, program: program.clone() })
        }
        Action::RemoveNetns { path } => {
            calls.push(Call::Unmount(path.clone()));
            calls.push(Call::RemovePath(path.clone()));
        }
        Action::Unmount { path } => calls.push(Call::Unmount(path.clone())),
        Action::RemoveLink { name } => calls.push(Call::RemoveLink(name.clone())),
        Action::RemoveContainers { address, namespace, ids } => {
            let ctr = |rest: &[&str]| {
                let mut args: Vec<String> =
                    ["--address", address, "--connect-timeout", "5s", "-n", namespace].map(String::from).to_vec();
                args.extend(rest.iter().map(|r| r.to_string()));
                Call::Run { program: "ctr".into(), args }
            };
            for id in ids {
                calls.push(ctr(&["tasks", "delete", "--force", id]));
                calls.push(ctr(&["containers", "delete", id]));
            }
        }
        Action::KubeProxyCleanup { program } => {
            calls.push(Call::Run { program: program.clone(), args: vec!["--cleanup".into()] })
        }
        // The recording host's `iptables -S` lists nothing: there is nothing to delete.
        Action::RemoveIptablesChains { program, table, .. } => calls
            .push(Call::Run { program: program.clone(), args: ["-w", "-t", table, "-S"].map(String::from).to_vec() }),
        Action::VerifyImage { endpoint, image } => {
            calls.push(Call::RuntimeHasImage { endpoint: endpoint.clone(), image: image.clone() })
        }
        Action::AwaitPodCidr { node, .. } => ops.push(format!("pod-cidr {node}")),
        Action::AwaitNodeReady { node, .. } => ops.push(format!("ready {node}")),
        Action::MarkNodeNotReady { node, kubeconfig } => ops.push(format!("not-ready {node} {kubeconfig}")),
        Action::DeleteNode { node, kubeconfig } => ops.push(format!("delete {node} {kubeconfig}")),
        Action::Deferred { .. } => {
            for m in replan() {
                expect(&m, &|| unreachable!("a re-plan is complete"), calls, ops);
            }
        }
        other => panic!("no recorded form for `{other}`: the step applies it itself"),
    }
}

fn settings(os: Os, root: &std::path::Path, pod_cidr: Option<&str>) -> Settings {
    let p = PartialSettings {
        node_name: Some("worker-1".into()),
        node_ip: Some("172.30.0.11".parse().unwrap()),
        kubernetes_version: Some("v1.20.2".parse().unwrap()),
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/16".parse().unwrap()),
        pod_cidr: pod_cidr.map(|c| c.parse().unwrap()),
        ..Default::default()
    };
    let root = match os {
        Os::Linux => root.display().to_string(),
        Os::Windows => "C:\\k".to_string(),
    };
    resolve(os, Some(&root), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
}

/// A node kubeconfig with an inline CA under the root dir (the start plan writes the CA out of it).
fn kubeconfig(s: &Settings) {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
    let b64 = base64_encode(pem.as_bytes());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://172.30.0.10:6443\n    certificate-authority-data: {b64}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
    );
    let path = s.layout().kubeconfig();
    std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Applies `plan` to a recording host and cluster, and checks they received exactly what the plan says.
fn applies_exactly(s: &Settings, plan: &Plan, pod_cidr: &str) -> (Recording, apply::Outcome) {
    let mut host = Recording { windows: s.os == Os::Windows, ..Default::default() };
    let cidr: IpNet = pod_cidr.parse().unwrap();
    let mut cluster = Nodes { pod_cidr: Some(cidr), ..Default::default() };
    let replan = |c| Ok(wkjoin::start::services::network_actions(s, c));
    let opts = apply::Options { replan: Some(&replan), verbose: false };
    let outcome = block_on(apply::apply(plan, s.os, &mut host, &mut cluster, &opts)).unwrap();
    let (mut calls, mut ops) = (Vec::new(), Vec::new());
    if plan.actions.iter().any(|a| matches!(a, Action::AwaitNodeReady { .. })) {
        ops.push(format!("heartbeat {}", s.node_name));
    }
    for a in &plan.actions {
        expect(a, &|| wkjoin::start::services::network_actions(s, cidr), &mut calls, &mut ops);
    }
    assert_eq!(host.calls, calls, "the host received other calls than the plan's actions");
    assert_eq!(cluster.ops, ops, "the cluster received other operations than the plan's actions");
    (host, outcome)
}

#[test]
fn start_plans_are_applied_exactly_with_the_pod_cidr_re_plan() {
    for os in [Os::Linux, Os::Windows] {
        for known in [Some("10.244.1.0/24"), None] {
            let dir = tempfile::tempdir().unwrap();
            let s = settings(os, dir.path(), known);
            if os == Os::Linux {
                kubeconfig(&s);
            }
            let plan = wkjoin::start::services::plan(&s, s.kubernetes_version.exact(), &s.pause_image);
            if os == Os::Windows {
                // The CA file comes from the Windows kubeconfig, which this Linux test cannot read: leave it out.
                let plan = Plan {
                    actions: plan
                        .actions
                        .iter()
                        .filter(|a| !matches!(a, Action::WriteFile { contents: Contents::ClusterCa { .. }, .. }))
                        .cloned()
                        .collect(),
                    ..plan.clone()
                };
                let (host, out) = applies_exactly(&s, &plan, "10.244.1.0/24");
                assert!(host.calls.iter().any(|c| matches!(c, Call::CreateHnsNetwork { .. })), "{os:?} {known:?}");
                assert_eq!(
                    out.executed.len(),
                    host.calls.len() + out.executed.iter().filter(|a| is_cluster(a)).count()
                );
                continue;
            }
            let (host, out) = applies_exactly(&s, &plan, "10.244.1.0/24");
            let deferred = plan.actions.iter().any(|a| matches!(a, Action::Deferred { .. }));
            assert_eq!(deferred, known.is_none());
            // What ran is the plan with its re-plan in place: no Deferred left, the CNI config written.
            assert!(!out.executed.iter().any(|a| matches!(a, Action::Deferred { .. })));
            assert!(host.files.keys().any(|p| p.ends_with("10-wkjoin.conflist")), "{:?}", host.files.keys());
            assert_eq!(out.pod_cidr.is_some(), known.is_none());
        }
    }
}

fn is_cluster(a: &Action) -> bool {
    matches!(a, Action::AwaitPodCidr { .. } | Action::AwaitNodeReady { .. })
}

#[test]
fn a_plan_for_the_other_os_reaches_no_host() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Os::Windows, dir.path(), Some("10.244.1.0/24"));
    let plan = wkjoin::start::services::plan(&s, s.kubernetes_version.exact(), &s.pause_image);
    let mut host = Recording::default();
    let err = block_on(apply::apply(&plan, s.os, &mut host, &mut Nodes::default(), &Default::default())).unwrap_err();
    assert!(matches!(err, ApplyError::ForeignOs { .. }), "{err}");
    assert!(host.calls.is_empty(), "{:?}", host.calls);
}

#[test]
fn reset_plans_are_applied_exactly() {
    use wkjoin::preflight::facts::Process;
    use wkjoin::reset::{Observed, ResetOptions};
    for os in [Os::Linux, Os::Windows] {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(os, dir.path(), Some("10.244.1.0/24"));
        let l = s.layout();
        let route =
            |d: &str, gw: &str, dev: &str| wkjoin::host::Route::via(d.parse().unwrap(), gw.parse().unwrap(), dev);
        let mut o = Observed {
            state_file: true,
            paths: wkjoin::reset::candidate_paths(&s, None, false),
            kubeconfig: Some(l.kubeconfig()),
            ..Default::default()
        };
        match os {
            Os::Linux => {
                o.owned_routes = vec![route("10.244.2.0/24", "172.30.0.12", "eth0")];
                o.processes = vec![("kubelet".into(), Process { pid: 200, program: Some(l.binary("kubelet")) })];
                o.containers = vec!["0a1b".into()];
                o.netns = vec!["/var/run/netns/cni-1234".into()];
                o.iptables = vec![("iptables".into(), "nat".into(), vec!["KUBE-MARK-MASQ".into()])];
                o.bridge = true;
            }
            Os::Windows => {
                o.recorded_routes = vec![route("10.244.2.0/24", "172.30.0.12", "Ethernet").with_metric(300)];
                o.services = vec!["kubelet".into(), "kube-proxy".into()];
            }
        }
        for opts in [ResetOptions::default(), ResetOptions { delete_node: true, purge: true }] {
            let plan = wkjoin::reset::plan(&s, &o, &opts);
            assert!(plan.actions.len() > 5, "{os:?}: {plan:?}");
            let mut host = Recording { windows: os == Os::Windows, ..Default::default() };
            let mut cluster = Nodes::default();
            block_on(wkjoin::reset::apply(&plan, os, &mut host, &mut cluster)).unwrap();
            let (mut calls, mut ops) = (Vec::new(), Vec::new());
            for a in &plan.actions {
                expect(a, &|| unreachable!(), &mut calls, &mut ops);
            }
            assert_eq!(host.calls, calls, "{os:?}");
            assert_eq!(cluster.ops, ops, "{os:?}");
        }
    }
}

#[test]
fn the_pause_plan_is_applied_exactly() {
    // Docker on Windows builds the image; containerd on Linux pulls it and checks it over CRI.
    let dir = tempfile::tempdir().unwrap();
    use wkjoin::settings::Runtime;
    for (os, runtime, build) in [(Os::Windows, Runtime::Docker, Some(20348)), (Os::Linux, Runtime::Containerd, None)] {
        let mut s = settings(os, dir.path(), None);
        s.runtime = runtime;
        let plan = wkjoin::pause::plan(&s, None, build).unwrap();
        let mut host =
            Recording { windows: os == Os::Windows, images: vec![s.pause_image.clone()], ..Default::default() };
        block_on(wkjoin::pause::apply(&s, &plan, &mut host)).unwrap();
        let (mut calls, mut ops) = (Vec::new(), Vec::new());
        for a in &plan.actions {
            expect(a, &|| unreachable!(), &mut calls, &mut ops);
        }
        assert_eq!(host.calls, calls, "{os:?} {runtime:?}");
        assert!(ops.is_empty());
    }
    // A runtime that has the image already is asked for nothing but the check.
    let s = settings(Os::Linux, dir.path(), None);
    let plan =
        wkjoin::pause::plan_observed(&s, None, None, None, wkjoin::pause::Observed { image_present: Some(true) })
            .unwrap();
    assert!(plan.actions.iter().all(|a| matches!(a, Action::VerifyImage { .. })), "{plan:?}");
}

#[test]
fn route_changes_are_applied_exactly_and_each_is_recorded_as_it_succeeds() {
    use wkjoin::routes::{RouteDiff, changes_plan};
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Os::Linux, dir.path(), Some("10.244.1.0/24"));
    let r = |d: &str, gw: &str| wkjoin::host::Route::via(d.parse().unwrap(), gw.parse().unwrap(), "eth0");
    let diff = RouteDiff {
        changes: vec![
            RouteChange::Add(r("10.244.2.0/24", "172.30.0.12")),
            RouteChange::Replace { from: r("10.244.3.0/24", "172.30.0.9"), to: r("10.244.3.0/24", "172.30.0.13") },
            RouteChange::Delete(r("10.244.4.0/24", "172.30.0.14")),
        ],
        ..Default::default()
    };
    let mut state = wkjoin::state::State {
        routes: vec![r("10.244.3.0/24", "172.30.0.9"), r("10.244.4.0/24", "172.30.0.14")],
        ..Default::default()
    };
    let mut host = Recording::default();
    block_on(wkjoin::routes::reconcile::apply_changes(&s, &diff, &mut state, &mut host)).unwrap();
    let state_file = s.layout().state_file();
    let (mut calls, mut ops) = (Vec::new(), Vec::new());
    for a in &changes_plan(&diff).actions {
        expect(a, &|| unreachable!(), &mut calls, &mut ops);
        // The state file is saved after each change: a batch that stops half-way still owns what it made.
        calls.push(Call::WriteFile { path: state_file.clone(), contents: Vec::new(), private: false });
    }
    let strip = |c: &Call| match c {
        Call::WriteFile { path, private, .. } if *path == state_file => {
            Call::WriteFile { path: path.clone(), contents: Vec::new(), private: *private }
        }
        other => other.clone(),
    };
    assert_eq!(host.calls.iter().map(strip).collect::<Vec<_>>(), calls);
    assert_eq!(state.routes, vec![r("10.244.2.0/24", "172.30.0.12"), r("10.244.3.0/24", "172.30.0.13")]);
}

#[test]
fn an_image_archive_is_imported_only_when_its_sha256_matches() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Os::Linux, dir.path(), None);
    let archive = dir.path().join("pause.oci.tar");
    std::fs::write(&archive, b"an OCI archive").unwrap();
    let path = archive.display().to_string();
    let good = wkjoin::host::digest_hex(b"an OCI archive");
    for (given, ok) in [(good.clone(), true), ("0".repeat(64), false)] {
        let plan = wkjoin::pause::plan_observed(&s, Some(&path), Some(&given), None, Default::default()).unwrap();
        assert!(plan.render(1, 1).contains(&format!("verified: sha256 {given}")), "{}", plan.render(1, 1));
        let mut host = Recording { images: vec![s.pause_image.clone()], ..Default::default() };
        host.files.insert(path.clone(), b"an OCI archive".to_vec());
        let result = block_on(wkjoin::pause::apply(&s, &plan, &mut host));
        let imported =
            host.calls.iter().any(|c| matches!(c, Call::Run { args, .. } if args.iter().any(|a| a == "import")));
        assert_eq!((result.is_ok(), imported), (ok, ok), "{result:?}");
        if !ok {
            let e = result.unwrap_err().to_string();
            assert!(e.contains(&good) && e.contains("nothing was imported"), "{e}");
        }
    }
}

#[test]
fn a_hostile_pod_cidr_from_the_cluster_never_reaches_the_cni_config_or_hns() {
    for os in [Os::Linux, Os::Windows] {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(os, dir.path(), None);
        if os == Os::Linux {
            kubeconfig(&s);
        }
        let plan = wkjoin::start::services::plan(&s, s.kubernetes_version.exact(), &s.pause_image);
        let plan = Plan {
            actions: plan
                .actions
                .into_iter()
                .filter(|a| {
                    os == Os::Linux || !matches!(a, Action::WriteFile { contents: Contents::ClusterCa { .. }, .. })
                })
                .collect(),
            ..plan
        };
        for hostile in ["0.0.0.0/0", "172.30.0.0/24", "10.96.0.0/24", "192.168.7.0/24"] {
            let mut host = Recording { windows: os == Os::Windows, ..Default::default() };
            let mut cluster = Nodes { pod_cidr: Some(hostile.parse().unwrap()), ..Default::default() };
            let replan = |c| {
                wkjoin::start::network::check_pod_cidr(&s, c).map(|()| wkjoin::start::services::network_actions(&s, c))
            };
            let opts = apply::Options { replan: Some(&replan), verbose: false };
            let err = block_on(apply::apply(&plan, os, &mut host, &mut cluster, &opts)).unwrap_err();
            assert!(matches!(err, ApplyError::Replan { .. }) && err.to_string().contains(hostile), "{err}");
            let network = host.calls.iter().any(|c| match c {
                Call::WriteFile { path, .. } => path.ends_with(".conflist"),
                Call::CreateHnsNetwork { .. } => true,
                _ => false,
            });
            assert!(!network, "{os:?} {hostile}: {:?}", host.calls);
        }
    }
}

/// Creating the HNS network moves the host's address to a new vNIC: the plan waits until an interface holds it
/// again before anything else, polling; if it never comes back, nothing after the network is done.
#[test]
fn the_windows_pod_network_waits_for_the_node_address_on_the_new_vnic() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Os::Windows, dir.path(), Some("10.244.1.0/24"));
    let mut plan = Plan::new(wkjoin::plan::Step::Start, "pod network");
    plan.actions = wkjoin::start::services::network_actions(&s, "10.244.1.0/24".parse().unwrap());
    let node_ip: std::net::IpAddr = "172.30.0.11".parse().unwrap();
    let wait =
        plan.actions.iter().position(|a| matches!(a, Action::WaitForAddress { address, .. } if *address == node_ip));
    assert_eq!(wait, Some(1), "right after the network: {:#?}", plan.actions);

    let mut host = Recording { windows: true, address_absent_polls: 3, ..Default::default() };
    let mut cluster = Nodes::default();
    let out = block_on(apply::apply(&plan, Os::Windows, &mut host, &mut cluster, &apply::Options::default())).unwrap();
    // The network this plan created is what start records as wkjoin's (reset removes only that one).
    assert_eq!(out.created_networks, ["cbr0"]);
    let polls: Vec<usize> = host
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::InterfaceWithAddress(node_ip))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(polls, [1, 2, 3, 4], "{:?}", host.calls);
    // Then the pods' gateway: the host endpoint at .2, and forwarding on the node's vNIC and on it.
    let gateway: std::net::IpAddr = "10.244.1.2".parse().unwrap();
    assert_eq!(
        host.calls[5..8],
        [
            Call::CreateHostEndpoint { network: "cbr0".into(), name: "cbr0_ep".into(), address: gateway },
            Call::EnableForwarding(node_ip),
            Call::EnableForwarding(gateway),
        ]
    );
    assert!(matches!(host.calls[8], Call::CreateDir(_)), "{:?}", host.calls);

    let mut short = plan.clone();
    short.actions[1] = Action::WaitForAddress { address: node_ip, timeout_secs: 1 };
    let mut host = Recording { windows: true, address_absent_polls: usize::MAX, ..Default::default() };
    let err =
        block_on(apply::apply(&short, Os::Windows, &mut host, &mut cluster, &apply::Options::default())).unwrap_err();
    assert!(matches!(err, apply::ApplyError::AddressGone { .. }), "{err}");
    assert!(err.to_string().contains("172.30.0.11") && err.to_string().contains("Get-NetIPAddress"), "{err}");
    let later = |c: &Call| matches!(c, Call::CreateHostEndpoint { .. } | Call::CreateDir(_) | Call::WriteFile { .. });
    assert!(!host.calls.iter().any(later), "{:?}", host.calls);
}
