//! The command line (clap derive). Definitions only: `app` runs them.

use crate::layout::Os;
use crate::plan::NextHop;
use crate::settings::{NetworkMode, PartialSettings, Runtime};
use crate::version::VersionSpec;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "wkjoin",
    version,
    about = "Join a Windows worker node to a Kubernetes cluster with a Linux control plane, and prove its networking works",
    long_about = "Join a Windows worker node to a Kubernetes cluster with a Linux control plane, and prove its \
networking works.\n\n\
wkjoin does what Microsoft's \"Kubernetes on Windows\" guide does by hand: it downloads and verifies the node \
binaries (fetch), provides the pause image (pause), installs least-privilege credentials (config), sets up \
host-gateway routes (routes), runs kubelet and kube-proxy as services (start), and checks the guide's \
connectivity matrix (validate). `wkjoin join` runs all of it, idempotently; every command that changes the \
host accepts --dry-run to print its exact plan instead.\n\n\
Settings are layered: flags > WKJOIN_* environment variables > --config file > the cluster (kubeadm-config, \
kube-dns) > defaults.",
    after_help = "Exit codes: 0 success, 1 failure, 2 bad usage or settings, 3 validation found failures, \
4 not available in this build yet, 130 interrupted.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config). For join/config: the node's credentials
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: its current-context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only print warnings and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Where wkjoin installs binaries, config and state [default: C:\k on Windows, /var/lib/wkjoin on Linux]
    #[arg(long, global = true, env = "WKJOIN_ROOT_DIR", value_name = "DIR")]
    pub root_dir: Option<String>,

    /// Settings file (YAML; keys are the long flag names, e.g. `cluster-cidr: 10.244.0.0/16`)
    #[arg(long, global = true, env = "WKJOIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub use crate::output::OutputFormat;

