//! `wkjoin start`: observe what runs, plan (kubelet as a service, the pod network once the Node has its pod
//! CIDR, kube-proxy, the routes watcher, a fresh Ready), then apply exactly that plan through the machine's
//! service manager (Windows SCM, systemd units, or the wkjoin supervisor: [`Manager`]). `--stop` stops them.

use crate::apply::{self, ApplyError};
use crate::cluster::KubeCluster;
use crate::host::{self, HostError, Manager, SupervisorFiles, System, process};
use crate::layout::Layout;
use crate::plan::{Action, Plan, ServiceSpec};
use crate::settings::Settings;
use crate::state::{State, StateError};
use crate::version::KubeVersion;
use crate::{fetch, pause};

pub mod network;
pub mod services;
use std::path::{Path, PathBuf};

pub use crate::cluster::{freshly_ready, pod_cidr_of, ready_heartbeat};
pub use crate::host::native::{ensure_firewall_rule, firewall_rule_args};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot tell the installed kubelet's version ({message}): run `wkjoin fetch` first")]
    NoKubelet { message: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Supervisor(#[from] crate::host::supervisor::SupervisorError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{reason}; nothing was started")]
    Network { reason: String },
    #[error("cannot use the node kubeconfig {path}: {message} (install it with `wkjoin config`, or give --kubeconfig)")]
    Kubeconfig { path: String, message: String },
}

/// The service manager for a host: `--foreground` always means the attached supervisor.
pub fn manager(os: crate::layout::Os, systemd_is_init: bool, foreground: bool) -> Manager {
    use crate::layout::Os;
    match (os, systemd_is_init, foreground) {
        (_, _, true) => Manager::Supervisor,
        (Os::Windows, _, false) => Manager::Scm,
        (Os::Linux, true, false) => Manager::Systemd,
        (Os::Linux, false, false) => Manager::Supervisor,
    }
}

/// The services a start plan installs, in start order.
pub fn plan_services(plan: &Plan) -> Vec<&ServiceSpec> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::InstallService(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The supervisor's files under the root dir.
pub fn supervisor_files(l: &Layout, foreground: bool) -> SupervisorFiles {
    SupervisorFiles::new(&l.join(&["run"]), &l.log_dir(), &l.root, foreground)
}

pub async fn client_for(path: &Path) -> Result<kube::Client, StartError> {
    let built = crate::kube_client::build(crate::kube_client::Source::File(path), &Default::default()).await;
    let (client, _) =
        built.map_err(|e| StartError::Kubeconfig { path: path.display().to_string(), message: e.message })?;
    Ok(client)
}

/// `wkjoin start --supervise` (hidden): the detached supervisor's own process.
pub async fn supervise_main(l: &Layout) -> Result<(), StartError> {
    let f = supervisor_files(l, false);
    Ok(crate::host::supervisor::run_detached(f.run_dir, f.services_file, f.pid_file).await?)
}

/// Whether `start` changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The services already ran with this plan.
    Unchanged,
    /// The services were (re)started and the node reported Ready since.
    Started,
}

/// What runs on the host now, as far as the start plan cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The state file records this very plan as applied.
    pub recorded: bool,
    /// Every service of the plan runs under its manager (for the supervisor: it runs exactly these specs).
    pub running: bool,
    /// A live wkjoin supervisor of this root dir.
    pub supervisor: Option<u32>,
    /// kubelet and kube-proxy processes of this root dir's binaries.
    pub node_processes: Vec<(String, u32)>,
}

/// The base plan with no restart asked: what the state file records, so "done" means "this plan ran".
fn settled(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    for a in &mut p.actions {
        if let Action::StartService { restart, .. } = a {
            *restart = false;
        }
    }
    p
}

/// Looks at the state file, the service manager and the supervisor for `plan`.
pub fn observe(s: &Settings, plan: &Plan, mgr: Manager, foreground: bool) -> Result<Observed, StartError> {
    let l = s.layout();
    let state = State::load(Path::new(&l.state_file()))?.unwrap_or_default();
    let files = supervisor_files(&l, foreground);
    let specs: Vec<ServiceSpec> = plan_services(plan).into_iter().cloned().collect();
    let running = match mgr {
        Manager::Supervisor => files.running_services().is_some_and(|r| r == specs),
        m => specs.iter().all(|sp| host::service_active(m, &sp.name)),
    };
    let mut node_processes = Vec::new();
    for name in [services::KUBELET, services::KUBE_PROXY] {
        for pid in process::processes_of(Path::new(&l.binary(name))) {
            node_processes.push((l.binary(name), pid));
        }
    }
    Ok(Observed { recorded: state.is_done(&settled(plan)), running, supervisor: files.live(), node_processes })
}

