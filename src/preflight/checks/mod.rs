//! The checks: a pure function from observed facts and settings to pass/warn/fail/skip, each with the fix.
//!
//! The checks come in families (host: the machine and its OS; runtime: the container runtime and CNI; network:
//! ports, ranges, forwarding and the network's name; cluster: the API server, version and clock skew); this
//! module evaluates them in one stable order.

mod cluster;
mod host;
mod network;
mod runtime;

pub use crate::config::check::Status;
pub use cluster::{CLOCK_SKEW_FAIL_SECS, CLOCK_SKEW_OK_SECS, max_kubelet_lag};
pub use host::{MIN_WINDOWS_BUILD, disk_thresholds, hyperv_host_commands};
pub use network::PORTS;
pub use runtime::required_cni_plugins;

use super::facts::Facts;
use crate::layout::Os;
use crate::settings::Settings;
use serde::Serialize;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a warn or fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }
    fn skip(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Skip, detail: detail.into(), fix: None }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Choices that change what is required, beyond the node settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Pods will run with Hyper-V isolation: the Hyper-V feature is required.
    pub hyperv_isolation: bool,
}

/// Every check, in a stable order.
pub fn evaluate(f: &Facts, s: &Settings, o: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    if f.os == Os::Windows {
        out.push(host::windows_build(f));
        out.push(host::windows_edition(f));
        out.push(host::containers_feature(f));
        out.push(host::hyperv_feature(f, o));
        out.push(host::hyperv_guest(f, s));
    }
    out.push(runtime::runtime(f, s));
    for (port, service) in PORTS {
        out.push(network::port_check(f, port, service));
    }
    out.push(network::networks(s));
    if f.os == Os::Linux {
        out.extend(network::sysctls(f));
    }
    out.push(runtime::cni_plugins(f));
    out.push(runtime::cni_conf(f, s));
    out.push(host::disk(f, s));
    out.push(cluster::api(f));
    out.push(cluster::version_skew(f));
    out.push(cluster::clock_skew(f));
    out.push(network::network_name(f, s));
    out
}

/// True when any check failed: the command then exits with VALIDATION_FAILED.
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

#[cfg(test)]
mod tests;
