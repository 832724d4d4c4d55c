//! From a kubeconfig's text to a [`Resolved`]: the context chosen, its cluster and user found, the credential
//! recognised, and the chosen context rewritten as a self-contained kubeconfig (data fields only).

use super::inline::Inliner;
use super::{Credential, Resolved, SourceError};
use base64::Engine;
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;

/// Parses a kubeconfig's text, picks the context, inlines referenced files (relative to `base_dir`).
pub fn resolve(text: &str, origin: &str, base_dir: &Path, context: Option<&str>) -> Result<Resolved, SourceError> {
    let origin = origin.to_string();
    let kc = Kubeconfig::from_yaml(text).map_err(|e| SourceError::Parse {
        origin: origin.clone(),
        message: match e {
            kube::config::KubeconfigError::Parse(inner) => inner.to_string(),
            other => other.to_string(),
        },
    })?;
    let available: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
    let context_name = match context.map(str::to_string).or_else(|| kc.current_context.clone()) {
        Some(c) if !c.is_empty() => c,
        _ => return Err(SourceError::NoContext { origin, available }),
    };
    let ctx: Context =
        kc.contexts.iter().find(|c| c.name == context_name).and_then(|c| c.context.clone()).ok_or_else(|| {
            SourceError::NoSuchContext {
                origin: origin.clone(),
                context: context_name.clone(),
                available: available.clone(),
            }
        })?;
    let cluster: Cluster =
        kc.clusters.iter().find(|c| c.name == ctx.cluster).and_then(|c| c.cluster.clone()).ok_or_else(|| {
            SourceError::NoSuchCluster {
                origin: origin.clone(),
                context: context_name.clone(),
                cluster: ctx.cluster.clone(),
            }
        })?;
    let user_name = ctx.user.clone().unwrap_or_default();
    let auth: AuthInfo = if user_name.is_empty() {
        AuthInfo::default()
    } else {
        kc.auth_infos.iter().find(|u| u.name == user_name).and_then(|u| u.auth_info.clone()).ok_or_else(|| {
            SourceError::NoSuchUser { origin: origin.clone(), context: context_name.clone(), user: user_name.clone() }
        })?
    };
    let server = match cluster.server.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err(SourceError::NoServer { origin, cluster: ctx.cluster.clone() }),
    };

    let inliner = Inliner { origin: &origin, base: base_dir };
    let ca_pem = inliner.data_or_file(
        "certificate-authority",
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
    )?;
    let cert_pem = inliner.data_or_file(
        "client-certificate",
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
    )?;
    let key_pem = inliner.data_or_file(
        "client-key",
        auth.client_key_data.as_ref().map(|k| k.expose_secret()),
        auth.client_key.as_deref(),
    )?;
    let token = match (&auth.token, &auth.token_file) {
        (Some(t), _) => Some(t.expose_secret().to_string()),
        (None, Some(file)) => Some(inliner.read("token-file", file)?.trim().to_string()),
        (None, None) => None,
    };

    let credential = if let Some(exec) = &auth.exec {
        Credential::Exec { command: exec.command.clone().unwrap_or_default() }
    } else if let Some(p) = &auth.auth_provider {
        Credential::AuthProvider { name: p.name.clone() }
    } else if let (Some(cert), Some(key)) = (&cert_pem, &key_pem) {
        Credential::ClientCert {
            cert_pem: cert.clone(),
            key_pem: SecretString::from(String::from_utf8_lossy(key).into_owned()),
        }
    } else if let Some(t) = &token {
        Credential::Token(SecretString::from(t.clone()))
    } else if let Some(u) = &auth.username {
        Credential::Basic { username: u.clone() }
    } else {
        Credential::None
    };

    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let out_cluster = Cluster {
        server: Some(server.clone()),
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.filter(|v| *v),
        certificate_authority_data: ca_pem.as_deref().map(b64),
        proxy_url: cluster.proxy_url.clone(),
        tls_server_name: cluster.tls_server_name.clone(),
        ..Default::default()
    };
    let out_user = AuthInfo {
        username: auth.username.clone(),
        password: auth.password.clone(),
        token: token.map(SecretString::from),
        client_certificate_data: cert_pem.as_deref().map(b64),
        client_key_data: key_pem.as_deref().map(|k| SecretString::from(b64(k))),
        impersonate: auth.impersonate.clone(),
        impersonate_groups: auth.impersonate_groups.clone(),
        auth_provider: auth.auth_provider.clone(),
        exec: auth.exec.clone(),
        ..Default::default()
    };
    let kubeconfig = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster { name: ctx.cluster.clone(), cluster: Some(out_cluster), ..Default::default() }],
        auth_infos: vec![NamedAuthInfo { name: user_name.clone(), auth_info: Some(out_user), ..Default::default() }],
        contexts: vec![NamedContext {
            name: context_name.clone(),
            context: Some(Context {
                cluster: ctx.cluster.clone(),
                user: Some(user_name.clone()),
                namespace: ctx.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(context_name.clone()),
        ..Default::default()
    };

    Ok(Resolved {
        origin,
        context: context_name,
        cluster_name: ctx.cluster,
        user_name,
        server,
        ca_pem,
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
        credential,
        kubeconfig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::{Input, load};
    use std::path::PathBuf;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";

    fn with_files(yaml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), CA).unwrap();
        std::fs::write(dir.path().join("node.crt"), "CERT").unwrap();
        std::fs::write(dir.path().join("node.key"), "KEY").unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, yaml).unwrap();
        (dir, path)
    }

    const FILES: &str = "apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://172.30.0.10:6443
    certificate-authority: ca.crt
users:
- name: node
  user:
    client-certificate: node.crt
    client-key: node.key
- name: other
  user:
    token: abc
contexts:
- name: node@lab
  context: {cluster: lab, user: node}
- name: other@lab
  context: {cluster: lab, user: other, namespace: kube-system}
current-context: node@lab
";

    #[test]
    fn inlines_relative_files_and_keeps_only_the_chosen_context() {
        let (_dir, path) = with_files(FILES);
        let r = load(&Input::File(path), None).unwrap();
        assert_eq!(r.context, "node@lab");
        assert_eq!(r.server, "https://172.30.0.10:6443");
        assert_eq!(r.ca_pem.as_deref(), Some(CA.as_bytes()));
        match &r.credential {
            Credential::ClientCert { cert_pem, key_pem } => {
                assert_eq!(cert_pem, b"CERT");
                assert_eq!(key_pem.expose_secret(), "KEY");
            }
            other => panic!("{other:?}"),
        }
        let yaml = r.to_yaml();
        assert!(!yaml.contains("ca.crt") && !yaml.contains("node.key"), "{yaml}");
        assert!(yaml.contains("client-key-data: S0VZ"), "{yaml}");
        assert!(yaml.contains("client-certificate-data: Q0VSVA=="), "{yaml}");
        assert!(!yaml.contains("other"), "{yaml}");
        // The result is a kubeconfig that resolves to the same thing without the files.
        let again = resolve(&yaml, "copy", Path::new("/nonexistent"), None).unwrap();
        assert_eq!(again.ca_pem, r.ca_pem);
        assert_eq!(again.to_yaml(), yaml);
    }

    #[test]
    fn context_flag_overrides_current_context() {
        let (_dir, path) = with_files(FILES);
        let r = load(&Input::File(path), Some("other@lab")).unwrap();
        assert_eq!(r.user_name, "other");
        assert!(matches!(r.credential, Credential::Token(_)));
        assert!(r.to_yaml().contains("namespace: kube-system"));
    }

    #[test]
    fn missing_context_names_the_ones_there_are() {
        let (_dir, path) = with_files(FILES);
        let e = load(&Input::File(path.clone()), Some("admin@lab")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "kubeconfig {} has no context named `admin@lab` (it has: node@lab, other@lab); pick one with --context",
                path.display()
            )
        );
        let no_current = FILES.replace("current-context: node@lab\n", "");
        let e = resolve(&no_current, "k", Path::new("."), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeconfig k sets no current-context and --context was not given (contexts: node@lab, other@lab); pick one with --context"
        );
    }

    #[test]
    fn missing_referenced_file_says_which() {
        let (dir, path) = with_files(FILES);
        std::fs::remove_file(dir.path().join("node.key")).unwrap();
        let e = load(&Input::File(path.clone()), None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("cannot read client-key {}", dir.path().join("node.key").display())),
            "{text}"
        );
        assert!(text.ends_with("(copy it next to the kubeconfig or inline it as client-key-data)"), "{text}");
    }

    #[test]
    fn malformed_yaml_and_dangling_names_are_errors() {
        let e = resolve("clusters: [\n", "bad.yaml", Path::new("."), None).unwrap_err();
        assert!(matches!(e, SourceError::Parse { .. }), "{e:?}");
        assert!(e.to_string().starts_with("kubeconfig bad.yaml is not valid YAML: "), "{e}");

        let dangling = FILES.replace("context: {cluster: lab, user: node}", "context: {cluster: gone, user: node}");
        let e = resolve(&dangling, "k", Path::new("."), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "context `node@lab` in k names cluster `gone`, which the file does not define: add it or pick another context"
        );
        let e = resolve("", "empty", Path::new("."), None).unwrap_err();
        assert!(matches!(e, SourceError::NoContext { .. }), "{e:?}");
    }

    #[test]
    fn exec_plugins_are_recognised() {
        let yaml = "clusters: [{name: c, cluster: {server: 'https://x:6443'}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [eks, get-token]}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
";
        let r = resolve(yaml, "k", Path::new("."), None).unwrap();
        assert!(matches!(&r.credential, Credential::Exec { command } if command == "aws"));
    }
}
