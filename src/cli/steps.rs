//! The flags of the commands that run one step or report: preflight, fetch, pause, routes, start, reset,
//! status, completions.

use super::{DryRunArgs, NodeArgs, OutputArgs};
use crate::plan::NextHop;
use clap::Args;
use std::path::PathBuf;

/// `wkjoin preflight`.
#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// Pods will run with Hyper-V isolation: also require the Hyper-V feature
    #[arg(long)]
    pub hyperv_isolation: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `wkjoin fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Install this local node archive instead of downloading one (offline installs; needs --sha512)
    #[arg(long, value_name = "FILE", requires = "sha512", conflicts_with = "rollback")]
    pub archive: Option<String>,
    /// The archive's SHA-512 (128 hex digits), checked instead of the mirror's published checksum
    #[arg(long, value_name = "HEX", value_parser = crate::fetch::source::parse_sha512_arg, conflicts_with = "rollback")]
    pub sha512: Option<String>,
    /// Swap the installed binaries with the ones the last upgrade replaced (again to undo)
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `wkjoin pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Import this OCI image archive (file or URL) instead of pulling or building
    #[arg(long, value_name = "FILE|URL")]
    pub image_archive: Option<String>,
    /// The image archive's SHA-256 [default: the `.sha256` published beside it]
    #[arg(long, value_name = "HEX", requires = "image_archive", value_parser = super::sha256_hex)]
    pub image_archive_sha256: Option<String>,
    /// The Windows build to match the pause image to (17763, 20348, 26100) [default: this host's build]
    #[arg(long, value_name = "BUILD")]
    pub windows_build: Option<u32>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

/// `wkjoin routes`.
#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// Next hop for other nodes' pod CIDRs
    #[arg(long, value_enum, default_value_t = NextHop::NodeIp)]
    pub next_hop: NextHop,
    /// Keep running: reconcile again whenever a Node changes (joins, leaves, gets a pod CIDR)
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// Take the Node list from this file (`kubectl get nodes -o json` or -o yaml) instead of the API server
    #[arg(long, value_name = "FILE", conflicts_with = "watch")]
    pub nodes_file: Option<PathBuf>,
    /// Run the watcher as the Windows service wkjoin-routes (how the SCM starts it; not for a console)
    #[arg(long, hide = true, requires = "watch")]
    pub windows_service: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `wkjoin start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run the supervisor attached to this process (systemd unit, terminal) instead of detached
    #[arg(long, conflicts_with_all = ["stop", "dry_run"])]
    pub foreground: bool,
    /// Stop the supervisor, kubelet and kube-proxy
    #[arg(long, conflicts_with = "dry_run")]
    pub stop: bool,
    /// The detached supervisor itself (started by `wkjoin start`)
    #[arg(long, hide = true, conflicts_with_all = ["stop", "foreground", "dry_run"])]
    pub supervise: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

/// `wkjoin reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Delete the Node object from the cluster (default: mark it NotReady)
    #[arg(long)]
    pub delete_node: bool,
    /// Also remove the download cache
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

/// `wkjoin status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `wkjoin log-runner` (hidden): what the SCM runs for kubelet and kube-proxy from Kubernetes 1.26.
#[derive(Debug, Args)]
pub struct LogRunnerArgs {
    /// Run as this SCM service (how the SCM starts it); without it, run in the foreground until Ctrl-C
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The log file the program's stdout and stderr go to
    #[arg(long, value_name = "FILE")]
    pub log_file: PathBuf,
    /// Rotate the log when it would pass this size
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    pub max_size_mb: u64,
    /// How many rotated logs to keep (FILE.1 ... FILE.N)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub keep: u32,
    /// The program and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<String>,
}

/// `wkjoin completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
