//! Where wkjoin puts things on a node, for either OS, as plain strings so a Windows plan can be computed
//! (and golden-tested) on Linux.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The operating system a plan is computed for (not necessarily the one wkjoin runs on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Windows,
}

impl Os {
    /// The OS this binary was built for.
    pub const fn host() -> Os {
        if cfg!(windows) { Os::Windows } else { Os::Linux }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
        }
    }

    /// Suffix of executables on this OS (`.exe` on Windows).
    pub fn exe_suffix(self) -> &'static str {
        match self {
            Os::Linux => "",
            Os::Windows => ".exe",
        }
    }

    fn separator(self) -> char {
        match self {
            Os::Linux => '/',
            Os::Windows => '\\',
        }
    }

    /// The default root directory: the guide's `C:\k` on Windows.
    pub fn default_root_dir(self) -> &'static str {
        match self {
            Os::Linux => "/var/lib/wkjoin",
            Os::Windows => "C:\\k",
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OS's separator, except that a Windows layout rooted at a Unix path (Windows binaries fetched on Linux,
/// e.g. to stock a mirror) joins with `/` so its paths work on the host that writes them.
fn separator(os: Os, root: &str) -> char {
    if os == Os::Windows && root.starts_with('/') { '/' } else { os.separator() }
}

/// Paths of everything wkjoin installs under its root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub os: Os,
    pub root: String,
}

impl Layout {
    pub fn new(os: Os, root: impl Into<String>) -> Self {
        let mut root = root.into();
        let sep = separator(os, &root);
        // `C:\k\` and `/var/lib/wkjoin/` name the same root; keep joins free of doubled separators.
        while root.len() > 1 && root.ends_with(sep) && !root.ends_with(":\\") {
            root.pop();
        }
        Layout { os, root }
    }

    /// Joins path components below the root with the OS's separator.
    pub fn join(&self, parts: &[&str]) -> String {
        let sep = separator(self.os, &self.root);
        let mut out = self.root.clone();
        for part in parts {
            if !out.ends_with(sep) {
                out.push(sep);
            }
            out.push_str(part);
        }
        out
    }

    /// Where the Kubernetes binaries go: `C:\k` itself on Windows (as in the guide), `<root>/bin` on Linux.
    pub fn bin_dir(&self) -> String {
        match self.os {
            Os::Windows => self.root.clone(),
            Os::Linux => self.join(&["bin"]),
        }
    }

    /// Where `wkjoin fetch` keeps the binaries an upgrade replaced, for `--rollback`.
    pub fn previous_bin_dir(&self) -> String {
        Layout::new(self.os, self.bin_dir()).join(&["previous"])
    }

    pub fn binary(&self, name: &str) -> String {
        let dir = Layout::new(self.os, self.bin_dir());
        dir.join(&[&format!("{name}{}", self.os.exe_suffix())])
    }

    /// The node's kubeconfig, `C:\k\config` as in the guide.
    pub fn kubeconfig(&self) -> String {
        self.join(&["config"])
    }

    pub fn state_file(&self) -> String {
        self.join(&["wkjoin-state.json"])
    }

    pub fn cache_dir(&self) -> String {
        self.join(&["cache"])
    }

    pub fn log_dir(&self) -> String {
        self.join(&["logs"])
    }

    pub fn cni_conf_dir(&self) -> String {
        self.join(&["cni", "config"])
    }

    /// The container runtime's config file as it was before wkjoin changed it.
    pub fn runtime_config_backup(&self) -> String {
        self.join(&["backup", "containerd-config.toml"])
    }

    pub fn pki_dir(&self) -> String {
        self.join(&["pki"])
    }

    pub fn kubelet_dir(&self) -> String {
        self.join(&["kubelet"])
    }

    pub fn image_dir(&self) -> String {
        self.join(&["pause"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_use_backslashes_and_keep_binaries_in_root() {
        let l = Layout::new(Os::Windows, "C:\\k\\");
        assert_eq!(l.root, "C:\\k");
        assert_eq!(l.binary("kubelet"), "C:\\k\\kubelet.exe");
        assert_eq!(l.kubeconfig(), "C:\\k\\config");
        assert_eq!(l.cni_conf_dir(), "C:\\k\\cni\\config");
    }

    #[test]
    fn linux_paths_put_binaries_under_bin() {
        let l = Layout::new(Os::Linux, "/var/lib/wkjoin/");
        assert_eq!(l.binary("kubelet"), "/var/lib/wkjoin/bin/kubelet");
        assert_eq!(l.state_file(), "/var/lib/wkjoin/wkjoin-state.json");
    }

    #[test]
    fn windows_layout_under_a_unix_root_joins_with_slashes() {
        let l = Layout::new(Os::Windows, "/srv/win-node/");
        assert_eq!(l.binary("kubelet"), "/srv/win-node/kubelet.exe");
        assert_eq!(l.cache_dir(), "/srv/win-node/cache");
    }

    #[test]
    fn drive_root_is_kept() {
        assert_eq!(Layout::new(Os::Windows, "D:\\").join(&["config"]), "D:\\config");
        assert_eq!(Layout::new(Os::Linux, "/").join(&["config"]), "/config");
    }
}
