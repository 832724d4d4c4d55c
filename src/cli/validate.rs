//! `wkjoin validate`'s flags: which cells of the connectivity matrix, with which images and timeouts.

use super::OutputArgs;
use clap::Args;
use std::path::PathBuf;

/// `wkjoin validate`: the matrix options and the output format.
#[derive(Debug, Args)]
pub struct ValidateCommandArgs {
    #[command(flatten)]
    pub args: ValidateArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `wkjoin validate` options.
#[derive(Debug, Args, Clone)]
pub struct ValidateArgs {
    /// Only cells from or to this node (the other Ready nodes still serve as peers)
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only these checks (node-ping, gateway-ping, sample-ready, node-to-pod, hostport, pod-to-pod,
    /// service-from-node, service-from-pod, service-dns) or probe kinds (icmp, tcp, http, dns); comma-separated
    #[arg(long, value_delimiter = ',', value_name = "CHECKS")]
    pub only: Vec<crate::validate::matrix::Selector>,
    /// Leave out these checks or probe kinds; comma-separated
    #[arg(long, value_delimiter = ',', value_name = "CHECKS")]
    pub skip: Vec<crate::validate::matrix::Selector>,
    /// Nodes whose hosts drop ICMP (a cloud security group, a firewall): pings to them become TCP connects
    /// to the kubelet port 10250, reported as `tcp` cells. Windows nodes are always pinged this way (Windows
    /// Firewall drops echo requests by default); comma-separated
    #[arg(long, value_delimiter = ',', value_name = "NODES")]
    pub icmp_blocked: Vec<String>,
    /// Image of the sample web server on Linux nodes: any busybox (wkjoin runs its httpd with a CGI that names
    /// the pod and the caller)
    #[arg(long, value_name = "IMAGE", default_value = "busybox:1.36")]
    pub sample_image: String,
    /// Image of the probe pods on Linux nodes: any busybox (ping, wget, nslookup, timeout)
    #[arg(long, value_name = "IMAGE", default_value = "busybox:1.36")]
    pub probe_image: String,
    /// Image of the sample web server on Windows nodes (runs the guide's PowerShell HttpListener); {ltsc}
    /// becomes the tag matching each node's Windows build (ltsc2019, ltsc2022, ltsc2025)
    #[arg(long, value_name = "IMAGE", default_value = "mcr.microsoft.com/windows/servercore:{ltsc}")]
    pub windows_sample_image: String,
    /// Image of the probe pods on Windows nodes (ping, curl.exe, PowerShell); {ltsc} as above
    #[arg(long, value_name = "IMAGE", default_value = "mcr.microsoft.com/windows/servercore:{ltsc}")]
    pub windows_probe_image: String,
    /// How long the pods on Linux nodes may take to start, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// How long the pods on Windows nodes may take to start, in seconds (a first pull of a Windows Server
    /// Core image takes minutes)
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub windows_timeout: u64,
    /// How long one probe may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub probe_timeout: u64,
    /// Probes run at the same time
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// hostPort of the sample pods
    #[arg(long, value_name = "PORT", default_value_t = 4444)]
    pub host_port: u16,
    /// Cluster DNS domain of the Service names
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Keep the namespace afterwards for debugging (the next run removes it)
    #[arg(long)]
    pub keep: bool,
    /// Remove validate namespaces left by earlier runs once they are this old, in minutes. Runs take turns
    /// (a Lease), so by default every other run's namespace is left over: its pods would hold the hostPort
    #[arg(long, value_name = "MINUTES", default_value_t = 0)]
    pub stale_after: u64,
    /// Also write the results as JUnit XML to this file
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run the probes N times in one setup (a soak run); cells that pass only in some rounds fail as flaky
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Also probe from this machine, outside any pod: node-ping, node-to-pod, hostport and service-from-node
    /// with source `local`
    ///
    /// Run it on the master to check the guide's master → pod and master → Service paths from the master
    /// itself (its routes to every pod CIDR, its kube-proxy), which a probe pod only approximates. Off-cluster
    /// (a laptop, a bastion on the nodes' network) it checks this machine's routes to the pod CIDRs. Service
    /// ClusterIPs answer only on nodes running kube-proxy, so on a machine that is not a Ready node the
    /// service-from-node cells from `local` are known-limitation, not failures.
    #[arg(long)]
    pub local: bool,
}
