//! Certificates as the checks see them: parsed from PEM/DER (subject, issuer, dates, names), and the client
//! certificate's checks: its validity dates and whose identity it carries.

use super::report::Check;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::Status;
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
}
