//! Everything that touches the operating system. `linux` and `windows` export the same names; this file is
//! the only place in wkjoin that chooses between them.

pub mod cri;
mod files;
pub use files::{is_local_address, run_with_input};
#[cfg(unix)]
mod linux;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
pub use linux::cleanup::{
    create_hns_network, delete_hns_network, delete_link, delete_service, stop_process, stop_service, unmount,
};
#[cfg(unix)]
pub use linux::probe;
#[cfg(unix)]
pub use linux::scm;
#[cfg(unix)]
pub use linux::{
    Native, RouteTable, facts, owner_only, process, process_cmdline, replace_file, set_executable, windows_build,
};
#[cfg(windows)]
pub use windows::cleanup::{
    create_hns_network, delete_hns_network, delete_link, delete_service, stop_process, stop_service, unmount,
};
#[cfg(windows)]
pub use windows::probe;
#[cfg(windows)]
pub use windows::scm;
#[cfg(windows)]
pub use windows::{
    Native, RouteTable, facts, owner_only, process, process_cmdline, replace_file, set_executable, windows_build,
};

use std::path::{Path, PathBuf};

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot run {program}: {source} (is it installed and on PATH?)")]
    Spawn { program: String, source: std::io::Error },
    #[error("cannot {op}{}: {message}", route.as_ref().map(|r| format!(" {r}")).unwrap_or_default())]
    Routing { op: &'static str, route: Option<String>, message: String },
    #[error("cannot send {signal} to process {pid}: {message}")]
    Signal { pid: u32, signal: &'static str, message: String },
    #[error("{what} is not supported on this host")]
    Unsupported { what: String },
    #[error("`{command}` failed with exit code {}: {}", status.map_or("none (killed)".to_string(), |s| s.to_string()), stderr.trim())]
    CommandFailed { command: String, status: Option<i32>, stderr: String },
}

/// The effects a plan is applied through. `Native` is the real host; tests may record instead.
pub trait Host {
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError>;
    /// Replaces `path` atomically; `private` restricts it to the owner (0600 / Administrators+SYSTEM).
    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError>;
    /// Removes a file or a directory tree; a missing path is not an error.
    fn remove_path(&mut self, path: &Path) -> Result<(), HostError>;
    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError>;
    /// Creates `path` (`/wkjoin`) in every cgroup hierarchy; hosts without cgroups refuse.
    fn create_cgroup(&mut self, path: &str) -> Result<(), HostError> {
        Err(HostError::Unsupported { what: format!("creating cgroup {path}") })
    }
}
