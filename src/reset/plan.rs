//! The reset plan, pure: from what was observed, every action that undoes wkjoin's work, in the order that
//! leaves nothing half-stopped (services, processes, kube-proxy's rules, containers, network, runtime config,
//! the Node, files).

use super::*;
use crate::layout::Layout;
use crate::plan::{Action, Step};
use crate::settings::Settings;
use crate::start::network::CNI_CONF_FILE;
use crate::state::State;
use std::path::Path;

fn kube_proxy_path(s: &Settings) -> String {
    s.layout().binary("kube-proxy")
}

/// A recorded runtime config change is wkjoin's to undo only while the file is exactly what wkjoin wrote.
pub(super) fn restorable(change: &crate::state::RuntimeConfigChange, current_sha256: Option<&str>) -> bool {
    current_sha256 == Some(change.written_sha256.as_str())
}

/// The host-local IPAM directory of the pod network.
pub fn ipam_dir(s: &Settings) -> String {
    format!("{HOST_LOCAL_DIR}/{}", s.network_name)
}

/// Every path wkjoin may have created, in removal order; the state file comes last so an interrupted reset
/// can be re-run. The CNI config directory stays: containerd watches it.
pub fn candidate_paths(s: &Settings, state: Option<&State>, purge: bool) -> Vec<String> {
    let l = s.layout();
    let mut out = vec![Layout::new(s.os, s.cni_conf_dir.clone()).join(&[CNI_CONF_FILE])];
    if s.os == Os::Linux {
        out.push(ipam_dir(s));
    }
    out.extend([l.kubelet_dir(), l.join(&["run"]), l.log_dir(), l.pki_dir(), l.image_dir(), l.kubeconfig()]);
    match s.os {
        Os::Linux => out.push(l.bin_dir()),
        Os::Windows => {
            // The binaries live in the root dir itself: remove them one by one.
            let mut bins: Vec<String> =
                ["kubelet", "kube-proxy", "kubectl", "kubeadm"].iter().map(|b| l.binary(b)).collect();
            if let Some(files) = state.and_then(|st| st.binaries.as_ref()).map(|b| &b.files) {
                bins.extend(files.iter().map(|f| f.path.clone()));
            }
            // The CNI plugins wkjoin installed into the runtime's bin dir: only those it recorded.
            if let Some(files) = state.and_then(|st| st.cni_plugins.as_ref()).map(|b| &b.files) {
                bins.extend(files.iter().map(|f| f.path.clone()));
            }
            bins.sort();
            bins.dedup();
            out.extend(bins);
            out.push(l.previous_bin_dir());
        }
    }
    if purge {
        out.push(l.cache_dir());
    }
    out.push(l.state_file());
    out
}

