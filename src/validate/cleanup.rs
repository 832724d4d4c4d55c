//! Leaves nothing behind: the run's namespace is deleted at the end and on Ctrl-C; namespaces of runs that
//! were killed are found by their label and deleted at the start of the next run, their pods force-deleted
//! (a pod on a node whose kubelet is gone stays Terminating forever otherwise).

use super::sample::{LABEL, NAMESPACE_PREFIX};
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

/// Deletes the namespace (its pods with a 1 s grace period); NotFound is fine.
pub async fn delete_namespace(client: &Client, ns: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(ns, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes validate namespaces older than `older_than` (or already being deleted) other than `current`, and
/// force-deletes their pods. Returns the namespaces it cleaned.
pub async fn stale(client: &Client, current: &str, older_than: Duration) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api.list(&ListParams::default().labels(LABEL)).await?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut cleaned = Vec::new();
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
        tracing::info!("removing the leftover namespace {name} of an earlier run ({age}s old)");
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
        if let Ok(list) = pods.list(&ListParams::default()).await {
            // grace period 0: gone from the API at once, even when its kubelet never confirms
            let force = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
            let deletes = list.into_iter().map(|p| {
                let (pods, force, name) = (&pods, &force, &name);
                async move {
                    let pname = p.metadata.name.unwrap_or_default();
                    if let Err(e) = pods.delete(&pname, force).await {
                        tracing::debug!("force-delete {name}/{pname}: {e}");
                    }
                }
            });
            futures::future::join_all(deletes).await;
        }
        if !deleting {
            delete_namespace(client, &name).await?;
        }
        cleaned.push(name);
    }
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
