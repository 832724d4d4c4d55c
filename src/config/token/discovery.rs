//! kubeadm's token discovery: the cluster CA read from kube-public/cluster-info without trusting the server yet,
//! then trusted only when the token's detached JWS signature matches it and its public key matches a pin.

use super::{BootstrapToken, CLUSTER, TokenError};
use crate::config::check::Options;
use crate::kube_client::{self, Insecure, Source};
use base64::Engine;
use secrecy::ExposeSecret;
use std::time::Duration;

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
    let options = kube_client::Options {
        context: Some("discovery".into()),
        connect_timeout: opts.timeout,
        insecure: Insecure::Expected,
    };
    let (client, _url) = kube_client::build(Source::Loaded(&kc), &options).await.map_err(|e| failed(e.message))?;
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
}
