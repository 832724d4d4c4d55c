//! Rejects settings that cannot work, naming both sides of every conflict and the fix.

use super::{Origin, Runtime, Settings};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "{a_name} {a} ({a_origin}) overlaps {b_name} {b} ({b_origin}): the ranges must be disjoint; choose a {a_name} outside {b}"
    )]
    Overlap { a_name: &'static str, a: IpNet, a_origin: String, b_name: &'static str, b: IpNet, b_origin: String },
    #[error("{what} {value} is not inside {range_name} {range}: {fix}")]
    NotInside { what: &'static str, value: String, range_name: &'static str, range: IpNet, fix: &'static str },
    #[error(
        "{what} {value} lies inside {range_name} {range}: the node's address must be outside the pod and service ranges"
    )]
    AddressInRange { what: &'static str, value: IpAddr, range_name: &'static str, range: IpNet },
    #[error(
        "{a_name} {a} and {b_name} {b} mix IPv4 and IPv6: give both ranges of the same family (dual-stack is configured per range)"
    )]
    FamilyMismatch { a_name: &'static str, a: IpNet, b_name: &'static str, b: IpNet },
    #[error("node name `{name}` is invalid: {reason}; use `{suggestion}`")]
    NodeName { name: String, reason: &'static str, suggestion: String },
    #[error("could not tell this host's name: give --node-name")]
    NoNodeName,
    #[error(
        "--runtime docker needs Kubernetes < v1.24 (dockershim was removed), but {version} was asked for: use --runtime containerd"
    )]
    DockerRemoved { version: String },
    #[error(
        "{flag} `{value}` is not a flag setting: give `name=value` (e.g. {flag} resolv-conf=/etc/resolv.conf), or `name` alone for a boolean flag"
    )]
    ExtraArg { flag: &'static str, value: String },
    #[error("--cgroup-root `{value}` must be an absolute cgroup path such as /wkjoin")]
    CgroupRoot { value: String },
    #[error(
        "--root-dir `{value}` {reason}: wkjoin creates bin, logs, pki and run under it, and `wkjoin reset` removes \
         them; give a directory of wkjoin's own, such as {example}"
    )]
    RootDir { value: String, reason: &'static str, example: &'static str },
    #[error(
        "--network-name `{value}` is not a plain name: use 1 to 64 letters, digits, '.', '-' or '_' (it names a \
         network, a host-local IPAM directory and kube-proxy's KUBE_NETWORK), e.g. cbr0"
    )]
    NetworkName { value: String },
    #[error(
        "cluster domain `{value}` is not a DNS name (labels of letters, digits and '-', joined by '.'): it goes into the kubelet's command line; fix kubeadm-config's networking.dnsDomain or give --cluster-domain"
    )]
    ClusterDomain { value: String },
    #[error(
        "--cni-plugins-version `{value}` is not a containernetworking/plugins release: use the form v1.1.1 (see https://github.com/containernetworking/plugins/releases)"
    )]
    CniPluginsVersion { value: String },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("cannot read config file {}: {source}", path.display())]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error("config file {} is not valid: {message} (keys are the long flag names, e.g. `cluster-cidr: 10.244.0.0/16`)", path.display())]
    ConfigParse { path: PathBuf, message: String },
}

