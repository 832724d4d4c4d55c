//! The checks that need no network: the kubeconfig's server URL, TLS settings, CA and credential kind, and the
//! client certificate's dates and identity.

use super::Options;
use super::certs::{identity, parse_certs, validity};
use super::report::Check;
use crate::config::source::{Credential, Resolved};
use secrecy::ExposeSecret;

/// Checks that need no network: server URL, TLS settings, CA, credential kind, certificate dates and identity.
pub fn offline(r: &Resolved, opts: &Options, now: i64) -> Vec<Check> {
    let mut checks = vec![Check::pass(
        "kubeconfig",
        format!("context {}: cluster {}, user {}", r.context, r.cluster_name, r.user_name),
    )];
    checks.push(match reqwest::Url::parse(&r.server) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Check::pass("server", format!("{} (https)", r.server)),
        Ok(u) if u.scheme() == "http" => Check::fail(
            "server",
            format!("{} is plain http: credentials and cluster data would cross the network unencrypted", r.server),
            "use the API server's https:// URL (usually https://<master>:6443)",
        ),
        _ => Check::fail(
            "server",
            format!("`{}` is not an https URL", r.server),
            "set `server: https://<api-server>:6443` in the cluster entry",
        ),
    });
    checks.push(match (r.insecure_skip_tls_verify, opts.allow_insecure) {
        (false, _) => Check::pass("insecure-skip-tls-verify", "not set: the API server's certificate is verified"),
        (true, true) => Check::warn(
            "insecure-skip-tls-verify",
            "set and allowed by --insecure-skip-tls-verify: anyone between the node and the API server can read its credentials",
            "put the cluster's CA in certificate-authority-data and remove insecure-skip-tls-verify",
        ),
        (true, false) => Check::fail(
            "insecure-skip-tls-verify",
            "the kubeconfig disables TLS verification of the API server",
            "put the cluster's CA in certificate-authority-data and remove insecure-skip-tls-verify \
             (or accept the risk with --insecure-skip-tls-verify)",
        ),
    });
    checks.push(match &r.ca_pem {
        None if r.insecure_skip_tls_verify => Check::skip("ca", "no certificate-authority (TLS verification is off)"),
        None => Check::fail(
            "ca",
            "no certificate-authority: the node could not verify the API server",
            "add the cluster's CA (kubeadm: /etc/kubernetes/pki/ca.crt) as certificate-authority-data",
        ),
        Some(pem) => match parse_certs(pem) {
            Ok(certs) if !certs.is_empty() => {
                let subjects: Vec<String> = certs.iter().map(|c| c.subject.clone()).collect();
                Check::pass("ca", format!("{} CA certificate(s): {}", certs.len(), subjects.join("; ")))
            }
            Ok(_) => Check::fail(
                "ca",
                "certificate-authority holds no PEM certificate",
                "certificate-authority-data must be the base64 of the CA's PEM file",
            ),
            Err(e) => Check::fail(
                "ca",
                format!("certificate-authority is not a valid certificate: {e}"),
                "certificate-authority-data must be the base64 of the CA's PEM file",
            ),
        },
    });
    let credentials = match &r.credential {
        Credential::ClientCert { .. } => Check::pass("credentials", "client certificate and key (inlined)"),
        Credential::Token(_) => Check::pass("credentials", "bearer token (inlined)"),
        Credential::Basic { username } => Check::fail(
            "credentials",
            format!("basic auth (user {username}): the API server dropped basic auth in Kubernetes 1.19"),
            "use a node client certificate: `wkjoin config mint --node-name <node> --out <file>` with an admin kubeconfig",
        ),
        Credential::Exec { command } => Check::fail(
            "credentials",
            format!(
                "exec plugin `{command}`: the kubelet would have to run it on the node, where it is usually not installed \
                 (and, on Windows, often cannot run as a service)"
            ),
            "use a node client certificate: `wkjoin config mint --node-name <node> --out <file>` with an admin kubeconfig",
        ),
        Credential::AuthProvider { name } => Check::fail(
            "credentials",
            format!("auth provider `{name}`: legacy plugins are not available to the kubelet"),
            "use a node client certificate: `wkjoin config mint --node-name <node> --out <file>` with an admin kubeconfig",
        ),
        Credential::None => Check::fail(
            "credentials",
            format!("user `{}` has no credentials", r.user_name),
            "use a node client certificate: `wkjoin config mint --node-name <node> --out <file>` with an admin kubeconfig",
        ),
    };
    checks.push(credentials);
    match &r.credential {
        Credential::ClientCert { cert_pem, key_pem } => {
            match parse_certs(cert_pem).ok().and_then(|c| c.into_iter().next()) {
                Some(cert) => {
                    checks.push(validity(&cert, now));
                    checks.push(identity(&cert, &opts.node_name));
                }
                None => checks.push(Check::fail(
                    "client-certificate",
                    "client-certificate-data is not a PEM certificate",
                    "client-certificate-data must be the base64 of the certificate's PEM file",
                )),
            }
            if !key_pem.expose_secret().contains("PRIVATE KEY-----") {
                checks.push(Check::fail(
                    "client-key",
                    "client-key-data is not a PEM private key",
                    "client-key-data must be the base64 of the key's PEM file",
                ));
            }
        }
        Credential::Token(_) => {
            checks.push(Check::skip("identity", "a bearer token's identity is checked with the API below"))
        }
        _ => {}
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::Status;
    use std::time::Duration;

    const Y2020: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z

    fn resolved(yaml: &str) -> Resolved {
        crate::config::source::resolve(yaml, "k", std::path::Path::new("."), None).unwrap()
    }

    fn opts(allow_insecure: bool) -> Options {
        Options { node_name: "worker-2".into(), kubelet_version: None, allow_insecure, timeout: Duration::from_secs(1) }
    }

    #[test]
    fn insecure_http_and_plugins_fail_offline() {
        let yaml = "clusters: [{name: c, cluster: {server: 'http://10.0.0.1:8080', insecure-skip-tls-verify: true}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
";
        let r = resolved(yaml);
        let checks = offline(&r, &opts(false), Y2020);
        let status = |n: &str| checks.iter().find(|c| c.name == n).map(|c| c.status);
        assert_eq!(status("server"), Some(Status::Fail));
        assert_eq!(status("insecure-skip-tls-verify"), Some(Status::Fail));
        assert_eq!(status("credentials"), Some(Status::Fail));
        assert_eq!(status("ca"), Some(Status::Skip));
        let allowed = offline(&r, &opts(true), Y2020);
        assert_eq!(allowed.iter().find(|c| c.name == "insecure-skip-tls-verify").unwrap().status, Status::Warn);
    }
}
