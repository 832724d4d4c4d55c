//! The checks: a pure function from observed facts and settings to pass/warn/fail/skip, each with the fix.

use super::facts::{Api, Endpoint, Facts, Feature, PortState};
use crate::image::WINDOWS_BUILDS;
use crate::layout::Os;
use crate::settings::{Runtime, Settings};
use crate::version::KubeVersion;
use ipnet::IpNet;
use serde::Serialize;

pub use crate::config::check::Status;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a warn or fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }
    fn skip(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Skip, detail: detail.into(), fix: None }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Choices that change what is required, beyond the node settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Pods will run with Hyper-V isolation: the Hyper-V feature is required.
    pub hyperv_isolation: bool,
}

/// The oldest Windows build Kubernetes supports as a node (Windows Server 2019).
pub const MIN_WINDOWS_BUILD: u32 = 17763;
/// Clock skew within this passes (the `Date` header has one-second resolution, plus the round trip).
pub const CLOCK_SKEW_OK_SECS: u64 = 5;
/// Beyond this, freshly issued certificates look not yet valid and tokens expired.
pub const CLOCK_SKEW_FAIL_SECS: u64 = 300;
const GIB: u64 = 1 << 30;

/// (fail below, warn below) bytes free under the root dir. Windows container images are several GiB each.
pub fn disk_thresholds(os: Os) -> (u64, u64) {
    match os {
        Os::Linux => (GIB, 5 * GIB),
        Os::Windows => (5 * GIB, 20 * GIB),
    }
}

/// The ports the node services listen on, and who needs them.
pub const PORTS: [(u16, &str); 3] =
    [(10250, "kubelet API"), (10256, "kube-proxy health"), (10249, "kube-proxy metrics")];

/// The CNI plugins the pod network needs on each OS.
pub fn required_cni_plugins(os: Os) -> &'static [&'static str] {
    match os {
        Os::Linux => &["bridge", "host-local", "portmap"],
        // wkjoin's L2Bridge/L2Tunnel network: win-bridge with host-local IPAM (containernetworking/plugins).
        Os::Windows => &["win-bridge.exe", "host-local.exe"],
    }
}

/// Every check, in a stable order.
pub fn evaluate(f: &Facts, s: &Settings, o: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    if f.os == Os::Windows {
        out.push(windows_build(f));
        out.push(windows_edition(f));
        out.push(containers_feature(f));
        out.push(hyperv_feature(f, o));
        out.push(hyperv_guest(f, s));
    }
    out.push(runtime(f, s));
    for (port, service) in PORTS {
        out.push(port_check(f, port, service));
    }
    out.push(networks(s));
    if f.os == Os::Linux {
        out.extend(sysctls(f));
    }
    out.push(cni_plugins(f));
    out.push(cni_conf(f, s));
    out.push(disk(f, s));
    out.push(api(f));
    out.push(version_skew(f));
    out.push(clock_skew(f));
    out.push(network_name(f, s));
    out
}

/// True when any check failed: the command then exits with VALIDATION_FAILED.
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