fn origin(o: &Option<Origin>) -> String {
    o.as_ref().map_or_else(|| "default".to_string(), Origin::to_string)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks the resolved settings; the first problem found is returned.
pub fn validate(s: &Settings) -> Result<(), SettingsError> {
    let o = &s.origins;
    if s.cluster_cidr.addr().is_ipv4() != s.service_cidr.addr().is_ipv4() {
        return Err(SettingsError::FamilyMismatch {
            a_name: "--cluster-cidr",
            a: s.cluster_cidr,
            b_name: "--service-cidr",
            b: s.service_cidr,
        });
    }
    if overlaps(&s.cluster_cidr, &s.service_cidr) {
        return Err(SettingsError::Overlap {
            a_name: "--cluster-cidr",
            a: s.cluster_cidr,
            a_origin: origin(&o.cluster_cidr),
            b_name: "--service-cidr",
            b: s.service_cidr,
            b_origin: origin(&o.service_cidr),
        });
    }
    if let Some(node_net) = s.node_network {
        for (name, net, org) in
            [("--cluster-cidr", s.cluster_cidr, &o.cluster_cidr), ("--service-cidr", s.service_cidr, &o.service_cidr)]
        {
            if overlaps(&net, &node_net) {
                return Err(SettingsError::Overlap {
                    a_name: name,
                    a: net,
                    a_origin: origin(org),
                    b_name: "the node's network",
                    b: node_net,
                    b_origin: "host interface".to_string(),
                });
            }
        }
    }
    if let Some(ip) = s.node_ip {
        for (name, net) in [("--cluster-cidr", s.cluster_cidr), ("--service-cidr", s.service_cidr)] {
            if net.contains(&ip) {
                return Err(SettingsError::AddressInRange {
                    what: "--node-ip",
                    value: ip,
                    range_name: name,
                    range: net,
                });
            }
        }
    }
    if let Some(pod) = s.pod_cidr
        && !s.cluster_cidr.contains(&pod)
    {
        return Err(SettingsError::NotInside {
            what: "--pod-cidr",
            value: pod.to_string(),
            range_name: "--cluster-cidr",
            range: s.cluster_cidr,
            fix: "a node's pod range is carved out of the cluster range; check both values",
        });
    }
    if !s.service_cidr.contains(&s.cluster_dns) {
        return Err(SettingsError::NotInside {
            what: "--cluster-dns",
            value: s.cluster_dns.to_string(),
            range_name: "--service-cidr",
            range: s.service_cidr,
            fix: "the DNS Service's ClusterIP comes from the service range (kubectl -n kube-system get svc kube-dns)",
        });
    }
    validate_node_name(&s.node_name)?;
    // Files for another OS (`fetch --os windows` on Linux) may live under a root of this host.
    validate_root_dir(s.os, &s.root_dir).or_else(|e| {
        let host = crate::layout::Os::host();
        if host != s.os && validate_root_dir(host, &s.root_dir).is_ok() { Ok(()) } else { Err(e) }
    })?;
    if s.network_name.trim().is_empty() {
        return Err(SettingsError::Empty { what: "--network-name" });
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if s.network_name.len() > 64 || !s.network_name.chars().all(plain) || s.network_name.chars().all(|c| c == '.') {
        return Err(SettingsError::NetworkName { value: s.network_name.clone() });
    }
    if s.cluster_domain.trim().is_empty() {
        return Err(SettingsError::Empty { what: "--cluster-domain" });
    }
    // It can come from the cluster (kubeadm-config) and ends up in service command lines: a DNS name only.
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.cluster_domain.len() > 253 || !s.cluster_domain.trim_end_matches('.').split('.').all(label) {
        return Err(SettingsError::ClusterDomain { value: s.cluster_domain.clone() });
    }
    // It becomes part of a URL and a file name: a release tag only.
    if let Some(v) = &s.cni_plugins_version
        && v.parse::<crate::version::KubeVersion>().is_err()
    {
        return Err(SettingsError::CniPluginsVersion { value: v.clone() });
    }
    if s.pause_image.trim().is_empty() {
        return Err(SettingsError::Empty { what: "--pause-image" });
    }
    if let Some(root) = &s.cgroup_root
        && (!root.starts_with('/') || root.contains(char::is_whitespace) || root.contains("/../"))
    {
        return Err(SettingsError::CgroupRoot { value: root.clone() });
    }
    for (flag, args) in [("--kubelet-arg", &s.kubelet_args), ("--kube-proxy-arg", &s.kube_proxy_args)] {
        for a in args.iter() {
            if super::extra_flag_name(a).is_none() {
                return Err(SettingsError::ExtraArg { flag, value: a.clone() });
            }
        }
    }
    if s.runtime == Runtime::Docker
        && let Some(v) = s.kubernetes_version.exact()
        && v.at_least(1, 24)
    {
        return Err(SettingsError::DockerRemoved { version: v.to_string() });
    }
    Ok(())
}

/// Directories whose subdirectories belong to the system: a root dir there would let `reset` remove them.
#[rustfmt::skip]
const SYSTEM_DIRS: [&str; 28] = [
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin", "/srv",
    "/sys", "/tmp", "/usr", "/usr/local", "/var", "/var/lib", "/var/log", "/var/run", "/var/tmp",
    // Kubernetes' and the runtime's own: /opt/cni/bin holds the CNI plugins.
    "/opt/cni", "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/containerd", "/usr/lib", "/usr/libexec",
];
const WINDOWS_SYSTEM_DIRS: [&str; 6] =
    ["windows", "windows\\system32", "program files", "program files (x86)", "programdata", "users"];

/// The root dir is absolute and wkjoin's own: never `/`, a drive root or a system directory.
fn validate_root_dir(os: crate::layout::Os, root: &str) -> Result<(), SettingsError> {
    let fail = |reason| {
        let example = match os {
            crate::layout::Os::Linux => "/var/lib/wkjoin",
            crate::layout::Os::Windows => "C:\\k",
        };
        Err(SettingsError::RootDir { value: root.to_string(), reason, example })
    };
    match os {
        crate::layout::Os::Linux => {
            if !root.starts_with('/') {
                return fail("is not an absolute path");
            }
            // `/usr//local/.` is /usr/local: compare the path, not its spelling.
            let parts: Vec<&str> = root.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
            if parts.contains(&"..") {
                return fail("climbs with `..`");
            }
            if parts.is_empty() {
                return fail("is the file system root");
            }
            if SYSTEM_DIRS.contains(&format!("/{}", parts.join("/")).as_str()) {
                return fail("is a system directory");
            }
        }
        crate::layout::Os::Windows => {
            let b = root.as_bytes();
            if !(b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')) {
                return fail("is not an absolute path with a drive letter");
            }
            let lower = root[3..].to_ascii_lowercase();
            let parts: Vec<&str> = lower.split(['\\', '/']).filter(|c| !c.is_empty() && *c != ".").collect();
            if parts.contains(&"..") {
                return fail("climbs with `..`");
            }
            if parts.is_empty() {
                return fail("is a drive root");
            }
            if WINDOWS_SYSTEM_DIRS.contains(&parts.join("\\").as_str()) {
                return fail("is a system directory");
            }
        }
    }
    Ok(())
}

/// Node names are DNS subdomains (RFC 1123), lower case: the kubelet lower-cases the hostname it registers.
fn validate_node_name(name: &str) -> Result<(), SettingsError> {
    let suggestion = || {
        let s: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
            .collect();
        s.trim_matches(|c| c == '-' || c == '.').to_string()
    };
    let fail = |reason| SettingsError::NodeName { name: name.to_string(), reason, suggestion: suggestion() };
    if name.is_empty() || name.len() > 253 {
        return Err(fail("it must be 1 to 253 characters"));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(fail("it has upper-case letters, but the kubelet registers lower-case names"));
    }
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok_ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_chars || !ok_ends(name.chars().next()) || !ok_ends(name.chars().last()) {
        return Err(fail("only a-z, 0-9, '-' and '.' are allowed, starting and ending with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_root_dir_is_wkjoins_own_never_a_system_directory() {
        use crate::layout::Os;
        for bad in [
            "/",
            "//",
            "/usr/local",
            "/usr/local/",
            "/usr//local/.",
            "/etc",
            "var/lib/wkjoin",
            "/var/lib/../..",
            "/tmp",
            "/opt/cni",
        ] {
            let err = validate_root_dir(Os::Linux, bad).unwrap_err().to_string();
            assert!(err.contains("--root-dir") && err.contains("/var/lib/wkjoin"), "{bad}: {err}");
        }
        for ok in ["/var/lib/wkjoin", "/opt/wkjoin", "/tmp/x/root"] {
            validate_root_dir(Os::Linux, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "C:\\",
            "D:/",
            "C:\\Windows",
            "C:\\Windows\\.",
            "c:\\program files\\",
            "k",
            "\\\\server\\share",
            "C:\\k\\..\\Windows",
        ] {
            let err = validate_root_dir(Os::Windows, bad).unwrap_err().to_string();
            assert!(err.contains("C:\\k"), "{bad}: {err}");
        }
        for ok in ["C:\\k", "D:\\kube", "C:\\Program Files\\wkjoin"] {
            validate_root_dir(Os::Windows, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn network_names_are_plain_names() {
        let with = |n: &str| resolve_with(PartialSettings { network_name: Some(n.into()), ..Default::default() }, &[]);
        assert!(with("l2bridge").is_ok() && with("cbr0").is_ok() && with("my_net-1.0").is_ok());
        for bad in ["../etc", "a b", "x/y", "..", &"n".repeat(65)] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("not a plain name"), "{bad}: {err}");
        }
    }

    use super::super::{HostFacts, PartialSettings, resolve};
    use super::*;
    use crate::layout::Os;

    fn resolve_with(p: PartialSettings, ifaces: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let host = HostFacts {
            hostname: Some("node".into()),
            interfaces: ifaces.iter().map(|(n, a)| (n.to_string(), a.parse().unwrap())).collect(),
            ..Default::default()
        };
        resolve(Os::Linux, None, &[(Origin::CommandLine, &p)], &host)
    }

    #[test]
    fn overlapping_cluster_and_service_names_both() {
        let p = PartialSettings {
            cluster_cidr: Some("10.96.0.0/12".parse().unwrap()),
            service_cidr: Some("10.96.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        let msg = resolve_with(p, &[]).unwrap_err().to_string();
        assert!(msg.contains("--cluster-cidr 10.96.0.0/12"), "{msg}");
        assert!(msg.contains("--service-cidr 10.96.0.0/16"), "{msg}");
    }

    #[test]
    fn node_network_overlap_is_rejected() {
        let p = PartialSettings { cluster_cidr: Some("172.30.0.0/16".parse().unwrap()), ..Default::default() };
        let msg = resolve_with(p, &[("eth0", "172.30.0.11/24")]).unwrap_err().to_string();
        assert!(msg.contains("the node's network 172.30.0.0/24"), "{msg}");
    }

    #[test]
    fn dns_outside_service_range_and_pod_outside_cluster_range() {
        let p = PartialSettings { cluster_dns: Some("10.0.0.10".parse().unwrap()), ..Default::default() };
        assert!(matches!(resolve_with(p, &[]), Err(SettingsError::NotInside { what: "--cluster-dns", .. })));
        let p = PartialSettings { pod_cidr: Some("10.1.0.0/24".parse().unwrap()), ..Default::default() };
        assert!(matches!(resolve_with(p, &[]), Err(SettingsError::NotInside { what: "--pod-cidr", .. })));
    }

    #[test]
    fn node_names_must_be_lower_case_dns_names() {
        let p = PartialSettings { node_name: Some("Win_Node1".into()), ..Default::default() };
        let msg = resolve_with(p, &[]).unwrap_err().to_string();
        assert!(msg.contains("use `win-node1`"), "{msg}");
    }

    #[test]
    fn extra_args_need_a_flag_name_and_cgroup_roots_are_absolute() {
        let p = PartialSettings { kubelet_arg: Some(vec!["=x".into()]), ..Default::default() };
        let msg = resolve_with(p, &[]).unwrap_err().to_string();
        assert!(msg.contains("--kubelet-arg `=x`"), "{msg}");
        let p = PartialSettings {
            kube_proxy_arg: Some(vec!["--v=4".into(), "masquerade-all".into()]),
            ..Default::default()
        };
        assert_eq!(resolve_with(p, &[]).unwrap().kube_proxy_args, ["--v=4", "masquerade-all"]);
        let p = PartialSettings { cgroup_root: Some("wkjoin".into()), ..Default::default() };
        assert!(matches!(resolve_with(p, &[]), Err(SettingsError::CgroupRoot { .. })));
    }

    #[test]
    fn docker_is_refused_from_1_24() {
        let p = PartialSettings {
            runtime: Some(Runtime::Docker),
            kubernetes_version: Some("v1.24.0".parse().unwrap()),
            ..Default::default()
        };
        assert!(matches!(resolve_with(p, &[]), Err(SettingsError::DockerRemoved { .. })));
        let p = PartialSettings {
            runtime: Some(Runtime::Docker),
            kubernetes_version: Some("v1.23.9".parse().unwrap()),
            ..Default::default()
        };
        assert!(resolve_with(p, &[]).is_ok());
    }
}
