//! Processes on Linux: the detached supervisor, signals, and finding the node services by executable.

use super::super::HostError;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

/// Starts `program args` detached from this terminal, its output appended to `log`; returns its pid.
/// The child makes itself a session leader with [`detach_session`].
pub fn spawn_detached(program: &Path, args: &[String], log: &Path) -> Result<u32, HostError> {
    let open = || {
        std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|source| HostError::Io {
            op: "open log",
            path: log.to_path_buf(),
            source,
        })
    };
    // A daemon must not keep its caller's other descriptors open (a lock held by `flock`, a CI runner's
    // pipe): the shell closes every inherited one before it becomes the supervisor.
    let script = format!("{}exec \"$0\" \"$@\"", close_inherited(&inherited_fds()));
    // bash, not dash: dash cannot name descriptors above 9.
    let child = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(script)
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .map_err(|source| HostError::Spawn { program: program.display().to_string(), source })?;
    Ok(child.id())
}

/// This process's open descriptors beyond stdin, stdout and stderr.
fn inherited_fds() -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect())
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// bash redirections that close `fds` (closing one that is not open is harmless).
fn close_inherited(fds: &[u32]) -> String {
    fds.iter().map(|fd| format!("exec {fd}>&- ; ")).collect()
}

/// Leaves the caller's session (and so its terminal): the detached supervisor survives the shell that ran it.
pub fn detach_session() {
    let _ = nix::unistd::setsid();
}

/// Whether `pid` is a live process (not a zombie).
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state letter follows the parenthesised command name.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// The command line of `pid`.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
}

trait StaticName {
    fn as_str_static(&self) -> &'static str;
}

impl StaticName for Signal {
    fn as_str_static(&self) -> &'static str {
        match self {
            Signal::SIGTERM => "SIGTERM",
            Signal::SIGKILL => "SIGKILL",
            Signal::SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }
}

fn send(pid: u32, sig: Signal) -> Result<(), HostError> {
    match kill(Pid::from_raw(pid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(HostError::Signal { pid, signal: sig.as_str_static(), message: e.desc().to_string() }),
    }
}

/// Asks `pid` to stop (SIGTERM).
pub fn terminate(pid: u32) -> Result<(), HostError> {
    send(pid, Signal::SIGTERM)
}

/// Stops `pid` at once (SIGKILL).
pub fn force_kill(pid: u32) -> Result<(), HostError> {
    send(pid, Signal::SIGKILL)
}

/// Tells the supervisor to re-read its services (SIGHUP).
pub fn reload(pid: u32) -> Result<(), HostError> {
    send(pid, Signal::SIGHUP)
}

/// Live processes running the executable `exe`.
pub fn processes_of(exe: &Path) -> Vec<u32> {
    let want = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(target) = std::fs::read_link(e.path().join("exe")) else { continue };
        // A replaced binary shows as "<path> (deleted)".
        let shown = target.to_string_lossy();
        let path = PathBuf::from(shown.strip_suffix(" (deleted)").unwrap_or(&shown));
        if path == want && is_running(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether systemd manages this host (it is PID 1).
pub fn systemd_is_init() -> bool {
    std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// What the supervisor is asked to do by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT: stop the services and exit.
    Stop,
    /// SIGHUP: re-read the services file.
    Reload,
}

/// The supervisor's signals.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> Result<Signals, HostError> {
        use tokio::signal::unix::{SignalKind, signal};
        let sig = |k: SignalKind, name: &'static str| {
            signal(k).map_err(|e| HostError::Signal { pid: std::process::id(), signal: name, message: e.to_string() })
        };
        Ok(Signals {
            term: sig(SignalKind::terminate(), "SIGTERM")?,
            int: sig(SignalKind::interrupt(), "SIGINT")?,
            hup: sig(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop,
            _ = self.int.recv() => Request::Stop,
            _ = self.hup.recv() => Request::Reload,
        }
    }
}

/// Asks a child service to stop (SIGTERM); the caller waits and kills it after a grace period.
pub fn stop_child(child: &mut tokio::process::Child) -> Result<(), HostError> {
    match child.id() {
        Some(pid) => terminate(pid),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_process_does_not_inherit_the_callers_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        // A descriptor without close-on-exec, as `flock FILE cmd` leaves one to its command.
        let lock = std::fs::File::create(dir.path().join("lock")).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
        nix::fcntl::fcntl(&lock, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
        let log = dir.path().join("log");
        let out = dir.path().join("fds");
        let script = format!("ls -l /proc/self/fd/ > {}", out.display());
        let pid = spawn_detached(Path::new("/bin/sh"), &["-c".into(), script], &log).unwrap();
        for _ in 0..100 {
            if out.exists() && !is_running(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let fds = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{e}; log: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        let lock_path = dir.path().join("lock").display().to_string();
        assert!(fds.contains("/proc/") || fds.contains("pipe") || fds.contains("null"), "listing: {fds}");
        assert!(!fds.contains(&lock_path), "fd {fd} ({lock_path}) was inherited: {fds}");
    }
}
