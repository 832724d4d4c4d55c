//! Read-only facts about this Linux host for `preflight` and `reset`: /proc, /sys, statvfs, sockets.
//! Everything here reads the calling process's network and mount namespaces.

use crate::host::machine::{Endpoint, Feature, Process, WindowsVersion};
use std::collections::HashMap;
use std::path::Path;

/// Linux has no Windows version.
pub fn windows_version() -> Option<WindowsVersion> {
    None
}

/// The Containers and Hyper-V features are Windows things.
pub fn windows_features() -> (Feature, Feature) {
    (Feature::Unknown, Feature::Unknown)
}

/// A Hyper-V guest shows `Microsoft Corporation` / `Virtual Machine` in its SMBIOS.
pub fn hyperv_guest() -> Option<bool> {
    let read = |f: &str| std::fs::read_to_string(Path::new("/sys/class/dmi/id").join(f)).ok();
    let (vendor, product) = (read("sys_vendor")?, read("product_name")?);
    Some(vendor.trim() == "Microsoft Corporation" && product.trim() == "Virtual Machine")
}

/// Connects to a `unix://` CRI endpoint (and closes at once).
pub fn runtime_endpoint(url: &str) -> Endpoint {
    let Some(path) = url.strip_prefix("unix://") else {
        return Endpoint::Unsupported { reason: "only unix:// endpoints can be reached on Linux".into() };
    };
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Endpoint::Reachable,
        Err(e) => Endpoint::Unreachable { reason: e.to_string() },
    }
}

/// A sysctl by its dotted name (`net.ipv4.ip_forward`); `None` when the kernel has no such key.
pub fn sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(key.replace('.', "/"))).ok()
}

/// Free bytes (for unprivileged users) on the file system holding `path` or its nearest existing parent.
pub fn disk_free(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Socket inodes listening on a TCP port, from /proc/net/tcp{,6} (this network namespace).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        out.extend(parse_proc_net_tcp(&text, port));
    }
    out
}

/// Inodes of LISTEN (state 0A) sockets on `port` in a /proc/net/tcp table.
fn parse_proc_net_tcp(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port && *cols.get(3)? == "0A").then(|| cols.get(9)?.parse().ok())?
        })
        .collect()
}

/// Every process's socket inodes: one pass over /proc/*/fd.
fn socket_owners() -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return owners };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse().ok())
            {
                owners.entry(inode).or_insert(pid);
            }
        }
    }
    owners
}

fn program_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| {
        let s = p.to_string_lossy().into_owned();
        // A replaced binary still running shows as `/path (deleted)`.
        s.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(s)
    })
}

/// The process listening on a TCP port in this network namespace, when it can be found.
pub fn port_holder(port: u16) -> Option<Process> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let owners = socket_owners();
    let pid = inodes.iter().find_map(|i| owners.get(i))?;
    Some(Process { pid: *pid, program: program_of(*pid) })
}

/// Running processes whose executable is one of `programs` (exact paths).
pub fn processes_running(programs: &[String]) -> Vec<Process> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some(program) = program_of(pid)
            && programs.contains(&program)
        {
            out.push(Process { pid, program: Some(program) });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// Whether a process is still alive (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The executable of a running process.
pub fn process_program(pid: u32) -> Option<String> {
    program_of(pid)
}

/// Linux nodes run the services under `wkjoin start`'s supervisor: no service manager entries.
pub fn installed_services(_names: &[&str]) -> Vec<String> {
    Vec::new()
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in), in the calling thread's
/// mount namespace.
pub fn mounts_under(dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
    mounts_in(&text, dir)
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(code) = s.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts_in(mountinfo: &str, dir: &str) -> Vec<String> {
    let dir = dir.trim_end_matches('/');
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(unescape_mount))
        .filter(|m| m == dir || m.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')))
        .collect();
    out.sort_by(|a, b| b.matches('/').count().cmp(&a.matches('/').count()).then(b.cmp(a)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_sockets_by_port() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 00000000:280A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000 100 0 0 10 0\n   \
            1: 0100007F:2809 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000 100 0 0 10 0\n   \
            2: 0C001EAC:280A 0A001EAC:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000 100 0 0 10 0\n";
        assert_eq!(parse_proc_net_tcp(text, 10250), vec![12345]);
        assert_eq!(parse_proc_net_tcp(text, 10249), vec![777]);
        assert!(parse_proc_net_tcp(text, 10256).is_empty());
    }

    #[test]
    fn mounts_below_a_dir_come_deepest_first() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
            30 22 0:50 / /var/lib/wkjoin/kubelet/pods/a/volumes/x rw - tmpfs tmpfs rw\n\
            31 22 0:51 / /var/lib/wkjoin/kubelet rw - tmpfs tmpfs rw\n\
            32 22 0:52 / /var/lib/wkjoin/kubelet2 rw - tmpfs tmpfs rw\n\
            33 22 0:53 / /var/lib/wkjoin/kubelet/pods/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounts_in(info, "/var/lib/wkjoin/kubelet/"),
            vec![
                "/var/lib/wkjoin/kubelet/pods/a/volumes/x",
                "/var/lib/wkjoin/kubelet/pods/with space",
                "/var/lib/wkjoin/kubelet"
            ]
        );
    }
}
