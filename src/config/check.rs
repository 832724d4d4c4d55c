//! `wkjoin config check`: everything that must hold before a kubeconfig is a good node credential, each check
//! with pass/warn/fail and the fix. `wkjoin config` runs the same checks before writing anything.

use super::source::{Credential, Resolved};
use crate::output::OutputFormat;
use crate::version::KubeVersion;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::io::Write;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A check's verdict; `preflight` reports with the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    /// Upper case, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, message: impl Into<String>, fix: Option<String>) -> Check {
        Check { name, status, message: message.into(), fix }
    }
    fn pass(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, message, None)
    }
    fn skip(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, message, None)
    }
    fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Warn, message, Some(fix.into()))
    }
    fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, message, Some(fix.into()))
    }
}

/// The outcome of all checks of one kubeconfig.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kubeconfig: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub node_name: String,
    pub checks: Vec<Check>,
    pub failed: usize,
    pub warnings: usize,
}

impl Report {
    pub fn new(kubeconfig: String, resolved: Option<&Resolved>, node_name: &str, checks: Vec<Check>) -> Report {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
        Report {
            kubeconfig,
            context: resolved.map(|r| r.context.clone()),
            server: resolved.map(|r| r.server.clone()),
            node_name: node_name.to_string(),
            checks,
            failed,
            warnings,
        }
    }

    pub fn passed(&self) -> bool {
        self.failed == 0
    }

    pub fn print(&self, w: &mut impl Write, format: OutputFormat) -> std::io::Result<()> {
        if format != OutputFormat::Table {
            return crate::output::write_data(w, format, self);
        }
        writeln!(
            w,
            "checking {} (context {}, server {}) as the credentials of node {}",
            self.kubeconfig,
            self.context.as_deref().unwrap_or("-"),
            self.server.as_deref().unwrap_or("-"),
            self.node_name
        )?;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            writeln!(w, "{} {:<width$}  {}", c.status.label(), c.name, c.message)?;
            if let Some(fix) = &c.fix {
                writeln!(w, "     {:<width$}  fix: {fix}", "")?;
            }
        }
        let total = self.checks.len();
        writeln!(w, "{} failed, {} warnings, {} checks", self.failed, self.warnings, total)
    }
}

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
    checks.extend(api_checks(r, opts).await);
    checks
}

fn tls_server_name(r: &Resolved) -> Option<String> {
    r.kubeconfig.clusters.first().and_then(|c| c.cluster.as_ref()).and_then(|c| c.tls_server_name.clone())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

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

/// What a check needs to know about a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names and IP addresses (subject alternative names).
    pub names: Vec<String>,
}

pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertInfo>, String> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let p = p.map_err(|e| e.to_string())?;
        if p.label != "CERTIFICATE" {
            continue;
        }
        out.push(cert_info(&p.contents)?);
    }
    Ok(out)
}

pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let attr = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().unwrap_or("?").to_string();
    let mut names = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    names.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
                }
                GeneralName::IPAddress(b) if b.len() == 16 => {
                    let a: [u8; 16] = (*b).try_into().expect("16 bytes");
                    names.push(std::net::Ipv6Addr::from(a).to_string())
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        common_name: c.subject().iter_common_name().next().map(attr),
        organizations: c.subject().iter_organization().map(attr).collect(),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        names,
    })
}

