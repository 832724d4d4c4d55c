//! The node's settings in one typed model, layered: flags > `WKJOIN_*` env > config file > cluster > defaults.

mod discover;
pub mod pause;
mod resolve;
pub(crate) mod runtime;
mod validate;

pub use discover::{DiscoverError, discover, from_kubeadm_config};
pub use resolve::{
    Cluster, ResolveError, Sources, discover_cluster, layered_settings, resolve_node_settings, resolve_settings,
    windows_build_of,
};
pub use runtime::{RuntimeFacts, discover_runtime};
pub use validate::{SettingsError, validate};

use crate::layout::{Layout, Os};
use crate::version::VersionSpec;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Which container runtime the kubelet talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// containerd through CRI (the only choice from Kubernetes 1.24 on).
    Containerd,
    /// Docker through the kubelet's built-in dockershim (Kubernetes < 1.24, as in the guide).
    Docker,
}

/// The Windows pod network type (seed 002); Linux nodes always use a `bridge` CNI network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Pods on a layer-2 bridge sharing the host's network; host-gateway routes between nodes.
    L2bridge,
    /// Like l2bridge but all pod traffic is tunnelled to the Hyper-V host (e.g. Azure SDN).
    L2tunnel,
}

/// One layer of settings; every field optional. Also the schema of `--config wkjoin.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PartialSettings {
    pub cluster_cidr: Option<IpNet>,
    pub service_cidr: Option<IpNet>,
    pub pod_cidr: Option<IpNet>,
    pub node_name: Option<String>,
    pub node_ip: Option<IpAddr>,
    pub interface: Option<String>,
    pub kubernetes_version: Option<VersionSpec>,
    pub network_name: Option<String>,
    pub network_mode: Option<NetworkMode>,
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: Option<String>,
    pub runtime: Option<Runtime>,
    pub runtime_endpoint: Option<String>,
    pub mirror: Option<String>,
    /// Windows: the containernetworking/plugins release whose win-bridge and host-local `fetch` installs.
    pub cni_plugins_version: Option<String>,
    /// Windows: where that release is, in GitHub's `{version}/cni-plugins-windows-{arch}-{version}.tgz` layout.
    pub cni_plugins_mirror: Option<String>,
    pub cni_bin_dir: Option<String>,
    /// Where the runtime reads CNI configs; normally learned from the runtime itself.
    pub cni_conf_dir: Option<String>,
    /// The container runtime's config file (containerd's `--config`); normally learned from the runtime's process.
    pub runtime_config: Option<String>,
    pub pause_image: Option<String>,
    pub cgroup_root: Option<String>,
    /// Extra kubelet flags (`name=value`), appended or overriding wkjoin's own.
    pub kubelet_arg: Option<Vec<String>>,
    /// Extra kube-proxy flags (`name=value`), appended or overriding wkjoin's own.
    pub kube_proxy_arg: Option<Vec<String>>,
}

/// Where a layer came from, so errors can say which value to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    File(PathBuf),
    Cluster(&'static str),
    /// What the container runtime reported (CRI Status, its config file, or its built-in default).
    Runtime(String),
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::CommandLine => f.write_str("flag or WKJOIN_* variable"),
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Cluster(what) => write!(f, "cluster ({what})"),
            Origin::Runtime(what) => write!(f, "runtime: {what}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A value with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// Fully resolved node settings: what every step plans from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    pub os: Os,
    pub arch: String,
    pub root_dir: String,
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub interface: Option<String>,
    /// The network of the node's own interface (learned from the host), checked against pod/service ranges.
    pub node_network: Option<IpNet>,
    pub cluster_cidr: IpNet,
    pub service_cidr: IpNet,
    pub pod_cidr: Option<IpNet>,
    pub kubernetes_version: VersionSpec,
    pub network_name: String,
    pub network_mode: NetworkMode,
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    pub runtime: Runtime,
    pub runtime_endpoint: Option<String>,
    /// containerd's config file as given (`--runtime-config`); else it is learned from the runtime's process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<String>,
    pub mirror: String,
    /// The CNI plugins release asked for; else the one pinned for the Kubernetes version (`fetch::cni_plugins`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_plugins_version: Option<String>,
    pub cni_plugins_mirror: String,
    pub cni_bin_dir: String,
    /// Where the runtime reads CNI configs (containerd's `conf_dir`; the kubelet's `--cni-conf-dir` with Docker).
    pub cni_conf_dir: String,
    /// The pod infrastructure image the kubelet, `wkjoin pause` and the runtime's sandboxes use.
    pub pause_image: String,
    /// The container runtime as it answered when wkjoin asked it (planning for this host with containerd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_facts: Option<RuntimeFacts>,
    /// The kubelet's cgroup root (Linux; kubelets sharing one machine need one each).
    pub cgroup_root: Option<String>,
    pub kubelet_args: Vec<String>,
    pub kube_proxy_args: Vec<String>,
    #[serde(skip)]
    pub origins: Origins,
}

/// Origins of the values that validation errors name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origins {
    pub cluster_cidr: Option<Origin>,
    pub service_cidr: Option<Origin>,
    pub pod_cidr: Option<Origin>,
    pub cluster_dns: Option<Origin>,
    pub node_ip: Option<Origin>,
    pub cni_conf_dir: Option<Origin>,
    pub cni_bin_dir: Option<Origin>,
    pub pause_image: Option<Origin>,
}

pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// kubeadm's default service subnet.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const DEFAULT_MIRROR: &str = "https://dl.k8s.io/release";
/// containernetworking/plugins' GitHub releases: `{version}/cni-plugins-windows-amd64-{version}.tgz` (+ `.sha512`).
pub const DEFAULT_CNI_PLUGINS_MIRROR: &str = "https://github.com/containernetworking/plugins/releases/download";
pub const DEFAULT_NETWORK_NAME: &str = "cbr0";
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Facts about the host that defaults depend on, gathered by the caller (so resolution stays pure).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: Option<String>,
    /// Addresses of the host's interfaces, with their prefix length and interface name.
    pub interfaces: Vec<(String, IpNet)>,
    /// CNI plugin directories that exist on this host, in order of preference.
    pub cni_bin_dirs: Vec<String>,
    /// The container runtime, as asked over CRI (only when planning for this host with containerd).
    pub runtime: Option<RuntimeFacts>,
    /// This host's Windows build (17763, 20348, 26100), when it is Windows.
    pub windows_build: Option<u32>,
}

impl From<crate::host::machine::Machine> for HostFacts {
    /// This machine's facts; CNI plugin dirs are the usual Linux ones that hold a `bridge` plugin.
    fn from(m: crate::host::machine::Machine) -> Self {
        let cni_bin_dirs = match m.windows_build {
            Some(_) => Vec::new(),
            None => ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"]
                .into_iter()
                .filter(|d| Path::new(d).join("bridge").exists())
                .map(str::to_string)
                .collect(),
        };
        HostFacts {
            hostname: m.hostname,
            interfaces: m.interfaces,
            cni_bin_dirs,
            runtime: None,
            windows_build: m.windows_build,
        }
    }
}

/// The flag name of an extra `--kubelet-arg`/`--kube-proxy-arg` (`name=value`, `--name=value` or `name`).
pub fn extra_flag_name(arg: &str) -> Option<&str> {
    let body = arg.trim_start_matches('-');
    let name = body.split_once('=').map_or(body, |(n, _)| n);
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    ok.then_some(name)
}

/// Loads `--config wkjoin.yaml`.
pub fn load_file(path: &Path) -> Result<PartialSettings, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SettingsError::ConfigRead { path: path.to_path_buf(), source })?;
    serde_yaml::from_str(&text)
        .map_err(|source| SettingsError::ConfigParse { path: path.to_path_buf(), message: source.to_string() })
}

