//! The kube client the checks (and `mint`, and the token's CSR) talk to the API server with.

use super::Options;
use crate::config::source::Resolved;
use kube::Client;
use std::time::Duration;

/// A kube client for the resolved kubeconfig (its own context, with TLS and timeouts set up).
pub async fn client(r: &Resolved, opts: &Options) -> Result<Client, kube::Error> {
    let kopts = kube::config::KubeConfigOptions { context: Some(r.context.clone()), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(r.kubeconfig.clone(), &kopts)
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    // The kubeconfig's insecure-skip-tls-verify only counts when the user accepted it.
    config.accept_invalid_certs = r.insecure_skip_tls_verify && opts.allow_insecure;
    config.connect_timeout = Some(opts.timeout);
    config.read_timeout = Some(Duration::from_secs(30));
    Client::try_from(config)
}
