//! Checks of the container runtime and the CNI it runs pods with: the runtime answers (over CRI for containerd),
//! the CNI plugins are there, and wkjoin's CNI config is the one the runtime will load.

use super::Check;
use crate::layout::Os;
use crate::preflight::facts::{Endpoint, Facts};
use crate::settings::{Runtime, Settings};

/// The CNI plugins the pod network needs on each OS.
pub fn required_cni_plugins(os: Os) -> &'static [&'static str] {
    match os {
        Os::Linux => &["bridge", "host-local", "portmap"],
        Os::Windows => &crate::fetch::cni_plugins::WINDOWS,
    }
}

pub(super) fn runtime(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "runtime";
    let endpoint = f.runtime_endpoint.clone().unwrap_or_else(|| "(none)".into());
    let start = match (s.os, s.runtime) {
        (Os::Linux, Runtime::Containerd) => "start containerd (`systemctl start containerd`)",
        (Os::Windows, Runtime::Containerd) => "start containerd (`Start-Service containerd`)",
        (Os::Linux, Runtime::Docker) => "start Docker (`systemctl start docker`)",
        (Os::Windows, Runtime::Docker) => "start Docker (`Start-Service docker`)",
    };
    // containerd is asked over CRI: its own answer (or its silence) is the check.
    if let Some(rt) = &s.runtime_facts {
        return match &rt.error {
            None if rt.answered && rt.config_error.is_some() => Check::fail(
                NAME,
                format!(
                    "{} answers, but its config file: {}",
                    rt.endpoint,
                    rt.config_error.as_deref().unwrap_or_default()
                ),
                "make the file readable TOML (containerd reads it at its next start), or give --runtime-config with \
                 the file containerd was started with",
            ),
            None if rt.answered => Check::pass(NAME, rt.describe()),
            reason => Check::fail(
                NAME,
                format!(
                    "{} does not answer over CRI: {}",
                    rt.endpoint,
                    reason.as_deref().unwrap_or("its Status has no CRI plugin config")
                ),
                format!("{start}, or give --runtime-endpoint with the runtime's socket or pipe"),
            ),
        };
    }
    match &f.runtime {
        Some(Endpoint::Reachable) => Check::pass(NAME, format!("{endpoint} answers")),
        Some(Endpoint::Unreachable { reason }) => Check::fail(
            NAME,
            format!("{endpoint}: {reason}"),
            format!("{start}, or give --runtime-endpoint with the runtime's socket or pipe"),
        ),
        Some(Endpoint::Unsupported { reason }) => Check::fail(
            NAME,
            format!("{endpoint}: {reason}"),
            match s.os {
                Os::Linux => "give --runtime-endpoint unix:///path/to/containerd.sock",
                Os::Windows => "give --runtime-endpoint npipe:////./pipe/containerd-containerd",
            },
        ),
        None => Check::skip(NAME, "no runtime endpoint to check"),
    }
}

/// The CNI config extensions the runtime loads (libcni's `ConfFiles`), in file-name order.
const CNI_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// The runtime loads configs from its conf dir in file-name order: one sorting before wkjoin's would win.
pub(super) fn cni_conf(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "cni-conf";
    let ours = crate::start::network::CNI_CONF_FILE;
    let configs: Vec<&String> =
        f.cni_conf_files.iter().filter(|n| CNI_EXTENSIONS.iter().any(|e| n.ends_with(e)) && *n != ours).collect();
    let before: Vec<&str> = configs.iter().filter(|n| n.as_str() < ours).map(|n| n.as_str()).collect();
    let origin = s.origins.cni_conf_dir.as_ref().map(|o| format!(" ({o})")).unwrap_or_default();
    if !before.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{} in {} sort before wkjoin's {ours}: the runtime would use that network for every pod, not wkjoin's",
                before.join(", "),
                f.cni_conf_dir
            ),
            format!(
                "move {} out of {} if it is not in use (wkjoin never removes another tool's file), then run again",
                before.join(", "),
                f.cni_conf_dir
            ),
        );
    }
    if !configs.is_empty() {
        return Check::warn(
            NAME,
            format!(
                "{} in {} sort after wkjoin's {ours}: containerd loads only the first config unless its max_conf_num \
                 says otherwise",
                configs.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
                f.cni_conf_dir
            ),
            "remove the other config if nothing uses it",
        );
    }
    Check::pass(NAME, format!("wkjoin's {ours} goes into the runtime's CNI conf dir {}{origin}", f.cni_conf_dir))
}

pub(super) fn cni_plugins(f: &Facts) -> Check {
    const NAME: &str = "cni-plugins";
    let required = required_cni_plugins(f.os);
    let found = |p: &str| f.cni_plugins_found.iter().any(|x| x == p);
    let ok: Vec<&str> = required.iter().copied().filter(|p| found(p)).collect();
    let missing: Vec<&str> = required.iter().copied().filter(|p| !found(p)).collect();
    if missing.is_empty() {
        return Check::pass(NAME, format!("{} in {}", ok.join(", "), f.cni_bin_dir));
    }
    let fix = match f.os {
        Os::Linux => "install the CNI plugins (Debian/Ubuntu: apt-get install containernetworking-plugins) or give \
                      --cni-bin-dir with the directory that has them"
            .to_string(),
        Os::Windows => format!(
            "run `wkjoin fetch` (it installs win-bridge.exe and host-local.exe from containernetworking/plugins' \
             cni-plugins-windows-amd64-<version>.tgz into {}, the runtime's CNI bin dir), or give --cni-bin-dir",
            f.cni_bin_dir
        ),
    };
    Check::fail(NAME, format!("{} missing from {}", missing.join(", "), f.cni_bin_dir), fix)
}
