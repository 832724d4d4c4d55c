//! Reading a kubeconfig, choosing its context, and turning it into a self-contained one: every file it
//! refers to (CA, client certificate and key, token file) is read and inlined, so the copy on the node works
//! on its own and does not break when the files it came with are moved or deleted.
//!
//! `resolve` picks the context and builds the self-contained copy, `inline` reads the referenced files, and
//! `client_cert` builds the kubeconfig of an issued client certificate.

mod client_cert;
mod inline;
mod resolve;

pub use client_cert::client_cert_kubeconfig;
pub use resolve::resolve;

use kube::config::Kubeconfig;
use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// Why a kubeconfig cannot be used; each names the problem and the fix. Nothing is written when one occurs.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read kubeconfig {origin}: {source} (check the path given with --from or --kubeconfig)")]
    Read { origin: String, source: std::io::Error },
    #[error("kubeconfig {origin} is not valid YAML: {message} (fix the file, or export it again)")]
    Parse { origin: String, message: String },
    #[error(
        "kubeconfig {origin} has no context named `{context}` (it has: {}); pick one with --context",
        list(available)
    )]
    NoSuchContext { origin: String, context: String, available: Vec<String> },
    #[error(
        "kubeconfig {origin} sets no current-context and --context was not given (contexts: {}); pick one with --context",
        list(available)
    )]
    NoContext { origin: String, available: Vec<String> },
    #[error(
        "context `{context}` in {origin} names cluster `{cluster}`, which the file does not define: add it or pick another context"
    )]
    NoSuchCluster { origin: String, context: String, cluster: String },
    #[error(
        "context `{context}` in {origin} names user `{user}`, which the file does not define: add it or pick another context"
    )]
    NoSuchUser { origin: String, context: String, user: String },
    #[error("cluster `{cluster}` in {origin} has no server URL: add `server: https://<api-server>:6443`")]
    NoServer { origin: String, cluster: String },
    #[error(
        "cannot read {what} {} referenced by {origin}: {source} (copy it next to the kubeconfig or inline it as {what}-data)",
        path.display()
    )]
    ReadReferenced { origin: String, what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} in {origin} is not valid base64: {message} (it must be the base64 of the PEM file)")]
    Base64 { origin: String, what: &'static str, message: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

/// Where a kubeconfig comes from: a file, or standard input (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    pub fn parse(arg: &str) -> Input {
        if arg == "-" { Input::Stdin } else { Input::File(PathBuf::from(arg)) }
    }

    /// How errors and plans name it.
    pub fn describe(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "standard input".to_string(),
        }
    }

    /// The directory relative paths inside the kubeconfig are resolved against (as kubectl does).
    fn base_dir(&self) -> PathBuf {
        match self {
            Input::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Input::Stdin => PathBuf::new(),
        }
    }

    pub fn read(&self) -> Result<String, SourceError> {
        let origin = self.describe();
        match self {
            Input::File(p) => std::fs::read_to_string(p).map_err(|source| SourceError::Read { origin, source }),
            Input::Stdin => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|source| SourceError::Read { origin, source })?;
                Ok(text)
            }
        }
    }
}

/// How the kubeconfig's user authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    /// PEM client certificate (chain) and key.
    ClientCert {
        cert_pem: Vec<u8>,
        key_pem: SecretString,
    },
    Token(SecretString),
    Basic {
        username: String,
    },
    /// A plugin program run to get credentials (`exec`): it must exist on the node.
    Exec {
        command: String,
    },
    /// A legacy auth provider (gcp, azure, oidc).
    AuthProvider {
        name: String,
    },
    None,
}

impl Credential {
    pub fn describe(&self) -> String {
        match self {
            Credential::ClientCert { .. } => "client certificate".into(),
            Credential::Token(_) => "bearer token".into(),
            Credential::Basic { username } => format!("basic auth (user {username})"),
            Credential::Exec { command } => format!("exec plugin `{command}`"),
            Credential::AuthProvider { name } => format!("auth provider `{name}`"),
            Credential::None => "no credentials".into(),
        }
    }
}

/// A kubeconfig reduced to its chosen context, with every file it referred to read in.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub origin: String,
    pub context: String,
    pub cluster_name: String,
    pub user_name: String,
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub credential: Credential,
    /// The chosen context as a self-contained kubeconfig (data fields only).
    pub kubeconfig: Kubeconfig,
}

impl Resolved {
    /// The self-contained kubeconfig as written to the node.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.kubeconfig).expect("kubeconfig serializes")
    }
}

/// Reads and resolves `input`; `context` overrides the file's current-context.
pub fn load(input: &Input, context: Option<&str>) -> Result<Resolved, SourceError> {
    let text = input.read()?;
    resolve(&text, &input.describe(), &input.base_dir(), context)
}