/// Picks each field from the first layer that has it; the layers are given highest precedence first.
pub fn resolve(
    os: Os,
    root_dir: Option<&str>,
    layers: &[(Origin, &PartialSettings)],
    host: &HostFacts,
) -> Result<Settings, SettingsError> {
    fn pick<T: Clone>(
        layers: &[(Origin, &PartialSettings)],
        get: impl Fn(&PartialSettings) -> Option<T>,
    ) -> Option<Sourced<T>> {
        layers.iter().find_map(|(origin, layer)| get(layer).map(|value| Sourced { value, origin: origin.clone() }))
    }
    fn or_default<T>(v: Option<Sourced<T>>, default: T) -> Sourced<T> {
        v.unwrap_or(Sourced { value: default, origin: Origin::Default })
    }

    let cluster_cidr =
        or_default(pick(layers, |l| l.cluster_cidr), DEFAULT_CLUSTER_CIDR.parse().expect("valid default"));
    let service_cidr =
        or_default(pick(layers, |l| l.service_cidr), DEFAULT_SERVICE_CIDR.parse().expect("valid default"));
    let pod_cidr = pick(layers, |l| l.pod_cidr);
    // kubeadm's convention: the cluster DNS Service is the 10th address of the service range.
    let cluster_dns = match pick(layers, |l| l.cluster_dns) {
        Some(s) => s,
        None => Sourced { value: nth_address(service_cidr.value, 10), origin: Origin::Default },
    };
    let node_ip = pick(layers, |l| l.node_ip);
    let interface = pick(layers, |l| l.interface.clone()).map(|s| s.value);

    let node_name = match pick(layers, |l| l.node_name.clone()) {
        Some(s) => s.value,
        // The kubelet registers the lower-case hostname; a mismatch is pain point #10.
        None => host.hostname.clone().map(|h| h.to_lowercase()).ok_or(SettingsError::NoNodeName)?,
    };

    let node_network = node_network(host, node_ip.as_ref().map(|s| s.value), interface.as_deref());
    let runtime = or_default(pick(layers, |l| l.runtime), Runtime::Containerd).value;
    let runtime_endpoint = pick(layers, |l| l.runtime_endpoint.clone())
        .map(|s| s.value)
        .or_else(|| default_runtime_endpoint(os, runtime).map(str::to_string));
    let layout = Layout::new(os, root_dir.unwrap_or(os.default_root_dir()));
    // The runtime's own word wins over wkjoin's guesses; only an explicit flag or file value overrides it.
    let asked = host.runtime.as_ref().filter(|_| runtime == Runtime::Containerd);
    // Only an answer is a fact: a silent runtime leaves containerd's defaults (and preflight fails on it).
    let rt = asked.filter(|r| r.answered);
    let cni_bin_dir = pick(layers, |l| l.cni_bin_dir.clone())
        .or_else(|| rt.and_then(|r| r.cni_bin_dir()))
        .unwrap_or_else(|| Sourced {
            value: match os {
                Os::Windows => layout.join(&["cni"]),
                Os::Linux => host.cni_bin_dirs.first().cloned().unwrap_or_else(|| "/opt/cni/bin".to_string()),
            },
            origin: Origin::Default,
        });
    let cni_conf_dir = pick(layers, |l| l.cni_conf_dir.clone())
        .or_else(|| rt.and_then(|r| r.cni_conf_dir()))
        .unwrap_or_else(|| Sourced { value: default_cni_conf_dir(os, runtime, &layout), origin: Origin::Default });
    let mut pause_image =
        pick(layers, |l| l.pause_image.clone()).or_else(|| rt.and_then(|r| r.sandbox_image())).unwrap_or_else(|| {
            Sourced { value: pause::default_pause_image(os, runtime).to_string(), origin: Origin::Default }
        });
    // A pause image wkjoin chose (the runtime's or its own default) must have a variant for this Windows build.
    if let (Os::Windows, Runtime::Containerd, Some(build)) = (os, runtime, host.windows_build)
        && !matches!(pause_image.origin, Origin::CommandLine | Origin::File(_))
        && pause::pause_serves_build(&pause_image.value, build) == Some(false)
    {
        pause_image = Sourced {
            value: pause::pause_for_build(build).to_string(),
            origin: Origin::Runtime(format!("{} has no variant for Windows build {build}", pause_image.value)),
        };
    }

    let settings = Settings {
        os,
        arch: "amd64".to_string(),
        root_dir: Layout::new(os, root_dir.unwrap_or(os.default_root_dir())).root,
        node_name,
        node_ip: node_ip.as_ref().map(|s| s.value),
        interface,
        node_network,
        cluster_cidr: cluster_cidr.value,
        service_cidr: service_cidr.value,
        pod_cidr: pod_cidr.as_ref().map(|s| s.value),
        kubernetes_version: or_default(
            pick(layers, |l| l.kubernetes_version.clone()),
            VersionSpec::Marker("stable".into()),
        )
        .value,
        network_name: or_default(pick(layers, |l| l.network_name.clone()), DEFAULT_NETWORK_NAME.to_string()).value,
        network_mode: or_default(pick(layers, |l| l.network_mode), NetworkMode::L2bridge).value,
        cluster_dns: cluster_dns.value,
        cluster_domain: or_default(pick(layers, |l| l.cluster_domain.clone()), DEFAULT_CLUSTER_DOMAIN.to_string())
            .value,
        runtime,
        runtime_endpoint,
        runtime_config: pick(layers, |l| l.runtime_config.clone()).map(|s| s.value),
        mirror: or_default(pick(layers, |l| l.mirror.clone()), DEFAULT_MIRROR.to_string()).value,
        cni_plugins_version: pick(layers, |l| l.cni_plugins_version.clone()).map(|s| s.value),
        cni_plugins_mirror: or_default(
            pick(layers, |l| l.cni_plugins_mirror.clone()),
            DEFAULT_CNI_PLUGINS_MIRROR.to_string(),
        )
        .value,
        cni_bin_dir: cni_bin_dir.value,
        cni_conf_dir: cni_conf_dir.value,
        pause_image: pause_image.value,
        runtime_facts: asked.cloned(),
        cgroup_root: pick(layers, |l| l.cgroup_root.clone()).map(|s| s.value),
        kubelet_args: pick(layers, |l| l.kubelet_arg.clone().filter(|v| !v.is_empty()))
            .map(|s| s.value)
            .unwrap_or_default(),
        kube_proxy_args: pick(layers, |l| l.kube_proxy_arg.clone().filter(|v| !v.is_empty()))
            .map(|s| s.value)
            .unwrap_or_default(),
        origins: Origins {
            cluster_cidr: Some(cluster_cidr.origin),
            service_cidr: Some(service_cidr.origin),
            pod_cidr: pod_cidr.map(|s| s.origin),
            cluster_dns: Some(cluster_dns.origin),
            node_ip: node_ip.map(|s| s.origin),
            cni_conf_dir: Some(cni_conf_dir.origin),
            cni_bin_dir: Some(cni_bin_dir.origin),
            pause_image: Some(pause_image.origin),
        },
    };
    validate(&settings)?;
    Ok(settings)
}

