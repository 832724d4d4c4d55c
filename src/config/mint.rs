//! `wkjoin config mint`: a node identity instead of admin credentials. Run by an admin against the cluster: a
//! key is generated on the spot, a `certificates.k8s.io/v1` CSR for `system:node:<name>` (O=system:nodes) is
//! created with the kubelet client signer, approved, and the issued certificate is written as a self-contained
//! node kubeconfig. The worker never sees admin credentials.

use super::check::{self, Options};
use super::source::{self, Resolved};
use crate::kube_client::ClientError;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use std::time::Duration;

pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The kubelet client signer of Kubernetes ≤ 1.21 insists on exactly these usages; later ones accept them.
const USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("`{0}` is not a valid node name: use lower-case letters, digits, '-' and '.'")]
    NodeName(String),
    #[error("cannot generate the node's key and CSR: {0}")]
    Generate(String),
    #[error(
        "not allowed to {action}: {message} (run `wkjoin config mint` with an admin kubeconfig: it needs create on \
         certificatesigningrequests, update on certificatesigningrequests/approval and approve on signer {SIGNER})"
    )]
    Forbidden { action: &'static str, message: String },
    #[error("cannot {action} on {server}: {source}")]
    Api { action: &'static str, server: String, source: kube::Error },
    #[error("CSR {name} was denied or failed: {message}")]
    Denied { name: String, message: String },
    #[error(
        "CSR {name} was approved but no certificate was issued within {secs}s: the controller manager must run the \
         signer for {SIGNER} (kube-controller-manager --cluster-signing-cert-file/--cluster-signing-key-file; kubeadm \
         sets them)"
    )]
    Timeout { name: String, secs: u64 },
    #[error("the certificate issued for CSR {name} is not usable: {message}")]
    BadCertificate { name: String, message: String },
    #[error(
        "CSR {name} was not approved within {secs}s: approve it with `kubectl certificate approve {name}` while \
         wkjoin waits (raise --csr-timeout), or let the cluster approve node CSRs from bootstrap tokens (kubeadm's \
         ClusterRoleBinding kubeadm:node-autoapprove-bootstrap); nothing was written"
    )]
    NotApproved { name: String, secs: u64 },
    #[error(
        "the API server at {server} refused bootstrap token {id}: it is wrong, expired or was deleted (make a new one \
         with `kubeadm token create` on a control-plane node); nothing was written"
    )]
    TokenRefused { server: String, id: String },
    #[error(
        "bootstrap token {id} may not create a node CSR: {message} (the token's Secret needs \
         auth-extra-groups=system:bootstrappers:kubeadm:default-node-token, bound to ClusterRole \
         system:node-bootstrapper as kubeadm's kubeadm:kubelet-bootstrap does); nothing was written"
    )]
    TokenForbidden { id: String, message: String },
    // Not a #[source]: the builder's own text adds a hint about --kubeconfig/KUBECONFIG that is not the fix here.
    #[error("cannot make a client for {server}: {}", error.message)]
    Client { server: String, error: ClientError },
}

