//! A host that records every call instead of touching the machine, and answers from a script: how the
//! executors (Windows ones included) are tested on any OS. Not a stand-in for HNS or the SCM's semantics: it
//! proves what wkjoin asks of the host, in which order, and nothing else.

use super::cri::CriStatus;
use super::net::{Route, RouteChange};
use super::service::ServiceSpec;
use super::{CommandOutput, Host, HostError};
use std::collections::BTreeMap;
use std::path::Path;

/// One call the host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateDir(String),
    WriteFile { path: String, contents: Vec<u8>, private: bool },
    RemovePath(String),
    ReadFile(String),
    Run { program: String, args: Vec<String> },
    CreateCgroup(String),
    InstallSelf(String),
    Unmount(String),
    StopProcess { pid: u32, program: Option<String> },
    InstallService(ServiceSpec),
    StartService { name: String, restart: bool },
    StopService(String),
    RemoveService(String),
    ChangeRoutes(Vec<RouteChange>),
    DeleteRoute(Route),
    RemoveLink(String),
    CreateHnsNetwork { name: String, definition: String },
    DeleteHnsNetwork(String),
    InterfaceWithAddress(std::net::IpAddr),
    HnsNetworkSubnets(String),
    CreateHostEndpoint { network: String, name: String, address: std::net::IpAddr },
    EnableForwarding(std::net::IpAddr),
    RemoveHostEndpoint(String),
    AllowFirewallPort { rule: String, protocol: String, port: u16 },
    RemoveFirewallRule(String),
    RuntimeStatus(String),
    RuntimeHasImage { endpoint: String, image: String },
}

/// The recording host: `calls` in order; files it was given (or wrote) are read back from `files`.
#[derive(Debug, Default)]
pub struct Recording {
    /// The OS it stands for: plans for Windows are applied to a Windows recording host.
    pub windows: bool,
    pub calls: Vec<Call>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Answers to `run`, by the whole command line (`program arg ...`), else by program (default: exit 0).
    pub outputs: BTreeMap<String, CommandOutput>,
    /// Images the runtime has.
    pub images: Vec<String>,
    /// HNS networks that exist, by name, with their subnets.
    pub hns_networks: BTreeMap<String, Vec<ipnet::IpNet>>,
    /// How many times `interface_with_address` answers that no interface holds the address yet (then
    /// `vEthernet (Ethernet)` does); `usize::MAX`: never.
    pub address_absent_polls: usize,
    /// What the runtime's CRI status says (default: refuses, as a runtime that is down).
    pub status: Option<CriStatus>,
}

impl Recording {
    fn ok() -> CommandOutput {
        CommandOutput { status: Some(0), stdout: String::new(), stderr: String::new() }
    }
}

