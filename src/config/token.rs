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
    #[error(
        "--token needs the cluster CA: give --ca-file FILE (the cluster's ca.crt) or --discovery-token-ca-cert-hash \
         sha256:HEX (as `kubeadm token create --print-join-command` prints it)"
    )]
    NoCa,
    #[error(
        "--discovery-token-ca-cert-hash `{0}` is not of the form sha256:<64 hex digits> (as `kubeadm token create \
         --print-join-command` prints it)"
    )]
    BadPin(String),
    #[error(
        "cannot read kube-public/cluster-info from {server} for token discovery: {message} (the API server must be \
         reachable and let anonymous users read that ConfigMap, as kubeadm sets up; or give --ca-file)"
    )]
    Discovery { server: String, message: String },
    #[error(
        "kube-public/cluster-info on {server} carries no signature for bootstrap token {id} (jws-kubeconfig-{id}) \
         after {secs}s: the token is wrong, expired or deleted, lacks usage-bootstrap-signing=true, or the controller \
         manager does not run the bootstrapsigner controller"
    )]
    Unsigned { server: String, id: String, secs: u64 },
    #[error(
        "the signature of kube-public/cluster-info on {server} does not match bootstrap token {id}: {reason} (the \
         token's secret is wrong, or something between this node and {server} altered the cluster information)"
    )]
    BadSignature { server: String, id: String, reason: String },
    #[error(
        "the cluster CA served by {server} has public key hash {actual}, not the --discovery-token-ca-cert-hash given \
         ({}): this is not the cluster the hash names, or the hash is wrong (compute it on a control-plane node: \
         openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der | openssl dgst \
         -sha256)",
        pins.join(", ")
    )]
    PinMismatch { server: String, actual: String, pins: Vec<String> },
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
        .map_err(|source| mint::MintError::Client { server: req.server.clone(), source })?;
    let requester = Requester::BootstrapToken { id: req.token.id().to_string() };
    let issued = mint::request(client, &req.server, node, &requester, req.timeout).await?;
    let yaml = issued.kubeconfig(CLUSTER, &req.server, Some(&ca_pem));
    let resolved = source::resolve(&yaml, "the issued certificate", Path::new("."), None)?;
    let origin = format!("the certificate of CSR {} ({})", issued.csr, req.describe());
    install::install(&resolved, &origin, opts, target, host).await
}

/// Checks `--discovery-token-ca-cert-hash` values: `sha256:` and 64 hex digits; returned lower-case.
pub fn parse_pins(pins: &[String]) -> Result<Vec<String>, TokenError> {
    pins.iter()
        .map(|p| {
            let hex = p.trim().strip_prefix("sha256:").unwrap_or("");
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
            } else {
                Err(TokenError::BadPin(p.clone()))
            }
        })
        .collect()
}

/// `sha256:<hex>` of each certificate's SubjectPublicKeyInfo in `pem` (kubeadm's CA pin).
pub fn public_key_pins(pem: &[u8]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .flatten()
        .filter_map(|p| {
            p.parse_x509()
                .ok()
                .map(|c| format!("sha256:{}", hex::encode(Sha256::digest(c.tbs_certificate.subject_pki.raw))))
        })
        .collect()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().to_vec()
}

/// Verifies the detached JWS (`header..signature`, HS256 keyed with the token's secret) the bootstrapsigner
/// controller puts next to cluster-info's kubeconfig; the error says what does not match.
pub fn verify_detached_jws(jws: &str, content: &str, token: &BootstrapToken) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jws.trim().split('.');
    let (Some(header), Some(""), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("it is not a detached JWS (header..signature)".into());
    };
    let decoded = b64.decode(header).map_err(|e| format!("its header is not base64url: {e}"))?;
    let fields: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("its header is not JSON: {e}"))?;
    if fields["alg"] != "HS256" {
        return Err(format!("it is signed with {}, not HS256", fields["alg"]));
    }
    if let Some(kid) = fields["kid"].as_str().filter(|k| *k != token.id()) {
        return Err(format!("it is signed by token {kid}"));
    }
    let input = format!("{header}.{}", b64.encode(content));
    let expected = b64.encode(hmac_sha256(token.secret.expose_secret().as_bytes(), input.as_bytes()));
    let same = expected.len() == signature.len()
        && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same { Ok(()) } else { Err("the HMAC differs".into()) }
}

