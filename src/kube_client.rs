//! The one kube client builder: every connection to the API server (commands, start, config checks, token
//! discovery) gets its kubeconfig, context, TLS choice and timeouts here.

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a watch may stay silent before the client gives up on the connection (waits re-watch).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A kubeconfig file.
    File(&'a Path),
    /// `KUBECONFIG`, then `~/.kube/config`, then the in-cluster config.
    Default,
    /// A kubeconfig already read (and checked) by the caller.
    Loaded(&'a Kubeconfig),
}

/// What the caller decides about the connection.
#[derive(Debug, Clone)]
pub struct Options {
    pub context: Option<String>,
    pub connect_timeout: Duration,
    pub insecure: Insecure,
}

/// What a kubeconfig's `insecure-skip-tls-verify: true` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insecure {
    /// Honoured, with a warning that the API server is not authenticated.
    Warn,
    /// Overridden: TLS is verified anyway.
    Refuse,
    /// Honoured silently: the caller verifies what it reads by other means (token discovery's CA pin).
    Expected,
}

impl Default for Options {
    fn default() -> Self {
        Options { context: None, connect_timeout: Duration::from_secs(5), insecure: Insecure::Warn }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot load kubeconfig{}: {message} (give --kubeconfig FILE or set KUBECONFIG)", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
pub struct ClientError {
    pub path: Option<PathBuf>,
    pub message: String,
}

/// A client and the API server URL it talks to.
pub async fn build(source: Source<'_>, opts: &Options) -> Result<(kube::Client, String), ClientError> {
    let path = match source {
        Source::File(p) => Some(p.to_path_buf()),
        _ => None,
    };
    let err = |message: String| ClientError { path: path.clone(), message };
    let kopts = KubeConfigOptions { context: opts.context.clone(), ..Default::default() };
    let mut config = match source {
        Source::File(p) => {
            let kc = Kubeconfig::read_from(p).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kopts).await.map_err(|e| err(e.to_string()))?
        }
        Source::Default => kube::Config::from_kubeconfig(&kopts).await.map_err(|e| err(e.to_string()))?,
        Source::Loaded(kc) => {
            kube::Config::from_custom_kubeconfig(kc.clone(), &kopts).await.map_err(|e| err(e.to_string()))?
        }
    };
    if config.accept_invalid_certs {
        match opts.insecure {
            Insecure::Warn => tracing::warn!(
                "the kubeconfig sets insecure-skip-tls-verify: the API server at {} is not authenticated",
                config.cluster_url
            ),
            Insecure::Refuse => config.accept_invalid_certs = false,
            Insecure::Expected => {}
        }
    }
    config.connect_timeout = Some(opts.connect_timeout);
    config.read_timeout = Some(READ_TIMEOUT);
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| err(e.to_string()))?;
    Ok((client, url))
}

/// The cluster CA of the kubeconfig's current context, as PEM: its `certificate-authority-data`, or the file
/// its `certificate-authority` names (relative to the kubeconfig).
pub fn cluster_ca_pem(path: &std::path::Path) -> Result<Vec<u8>, std::io::Error> {
    use std::io::{Error, ErrorKind};
    let bad = |m: String| Error::new(ErrorKind::InvalidData, m);
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let context = kc.current_context.as_deref();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| Some(c.name.as_str()) == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .or_else(|| (kc.clusters.len() == 1).then(|| kc.clusters[0].name.clone()))
        .ok_or_else(|| bad("it has no current context naming a cluster".into()))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| bad(format!("its cluster {cluster_name} is missing")))?;
    if let Some(data) = &cluster.certificate_authority_data {
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("certificate-authority-data of cluster {cluster_name} is not base64: {e}")));
    }
    if let Some(file) = &cluster.certificate_authority {
        let file = path.parent().unwrap_or(std::path::Path::new(".")).join(file);
        return std::fs::read(file);
    }
    Err(bad(format!(
        "cluster {cluster_name} has no certificate-authority(-data): the kubelet needs the cluster CA to check API server clients"
    )))
}
