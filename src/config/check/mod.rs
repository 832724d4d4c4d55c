//! `wkjoin config check`: everything that must hold before a kubeconfig is a good node credential, each check
//! with pass/warn/fail and the fix. `wkjoin config` runs the same checks before writing anything. This module
//! runs them in order (offline, TLS, then the API); `report` holds the verdicts, `offline`, `certs`, `tls`, `api`
//! and `access` the checks, `client` the kube client they use.

mod access;
mod api;
mod certs;
mod client;
mod offline;
mod report;
mod tls;

pub use api::skew;
pub(crate) use certs::date;
pub use certs::{CertInfo, cert_info, identity, parse_certs, validity};
pub use client::client;
pub use offline::offline;
pub use report::{Check, Report, Status};
pub use tls::tls_check;

use super::source::{Credential, Resolved};
use crate::version::KubeVersion;
use std::time::Duration;

/// What the checks compare the kubeconfig against.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_name: String,
    /// The kubelet version to be installed, for the skew policy; `None` skips that check.
    pub kubelet_version: Option<KubeVersion>,
    /// `--insecure-skip-tls-verify`: accept a kubeconfig that disables TLS verification (warned about).
    pub allow_insecure: bool,
    pub timeout: Duration,
}

/// Runs every check: the offline ones, then TLS and the API.
pub async fn run(r: &Resolved, opts: &Options) -> Vec<Check> {
    let mut checks = offline(r, opts, now());
    let plugin = matches!(r.credential, Credential::Exec { .. } | Credential::AuthProvider { .. });

    let tls = if r.insecure_skip_tls_verify {
        Check::skip("tls", "not verified: the kubeconfig sets insecure-skip-tls-verify")
    } else {
        match &r.ca_pem {
            Some(ca) => {
                let (server, ca, sni, timeout) = (r.server.clone(), ca.clone(), tls_server_name(r), opts.timeout);
                tokio::task::spawn_blocking(move || tls_check(&server, &ca, sni.as_deref(), timeout))
                    .await
                    .unwrap_or_else(|e| Check::fail("tls", format!("TLS check panicked: {e}"), "report this bug"))
            }
            None => Check::skip("tls", "no certificate-authority to verify against (see the ca check)"),
        }
    };
    let tls_failed = tls.status == Status::Fail;
    checks.push(tls);
    if tls_failed {
        for name in ["api", "version-skew", "node-access", "least-privilege"] {
            checks.push(Check::skip(name, "skipped: the TLS check failed"));
        }
        return checks;
    }
    if plugin {
        for name in ["api", "version-skew", "node-access", "least-privilege"] {
            checks.push(Check::skip(name, "skipped: credential plugins are refused (see the credentials check)"));
        }
        return checks;
    }
    checks.extend(api::api_checks(r, opts).await);
    checks
}

fn tls_server_name(r: &Resolved) -> Option<String> {
    r.kubeconfig.clusters.first().and_then(|c| c.cluster.as_ref()).and_then(|c| c.tls_server_name.clone())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
