//! What wkjoin left on this host, observed: the state file's records, processes, services, containers,
//! network namespaces, iptables chains, routes, mounts and files — read only, never changed here.

use super::*;
use crate::host::{self, probe};
use crate::layout::Layout;
use crate::preflight::facts::Process;
use crate::settings::Settings;
use crate::start::network::CNI_CONF_FILE;
use crate::state::State;
use std::path::Path;

/// What is in wkjoin's places (the root dir, the runtime's CNI conf dir) without a record making it wkjoin's.
fn not_ours(s: &Settings, o: &Observed, recorded: bool) -> Vec<String> {
    let l = s.layout();
    let mut out = Vec::new();
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path().display().to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let ours = |p: &str| {
        let p = Path::new(p);
        let candidates = candidate_paths(s, None, true);
        let lock = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".lock"));
        lock || candidates.iter().chain(&o.paths).any(|c| Path::new(c).starts_with(p) || p.starts_with(c))
    };
    for p in names(&l.root) {
        if !recorded {
            out.push(format!("{p}: no state file, so nothing in {} is provably wkjoin's", l.root));
        } else if !ours(&p) {
            out.push(format!("{p}: in the root dir, but not something wkjoin makes"));
        }
    }
    let conflist = Layout::new(s.os, s.cni_conf_dir.clone()).join(&[CNI_CONF_FILE]);
    for p in names(&s.cni_conf_dir).into_iter().filter(|p| *p != conflist) {
        out.push(format!("{p}: another CNI config"));
    }
    out.extend(o.runtime_config_changed.clone());
    out
}

/// Finds the processes, routes, files and runtime objects wkjoin left on this host.
pub async fn observe(s: &Settings, kubeconfig_flag: Option<&str>, opts: &ResetOptions) -> Result<Observed, ResetError> {
    let l = s.layout();
    let state = State::load(Path::new(&l.state_file()))?;
    let mut o = Observed {
        state_file: state.is_some(),
        recorded_routes: state.as_ref().map(|st| st.routes.clone()).unwrap_or_default(),
        ..Default::default()
    };
    // Files are removed on the state file's word only: without it, nothing under a root dir is provably wkjoin's.
    o.paths = match &state {
        Some(st) => candidate_paths(s, Some(st), opts.purge)
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect(),
        None => Vec::new(),
    };
    let programs: Vec<String> = SERVICES.iter().map(|b| l.binary(b)).collect();
    for pr in probe::processes_running(&programs) {
        let name = SERVICES.iter().find(|b| pr.program.as_deref() == Some(l.binary(b).as_str())).unwrap_or(&"kubelet");
        o.processes.push((name.to_string(), pr));
    }
    o.processes.extend(supervisors(&l.join(&["run"])).into_iter().map(|p| ("wkjoin supervisor".to_string(), p)));
    o.services = probe::installed_services(&SERVICES);
    let table =
        host::RouteTable::connect().map_err(|source| ResetError::Host { action: "read routes".into(), source })?;
    let net = table
        .snapshot(&o.recorded_routes)
        .await
        .map_err(|source| ResetError::Host { action: "read routes".into(), source })?;
    o.owned_routes = net.routes.iter().filter(|r| r.owned).map(|r| r.route.clone()).collect();
    if s.os == Os::Windows {
        // Windows ownership is the record: keep only recorded routes still in the table.
        o.owned_routes.clear();
    }
    if let Some(rc) = state.as_ref().and_then(|st| st.runtime_config.clone()) {
        let now = std::fs::read_to_string(&rc.file).ok().map(|t| crate::pause::sha256_hex(&t));
        if restorable(&rc, now.as_deref()) {
            let original = rc.backup.as_ref().and_then(|b| std::fs::read_to_string(b).ok());
            let mut info = crate::settings::RuntimeFacts::blank_info();
            let _ = crate::runtime::fill_from_config(&mut info, &rc.file, original.as_deref(), s.os);
            o.restored_sandbox_image = info.sandbox_image.map(|f| f.value);
            o.runtime_config = Some(rc);
        } else {
            tracing::warn!("{} changed since wkjoin wrote it: reset leaves it alone", rc.file);
            o.runtime_config_changed = Some(format!(
                "{} changed since wkjoin wrote it: left alone{}",
                rc.file,
                rc.backup.as_ref().map(|b| format!("; the original is kept in {b}")).unwrap_or_default()
            ));
        }
    }
    o.left_alone = not_ours(s, &o, state.is_some());
    o.hns_network = state.as_ref().and_then(|st| st.hns_network.as_ref()).map(|n| n.name.clone());
    if s.os == Os::Windows && o.hns_network.is_none() {
        // A network wkjoin did not record creating (another tool's, or made by hand) is never removed.
        if let Ok(Some(_)) = host::Host::hns_network_subnets(&mut host::Native, &s.network_name) {
            o.left_alone.push(format!("HNS network {}: not created by wkjoin", s.network_name));
        }
    }
    // A plugin replaced since wkjoin installed it is someone else's now.
    for f in state.iter().filter_map(|st| st.cni_plugins.as_ref()).flat_map(|r| &r.files) {
        if o.paths.contains(&f.path) && crate::fetch::file_sha256(Path::new(&f.path)).ok().as_ref() != Some(&f.sha256) {
            o.paths.retain(|p| p != &f.path);
            o.left_alone.push(format!("{}: changed since wkjoin installed it, left alone", f.path));
        }
    }
    if o.is_bare() {
        return Ok(o);
    }
    if s.os == Os::Linux {
        o.bridge = net.interfaces.iter().any(|i| i.name == LINUX_BRIDGE);
        for program in ["iptables", "ip6tables"] {
            if let Ok(out) = host::Native.run(&format!("{program}-save"), &[])
                && out.status == Some(0)
            {
                for (table, chains) in kube_chains(&out.stdout) {
                    o.iptables.push((program.to_string(), table, chains));
                }
            }
        }
        o.mounts = probe::mounts_under(&l.kubelet_dir());
        if let Some(endpoint) = s.runtime_endpoint.as_deref()
            && let Some(addr) = endpoint.strip_prefix("unix://")
        {
            if probe::runtime_endpoint(endpoint) == crate::preflight::facts::Endpoint::Reachable {
                (o.containers, o.netns) = containers(addr);
            } else {
                tracing::warn!("the container runtime at {endpoint} does not answer: pods (if any) are not removed");
            }
        }
    }
    let installed = l.kubeconfig();
    o.kubeconfig = kubeconfig_flag.map(str::to_string).or_else(|| Path::new(&installed).exists().then_some(installed));
    Ok(o)
}

