//! The wkjoin supervisor (Linux without systemd, e.g. the lab): runs the node services from a services file,
//! restarts a crashed one with backoff, writes each one's output to a size-rotated log, and stops them all on
//! SIGTERM. `wkjoin start` runs it detached (`start --supervise`) or attached (`start --foreground`).

use crate::host::HostError;
use crate::host::process::{self, Request, Signals};
use crate::host::service::ServiceSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};

/// A service that ran this long before exiting was healthy: its next restart starts the backoff over.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long a service gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// A service log is rotated at this size; `KEEP_LOGS` older files are kept.
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const KEEP_LOGS: u32 = 3;

/// What the supervisor runs: written by `wkjoin start`, re-read on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct ServicesFile {
    /// Digest of the start plan these services come from.
    pub plan_digest: String,
    pub services: Vec<ServiceSpec>,
}

pub use crate::host::service::restart_delay;

/// A log file rotated by size: `name.log` → `name.log.1` → … → `name.log.<keep>`.
pub struct RotatingLog {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max: u64,
    keep: u32,
}

impl RotatingLog {
    pub fn open(path: &Path, max: u64, keep: u32) -> std::io::Result<RotatingLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog { path: path.to_path_buf(), file, size, max, keep })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }
}

fn note(log: &Mutex<RotatingLog>, text: &str) {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    if let Ok(mut l) = log.lock() {
        let _ = l.write_line(format!("{stamp} wkjoin-supervisor: {text}").as_bytes());
    }
}

/// The pid file of a running service, so `start --stop` and tests can find it.
pub fn pid_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pid"))
}

async fn pump(reader: impl tokio::io::AsyncRead + Unpin, log: Arc<Mutex<RotatingLog>>) {
    let mut lines = BufReader::new(reader).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        if let Ok(mut l) = log.lock() {
            let _ = l.write_line(&line);
        }
    }
}

/// Runs one service until `stop` fires, restarting it with backoff whenever it exits.
async fn run_service(spec: ServiceSpec, run_dir: PathBuf, mut stop: oneshot::Receiver<()>) {
    let log = match RotatingLog::open(Path::new(&spec.log_file), LOG_MAX_BYTES, KEEP_LOGS) {
        Ok(l) => Arc::new(Mutex::new(l)),
        Err(e) => {
            tracing::error!("{}: cannot open its log {}: {e}", spec.name, spec.log_file);
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(&spec.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let outcome = match cmd.spawn() {
            Err(e) => Err(format!("cannot start {}: {e}", spec.program)),
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                note(&log, &format!("started {} (pid {pid})", spec.name));
                tracing::info!("started {} (pid {pid})", spec.name);
                let _ = std::fs::write(pid_file(&run_dir, &spec.name), pid.to_string());
                let out = child.stdout.take().map(|o| tokio::spawn(pump(o, log.clone())));
                let err = child.stderr.take().map(|e| tokio::spawn(pump(e, log.clone())));
                let result = tokio::select! {
                    status = child.wait() => Ok(status),
                    _ = &mut stop => Err(()),
                };
                match result {
                    Ok(status) => {
                        for t in [out, err].into_iter().flatten() {
                            let _ = t.await;
                        }
                        Ok(status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
                    }
                    Err(()) => {
                        let _ = process::stop_child(&mut child);
                        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                            note(&log, &format!("{} did not stop within {STOP_GRACE:?}: killing it", spec.name));
                            let _ = child.kill().await;
                        }
                        let _ = std::fs::remove_file(pid_file(&run_dir, &spec.name));
                        note(&log, &format!("stopped {}", spec.name));
                        return;
                    }
                }
            }
        };
        let _ = std::fs::remove_file(pid_file(&run_dir, &spec.name));
        if started.elapsed() >= STABLE_AFTER {
            failures = 0;
        }
        failures += 1;
        let delay = restart_delay(&spec.restart, failures);
        let why = match outcome {
            Ok(status) => format!("{} exited ({status})", spec.name),
            Err(e) => e,
        };
        note(&log, &format!("{why}; restarting in {}s", delay.as_secs()));
        tracing::warn!("{why}; restarting in {}s", delay.as_secs());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut stop => return,
        }
    }
}