/// The start plan for what runs now: nothing when this plan runs already; the running supervisor (and its
/// kubelet and kube-proxy) stopped first when the plan changed; services restarted when the plan changed.
pub fn plan_observed(base: &Plan, o: &Observed, mgr: Manager, foreground: bool) -> Plan {
    if o.recorded && o.running && !foreground {
        return Plan::new(base.step, "kubelet, kube-proxy and the routes watcher already run with this plan");
    }
    let mut p = Plan { actions: Vec::new(), ..base.clone() };
    if let Some(pid) = o.supervisor.filter(|_| mgr == Manager::Supervisor && (!o.recorded || foreground)) {
        p.push(Action::StopProcess { name: "the wkjoin supervisor".into(), pid, program: None });
        for (program, pid) in &o.node_processes {
            p.push(Action::StopProcess { name: program.clone(), pid: *pid, program: Some(program.clone()) });
        }
    }
    for a in &base.actions {
        let mut a = a.clone();
        if let Action::StartService { restart, .. } = &mut a {
            *restart = !o.recorded && mgr != Manager::Supervisor;
        }
        p.push(a);
    }
    p
}

/// The HNS network of the pod network's name on this host, and whether wkjoin recorded creating it (Windows).
fn network_found(s: &Settings) -> Result<services::NetworkFound, StartError> {
    if s.os != crate::layout::Os::Windows {
        return Ok(services::NetworkFound::default());
    }
    let state = State::load(Path::new(&s.layout().state_file()))?.unwrap_or_default();
    let subnets = crate::host::Host::hns_network_subnets(&mut crate::host::Native, &s.network_name)?;
    let ours = state.hns_network.is_some_and(|n| n.name == s.network_name);
    Ok(services::NetworkFound { subnets, ours })
}

/// The installed kubelet's version: the start plan's flags depend on it.
pub async fn kubelet_version(s: &Settings) -> Result<KubeVersion, StartError> {
    let kubelet = s.layout().binary(services::KUBELET);
    fetch::binary_version(services::KUBELET, Path::new(&kubelet))
        .await
        .and_then(|v| v.parse::<KubeVersion>().map_err(|e| e.to_string()))
        .map_err(|message| StartError::NoKubelet { message })
}

/// Observes, plans and applies the start step on this host, and waits for the node to be Ready.
pub async fn start(s: &Settings, kubeconfig: Option<&Path>, foreground: bool) -> Result<StartOutcome, StartError> {
    start_planned(s, kubeconfig, foreground, None).await
}

/// [`start`], for a plan printed earlier (`join`): a plan made for the installed kubelet's version, or for what
/// runs now, that differs from the printed one is printed before it is applied.
pub async fn start_planned(
    s: &Settings,
    kubeconfig: Option<&Path>,
    foreground: bool,
    printed: Option<&Plan>,
) -> Result<StartOutcome, StartError> {
    let l = s.layout();
    let mgr = manager(s.os, process::systemd_is_init(), foreground);
    let version = kubelet_version(s).await?;
    let found = network_found(s)?;
    let base = services::plan(s, Some(version), &pause::pause_image(s));
    let base = services::fit_network(base, s, &found).map_err(|reason| StartError::Network { reason })?;
    let observed = observe(s, &base, mgr, foreground)?;
    let plan = plan_observed(&base, &observed, mgr, foreground);
    if printed.is_some_and(|p| p != &plan) && !plan.actions.is_empty() {
        print!(
            "{}",
            plan.render(1, 1).replacen(
                "[1/1] start:",
                &format!("re-planned for kubelet {version} and what runs now:"),
                1
            )
        );
    }
    if plan.actions.is_empty() {
        let names: Vec<&str> = plan_services(&base).iter().map(|sp| sp.name.as_str()).collect();
        match observed.supervisor {
            Some(pid) if mgr == Manager::Supervisor => println!(
                "unchanged: kubelet {version} and kube-proxy already run under the wkjoin supervisor (pid {pid}) with this plan"
            ),
            _ => println!("unchanged: {} already run as {} with this plan", names.join(", "), mgr.label()),
        }
        return Ok(StartOutcome::Unchanged);
    }
    let kubeconfig = kubeconfig.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(l.kubeconfig()));
    let kubelet_log = plan_services(&base).iter().find(|sp| sp.name == services::KUBELET).map(|sp| sp.log_file.clone());
    let managed: Vec<ServiceSpec> = plan_services(&base).into_iter().cloned().collect();
    let mut system = System::new(mgr, supervisor_files(&l, foreground), managed);
    let mut cluster = KubeCluster::new(Some(kubeconfig), kubelet_log);
    let replan = |cidr| network::check_pod_cidr(s, cidr).and_then(|()| services::network_actions_for(s, cidr, &found));
    let opts = apply::Options { replan: Some(&replan), verbose: false };
    let outcome = apply::apply(&plan, s.os, &mut system, &mut cluster, &opts).await?;

    let state_path = PathBuf::from(l.state_file());
    let mut state = State::load(&state_path)?.unwrap_or_default();
    state.node_name = Some(s.node_name.clone());
    // Only a network this run created is recorded as wkjoin's: one found in place stays another tool's.
    if let (Some(name), Some(subnet)) = (outcome.created_networks.last(), outcome.pod_cidr.or(s.pod_cidr)) {
        state.hns_network = Some(crate::state::HnsNetworkRecord { name: name.clone(), subnet });
    }
    state.record(&settled(&base), std::time::SystemTime::now());
    state.save(&state_path, &mut crate::host::Native)?;

    if foreground {
        println!("supervising kubelet and kube-proxy in the foreground; SIGTERM or Ctrl-C stops them");
        system.wait_attached().await?;
        println!("stopped kubelet and kube-proxy");
    }
    Ok(StartOutcome::Started)
}

