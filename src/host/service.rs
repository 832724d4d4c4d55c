//! A long-running service as the service managers (SCM, systemd, wkjoin's supervisor) need it: program,
//! arguments, environment, dependencies, log file and restart policy.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a service is restarted when it exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Restart {
    pub delay_secs: u64,
    pub max_delay_secs: u64,
}

/// A long-running node service (kubelet, kube-proxy): a Windows SCM service, a systemd unit, or a process
/// under `wkjoin start --foreground`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceSpec {
    pub name: String,
    pub description: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub log_file: String,
    pub restart: Restart,
}

/// The delay before restart number `failures` (1 = first): doubling from the spec's delay up to its maximum.
pub fn restart_delay(restart: &Restart, failures: u32) -> Duration {
    let factor = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(restart.delay_secs.saturating_mul(factor).min(restart.max_delay_secs.max(restart.delay_secs)))
}
