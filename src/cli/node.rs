//! The node settings every step command takes (`NodeArgs`), and their conversion into the top settings layer.

use crate::layout::Os;
use crate::settings::{NetworkMode, PartialSettings, Runtime};
use crate::version::VersionSpec;
use clap::Args;
use ipnet::IpNet;
use std::net::IpAddr;

/// The node's settings; each also comes from `WKJOIN_<NAME>` or the --config file.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Node settings")]
pub struct NodeArgs {
    /// Cluster (pod) CIDR the node pod ranges are carved from [default: kubeadm-config podSubnet, else 10.244.0.0/16]
    #[arg(long, env = "WKJOIN_CLUSTER_CIDR", value_name = "CIDR")]
    pub cluster_cidr: Option<IpNet>,

    /// Service CIDR [default: kubeadm-config serviceSubnet, else 10.96.0.0/12]
    #[arg(long, env = "WKJOIN_SERVICE_CIDR", value_name = "CIDR")]
    pub service_cidr: Option<IpNet>,

    /// This node's pod CIDR, normally allocated by the controller manager; give it to plan fully offline
    #[arg(long, env = "WKJOIN_POD_CIDR", value_name = "CIDR")]
    pub pod_cidr: Option<IpNet>,

    /// Node name [default: the lower-case hostname]
    #[arg(long, env = "WKJOIN_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// The node's address on the external network (kubelet --node-ip)
    #[arg(long, env = "WKJOIN_NODE_IP", value_name = "IP")]
    pub node_ip: Option<IpAddr>,

    /// The management network interface (Windows: the NIC the pod network bridges to)
    #[arg(long, env = "WKJOIN_INTERFACE", value_name = "NAME")]
    pub interface: Option<String>,

    /// Kubernetes version as kubeadm names it (v1.20.2), or a release marker: stable, latest, stable-1.20
    /// [default: the cluster's version, else stable]
    #[arg(long, env = "WKJOIN_KUBERNETES_VERSION", value_name = "VERSION")]
    pub kubernetes_version: Option<VersionSpec>,

    /// Name of the pod network, used by both the CNI config and kube-proxy's KUBE_NETWORK [default: cbr0]
    #[arg(long, env = "WKJOIN_NETWORK_NAME", value_name = "NAME")]
    pub network_name: Option<String>,

    /// Windows pod network type [default: l2bridge]
    #[arg(long, env = "WKJOIN_NETWORK_MODE", value_enum, value_name = "MODE")]
    pub network_mode: Option<NetworkMode>,

    /// Cluster DNS Service IP [default: kube-system/kube-dns, else the 10th address of the service CIDR]
    #[arg(long, env = "WKJOIN_CLUSTER_DNS", value_name = "IP")]
    pub cluster_dns: Option<IpAddr>,

    /// Cluster DNS domain [default: kubeadm-config dnsDomain, else cluster.local]
    #[arg(long, env = "WKJOIN_CLUSTER_DOMAIN", value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,

    /// Container runtime [default: containerd; docker only before Kubernetes 1.24]
    #[arg(long, env = "WKJOIN_RUNTIME", value_enum, value_name = "RUNTIME")]
    pub runtime: Option<Runtime>,

    /// CRI endpoint [default: containerd's standard socket or named pipe]
    #[arg(long, env = "WKJOIN_RUNTIME_ENDPOINT", value_name = "URL")]
    pub runtime_endpoint: Option<String>,

    /// Release mirror with the {version}/kubernetes-node-{os}-{arch}.tar.gz layout [default: https://dl.k8s.io/release]
    #[arg(long, env = "WKJOIN_MIRROR", value_name = "URL")]
    pub mirror: Option<String>,

    /// Windows: the containernetworking/plugins release fetch installs win-bridge.exe and host-local.exe from [default: v1.1.1 for Kubernetes up to 1.26, v1.5.1 after]
    #[arg(long, env = "WKJOIN_CNI_PLUGINS_VERSION", value_name = "VERSION")]
    pub cni_plugins_version: Option<String>,