pub(crate) fn date(ts: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(ts.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

const RENEW: &str =
    "mint a new node credential: `wkjoin config mint --node-name <node> --out <file>` with an admin kubeconfig";

/// The client certificate's dates: refused outside its validity, warned about under 30 days before expiry.
pub fn validity(c: &CertInfo, now: i64) -> Check {
    const NAME: &str = "client-certificate";
    if now < c.not_before {
        return Check::fail(
            NAME,
            format!("not valid yet: valid from {} (this machine's clock says {})", date(c.not_before), date(now)),
            "check this machine's clock (and time zone), or wait until the certificate becomes valid",
        );
    }
    if now >= c.not_after {
        return Check::fail(NAME, format!("expired at {}", date(c.not_after)), RENEW);
    }
    let days = (c.not_after - now) / 86_400;
    if days < 30 {
        return Check::warn(NAME, format!("expires in {days} days, at {}", date(c.not_after)), RENEW);
    }
    Check::pass(NAME, format!("valid until {} ({days} days)", date(c.not_after)))
}

/// Whose credential it is: a node's own identity passes, another node's fails, anyone else is warned about.
pub fn identity(c: &CertInfo, node_name: &str) -> Check {
    const NAME: &str = "identity";
    let cn = c.common_name.clone().unwrap_or_default();
    let orgs = c.organizations.join(",");
    let who = format!("CN={cn}, O={}", if orgs.is_empty() { "(none)" } else { &orgs });
    let is_nodes = c.organizations.iter().any(|o| o == "system:nodes");
    match cn.strip_prefix("system:node:") {
        Some(name) if name == node_name && is_nodes => {
            Check::pass(NAME, format!("{who}: node {node_name}'s own identity (least privilege)"))
        }
        Some(name) if name == node_name => Check::fail(
            NAME,
            format!("{who}: missing O=system:nodes, so the Node authorizer will not authorize node {node_name}"),
            format!("mint it again with O=system:nodes: `wkjoin config mint --node-name {node_name} --out <file>`"),
        ),
        Some(name) => Check::fail(
            NAME,
            format!(
                "{who}: this is node {name}'s credential, but this node is {node_name} (NodeRestriction would refuse every update)"
            ),
            format!(
                "install node {node_name}'s own credential (`wkjoin config mint --node-name {node_name} --out <file>`), \
                 or run with --node-name {name}"
            ),
        ),
        None if c.organizations.iter().any(|o| o == "system:masters") => Check::warn(
            NAME,
            format!(
                "{who}: cluster-admin credentials; a compromised node would own the whole cluster (not least privilege)"
            ),
            format!(
                "install a node credential instead: `wkjoin config mint --node-name {node_name} --out <file>` with this \
                 kubeconfig, then `wkjoin config --from <file>`"
            ),
        ),
        None => Check::warn(
            NAME,
            format!("{who}: not a node identity (expected CN=system:node:{node_name}, O=system:nodes)"),
            format!("install a node credential: `wkjoin config mint --node-name {node_name} --out <file>`"),
        ),
    }
}

/// The version skew policy: a kubelet may be older than the API server (up to 2 minor versions before
/// Kubernetes 1.28, 3 since), never newer.
pub fn skew(kubelet: KubeVersion, api: KubeVersion) -> Check {
    const NAME: &str = "version-skew";
    let allowed = if api.at_least(1, 28) { 3 } else { 2 };
    if (kubelet.major, kubelet.minor) > (api.major, api.minor) {
        return Check::fail(
            NAME,
            format!("kubelet {kubelet} is newer than the API server {api}: the version skew policy forbids it"),
            format!(
                "install a kubelet of {}.{} or older: --kubernetes-version v{}.{}.x",
                api.major, api.minor, api.major, api.minor
            ),
        );
    }
    if kubelet.major != api.major || api.minor - kubelet.minor > allowed {
        return Check::fail(
            NAME,
            format!("kubelet {kubelet} is more than {allowed} minor versions older than the API server {api}"),
            format!(
                "install a kubelet of {}.{}: --kubernetes-version v{}.{}.x",
                api.major, api.minor, api.major, api.minor
            ),
        );
    }
    Check::pass(NAME, format!("kubelet {kubelet} with API server {api}: within the skew policy"))
}

/// Remembers the server's certificate so a failure can say what it was.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("not poisoned") = Some(end_entity.to_vec());
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A real TLS handshake with the API server, verified against the kubeconfig's CA only.
pub fn tls_check(server: &str, ca_pem: &[u8], sni: Option<&str>, timeout: Duration) -> Check {
    const NAME: &str = "tls";
    let fix_ca =
        "use the cluster's CA (kubeadm: /etc/kubernetes/pki/ca.crt on the master) as certificate-authority-data";
    let Ok(url) = reqwest::Url::parse(server) else {
        return Check::skip(NAME, "no valid server URL (see the server check)");
    };
    let Some(host) = url.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()) else {
        return Check::skip(NAME, "no host in the server URL");
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let name_text = sni.map(str::to_string).unwrap_or_else(|| host.clone());
    let Ok(server_name) = ServerName::try_from(name_text.clone()) else {
        return Check::fail(NAME, format!("`{name_text}` is not a valid TLS server name"), "fix the server URL");
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem).flatten() {
        let _ = roots.add(der);
    }
    if roots.is_empty() {
        return Check::fail(NAME, "the CA holds no usable certificate", fix_ca);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        match rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build() {
            Ok(v) => v,
            Err(e) => return Check::fail(NAME, format!("cannot use the CA: {e}"), fix_ca),
        };
    let verifier = Arc::new(Recording { inner, seen: Mutex::new(None) });
    let config = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(b) => b.dangerous().with_custom_certificate_verifier(verifier.clone()).with_no_client_auth(),
        Err(e) => return Check::fail(NAME, format!("TLS setup: {e}"), "report this bug"),
    };
    let target = format!("{host}:{port}");
    let unreachable = |e: &dyn std::fmt::Display| {
        Check::fail(
            NAME,
            format!("cannot reach the API server at {target} ({server}): {e} (timeout {}s)", timeout.as_secs()),
            "check the server address, that the API server runs, and that the firewall lets this node reach the port",
        )
    };
    let addr = match (host.as_str(), port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => return unreachable(&"the name has no address"),
        Err(e) => return unreachable(&e),
    };
    let mut sock = match std::net::TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return unreachable(&e),
    };
    let _ = sock.set_read_timeout(Some(timeout));
    let _ = sock.set_write_timeout(Some(timeout));
    let mut conn = match rustls::ClientConnection::new(Arc::new(config), server_name) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, format!("TLS setup: {e}"), "report this bug"),
    };
    let result = (|| {
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok::<(), std::io::Error>(())
    })();
    let seen = verifier.seen.lock().expect("not poisoned").clone();
    let peer = seen.as_deref().and_then(|d| cert_info(d).ok());
    let names = peer.as_ref().map(|p| p.names.join(", ")).unwrap_or_else(|| "?".into());
    match result {
        Ok(()) => Check::pass(
            NAME,
            format!(
                "{target}: the server's certificate ({}) verifies against the CA",
                peer.map(|p| p.subject).unwrap_or_default()
            ),
        ),
        Err(e) => {
            let tls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).cloned();
            match tls_error {
                Some(rustls::Error::InvalidCertificate(ce)) => {
                    use rustls::CertificateError as C;
                    let issuer = peer.as_ref().map(|p| p.issuer.clone()).unwrap_or_else(|| "?".into());
                    match ce {
                        C::UnknownIssuer | C::BadSignature => Check::fail(
                            NAME,
                            format!(
                                "{target}: the server's certificate (issuer {issuer}) is not signed by the kubeconfig's CA: wrong CA"
                            ),
                            fix_ca,
                        ),
                        C::NotValidForName | C::NotValidForNameContext { .. } => Check::fail(
                            NAME,
                            format!("{target}: the server's certificate is for {names}, not {name_text}"),
                            format!(
                                "use one of those names in `server:` (or set tls-server-name), or add {name_text} to the API server's certificate SANs"
                            ),
                        ),
                        C::Expired | C::ExpiredContext { .. } => Check::fail(
                            NAME,
                            format!("{target}: the server's certificate has expired"),
                            "renew the API server's certificate (kubeadm: `kubeadm certs renew apiserver`)",
                        ),
                        other => Check::fail(
                            NAME,
                            format!("{target}: the server's certificate is refused: {other:?}"),
                            fix_ca,
                        ),
                    }
                }
                Some(other) => Check::fail(
                    NAME,
                    format!("{target}: TLS handshake failed: {other}"),
                    "check that the server URL is the API server's https port",
                ),
                None => unreachable(&e),
            }
        }
    }
}