/// Live `wkjoin start` supervisors from `<root>/run/*.pid`; a pid whose program is not wkjoin is ignored.
fn supervisors(run_dir: &str) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.path().extension().is_none_or(|x| x != "pid") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
        else {
            continue;
        };
        let program = probe::process_program(pid);
        let is_wkjoin = program
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("wkjoin"));
        if is_wkjoin && probe::process_alive(pid) {
            out.push(Process { pid, program });
        }
    }
    out
}

/// Containers in the CRI namespace (through `ctr`), and the network namespaces their specs name.
fn containers(address: &str) -> (Vec<String>, Vec<String>) {
    let ctr = |args: &[&str]| {
        let mut a = ctr_args(address, CRI_NAMESPACE);
        a.extend(args.iter().map(|s| s.to_string()));
        host::Native.run("ctr", &a).ok().filter(|o| o.status == Some(0)).map(|o| o.stdout)
    };
    let Some(list) = ctr(&["containers", "ls", "-q"]) else {
        tracing::debug!("ctr cannot list containers at {address}; not removing pods");
        return (Vec::new(), Vec::new());
    };
    let ids: Vec<String> = list.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let mut netns = Vec::new();
    for id in &ids {
        if let Some(info) = ctr(&["containers", "info", id]) {
            netns.extend(netns_of(&info));
        }
    }
    netns.sort();
    netns.dedup();
    (ids, netns)
}

/// Pinned network namespaces (`/var/run/netns/cni-...`) in `ctr containers info` output.
pub fn netns_of(info: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(info).unwrap_or_default();
    v["Spec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["type"] == "network")
        .filter_map(|n| n["path"].as_str())
        .filter(|p| p.contains("/netns/"))
        .map(str::to_string)
        .collect()
}

fn ctr_args(address: &str, namespace: &str) -> Vec<String> {
    ["--address", address, "--connect-timeout", "5s", "-n", namespace].map(String::from).to_vec()
}
