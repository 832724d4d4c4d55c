//! The machine with its service manager: the Windows SCM, systemd units (systemd as PID 1), or wkjoin's own
//! supervisor (detached, or attached with `--foreground`). Everything but the services goes to [`Native`].

use super::native::Native;
use super::net::{Route, RouteChange};
use super::service::ServiceSpec;
use super::supervisor::{self, ServicesFile, SupervisorError};
use super::{CommandOutput, Host, HostError, cri, process, scm_calls, systemd};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a stopped supervisor gets before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Who runs the node services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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

    /// The manager of this machine: `foreground` always means the attached supervisor.
    pub fn detect(foreground: bool) -> Manager {
        match (cfg!(windows), process::systemd_is_init(), foreground) {
            (_, _, true) => Manager::Supervisor,
            (true, _, false) => Manager::Scm,
            (false, true, false) => Manager::Systemd,
            (false, false, false) => Manager::Supervisor,
        }
    }
}

/// The supervisor's files (under wkjoin's root dir) and how it is started.
#[derive(Debug, Clone)]
pub struct SupervisorFiles {
    pub run_dir: PathBuf,
    pub pid_file: PathBuf,
    pub services_file: PathBuf,
    pub log: PathBuf,
    /// `wkjoin start --supervise --root-dir <root>` starts a detached supervisor for this root.
    pub root: String,
    /// Run it in this process (`wkjoin start --foreground`) instead of detached.
    pub foreground: bool,
}

impl SupervisorFiles {
    pub fn new(run_dir: &str, log_dir: &str, root: &str, foreground: bool) -> SupervisorFiles {
        let run_dir = PathBuf::from(run_dir);
        SupervisorFiles {
            pid_file: run_dir.join("supervisor.pid"),
            services_file: run_dir.join("services.json"),
            log: PathBuf::from(log_dir).join("supervisor.log"),
            root: root.to_string(),
            foreground,
            run_dir,
        }
    }

    /// The pid of a live supervisor for this root dir (checked by its command line, so a reused pid is not taken).
    pub fn live(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()?;
        if pid == std::process::id() {
            return Some(pid);
        }
        let cmd = process::cmdline(pid)?;
        let ours = cmd.iter().any(|a| a == "start") && cmd.iter().any(|a| a == "--supervise" || a == "--foreground");
        (ours && process::is_running(pid)).then_some(pid)
    }

    /// The services the running supervisor was last given.
    pub fn running_services(&self) -> Option<Vec<ServiceSpec>> {
        self.live()?;
        supervisor::load_services(&self.services_file).ok().map(|f| f.services)
    }
}

/// The machine with its service manager.
pub struct System {
    pub manager: Manager,
    files: SupervisorFiles,
    /// Every service this run manages, for the SCM's stop order (dependents stop first).
    managed: Vec<ServiceSpec>,
    /// Specs installed so far in this run, in order: the supervisor runs exactly these.
    installed: Vec<ServiceSpec>,
    /// Services whose definition changed in this run (they restart when started).
    changed: BTreeSet<String>,
    reload_units: bool,
    attached: Option<tokio::task::JoinHandle<Result<(), SupervisorError>>>,
}

impl System {
    pub fn new(manager: Manager, files: SupervisorFiles, managed: Vec<ServiceSpec>) -> System {
        System {
            manager,
            files,
            managed,
            installed: Vec::new(),
            changed: BTreeSet::new(),
            reload_units: false,
            attached: None,
        }
    }