/// Checks that talk to the API server with the credentials.
async fn api_checks(r: &Resolved, opts: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let skip_rest = |checks: &mut Vec<Check>, why: &str| {
        for name in ["version-skew", "node-access", "least-privilege"] {
            checks.push(Check::skip(name, format!("skipped: {why}")));
        }
    };
    let client = match client(r, opts).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail("api", format!("cannot make a client: {e}"), "fix the kubeconfig"));
            skip_rest(&mut checks, "no client");
            return checks;
        }
    };
    // /version is public; a namespaced read proves the credentials are accepted.
    let info = match client.apiserver_version().await {
        Ok(i) => i,
        Err(e) => {
            checks.push(api_error("api", &r.server, e));
            skip_rest(&mut checks, "the API server did not answer");
            return checks;
        }
    };
    let review = match access(&client, "get", "nodes", None, Some(&opts.node_name)).await {
        Ok(_) => None,
        Err(e) => Some(api_error("api", &r.server, e)),
    };
    if let Some(failed) = review {
        checks.push(failed);
        skip_rest(&mut checks, "the credentials were not accepted");
        return checks;
    }
    checks.push(Check::pass("api", format!("{}: API server {} accepted the credentials", r.server, info.git_version)));

    let api_version = KubeVersion::find_in(&info.git_version);
    checks.push(match (opts.kubelet_version, api_version) {
        (Some(k), Some(a)) => skew(k, a),
        (None, _) => Check::skip("version-skew", "kubelet version not known yet: give --kubernetes-version to check"),
        (_, None) => Check::warn(
            "version-skew",
            format!("cannot read the API server's version from `{}`", info.git_version),
            "check the kubelet version against the API server's by hand",
        ),
    });

    // What a kubelet needs (the Node authorizer and the system:node rules grant exactly this).
    let node = opts.node_name.as_str();
    let needs: [(&str, &str, Option<&str>, Option<&str>); 8] = [
        ("get", "nodes", None, Some(node)),
        ("list", "nodes", None, None),
        ("watch", "nodes", None, None),
        ("create", "nodes", None, None),
        ("patch", "nodes", None, Some(node)),
        ("patch", "nodes", Some("status"), Some(node)),
        ("list", "pods", None, None),
        ("watch", "pods", None, None),
    ];
    let mut missing = Vec::new();
    for (verb, resource, sub, name) in needs {
        match access_sub(&client, verb, resource, sub, name).await {
            Ok((true, _)) => {}
            Ok((false, _)) => missing.push(describe(verb, resource, sub, name)),
            Err(e) => {
                checks.push(api_error("node-access", &r.server, e));
                return checks;
            }
        }
    }
    checks.push(if missing.is_empty() {
        Check::pass(
            "node-access",
            format!("can get/list/watch nodes and pods, create node {node} and patch it and its status"),
        )
    } else {
        Check::fail(
            "node-access",
            format!("the credentials cannot {}: a kubelet needs it", missing.join(", ")),
            format!(
                "use node {node}'s credential (CN=system:node:{node}, O=system:nodes) on a cluster with \
                 --authorization-mode=Node,RBAC: `wkjoin config mint --node-name {node} --out <file>`"
            ),
        )
    });

    checks.push(least_privilege(&client, node).await.unwrap_or_else(|e| api_error("least-privilege", &r.server, e)));
    checks
}

