//! The TLS check: a real handshake with the API server, verified against the kubeconfig's CA only, and a
//! failure explained from the certificate the server presented (wrong CA, wrong name, expired).

use super::certs::cert_info;
use super::report::Check;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::Status;
    use rcgen::{CertificateParams, DnType, KeyPair};

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