    /// With `--foreground`: supervises the services in this process until SIGTERM or Ctrl-C.
    pub async fn wait_attached(&mut self) -> Result<bool, HostError> {
        let Some(task) = self.attached.take() else { return Ok(false) };
        match task.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(HostError::Unsupported { what: format!("the attached supervisor: {e}") }),
            Err(e) => Err(HostError::Unsupported { what: format!("the attached supervisor: {e}") }),
        }
    }

    fn write_services(&self) -> Result<(), HostError> {
        let json = serde_json::to_vec(&self.installed).expect("services serialize");
        let digest = crate::host::digest_hex(&json);
        let file = ServicesFile { plan_digest: digest, services: self.installed.clone() };
        let text = serde_json::to_vec_pretty(&file).expect("services serialize");
        Native.write_file(&self.files.services_file, &text, false)
    }

    async fn launch(&mut self) -> Result<u32, HostError> {
        let f = &self.files;
        if f.foreground {
            let (run_dir, services, pid_file) = (f.run_dir.clone(), f.services_file.clone(), f.pid_file.clone());
            self.attached = Some(tokio::spawn(supervisor::run(run_dir, services, pid_file)));
        } else {
            let exe = std::env::current_exe().map_err(|source| HostError::Io {
                op: "find",
                path: PathBuf::from("wkjoin's own executable"),
                source,
            })?;
            let _ = std::fs::remove_file(&f.pid_file);
            let args = vec!["start".to_string(), "--supervise".into(), "--root-dir".into(), f.root.clone()];
            let pid = process::spawn_detached(&exe, &args, &f.log)?;
            tracing::info!("started the wkjoin supervisor (pid {pid}, log {})", f.log.display());
        }
        // The supervisor writes its pid file once it handles signals; until then a SIGHUP would kill it.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(pid) = self.files.live() {
                return Ok(pid);
            }
            let gone = self.attached.as_ref().is_some_and(|t| t.is_finished());
            if gone || Instant::now() > deadline {
                let log = self.files.log.display().to_string();
                return Err(HostError::Unsupported {
                    what: format!(
                        "starting the wkjoin supervisor (it did not come up; see {log}{})",
                        last_lines(&log, 10)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The last lines of a log, for an error message.
pub fn last_lines(path: &str, n: usize) -> String {
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

fn systemctl(args: &[&str]) -> Result<CommandOutput, HostError> {
    super::native::run_ok(&mut Native, "systemctl", &args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

/// Whether a service runs under `manager` (the supervisor is judged as a whole, by its services file).
pub fn service_active(manager: Manager, name: &str) -> bool {
    match manager {
        Manager::Supervisor => false,
        Manager::Systemd => systemctl(&["is-active", "--quiet", &systemd::unit_name(name)]).is_ok(),
        Manager::Scm => super::scm::service_running(name).unwrap_or(false),
    }
}

impl Host for System {
    fn is_windows(&self) -> bool {
        cfg!(windows)
    }
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError> {
        Native.create_dir(path)
    }
    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
        Native.write_file(path, contents, private)
    }
    fn remove_path(&mut self, path: &Path) -> Result<(), HostError> {
        Native.remove_path(path)
    }
    fn read_file(&mut self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        Native.read_file(path)
    }
    fn owner_only(&mut self, path: &Path) -> Option<bool> {
        Native.owner_only(path)
    }
    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError> {
        Native.run(program, args)
    }
    fn create_cgroup(&mut self, path: &str) -> Result<(), HostError> {
        Native.create_cgroup(path)
    }
    fn install_self(&mut self, path: &Path) -> Result<bool, HostError> {
        Native.install_self(path)
    }
    fn unmount(&mut self, path: &str) -> Result<(), HostError> {
        Native.unmount(path)
    }
    fn stop_process(&mut self, pid: u32, program: Option<&str>) -> Result<(), HostError> {
        Native.stop_process(pid, program)
    }

    fn install_service(&mut self, spec: &ServiceSpec) -> Result<bool, HostError> {
        let changed = match self.manager {
            Manager::Systemd => {
                let path = systemd::unit_path(&spec.name);
                let text = systemd::unit_text(spec);
                let same = std::fs::read_to_string(&path).is_ok_and(|t| t == text);
                if !same {
                    Native.write_file(Path::new(&path), text.as_bytes(), false)?;
                    self.reload_units = true;
                }
                !same
            }
            Manager::Scm => scm_calls::needs_restart(&super::scm::install_service(spec)?),
            Manager::Supervisor => {
                let running = self.files.running_services().unwrap_or_default();
                !running.iter().any(|r| r == spec)
            }
        };
        self.installed.retain(|s| s.name != spec.name);
        self.installed.push(spec.clone());
        if changed {
            self.changed.insert(spec.name.clone());
        }
        Ok(changed)
    }

    async fn start_service(&mut self, name: &str, restart: bool) -> Result<(), HostError> {
        let restart = restart || self.changed.contains(name);
        match self.manager {
            Manager::Systemd => {
                if std::mem::take(&mut self.reload_units) {
                    systemctl(&["daemon-reload"])?;
                }
                let unit = systemd::unit_name(name);
                systemctl(&["enable", &unit])?;
                systemctl(&[if restart { "restart" } else { "start" }, &unit])?;
                tracing::info!("started {name} as {unit} (journalctl -u {unit})");
            }
            Manager::Scm => {
                if restart {
                    let specs: Vec<&ServiceSpec> = self.managed.iter().chain(self.installed.iter()).collect();
                    for n in scm_calls::stop_order(&specs, name) {
                        super::stop_service(&n)?;
                    }
                }
                super::scm::start_service(name)?;
            }
            Manager::Supervisor => {
                self.write_services()?;
                match self.files.live() {
                    Some(pid) => process::reload(pid)?,
                    None => {
                        self.launch().await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn stop_service(&mut self, name: &str) -> Result<(), HostError> {
        match self.manager {
            Manager::Systemd => systemctl(&["stop", &systemd::unit_name(name)]).map(|_| ()),
            _ => super::stop_service(name),
        }
    }

    fn remove_service(&mut self, name: &str) -> Result<(), HostError> {
        match self.manager {
            Manager::Systemd => {
                let path = systemd::unit_path(name);
                if !Path::new(&path).exists() {
                    return Ok(());
                }
                systemctl(&["disable", "--now", &systemd::unit_name(name)])?;
                Native.remove_path(Path::new(&path))?;
                systemctl(&["daemon-reload"]).map(|_| ())
            }
            _ => super::delete_service(name),
        }
    }

    async fn change_routes(&mut self, changes: &[RouteChange]) -> Result<(), HostError> {
        Native.change_routes(changes).await
    }
    async fn delete_route(&mut self, route: &Route) -> Result<(), HostError> {
        Native.delete_route(route).await
    }
    async fn remove_link(&mut self, name: &str) -> Result<(), HostError> {
        Native.remove_link(name).await
    }
    fn create_hns_network(&mut self, name: &str, definition: &str) -> Result<bool, HostError> {
        Native.create_hns_network(name, definition)
    }
    fn create_host_endpoint(
        &mut self,
        network: &str,
        name: &str,
        address: std::net::IpAddr,
    ) -> Result<bool, HostError> {
        Native.create_host_endpoint(network, name, address)
    }
    fn remove_host_endpoint(&mut self, name: &str) -> Result<bool, HostError> {
        Native.remove_host_endpoint(name)
    }
    fn enable_forwarding(&mut self, address: std::net::IpAddr) -> Result<bool, HostError> {
        Native.enable_forwarding(address)
    }
    fn hns_network_subnets(&mut self, name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError> {
        Native.hns_network_subnets(name)
    }
    fn interface_with_address(&mut self, address: std::net::IpAddr) -> Result<Option<String>, HostError> {
        Native.interface_with_address(address)
    }
    fn delete_hns_network(&mut self, name: &str) -> Result<(), HostError> {
        Native.delete_hns_network(name)
    }
    fn allow_firewall_port(&mut self, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError> {
        Native.allow_firewall_port(rule, protocol, port)
    }
    fn remove_firewall_rule(&mut self, rule: &str) -> Result<(), HostError> {
        Native.remove_firewall_rule(rule)
    }
    async fn runtime_status(&mut self, endpoint: &str) -> Result<cri::CriStatus, HostError> {
        Native.runtime_status(endpoint).await
    }
    async fn runtime_has_image(&mut self, endpoint: &str, image: &str) -> Result<bool, HostError> {
        Native.runtime_has_image(endpoint, image).await
    }
}

/// Stops the supervisor of these files (TERM, KILL after [`STOP_TIMEOUT`]) and any process still running one of
/// `programs`. Returns whether a supervisor was running.
pub async fn stop_supervisor(files: &SupervisorFiles, programs: &[String]) -> Result<bool, HostError> {
    let sup = files.live().filter(|p| *p != std::process::id());
    if let Some(pid) = sup {
        process::terminate(pid)?;
        if !wait_gone(&[pid], STOP_TIMEOUT).await {
            tracing::warn!("the supervisor (pid {pid}) did not stop within {STOP_TIMEOUT:?}: killing it");
            process::force_kill(pid)?;
            wait_gone(&[pid], Duration::from_secs(5)).await;
        }
    }
    let left = || programs.iter().flat_map(|b| process::processes_of(Path::new(b))).collect::<Vec<u32>>();
    let pids = left();
    if !pids.is_empty() {
        tracing::warn!("stopping leftover processes {pids:?} of {}", programs.join(", "));
        for p in &pids {
            process::terminate(*p)?;
        }
        if !wait_gone(&pids, supervisor::STOP_GRACE).await {
            for p in left() {
                process::force_kill(p)?;
            }
        }
        if !wait_gone(&left(), Duration::from_secs(5)).await {
            return Err(HostError::Signal {
                pid: left().first().copied().unwrap_or_default(),
                signal: "SIGKILL",
                message: format!("processes {:?} still run after SIGKILL", left()),
            });
        }
    }
    let _ = std::fs::remove_file(&files.pid_file);
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