struct Running {
    spec: ServiceSpec,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn stop_running(r: Running) {
    let _ = r.stop.send(());
    let _ = r.task.await;
}

/// Supervises the services in `desired` until `stop` resolves: a new service is started, a changed one
/// restarted, a removed one stopped; at the end all are stopped, last started first.
pub async fn supervise(
    mut desired: watch::Receiver<Vec<ServiceSpec>>,
    run_dir: PathBuf,
    stop: impl Future<Output = ()>,
) {
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    tokio::pin!(stop);
    loop {
        let want = desired.borrow_and_update().clone();
        let names: Vec<String> = want.iter().map(|s| s.name.clone()).collect();
        for name in running.keys().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>() {
            if let Some(r) = running.remove(&name) {
                stop_running(r).await;
            }
        }
        for spec in want {
            if running.get(&spec.name).is_some_and(|r| r.spec == spec) {
                continue;
            }
            if let Some(r) = running.remove(&spec.name) {
                stop_running(r).await;
            }
            let (tx, rx) = oneshot::channel();
            let task = tokio::spawn(run_service(spec.clone(), run_dir.clone(), rx));
            running.insert(spec.name.clone(), Running { spec, stop: tx, task });
        }
        order.retain(|n| running.contains_key(n));
        for n in names {
            if running.contains_key(&n) && !order.contains(&n) {
                order.push(n);
            }
        }
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { break },
            _ = &mut stop => break,
        }
    }
    for name in order.iter().rev() {
        if let Some(r) = running.remove(name) {
            stop_running(r).await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot read the services file {}: {message}", path.display())]
    Services { path: PathBuf, message: String },
    #[error(transparent)]
    Host(#[from] HostError),
}

pub fn load_services(path: &Path) -> Result<ServicesFile, SupervisorError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SupervisorError::Services { path: path.to_path_buf(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| SupervisorError::Services { path: path.to_path_buf(), message: e.to_string() })
}

/// `wkjoin start --supervise`: the detached supervisor. Reads `services_file`, re-reads it on SIGHUP, stops on
/// SIGTERM. It writes its pid file once it handles signals, and removes it on exit.
pub async fn run_detached(run_dir: PathBuf, services_file: PathBuf, pid_file: PathBuf) -> Result<(), SupervisorError> {
    process::detach_session();
    run(run_dir, services_file, pid_file).await
}

/// The supervisor loop itself, in this process (`wkjoin start --foreground` runs it attached): no services file
/// yet means no services until the first SIGHUP.
pub async fn run(run_dir: PathBuf, services_file: PathBuf, pid_file: PathBuf) -> Result<(), SupervisorError> {
    let mut signals = Signals::new()?;
    let first = if services_file.exists() { load_services(&services_file)? } else { ServicesFile::default() };
    // Written only now that SIGHUP reloads instead of killing: `wkjoin start` waits for it.
    std::fs::write(&pid_file, std::process::id().to_string()).map_err(|source| HostError::Io {
        op: "write",
        path: pid_file.clone(),
        source,
    })?;
    let (tx, rx) = watch::channel(first.services);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sup = tokio::spawn(supervise(rx, run_dir, async move {
        let _ = stop_rx.await;
    }));
    loop {
        match signals.next().await {
            Request::Stop => break,
            Request::Reload => match load_services(&services_file) {
                Ok(f) => {
                    tracing::info!(
                        "reloading services: {}",
                        f.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    );
                    let _ = tx.send(f.services);
                }
                Err(e) => tracing::error!("{e}; keeping the running services"),
            },
        }
    }
    tracing::info!("stopping the services");
    let _ = stop_tx.send(());
    let _ = sup.await;
    if std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string()) {
        let _ = std::fs::remove_file(&pid_file);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::service::Restart;

    #[test]
    fn restart_delay_doubles_from_5s_to_60s() {
        let r = Restart { delay_secs: 5, max_delay_secs: 60 };
        let secs: Vec<u64> = (1..=6).map(|n| restart_delay(&r, n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
        assert_eq!(restart_delay(&r, 500).as_secs(), 60);
    }

    #[test]
    fn logs_rotate_by_size_and_keep_a_few() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.log");
        let mut log = RotatingLog::open(&path, 20, 2).unwrap();
        for i in 0..10 {
            log.write_line(format!("line {i:04}").as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "line 0008\nline 0009\n");
        assert_eq!(read(&dir.path().join("kubelet.log.1")), "line 0006\nline 0007\n");
        assert_eq!(read(&dir.path().join("kubelet.log.2")), "line 0004\nline 0005\n");
        assert!(!dir.path().join("kubelet.log.3").exists());
    }

    #[cfg(unix)]
    fn spec(name: &str, script: &str, log: &Path) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            description: name.into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Default::default(),
            depends_on: vec![],
            log_file: log.display().to_string(),
            restart: Restart { delay_secs: 0, max_delay_secs: 0 },
        }
    }

    // The Windows build runs services under the SCM (tests/winsvc.rs).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_crashed_service_is_restarted_and_all_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        let (tx, rx) = watch::channel(vec![spec("svc", "echo run; exit 3", &log)]);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let sup = tokio::spawn(supervise(rx, dir.path().to_path_buf(), async move {
            let _ = stop_rx.await;
        }));
        // Wait (bounded) until it has run at least three times.
        for _ in 0..200 {
            if std::fs::read_to_string(&log).unwrap_or_default().matches("run\n").count() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.matches("run\n").count() >= 3, "{text}");
        assert!(text.contains("exited (exit status: 3)"), "{text}");
        // A changed spec replaces the running one.
        tx.send(vec![spec("svc", "echo long; exec sleep 600", &log)]).unwrap();
        let pid_path = pid_file(dir.path(), "svc");
        let mut pid = 0;
        for _ in 0..200 {
            if std::fs::read_to_string(&log).unwrap().contains("long\n")
                && let Some(p) = std::fs::read_to_string(&pid_path).ok().and_then(|p| p.parse().ok())
            {
                pid = p;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(pid > 0 && process::is_running(pid));
        stop_tx.send(()).unwrap();
        sup.await.unwrap();
        assert!(!process::is_running(pid), "the service was stopped with the supervisor");
        assert!(!pid_path.exists());
    }
}
