//! The checks that talk to the API server with the credentials: are they accepted, is the kubelet within the
//! version skew policy, may it do what a kubelet does (access reviews), and may it do no more (least privilege).

use super::Options;
use super::access::{access, least_privilege, node_access};
use super::client::client;
use super::report::Check;
use crate::config::source::Resolved;
use crate::version::KubeVersion;

/// Checks that talk to the API server with the credentials.
pub(super) async fn api_checks(r: &Resolved, opts: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let skip_rest = |checks: &mut Vec<Check>, why: &str| {
        for name in ["version-skew", "node-access", "least-privilege"] {
            checks.push(Check::skip(name, format!("skipped: {why}")));
        }
    };
    let client = match client(r, opts).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail("api", format!("cannot make a client: {}", e.message), "fix the kubeconfig"));
            skip_rest(&mut checks, "no client");
            return checks;
        }
    };
    // /version is public; a namespaced read proves the credentials are accepted.
    let info = match client.apiserver_version().await {
        Ok(i) => i,
        Err(e) => {
            checks.push(api_error("api", &r.server, e));
            skip_rest(&mut checks, "the API server did not answer");
            return checks;
        }
    };
    let review = match access(&client, "get", "nodes", None, Some(&opts.node_name)).await {
        Ok(_) => None,
        Err(e) => Some(api_error("api", &r.server, e)),
    };
    if let Some(failed) = review {
        checks.push(failed);
        skip_rest(&mut checks, "the credentials were not accepted");
        return checks;
    }
    checks.push(Check::pass("api", format!("{}: API server {} accepted the credentials", r.server, info.git_version)));

    let api_version = KubeVersion::find_in(&info.git_version);
    checks.push(match (opts.kubelet_version, api_version) {
        (Some(k), Some(a)) => skew(k, a),
        (None, _) => Check::skip("version-skew", "kubelet version not known yet: give --kubernetes-version to check"),
        (_, None) => Check::warn(
            "version-skew",
            format!("cannot read the API server's version from `{}`", info.git_version),
            "check the kubelet version against the API server's by hand",
        ),
    });

    let node = opts.node_name.as_str();
    match node_access(&client, node).await {
        Ok(c) => checks.push(c),
        Err(e) => {
            checks.push(api_error("node-access", &r.server, e));
            return checks;
        }
    }

    checks.push(least_privilege(&client, node).await.unwrap_or_else(|e| api_error("least-privilege", &r.server, e)));
    checks
}

/// The version skew policy: a kubelet may be older than the API server (up to 2 minor versions before
/// Kubernetes 1.28, 3 since), never newer.
pub fn skew(kubelet: KubeVersion, api: KubeVersion) -> Check {
    const NAME: &str = "version-skew";
    let allowed = if api.at_least(1, 28) { 3 } else { 2 };
    if (kubelet.major, kubelet.minor) > (api.major, api.minor) {
        return Check::fail(
            NAME,
            format!("kubelet {kubelet} is newer than the API server {api}: the version skew policy forbids it"),
            format!(
                "install a kubelet of {}.{} or older: --kubernetes-version v{}.{}.x",
                api.major, api.minor, api.major, api.minor
            ),
        );
    }
    if kubelet.major != api.major || api.minor - kubelet.minor > allowed {
        return Check::fail(
            NAME,
            format!("kubelet {kubelet} is more than {allowed} minor versions older than the API server {api}"),
            format!(
                "install a kubelet of {}.{}: --kubernetes-version v{}.{}.x",
                api.major, api.minor, api.major, api.minor
            ),
        );
    }
    Check::pass(NAME, format!("kubelet {kubelet} with API server {api}: within the skew policy"))
}

fn api_error(name: &'static str, server: &str, e: kube::Error) -> Check {
    match &e {
        kube::Error::Api(s) if s.code == 401 => Check::fail(
            name,
            format!("{server}: the API server rejected the credentials (401 Unauthorized)"),
            "the client certificate is not signed by the cluster's CA, has expired, or the token is invalid: mint new \
             credentials (`wkjoin config mint --node-name <node> --out <file>`)",
        ),
        kube::Error::Api(s) if s.code == 403 => Check::fail(
            name,
            format!("{server}: forbidden: {}", s.message),
            "the identity may not even review its own access: use a node credential (CN=system:node:<node>, O=system:nodes)",
        ),
        _ => Check::fail(
            name,
            format!("{server}: {e}"),
            "check that the API server is running and reachable from this node",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::Status;

    #[test]
    fn version_skew_policy() {
        let v = |s: &str| s.parse::<KubeVersion>().unwrap();
        assert_eq!(skew(v("v1.20.2"), v("v1.20.2")).status, Status::Pass);
        assert_eq!(skew(v("v1.18.0"), v("v1.20.2")).status, Status::Pass);
        assert_eq!(skew(v("v1.17.0"), v("v1.20.2")).status, Status::Fail);
        assert_eq!(skew(v("v1.27.0"), v("v1.30.1")).status, Status::Pass);
        let newer = skew(v("v1.21.0"), v("v1.20.2"));
        assert_eq!(newer.status, Status::Fail);
        assert_eq!(
            newer.message,
            "kubelet v1.21.0 is newer than the API server v1.20.2: the version skew policy forbids it"
        );
    }
}
