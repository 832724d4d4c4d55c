//! The machine itself, without a service manager: files, processes, routes, HNS, the firewall and the
//! container runtime. [`super::System`] adds the services.

use super::net::{Route, RouteChange};
use super::service::ServiceSpec;
use super::{CommandOutput, Host, HostError, cri, files};
use std::path::Path;
use std::time::Duration;

/// How long one CRI question may take.
const CRI_TIMEOUT: Duration = Duration::from_secs(10);

/// The real host (Linux or Windows, as built).
#[derive(Debug, Default, Clone, Copy)]
pub struct Native;

fn no_manager(what: &str, name: &str) -> HostError {
    HostError::Unsupported { what: format!("{what} {name} without a service manager (use host::System)") }
}

fn runtime_error(endpoint: &str) -> impl FnOnce(cri::CriError) -> HostError + '_ {
    move |e| HostError::Runtime { endpoint: endpoint.to_string(), message: e.to_string() }
}

/// `netsh` arguments that show the firewall rule (exit 0: it exists) and that add it.
pub fn firewall_rule_args(rule: &str, protocol: &str, port: u16) -> (Vec<String>, Vec<String>) {
    let show = ["advfirewall", "firewall", "show", "rule", &format!("name={rule}")].map(String::from).to_vec();
    let add = [
        "advfirewall",
        "firewall",
        "add",
        "rule",
        &format!("name={rule}"),
        "dir=in",
        "action=allow",
        &format!("protocol={}", protocol.to_ascii_uppercase()),
        &format!("localport={port}"),
    ]
    .map(String::from)
    .to_vec();
    (show, add)
}

/// Runs a command through `host`, failing on a non-zero exit with its output.
pub fn run_ok(host: &mut impl Host, program: &str, args: &[String]) -> Result<CommandOutput, HostError> {
    let out = host.run(program, args)?;
    if out.status == Some(0) {
        Ok(out)
    } else {
        Err(HostError::CommandFailed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: format!("{}{}", out.stderr, out.stdout),
        })
    }
}

/// Adds the inbound firewall rule unless a rule of that name exists; returns whether it was added.
pub fn ensure_firewall_rule(host: &mut impl Host, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError> {
    let (show, add) = firewall_rule_args(rule, protocol, port);
    if host.run("netsh", &show)?.status == Some(0) {
        return Ok(false);
    }
    run_ok(host, "netsh", &add)?;
    Ok(true)
}

/// Removes the firewall rule; netsh's "No rules match" means it is gone already.
pub fn delete_firewall_rule(host: &mut impl Host, rule: &str) -> Result<(), HostError> {
    let args = ["advfirewall", "firewall", "delete", "rule", &format!("name={rule}")].map(String::from);
    let out = host.run("netsh", &args)?;
    if out.status == Some(0) || out.stdout.contains("No rules match") {
        return Ok(());
    }
    Err(HostError::CommandFailed {
        command: format!("netsh {}", args.join(" ")),
        status: out.status,
        stderr: out.stdout + &out.stderr,
    })
}

/// Copies the running executable to `target` unless it already holds the same bytes; the copy is staged
/// beside the target and renamed over it, so the target is never half-written. Returns whether it changed.
pub fn install_self(target: &Path) -> Result<bool, HostError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| HostError::Io { op, path, source }
    };
    let me = std::env::current_exe().map_err(io("find", Path::new("the running wkjoin executable")))?;
    let mine = std::fs::read(&me).map_err(io("read", &me))?;
    if std::fs::read(target).is_ok_and(|theirs| theirs == mine) {
        return Ok(false);
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let staged = target.with_extension("new");
    let mut f = files::create_exclusive(&staged)?;
    std::io::Write::write_all(&mut f, &mine).map_err(io("write", &staged))?;
    drop(f);
    super::set_executable(&staged)?;
    super::replace_file(&staged, target, None)?;
    Ok(true)
}

impl Host for Native {
    fn is_windows(&self) -> bool {
        cfg!(windows)
    }
    fn create_dir(&mut self, path: &Path) -> Result<(), HostError> {
        files::create_dir(path)
    }

    fn write_file(&mut self, path: &Path, contents: &[u8], private: bool) -> Result<(), HostError> {
        super::write_file(path, contents, private)
    }