/// kubeadm's token discovery: reads kube-public/cluster-info without trusting the server yet, checks its
/// signature with the token and its CA against `pins`, and returns that CA.
pub async fn discover_ca(
    server: &str,
    token: &BootstrapToken,
    pins: &[String],
    opts: &Options,
    timeout: Duration,
) -> Result<Vec<u8>, TokenError> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::config::{Cluster, Context, Kubeconfig, NamedCluster, NamedContext};
    let failed = |message: String| TokenError::Discovery { server: server.to_string(), message };
    // Anonymous and unverified on purpose: what is read is trusted only after the checks below.
    let kc = Kubeconfig {
        clusters: vec![NamedCluster {
            name: CLUSTER.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                insecure_skip_tls_verify: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "discovery".into(),
            context: Some(Context { cluster: CLUSTER.into(), ..Default::default() }),
            ..Default::default()
        }],
        current_context: Some("discovery".into()),
        ..Default::default()
    };
    let kopts = kube::config::KubeConfigOptions { context: Some("discovery".into()), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kopts).await.map_err(|e| failed(e.to_string()))?;
    config.accept_invalid_certs = true;
    config.connect_timeout = Some(opts.timeout);
    config.read_timeout = Some(Duration::from_secs(30));
    let client = kube::Client::try_from(config).map_err(|e| failed(e.to_string()))?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "kube-public");
    let key = format!("jws-kubeconfig-{}", token.id());
    let deadline = tokio::time::Instant::now() + timeout;
    // The bootstrapsigner controller signs a new token within seconds: wait for it like kubeadm does.
    let (content, jws) = loop {
        let cm = api.get("cluster-info").await.map_err(|e| failed(e.to_string()))?;
        let data = cm.data.unwrap_or_default();
        let content = data.get("kubeconfig").cloned().ok_or_else(|| failed("it has no kubeconfig key".into()))?;
        if let Some(jws) = data.get(&key) {
            break (content, jws.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TokenError::Unsigned {
                server: server.to_string(),
                id: token.id().to_string(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    verify_detached_jws(&jws, &content, token).map_err(|reason| TokenError::BadSignature {
        server: server.to_string(),
        id: token.id().to_string(),
        reason,
    })?;
    let info = Kubeconfig::from_yaml(&content).map_err(|e| failed(format!("its kubeconfig does not parse: {e}")))?;
    let ca_b64 = info
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| failed("its kubeconfig has no certificate-authority-data".into()))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64.split_whitespace().collect::<String>())
        .map_err(|e| failed(format!("its certificate-authority-data is not base64: {e}")))?;
    let actual = public_key_pins(&ca_pem);
    if actual.is_empty() {
        return Err(failed("its certificate-authority-data holds no certificate".into()));
    }
    if !actual.iter().any(|a| pins.contains(a)) {
        return Err(TokenError::PinMismatch {
            server: server.to_string(),
            actual: actual.join(", "),
            pins: pins.to_vec(),
        });
    }
    tracing::info!(
        "cluster CA from kube-public/cluster-info verified (signature of token {}, {})",
        token.id(),
        actual.join(", ")
    );
    Ok(ca_pem)
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
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// A detached JWS made the way the bootstrapsigner controller makes it (go-jose, HS256, kid in the header).
    fn sign(content: &str, id: &str, secret: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(format!(r#"{{"alg":"HS256","kid":"{id}"}}"#));
        let mac = hmac_sha256(secret.as_bytes(), format!("{header}.{}", b64.encode(content)).as_bytes());
        format!("{header}..{}", b64.encode(mac))
    }

    #[test]
    fn detached_jws_is_checked_against_the_token() {
        let token = BootstrapToken::parse(TOKEN).unwrap();
        let content = "apiVersion: v1\nkind: Config\n";
        verify_detached_jws(&sign(content, "abcdef", "0123456789abcdef"), content, &token).unwrap();
        assert_eq!(
            verify_detached_jws(&sign(content, "abcdef", "0123456789abcdee"), content, &token).unwrap_err(),
            "the HMAC differs"
        );
        assert_eq!(
            verify_detached_jws(&sign(content, "abcdef", "0123456789abcdef"), "altered", &token).unwrap_err(),
            "the HMAC differs"
        );
        assert_eq!(
            verify_detached_jws(&sign(content, "zzzzzz", "0123456789abcdef"), content, &token).unwrap_err(),
            "it is signed by token zzzzzz"
        );
        assert!(verify_detached_jws("a.b.c", content, &token).is_err());
    }

    #[test]
    fn pins_are_spki_hashes() {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["kubernetes".to_string()]).unwrap().self_signed(&key).unwrap();
        use sha2::Digest;
        let expected = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)))
        );
        assert_eq!(public_key_pins(ca.pem().as_bytes()), std::slice::from_ref(&expected));
        assert_eq!(parse_pins(&[expected.to_uppercase().replace("SHA256:", "sha256:")]).unwrap(), [expected]);
        assert!(matches!(parse_pins(&["md5:00".into()]), Err(TokenError::BadPin(_))));
        assert!(matches!(parse_pins(&["sha256:zz".into()]), Err(TokenError::BadPin(_))));
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
