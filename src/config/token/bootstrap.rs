//! The CSR flow of a bootstrap token: the in-memory bootstrap kubeconfig (token + cluster CA), the node's CSR,
//! and the issued certificate checked and installed as the node's kubeconfig.

use super::discovery::discover_ca;
use super::{BootstrapToken, CLUSTER, TokenError};
use crate::config::ConfigError;
use crate::config::check::{self, Options};
use crate::config::install::{self, Installed};
use crate::config::mint::{self, Requester};
use crate::config::source::{self, Resolved};
use crate::host::Host;
use base64::Engine;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the node gets its certificate from with a bootstrap token.
#[derive(Debug, Clone)]
pub struct Request {
    pub token: BootstrapToken,
    pub server: String,
    pub ca: CaSource,
    pub timeout: Duration,
}

/// How the node learns the cluster CA it verifies the API server with.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// `--ca-file`: a copy of the cluster's CA certificate.
    File(PathBuf),
    /// `--discovery-token-ca-cert-hash`: kubeadm's token discovery. The CA comes from kube-public/cluster-info,
    /// trusted when its JWS signature matches the token and its public key matches one of these pins.
    Pinned(Vec<String>),
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
    let ca_pem = match &req.ca {
        CaSource::File(path) => read_ca(path)?,
        CaSource::Pinned(pins) => discover_ca(&req.server, &req.token, pins, opts, req.timeout).await?,
    };
    let bootstrap = bootstrap_kubeconfig(&req.server, &ca_pem, &req.token);
    let client = check::client(&bootstrap, opts)
        .await
        .map_err(|error| mint::MintError::Client { server: req.server.clone(), error })?;
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
    use secrecy::ExposeSecret;

    const TOKEN: &str = "abcdef.0123456789abcdef";

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
            ca: CaSource::File(dir.path().join("ca.crt")),
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
