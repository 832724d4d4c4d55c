//! Leaves nothing behind: the run's namespace is deleted at the end and on Ctrl-C; namespaces of runs that
//! were killed are found by their label and deleted at the start of the next run, their pods force-deleted
//! (a pod on a node whose kubelet is gone stays Terminating forever otherwise).

use super::sample::{LABEL, NAMESPACE_PREFIX, POD_LABEL};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use std::time::Duration;

/// A fresh namespace name: `wkjoin-validate-` and 6 hex digits from the clock and the process id.
pub fn namespace_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    format!("{NAMESPACE_PREFIX}{:06x}", h.finish() & 0xff_ffff)
}

/// Deletes the namespace and, at once, its pods (with their 1 s grace period): the namespace controller would
/// get to them only after seconds, and until then they hold the hostPort the next run needs. NotFound is fine.
pub async fn delete_namespace(client: &Client, ns: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (dp, all) = (DeleteParams::background(), ListParams::default());
    let (ns_deleted, pods_deleted) = tokio::join!(api.delete(ns, &dp), pods.delete_collection(&dp, &all));
    if let Err(e) = pods_deleted {
        tracing::debug!("delete the pods of {ns}: {e}; the namespace controller will");
    }
    match ns_deleted {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes validate namespaces older than `older_than` (or already being deleted) other than `current`, and
/// force-deletes their pods. Returns the namespaces it cleaned.
pub async fn stale(client: &Client, current: &str, older_than: Duration) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    // one list of every run's pods, not one per namespace
    let all_pods: Api<Pod> = Api::all(client.clone());
    let (ns_sel, pod_sel) = (ListParams::default().labels(LABEL), ListParams::default().labels(POD_LABEL));
    let (list, pods) = tokio::try_join!(api.list(&ns_sel), all_pods.list(&pod_sel))?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut cleaned = Vec::new();
    let mut deletes = Vec::new();
    for ns in list {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if name == current || !name.starts_with(NAMESPACE_PREFIX) {
            continue;
        }
        let deleting = ns.metadata.deletion_timestamp.is_some();
        let age = ns.metadata.creation_timestamp.as_ref().map(|t| now.duration_since(t.0).as_secs()).unwrap_or(0);
        if !deleting && age < older_than.as_secs() as i64 {
            continue;
        }
        let left: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(name.as_str()))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if deleting && left.is_empty() {
            continue; // on its way out, holding nothing
        }
        tracing::info!("removing the leftover namespace {name} of an earlier run ({age}s old)");
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), &name);
        for pname in left {
            let (pods_api, name) = (pods_api.clone(), name.clone());
            deletes.push(async move {
                // grace period 0: gone from the API at once, even when its kubelet never confirms
                let force = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
                if let Err(e) = pods_api.delete(&pname, &force).await {
                    tracing::debug!("force-delete {name}/{pname}: {e}");
                }
            });
        }
        if !deleting {
            delete_namespace(client, &name).await?;
        }
        cleaned.push(name);
    }
    futures::future::join_all(deletes).await;
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespace_names_are_valid_and_differ() {
        let a = super::namespace_name();
        assert!(a.starts_with("wkjoin-validate-") && a.len() == 22, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(a, super::namespace_name());
    }
}
