//! `wkjoin config`'s flags: install from a kubeconfig or by TLS bootstrap (token), and its `check` and `mint`
//! subcommands.

use super::{DryRunArgs, NodeArgs, OutputArgs};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `wkjoin config` (install): where the credentials come from and how they are checked.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Option<Box<ConfigAction>>,
    /// The kubeconfig to install ('-' for standard input) [default: --kubeconfig]
    #[arg(long, value_name = "FILE")]
    pub from: Option<String>,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub check: ConfigCheckArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
    #[command(flatten)]
    pub out: OutputArgs,
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