/// The reset plan: from what is there to a bare host. Pure.
pub fn plan(s: &Settings, o: &Observed, opts: &ResetOptions) -> Plan {
    let mut p = Plan::new(Step::Reset, format!("return node {} to a bare host", s.node_name));
    if o.is_bare() {
        p.summary = "nothing to reset: no wkjoin state, files, services or routes on this host".into();
        return p;
    }
    // 1. Nothing may restart what is being removed: supervisors first, then the services.
    let mut procs = o.processes.clone();
    procs.sort_by_key(|(name, pr)| (SERVICES.iter().any(|s| s == name), pr.pid));
    for (name, pr) in procs {
        p.push(Action::StopProcess { name, pid: pr.pid, program: pr.program });
    }
    for name in SERVICES.iter().filter(|n| o.services.iter().any(|s| s == *n)) {
        p.push(Action::StopService { name: name.to_string() });
        p.push(Action::RemoveService { name: name.to_string() });
    }
    if s.os == Os::Windows {
        p.push(Action::RemoveFirewallRule { rule: FIREWALL_RULE.into() });
    }
    // 2. The cluster learns the node is gone while the credentials are still here.
    match (&o.kubeconfig, opts.delete_node) {
        (Some(kc), true) => p.push(Action::DeleteNode { node: s.node_name.clone(), kubeconfig: kc.clone() }),
        (Some(kc), false) => p.push(Action::MarkNodeNotReady { node: s.node_name.clone(), kubeconfig: kc.clone() }),
        (None, true) => p.push(Action::Deferred {
            what: format!("delete node {}", s.node_name),
            needs: "--kubeconfig gives credentials allowed to delete it".into(),
        }),
        (None, false) => &mut p,
    };
    // 3. Pods, and the network namespaces their sandboxes pinned (with them go their veths).
    if !o.containers.is_empty()
        && let Some(address) = s.runtime_endpoint.as_deref().and_then(|e| e.strip_prefix("unix://"))
    {
        p.push(Action::RemoveContainers {
            address: address.to_string(),
            namespace: CRI_NAMESPACE.into(),
            ids: o.containers.clone(),
        });
    }
    for ns in &o.netns {
        p.push(Action::RemoveNetns { path: ns.clone() });
    }
    // 4. Packet filter rules of kube-proxy and the kubelet.
    if s.os == Os::Linux {
        let kp = kube_proxy_path(s);
        if o.paths.iter().any(|x| Path::new(x) == Path::new(&s.layout().bin_dir())) {
            p.push(Action::KubeProxyCleanup { program: kp });
        }
        for (program, table, chains) in &o.iptables {
            p.push(Action::RemoveIptablesChains {
                program: program.clone(),
                table: table.clone(),
                chains: chains.clone(),
            });
        }
    }
    // 5. Routes wkjoin owns.
    let mut routes: Vec<Route> = match s.os {
        Os::Linux => o.owned_routes.clone(),
        Os::Windows => o.recorded_routes.clone(),
    };
    routes.sort();
    routes.dedup();
    for r in routes {
        p.push(Action::DeleteRoute { route: r });
    }
    // 6. The pod network.
    match s.os {
        Os::Linux if o.bridge => p.push(Action::RemoveLink { name: LINUX_BRIDGE.into() }),
        Os::Linux => &mut p,
        Os::Windows => match &o.hns_network {
            // The host endpoint wkjoin made on it first (`<network>_ep`), then the network.
            Some(name) => p
                .push(Action::RemoveHostEndpoint { name: format!("{name}_ep") })
                .push(Action::RemoveHnsNetwork { name: name.clone() }),
            None => &mut p,
        },
    };
    // 7. The runtime's config as the admin had it, byte for byte, and the runtime restarted on it.
    if let Some(rc) = &o.runtime_config {
        p.push(Action::RestoreRuntimeConfig {
            file: rc.file.clone(),
            backup: rc.backup.clone(),
            written_sha256: rc.written_sha256.clone(),
        });
        p.push(Action::RestartRuntime {
            service: rc.service.clone(),
            command: rc.restart.clone(),
            endpoint: rc.endpoint.clone(),
            sandbox_image: o.restored_sandbox_image.clone().unwrap_or_default(),
            timeout_secs: crate::pause::RUNTIME_RESTART_TIMEOUT_SECS,
        });
        if let Some(b) = &rc.backup {
            p.push(Action::RemovePath { path: b.clone() });
        }
    }
    // 8. Volumes the kubelet mounted, then wkjoin's files.
    for m in &o.mounts {
        p.push(Action::Unmount { path: m.clone() });
    }
    for path in &o.paths {
        p.push(Action::RemovePath { path: path.clone() });
    }
    p
}

/// Chains the node's pods leave behind: kubelet's and kube-proxy's `KUBE-*`, and the portmap plugin's
/// `CNI-HOSTPORT-*`/`CNI-DN-*` (pods removed without a CNI DEL keep their hostPort DNAT rules, which then
/// send a new pod's hostPort to a dead address).
const NODE_CHAIN_PREFIXES: [&str; 3] = ["KUBE-", "CNI-HOSTPORT-", "CNI-DN-"];

/// The node's chains (see [`NODE_CHAIN_PREFIXES`]) per table in `iptables-save` output.
pub fn kube_chains(save: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in save.lines() {
        if let Some(table) = line.strip_prefix('*') {
            out.push((table.trim().to_string(), Vec::new()));
        } else if let Some(decl) = line.strip_prefix(':')
            && let Some(chain) = decl.split_whitespace().next()
            && NODE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
            && let Some((_, chains)) = out.last_mut()
        {
            chains.push(chain.to_string());
        }
    }
    out.retain(|(_, c)| !c.is_empty());
    out
}
