//! Everything that touches the operating system. `linux` and `windows` export the same names; this file is
//! the only place in wkjoin that chooses between them.

pub mod cri;
mod files;
pub mod hns_v1;
pub mod iphelper;
pub mod lock;
pub mod log_runner;
pub mod machine;
pub mod native;
pub mod net;
pub mod recording;
pub mod scm_calls;
pub mod service;
pub mod supervisor;
mod system;
pub mod systemd;
pub use files::is_local_address;
#[cfg(unix)]
mod linux;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
pub use linux::cleanup::{
    create_hns_network, delete_hns_network, delete_link, delete_service, hns_network_subnets, stop_process,
    stop_service, unmount,
};
#[cfg(unix)]
pub use linux::cleanup::{create_host_endpoint, enable_forwarding, remove_host_endpoint};
#[cfg(unix)]
pub use linux::probe;
#[cfg(unix)]
pub use linux::scm;
#[cfg(unix)]
pub use linux::{
    RouteTable, create_cgroup, facts, owner_only, process, process_cmdline, protect_dir, replace_file, set_executable,
    windows_build, write_file,
};
#[cfg(windows)]
pub use windows::cleanup::{
    create_hns_network, delete_hns_network, delete_link, delete_service, hns_network_subnets, stop_process,
    stop_service, unmount,
};
#[cfg(windows)]
pub use windows::probe;
#[cfg(windows)]
pub use windows::scm;
#[cfg(windows)]
pub use windows::{
    RouteTable, create_cgroup, create_host_endpoint, enable_forwarding, facts, owner_only, process, process_cmdline,
    protect_dir, remove_host_endpoint, replace_file, set_executable, windows_build, write_file,
};

use std::path::{Path, PathBuf};

pub use native::Native;
pub use net::{Route, RouteChange};
pub use service::ServiceSpec;
pub use system::{Manager, SupervisorFiles, System, last_lines, service_active, stop_supervisor};

/// Whether an HCN call failed: a failing HRESULT, or any error record at all, as hcsshim's `checkForErrors`
/// (hcn/hcnerrors.go) judges it: HCN can answer S_OK and still describe an error in the record.
pub fn hcn_failed(hr: i32, record: Option<&str>) -> bool {
    hr < 0 || record.is_some_and(|r| !r.trim().is_empty())
}

/// The subnets of an HCN network's properties (`Ipams[].Subnets[].IpAddressPrefix`, hcsshim's
/// `HostComputeNetwork`); a prefix that does not parse is left out.
pub fn hns_subnets(properties: &str) -> Vec<ipnet::IpNet> {
    let v: serde_json::Value = serde_json::from_str(properties).unwrap_or_default();
    let ipams = v["Ipams"].as_array().cloned().unwrap_or_default();
    ipams
        .iter()
        .flat_map(|i| i["Subnets"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["IpAddressPrefix"].as_str().and_then(|p| p.parse().ok()))
        .collect()
}

/// SHA-256 of bytes, as lowercase hex.
pub fn digest_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

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
    #[error("`{command}` did not finish within {secs} s and was killed (is it hung? run it by hand to see)")]
    Timeout { command: String, secs: u64 },
    #[error("the container runtime at {endpoint}: {message}")]
    Runtime { endpoint: String, message: String },
    #[error("`{command}` failed with exit code {}: {}", status.map_or("none (killed)".to_string(), |s| s.to_string()), stderr.trim())]
    CommandFailed { command: String, status: Option<i32>, stderr: String },
}

/// The effects a plan is applied through: files, processes, services, routes, the pod network (HNS), the
/// firewall and the container runtime. [`Native`] is the machine for file-only steps, [`System`] the machine with
/// its service manager; tests record instead. No method has a default: a recording host must answer them all.
#[allow(async_fn_in_trait)] // used through generics only; no Send bound is needed by the callers
pub trait Host {
    /// Whether this host is Windows (a plan for the other OS is refused before any effect).
    fn is_windows(&self) -> bool;
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError>;
    /// Replaces `path` atomically; `private` restricts it to the owner (0600 / Administrators+SYSTEM).
    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError>;
    /// Removes a file or a directory tree; a missing path is not an error.
    fn remove_path(&mut self, path: &Path) -> Result<(), HostError>;
    /// A file's bytes; `None` when it does not exist.
    fn read_file(&mut self, path: &Path) -> Result<Option<Vec<u8>>, HostError>;
    /// Whether only the owner may read `path` (None: unknown, or the OS keeps access in ACLs).
    fn owner_only(&mut self, path: &Path) -> Option<bool>;
    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError>;
    /// Creates `path` (`/wkjoin`) in every cgroup hierarchy; hosts without cgroups refuse.
    fn create_cgroup(&mut self, path: &str) -> Result<(), HostError>;
    /// Copies the running executable to `path`; returns whether the file changed.
    fn install_self(&mut self, path: &Path) -> Result<bool, HostError>;
    /// Lazily unmounts `path`; one not mounted is fine.
    fn unmount(&mut self, path: &str) -> Result<(), HostError>;
    /// TERM, then KILL; a pid that no longer runs `program` is left alone.
    fn stop_process(&mut self, pid: u32, program: Option<&str>) -> Result<(), HostError>;