async fn least_privilege(client: &Client, node: &str) -> Result<Check, kube::Error> {
    const NAME: &str = "least-privilege";
    let mut too_much = Vec::new();
    if access_sub(client, "*", "*", None, None).await?.0 {
        return Ok(Check::warn(
            NAME,
            "the credentials can do anything in the cluster (cluster-admin): too privileged for a node",
            format!(
                "install a node credential instead: `wkjoin config mint --node-name {node} --out <file>` with this \
                 kubeconfig, then `wkjoin config --from <file>`"
            ),
        ));
    }
    let (secrets, reason) = access_sub(client, "list", "secrets", None, None).await?;
    if secrets {
        let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
        too_much.push(format!("list secrets in every namespace{why}"));
    }
    // NodeRestriction is admission, which access reviews do not see: a dry-run patch of another Node shows it.
    let nodes: Api<Node> = Api::all(client.clone());
    let other = nodes
        .list_metadata(&ListParams::default().limit(20))
        .await
        .ok()
        .and_then(|l| l.items.into_iter().filter_map(|n| n.metadata.name).find(|n| n != node));
    if let Some(other) = &other {
        let patch = serde_json::json!({"metadata": {"annotations": {"wkjoin.io/privilege-probe": "dry-run"}}});
        let pp = PatchParams { dry_run: true, ..Default::default() };
        match nodes.patch(other, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => too_much.push(format!("modify another node ({other})")),
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let checked = match &other {
        Some(o) => format!("cannot list secrets cluster-wide nor modify node {o}"),
        None => "cannot list secrets cluster-wide (no other node to try modifying)".to_string(),
    };
    Ok(if too_much.is_empty() {
        Check::pass(NAME, checked)
    } else {
        Check::warn(
            NAME,
            format!("too privileged for a node: can {}", too_much.join(" and ")),
            "give nodes only the Node authorizer's rights (--authorization-mode=Node,RBAC, NodeRestriction admission, no \
             extra bindings to system:nodes or this user)",
        )
    })
}

fn describe(verb: &str, resource: &str, sub: Option<&str>, name: Option<&str>) -> String {
    let res = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    match name {
        Some(n) => format!("{verb} {res} {n}"),
        None => format!("{verb} {res}"),
    }
}

async fn access(
    client: &Client,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
) -> Result<bool, kube::Error> {
    access_sub(client, verb, resource, sub, name).await.map(|(a, _)| a)
}

/// A SelfSubjectAccessReview: whether these credentials may do `verb` on `resource`, and the authorizer's reason.
async fn access_sub(
    client: &Client,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
) -> Result<(bool, String), kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_string),
                name: name.map(str::to_string),
                group: if resource == "*" { Some("*".into()) } else { Some(String::new()) },
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let out = api.create(&PostParams::default(), &review).await?;
    let status = out.status.unwrap_or_default();
    Ok((status.allowed, status.reason.unwrap_or_default()))
}

