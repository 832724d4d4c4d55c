//! The cluster CA inside a kubeconfig, for the kubelet to check its API clients against.

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
