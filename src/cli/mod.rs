//! The command line (clap derive): the top-level `Cli`, the global flags and the `Command` table with each
//! command's help. Definitions only: `commands` runs them; each command's own flags live in the submodules.

mod config;
mod join;
mod node;
mod steps;
mod validate;

pub use crate::output::OutputFormat;
pub use config::{ConfigAction, ConfigArgs, ConfigCheckArgs, TokenArgs};
pub use join::JoinArgs;
pub use node::NodeArgs;
pub use steps::{
    CompletionsArgs, FetchArgs, LogRunnerArgs, PauseArgs, PreflightArgs, ResetArgs, RoutesArgs, StartArgs, StatusArgs,
};
pub use validate::{ValidateArgs, ValidateCommandArgs};

use clap::{Args, Parser, Subcommand};
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the host and the cluster before joining; every check prints pass/warn/fail and the fix
    Preflight(PreflightArgs),
    /// Download the node archive (kubelet, kube-proxy, kubectl, kubeadm), verify its checksum, install it
    #[command(long_about = "Download the node archive (kubelet, kube-proxy, kubectl, kubeadm), verify its checksum, \
install it.\n\n\
The archive ({mirror}/{version}/kubernetes-node-{os}-{arch}.tar.gz) streams through its checksum (the mirror's \
.sha512, or .sha256 when there is none), gunzip and tar in one pass into a staging directory; only when the \
whole archive matches are the binaries moved into place, one atomic rename each, the replaced ones kept for \
--rollback. A failed download, a checksum mismatch or a bad archive leaves the installed binaries as they \
were. Verified archives are cached under the root dir; a re-run with the same version and intact binaries \
downloads nothing.")]
    Fetch(FetchArgs),
    /// Build or import the pause (pod infrastructure) image matching this host
    Pause(PauseArgs),
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
    Config(ConfigArgs),
    /// Reconcile host-gateway routes to every node's pod CIDR (adds, fixes and removes only wkjoin's routes)
    Routes(RoutesArgs),
    /// Create the pod network and run kubelet and kube-proxy as services, then wait for the node to be Ready
    #[command(long_about = "Create the pod network and run kubelet and kube-proxy as services, then wait for the \
node to be Ready.\n\n\
On Linux without systemd, kubelet and kube-proxy run under a detached wkjoin supervisor (pid file \
<root>/run/supervisor.pid, logs in <root>/logs with size-based rotation) that restarts a crashed service with \
backoff (5s doubling to 60s). --foreground runs that supervisor attached instead: use it as the ExecStart of a \
systemd unit or in a terminal. When systemd is PID 1, a detached supervisor is refused in favour of such a unit. \
--stop stops the supervisor and waits until no kubelet or kube-proxy of this root dir runs. A re-run with the \
same plan and a live supervisor changes nothing; a changed plan restarts the services.")]
    Start(StartArgs),
    /// Run every step (fetch, pause, config, routes, start, validate); safe to re-run
    Join(JoinArgs),
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
    Validate(ValidateCommandArgs),
    /// Undo a join: services, routes, pod network, binaries and config (the download cache is kept)
    Reset(ResetArgs),
    /// Show what previous wkjoin runs recorded on this host
    Status(StatusArgs),
    /// Print a shell completion script (e.g. `wkjoin completions bash > /etc/bash_completion.d/wkjoin`)
    Completions(CompletionsArgs),
    /// Run a program with its output in a rotated log file (the node services under the Windows SCM)
    #[command(hide = true)]
    LogRunner(LogRunnerArgs),
}

/// A SHA-256 given on the command line: 64 hex digits (any case).
pub fn sha256_hex(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a SHA-256: 64 hex digits, as `sha256sum FILE` prints them"))
    }
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
