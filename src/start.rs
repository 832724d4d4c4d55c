//! `wkjoin start` applied: kubelet under the wkjoin supervisor, the pod network once the Node has its pod
//! CIDR, kube-proxy, then a Ready Node with a heartbeat newer than this start. `--stop` stops them again.

use crate::apply::{self, ApplyError};
use crate::host::process;
use crate::host::{HostError, Native};
use crate::layout::Layout;
use crate::plan::{Action, Plan, ServiceSpec};
use crate::services::supervisor::{self, ServicesFile, SupervisorError};
use crate::settings::Settings;
use crate::state::{State, StateError};
use crate::version::KubeVersion;
use crate::{fetch, image, services};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How long `start --stop` gives the supervisor to stop its services before killing everything.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot tell the installed kubelet's version ({message}): run `wkjoin fetch` first")]
    NoKubelet { message: String },
    #[error(
        "systemd manages this host, and wkjoin does not write systemd units yet: run `wkjoin start --foreground` as the ExecStart of a unit (Type=simple, KillMode=mixed, Restart=always) instead of a detached supervisor"
    )]
    Systemd,
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
    #[error("cannot {what}: {source}")]
    Wait { what: String, source: kube::runtime::wait::Error },
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
    let err = |message: String| StartError::Kubeconfig { path: path.display().to_string(), message };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| err(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
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
    if !foreground && process::systemd_is_init() {
        return Err(StartError::Systemd);
    }
    let kubelet = l.binary(services::KUBELET);
    let version = fetch::binary_version(services::KUBELET, Path::new(&kubelet))
        .await
        .and_then(|v| v.parse::<KubeVersion>().map_err(|e| e.to_string()))
        .map_err(|message| StartError::NoKubelet { message })?;
    let plan = services::plan(s, Some(version), &image::pause_image(s));
    let digest = plan.digest();
    let state_path = PathBuf::from(l.state_file());
    let mut state = State::load(&state_path)?.unwrap_or_default();

    if let Some(pid) = live_supervisor(&paths) {
        let same = state.is_done(&plan)
            && supervisor::load_services(&paths.services_file).is_ok_and(|f| {
                f.plan_digest == digest
                    && f.services.iter().filter(|sv| plan_has_service(&plan, sv)).count() == f.services.len()
            });
        if same && !foreground {
            println!(
                "unchanged: kubelet {version} and kube-proxy already run under the wkjoin supervisor (pid {pid}) with this plan"
            );
            return Ok(StartOutcome::Unchanged);
        }
        println!("the start plan changed (or --foreground was asked for): stopping the running services first");
        stop(&l).await?;
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
    let one = |a: &Action| Plan { step: plan.step, summary: plan.summary.clone(), actions: vec![a.clone()] };
    let kubelet_log = specs_log(&plan, services::KUBELET);
    for action in &plan.actions {
        match action {
            Action::InstallService(spec) => specs.push(spec.clone()),
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
                    apply::apply(&one(&a), s.os, &mut Native)?;
                    println!("{a}");
                }
            }
            Action::AwaitNodeReady { node, timeout_secs } => {
                wait_ready(&nodes, node, before, *timeout_secs, &kubelet_log).await?;
                println!("node {node} is Ready (heartbeat newer than this start)");
            }
            other => apply::apply(&one(other), s.os, &mut Native)?,
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
    let waited = tokio::time::timeout(
        Duration::from_secs(secs),
        kube::runtime::wait::await_condition(nodes.clone(), node, cond),
    )
    .await;
    let found = match waited {
        Err(_) => {
            return Err(StartError::PodCidrTimeout { node: node.into(), secs, tail: last_lines(log, 10) });
        }
        Ok(Err(e)) => {
            return Err(StartError::Wait { what: format!("watch node {node}"), source: e });
        }
        Ok(Ok(n)) => n,
    };
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
    match tokio::time::timeout(
        Duration::from_secs(secs),
        kube::runtime::wait::await_condition(nodes.clone(), node, cond),
    )
    .await
    {
        Err(_) => Err(StartError::ReadyTimeout { node: node.into(), secs, tail: last_lines(log, 10) }),
        Ok(Err(e)) => Err(StartError::Wait { what: format!("watch node {node}"), source: e }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Stops the supervisor (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and waits until no kubelet or kube-proxy of
/// this root dir runs. Returns whether a supervisor was running.
pub async fn stop(l: &Layout) -> Result<bool, StartError> {
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
