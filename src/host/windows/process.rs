//! Processes on Windows. The node services run under the Service Control Manager there (issue: start); the
//! detached supervisor is a Linux fallback, so most of this is minimal.

use super::super::HostError;
use std::path::Path;

fn unsupported(what: &str) -> HostError {
    HostError::Unsupported { what: format!("{what} (Windows runs kubelet and kube-proxy as SCM services)") }
}

pub fn spawn_detached(_program: &Path, _args: &[String], _log: &Path) -> Result<u32, HostError> {
    Err(unsupported("a detached wkjoin supervisor"))
}

pub fn detach_session() {}

/// Whether `pid` is a live process, asked through `tasklist`.
pub fn is_running(pid: u32) -> bool {
    std::process::Command::new("tasklist")
        .args(["/FI", &format!("PID eq {pid}"), "/NH"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&pid.to_string()))
}

pub fn cmdline(_pid: u32) -> Option<Vec<String>> {
    None
}

pub fn terminate(pid: u32) -> Result<(), HostError> {
    force_kill(pid)
}

pub fn force_kill(pid: u32) -> Result<(), HostError> {
    let out = super::super::files::run("taskkill", &["/F".into(), "/PID".into(), pid.to_string()])?;
    if out.status == Some(0) || !is_running(pid) {
        Ok(())
    } else {
        Err(HostError::Signal { pid, signal: "taskkill", message: out.stderr })
    }
}

pub fn reload(_pid: u32) -> Result<(), HostError> {
    Err(unsupported("reloading the supervisor"))
}

pub fn processes_of(_exe: &Path) -> Vec<u32> {
    Vec::new()
}

/// Windows has no systemd; its service manager is the SCM.
pub fn systemd_is_init() -> bool {
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Stop,
    Reload,
}

/// Ctrl-C (or Ctrl-Break) stops the supervisor; there is no reload signal on Windows.
pub struct Signals;

impl Signals {
    pub fn new() -> Result<Signals, HostError> {
        Ok(Signals)
    }

    pub async fn next(&mut self) -> Request {
        let _ = tokio::signal::ctrl_c().await;
        Request::Stop
    }
}

pub fn stop_child(child: &mut tokio::process::Child) -> Result<(), HostError> {
    child.start_kill().map_err(|e| HostError::Signal {
        pid: child.id().unwrap_or(0),
        signal: "kill",
        message: e.to_string(),
    })
}