fn api_error(name: &'static str, server: &str, e: kube::Error) -> Check {
    match &e {
        kube::Error::Api(s) if s.code == 401 => Check::fail(
            name,
            format!("{server}: the API server rejected the credentials (401 Unauthorized)"),
            "the client certificate is not signed by the cluster's CA, has expired, or the token is invalid: mint new \
             credentials (`wkjoin config mint --node-name <node> --out <file>`)",
        ),
        kube::Error::Api(s) if s.code == 403 => Check::fail(
            name,
            format!("{server}: forbidden: {}", s.message),
            "the identity may not even review its own access: use a node credential (CN=system:node:<node>, O=system:nodes)",
        ),
        _ => Check::fail(
            name,
            format!("{server}: {e}"),
            "check that the API server is running and reachable from this node",
        ),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, date_time_ymd};

    fn cert(cn: &str, orgs: &[&str], from: (i32, u8, u8), to: (i32, u8, u8)) -> CertInfo {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.not_before = date_time_ymd(from.0, from.1, from.2);
        p.not_after = date_time_ymd(to.0, to.1, to.2);
        let key = KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        parse_certs(c.pem().as_bytes()).unwrap().remove(0)
    }

    const Y2020: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z

    #[test]
    fn node_identity_rules() {
        let own = cert("system:node:worker-2", &["system:nodes"], (2019, 1, 1), (2030, 1, 1));
        assert_eq!(own.common_name.as_deref(), Some("system:node:worker-2"));
        assert_eq!(identity(&own, "worker-2").status, Status::Pass);

        let other = identity(&own, "worker-1");
        assert_eq!(other.status, Status::Fail);
        assert_eq!(
            other.message,
            "CN=system:node:worker-2, O=system:nodes: this is node worker-2's credential, but this node is worker-1 \
             (NodeRestriction would refuse every update)"
        );
        assert!(other.fix.unwrap().contains("--node-name worker-2"));

        let admin = identity(&cert("kubernetes-admin", &["system:masters"], (2019, 1, 1), (2030, 1, 1)), "worker-2");
        assert_eq!(admin.status, Status::Warn);
        assert!(admin.message.contains("cluster-admin"), "{}", admin.message);

        let no_group = identity(&cert("system:node:worker-2", &[], (2019, 1, 1), (2030, 1, 1)), "worker-2");
        assert_eq!(no_group.status, Status::Fail);
        assert!(no_group.message.contains("missing O=system:nodes"));

        let someone = identity(&cert("jane", &["devs"], (2019, 1, 1), (2030, 1, 1)), "worker-2");
        assert_eq!(someone.status, Status::Warn);
    }

    #[test]
    fn certificate_dates() {
        let expired = cert("x", &[], (2018, 1, 1), (2019, 6, 1));
        let c = validity(&expired, Y2020);
        assert_eq!((c.status, c.message.as_str()), (Status::Fail, "expired at 2019-06-01T00:00:00Z"));

        let future = validity(&cert("x", &[], (2021, 1, 1), (2022, 1, 1)), Y2020);
        assert_eq!(future.status, Status::Fail);
        assert!(future.message.starts_with("not valid yet: valid from 2021-01-01T00:00:00Z"), "{}", future.message);

        let soon = validity(&cert("x", &[], (2019, 1, 1), (2020, 1, 11)), Y2020);
        assert_eq!((soon.status, soon.message.as_str()), (Status::Warn, "expires in 10 days, at 2020-01-11T00:00:00Z"));

        assert_eq!(validity(&cert("x", &[], (2019, 1, 1), (2021, 1, 1)), Y2020).status, Status::Pass);
    }

    #[test]
    fn version_skew_policy() {
        let v = |s: &str| s.parse::<KubeVersion>().unwrap();
        assert_eq!(skew(v("v1.20.2"), v("v1.20.2")).status, Status::Pass);
        assert_eq!(skew(v("v1.18.0"), v("v1.20.2")).status, Status::Pass);
        assert_eq!(skew(v("v1.17.0"), v("v1.20.2")).status, Status::Fail);
        assert_eq!(skew(v("v1.27.0"), v("v1.30.1")).status, Status::Pass);
        let newer = skew(v("v1.21.0"), v("v1.20.2"));
        assert_eq!(newer.status, Status::Fail);
        assert_eq!(
            newer.message,
            "kubelet v1.21.0 is newer than the API server v1.20.2: the version skew policy forbids it"
        );
    }

    fn resolved(yaml: &str) -> Resolved {
        super::super::source::resolve(yaml, "k", std::path::Path::new("."), None).unwrap()
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

    #[test]
    fn tls_check_reports_an_unreachable_server_with_its_url() {
        // A port nothing listens on: bind one, learn its number, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ca = rcgen::CertificateParams::new(vec!["ca".to_string()])
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let c = tls_check(&format!("https://127.0.0.1:{port}"), ca.as_bytes(), None, Duration::from_secs(2));
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.starts_with(&format!("cannot reach the API server at 127.0.0.1:{port}")), "{}", c.message);
    }

    /// A CA and a one-connection TLS server on 127.0.0.1 with a certificate for `names`, signed by that CA.
    fn tls_server(names: &[&str]) -> (u16, String, std::thread::JoinHandle<()>) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "test-ca");
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock).is_err() {
                    break;
                }
            }
        });
        (port, ca_pem, handle)
    }

    #[test]
    fn tls_check_verifies_against_the_kubeconfig_ca_only() {
        let (port, ca, h) = tls_server(&["127.0.0.1", "kubernetes"]);
        let ok = tls_check(&format!("https://127.0.0.1:{port}"), ca.as_bytes(), None, Duration::from_secs(5));
        h.join().unwrap();
        assert_eq!(ok.status, Status::Pass, "{ok:?}");

        let (port, _, h) = tls_server(&["127.0.0.1"]);
        let other_ca = CertificateParams::new(vec!["other-ca".to_string()])
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let wrong = tls_check(&format!("https://127.0.0.1:{port}"), other_ca.as_bytes(), None, Duration::from_secs(5));
        h.join().unwrap();
        assert_eq!(wrong.status, Status::Fail);
        assert_eq!(
            wrong.message,
            format!(
                "127.0.0.1:{port}: the server's certificate (issuer CN=test-ca) is not signed by the kubeconfig's CA: wrong CA"
            )
        );

        let (port, ca, h) = tls_server(&["master", "10.96.0.1"]);
        let name = tls_check(&format!("https://127.0.0.1:{port}"), ca.as_bytes(), None, Duration::from_secs(5));
        h.join().unwrap();
        assert_eq!(name.status, Status::Fail);
        assert_eq!(
            name.message,
            format!("127.0.0.1:{port}: the server's certificate is for master, 10.96.0.1, not 127.0.0.1")
        );
    }
}