    /// Windows: mirror of the CNI plugins releases, laid out {version}/cni-plugins-windows-{arch}-{version}.tgz [default: https://github.com/containernetworking/plugins/releases/download]
    #[arg(long, env = "WKJOIN_CNI_PLUGINS_MIRROR", value_name = "URL")]
    pub cni_plugins_mirror: Option<String>,

    /// Directory of the CNI plugins [default: what containerd reports over CRI (its bin_dir); else C:\k\cni on Windows, /opt/cni/bin or /usr/lib/cni on Linux]
    #[arg(long, env = "WKJOIN_CNI_BIN_DIR", value_name = "DIR")]
    pub cni_bin_dir: Option<String>,

    /// Where the runtime reads CNI configs [default: what containerd reports over CRI (its conf_dir); with Docker, <root>/cni/config]
    #[arg(long, env = "WKJOIN_CNI_CONF_DIR", value_name = "DIR")]
    pub cni_conf_dir: Option<String>,

    /// containerd's config file, which wkjoin edits to set the sandbox image [default: the --config of the process serving the CRI endpoint, else /etc/containerd/config.toml or C:\Program Files\containerd\config.toml]
    #[arg(long, env = "WKJOIN_RUNTIME_CONFIG", value_name = "FILE")]
    pub runtime_config: Option<String>,

    /// The pod infrastructure (pause) image; containerd is configured to use it for sandboxes [default: the runtime's own sandbox image; kubeletwin/pause with Docker on Windows]
    #[arg(long, env = "WKJOIN_PAUSE_IMAGE", value_name = "IMAGE")]
    pub pause_image: Option<String>,

    /// The kubelet's cgroup root, created in every cgroup hierarchy (Linux; one per kubelet sharing a machine)
    #[arg(long, env = "WKJOIN_CGROUP_ROOT", value_name = "PATH")]
    pub cgroup_root: Option<String>,

    /// An extra kubelet flag as name=value (repeatable); it replaces wkjoin's own flag of that name
    #[arg(long = "kubelet-arg", env = "WKJOIN_KUBELET_ARG", value_name = "NAME=VALUE")]
    pub kubelet_arg: Vec<String>,

    /// An extra kube-proxy flag as name=value (repeatable); it replaces wkjoin's own flag of that name
    #[arg(long = "kube-proxy-arg", env = "WKJOIN_KUBE_PROXY_ARG", value_name = "NAME=VALUE")]
    pub kube_proxy_arg: Vec<String>,

    /// Plan for this OS instead of the host's (with --dry-run, e.g. to review a Windows plan from Linux)
    #[arg(long, value_enum, value_name = "OS")]
    pub os: Option<Os>,
}

impl NodeArgs {
    pub fn to_partial(&self) -> PartialSettings {
        PartialSettings {
            cluster_cidr: self.cluster_cidr,
            service_cidr: self.service_cidr,
            pod_cidr: self.pod_cidr,
            node_name: self.node_name.clone(),
            node_ip: self.node_ip,
            interface: self.interface.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
            network_name: self.network_name.clone(),
            network_mode: self.network_mode,
            cluster_dns: self.cluster_dns,
            cluster_domain: self.cluster_domain.clone(),
            runtime: self.runtime,
            runtime_endpoint: self.runtime_endpoint.clone(),
            mirror: self.mirror.clone(),
            cni_plugins_version: self.cni_plugins_version.clone(),
            cni_plugins_mirror: self.cni_plugins_mirror.clone(),
            cni_bin_dir: self.cni_bin_dir.clone(),
            cni_conf_dir: self.cni_conf_dir.clone(),
            runtime_config: self.runtime_config.clone(),
            pause_image: self.pause_image.clone(),
            cgroup_root: self.cgroup_root.clone(),
            kubelet_arg: Some(self.kubelet_arg.clone()).filter(|v| !v.is_empty()),
            kube_proxy_arg: Some(self.kube_proxy_arg.clone()).filter(|v| !v.is_empty()),
        }
    }
}
