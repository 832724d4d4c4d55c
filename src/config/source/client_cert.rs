//! The self-contained kubeconfig of a client certificate the cluster issued (what `config mint` and the
//! bootstrap token's CSR write).

use base64::Engine;
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::SecretString;

/// Builds a self-contained client-certificate kubeconfig (what `config mint` writes).
pub fn client_cert_kubeconfig(
    cluster_name: &str,
    server: &str,
    ca_pem: Option<&[u8]>,
    user: &str,
    cert_pem: &[u8],
    key_pem: &str,
) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let context = format!("{user}@{cluster_name}");
    let kc = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: cluster_name.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority_data: ca_pem.map(b64),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.into(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(b64(cert_pem)),
                client_key_data: Some(SecretString::from(b64(key_pem.as_bytes()))),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Some(Context { cluster: cluster_name.into(), user: Some(user.into()), ..Default::default() }),
            ..Default::default()
        }],
        current_context: Some(context),
        ..Default::default()
    };
    serde_yaml::to_string(&kc).expect("kubeconfig serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::{Credential, resolve};
    use std::path::Path;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";

    #[test]
    fn minted_kubeconfig_round_trips() {
        let yaml = client_cert_kubeconfig("lab", "https://h:6443", Some(CA.as_bytes()), "system:node:w", b"C", "K");
        let r = resolve(&yaml, "minted", Path::new("."), None).unwrap();
        assert_eq!(r.context, "system:node:w@lab");
        assert!(matches!(r.credential, Credential::ClientCert { .. }));
    }
}
