//! The Linux host: files with Unix permissions, processes, routes, and host facts from the kernel.

pub mod cleanup;
pub mod probe;
mod routes;

pub use routes::RouteTable;

use super::{CommandOutput, Host, HostError, files};
use crate::settings::HostFacts;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The real Linux host.
#[derive(Debug, Default)]
pub struct Native;

impl Host for Native {
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError> {
        files::create_dir(path)
    }

    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
        let mode = if private { 0o600 } else { 0o644 };
        files::write_atomic(path, contents, |tmp| {
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode)).map_err(|source| HostError::Io {
                op: "set permissions on",
                path: tmp.to_path_buf(),
                source,
            })
        })
    }

    fn remove_path(&mut self, path: &Path) -> Result<(), HostError> {
        files::remove_path(path)
    }

    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError> {
        files::run(program, args)
    }
}

/// Hostname, interface addresses and CNI plugin directories of this host.
pub fn facts() -> HostFacts {
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
    let cni_bin_dirs = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"]
        .into_iter()
        .filter(|d| Path::new(d).join("bridge").exists())
        .map(str::to_string)
        .collect();
    HostFacts { hostname, interfaces, cni_bin_dirs }
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
    fn private_files_are_owner_only_and_others_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = (dir.path().join("config"), dir.path().join("cni.conf"));
        Native.write_file(&secret, b"s", true).unwrap();
        Native.write_file(&public, b"p", false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
        // Replacing keeps the new file's mode, not the old one's.
        Native.write_file(&public, b"p2", true).unwrap();
        assert_eq!(mode(&public), 0o600);
    }
}
