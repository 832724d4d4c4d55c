//! `wkjoin reset`: undo a join. `observe` looks at the host (and nothing else), `plan` is pure, `apply` runs the
//! plan through the host backend with every action idempotent: a thing already gone is fine.

mod observe;
mod plan;

pub use observe::{netns_of, observe};
use plan::restorable;
pub use plan::{candidate_paths, ipam_dir, kube_chains, plan};

use crate::host::{Host, HostError};
use crate::layout::Os;
use crate::plan::Plan;
use crate::preflight::facts::Process;
use crate::routes::Route;
use crate::state::StateError;

/// Services in the order they are stopped (the reverse of start).
pub const SERVICES: [&str; 3] = ["wkjoin-routes", "kube-proxy", "kubelet"];
/// The firewall rule `wkjoin start` adds on Windows for the kubelet API.
pub const FIREWALL_RULE: &str = "wkjoin kubelet API";
/// The containerd namespace the CRI runs pods in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// Where the host-local IPAM plugin keeps its leases (one directory per network name).
pub const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks";
/// The Linux pod bridge of wkjoin's CNI config.
pub const LINUX_BRIDGE: &str = "cbr0";

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reset: {action}: {source}")]
    Host { action: String, source: HostError },
    #[error("reset: {0}")]
    Apply(#[from] crate::apply::ApplyError),
    #[error(
        "reset undoes a join on the host it runs on, which runs {host}, but the settings are for {os}: run it on the {os} node (or add --dry-run)"
    )]
    ForeignOs { os: Os, host: Os },
}

/// Choices of `wkjoin reset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetOptions {
    /// Delete the Node object instead of marking it NotReady.
    pub delete_node: bool,
    /// Also remove the download cache.
    pub purge: bool,
}

/// What is on the host now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub state_file: bool,
    /// Routes the state file records as wkjoin's (Windows routes carry no owner tag).
    pub recorded_routes: Vec<Route>,
    /// Routes in the table tagged as wkjoin's (Linux: protocol 147).
    pub owned_routes: Vec<Route>,
    /// Running supervisor/kubelet/kube-proxy processes (Linux), with a name for each.
    pub processes: Vec<(String, Process)>,
    /// Installed SCM services (Windows).
    pub services: Vec<String>,
    /// Containers in the CRI namespace, and the network namespaces their sandboxes pinned.
    pub containers: Vec<String>,
    pub netns: Vec<String>,
    /// `KUBE-*` chains per (program, table).
    pub iptables: Vec<(String, String, Vec<String>)>,
    /// The pod bridge exists (Linux).
    pub bridge: bool,
    /// Mount points under the kubelet dir, deepest first.
    pub mounts: Vec<String>,
    /// Which of `candidate_paths` exist.
    pub paths: Vec<String>,
    /// The credentials to reach the API with, when there are any.
    pub kubeconfig: Option<String>,
    /// The runtime config change wkjoin recorded, when the file is still exactly what wkjoin wrote.
    pub runtime_config: Option<crate::state::RuntimeConfigChange>,
    /// The sandbox image the restored config gives the runtime (what its restart is checked against).
    pub restored_sandbox_image: Option<String>,
    /// A recorded change whose file was edited since: left alone, with the reason.
    pub runtime_config_changed: Option<String>,
    /// The HNS network the state file records wkjoin created (Windows): the only one reset removes.
    pub hns_network: Option<String>,
    /// What reset saw and leaves alone because no record says it is wkjoin's, each with the reason.
    pub left_alone: Vec<String>,
}

impl Observed {
    /// Nothing of wkjoin's is on this host.
    pub fn is_bare(&self) -> bool {
        !self.state_file
            && self.paths.is_empty()
            && self.processes.is_empty()
            && self.services.is_empty()
            && self.owned_routes.is_empty()
            && self.recorded_routes.is_empty()
    }
}

