//! `wkjoin join`'s flags: kubeadm's pasted join command (API server, token, CA), the pause image, routes and
//! the connectivity matrix at the end, besides the node settings.

use super::{DryRunArgs, NodeArgs, OutputArgs};
use crate::plan::NextHop;
use clap::Args;
use std::path::PathBuf;

/// `wkjoin join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The API server (HOST:PORT) as `kubeadm token create --print-join-command` prints it: with --token and
    /// --discovery-token-ca-cert-hash, `wkjoin join` takes that command as it is (TLS bootstrap)
    #[arg(value_name = "API_SERVER", requires = "token")]
    pub api_server: Option<String>,
    /// Bootstrap token ID.SECRET (`kubeadm token create`): the node's credentials come from a CSR made with it
    #[arg(long, env = "WKJOIN_TOKEN", hide_env_values = true, value_name = "ID.SECRET", requires = "api_server")]
    pub token: Option<String>,
    /// kubeadm's token discovery: trust the cluster CA in kube-public/cluster-info when its public key has this
    /// hash (sha256:HEX)
    #[arg(long, value_name = "sha256:HEX", requires = "token")]
    pub discovery_token_ca_cert_hash: Vec<String>,
    /// Instead of --discovery-token-ca-cert-hash: the cluster CA certificate (PEM) to verify the API server with
    #[arg(long, value_name = "FILE", requires = "token", conflicts_with = "discovery_token_ca_cert_hash")]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for the node's CSR to be approved and signed, with --token
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub csr_timeout: std::time::Duration,
    /// Import this OCI pause image archive (file or URL) instead of pulling or building
    #[arg(long, value_name = "FILE|URL")]
    pub image_archive: Option<String>,
    /// The image archive's SHA-256 [default: the `.sha256` published beside it]
    #[arg(long, value_name = "HEX", requires = "image_archive", value_parser = super::sha256_hex)]
    pub image_archive_sha256: Option<String>,
    /// The Windows build to match the pause image to (17763, 20348, 26100) [default: this host's build]
    #[arg(long, value_name = "BUILD")]
    pub windows_build: Option<u32>,
    /// Next hop for other nodes' pod CIDRs
    #[arg(long, value_enum, default_value_t = NextHop::NodeIp)]
    pub next_hop: NextHop,
    /// Accept node credentials whose kubeconfig sets insecure-skip-tls-verify (the API server is then not
    /// authenticated: anyone on the path can read the node's credentials); refused otherwise, before any change
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Stop after the node is Ready, without the connectivity matrix
    #[arg(long)]
    pub no_validate: bool,
    /// Credentials for the connectivity matrix, which creates a namespace, pods and a Service (the node's
    /// own credentials may not); without them the matrix is skipped with a note
    #[arg(long, value_name = "FILE")]
    pub validate_kubeconfig: Option<PathBuf>,
    /// The matrix's sample web server image (answers HTTP on :80)
    #[arg(long, value_name = "IMAGE")]
    pub sample_image: Option<String>,
    /// The matrix's probe image (ping, wget, nslookup)
    #[arg(long, value_name = "IMAGE")]
    pub probe_image: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}
