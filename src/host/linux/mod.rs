//! The Linux host: files with Unix permissions, processes, routes, and host facts from the kernel.

pub mod cleanup;
pub mod probe;
pub mod process;
mod routes;
pub mod scm;

pub use routes::RouteTable;

use super::machine::Machine;
use super::{HostError, files};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` atomically with mode 0600 (`private`) or 0644.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
    let mode = if private { 0o600 } else { 0o644 };
    files::write_atomic(path, contents, |tmp| {
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode)).map_err(|source| HostError::Io {
            op: "set permissions on",
            path: tmp.to_path_buf(),
            source,
        })
    })
}

/// As `scripts/lab`'s make_cgroup_root: the path in every v1 hierarchy (cpuset filled from its parent, or
/// tasks could not join it) and in the unified v2 tree.
pub fn create_cgroup(path: &str) -> Result<(), HostError> {
    create_cgroup_under(Path::new("/sys/fs/cgroup"), path)
}

fn create_cgroup_under(base: &Path, path: &str) -> Result<(), HostError> {
    let rel = path.trim_start_matches('/');
    let mut roots = Vec::new();
    if base.join("cgroup.procs").exists() {
        // cgroup v2 only: one unified tree (its subdirectories are cgroups, not hierarchies).
        roots.push(base.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let p = e.path();
            // Skip the v1 "name=systemd"-style links (cpu -> cpu,cpuacct) that point at a hierarchy we visit.
            if p.is_dir() && !e.file_type().is_ok_and(|t| t.is_symlink()) && p.join("cgroup.procs").exists() {
                roots.push(p);
            }
        }
    }
    for root in roots {
        let dir = root.join(rel);
        files::create_dir(&dir)?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let (mine, parent) = (dir.join(f), root.join(f));
            if std::fs::read_to_string(&mine).is_ok_and(|v| v.trim().is_empty())
                && let Ok(v) = std::fs::read_to_string(&parent)
            {
                std::fs::write(&mine, v.trim()).map_err(io_error("fill", &mine))?;
            }
        }
    }
    Ok(())
}

/// Hostname, interface addresses and CNI plugin directories of this host.
pub fn facts() -> Machine {
    let hostname = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
    let mut interfaces = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let (Some(addr), Some(mask)) = (a.address, a.netmask) else { continue };
            let net =
                match (addr.as_sockaddr_in(), mask.as_sockaddr_in(), addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                    (Some(ip), Some(m), _, _) => {
                        ipnet::Ipv4Net::with_netmask(ip.ip(), m.ip()).ok().map(ipnet::IpNet::V4)
                    }
                    (_, _, Some(ip), Some(m)) => {
                        ipnet::Ipv6Net::with_netmask(ip.ip(), m.ip()).ok().map(ipnet::IpNet::V6)
                    }
                    _ => None,
                };
            if let Some(net) = net {
                interfaces.push((a.interface_name, net));
            }
        }
    }
    Machine { hostname, interfaces, windows_build: None }
}

/// Whether only the owner may read `path` (no group or other read bit); None when it cannot be read.
pub fn owner_only(path: &Path) -> Option<bool> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o044 == 0)
}

/// The command line of a running process (`/proc/<pid>/cmdline`), if it can be read.
pub fn process_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> =
        raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    (!args.is_empty()).then_some(args)
}

/// The root dir wkjoin creates: writable by root only (0755), whatever the umask.
pub fn protect_dir(path: &Path) -> Result<(), HostError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| HostError::Io {
        op: "set the mode of",
        path: path.to_path_buf(),
        source,
    })
}

/// Marks an installed binary executable for everyone (0755), as package managers install them.
pub fn set_executable(path: &Path) -> Result<(), HostError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| HostError::Io {
        op: "make executable",
        path: path.to_path_buf(),
        source,
    })
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io { op, path: path.to_path_buf(), source }
}

/// Puts `staged` at `target` with one rename, so `target` always exists; the old file is first hard-linked
/// to `keep` (a copy where links are not supported). Renaming over a running binary is fine on Linux.
pub fn replace_file(staged: &Path, target: &Path, keep: Option<&Path>) -> Result<(), HostError> {
    if let Some(keep) = keep.filter(|_| target.exists()) {
        files::remove_path(keep)?;
        if std::fs::hard_link(target, keep).is_err() {
            std::fs::copy(target, keep).map_err(io_error("keep a copy of", target))?;
        }
    }
    std::fs::rename(staged, target).map_err(io_error("replace", target))
}

/// Linux has no Windows build.
pub fn windows_build() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_go_into_every_v1_hierarchy_with_cpusets_filled() {
        let base = tempfile::tempdir().unwrap();
        for h in ["cpuset", "memory"] {
            std::fs::create_dir(base.path().join(h)).unwrap();
            std::fs::write(base.path().join(h).join("cgroup.procs"), "").unwrap();
        }
        std::fs::write(base.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::create_dir_all(base.path().join("cpuset/wkj")).unwrap();
        std::fs::write(base.path().join("cpuset/wkj/cpuset.cpus"), "").unwrap();
        create_cgroup_under(base.path(), "/wkj").unwrap();
        assert!(base.path().join("memory/wkj").is_dir());
        assert_eq!(std::fs::read_to_string(base.path().join("cpuset/wkj/cpuset.cpus")).unwrap(), "0-1");
    }

    #[test]
    fn private_files_are_owner_only_and_others_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = (dir.path().join("config"), dir.path().join("cni.conf"));
        crate::host::Host::write_file(&mut crate::host::Native, &secret, b"s", true).unwrap();
        crate::host::Host::write_file(&mut crate::host::Native, &public, b"p", false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
        // Replacing keeps the new file's mode, not the old one's.
        crate::host::Host::write_file(&mut crate::host::Native, &public, b"p2", true).unwrap();
        assert_eq!(mode(&public), 0o600);
    }
}