/// Applies the plan in order through the executor, stopping at the first failure (a re-run picks up from what
/// is left). Every action treats "already gone" as done.
pub async fn apply(
    plan: &Plan,
    os: Os,
    host: &mut impl Host,
    cluster: &mut impl crate::cluster::Cluster,
) -> Result<crate::apply::Outcome, ResetError> {
    let host_os = if host.is_windows() { Os::Windows } else { Os::Linux };
    if os != host_os {
        return Err(ResetError::ForeignOs { os, host: host_os });
    }
    let opts = crate::apply::Options { verbose: true, ..Default::default() };
    Ok(crate::apply::apply(plan, os, host, cluster, &opts).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;
    use crate::plan::render_all;
    use crate::settings::Settings;
    use crate::settings::{HostFacts, Origin, PartialSettings, resolve};

    fn settings(os: Os) -> Settings {
        let p = PartialSettings {
            node_name: Some("node-1".into()),
            node_ip: Some("172.30.0.12".parse().unwrap()),
            kubernetes_version: Some("v1.20.2".parse().unwrap()),
            ..Default::default()
        };
        resolve(os, None, &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
    }

    fn route(dst: &str, gw: &str, dev: &str) -> Route {
        Route::via(dst.parse().unwrap(), gw.parse().unwrap(), dev)
    }

    /// A node joined and running pods: everything there is to undo.
    fn joined(os: Os) -> Observed {
        let s = settings(os);
        let l = s.layout();
        let mut o = Observed {
            state_file: true,
            paths: candidate_paths(&s, None, false),
            kubeconfig: Some(l.kubeconfig()),
            ..Default::default()
        };
        match os {
            Os::Linux => {
                o.owned_routes =
                    vec![route("10.244.2.0/24", "172.30.0.11", "eth0"), route("10.244.0.0/24", "172.30.0.10", "eth0")];
                o.processes = vec![
                    ("kubelet".into(), Process { pid: 200, program: Some(l.binary("kubelet")) }),
                    ("kube-proxy".into(), Process { pid: 300, program: Some(l.binary("kube-proxy")) }),
                    ("wkjoin supervisor".into(), Process { pid: 100, program: Some("/usr/local/bin/wkjoin".into()) }),
                ];
                o.containers = vec!["0a1b".into(), "2c3d".into()];
                o.netns = vec!["/var/run/netns/cni-1234".into()];
                o.iptables = vec![
                    ("iptables".into(), "nat".into(), vec!["KUBE-MARK-MASQ".into(), "KUBE-POSTROUTING".into()]),
                    ("iptables".into(), "filter".into(), vec!["KUBE-FIREWALL".into()]),
                ];
                o.bridge = true;
                o.mounts = vec![
                    l.join(&["kubelet", "pods", "p1", "volumes", "kubernetes.io~secret", "token"]),
                    l.join(&["kubelet"]),
                ];
            }
            Os::Windows => {
                o.recorded_routes = vec![
                    route("10.244.2.0/24", "172.30.0.11", "Ethernet").with_metric(300),
                    route("10.244.0.0/24", "172.30.0.10", "Ethernet").with_metric(300),
                ];
                o.services = vec!["kubelet".into(), "kube-proxy".into()];
                o.hns_network = Some("cbr0".into());
            }
        }
        o
    }

    /// An HNS network the state file does not record as wkjoin's (another tool's, or made by hand) stays.
    #[test]
    fn a_network_wkjoin_did_not_create_is_not_removed() {
        let s = settings(Os::Windows);
        let o = Observed { hns_network: None, ..joined(Os::Windows) };
        let p = plan(&s, &o, &ResetOptions::default());
        assert!(!p.actions.iter().any(|a| matches!(a, Action::RemoveHnsNetwork { .. })), "{p:#?}");
        let p = plan(&s, &joined(Os::Windows), &ResetOptions::default());
        assert!(p.actions.iter().any(|a| matches!(a, Action::RemoveHnsNetwork { name } if name == "cbr0")));
    }

    fn golden(path: &str, expected: &str, actual: &str) {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")), actual).unwrap();
            return;
        }
        assert_eq!(actual, expected, "differs from {path}; UPDATE_GOLDEN=1 rewrites it\n{actual}");
    }

    fn render(os: Os, opts: &ResetOptions) -> String {
        let s = settings(os);
        render_all("wkjoin reset plan for node node-1", &[plan(&s, &joined(os), opts)])
    }

    #[test]
    fn linux_plan_is_golden() {
        golden(
            "tests/golden/reset-linux.txt",
            include_str!("../../tests/golden/reset-linux.txt"),
            &render(Os::Linux, &ResetOptions::default()),
        );
    }

    #[test]
    fn windows_plan_is_golden() {
        golden(
            "tests/golden/reset-windows.txt",
            include_str!("../../tests/golden/reset-windows.txt"),
            &render(Os::Windows, &ResetOptions { delete_node: true, purge: true }),
        );
    }

    #[test]
    fn the_runtime_config_wkjoin_changed_is_restored_then_the_runtime_restarted_on_it() {
        let s = settings(Os::Linux);
        let mut o = joined(Os::Linux);
        let change = crate::state::RuntimeConfigChange {
            file: "/etc/containerd/config.toml".into(),
            backup: Some("/var/lib/wkjoin/backup/containerd-config.toml".into()),
            original_sha256: Some("aa".into()),
            written_sha256: "bb".into(),
            service: "containerd".into(),
            restart: vec!["service".into(), "containerd".into(), "restart".into()],
            endpoint: "unix:///run/containerd/containerd.sock".into(),
        };
        o.runtime_config = Some(change.clone());
        o.restored_sandbox_image = Some("registry.k8s.io/pause:3.6".into());
        let p = plan(&s, &o, &ResetOptions::default());
        let at = |f: &dyn Fn(&Action) -> bool| p.actions.iter().position(f).unwrap_or_else(|| panic!("{p:#?}"));
        let restore =
            at(&|a| matches!(a, Action::RestoreRuntimeConfig { written_sha256, .. } if written_sha256 == "bb"));
        let restart = at(&|a| {
            matches!(a, Action::RestartRuntime { command, sandbox_image, .. }
                if command.join(" ") == "service containerd restart" && sandbox_image == "registry.k8s.io/pause:3.6")
        });
        let backup =
            at(&|a| matches!(a, Action::RemovePath { path } if path.ends_with("backup/containerd-config.toml")));
        // Pods are gone before the runtime restarts, and the original is kept until it is back in place.
        let pods = at(&|a| matches!(a, Action::RemoveContainers { .. }));
        assert!(pods < restore && restore < restart && restart < backup, "{p:#?}");
        // A file changed since wkjoin wrote it (or gone) is not wkjoin's to restore.
        assert!(restorable(&change, Some("bb")));
        assert!(!restorable(&change, Some("cc")) && !restorable(&change, None));
    }

    #[test]
    fn a_bare_host_has_nothing_to_reset() {
        for os in [Os::Linux, Os::Windows] {
            let p = plan(&settings(os), &Observed::default(), &ResetOptions { delete_node: true, purge: true });
            assert!(p.actions.is_empty(), "{p:#?}");
            assert!(p.summary.starts_with("nothing to reset"), "{}", p.summary);
        }
        // A foreign cbr0 or KUBE-* chains alone are not wkjoin's.
        let o = Observed { bridge: true, iptables: joined(Os::Linux).iptables, ..Default::default() };
        assert!(plan(&settings(Os::Linux), &o, &ResetOptions::default()).actions.is_empty());
    }

    #[test]
    fn order_keeps_a_rerun_possible() {
        let s = settings(Os::Linux);
        let p = plan(&s, &joined(Os::Linux), &ResetOptions::default());
        let pos = |f: &dyn Fn(&Action) -> bool| p.actions.iter().position(f).unwrap();
        // The supervisor goes first so nothing restarts kubelet or kube-proxy.
        assert!(matches!(&p.actions[0], Action::StopProcess { name, .. } if name == "wkjoin supervisor"));
        let node = pos(&|a| matches!(a, Action::MarkNodeNotReady { .. }));
        let kubeconfig = pos(&|a| matches!(a, Action::RemovePath { path } if path == &s.layout().kubeconfig()));
        assert!(node < kubeconfig, "the API is told before its credentials go");
        let umount = pos(&|a| matches!(a, Action::Unmount { .. }));
        let kubelet_dir = pos(&|a| matches!(a, Action::RemovePath { path } if path == &s.layout().kubelet_dir()));
        assert!(umount < kubelet_dir, "volumes are unmounted before the kubelet dir is removed");
        assert!(matches!(p.actions.last(), Some(Action::RemovePath { path }) if path == &s.layout().state_file()));
        // The runtime's CNI conf dir stays (containerd watches it); only wkjoin's file goes; the cache stays.
        let removed: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RemovePath { path } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert!(removed.contains(&"/etc/cni/net.d/10-wkjoin.conflist"), "{removed:?}");
        assert!(!removed.contains(&"/etc/cni/net.d") && !removed.contains(&"/etc/cni"), "{removed:?}");
        assert!(!removed.contains(&"/var/lib/wkjoin/cache"), "{removed:?}");
        assert!(removed.contains(&"/var/lib/cni/networks/cbr0"), "{removed:?}");
    }

    #[test]
    fn purge_removes_the_cache_and_delete_node_replaces_not_ready() {
        let s = settings(Os::Linux);
        let mut o = joined(Os::Linux);
        o.paths = candidate_paths(&s, None, true);
        let p = plan(&s, &o, &ResetOptions { delete_node: true, purge: true });
        assert!(p.actions.contains(&Action::RemovePath { path: s.layout().cache_dir() }));
        assert!(p.actions.iter().any(|a| matches!(a, Action::DeleteNode { node, .. } if node == "node-1")));
        assert!(!p.actions.iter().any(|a| matches!(a, Action::MarkNodeNotReady { .. })));
        // Without credentials a requested delete cannot silently vanish.
        o.kubeconfig = None;
        let p = plan(&s, &o, &ResetOptions { delete_node: true, purge: false });
        assert!(p.actions.iter().any(|a| matches!(a, Action::Deferred { what, .. } if what == "delete node node-1")));
    }

    #[test]
    fn only_what_exists_is_planned() {
        let s = settings(Os::Linux);
        let o = Observed { state_file: true, paths: vec![s.layout().state_file()], ..Default::default() };
        let p = plan(&s, &o, &ResetOptions::default());
        assert_eq!(p.actions, vec![Action::RemovePath { path: s.layout().state_file() }]);
    }

    const SAVE: &str = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        :KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:DOCKER - [0:0]\n\
        -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
        -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE\n\
        -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
        -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
        -A DOCKER -i docker0 -j RETURN\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n\
        -A INPUT -j KUBE-FIREWALL\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";

    /// The iptables calls the executor makes to remove `chains` when `-S` lists `listed` (one string per call,
    /// the comment's words joined as they were passed).
    fn removed(table: &str, listed: &str, chains: &[String]) -> Vec<String> {
        use crate::host::recording::{Call, Recording};
        let mut host = Recording::default();
        let out = crate::host::CommandOutput { status: Some(0), stdout: listed.into(), stderr: String::new() };
        host.outputs.insert(format!("iptables -w -t {table} -S"), out);
        let a =
            Action::RemoveIptablesChains { program: "iptables".into(), table: table.into(), chains: chains.to_vec() };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(crate::apply::action(
            crate::plan::Step::Reset,
            &a,
            &mut host,
            &mut crate::cluster::Offline,
            &mut Default::default(),
        ))
        .unwrap();
        host.calls
            .iter()
            .map(|c| match c {
                Call::Run { program, args } if program == "iptables" => args.join(" "),
                other => panic!("only iptables runs, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn portmap_chains_go_with_the_node_and_other_cni_chains_stay() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n:CNI-DN-0123 - [0:0]\n\
            :CNI-8f2a - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 4444 -j CNI-DN-0123\n\
            -A CNI-DN-0123 -p tcp -m tcp --dport 4444 -j DNAT --to-destination 10.244.2.3:80\n\
            -A POSTROUTING -s 10.88.0.0/16 -j CNI-8f2a\nCOMMIT\n";
        let found = kube_chains(save);
        assert_eq!(found, vec![("nat".to_string(), vec!["CNI-HOSTPORT-DNAT".to_string(), "CNI-DN-0123".to_string()])]);
        let listed = "-P PREROUTING ACCEPT\n-N CNI-HOSTPORT-DNAT\n-N CNI-DN-0123\n-N CNI-8f2a\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 4444 -j CNI-DN-0123\n\
            -A POSTROUTING -s 10.88.0.0/16 -j CNI-8f2a\n";
        let calls = removed("nat", listed, &found[0].1);
        assert_eq!(
            calls,
            [
                "-w -t nat -S",
                "-w -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
                "-w -t nat -F CNI-HOSTPORT-DNAT",
                "-w -t nat -F CNI-DN-0123",
                "-w -t nat -X CNI-HOSTPORT-DNAT",
                "-w -t nat -X CNI-DN-0123",
            ]
        );
    }

    #[test]
    fn iptables_chains_are_found_and_removed_with_their_jumps() {
        assert_eq!(
            kube_chains(SAVE),
            vec![
                ("nat".to_string(), vec!["KUBE-MARK-MASQ".to_string(), "KUBE-POSTROUTING".to_string()]),
                ("filter".to_string(), vec!["KUBE-FIREWALL".to_string()]),
            ]
        );
        let chains = vec!["KUBE-MARK-MASQ".to_string(), "KUBE-POSTROUTING".to_string()];
        let listed = "-P PREROUTING ACCEPT\n-P POSTROUTING ACCEPT\n-N KUBE-MARK-MASQ\n-N KUBE-POSTROUTING\n-N DOCKER\n\
            -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
            -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE\n\
            -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
            -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
            -A DOCKER -i docker0 -j RETURN\n";
        // Exactly the jump into our chains is deleted (its comment one word), then our chains: nothing else is
        // touched, and no table is restored whole.
        assert_eq!(
            removed("nat", listed, &chains),
            [
                "-w -t nat -S",
                "-w -t nat -D POSTROUTING -m comment --comment kubernetes postrouting rules -j KUBE-POSTROUTING",
                "-w -t nat -F KUBE-MARK-MASQ",
                "-w -t nat -F KUBE-POSTROUTING",
                "-w -t nat -X KUBE-MARK-MASQ",
                "-w -t nat -X KUBE-POSTROUTING",
            ]
        );
        // Gone already: only the listing.
        assert_eq!(removed("nat", "-P POSTROUTING ACCEPT\n-N DOCKER\n", &chains), ["-w -t nat -S"]);
    }

    #[test]
    fn sandbox_netns_is_read_from_ctr_info() {
        let info = r#"{"ID":"x","Spec":{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"network","path":"/var/run/netns/cni-5b1e"}]}}}"#;
        assert_eq!(netns_of(info), vec!["/var/run/netns/cni-5b1e"]);
        // App containers join the sandbox by /proc path: not a pinned namespace.
        let app = r#"{"Spec":{"linux":{"namespaces":[{"type":"network","path":"/proc/4242/ns/net"}]}}}"#;
        assert!(netns_of(app).is_empty());
        assert!(netns_of("not json").is_empty());
    }

    #[test]
    fn windows_binaries_in_the_root_are_removed_one_by_one() {
        let s = settings(Os::Windows);
        let paths = candidate_paths(&s, None, false);
        assert!(paths.contains(&"C:\\k\\kubelet.exe".to_string()), "{paths:?}");
        assert!(!paths.contains(&"C:\\k".to_string()), "the root holds the cache and the CNI dir: {paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/var/lib/cni")), "{paths:?}");
        assert_eq!(paths.last(), Some(&"C:\\k\\wkjoin-state.json".to_string()));
    }
}
