//! Settings from every source a command has: its flags (and `WKJOIN_*`), the --config file, what the cluster
//! says (kubeadm-config, kube-dns), what the container runtime says of itself, this host's facts and the
//! defaults, layered in that order. Commands describe their sources as a [`Sources`]; nothing here knows the
//! command line.

use super::{DiscoverError, HostFacts, Origin, PartialSettings, Runtime, RuntimeFacts, Settings, SettingsError};
use crate::host;
use crate::kube_client::ClientError;
use crate::layout::Os;
use std::path::PathBuf;

/// What a command read from its command line, for the layers below the cluster's.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The flags and `WKJOIN_*` variables: the top layer.
    pub flags: PartialSettings,
    /// The OS to plan for; `None` plans for this host's.
    pub os: Option<Os>,
    pub root_dir: Option<String>,
    /// The settings file (--config).
    pub config_file: Option<PathBuf>,
    /// Default the node name to this host's even when planning for another OS (fetching Windows binaries on
    /// Linux names them after this host).
    pub host_name_for_any_os: bool,
}

/// The cluster to read settings from: `None` when no kubeconfig was named (neither --kubeconfig nor
/// $KUBECONFIG), else the client the command built for it, or why it could not.
pub type Cluster = Option<Result<kube::Client, ClientError>>;

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// This host's Windows build, when the plan is for this host.
pub fn windows_build_of(s: &Settings) -> Option<u32> {
    (s.os == Os::host()).then(host::windows_build).flatten()
}

/// Settings from the sources and the cluster. `lenient`: a cluster that cannot be reached or read only warns
/// (a dry run plans without it); else it is an error.
pub async fn resolve_settings(src: &Sources, cluster: Cluster, lenient: bool) -> Result<Settings, ResolveError> {
    let cluster = discover_cluster(cluster, lenient).await?;
    layered_settings(src, cluster, None)
}

/// Settings for a step that touches the container runtime: planning for this host with containerd, the runtime
/// is asked (CRI Status, then its config file) where it reads CNI configs and which sandbox image it runs.
pub async fn resolve_node_settings(src: &Sources, cluster: Cluster, lenient: bool) -> Result<Settings, ResolveError> {
    let cluster = discover_cluster(cluster, lenient).await?;
    let s = layered_settings(src, cluster.clone(), None)?;
    if s.os != Os::host() || s.runtime != Runtime::Containerd {
        return Ok(s);
    }
    let endpoint = s.runtime_endpoint.clone().unwrap_or_default();
    let facts = super::discover_runtime(s.os, &endpoint, s.runtime_config.as_deref()).await;
    if facts.answered {
        tracing::debug!("container runtime: {}", facts.describe());
    } else {
        // Nothing to plan from but guesses: preflight reports the silent runtime, and join stops there.
        tracing::warn!("{}; planning from containerd's defaults", facts.describe());
    }
    layered_settings(src, cluster, Some(facts))
}

/// Settings from flags/env, the settings file, what the cluster told (if anything) and defaults.
pub fn layered_settings(
    src: &Sources,
    cluster: Option<PartialSettings>,
    runtime: Option<RuntimeFacts>,
) -> Result<Settings, ResolveError> {
    let file = match &src.config_file {
        Some(path) => Some((path.clone(), super::load_file(path)?)),
        None => None,
    };
    let mut layers: Vec<(Origin, &PartialSettings)> = vec![(Origin::CommandLine, &src.flags)];
    if let Some((path, f)) = &file {
        layers.push((Origin::File(path.clone()), f));
    }
    if let Some(c) = &cluster {
        layers.push((Origin::Cluster("kubeadm-config, kube-dns"), c));
    }
    let os = src.os.unwrap_or(Os::host());
    // Host facts describe this machine; they only apply when planning for its own OS.
    let facts = match (os == Os::host(), src.host_name_for_any_os) {
        (true, _) => HostFacts { runtime, ..host::facts().into() },
        (false, true) => HostFacts { hostname: host::facts().hostname, ..Default::default() },
        (false, false) => Default::default(),
    };
    Ok(super::resolve(os, src.root_dir.as_deref(), &layers, &facts)?)
}

/// Reads settings from the cluster, when there is one to read them from.
pub async fn discover_cluster(cluster: Cluster, lenient: bool) -> Result<Option<PartialSettings>, ResolveError> {
    let client = match cluster {
        None => return Ok(None),
        Some(Ok(c)) => c,
        Some(Err(e)) if lenient => {
            tracing::warn!("{e}; planning without the cluster's settings");
            return Ok(None);
        }
        Some(Err(e)) => return Err(e.into()),
    };
    match super::discover(&client).await {
        Ok(found) => Ok(Some(found)),
        Err(DiscoverError::Api { source: kube::Error::Api(status), what }) if status.code == 403 => {
            tracing::debug!("not allowed to read {what} ({}); not discovering it", status.message);
            Ok(None)
        }
        Err(e) if lenient => {
            tracing::warn!("{e}; planning with flags, config file and defaults only");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_error() -> ClientError {
        ClientError { path: None, message: "no kubeconfig".into() }
    }

    fn for_windows(flags: PartialSettings) -> Sources {
        Sources { flags, os: Some(Os::Windows), ..Default::default() }
    }

    #[tokio::test]
    async fn no_cluster_means_no_cluster_layer() {
        assert_eq!(discover_cluster(None, false).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_unusable_kubeconfig_only_warns_when_lenient() {
        assert_eq!(discover_cluster(Some(Err(client_error())), true).await.unwrap(), None);
        let strict = discover_cluster(Some(Err(client_error())), false).await;
        assert!(matches!(strict, Err(ResolveError::Client(_))), "{strict:?}");
    }

    #[test]
    fn flags_outrank_the_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wkjoin.yaml");
        std::fs::write(&file, "node-name: from-file\ncluster-domain: file.local\n").unwrap();
        let flags = PartialSettings { node_name: Some("from-flag".into()), ..Default::default() };
        let s = layered_settings(&Sources { config_file: Some(file), ..for_windows(flags) }, None, None).unwrap();
        assert_eq!((s.node_name.as_str(), s.cluster_domain.as_str()), ("from-flag", "file.local"));
    }

    #[test]
    fn a_plan_for_another_os_needs_a_node_name() {
        // Host facts describe this machine: a plan for another OS names its node explicitly.
        let foreign = if Os::host() == Os::Windows { Os::Linux } else { Os::Windows };
        let src = Sources { os: Some(foreign), ..Default::default() };
        let err = layered_settings(&src, None, None).unwrap_err();
        assert!(matches!(err, ResolveError::Settings(SettingsError::NoNodeName)), "{err:?}");
    }

    #[test]
    fn an_unreadable_settings_file_is_a_settings_error() {
        let src = Sources { config_file: Some("/nonexistent/wkjoin.yaml".into()), ..for_windows(Default::default()) };
        let err = layered_settings(&src, None, None).unwrap_err();
        assert!(matches!(err, ResolveError::Settings(SettingsError::ConfigRead { .. })), "{err:?}");
    }
}