impl Host for Recording {
    fn is_windows(&self) -> bool {
        self.windows
    }
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError> {
        self.calls.push(Call::CreateDir(path.display().to_string()));
        Ok(())
    }
    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
        let path = path.display().to_string();
        self.files.insert(path.clone(), contents.to_vec());
        self.calls.push(Call::WriteFile { path, contents: contents.to_vec(), private });
        Ok(())
    }
    fn remove_path(&mut self, path: &Path) -> Result<(), HostError> {
        self.files.remove(&path.display().to_string());
        self.calls.push(Call::RemovePath(path.display().to_string()));
        Ok(())
    }
    fn read_file(&mut self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        self.calls.push(Call::ReadFile(path.display().to_string()));
        Ok(self.files.get(&path.display().to_string()).cloned())
    }
    fn owner_only(&mut self, _path: &Path) -> Option<bool> {
        None
    }
    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError> {
        self.calls.push(Call::Run { program: program.into(), args: args.to_vec() });
        let line = std::iter::once(program.to_string()).chain(args.iter().cloned()).collect::<Vec<_>>().join(" ");
        Ok(self.outputs.get(&line).or_else(|| self.outputs.get(program)).cloned().unwrap_or_else(Self::ok))
    }
    fn create_cgroup(&mut self, path: &str) -> Result<(), HostError> {
        self.calls.push(Call::CreateCgroup(path.into()));
        Ok(())
    }
    fn install_self(&mut self, path: &Path) -> Result<bool, HostError> {
        self.calls.push(Call::InstallSelf(path.display().to_string()));
        Ok(true)
    }
    fn unmount(&mut self, path: &str) -> Result<(), HostError> {
        self.calls.push(Call::Unmount(path.into()));
        Ok(())
    }
    fn stop_process(&mut self, pid: u32, program: Option<&str>) -> Result<(), HostError> {
        self.calls.push(Call::StopProcess { pid, program: program.map(str::to_string) });
        Ok(())
    }
    fn install_service(&mut self, spec: &ServiceSpec) -> Result<bool, HostError> {
        self.calls.push(Call::InstallService(spec.clone()));
        Ok(true)
    }
    async fn start_service(&mut self, name: &str, restart: bool) -> Result<(), HostError> {
        self.calls.push(Call::StartService { name: name.into(), restart });
        Ok(())
    }
    fn stop_service(&mut self, name: &str) -> Result<(), HostError> {
        self.calls.push(Call::StopService(name.into()));
        Ok(())
    }
    fn remove_service(&mut self, name: &str) -> Result<(), HostError> {
        self.calls.push(Call::RemoveService(name.into()));
        Ok(())
    }
    async fn change_routes(&mut self, changes: &[RouteChange]) -> Result<(), HostError> {
        self.calls.push(Call::ChangeRoutes(changes.to_vec()));
        Ok(())
    }
    async fn delete_route(&mut self, route: &Route) -> Result<(), HostError> {
        self.calls.push(Call::DeleteRoute(route.clone()));
        Ok(())
    }
    async fn remove_link(&mut self, name: &str) -> Result<(), HostError> {
        self.calls.push(Call::RemoveLink(name.into()));
        Ok(())
    }
    fn create_hns_network(&mut self, name: &str, definition: &str) -> Result<bool, HostError> {
        self.calls.push(Call::CreateHnsNetwork { name: name.into(), definition: definition.into() });
        Ok(true)
    }
    fn create_host_endpoint(
        &mut self,
        network: &str,
        name: &str,
        address: std::net::IpAddr,
    ) -> Result<bool, HostError> {
        self.calls.push(Call::CreateHostEndpoint { network: network.into(), name: name.into(), address });
        Ok(true)
    }
    fn remove_host_endpoint(&mut self, name: &str) -> Result<bool, HostError> {
        self.calls.push(Call::RemoveHostEndpoint(name.into()));
        Ok(true)
    }
    fn enable_forwarding(&mut self, address: std::net::IpAddr) -> Result<bool, HostError> {
        self.calls.push(Call::EnableForwarding(address));
        Ok(true)
    }
    fn hns_network_subnets(&mut self, name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError> {
        self.calls.push(Call::HnsNetworkSubnets(name.into()));
        Ok(self.hns_networks.get(name).cloned())
    }
    fn interface_with_address(&mut self, address: std::net::IpAddr) -> Result<Option<String>, HostError> {
        self.calls.push(Call::InterfaceWithAddress(address));
        if self.address_absent_polls > 0 {
            self.address_absent_polls -= 1;
            return Ok(None);
        }
        Ok(Some("vEthernet (Ethernet)".into()))
    }
    fn delete_hns_network(&mut self, name: &str) -> Result<(), HostError> {
        self.calls.push(Call::DeleteHnsNetwork(name.into()));
        Ok(())
    }
    fn allow_firewall_port(&mut self, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError> {
        self.calls.push(Call::AllowFirewallPort { rule: rule.into(), protocol: protocol.into(), port });
        Ok(true)
    }
    fn remove_firewall_rule(&mut self, rule: &str) -> Result<(), HostError> {
        self.calls.push(Call::RemoveFirewallRule(rule.into()));
        Ok(())
    }
    async fn runtime_status(&mut self, endpoint: &str) -> Result<CriStatus, HostError> {
        self.calls.push(Call::RuntimeStatus(endpoint.into()));
        self.status.clone().ok_or_else(|| HostError::Runtime { endpoint: endpoint.into(), message: "down".into() })
    }
    async fn runtime_has_image(&mut self, endpoint: &str, image: &str) -> Result<bool, HostError> {
        self.calls.push(Call::RuntimeHasImage { endpoint: endpoint.into(), image: image.into() });
        Ok(self.images.iter().any(|i| i == image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::native::ensure_firewall_rule;

    fn netsh(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .map(|c| match c {
                Call::Run { program, args } if program == "netsh" => args.join(" "),
                other => panic!("unexpected call {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_firewall_rule_is_added_once() {
        let show = "netsh advfirewall firewall show rule name=wkjoin kubelet API";
        let mut h = Recording::default();
        h.outputs.insert(show.into(), CommandOutput { status: Some(1), stdout: String::new(), stderr: String::new() });
        assert!(ensure_firewall_rule(&mut h, "wkjoin kubelet API", "tcp", 10250).unwrap());
        let ran = netsh(&h.calls);
        assert_eq!(ran.len(), 2);
        assert_eq!(
            ran[1],
            "advfirewall firewall add rule name=wkjoin kubelet API dir=in action=allow protocol=TCP localport=10250"
        );
        let mut h = Recording::default();
        assert!(!ensure_firewall_rule(&mut h, "wkjoin kubelet API", "tcp", 10250).unwrap());
        assert_eq!(netsh(&h.calls), ["advfirewall firewall show rule name=wkjoin kubelet API"]);
    }
}