/// Checks a node name as a Node object name (a DNS subdomain).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A fresh key and the PEM CSR for node `node`.
pub fn key_and_csr(node: &str) -> Result<(String, String), MintError> {
    let key = rcgen::KeyPair::generate().map_err(|e| MintError::Generate(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| MintError::Generate(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    let csr = params.serialize_request(&key).map_err(|e| MintError::Generate(e.to_string()))?;
    let pem = csr.pem().map_err(|e| MintError::Generate(e.to_string()))?;
    Ok((key.serialize_pem(), pem))
}

/// Mints node `node`'s credential with the admin kubeconfig `admin`; returns the node kubeconfig's YAML.
pub async fn run(admin: &Resolved, node: &str, opts: &Options, timeout: Duration) -> Result<String, MintError> {
    if !valid_node_name(node) {
        return Err(MintError::NodeName(node.to_string()));
    }
    let server = admin.server.clone();
    let client =
        check::client(admin, opts).await.map_err(|error| MintError::Client { server: server.clone(), error })?;
    let issued = request(client, &server, node, &Requester::Admin, timeout).await?;
    Ok(issued.kubeconfig(&admin.cluster_name, &admin.server, admin.ca_pem.as_deref()))
}

/// Who asks for the node's certificate: an admin approves the CSR itself; a bootstrap token (kubeadm's TLS
/// bootstrap) leaves the approval to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    Admin,
    /// The token's public id (never its secret).
    BootstrapToken {
        id: String,
    },
}

/// A node certificate the cluster issued, with the key generated for it.
pub struct Issued {
    pub csr: String,
    pub node: String,
    pub cert_pem: Vec<u8>,
    pub key_pem: String,
}

impl Issued {
    /// The self-contained node kubeconfig for this certificate.
    pub fn kubeconfig(&self, cluster_name: &str, server: &str, ca_pem: Option<&[u8]>) -> String {
        source::client_cert_kubeconfig(
            cluster_name,
            server,
            ca_pem,
            &format!("system:node:{}", self.node),
            &self.cert_pem,
            &self.key_pem,
        )
    }
}

/// Generates a key, creates the CSR for `system:node:<node>` as `requester` (approving it when that is an
/// admin), and waits up to `timeout` for the signed certificate.
pub async fn request(
    client: kube::Client,
    server: &str,
    node: &str,
    requester: &Requester,
    timeout: Duration,
) -> Result<Issued, MintError> {
    let api_err = |action: &'static str| {
        let server = server.to_string();
        let requester = requester.clone();
        move |e: kube::Error| match (e, requester) {
            (kube::Error::Api(s), Requester::BootstrapToken { id }) if s.code == 401 => {
                MintError::TokenRefused { server, id }
            }
            (kube::Error::Api(s), Requester::BootstrapToken { id }) if s.code == 403 => {
                MintError::TokenForbidden { id, message: s.message }
            }
            (kube::Error::Api(s), Requester::Admin) if s.code == 403 => {
                MintError::Forbidden { action, message: s.message }
            }
            (source, _) => MintError::Api { action, server, source },
        }
    };
    let (key_pem, csr_pem) = key_and_csr(node)?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let object = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("wkjoin-{node}-")),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "wkjoin".to_string())].into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let created = csrs.create(&PostParams::default(), &object).await.map_err(api_err("create a CSR"))?;
    let name = created.name_any();

    if *requester == Requester::Admin {
        tracing::info!("created CSR {name} for system:node:{node}; approving it");
        let approval = CertificateSigningRequestStatus {
            certificate: None,
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("WkjoinMint".into()),
                message: Some(format!("approved by wkjoin config mint for node {node}")),
                ..Default::default()
            }]),
        };
        let patch = serde_json::json!({ "status": approval });
        csrs.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err("approve the CSR"))?;
        tracing::info!("approved CSR {name}; waiting up to {}s for the signer", timeout.as_secs());
    } else {
        tracing::info!(
            "created CSR {name} for system:node:{node}; waiting up to {}s for the cluster to approve and sign it",
            timeout.as_secs()
        );
    }

    let done = |o: Option<&CertificateSigningRequest>| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.certificate.as_ref().is_some_and(|c| !c.0.is_empty())
                || s.conditions.iter().flatten().any(|c| c.type_ == "Denied" || c.type_ == "Failed")
        })
    };
    let waited = tokio::time::timeout(timeout, crate::wait::until(csrs.clone(), &name, done)).await;
    let csr = match waited {
        Err(_) => {
            let secs = timeout.as_secs();
            let approved =
                csrs.get_opt(&name).await.ok().flatten().and_then(|c| c.status).is_some_and(|s| {
                    s.conditions.iter().flatten().any(|c| c.type_ == "Approved" && c.status == "True")
                });
            return Err(if approved {
                MintError::Timeout { name, secs }
            } else {
                MintError::NotApproved { name, secs }
            });
        }
        Ok(Err(e)) => return Err(api_err("watch the CSR")(e)),
        Ok(Ok(None)) => return Err(MintError::Denied { name, message: "the CSR was deleted".into() }),
        Ok(Ok(Some(c))) => c,
    };
    let status = csr.status.unwrap_or_default();
    let cert = match status.certificate {
        Some(c) if !c.0.is_empty() => c.0,
        _ => {
            let message = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
                .map(|c| format!("{}: {}", c.type_, c.message.clone().unwrap_or_default()))
                .unwrap_or_default();
            return Err(MintError::Denied { name, message });
        }
    };
    let info = check::parse_certs(&cert)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| MintError::BadCertificate { name: name.clone(), message: "not a PEM certificate".into() })?;
    let expected = format!("system:node:{node}");
    if info.common_name.as_deref() != Some(expected.as_str()) {
        return Err(MintError::BadCertificate {
            name,
            message: format!("it is for {}, not {expected}", info.common_name.unwrap_or_default()),
        });
    }
    tracing::info!("certificate for {expected} issued, valid until {}", check::date(info.not_after));
    Ok(Issued { csr: name, node: node.to_string(), cert_pem: cert, key_pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_error_names_the_server_without_the_kubeconfig_hint() {
        let error = ClientError { path: None, message: "bad client key".into() };
        let e = MintError::Client { server: "https://10.0.0.1:6443".into(), error };
        assert_eq!(e.to_string(), "cannot make a client for https://10.0.0.1:6443: bad client key");
        assert!(std::error::Error::source(&e).is_none(), "the builder's hint must not be appended as a cause");
    }

    #[test]
    fn csr_names_the_node_and_its_group() {
        let (key, csr) = key_and_csr("worker-2").unwrap();
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        // Decode the CSR and look at its subject.
        let der = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap().1.contents;
        let (_, req) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&der)
                .unwrap();
        let subject = &req.certification_request_info.subject;
        assert_eq!(subject.iter_common_name().next().unwrap().as_str().unwrap(), "system:node:worker-2");
        assert_eq!(subject.iter_organization().next().unwrap().as_str().unwrap(), "system:nodes");
    }

    #[test]
    fn unapproved_csr_names_the_csr_and_the_command() {
        let e = MintError::NotApproved { name: "wkjoin-worker-2-abcde".into(), secs: 120 };
        assert!(
            e.to_string().starts_with(
                "CSR wkjoin-worker-2-abcde was not approved within 120s: approve it with `kubectl certificate approve \
                 wkjoin-worker-2-abcde` while wkjoin waits"
            ),
            "{e}"
        );
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("worker-2"));
        assert!(valid_node_name("win-1.example.com"));
        assert!(!valid_node_name("Worker"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name(""));
    }
}
