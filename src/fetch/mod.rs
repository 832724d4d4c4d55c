//! `wkjoin fetch`: the Kubernetes node archive, verified and installed. This module plans; the streaming
//! download/verify/install lands with the fetch issue.

use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;
use crate::version::{KubeVersion, VersionSpec};

/// The binaries wkjoin installs from `kubernetes/node/bin/` (kubeadm only when the archive has it).
pub const NODE_BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kubectl"];

/// `{mirror}/{version}/kubernetes-node-{os}-{arch}.tar.gz`.
pub fn archive_url(mirror: &str, version: KubeVersion, os: &str, arch: &str) -> String {
    format!("{}/{version}/kubernetes-node-{os}-{arch}.tar.gz", mirror.trim_end_matches('/'))
}

/// `{mirror}/{marker}.txt`, e.g. `stable.txt`, holding a version.
pub fn marker_url(mirror: &str, marker: &str) -> String {
    format!("{}/{marker}.txt", mirror.trim_end_matches('/'))
}

pub fn plan(s: &Settings) -> Plan {
    let layout = s.layout();
    let binaries: Vec<String> = NODE_BINARIES.iter().map(|b| format!("{b}{}", s.os.exe_suffix())).collect();
    let mut plan = Plan::new(Step::Fetch, format!("install the Kubernetes {} node binaries", s.kubernetes_version));
    match &s.kubernetes_version {
        VersionSpec::Exact(v) => {
            let url = archive_url(&s.mirror, *v, s.os.as_str(), &s.arch);
            plan.push(Action::FetchRelease {
                checksum_url: format!("{url}.sha512"),
                url,
                binaries,
                bin_dir: layout.bin_dir(),
                cache_dir: layout.cache_dir(),
            });
        }
        VersionSpec::Marker(m) => {
            plan.push(Action::Deferred {
                what: format!("download and install {} for {}", binaries.join(", "), s.os),
                needs: format!("{} names the version", marker_url(&s.mirror, m)),
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_layout_urls() {
        assert_eq!(
            archive_url("https://dl.k8s.io/release/", KubeVersion::new(1, 20, 2), "windows", "amd64"),
            "https://dl.k8s.io/release/v1.20.2/kubernetes-node-windows-amd64.tar.gz"
        );
        assert_eq!(marker_url("http://m", "latest-1.20"), "http://m/latest-1.20.txt");
    }
}
