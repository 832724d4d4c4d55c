//! Checks against the cluster: the API server answers with these credentials, the kubelet's version is within
//! the skew policy, and this host's clock agrees with the API server's.

use super::Check;
use crate::preflight::facts::{Api, Facts};
use crate::version::KubeVersion;

/// Clock skew within this passes (the `Date` header has one-second resolution, plus the round trip).
pub const CLOCK_SKEW_OK_SECS: u64 = 5;
/// Beyond this, freshly issued certificates look not yet valid and tokens expired.
pub const CLOCK_SKEW_FAIL_SECS: u64 = 300;

pub(super) fn api(f: &Facts) -> Check {
    const NAME: &str = "api-server";
    match &f.api {
        Api::NoKubeconfig { reason } => Check::fail(
            NAME,
            format!("no credentials to reach the API server: {reason}"),
            "give --kubeconfig with the node's kubeconfig (or set KUBECONFIG)",
        ),
        Api::Unreachable { server, reason } => Check::fail(
            NAME,
            format!("{}: {reason}", server.as_deref().unwrap_or("the API server")),
            "check the server URL in the kubeconfig, that this host can route to it and that no firewall blocks the port",
        ),
        Api::Reachable { server, version, .. } => Check::pass(
            NAME,
            format!("{} answers, Kubernetes {version}", server.as_deref().unwrap_or("the API server")),
        ),
    }
}

/// How many minor versions a kubelet may be older than the API server (3 from Kubernetes 1.28 on).
pub fn max_kubelet_lag(api: KubeVersion) -> u32 {
    if api.at_least(1, 28) { 3 } else { 2 }
}

pub(super) fn version_skew(f: &Facts) -> Check {
    const NAME: &str = "version-skew";
    let api = match &f.api {
        Api::Reachable { version, .. } => match KubeVersion::find_in(version) {
            Some(v) => v,
            None => return Check::skip(NAME, format!("the API server's version `{version}` is not v1.x.y")),
        },
        _ => return Check::skip(NAME, "the API server's version is unknown"),
    };
    let Some(kubelet) = f.kubelet_version else {
        return Check::skip(NAME, format!("the kubelet version is not known yet; API server {api}"));
    };
    let fix = format!("use --kubernetes-version {api} (the API server's version)");
    let detail = format!("kubelet {kubelet}, API server {api}");
    if kubelet.major != api.major {
        return Check::fail(NAME, format!("{detail}: different major versions"), fix);
    }
    if kubelet.minor > api.minor {
        return Check::fail(NAME, format!("{detail}: the kubelet must not be newer than the API server"), fix);
    }
    let lag = api.minor - kubelet.minor;
    let max = max_kubelet_lag(api);
    if lag > max {
        return Check::fail(
            NAME,
            format!("{detail}: the kubelet may be at most {max} minor versions older than the API server"),
            fix,
        );
    }
    if lag > 0 {
        return Check::pass(NAME, format!("{detail}: {lag} minor version(s) older, within the skew policy"));
    }
    Check::pass(NAME, detail)
}

pub(super) fn clock_skew(f: &Facts) -> Check {
    const NAME: &str = "clock-skew";
    let (date, local) = match &f.api {
        Api::Reachable { date: Some(d), local_time: Some(l), .. } => (*d, *l),
        Api::Reachable { .. } => return Check::skip(NAME, "the API server sent no Date header"),
        _ => return Check::skip(NAME, "the API server is not reachable"),
    };
    let (secs, ahead) = match local.duration_since(date) {
        Ok(d) => (d.as_secs(), true),
        Err(e) => (e.duration().as_secs(), false),
    };
    let detail = format!("this host's clock is {secs}s {} the API server's", if ahead { "ahead of" } else { "behind" });
    let fix = "synchronise the clock (Windows: w32tm /resync; Linux: timedatectl set-ntp true or chronyc makestep)";
    if secs > CLOCK_SKEW_FAIL_SECS {
        Check::fail(NAME, format!("{detail}: certificates and tokens will look invalid"), fix)
    } else if secs > CLOCK_SKEW_OK_SECS {
        Check::warn(NAME, detail, fix)
    } else {
        Check::pass(NAME, format!("within {CLOCK_SKEW_OK_SECS}s of the API server"))
    }
}
