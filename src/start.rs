//! `wkjoin start` applied: kubelet as a service, the pod network once the Node has its pod CIDR, kube-proxy,
//! then a Ready Node with a heartbeat newer than this start. `--stop` stops them again. The services run
//! under the Windows SCM, systemd units (systemd as PID 1), or the wkjoin supervisor otherwise ([`manager`]);
//! the order and the decisions are the same for all three, only the effects differ.

use crate::apply::{self, ApplyError};
use crate::host::process;
use crate::host::{Host, HostError, Native};
use crate::layout::{Layout, Os};
use crate::plan::{Action, Plan, ServiceSpec};
use crate::services::supervisor::{self, ServicesFile, SupervisorError};
use crate::services::{scm, systemd};
use crate::settings::Settings;
use crate::state::{State, StateError};
use crate::version::KubeVersion;
use crate::{fetch, image, services};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How long `start --stop` gives the supervisor to stop its services before killing everything.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot tell the installed kubelet's version ({message}): run `wkjoin fetch` first")]
    NoKubelet { message: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot use the node kubeconfig {path}: {message} (install it with `wkjoin config`, or give --kubeconfig)")]
    Kubeconfig { path: String, message: String },
    #[error("cannot {what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error(
        "node {node} got no pod CIDR within {secs}s: the controller manager must run with --allocate-node-cidrs and --cluster-cidr (or give --pod-cidr){tail}"
    )]
    PodCidrTimeout { node: String, secs: u64, tail: String },
    #[error("node {node} reported no fresh Ready condition within {secs}s{tail}")]
    ReadyTimeout { node: String, secs: u64, tail: String },
    #[error("node {node}'s pod CIDR `{value}` is not a CIDR")]
    BadPodCidr { node: String, value: String },
    #[error("the wkjoin supervisor did not come up (see {log}){tail}")]
    SupervisorDidNotStart { log: String, tail: String },
    #[error("processes {pids:?} of kubelet/kube-proxy are still running after SIGKILL")]
    StillRunning { pids: Vec<u32> },
}

/// Who runs the node services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// The wkjoin supervisor: detached, or attached with `--foreground` (e.g. as a unit's ExecStart).
    Supervisor,
    /// `wkjoin-<name>.service` units (Linux with systemd as PID 1).
    Systemd,
    /// Services of the Windows Service Control Manager.
    Scm,
}

impl Manager {
    pub fn label(self) -> &'static str {
        match self {
            Manager::Supervisor => "processes of the wkjoin supervisor",
            Manager::Systemd => "systemd units",
            Manager::Scm => "Windows services",
        }
    }
}

/// The service manager for this host: `--foreground` always means the attached supervisor.
pub fn manager(os: Os, systemd_is_init: bool, foreground: bool) -> Manager {
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

/// `netsh` arguments that show the firewall rule (exit 0: it exists) and that add it.
pub fn firewall_rule_args(rule: &str, protocol: &str, port: u16) -> (Vec<String>, Vec<String>) {
    let show = ["advfirewall", "firewall", "show", "rule", &format!("name={rule}")].map(String::from).to_vec();
    let add = [
        "advfirewall",
        "firewall",
        "add",
        "rule",
        &format!("name={rule}"),
        "dir=in",
        "action=allow",
        &format!("protocol={}", protocol.to_ascii_uppercase()),
        &format!("localport={port}"),
    ]
    .map(String::from)
    .to_vec();
    (show, add)
}

fn run_ok(host: &mut impl Host, program: &str, args: &[String]) -> Result<crate::host::CommandOutput, HostError> {
    let out = host.run(program, args)?;
    if out.status == Some(0) {
        Ok(out)
    } else {
        Err(HostError::CommandFailed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: format!("{}{}", out.stderr, out.stdout),
        })
    }
}

