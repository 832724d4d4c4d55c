//! `wkjoin config --token`: kubeadm's TLS bootstrap. The node authenticates with a bootstrap token (group
//! system:bootstrappers), generates its own key, creates a CSR for `system:node:<name>` (O=system:nodes) and waits
//! for the cluster to approve and sign it (kubeadm clusters approve node CSRs from bootstrap tokens on their own);
//! the certificate then becomes the node's kubeconfig, checked and installed like `config --from`. The token
//! itself is never written nor printed: only its public id is named.

use super::ConfigError;
use super::check::{self, Options};
use super::install::{self, Installed};
use super::mint::{self, Requester};
use super::source::{self, Resolved};
use crate::host::Host;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cluster name in the kubeconfigs made from a bootstrap token (kubeadm's).
pub const CLUSTER: &str = "kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the bootstrap token given with --token is malformed: {reason} (it must look like `abcdef.0123456789abcdef`: \
         6 and 16 lower-case letters or digits joined by a dot, as `kubeadm token create` prints it)"
    )]
    Format { reason: String },
    #[error("--server `{server}` is not an https:// URL: give the API server as https://HOST:PORT")]
    Server { server: String },
    #[error(
        "cannot read the cluster CA {}: {source} (give the cluster's CA certificate with --ca-file, e.g. a copy of \
         /etc/kubernetes/pki/ca.crt from a control-plane node)",
        path.display()
    )]
    ReadCa { path: PathBuf, source: std::io::Error },
    #[error(
        "the cluster CA {} is not a PEM certificate: {message} (give the cluster's CA certificate with --ca-file, \
         e.g. a copy of /etc/kubernetes/pki/ca.crt)",
        path.display()
    )]
    BadCa { path: PathBuf, message: String },
    #[error("`{0}` is not a valid node name: use lower-case letters, digits, '-' and '.' (--node-name)")]
    NodeName(String),
}

/// A kubeadm bootstrap token `<id>.<secret>`. Its Debug form shows only the id.
#[derive(Clone)]
pub struct BootstrapToken {
    id: String,
    secret: SecretString,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl BootstrapToken {
    /// Checks the format `[a-z0-9]{6}.[a-z0-9]{16}`; the error never repeats the value.
    pub fn parse(text: &str) -> Result<BootstrapToken, TokenError> {
        let bad = |reason: &str| TokenError::Format { reason: reason.to_string() };
        let text = text.trim();
        let (id, secret) = text.split_once('.').ok_or_else(|| bad("it has no '.' between the id and the secret"))?;
        let ok = |s: &str| s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let check = |part: &str, what: &str, len: usize| {
            if part.len() != len {
                Err(bad(&format!("its {what} has {} characters, not {len}", part.len())))
            } else if !ok(part) {
                Err(bad(&format!("its {what} has characters outside [a-z0-9]")))
            } else {
                Ok(())
            }
        };
        check(id, "id (before the '.')", 6)?;
        check(secret, "secret (after the '.')", 16)?;
        Ok(BootstrapToken { id: id.to_string(), secret: SecretString::from(secret.to_string()) })
    }

    /// The public part, the name of its Secret `bootstrap-token-<id>` in kube-system.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret.expose_secret())
    }
}

/// Where the node gets its certificate from with a bootstrap token.
#[derive(Debug, Clone)]
pub struct Request {
    pub token: BootstrapToken,
    pub server: String,
    pub ca_file: PathBuf,
    pub timeout: Duration,
}

impl Request {
    /// How plans and reports name these credentials (never the token's secret).
    pub fn describe(&self) -> String {
        format!("a CSR at {} with bootstrap token {}", self.server, self.token.id())
    }
}

/// The cluster CA in `path`, checked to hold a PEM certificate.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, TokenError> {
    let pem = std::fs::read(path).map_err(|source| TokenError::ReadCa { path: path.to_path_buf(), source })?;
    match check::parse_certs(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        Ok(_) => Err(TokenError::BadCa { path: path.to_path_buf(), message: "it holds no certificate".into() }),
        Err(message) => Err(TokenError::BadCa { path: path.to_path_buf(), message }),
    }
}

/// The bootstrap kubeconfig (kept in memory only): `server` verified with `ca_pem`, authenticated by `token`.
pub fn bootstrap_kubeconfig(server: &str, ca_pem: &[u8], token: &BootstrapToken) -> Resolved {
    use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
    let user = format!("bootstrap-token-{}", token.id());
    let context = format!("{user}@{CLUSTER}");
    let kc = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: CLUSTER.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority_data: Some(base64::engine::general_purpose::STANDARD.encode(ca_pem)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo { token: Some(SecretString::from(token.bearer())), ..Default::default() }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Some(Context { cluster: CLUSTER.into(), user: Some(user), ..Default::default() }),
            ..Default::default()
        }],
        current_context: Some(context),
        ..Default::default()
    };
    let yaml = serde_yaml::to_string(&kc).expect("kubeconfig serializes");
    source::resolve(&yaml, "the bootstrap token", Path::new("."), None).expect("a kubeconfig wkjoin built resolves")
}

