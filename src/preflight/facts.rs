//! What preflight observed: plain data gathered by the host backend and the API, so `evaluate` stays pure and
//! Windows fact sets can be tested on Linux.

use crate::layout::Os;
use crate::version::KubeVersion;
use serde::Serialize;
use std::time::SystemTime;

pub use crate::host::machine::{Endpoint, Feature, Process, WindowsVersion};

/// Whether a TCP port can be listened on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum PortState {
    Free,
    InUse {
        holder: Option<Process>,
    },
    /// The check itself failed (e.g. no permission).
    Unknown {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortFact {
    pub port: u16,
    /// Which node service needs it.
    pub service: String,
    pub state: PortState,
}

/// The API server as seen with the given kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Api {
    /// No kubeconfig was given or found.
    NoKubeconfig {
        reason: String,
    },
    Unreachable {
        server: Option<String>,
        reason: String,
    },
    Reachable {
        server: Option<String>,
        /// `gitVersion` of `/version`.
        version: String,
        /// The response's `Date` header and the local clock when the response arrived.
        #[serde(skip)]
        date: Option<SystemTime>,
        #[serde(skip)]
        local_time: Option<SystemTime>,
    },
}

/// The CNI config wkjoin wrote earlier, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniConfig {
    pub path: String,
    /// Its `name`, or `None` when the file cannot be read or parsed.
    pub network_name: Option<String>,
    pub error: Option<String>,
}

/// Everything preflight looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Facts {
    pub os: Os,
    pub windows: Option<WindowsVersion>,
    pub containers_feature: Feature,
    pub hyperv_feature: Feature,
    /// `Some(true)` when this host is a Hyper-V virtual machine (SMBIOS / guest registry key).
    pub hyperv_guest: Option<bool>,
    pub cpus: Option<usize>,
    /// The CRI endpoint checked (as configured) and what happened.
    pub runtime_endpoint: Option<String>,
    pub runtime: Option<Endpoint>,
    pub ports: Vec<PortFact>,
    /// Paths of the binaries wkjoin installs (kubelet, kube-proxy): a port held by one of them is ours.
    pub own_programs: Vec<String>,
    /// True when the state file records that wkjoin started the node services.
    pub services_started: bool,
    /// Linux sysctls (`net.ipv4.ip_forward`, ...) and their values; `None` when absent.
    pub sysctls: Vec<(String, Option<String>)>,
    /// The CNI plugin directory and the plugins found there.
    pub cni_bin_dir: String,
    pub cni_plugins_found: Vec<String>,
    /// Free bytes on the file system of the root dir (or its nearest existing parent).
    pub disk_free: Option<u64>,
    pub api: Api,
    /// The kubelet version to be installed (asked for, or the installed one).
    #[serde(serialize_with = "display_opt")]
    pub kubelet_version: Option<KubeVersion>,
    pub cni_config: Option<CniConfig>,
    /// The files in the runtime's CNI conf dir (names only, sorted), and the dir.
    pub cni_conf_dir: String,
    pub cni_conf_files: Vec<String>,
    /// `KUBE_NETWORK` in wkjoin's own environment (it is what a hand-started kube-proxy would use).
    pub kube_network_env: Option<String>,
}

impl Facts {
    /// Facts of a host about which nothing is known: every check can be given exactly what it needs in tests.
    pub fn empty(os: Os) -> Self {
        Facts {
            os,
            windows: None,
            containers_feature: Feature::Unknown,
            hyperv_feature: Feature::Unknown,
            hyperv_guest: None,
            cpus: None,
            runtime_endpoint: None,
            runtime: None,
            ports: Vec::new(),
            own_programs: Vec::new(),
            services_started: false,
            sysctls: Vec::new(),
            cni_bin_dir: String::new(),
            cni_plugins_found: Vec::new(),
            disk_free: None,
            api: Api::NoKubeconfig { reason: "not checked".into() },
            kubelet_version: None,
            cni_config: None,
            cni_conf_dir: String::new(),
            cni_conf_files: Vec::new(),
            kube_network_env: None,
        }
    }
}

fn display_opt<S: serde::Serializer>(v: &Option<KubeVersion>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