fn windows_build(f: &Facts) -> Check {
    const NAME: &str = "windows-build";
    let Some(build) = f.windows.as_ref().and_then(|w| w.build) else {
        return Check::warn(
            NAME,
            "could not read CurrentBuildNumber from the registry",
            "run `cmd /c ver` and make sure it is 10.0.17763 (Windows Server 2019) or newer",
        );
    };
    let rev = f.windows.as_ref().and_then(|w| w.revision).map(|r| format!(".{r}")).unwrap_or_default();
    if build < MIN_WINDOWS_BUILD {
        return Check::fail(
            NAME,
            format!("build {build}{rev} is older than {MIN_WINDOWS_BUILD} (Windows Server 2019)"),
            "Kubernetes supports Windows Server 2019 (17763) and newer as nodes: upgrade the host",
        );
    }
    match WINDOWS_BUILDS.iter().find(|(b, _, _)| *b == build) {
        Some((_, tag, name)) => Check::pass(NAME, format!("build {build}{rev}: {name}, container images :{tag}")),
        None => Check::warn(
            NAME,
            format!("build {build}{rev} has no matching container base image (process isolation needs the same build)"),
            format!(
                "use a long-term servicing build ({}) or run pods with Hyper-V isolation (--hyperv-isolation)",
                WINDOWS_BUILDS.iter().map(|(b, _, _)| b.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

fn windows_edition(f: &Facts) -> Check {
    const NAME: &str = "windows-edition";
    let w = f.windows.clone().unwrap_or_default();
    let Some(edition) = w.edition.as_deref() else {
        return Check::warn(NAME, "could not read EditionID from the registry", "use Windows Server 2019 or newer");
    };
    let product = w.product_name.as_deref().unwrap_or(edition);
    let install = w.installation_type.as_deref().map(|t| format!(", {t}")).unwrap_or_default();
    let detail = format!("{product} ({edition}{install})");
    if edition.starts_with("Server") {
        Check::pass(NAME, detail)
    } else if edition.starts_with("Core") {
        // Home editions have neither the Containers nor the Hyper-V feature.
        Check::fail(NAME, format!("{detail}: Windows Home cannot run Windows containers"), "use Windows Server")
    } else {
        Check::warn(
            NAME,
            format!("{detail}: a client edition; Kubernetes supports Windows Server nodes"),
            "use Windows Server 2019 or newer for anything beyond a test",
        )
    }
}

fn containers_feature(f: &Facts) -> Check {
    const NAME: &str = "containers-feature";
    let fix = "Install-WindowsFeature -Name Containers; Restart-Computer (client editions: \
               Enable-WindowsOptionalFeature -Online -FeatureName Containers -All)";
    match f.containers_feature {
        Feature::Installed => Check::pass(NAME, "the Containers feature is installed (hns and vmcompute services)"),
        Feature::Missing => Check::fail(NAME, "the Containers feature is not installed", fix),
        Feature::Unknown => Check::warn(NAME, "could not tell whether the Containers feature is installed", fix),
    }
}

fn hyperv_feature(f: &Facts, o: &Options) -> Check {
    const NAME: &str = "hyperv-feature";
    let fix = "Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart (client editions: \
               Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All)";
    match (o.hyperv_isolation, f.hyperv_feature) {
        (false, _) => Check::skip(NAME, "only needed with --hyperv-isolation"),
        (true, Feature::Installed) => Check::pass(NAME, "Hyper-V is installed (for Hyper-V isolation)"),
        (true, Feature::Missing) => {
            Check::fail(NAME, "Hyper-V isolation was chosen but the Hyper-V feature is not installed", fix)
        }
        (true, Feature::Unknown) => {
            Check::warn(NAME, "Hyper-V isolation was chosen; could not tell whether Hyper-V is installed", fix)
        }
    }
}

/// The commands to run on the Hyper-V host for a Windows node VM named `vm`.
pub fn hyperv_host_commands(vm: &str) -> String {
    format!(
        "on the Hyper-V host, with the VM stopped: \
         Set-VMProcessor -VMName '{vm}' -ExposeVirtualizationExtensions $true -Count 2; \
         Set-VMMemory -VMName '{vm}' -DynamicMemoryEnabled $false; \
         Get-VMNetworkAdapter -VMName '{vm}' | Set-VMNetworkAdapter -MacAddressSpoofing On"
    )
}

fn hyperv_guest(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "hyperv-guest";
    match f.hyperv_guest {
        Some(true) => {
            let cpus = f.cpus.map(|c| format!(", {c} vCPUs")).unwrap_or_default();
            let few = f.cpus.is_some_and(|c| c < 2);
            Check::warn(
                NAME,
                format!(
                    "this host is a Hyper-V VM{cpus}{}: nested virtualisation (for Hyper-V isolation), static memory \
                     and MAC address spoofing (pod MACs on the wire with l2bridge) can only be set on the Hyper-V host",
                    if few { " (at least 2 are needed)" } else { "" }
                ),
                // The VM's name on the host is usually the machine name.
                hyperv_host_commands(&s.node_name),
            )
        }
        Some(false) => Check::pass(NAME, "not a Hyper-V virtual machine"),
        None => Check::skip(NAME, "could not tell whether this host is a Hyper-V virtual machine"),
    }
}

fn runtime(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "runtime";
    let endpoint = f.runtime_endpoint.clone().unwrap_or_else(|| "(none)".into());
    let start = match (s.os, s.runtime) {
        (Os::Linux, Runtime::Containerd) => "start containerd (`systemctl start containerd`)",
        (Os::Windows, Runtime::Containerd) => "start containerd (`Start-Service containerd`)",
        (Os::Linux, Runtime::Docker) => "start Docker (`systemctl start docker`)",
        (Os::Windows, Runtime::Docker) => "start Docker (`Start-Service docker`)",
    };
    // containerd is asked over CRI: its own answer (or its silence) is the check.
    if let Some(rt) = &s.runtime_facts {
        return match &rt.error {
            None if rt.answered && rt.config_error.is_some() => Check::fail(
                NAME,
                format!(
                    "{} answers, but its config file: {}",
                    rt.endpoint,
                    rt.config_error.as_deref().unwrap_or_default()
                ),
                "make the file readable TOML (containerd reads it at its next start), or give --runtime-config with \
                 the file containerd was started with",
            ),
            None if rt.answered => Check::pass(NAME, rt.describe()),
            reason => Check::fail(
                NAME,
                format!(
                    "{} does not answer over CRI: {}",
                    rt.endpoint,
                    reason.as_deref().unwrap_or("its Status has no CRI plugin config")
                ),
                format!("{start}, or give --runtime-endpoint with the runtime's socket or pipe"),
            ),
        };
    }
    match &f.runtime {
        Some(Endpoint::Reachable) => Check::pass(NAME, format!("{endpoint} answers")),
        Some(Endpoint::Unreachable { reason }) => Check::fail(
            NAME,
            format!("{endpoint}: {reason}"),
            format!("{start}, or give --runtime-endpoint with the runtime's socket or pipe"),
        ),
        Some(Endpoint::Unsupported { reason }) => Check::fail(
            NAME,
            format!("{endpoint}: {reason}"),
            match s.os {
                Os::Linux => "give --runtime-endpoint unix:///path/to/containerd.sock",
                Os::Windows => "give --runtime-endpoint npipe:////./pipe/containerd-containerd",
            },
        ),
        None => Check::skip(NAME, "no runtime endpoint to check"),
    }
}

/// The CNI config extensions the runtime loads (libcni's `ConfFiles`), in file-name order.
const CNI_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// The runtime loads configs from its conf dir in file-name order: one sorting before wkjoin's would win.
fn cni_conf(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "cni-conf";
    let ours = crate::network::CNI_CONF_FILE;
    let configs: Vec<&String> =
        f.cni_conf_files.iter().filter(|n| CNI_EXTENSIONS.iter().any(|e| n.ends_with(e)) && *n != ours).collect();
    let before: Vec<&str> = configs.iter().filter(|n| n.as_str() < ours).map(|n| n.as_str()).collect();
    let origin = s.origins.cni_conf_dir.as_ref().map(|o| format!(" ({o})")).unwrap_or_default();
    if !before.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{} in {} sort before wkjoin's {ours}: the runtime would use that network for every pod, not wkjoin's",
                before.join(", "),
                f.cni_conf_dir
            ),
            format!(
                "move {} out of {} if it is not in use (wkjoin never removes another tool's file), then run again",
                before.join(", "),
                f.cni_conf_dir
            ),
        );
    }
    if !configs.is_empty() {
        return Check::warn(
            NAME,
            format!(
                "{} in {} sort after wkjoin's {ours}: containerd loads only the first config unless its max_conf_num \
                 says otherwise",
                configs.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
                f.cni_conf_dir
            ),
            "remove the other config if nothing uses it",
        );
    }
    Check::pass(NAME, format!("wkjoin's {ours} goes into the runtime's CNI conf dir {}{origin}", f.cni_conf_dir))
}

fn port_check(f: &Facts, port: u16, service: &str) -> Check {
    let name = format!("port-{port}");
    let Some(fact) = f.ports.iter().find(|p| p.port == port) else {
        return Check::skip(&name, format!("{service} port {port} was not checked"));
    };
    match &fact.state {
        PortState::Free => Check::pass(&name, format!("{service} port {port} is free")),
        PortState::InUse { holder: Some(h) } if h.program.as_ref().is_some_and(|p| f.own_programs.contains(p)) => {
            Check::pass(
                &name,
                format!(
                    "{service} port {port} is held by wkjoin's {} (pid {})",
                    h.program.as_deref().unwrap_or_default(),
                    h.pid
                ),
            )
        }
        PortState::InUse { holder: None } if f.services_started => Check::pass(
            &name,
            format!("{service} port {port} is in use; the state file says wkjoin started the node services"),
        ),
        PortState::InUse { holder } => {
            let who = match holder {
                Some(h) => format!(" by {} (pid {})", h.program.as_deref().unwrap_or("an unknown program"), h.pid),
                None => String::new(),
            };
            Check::fail(
                &name,
                format!("{service} port {port} is already in use{who}"),
                "stop the other kubelet/kube-proxy (or whatever holds it) first; `wkjoin reset` removes an earlier join",
            )
        }
        PortState::Unknown { reason } => Check::warn(
            &name,
            format!("could not check {service} port {port}: {reason}"),
            "run preflight as root/Administrator",
        ),
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn networks(s: &Settings) -> Check {
    const NAME: &str = "networks";
    let fix = "choose --cluster-cidr and --service-cidr outside the node's network (and each other)";
    if overlaps(&s.cluster_cidr, &s.service_cidr) {
        return Check::fail(
            NAME,
            format!("cluster CIDR {} overlaps service CIDR {}", s.cluster_cidr, s.service_cidr),
            fix,
        );
    }
    let Some(node) = s.node_network else {
        return Check::warn(
            NAME,
            format!(
                "the node's network is unknown{}; cluster {} and service {} do not overlap",
                s.node_ip.map(|ip| format!(" (no interface has {ip})")).unwrap_or_default(),
                s.cluster_cidr,
                s.service_cidr
            ),
            "give --node-ip with an address of this host",
        );
    };
    for (what, net) in [("cluster CIDR", s.cluster_cidr), ("service CIDR", s.service_cidr)] {
        if overlaps(&net, &node) {
            return Check::fail(NAME, format!("{what} {net} overlaps the node's network {node}"), fix);
        }
    }
    Check::pass(
        NAME,
        format!(
            "node network {node}, cluster CIDR {} and service CIDR {} are disjoint",
            s.cluster_cidr, s.service_cidr
        ),
    )
}

fn sysctls(f: &Facts) -> Vec<Check> {
    let value = |key: &str| f.sysctls.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    let key = "net.ipv4.ip_forward";
    out.push(match value(key) {
        Some(Some(v)) if v.trim() == "1" => Check::pass("ip-forward", format!("{key} = 1")),
        Some(Some(v)) => Check::fail(
            "ip-forward",
            format!("{key} = {}: pod traffic to other nodes is not forwarded", v.trim()),
            format!("sysctl -w {key}=1 (and persist it in /etc/sysctl.d/)"),
        ),
        Some(None) => {
            Check::fail("ip-forward", format!("{key} does not exist"), "enable IPv4 forwarding in the kernel")
        }
        None => Check::skip("ip-forward", format!("{key} was not read")),
    });
    let key = "net.bridge.bridge-nf-call-iptables";
    out.push(match value(key) {
        Some(Some(v)) if v.trim() == "1" => Check::pass("bridge-nf-call-iptables", format!("{key} = 1")),
        Some(Some(v)) => Check::warn(
            "bridge-nf-call-iptables",
            format!("{key} = {}: Service traffic between pods on the same bridge bypasses kube-proxy", v.trim()),
            format!("sysctl -w {key}=1 (and persist it in /etc/sysctl.d/)"),
        ),
        Some(None) => Check::warn(
            "bridge-nf-call-iptables",
            format!("{key} does not exist (br_netfilter is not loaded)"),
            format!(
                "modprobe br_netfilter && sysctl -w {key}=1 (persist both in /etc/modules-load.d/ and /etc/sysctl.d/)"
            ),
        ),
        None => Check::skip("bridge-nf-call-iptables", format!("{key} was not read")),
    });
    out
}

fn cni_plugins(f: &Facts) -> Check {
    const NAME: &str = "cni-plugins";
    let required = required_cni_plugins(f.os);
    let found = |p: &str| f.cni_plugins_found.iter().any(|x| x == p);
    let ok: Vec<&str> = required.iter().copied().filter(|p| found(p)).collect();
    let missing: Vec<&str> = required.iter().copied().filter(|p| !found(p)).collect();
    if missing.is_empty() {
        return Check::pass(NAME, format!("{} in {}", ok.join(", "), f.cni_bin_dir));
    }
    let fix = match f.os {
        Os::Linux => "install the CNI plugins (Debian/Ubuntu: apt-get install containernetworking-plugins) or give \
                      --cni-bin-dir with the directory that has them"
            .to_string(),
        Os::Windows => format!(
            "unpack cni-plugins-windows-amd64-<version>.tgz from https://github.com/containernetworking/plugins/releases \
             (it has win-bridge.exe and host-local.exe) into {}, the runtime's CNI bin dir, or give --cni-bin-dir",
            f.cni_bin_dir
        ),
    };
    Check::fail(NAME, format!("{} missing from {}", missing.join(", "), f.cni_bin_dir), fix)
}

fn gib(n: u64) -> String {
    format!("{:.1} GiB", n as f64 / GIB as f64)
}

fn disk(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "disk";
    let Some(free) = f.disk_free else {
        return Check::skip(NAME, format!("could not tell the free space under {}", s.root_dir));
    };
    let (fail, warn) = disk_thresholds(f.os);
    let detail = format!("{} free under {}", gib(free), s.root_dir);
    let fix = format!("free space or choose another --root-dir; {} or more is comfortable", gib(warn));
    if free < fail {
        Check::fail(NAME, format!("{detail}, less than {}", gib(fail)), fix)
    } else if free < warn {
        Check::warn(NAME, format!("{detail}, less than {}", gib(warn)), fix)
    } else {
        Check::pass(NAME, detail)
    }
}

fn api(f: &Facts) -> Check {
    const NAME: &str = "api-server";
    match &f.api {
        Api::NoKubeconfig { reason } => Check::fail(
            NAME,
            format!("no credentials to reach the API server: {reason}"),
            "give --kubeconfig with the node's kubeconfig (or set KUBECONFIG)",
        ),
        Api::Unreachable { server, reason } => Check::fail(
            NAME,
            format!("{}: {reason}", server.as_deref().unwrap_or("the API server")),
            "check the server URL in the kubeconfig, that this host can route to it and that no firewall blocks the port",
        ),
        Api::Reachable { server, version, .. } => Check::pass(
            NAME,
            format!("{} answers, Kubernetes {version}", server.as_deref().unwrap_or("the API server")),
        ),
    }
}

/// How many minor versions a kubelet may be older than the API server (3 from Kubernetes 1.28 on).
pub fn max_kubelet_lag(api: KubeVersion) -> u32 {
    if api.at_least(1, 28) { 3 } else { 2 }
}

fn version_skew(f: &Facts) -> Check {
    const NAME: &str = "version-skew";
    let api = match &f.api {
        Api::Reachable { version, .. } => match KubeVersion::find_in(version) {
            Some(v) => v,
            None => return Check::skip(NAME, format!("the API server's version `{version}` is not v1.x.y")),
        },
        _ => return Check::skip(NAME, "the API server's version is unknown"),
    };
    let Some(kubelet) = f.kubelet_version else {
        return Check::skip(NAME, format!("the kubelet version is not known yet; API server {api}"));
    };
    let fix = format!("use --kubernetes-version {api} (the API server's version)");
    let detail = format!("kubelet {kubelet}, API server {api}");
    if kubelet.major != api.major {
        return Check::fail(NAME, format!("{detail}: different major versions"), fix);
    }
    if kubelet.minor > api.minor {
        return Check::fail(NAME, format!("{detail}: the kubelet must not be newer than the API server"), fix);
    }
    let lag = api.minor - kubelet.minor;
    let max = max_kubelet_lag(api);
    if lag > max {
        return Check::fail(
            NAME,
            format!("{detail}: the kubelet may be at most {max} minor versions older than the API server"),
            fix,
        );
    }
    if lag > 0 {
        return Check::pass(NAME, format!("{detail}: {lag} minor version(s) older, within the skew policy"));
    }
    Check::pass(NAME, detail)
}

fn clock_skew(f: &Facts) -> Check {
    const NAME: &str = "clock-skew";
    let (date, local) = match &f.api {
        Api::Reachable { date: Some(d), local_time: Some(l), .. } => (*d, *l),
        Api::Reachable { .. } => return Check::skip(NAME, "the API server sent no Date header"),
        _ => return Check::skip(NAME, "the API server is not reachable"),
    };
    let (secs, ahead) = match local.duration_since(date) {
        Ok(d) => (d.as_secs(), true),
        Err(e) => (e.duration().as_secs(), false),
    };
    let detail = format!("this host's clock is {secs}s {} the API server's", if ahead { "ahead of" } else { "behind" });
    let fix = "synchronise the clock (Windows: w32tm /resync; Linux: timedatectl set-ntp true or chronyc makestep)";
    if secs > CLOCK_SKEW_FAIL_SECS {
        Check::fail(NAME, format!("{detail}: certificates and tokens will look invalid"), fix)
    } else if secs > CLOCK_SKEW_OK_SECS {
        Check::warn(NAME, detail, fix)
    } else {
        Check::pass(NAME, format!("within {CLOCK_SKEW_OK_SECS}s of the API server"))
    }
}

fn network_name(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "network-name";
    if let Some(env) = &f.kube_network_env
        && env != &s.network_name
    {
        return Check::warn(
            NAME,
            format!("KUBE_NETWORK={env} in this environment, but the pod network is named {}", s.network_name),
            format!(
                "unset KUBE_NETWORK or give --network-name {env}: kube-proxy must name the same network as the CNI config"
            ),
        );
    }
    let Some(cni) = &f.cni_config else {
        return Check::skip(NAME, format!("no CNI config yet; both will be named {}", s.network_name));
    };
    match &cni.network_name {
        None => Check::warn(
            NAME,
            format!("cannot read the network name from {}: {}", cni.path, cni.error.as_deref().unwrap_or("no `name`")),
            format!("remove {} (wkjoin join writes it again) or `wkjoin reset`", cni.path),
        ),
        Some(n) if n == &s.network_name => {
            Check::pass(NAME, format!("the CNI config and kube-proxy (KUBE_NETWORK) both name network {n}"))
        }
        Some(n) => Check::fail(
            NAME,
            format!(
                "{} names network {n} but kube-proxy would be given KUBE_NETWORK={}: kube-proxy then cannot find its network",
                cni.path, s.network_name
            ),
            format!("give --network-name {n}, or `wkjoin reset` and join again"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::facts::{CniConfig, PortFact, Process, WindowsVersion};
    use crate::settings::{HostFacts, Origin, PartialSettings, resolve};
    use std::time::{Duration, SystemTime};

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn settings(os: Os) -> Settings {
        let p = PartialSettings {
            node_name: Some("node-1".into()),
            node_ip: Some("172.30.0.12".parse().unwrap()),
            service_cidr: Some("10.96.0.0/16".parse().unwrap()),
            kubernetes_version: Some("v1.20.2".parse().unwrap()),
            ..Default::default()
        };
        let host =
            HostFacts { interfaces: vec![("eth0".into(), "172.30.0.12/24".parse().unwrap())], ..Default::default() };
        resolve(os, None, &[(Origin::CommandLine, &p)], &host).unwrap()
    }

    /// A host where everything is right.
    fn healthy(os: Os) -> Facts {
        let s = settings(os);
        let mut f = Facts::empty(os);
        if os == Os::Windows {
            f.windows = Some(WindowsVersion {
                build: Some(17763),
                revision: Some(5830),
                edition: Some("ServerDatacenter".into()),
                product_name: Some("Windows Server 2019 Datacenter".into()),
                installation_type: Some("Server Core".into()),
            });
            f.containers_feature = Feature::Installed;
            f.hyperv_feature = Feature::Missing;
            f.hyperv_guest = Some(false);
        } else {
            f.sysctls = vec![
                ("net.ipv4.ip_forward".into(), Some("1\n".into())),
                ("net.bridge.bridge-nf-call-iptables".into(), Some("1\n".into())),
            ];
        }
        f.cpus = Some(4);
        f.runtime_endpoint = s.runtime_endpoint.clone();
        f.runtime = Some(Endpoint::Reachable);
        f.ports = PORTS
            .iter()
            .map(|(p, svc)| PortFact { port: *p, service: svc.to_string(), state: PortState::Free })
            .collect();
        f.own_programs = vec![s.layout().binary("kubelet"), s.layout().binary("kube-proxy")];
        f.cni_bin_dir = s.cni_bin_dir.clone();
        f.cni_plugins_found = match os {
            Os::Linux => vec!["bridge".into(), "host-local".into(), "portmap".into()],
            Os::Windows => vec!["win-bridge.exe".into(), "host-local.exe".into()],
        };
        f.disk_free = Some(50 * GIB);
        let t = SystemTime::UNIX_EPOCH + T0;
        f.api = Api::Reachable {
            server: Some("https://172.30.0.10:6443".into()),
            version: "v1.20.2".into(),
            date: Some(t),
            local_time: Some(t + Duration::from_millis(700)),
        };
        f.kubelet_version = Some(KubeVersion::new(1, 20, 2));
        f
    }

    /// containerd as the lab's stock worker describes itself (or its silence).
    fn runtime_facts(answered: bool) -> crate::settings::RuntimeFacts {
        let mut facts = crate::settings::runtime::answered("registry.k8s.io/pause:3.6", "/etc/cni/net.d", None, true);
        if !answered {
            facts = crate::settings::RuntimeFacts {
                answered: false,
                error: Some("connection refused".into()),
                info: crate::settings::RuntimeFacts::blank_info(),
                ..facts
            };
        }
        facts
    }

    fn status_of(checks: &[Check], name: &str) -> Status {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in {checks:#?}")).status
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn healthy_hosts_have_no_failures_and_only_their_os_checks() {
        for os in [Os::Linux, Os::Windows] {
            let checks = evaluate(&healthy(os), &settings(os), &Options::default());
            let bad: Vec<_> = checks.iter().filter(|c| c.status >= Status::Warn).collect();
            assert!(bad.is_empty(), "{os}: {bad:#?}");
            assert!(!any_failed(&checks));
            let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names.contains(&"windows-build"), os == Os::Windows, "{names:?}");
            assert_eq!(names.contains(&"ip-forward"), os == Os::Linux, "{names:?}");
            for c in &checks {
                assert_eq!(c.fix.is_some(), c.status >= Status::Warn, "{c:?}");
            }
        }
    }

    type Case = (&'static str, Os, fn(&mut Facts, &mut Settings, &mut Options), &'static str, Status, &'static str);

    /// (case, os, change to the healthy host, check, expected status, text the detail or fix must contain)
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ("runtime down", Os::Linux, |f, _, _| f.runtime = Some(Endpoint::Unreachable { reason: "Connection refused".into() }), "runtime", Status::Fail, "--runtime-endpoint"),
        ("npipe on linux", Os::Linux, |f, _, _| f.runtime = Some(Endpoint::Unsupported { reason: "only unix://".into() }), "runtime", Status::Fail, "unix://"),
        ("windows pipe missing", Os::Windows, |f, _, _| f.runtime = Some(Endpoint::Unreachable { reason: "not found".into() }), "runtime", Status::Fail, "Start-Service containerd"),
        ("port held by a stranger", Os::Linux, |f, _, _| f.ports[0].state = PortState::InUse { holder: Some(Process { pid: 42, program: Some("/usr/bin/kubelet".into()) }) }, "port-10250", Status::Fail, "/usr/bin/kubelet (pid 42)"),
        ("port held by our kubelet", Os::Linux, |f, _, _| f.ports[0].state = PortState::InUse { holder: Some(Process { pid: 42, program: Some("/var/lib/wkjoin/bin/kubelet".into()) }) }, "port-10250", Status::Pass, "wkjoin's /var/lib/wkjoin/bin/kubelet"),
        ("port held, holder unknown, services started", Os::Windows, |f, _, _| { f.ports[1].state = PortState::InUse { holder: None }; f.services_started = true; }, "port-10256", Status::Pass, "state file"),
        ("port held, holder unknown, not started", Os::Windows, |f, _, _| f.ports[2].state = PortState::InUse { holder: None }, "port-10249", Status::Fail, "wkjoin reset"),
        ("port not checkable", Os::Linux, |f, _, _| f.ports[0].state = PortState::Unknown { reason: "permission denied".into() }, "port-10250", Status::Warn, "permission denied"),
        ("no forwarding", Os::Linux, |f, _, _| f.sysctls[0].1 = Some("0\n".into()), "ip-forward", Status::Fail, "sysctl -w net.ipv4.ip_forward=1"),
        ("no br_netfilter", Os::Linux, |f, _, _| f.sysctls[1].1 = None, "bridge-nf-call-iptables", Status::Warn, "modprobe br_netfilter"),
        ("bridge-nf off", Os::Linux, |f, _, _| f.sysctls[1].1 = Some("0".into()), "bridge-nf-call-iptables", Status::Warn, "= 0"),
        ("portmap missing", Os::Linux, |f, _, _| { f.cni_plugins_found.pop(); }, "cni-plugins", Status::Fail, "portmap missing"),
        ("win-overlay is not enough", Os::Windows, |f, _, _| f.cni_plugins_found = vec!["win-overlay.exe".into()], "cni-plugins", Status::Fail, "win-bridge.exe, host-local.exe missing"),
        ("no host-local ipam", Os::Windows, |f, _, _| f.cni_plugins_found = vec!["win-bridge.exe".into()], "cni-plugins", Status::Fail, "host-local.exe missing"),
        ("no windows cni", Os::Windows, |f, _, _| f.cni_plugins_found.clear(), "cni-plugins", Status::Fail, "containernetworking/plugins/releases"),
        ("a config sorts before ours", Os::Linux, |f, _, _| f.cni_conf_files = vec!["05-other.conflist".into(), "10-wkjoin.conflist".into()], "cni-conf", Status::Fail, "05-other.conflist"),
        ("ours alone in the conf dir", Os::Linux, |f, _, _| f.cni_conf_files = vec!["10-wkjoin.conflist".into()], "cni-conf", Status::Pass, "runtime's CNI conf dir"),
        ("a config sorts after ours", Os::Windows, |f, _, _| f.cni_conf_files = vec!["99-loopback.conf".into()], "cni-conf", Status::Warn, "99-loopback.conf"),
        ("non-configs are not configs", Os::Linux, |f, _, _| f.cni_conf_files = vec!["05-old.conf.bak".into(), "README".into()], "cni-conf", Status::Pass, "10-wkjoin.conflist"),
        ("containerd config unreadable", Os::Linux, |f, s, _| { f.runtime = None; s.runtime_facts = Some(crate::settings::RuntimeFacts { config_error: Some("cannot read /etc/containerd/config.toml: invalid UTF-8".into()), ..runtime_facts(true) }) }, "runtime", Status::Fail, "invalid UTF-8"),
        ("containerd silent over CRI", Os::Linux, |_, s, _| s.runtime_facts = Some(runtime_facts(false)), "runtime", Status::Fail, "does not answer over CRI"),
        ("containerd answers over CRI", Os::Linux, |f, s, _| { f.runtime = None; s.runtime_facts = Some(runtime_facts(true)) }, "runtime", Status::Pass, "sandbox image registry.k8s.io/pause:3.6 (CRI Status)"),
        ("disk nearly full", Os::Linux, |f, _, _| f.disk_free = Some(GIB / 2), "disk", Status::Fail, "0.5 GiB free"),
        ("disk low", Os::Linux, |f, _, _| f.disk_free = Some(3 * GIB), "disk", Status::Warn, "less than 5.0 GiB"),
        ("windows disk low", Os::Windows, |f, _, _| f.disk_free = Some(10 * GIB), "disk", Status::Warn, "less than 20.0 GiB"),
        ("disk unknown", Os::Linux, |f, _, _| f.disk_free = None, "disk", Status::Skip, "could not tell"),
        ("no kubeconfig", Os::Linux, |f, _, _| f.api = Api::NoKubeconfig { reason: "no ~/.kube/config".into() }, "api-server", Status::Fail, "--kubeconfig"),
        ("api unreachable", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: Some("https://10.0.0.1:6443".into()), reason: "timed out".into() }, "api-server", Status::Fail, "https://10.0.0.1:6443: timed out"),
        ("skew unknown without api", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: None, reason: "x".into() }, "version-skew", Status::Skip, "unknown"),
        ("clock unknown without api", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: None, reason: "x".into() }, "clock-skew", Status::Skip, "not reachable"),
        ("kubelet newer", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 21, 0)), "version-skew", Status::Fail, "must not be newer"),
        ("kubelet 3 minors older on 1.20", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 17, 4)), "version-skew", Status::Fail, "at most 2"),
        ("kubelet 2 minors older", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 18, 0)), "version-skew", Status::Pass, "2 minor"),
        ("kubelet 3 minors older on 1.28", Os::Linux, |f, _, _| { f.kubelet_version = Some(KubeVersion::new(1, 25, 0)); if let Api::Reachable { version, .. } = &mut f.api { *version = "v1.28.3".into(); } }, "version-skew", Status::Pass, "3 minor"),
        ("kubelet version unknown", Os::Linux, |f, _, _| f.kubelet_version = None, "version-skew", Status::Skip, "not known yet"),
        ("clock ahead", Os::Linux, |f, _, _| if let Api::Reachable { local_time, date, .. } = &mut f.api { *local_time = date.map(|d| d + Duration::from_secs(30)); }, "clock-skew", Status::Warn, "30s ahead of"),
        ("clock far behind", Os::Windows, |f, _, _| if let Api::Reachable { local_time, date, .. } = &mut f.api { *local_time = date.map(|d| d - Duration::from_secs(900)); }, "clock-skew", Status::Fail, "w32tm /resync"),
        ("no date header", Os::Linux, |f, _, _| if let Api::Reachable { date, .. } = &mut f.api { *date = None; }, "clock-skew", Status::Skip, "no Date header"),
        ("cni config agrees", Os::Windows, |f, _, _| f.cni_config = Some(CniConfig { path: "C:\\k\\cni\\config\\10-wkjoin.conflist".into(), network_name: Some("cbr0".into()), error: None }), "network-name", Status::Pass, "both name network cbr0"),
        ("cni config disagrees", Os::Windows, |f, _, _| f.cni_config = Some(CniConfig { path: "C:\\k\\cni\\config\\10-wkjoin.conflist".into(), network_name: Some("l2bridge".into()), error: None }), "network-name", Status::Fail, "--network-name l2bridge"),
        ("cni config damaged", Os::Linux, |f, _, _| f.cni_config = Some(CniConfig { path: "/x.conflist".into(), network_name: None, error: Some("EOF".into()) }), "network-name", Status::Warn, "EOF"),
        ("KUBE_NETWORK disagrees", Os::Windows, |f, _, _| f.kube_network_env = Some("l2bridge".into()), "network-name", Status::Warn, "KUBE_NETWORK=l2bridge"),
        ("no cni config yet", Os::Linux, |_, _, _| {}, "network-name", Status::Skip, "no CNI config yet"),
        ("node network overlaps cluster", Os::Linux, |_, s, _| s.node_network = Some("10.244.3.0/24".parse().unwrap()), "networks", Status::Fail, "overlaps the node's network"),
        ("node network unknown", Os::Linux, |_, s, _| s.node_network = None, "networks", Status::Warn, "no interface has 172.30.0.12"),
        ("old windows", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(14393), "windows-build", Status::Fail, "older than 17763"),
        ("semi-annual windows", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(19041), "windows-build", Status::Warn, "--hyperv-isolation"),
        ("ltsc2022", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(20348), "windows-build", Status::Pass, "ltsc2022"),
        ("build unreadable", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = None, "windows-build", Status::Warn, "CurrentBuildNumber"),
        ("client edition", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().edition = Some("Professional".into()), "windows-edition", Status::Warn, "client edition"),
        ("home edition", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().edition = Some("Core".into()), "windows-edition", Status::Fail, "Windows Home"),
        ("no containers feature", Os::Windows, |f, _, _| f.containers_feature = Feature::Missing, "containers-feature", Status::Fail, "Install-WindowsFeature -Name Containers"),
        ("containers feature unknown", Os::Windows, |f, _, _| f.containers_feature = Feature::Unknown, "containers-feature", Status::Warn, "could not tell"),
        ("hyper-v not needed", Os::Windows, |_, _, _| {}, "hyperv-feature", Status::Skip, "--hyperv-isolation"),
        ("hyper-v needed and missing", Os::Windows, |_, _, o| o.hyperv_isolation = true, "hyperv-feature", Status::Fail, "Install-WindowsFeature -Name Hyper-V"),
        ("hyper-v needed and present", Os::Windows, |f, _, o| { o.hyperv_isolation = true; f.hyperv_feature = Feature::Installed; }, "hyperv-feature", Status::Pass, "installed"),
        ("hyper-v guest", Os::Windows, |f, _, _| f.hyperv_guest = Some(true), "hyperv-guest", Status::Warn, "Set-VMProcessor -VMName 'node-1' -ExposeVirtualizationExtensions $true"),
        ("hyper-v guest, 1 vCPU", Os::Windows, |f, _, _| { f.hyperv_guest = Some(true); f.cpus = Some(1); }, "hyperv-guest", Status::Warn, "at least 2"),
        ("hyper-v guest unknown", Os::Windows, |f, _, _| f.hyperv_guest = None, "hyperv-guest", Status::Skip, "could not tell"),
    ];

    #[test]
    fn each_fact_changes_its_check() {
        for (case, os, change, name, want, text) in CASES {
            let (mut f, mut s, mut o) = (healthy(*os), settings(*os), Options::default());
            change(&mut f, &mut s, &mut o);
            let checks = evaluate(&f, &s, &o);
            let c = check(&checks, name);
            assert_eq!(c.status, *want, "{case}: {c:#?}");
            let all = format!("{} {}", c.detail, c.fix.as_deref().unwrap_or(""));
            assert!(all.contains(text), "{case}: `{text}` not in {all}");
            assert_eq!(any_failed(&checks), *want == Status::Fail || checks.iter().any(|c| c.status == Status::Fail));
            // Every other check keeps its healthy verdict: one fact, one check.
            let others = checks.iter().filter(|c| c.name != *name && c.status >= Status::Warn).count();
            let tolerated = usize::from(matches!(*case, "skew unknown without api" | "clock unknown without api"));
            assert_eq!(others, tolerated, "{case}: {checks:#?}");
        }
    }

    #[test]
    fn hyperv_guest_warning_has_all_host_side_commands() {
        let mut f = healthy(Os::Windows);
        f.hyperv_guest = Some(true);
        let checks = evaluate(&f, &settings(Os::Windows), &Options::default());
        let fix = check(&checks, "hyperv-guest").fix.clone().unwrap();
        for cmd in [
            "Set-VMProcessor -VMName 'node-1' -ExposeVirtualizationExtensions $true -Count 2",
            "Set-VMMemory -VMName 'node-1' -DynamicMemoryEnabled $false",
            "Set-VMNetworkAdapter -MacAddressSpoofing On",
        ] {
            assert!(fix.contains(cmd), "{cmd} missing from {fix}");
        }
        assert_eq!(status_of(&checks, "hyperv-guest"), Status::Warn);
    }
}