impl Settings {
    pub fn layout(&self) -> Layout {
        Layout::new(self.os, self.root_dir.clone())
    }
}

/// The CRI endpoint for a runtime; `None` means the kubelet's built-in dockershim.
pub fn default_runtime_endpoint(os: Os, runtime: Runtime) -> Option<&'static str> {
    match (os, runtime) {
        (Os::Linux, Runtime::Containerd) => Some("unix:///run/containerd/containerd.sock"),
        (Os::Windows, Runtime::Containerd) => Some("npipe:////./pipe/containerd-containerd"),
        (_, Runtime::Docker) => None,
    }
}

/// Where the runtime reads CNI configs when it does not say: containerd's built-in `conf_dir`; with Docker
/// (dockershim) the kubelet runs CNI itself from the directory wkjoin gives it.
pub fn default_cni_conf_dir(os: Os, runtime: Runtime, layout: &Layout) -> String {
    match (os, runtime) {
        (Os::Linux, Runtime::Containerd) => "/etc/cni/net.d".to_string(),
        (Os::Windows, Runtime::Containerd) => "C:\\Program Files\\containerd\\cni\\conf".to_string(),
        (_, Runtime::Docker) => layout.join(&["cni", "config"]),
    }
}

/// The network of the interface carrying `node_ip` (or named `interface`, or the first non-loopback one).
fn node_network(host: &HostFacts, node_ip: Option<IpAddr>, interface: Option<&str>) -> Option<IpNet> {
    let usable = |(_, net): &&(String, IpNet)| !net.addr().is_loopback() && !is_link_local(net.addr());
    if let Some(ip) = node_ip {
        return host.interfaces.iter().find(|(_, n)| n.addr() == ip).map(|(_, n)| n.trunc());
    }
    if let Some(name) = interface {
        return host.interfaces.iter().filter(usable).find(|(n, _)| n == name).map(|(_, n)| n.trunc());
    }
    host.interfaces.iter().find(usable).map(|(_, n)| n.trunc())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The `n`th address of a network (`10.96.0.0/12`, 10 → `10.96.0.10`).
pub fn nth_address(net: IpNet, n: u32) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4((u32::from(v4.network()).wrapping_add(n)).into()),
        IpNet::V6(v6) => IpAddr::V6((u128::from(v6.network()).wrapping_add(n as u128)).into()),
    }
}

#[cfg(test)]
mod tests;
