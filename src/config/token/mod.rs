//! `wkjoin config --token`: kubeadm's TLS bootstrap. The node authenticates with a bootstrap token (group
//! system:bootstrappers), generates its own key, creates a CSR for `system:node:<name>` (O=system:nodes) and waits
//! for the cluster to approve and sign it (kubeadm clusters approve node CSRs from bootstrap tokens on their own);
//! the certificate then becomes the node's kubeconfig, checked and installed like `config --from`. The token
//! itself is never written nor printed: only its public id is named.
//!
//! `bootstrap` is that CSR flow; `discovery` is kubeadm's token discovery of the cluster CA (a detached JWS
//! checked with the token, a pin checked against the CA's public key).

mod bootstrap;
mod discovery;

pub use bootstrap::{CaSource, Request, bootstrap_kubeconfig, read_ca, run};
pub use discovery::{discover_ca, parse_pins, public_key_pins, verify_detached_jws};

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;

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
}