/// Adds the inbound firewall rule unless a rule of that name exists; returns whether it was added.
pub fn ensure_firewall_rule(host: &mut impl Host, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError> {
    let (show, add) = firewall_rule_args(rule, protocol, port);
    if host.run("netsh", &show)?.status == Some(0) {
        return Ok(false);
    }
    run_ok(host, "netsh", &add)?;
    Ok(true)
}

/// Writes the service's unit unless it already has this text; returns whether it changed.
pub fn install_unit(host: &mut impl Host, spec: &ServiceSpec) -> Result<bool, HostError> {
    let path = systemd::unit_path(&spec.name);
    let text = systemd::unit_text(spec);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    host.write_file(Path::new(&path), text.as_bytes(), false)?;
    Ok(true)
}

fn systemctl(host: &mut impl Host, args: &[&str]) -> Result<crate::host::CommandOutput, HostError> {
    run_ok(host, "systemctl", &args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

/// Whether a service runs under `mgr` (the supervisor is checked as a whole elsewhere).
fn service_active(mgr: Manager, name: &str) -> bool {
    match mgr {
        Manager::Supervisor => false,
        Manager::Systemd => Native
            .run("systemctl", &["is-active".into(), "--quiet".into(), systemd::unit_name(name)])
            .is_ok_and(|o| o.status == Some(0)),
        Manager::Scm => crate::host::scm::service_running(name).unwrap_or(false),
    }
}

/// Effects of actions that `apply` leaves to `start`: the HNS network and the firewall rule.
fn apply_start_action(plan: &Plan, a: &Action, os: Os) -> Result<(), StartError> {
    match a {
        Action::CreateHnsNetwork { name, definition } => {
            let created = crate::host::create_hns_network(name, definition).map_err(|source| wrap(plan, a, source))?;
            if !created {
                println!("HNS network {name} exists already: kept (pods on it keep their network)");
            }
        }
        Action::AllowFirewallPort { rule, protocol, port } => {
            ensure_firewall_rule(&mut Native, rule, protocol, *port).map_err(|source| wrap(plan, a, source))?;
        }
        other => {
            let one = Plan { step: plan.step, summary: plan.summary.clone(), actions: vec![other.clone()] };
            apply::apply(&one, os, &mut Native)?;
        }
    }
    Ok(())
}

fn wrap(plan: &Plan, a: &Action, source: HostError) -> StartError {
    StartError::Apply(ApplyError::Host { step: plan.step, action: a.to_string(), source })
}

/// Files of the supervisor under the root dir.
pub struct Paths {
    pub run_dir: PathBuf,
    pub pid_file: PathBuf,
    pub services_file: PathBuf,
    pub supervisor_log: PathBuf,
}

impl Paths {
    pub fn new(l: &Layout) -> Paths {
        let run_dir = PathBuf::from(l.join(&["run"]));
        Paths {
            pid_file: run_dir.join("supervisor.pid"),
            services_file: run_dir.join("services.json"),
            supervisor_log: PathBuf::from(Layout::new(l.os, l.log_dir()).join(&["supervisor.log"])),
            run_dir,
        }
    }
}

/// The pid of a live supervisor for this root dir (checked by its command line, so a reused pid is not taken).
pub fn live_supervisor(paths: &Paths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&paths.pid_file).ok()?.trim().parse().ok()?;
    let cmd = process::cmdline(pid)?;
    let ours = cmd.iter().any(|a| a == "start") && cmd.iter().any(|a| a == "--supervise" || a == "--foreground");
    (ours && process::is_running(pid)).then_some(pid)
}

/// The Node's pod CIDR, once allocated.
pub fn pod_cidr_of(node: Option<&Node>) -> Option<&str> {
    node?.spec.as_ref()?.pod_cidr.as_deref().filter(|c| !c.is_empty())
}

/// The heartbeat of the Node's Ready=True condition.
pub fn ready_heartbeat(node: &Node) -> Option<Timestamp> {
    let conds = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conds.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.last_heartbeat_time.as_ref().map(|t| t.0)
}

/// Ready with a heartbeat newer than the one seen before this start: a stale Ready (left by an earlier kubelet)
/// does not count. Comparing the API server's own timestamps keeps clock skew out of it.
pub fn freshly_ready(node: Option<&Node>, before: Option<Timestamp>) -> bool {
    match (node.and_then(ready_heartbeat), before) {
        (Some(now), Some(before)) => now > before,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn last_lines(path: &str, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("\n  | {}", l.chars().take(300).collect::<String>()));
    format!("; last lines of {path}:{}", tail.collect::<String>())
}

pub async fn client_for(path: &Path) -> Result<kube::Client, StartError> {
    let built = crate::kube_client::build(crate::kube_client::Source::File(path), &Default::default()).await;
    let (client, _) =
        built.map_err(|e| StartError::Kubeconfig { path: path.display().to_string(), message: e.message })?;
    Ok(client)
}

/// The running supervisor: another process, or a task of this one (`--foreground`).
enum Supervisor {
    Detached(u32),
    Attached { tx: watch::Sender<Vec<ServiceSpec>>, stop: oneshot::Sender<()>, task: tokio::task::JoinHandle<()> },
}

fn write_services(paths: &Paths, digest: &str, services: &[ServiceSpec]) -> Result<(), HostError> {
    let file = ServicesFile { plan_digest: digest.to_string(), services: services.to_vec() };
    let json = serde_json::to_vec_pretty(&file).expect("services serialize");
    crate::host::Host::write_file(&mut Native, &paths.services_file, &json, false)
}

async fn launch(
    paths: &Paths,
    root: &str,
    foreground: bool,
    services: &[ServiceSpec],
) -> Result<Supervisor, StartError> {
    if foreground {
        let (tx, rx) = watch::channel(services.to_vec());
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(supervisor::supervise(rx, paths.run_dir.clone(), async move {
            let _ = stop_rx.await;
        }));
        crate::host::Host::write_file(&mut Native, &paths.pid_file, std::process::id().to_string().as_bytes(), false)?;
        return Ok(Supervisor::Attached { tx, stop, task });
    }
    let exe = std::env::current_exe().map_err(|source| HostError::Io {
        op: "find",
        path: PathBuf::from("wkjoin's own executable"),
        source,
    })?;
    let _ = std::fs::remove_file(&paths.pid_file);
    let args = vec!["start".to_string(), "--supervise".into(), "--root-dir".into(), root.to_string()];
    let pid = process::spawn_detached(&exe, &args, &paths.supervisor_log)?;
    // The supervisor writes its pid file once it handles signals; until then a SIGHUP would kill it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if std::fs::read_to_string(&paths.pid_file).is_ok_and(|p| p.trim() == pid.to_string()) {
            return Ok(Supervisor::Detached(pid));
        }
        if !process::is_running(pid) || Instant::now() > deadline {
            let log = paths.supervisor_log.display().to_string();
            let tail = last_lines(&log, 10);
            return Err(StartError::SupervisorDidNotStart { log, tail });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `wkjoin start --supervise` (hidden): the detached supervisor's own process.
pub async fn supervise_main(l: &Layout) -> Result<(), StartError> {
    let paths = Paths::new(l);
    let run = supervisor::run_detached(paths.run_dir.clone(), paths.services_file.clone(), paths.pid_file.clone());
    Ok(run.await?)
}

/// Whether `start` changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The services already ran with this plan.
    Unchanged,
    /// The services were (re)started and the node reported Ready since.
    Started,
}

/// Runs the start plan on this host and waits for the node to be Ready.
pub async fn start(s: &Settings, kubeconfig: Option<&Path>, foreground: bool) -> Result<StartOutcome, StartError> {
    let l = s.layout();
    let paths = Paths::new(&l);
    let mgr = manager(s.os, process::systemd_is_init(), foreground);
    let kubelet = l.binary(services::KUBELET);
    let version = fetch::binary_version(services::KUBELET, Path::new(&kubelet))
        .await
        .and_then(|v| v.parse::<KubeVersion>().map_err(|e| e.to_string()))
        .map_err(|message| StartError::NoKubelet { message })?;
    let plan = services::plan(s, Some(version), &image::pause_image(s));
    let digest = plan.digest();
    let state_path = PathBuf::from(l.state_file());
    let mut state = State::load(&state_path)?.unwrap_or_default();

    if mgr != Manager::Supervisor {
        let names: Vec<&str> = plan_services(&plan).iter().map(|sp| sp.name.as_str()).collect();
        if state.is_done(&plan) && names.iter().all(|n| service_active(mgr, n)) {
            println!("unchanged: {} already run as {} with this plan", names.join(", "), mgr.label());
            return Ok(StartOutcome::Unchanged);
        }
    }
    if let Some(pid) = live_supervisor(&paths) {
        let same = state.is_done(&plan)
            && supervisor::load_services(&paths.services_file).is_ok_and(|f| {
                f.plan_digest == digest
                    && f.services.iter().filter(|sv| plan_has_service(&plan, sv)).count() == f.services.len()
                    // and none of the plan's services is missing from the running set
                    && plan.actions.iter().filter(|a| matches!(a, Action::InstallService(_))).count() == f.services.len()
            });
        if same && !foreground {
            println!(
                "unchanged: kubelet {version} and kube-proxy already run under the wkjoin supervisor (pid {pid}) with this plan"
            );
            return Ok(StartOutcome::Unchanged);
        }
        println!("the start plan changed (or --foreground was asked for): stopping the running services first");
        stop_supervisor(&l).await?;
    }

    let kubeconfig = kubeconfig.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(l.kubeconfig()));
    let client = client_for(&kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client);
    let before = nodes
        .get_opt(&s.node_name)
        .await
        .map_err(|source| StartError::Kube { what: format!("read node {}", s.node_name), source })?
        .as_ref()
        .and_then(ready_heartbeat);

    let mut specs: Vec<ServiceSpec> = Vec::new();
    let mut sup: Option<Supervisor> = None;
    let mut pod_cidr = s.pod_cidr;
    // Services whose running process must be restarted to see their new configuration. A changed plan
    // restarts them all, as the supervisor does: a new kubelet binary may come with unchanged flags.
    let plan_changed = !state.is_done(&plan);
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut reload_units = false;
    let kubelet_log = specs_log(&plan, services::KUBELET);
    for action in &plan.actions {
        match action {
            Action::InstallService(spec) if mgr == Manager::Systemd => {
                if install_unit(&mut Native, spec).map_err(|e| wrap(&plan, action, e))? {
                    changed.insert(spec.name.clone());
                    reload_units = true;
                }
            }
            Action::InstallService(spec) if mgr == Manager::Scm => {
                let calls = crate::host::scm::install_service(spec).map_err(|e| wrap(&plan, action, e))?;
                if scm::needs_restart(&calls) {
                    changed.insert(spec.name.clone());
                }
            }
            Action::InstallService(spec) => specs.push(spec.clone()),
            Action::InstallSelf { path } if mgr != Manager::Supervisor => {
                let me = std::env::current_exe().ok().and_then(|p| std::fs::read(p).ok());
                if me.is_none() || std::fs::read(path).ok() != me {
                    changed.insert(services::ROUTES_WATCHER.to_string());
                }
                apply_start_action(&plan, action, s.os)?;
            }
            Action::StartService { name } if mgr == Manager::Systemd => {
                if std::mem::take(&mut reload_units) {
                    systemctl(&mut Native, &["daemon-reload"]).map_err(|e| wrap(&plan, action, e))?;
                }
                let unit = systemd::unit_name(name);
                let verb = if plan_changed || changed.contains(name) { "restart" } else { "start" };
                systemctl(&mut Native, &["enable", &unit]).map_err(|e| wrap(&plan, action, e))?;
                systemctl(&mut Native, &[verb, &unit]).map_err(|e| wrap(&plan, action, e))?;
                println!("started {name} as {unit} (journalctl -u {unit})");
            }
            Action::StartService { name } if mgr == Manager::Scm => {
                if plan_changed || changed.contains(name) {
                    for n in scm::stop_order(&plan_services(&plan), name) {
                        crate::host::stop_service(&n).map_err(|e| wrap(&plan, action, e))?;
                    }
                }
                crate::host::scm::start_service(name).map_err(|e| wrap(&plan, action, e))?;
                let log = plan_services(&plan).iter().find(|sp| &sp.name == name).map(|sp| sp.log_file.clone());
                println!("started service {name} (log {})", log.unwrap_or_default());
            }
            Action::StartService { name } => {
                write_services(&paths, &digest, &specs)?;
                match &sup {
                    None => {
                        let started = launch(&paths, &l.root, foreground, &specs).await?;
                        if let Supervisor::Detached(pid) = started {
                            println!(
                                "started the wkjoin supervisor (pid {pid}, log {})",
                                paths.supervisor_log.display()
                            );
                        }
                        sup = Some(started);
                    }
                    Some(Supervisor::Detached(pid)) => process::reload(*pid)?,
                    Some(Supervisor::Attached { tx, .. }) => {
                        let _ = tx.send(specs.clone());
                    }
                }
                let log = specs.iter().find(|sp| &sp.name == name).map(|sp| sp.log_file.clone()).unwrap_or_default();
                println!("started {name} {version} (log {log})");
            }
            Action::AwaitPodCidr { node, timeout_secs } => {
                let cidr = wait_pod_cidr(&nodes, node, *timeout_secs, &kubelet_log).await?;
                println!("node {node} has pod CIDR {cidr}");
                pod_cidr = Some(cidr);
            }
            Action::Deferred { .. } if pod_cidr.is_some() => {
                let cidr = pod_cidr.expect("checked");
                for a in services::network_actions(s, cidr) {
                    apply_start_action(&plan, &a, s.os)?;
                    println!("{a}");
                }
            }
            Action::AwaitNodeReady { node, timeout_secs } => {
                wait_ready(&nodes, node, before, *timeout_secs, &kubelet_log).await?;
                println!("node {node} is Ready (heartbeat newer than this start)");
            }
            other => apply_start_action(&plan, other, s.os)?,
        }
    }
    state.node_name = Some(s.node_name.clone());
    state.record(&plan, std::time::SystemTime::now());
    state.save(&state_path, &mut Native)?;

    if let Some(Supervisor::Attached { stop, task, .. }) = sup {
        println!("supervising kubelet and kube-proxy in the foreground; SIGTERM or Ctrl-C stops them");
        let mut signals = process::Signals::new()?;
        while signals.next().await != process::Request::Stop {}
        let _ = stop.send(());
        let _ = task.await;
        if std::fs::read_to_string(&paths.pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string()) {
            let _ = std::fs::remove_file(&paths.pid_file);
        }
        println!("stopped kubelet and kube-proxy");
    }
    Ok(StartOutcome::Started)
}

fn plan_has_service(plan: &Plan, spec: &ServiceSpec) -> bool {
    plan.actions.iter().any(|a| matches!(a, Action::InstallService(s) if s == spec))
}

fn specs_log(plan: &Plan, name: &str) -> String {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::InstallService(s) if s.name == name => Some(s.log_file.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

async fn wait_pod_cidr(nodes: &Api<Node>, node: &str, secs: u64, log: &str) -> Result<IpNet, StartError> {
    eprintln!("waiting up to {secs}s for node {node} to register and be given a pod CIDR ...");
    let cond = |n: Option<&Node>| pod_cidr_of(n).is_some();
    let waited = tokio::time::timeout(Duration::from_secs(secs), crate::wait::until(nodes.clone(), node, cond)).await;
    let Ok(found) = waited else {
        return Err(StartError::PodCidrTimeout { node: node.into(), secs, tail: last_lines(log, 10) });
    };
    let found = found.map_err(|source| StartError::Kube { what: format!("watch node {node}"), source })?;
    let value = pod_cidr_of(found.as_ref()).unwrap_or_default().to_string();
    value.parse().map_err(|_| StartError::BadPodCidr { node: node.into(), value })
}

async fn wait_ready(
    nodes: &Api<Node>,
    node: &str,
    before: Option<Timestamp>,
    secs: u64,
    log: &str,
) -> Result<(), StartError> {
    eprintln!("waiting up to {secs}s for node {node} to report Ready ...");
    let cond = move |n: Option<&Node>| freshly_ready(n, before);
    match tokio::time::timeout(Duration::from_secs(secs), crate::wait::until(nodes.clone(), node, cond)).await {
        Err(_) => Err(StartError::ReadyTimeout { node: node.into(), secs, tail: last_lines(log, 10) }),
        Ok(Err(source)) => Err(StartError::Kube { what: format!("watch node {node}"), source }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Stops the node services: SCM services or systemd units are stopped and removed (nothing starts them at
/// boot any more), then any wkjoin supervisor ([`stop_supervisor`]). Returns whether anything was running.
pub async fn stop(l: &Layout) -> Result<bool, StartError> {
    let names = [services::ROUTES_WATCHER, services::KUBE_PROXY, services::KUBELET];
    let mut any = false;
    match manager(l.os, process::systemd_is_init(), false) {
        Manager::Scm => {
            for name in names {
                any |= crate::host::scm::service_running(name)?;
                crate::host::stop_service(name)?;
                crate::host::delete_service(name)?;
            }
        }
        Manager::Systemd => {
            let mut removed = false;
            for name in names {
                let path = systemd::unit_path(name);
                if !Path::new(&path).exists() {
                    continue;
                }
                any |= service_active(Manager::Systemd, name);
                systemctl(&mut Native, &["disable", "--now", &systemd::unit_name(name)])?;
                Native.remove_path(Path::new(&path))?;
                removed = true;
            }
            if removed {
                systemctl(&mut Native, &["daemon-reload"])?;
            }
        }
        Manager::Supervisor => {}
    }
    Ok(stop_supervisor(l).await? || any)
}

/// Stops the supervisor (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and waits until no kubelet or kube-proxy of
/// this root dir runs. Returns whether a supervisor was running.
pub async fn stop_supervisor(l: &Layout) -> Result<bool, StartError> {
    let paths = Paths::new(l);
    let sup = live_supervisor(&paths);
    if let Some(pid) = sup {
        process::terminate(pid)?;
        if !wait_gone(&[pid], STOP_TIMEOUT).await {
            tracing::warn!("the supervisor (pid {pid}) did not stop within {STOP_TIMEOUT:?}: killing it");
            process::force_kill(pid)?;
            wait_gone(&[pid], Duration::from_secs(5)).await;
        }
    }
    let bins = [l.binary(services::KUBELET), l.binary(services::KUBE_PROXY)];
    let left = || bins.iter().flat_map(|b| process::processes_of(Path::new(b))).collect::<Vec<u32>>();
    let pids = left();
    if !pids.is_empty() {
        tracing::warn!("stopping leftover kubelet/kube-proxy processes {pids:?}");
        for p in &pids {
            process::terminate(*p)?;
        }
        if !wait_gone(&pids, supervisor::STOP_GRACE).await {
            for p in left() {
                process::force_kill(p)?;
            }
        }
        if !wait_gone(&left(), Duration::from_secs(5)).await {
            return Err(StartError::StillRunning { pids: left() });
        }
    }
    let _ = std::fs::remove_file(&paths.pid_file);
    Ok(sup.is_some())
}

async fn wait_gone(pids: &[u32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if pids.iter().all(|p| !process::is_running(*p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Answers `netsh ... show rule` with `exists`, records every command.
    struct Netsh {
        exists: bool,
        ran: Vec<Vec<String>>,
    }

    impl Host for Netsh {
        fn create_dir(&mut self, _: &Path) -> Result<(), HostError> {
            unreachable!()
        }
        fn write_file(&mut self, _: &Path, _: &[u8], _: bool) -> Result<(), HostError> {
            unreachable!()
        }
        fn remove_path(&mut self, _: &Path) -> Result<(), HostError> {
            unreachable!()
        }
        fn run(&mut self, program: &str, args: &[String]) -> Result<crate::host::CommandOutput, HostError> {
            assert_eq!(program, "netsh");
            self.ran.push(args.to_vec());
            let status = if args[2] == "show" && !self.exists { 1 } else { 0 };
            Ok(crate::host::CommandOutput { status: Some(status), stdout: String::new(), stderr: String::new() })
        }
    }

    #[test]
    fn the_firewall_rule_is_added_once() {
        let mut h = Netsh { exists: false, ran: vec![] };
        assert!(ensure_firewall_rule(&mut h, "wkjoin kubelet API", "tcp", 10250).unwrap());
        assert_eq!(h.ran.len(), 2);
        assert_eq!(
            h.ran[1].join(" "),
            "advfirewall firewall add rule name=wkjoin kubelet API dir=in action=allow protocol=TCP localport=10250"
        );
        let mut h = Netsh { exists: true, ran: vec![] };
        assert!(!ensure_firewall_rule(&mut h, "wkjoin kubelet API", "tcp", 10250).unwrap());
        assert_eq!(h.ran.len(), 1);
        assert_eq!(h.ran[0].join(" "), "advfirewall firewall show rule name=wkjoin kubelet API");
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
