//! The Windows host: files with ACLs, processes, routes, and host facts. Thin: decisions are made elsewhere.

mod acl;
pub mod cleanup;
mod hns;
pub mod probe;
pub mod process;
mod routes;
pub mod scm;

pub use acl::protect_dir;
pub use hns::{create_host_endpoint, enable_forwarding, remove_host_endpoint};
pub use routes::RouteTable;

use super::machine::Machine;
use super::{HostError, files};
use std::path::Path;

/// Replaces `path` atomically; `private` drops inherited ACEs and grants only Administrators and SYSTEM.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
    files::write_atomic(path, contents, |tmp| {
        if !private {
            return Ok(());
        }
        // Drop inherited ACEs and grant only Administrators and SYSTEM (well-known SIDs, any locale).
        let args: Vec<String> = [
            tmp.to_string_lossy().as_ref(),
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-32-544:F",
            "/grant:r",
            "*S-1-5-18:F",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = files::run("icacls", &args)?;
        if out.status == Some(0) {
            Ok(())
        } else {
            Err(HostError::CommandFailed {
                command: format!("icacls {}", args.join(" ")),
                status: out.status,
                stderr: out.stderr + &out.stdout,
            })
        }
    })
}

/// Windows has no cgroups.
pub fn create_cgroup(path: &str) -> Result<(), HostError> {
    Err(HostError::Unsupported { what: format!("creating cgroup {path}") })
}

/// Windows runs any `.exe`; there is no executable bit to set.
pub fn set_executable(_path: &Path) -> Result<(), HostError> {
    Ok(())
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io { op, path: path.to_path_buf(), source }
}

/// Puts `staged` at `target`. A running `.exe` cannot be replaced or deleted on Windows, but it can be renamed:
/// the old file is renamed to `keep` (or aside, then deleted if nothing runs it) before the new one moves in.
pub fn replace_file(staged: &Path, target: &Path, keep: Option<&Path>) -> Result<(), HostError> {
    if !target.exists() {
        return std::fs::rename(staged, target).map_err(io_error("install", target));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let aside = match keep {
        Some(keep) => keep.to_path_buf(),
        None => target.with_file_name(format!(".{name}.wkjoin-old-{}", std::process::id())),
    };
    std::fs::rename(target, &aside).map_err(io_error("move aside", target))?;
    if let Err(e) = std::fs::rename(staged, target) {
        // Put the old binary back so the node keeps a working one.
        let _ = std::fs::rename(&aside, target);
        return Err(io_error("install", target)(e));
    }
    if keep.is_none() && std::fs::remove_file(&aside).is_err() {
        tracing::debug!("{} is still running; it stays at {} until then", name, aside.display());
    }
    Ok(())
}

/// Hostname, Windows build and the interfaces' addresses (IP Helper) of this host.
pub fn facts() -> Machine {
    Machine {
        hostname: std::env::var("COMPUTERNAME").ok(),
        interfaces: routes::interface_addresses(),
        windows_build: windows_build(),
    }
}

/// Windows files keep the ACL of their directory: nothing to carry over.
pub fn owner_only(_path: &Path) -> Option<bool> {
    None
}

/// A service's command line is in the SCM, not readable per process here: the caller falls back to defaults.
pub fn process_cmdline(_pid: u32) -> Option<Vec<String>> {
    None
}

/// The OS build (17763, 20348, ...): `CurrentBuildNumber` in the registry, as preflight reads it.
pub fn windows_build() -> Option<u32> {
    probe::windows_version().and_then(|v| v.build)
}

#[cfg(test)]
mod tests {
    /// The addresses IP Helper reports are this machine's own (a socket binds to each), with the interface's alias.
    #[test]
    fn interface_addresses_come_from_ip_helper() {
        let found = super::facts().interfaces;
        assert!(!found.is_empty(), "no interface addresses");
        for (name, net) in &found {
            assert!(!name.is_empty(), "{net} has no interface name");
            assert!(crate::host::is_local_address(net.addr()), "{name}: {net} is not an address of this machine");
        }
    }
}