    /// Installs or updates a service to match `spec`; returns whether its definition changed.
    fn install_service(&mut self, spec: &ServiceSpec) -> Result<bool, HostError>;
    /// Starts a service; `restart` (or a definition changed by [`Host::install_service`] in this run) restarts
    /// it when it runs already.
    async fn start_service(&mut self, name: &str, restart: bool) -> Result<(), HostError>;
    /// Stops a service; a missing one is fine.
    fn stop_service(&mut self, name: &str) -> Result<(), HostError>;
    /// Removes a service; a missing one is fine.
    fn remove_service(&mut self, name: &str) -> Result<(), HostError>;

    /// Applies route changes (the interfaces are looked up by name when the changes are made).
    async fn change_routes(&mut self, changes: &[RouteChange]) -> Result<(), HostError>;
    /// Deletes `route` when the table still holds it.
    async fn delete_route(&mut self, route: &Route) -> Result<(), HostError>;
    /// Deletes a network interface; a missing one is fine.
    async fn remove_link(&mut self, name: &str) -> Result<(), HostError>;
    /// Creates an HNS network from its JSON definition; returns false when one of that name exists.
    fn create_hns_network(&mut self, name: &str, definition: &str) -> Result<bool, HostError>;
    fn delete_hns_network(&mut self, name: &str) -> Result<(), HostError>;
    /// Makes sure the host endpoint `name` at `address` is on `network`, attached to the host; whether it was made.
    fn create_host_endpoint(&mut self, network: &str, name: &str, address: std::net::IpAddr)
    -> Result<bool, HostError>;
    /// Deletes the HNS endpoint `name`; a missing one (or no HNS) is fine. Returns whether it existed.
    fn remove_host_endpoint(&mut self, name: &str) -> Result<bool, HostError>;
    /// Turns on IP forwarding on the interface holding `address`; whether it was off.
    fn enable_forwarding(&mut self, address: std::net::IpAddr) -> Result<bool, HostError>;
    /// The subnets of the HNS network named `name`; `None` when there is no such network (or no HNS).
    fn hns_network_subnets(&mut self, name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError>;
    /// The interface that holds `address` now, if any (IP Helper on Windows, netlink on Linux).
    fn interface_with_address(&mut self, address: std::net::IpAddr) -> Result<Option<String>, HostError>;

    /// Allows inbound `protocol/port` under the rule name; returns false when the rule exists.
    fn allow_firewall_port(&mut self, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError>;
    /// Removes the firewall rule; a missing one is fine.
    fn remove_firewall_rule(&mut self, rule: &str) -> Result<(), HostError>;

    /// The runtime's status over CRI (its config, sandbox image, ...).
    async fn runtime_status(&mut self, endpoint: &str) -> Result<cri::CriStatus, HostError>;
    /// Whether the runtime has `image` under that exact name (CRI ImageStatus).
    async fn runtime_has_image(&mut self, endpoint: &str, image: &str) -> Result<bool, HostError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_hcn_error_record_is_an_error_even_with_s_ok() {
        assert!(!super::hcn_failed(0, None));
        assert!(!super::hcn_failed(0, Some("  ")));
        assert!(super::hcn_failed(0, Some(r#"{"Success":false,"Error":"The object already exists."}"#)));
        assert!(super::hcn_failed(-2147024713, None));
    }

    /// hcsshim's HostComputeNetwork as HcnQueryNetworkProperties returns it (hcn/hcnnetwork.go).
    #[test]
    fn hns_subnets_come_from_the_ipams() {
        let props = r#"{"ID":"1d1b4e2a-0000-0000-0000-000000000000","Name":"cbr0","Type":"L2Bridge",
            "Ipams":[{"Type":"Static","Subnets":[{"IpAddressPrefix":"10.244.1.0/24",
            "Routes":[{"NextHop":"10.244.1.1","DestinationPrefix":"0.0.0.0/0"}]}]}],
            "SchemaVersion":{"Major":2,"Minor":0}}"#;
        assert_eq!(super::hns_subnets(props), ["10.244.1.0/24".parse::<ipnet::IpNet>().unwrap()]);
        assert!(super::hns_subnets(r#"{"Name":"cbr0"}"#).is_empty());
        assert!(super::hns_subnets("not json").is_empty());
    }
}