/// TLS bootstrap for node `opts.node_name`: requests its certificate with the token, then checks and installs the
/// node kubeconfig at `target` (owner-only). Nothing is written on any failure.
pub async fn run(req: &Request, opts: &Options, target: &str, host: &mut impl Host) -> Result<Installed, ConfigError> {
    let node = opts.node_name.as_str();
    if !mint::valid_node_name(node) {
        return Err(TokenError::NodeName(node.to_string()).into());
    }
    if !req.server.starts_with("https://") {
        return Err(TokenError::Server { server: req.server.clone() }.into());
    }
    let ca_pem = read_ca(&req.ca_file)?;
    let bootstrap = bootstrap_kubeconfig(&req.server, &ca_pem, &req.token);
    let client = check::client(&bootstrap, opts)
        .await
        .map_err(|source| mint::MintError::Client { server: req.server.clone(), source })?;
    let requester = Requester::BootstrapToken { id: req.token.id().to_string() };
    let issued = mint::request(client, &req.server, node, &requester, req.timeout).await?;
    let yaml = issued.kubeconfig(CLUSTER, &req.server, Some(&ca_pem));
    let resolved = source::resolve(&yaml, "the issued certificate", Path::new("."), None)?;
    let origin = format!("the certificate of CSR {} ({})", issued.csr, req.describe());
    install::install(&resolved, &origin, opts, target, host).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn token_format() {
        let t = BootstrapToken::parse(TOKEN).unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.bearer(), TOKEN);
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
        for (bad, reason) in [
            ("qwerty9876543210zyxwvu", "it has no '.' between the id and the secret"),
            ("qwert.9876543210zyxwvu", "its id (before the '.') has 5 characters, not 6"),
            ("QWERTY.9876543210zyxwvu", "its id (before the '.') has characters outside [a-z0-9]"),
            ("qwerty.9876543210zyxwv", "its secret (after the '.') has 15 characters, not 16"),
            ("qwerty.9876543210zyxwvU", "its secret (after the '.') has characters outside [a-z0-9]"),
        ] {
            let e = BootstrapToken::parse(bad).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("the bootstrap token given with --token is malformed: {reason} (")),
                "{text}"
            );
            assert!(!text.contains(bad), "the error repeats the token: {text}");
        }
    }

    #[test]
    fn bootstrap_kubeconfig_authenticates_with_the_token_and_trusts_the_ca() {
        let ca = rcgen::CertificateParams::new(vec!["kubernetes".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let token = BootstrapToken::parse(TOKEN).unwrap();
        let r = bootstrap_kubeconfig("https://10.0.0.1:6443", ca.as_bytes(), &token);
        assert_eq!(r.server, "https://10.0.0.1:6443");
        assert_eq!(r.ca_pem.as_deref(), Some(ca.as_bytes()));
        assert_eq!(r.cluster_name, CLUSTER);
        assert_eq!(r.user_name, "bootstrap-token-abcdef");
        match &r.credential {
            source::Credential::Token(t) => assert_eq!(t.expose_secret(), TOKEN),
            other => panic!("{other:?}"),
        }
        assert!(!r.insecure_skip_tls_verify);
    }

    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let e = read_ca(&missing).unwrap_err();
        assert!(e.to_string().starts_with(&format!("cannot read the cluster CA {}: ", missing.display())), "{e}");
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = read_ca(&junk).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("the cluster CA {} is not a PEM certificate: ", junk.display())),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_the_network_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config").display().to_string();
        let opts = Options {
            node_name: "worker-2".into(),
            kubelet_version: None,
            allow_insecure: false,
            timeout: Duration::from_secs(1),
        };
        let req = Request {
            token: BootstrapToken::parse(TOKEN).unwrap(),
            server: "http://10.0.0.1:6443".into(),
            ca_file: dir.path().join("ca.crt"),
            timeout: Duration::from_secs(1),
        };
        let mut host = crate::host::Native;
        let e = run(&req, &opts, &target, &mut host).await.unwrap_err();
        assert!(matches!(e, ConfigError::Token(TokenError::Server { .. })), "{e:?}");
        let req = Request { server: "https://10.0.0.1:6443".into(), ..req };
        let e = run(&req, &opts, &target, &mut host).await.unwrap_err();
        assert!(matches!(e, ConfigError::Token(TokenError::ReadCa { .. })), "{e:?}");
        assert!(!Path::new(&target).exists());
    }
}
