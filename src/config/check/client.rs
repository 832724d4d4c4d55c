//! The kube client the checks (and `mint`, and the token's CSR) talk to the API server with, made by the one
//! builder, `crate::kube_client`.

use super::Options;
use crate::config::source::Resolved;
use crate::kube_client::{self, ClientError, Insecure, Source};
use kube::Client;

/// A kube client for the resolved kubeconfig (its own context, with TLS and timeouts set up).
pub async fn client(r: &Resolved, opts: &Options) -> Result<Client, ClientError> {
    let options = kube_client::Options {
        context: Some(r.context.clone()),
        connect_timeout: opts.timeout,
        // The kubeconfig's insecure-skip-tls-verify only counts when the user accepted it.
        insecure: if opts.allow_insecure { Insecure::Warn } else { Insecure::Refuse },
    };
    kube_client::build(Source::Loaded(&r.kubeconfig), &options).await.map(|(client, _url)| client)
}
