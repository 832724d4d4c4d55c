//! The CNI plugins a Windows node's pod network runs (`win-bridge.exe` with `host-local.exe` IPAM), from
//! containernetworking/plugins' Windows release archive: which release, and where it is.

use crate::settings::Settings;
use crate::state::State;
use std::path::Path;

/// What a Windows pod network needs: wkjoin's L2Bridge/L2Tunnel network is win-bridge with host-local IPAM.
pub const WINDOWS: [&str; 2] = ["win-bridge.exe", "host-local.exe"];
use crate::version::{KubeVersion, VersionSpec};

/// The release pinned for a Kubernetes version. Up to 1.26 it is v1.1.1, the release whose win-bridge and
/// host-local code this project checks its CNI config against (Debian's source of it, tests/upstream.rs); later
/// Kubernetes gets v1.5.1, of containerd 1.7's time, with the same win-bridge v2 (HCN) config.
pub fn pinned(k: KubeVersion) -> &'static str {
    if k.at_least(1, 27) { "v1.5.1" } else { "v1.1.1" }
}

/// The release to install: `--cni-plugins-version`, else the pin for the Kubernetes version; `None` while the
/// Kubernetes version is still a marker (`stable`), which the fetch resolves and then re-plans.
pub fn version(s: &Settings) -> Option<String> {
    s.cni_plugins_version.clone().or_else(|| match &s.kubernetes_version {
        VersionSpec::Exact(k) => Some(pinned(*k).to_string()),
        VersionSpec::Marker(_) => None,
    })
}

/// `{mirror}/{version}/cni-plugins-windows-{arch}-{version}.tgz`, GitHub's release layout.
pub fn archive_url(mirror: &str, version: &str, arch: &str) -> String {
    format!("{}/{version}/cni-plugins-windows-{arch}-{version}.tgz", mirror.trim_end_matches('/'))
}

/// The plugins in `bin_dir` that wkjoin did not install (no record of them): they are left alone.
pub fn not_ours(names: &[String], bin_dir: &Path, state: &State) -> Vec<String> {
    let recorded = |p: &Path| state.cni_plugins.iter().flat_map(|r| &r.files).any(|f| Path::new(&f.path) == p);
    names
        .iter()
        .map(|n| bin_dir.join(n))
        .filter(|p| p.exists() && !recorded(p))
        .map(|p| p.display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_layout_and_pins() {
        assert_eq!(
            archive_url("https://github.com/containernetworking/plugins/releases/download/", "v1.1.1", "amd64"),
            "https://github.com/containernetworking/plugins/releases/download/v1.1.1/cni-plugins-windows-amd64-v1.1.1.tgz"
        );
        assert_eq!(pinned(KubeVersion::new(1, 20, 2)), "v1.1.1");
        assert_eq!(pinned(KubeVersion::new(1, 26, 9)), "v1.1.1");
        assert_eq!(pinned(KubeVersion::new(1, 27, 0)), "v1.5.1");
    }
}
