//! Effects `wkjoin reset` needs on Linux: stop processes, unmount, delete links. Each treats "already gone"
//! as done.

use crate::host::HostError;
use futures::TryStreamExt;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::probe::{process_alive, process_program};

fn unsupported(op: &'static str, what: &str) -> HostError {
    HostError::Io { op, path: PathBuf::from(what), source: std::io::ErrorKind::Unsupported.into() }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !process_alive(pid)
}

/// TERM, up to 10 s to exit, then KILL. A pid that no longer runs `program` is someone else's: left alone.
pub fn stop_process(pid: u32, program: Option<&str>) -> Result<(), HostError> {
    if !process_alive(pid) || program.is_some_and(|p| process_program(pid).as_deref() != Some(p)) {
        return Ok(());
    }
    let target = Pid::from_raw(pid as i32);
    let signal = |sig| match kill(target, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => {
            Err(HostError::Io { op: "signal process", path: PathBuf::from(format!("/proc/{pid}")), source: e.into() })
        }
    };
    signal(Signal::SIGTERM)?;
    if wait_gone(pid, Duration::from_secs(10)) {
        return Ok(());
    }
    signal(Signal::SIGKILL)?;
    if wait_gone(pid, Duration::from_secs(5)) {
        return Ok(());
    }
    Err(HostError::Io {
        op: "stop process",
        path: PathBuf::from(format!("/proc/{pid}")),
        source: std::io::Error::other("still running 15 s after TERM and KILL"),
    })
}

/// Linux nodes run the services under `wkjoin start`'s supervisor, not a service manager.
pub fn stop_service(name: &str) -> Result<(), HostError> {
    Err(unsupported("stop service", name))
}

pub fn delete_service(name: &str) -> Result<(), HostError> {
    Err(unsupported("delete service", name))
}

/// Lazily detaches a mount; a path that is not (or no longer) mounted is fine.
pub fn unmount(path: &str) -> Result<(), HostError> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(HostError::Io { op: "unmount", path: PathBuf::from(path), source: e.into() }),
    }
}

/// Deletes a network interface in this network namespace; a missing one is fine.
pub async fn delete_link(name: &str) -> Result<(), HostError> {
    let err = |e: rtnetlink::Error| HostError::Routing {
        op: "delete link",
        route: Some(name.to_string()),
        message: e.to_string(),
    };
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| HostError::Routing {
        op: "open a netlink socket",
        route: None,
        message: e.to_string(),
    })?;
    let task = tokio::spawn(conn);
    let result = async {
        let found = match handle.link().get().match_name(name.to_string()).execute().try_next().await {
            Ok(found) => found,
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc_enodev() => None,
            Err(e) => return Err(err(e)),
        };
        let Some(link) = found else { return Ok(()) };
        match handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc_enodev() => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
    .await;
    task.abort();
    result
}

fn libc_enodev() -> i32 {
    Errno::ENODEV as i32
}

/// HNS exists only on Windows.
pub fn delete_hns_network(name: &str) -> Result<(), HostError> {
    Err(unsupported("delete HNS network", name))
}

/// HNS exists only on Windows.
pub fn create_host_endpoint(_network: &str, name: &str, _address: std::net::IpAddr) -> Result<bool, HostError> {
    Err(unsupported("create HNS endpoint", name))
}

/// HNS exists only on Windows: there is no endpoint to remove.
pub fn remove_host_endpoint(_name: &str) -> Result<bool, HostError> {
    Ok(false)
}

/// The Linux pod network forwards through the kernel's own setting, which the lab and the admin own.
pub fn enable_forwarding(address: std::net::IpAddr) -> Result<bool, HostError> {
    Err(unsupported("enable forwarding on the interface of", &address.to_string()))
}

/// HNS exists only on Windows: there is no network of any name here.
pub fn hns_network_subnets(_name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError> {
    Ok(None)
}

/// HNS exists only on Windows.
pub fn create_hns_network(name: &str, _definition: &str) -> Result<bool, HostError> {
    Err(unsupported("create HNS network", name))
}