    fn remove_path(&mut self, path: &Path) -> Result<(), HostError> {
        files::remove_path(path)
    }

    fn read_file(&mut self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HostError::Io { op: "read", path: path.to_path_buf(), source }),
        }
    }

    fn owner_only(&mut self, path: &Path) -> Option<bool> {
        super::owner_only(path)
    }

    fn run(&mut self, program: &str, args: &[String]) -> Result<CommandOutput, HostError> {
        files::run(program, args)
    }

    fn create_cgroup(&mut self, path: &str) -> Result<(), HostError> {
        super::create_cgroup(path)
    }

    fn install_self(&mut self, path: &Path) -> Result<bool, HostError> {
        install_self(path)
    }

    fn unmount(&mut self, path: &str) -> Result<(), HostError> {
        super::unmount(path)
    }

    fn stop_process(&mut self, pid: u32, program: Option<&str>) -> Result<(), HostError> {
        super::stop_process(pid, program)
    }

    fn install_service(&mut self, spec: &ServiceSpec) -> Result<bool, HostError> {
        Err(no_manager("installing service", &spec.name))
    }

    async fn start_service(&mut self, name: &str, _restart: bool) -> Result<(), HostError> {
        Err(no_manager("starting service", name))
    }

    fn stop_service(&mut self, name: &str) -> Result<(), HostError> {
        super::stop_service(name)
    }

    fn remove_service(&mut self, name: &str) -> Result<(), HostError> {
        super::delete_service(name)
    }

    async fn change_routes(&mut self, changes: &[RouteChange]) -> Result<(), HostError> {
        let table = super::RouteTable::connect()?;
        let net = table.snapshot(&[]).await?;
        table.apply(changes, &net.interfaces).await
    }

    async fn delete_route(&mut self, route: &Route) -> Result<(), HostError> {
        let table = super::RouteTable::connect()?;
        let net = table.snapshot(std::slice::from_ref(route)).await?;
        if !net.routes.iter().any(|r| &r.route == route) {
            return Ok(());
        }
        table.apply(&[RouteChange::Delete(route.clone())], &net.interfaces).await
    }

    async fn remove_link(&mut self, name: &str) -> Result<(), HostError> {
        super::delete_link(name).await
    }

    fn create_hns_network(&mut self, name: &str, definition: &str) -> Result<bool, HostError> {
        super::create_hns_network(name, definition)
    }

    fn create_host_endpoint(
        &mut self,
        network: &str,
        name: &str,
        address: std::net::IpAddr,
    ) -> Result<bool, HostError> {
        super::create_host_endpoint(network, name, address)
    }

    fn remove_host_endpoint(&mut self, name: &str) -> Result<bool, HostError> {
        super::remove_host_endpoint(name)
    }

    fn enable_forwarding(&mut self, address: std::net::IpAddr) -> Result<bool, HostError> {
        super::enable_forwarding(address)
    }

    fn hns_network_subnets(&mut self, name: &str) -> Result<Option<Vec<ipnet::IpNet>>, HostError> {
        super::hns_network_subnets(name)
    }

    fn interface_with_address(&mut self, address: std::net::IpAddr) -> Result<Option<String>, HostError> {
        Ok(super::facts().interfaces.into_iter().find(|(_, net)| net.addr() == address).map(|(name, _)| name))
    }

    fn delete_hns_network(&mut self, name: &str) -> Result<(), HostError> {
        super::delete_hns_network(name)
    }

    fn allow_firewall_port(&mut self, rule: &str, protocol: &str, port: u16) -> Result<bool, HostError> {
        ensure_firewall_rule(self, rule, protocol, port)
    }

    fn remove_firewall_rule(&mut self, rule: &str) -> Result<(), HostError> {
        delete_firewall_rule(self, rule)
    }

    async fn runtime_status(&mut self, endpoint: &str) -> Result<cri::CriStatus, HostError> {
        cri::status(endpoint, Duration::from_secs(2)).await.map_err(runtime_error(endpoint))
    }

    async fn runtime_has_image(&mut self, endpoint: &str, image: &str) -> Result<bool, HostError> {
        cri::image_id(endpoint, image, CRI_TIMEOUT).await.map(|id| id.is_some()).map_err(runtime_error(endpoint))
    }
}