#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct DryRunArgs {
    /// Print the exact plan of what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the host and the cluster before joining; every check prints pass/warn/fail and the fix
    Preflight {
        /// Pods will run with Hyper-V isolation: also require the Hyper-V feature
        #[arg(long)]
        hyperv_isolation: bool,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Download the node archive (kubelet, kube-proxy, kubectl, kubeadm), verify its checksum, install it
    #[command(long_about = "Download the node archive (kubelet, kube-proxy, kubectl, kubeadm), verify its checksum, \
install it.\n\n\
The archive ({mirror}/{version}/kubernetes-node-{os}-{arch}.tar.gz) streams through its checksum (the mirror's \
.sha512, or .sha256 when there is none), gunzip and tar in one pass into a staging directory; only when the \
whole archive matches are the binaries moved into place, one atomic rename each, the replaced ones kept for \
--rollback. A failed download, a checksum mismatch or a bad archive leaves the installed binaries as they \
were. Verified archives are cached under the root dir; a re-run with the same version and intact binaries \
downloads nothing.")]
    Fetch {
        /// Install this local node archive instead of downloading one (offline installs; needs --sha512)
        #[arg(long, value_name = "FILE", requires = "sha512", conflicts_with = "rollback")]
        archive: Option<String>,
        /// The archive's SHA-512 (128 hex digits), checked instead of the mirror's published checksum
        #[arg(long, value_name = "HEX", value_parser = crate::fetch::source::parse_sha512_arg, conflicts_with = "rollback")]
        sha512: Option<String>,
        /// Swap the installed binaries with the ones the last upgrade replaced (again to undo)
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Build or import the pause (pod infrastructure) image matching this host
    Pause {
        /// Import this OCI image archive (file or URL) instead of pulling or building
        #[arg(long, value_name = "FILE|URL")]
        image_archive: Option<String>,
        /// The Windows build to match the pause image to (17763, 20348, 26100) [default: this host's build]
        #[arg(long, value_name = "BUILD")]
        windows_build: Option<u32>,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
    },
    /// Install the cluster credentials on the node: validated, self-contained, owner-only
    #[command(
        args_conflicts_with_subcommands = true,
        long_about = "Install the cluster credentials on the node: validated, self-contained, owner-only.\n\n\
`wkjoin config --from FILE` reads a kubeconfig (its current context, or --context), inlines every file it refers \
to (CA, client certificate and key, token file), checks it (the same checks as `wkjoin config check`) and only \
then writes it as <root-dir>/config, atomically and readable by its owner only (Windows: Administrators and \
SYSTEM). A re-run with the same credentials changes nothing. Use a node identity rather than the admin's \
credentials: `wkjoin config mint` makes one.\n\n\
`wkjoin config --token ID.SECRET --server https://HOST:6443 --ca-file ca.crt` is kubeadm's TLS bootstrap: with \
the bootstrap token, wkjoin generates the node's key, creates a CSR for CN=system:node:<node-name>, \
O=system:nodes, waits for the cluster to approve and sign it (kubeadm clusters approve it on their own; else \
`kubectl certificate approve <csr>`), then checks and installs the node kubeconfig as above. The token is \
neither written nor printed."
    )]
    Config {
        #[command(subcommand)]
        action: Option<Box<ConfigAction>>,
        /// The kubeconfig to install ('-' for standard input) [default: --kubeconfig]
        #[arg(long, value_name = "FILE")]
        from: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        check: ConfigCheckArgs,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Reconcile host-gateway routes to every node's pod CIDR (adds, fixes and removes only wkjoin's routes)
    Routes {
        /// Next hop for other nodes' pod CIDRs
        #[arg(long, value_enum, default_value_t = NextHop::NodeIp)]
        next_hop: NextHop,
        /// Keep running: reconcile again whenever a Node changes (joins, leaves, gets a pod CIDR)
        #[arg(long, conflicts_with = "dry_run")]
        watch: bool,
        /// Take the Node list from this file (`kubectl get nodes -o json` or -o yaml) instead of the API server
        #[arg(long, value_name = "FILE", conflicts_with = "watch")]
        nodes_file: Option<PathBuf>,
        /// Run the watcher as the Windows service wkjoin-routes (how the SCM starts it; not for a console)
        #[arg(long, hide = true, requires = "watch")]
        windows_service: bool,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Create the pod network and run kubelet and kube-proxy as services, then wait for the node to be Ready
    #[command(long_about = "Create the pod network and run kubelet and kube-proxy as services, then wait for the \
node to be Ready.\n\n\
On Linux without systemd, kubelet and kube-proxy run under a detached wkjoin supervisor (pid file \
<root>/run/supervisor.pid, logs in <root>/logs with size-based rotation) that restarts a crashed service with \
backoff (5s doubling to 60s). --foreground runs that supervisor attached instead: use it as the ExecStart of a \
systemd unit or in a terminal. When systemd is PID 1, a detached supervisor is refused in favour of such a unit. \
--stop stops the supervisor and waits until no kubelet or kube-proxy of this root dir runs. A re-run with the \
same plan and a live supervisor changes nothing; a changed plan restarts the services.")]
    Start {
        /// Run the supervisor attached to this process (systemd unit, terminal) instead of detached
        #[arg(long, conflicts_with_all = ["stop", "dry_run"])]
        foreground: bool,
        /// Stop the supervisor, kubelet and kube-proxy
        #[arg(long, conflicts_with = "dry_run")]
        stop: bool,
        /// The detached supervisor itself (started by `wkjoin start`)
        #[arg(long, hide = true, conflicts_with_all = ["stop", "foreground", "dry_run"])]
        supervise: bool,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
    },
    /// Run every step (fetch, pause, config, routes, start, validate); safe to re-run
    Join {
        /// The API server (HOST:PORT) as `kubeadm token create --print-join-command` prints it: with --token and
        /// --discovery-token-ca-cert-hash, `wkjoin join` takes that command as it is (TLS bootstrap)
        #[arg(value_name = "API_SERVER", requires = "token")]
        api_server: Option<String>,
        /// Bootstrap token ID.SECRET (`kubeadm token create`): the node's credentials come from a CSR made with it
        #[arg(long, env = "WKJOIN_TOKEN", hide_env_values = true, value_name = "ID.SECRET", requires = "api_server")]
        token: Option<String>,
        /// kubeadm's token discovery: trust the cluster CA in kube-public/cluster-info when its public key has this
        /// hash (sha256:HEX)
        #[arg(long, value_name = "sha256:HEX", requires = "token")]
        discovery_token_ca_cert_hash: Vec<String>,
        /// Instead of --discovery-token-ca-cert-hash: the cluster CA certificate (PEM) to verify the API server with
        #[arg(long, value_name = "FILE", requires = "token", conflicts_with = "discovery_token_ca_cert_hash")]
        ca_file: Option<PathBuf>,
        /// How long to wait for the node's CSR to be approved and signed, with --token
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
        csr_timeout: std::time::Duration,
        /// Import this OCI pause image archive (file or URL) instead of pulling or building
        #[arg(long, value_name = "FILE|URL")]
        image_archive: Option<String>,
        /// The Windows build to match the pause image to (17763, 20348, 26100) [default: this host's build]
        #[arg(long, value_name = "BUILD")]
        windows_build: Option<u32>,
        /// Next hop for other nodes' pod CIDRs
        #[arg(long, value_enum, default_value_t = NextHop::NodeIp)]
        next_hop: NextHop,
        /// Stop after the node is Ready, without the connectivity matrix
        #[arg(long)]
        no_validate: bool,
        /// Credentials for the connectivity matrix, which creates a namespace, pods and a Service (the node's
        /// own credentials may not); without them the matrix is skipped with a note
        #[arg(long, value_name = "FILE")]
        validate_kubeconfig: Option<PathBuf>,
        /// The matrix's sample web server image (answers HTTP on :80)
        #[arg(long, value_name = "IMAGE")]
        sample_image: Option<String>,
        /// The matrix's probe image (ping, wget, nslookup)
        #[arg(long, value_name = "IMAGE")]
        probe_image: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Check node, pod and service connectivity (the guide's matrix) and explain failures
    #[command(
        long_about = "Check node, pod and service connectivity (the guide's matrix) and explain failures.\n\n\
Runs through the Kubernetes API only (an admin kubeconfig): in a fresh namespace wkjoin-validate-<random> it \
starts, on every Ready node, a sample web pod (hostPort, behind its own Service), a probe pod on the pod \
network and a probe pod on the host network (a HostProcess pod on Windows nodes that support one), then execs \
probes in them, concurrently (one exec per Linux probe pod runs all its cells at once): node-ping, \
gateway-ping, sample-ready, node-to-pod, hostport, pod-to-pod (icmp and http), service-from-node, \
service-from-pod, service-dns. Pings to hosts known to drop ICMP (Windows nodes, --icmp-blocked) are TCP \
connects to the kubelet instead. --local adds the same paths from this machine. Each cell is pass, FAIL (the network did not deliver), ERROR (the probe could \
not run: its pod never started, exec failed), skip (something it needs failed) or known-limitation. Failures \
come with the command, its output and a diagnosis hint drawn from the pattern of results.\n\n\
The namespace is deleted at the end and on Ctrl-C (--keep leaves it for debugging); leftovers of killed runs \
are removed by the next run. Exit code 3 when any cell failed or errored.",
        after_help = "Examples:\n  wkjoin validate\n  wkjoin validate --node win-1 --junit validate.xml\n  \
wkjoin validate --only pod-to-pod,service-dns -o json\n  wkjoin validate --skip icmp --keep\n  \
wkjoin validate --local   (on the master: the guide's master → pod/Service checks)"
    )]
    Validate {
        #[command(flatten)]
        args: ValidateArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Undo a join: services, routes, pod network, binaries and config (the download cache is kept)
    Reset {
        /// Delete the Node object from the cluster (default: mark it NotReady)
        #[arg(long)]
        delete_node: bool,
        /// Also remove the download cache
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        dry: DryRunArgs,
    },
    /// Show what previous wkjoin runs recorded on this host
    Status {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print a shell completion script (e.g. `wkjoin completions bash > /etc/bash_completion.d/wkjoin`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `wkjoin config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check a kubeconfig as this node's credentials (default: the installed one); exit 3 when a check fails
    #[command(long_about = "Check a kubeconfig as this node's credentials (default: the installed one); exit 3 \
when a check fails.\n\n\
Each check prints pass/warn/fail and the fix: the server URL is https; TLS verifies against the kubeconfig's \
CA (a real handshake); no insecure-skip-tls-verify; no exec or auth-provider plugin; the client certificate is \
valid now and for 30 more days; its identity is CN=system:node:<node-name>, O=system:nodes; the API server \
accepts the credentials and its version allows the kubelet's (--kubernetes-version); the identity can do what \
a kubelet needs (access reviews) and no more (no cluster-wide secrets, no writes to other nodes).")]
    Check {
        /// The kubeconfig to check ('-' for standard input) [default: --kubeconfig, else <root-dir>/config]
        #[arg(long, value_name = "FILE")]
        from: Option<String>,
        #[command(flatten)]
        check: ConfigCheckArgs,
        #[command(flatten)]
        node: Box<NodeArgs>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Mint a node credential (CN=system:node:<name>, O=system:nodes) with an admin kubeconfig, via a CSR
    #[command(long_about = "Mint a node credential (CN=system:node:<name>, O=system:nodes) with an admin \
kubeconfig, via a CSR.\n\n\
Generates a key here, creates a certificates.k8s.io/v1 CertificateSigningRequest for the signer \
kubernetes.io/kube-apiserver-client-kubelet, approves it, waits for the controller manager to sign it and \
writes a self-contained node kubeconfig (owner-only) to --out. Install it on the node with \
`wkjoin config --from <file>`: the node never sees the admin's credentials.")]
    Mint {
        /// The node the credential is for
        #[arg(long = "node-name", visible_alias = "node", value_name = "NAME")]
        node_name: String,
        /// Where to write the node's kubeconfig
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// How long to wait for the certificate to be issued
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: std::time::Duration,
    },
}

/// `wkjoin config --token`: kubeadm's TLS bootstrap.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// Bootstrap token <id>.<secret> (`kubeadm token create`): request the node's certificate with it instead of
    /// --from (TLS bootstrap)
    #[arg(
        long,
        env = "WKJOIN_TOKEN",
        hide_env_values = true,
        value_name = "ID.SECRET",
        conflicts_with = "from",
        requires = "server"
    )]
    pub token: Option<String>,
    /// The API server to bootstrap from, for --token (https://HOST:PORT)
    #[arg(long, value_name = "URL", requires = "token")]
    pub server: Option<String>,
    /// The cluster CA certificate (PEM) the API server is verified with, for --token
    #[arg(long, value_name = "FILE", requires = "token")]
    pub ca_file: Option<PathBuf>,
    /// Instead of --ca-file, kubeadm's token discovery: take the CA from kube-public/cluster-info when the token
    /// signed it and its public key has this hash (sha256:HEX, from `kubeadm token create --print-join-command`)
    #[arg(long, value_name = "sha256:HEX", requires = "token", conflicts_with = "ca_file")]
    pub discovery_token_ca_cert_hash: Vec<String>,
    /// How long to wait for the node's CSR to be approved and signed, for --token
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub csr_timeout: std::time::Duration,
}

/// How `wkjoin config` and `wkjoin config check` validate credentials.
#[derive(Debug, Args, Clone)]
pub struct ConfigCheckArgs {
    /// Accept a kubeconfig that sets insecure-skip-tls-verify (warned about on every run)
    #[arg(long, visible_alias = "allow-insecure")]
    pub insecure_skip_tls_verify: bool,
    /// How long to wait for the API server to accept a connection
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub connect_timeout: std::time::Duration,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