/// Stops the node services: SCM services or systemd units are stopped and removed (nothing starts them at
/// boot any more), then any wkjoin supervisor. Returns whether anything was running.
pub async fn stop(l: &Layout) -> Result<bool, StartError> {
    let names = [services::ROUTES_WATCHER, services::KUBE_PROXY, services::KUBELET];
    let mgr = manager(l.os, process::systemd_is_init(), false);
    let mut system = System::new(mgr, supervisor_files(l, false), Vec::new());
    let mut any = false;
    if mgr != Manager::Supervisor {
        for name in names {
            any |= host::service_active(mgr, name);
            if mgr == Manager::Scm {
                crate::host::Host::stop_service(&mut system, name)?;
            }
            // systemd: `disable --now` stops the unit, which goes with its file.
            crate::host::Host::remove_service(&mut system, name)?;
        }
    }
    let programs = [l.binary(services::KUBELET), l.binary(services::KUBE_PROXY)];
    Ok(host::stop_supervisor(&supervisor_files(l, false), &programs).await? || any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Os;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::jiff::Timestamp;

    fn node(cidr: Option<&str>, ready: Option<(&str, &str)>) -> Node {
        let mut v =
            serde_json::json!({ "metadata": { "name": "worker-1" }, "spec": {}, "status": { "conditions": [] } });
        if let Some(c) = cidr {
            v["spec"]["podCIDR"] = c.into();
        }
        if let Some((status, beat)) = ready {
            v["status"]["conditions"] = serde_json::json!([
                { "type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2030-01-01T00:00:00Z" },
                { "type": "Ready", "status": status, "lastHeartbeatTime": beat }
            ]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_manager_follows_the_host() {
        assert_eq!(manager(Os::Windows, false, false), Manager::Scm);
        assert_eq!(manager(Os::Linux, true, false), Manager::Systemd);
        assert_eq!(manager(Os::Linux, false, false), Manager::Supervisor);
        // --foreground is the supervisor attached, e.g. as the ExecStart of a unit of one's own.
        assert_eq!(manager(Os::Linux, true, true), Manager::Supervisor);
        assert_eq!(manager(Os::Windows, false, true), Manager::Supervisor);
    }

    #[test]
    fn pod_cidr_needs_a_value() {
        assert_eq!(pod_cidr_of(Some(&node(Some("10.244.1.0/24"), None))), Some("10.244.1.0/24"));
        assert_eq!(pod_cidr_of(Some(&node(Some(""), None))), None);
        assert_eq!(pod_cidr_of(None), None);
    }

    #[test]
    fn a_stale_ready_does_not_count() {
        let before: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let stale = node(None, Some(("True", "2024-05-01T10:00:00Z")));
        let fresh = node(None, Some(("True", "2024-05-01T10:00:07Z")));
        let not_ready = node(None, Some(("False", "2024-05-01T10:00:07Z")));
        assert!(!freshly_ready(Some(&stale), Some(before)));
        assert!(freshly_ready(Some(&fresh), Some(before)));
        assert!(!freshly_ready(Some(&not_ready), Some(before)));
        // A node that was never Ready before: any Ready is this start's.
        assert!(freshly_ready(Some(&stale), None));
        assert!(!freshly_ready(None, None));
    }
}
