//! One validate at a time per cluster: every run's sample pods take the same hostPort on every node, so a
//! second run would see its pods rejected. A Lease (kube-system/wkjoin-validate) serialises runs; a holder
//! that died is recognised by its expired renew time.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::{Duration, Instant};

pub const NAME: &str = "wkjoin-validate";
pub const NAMESPACE: &str = "kube-system";
const DURATION_SECS: i32 = 60;

fn lease(holder: &str, resource_version: Option<String>) -> Lease {
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut l: Lease = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "wkjoin"}},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": DURATION_SECS}
    }))
    .expect("valid Lease");
    if let Some(spec) = l.spec.as_mut() {
        spec.acquire_time = Some(MicroTime(now));
        spec.renew_time = Some(MicroTime(now));
    }
    l.metadata.resource_version = resource_version;
    l
}

fn expired(l: &Lease) -> bool {
    let Some(spec) = &l.spec else { return true };
    let (Some(renew), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else { return true };
    k8s_openapi::jiff::Timestamp::now().duration_since(renew.0).as_secs() > i64::from(secs)
}

/// Takes the Lease for `holder`, waiting up to `budget` for another run to finish. Returns who held it when
/// the budget ran out.
pub async fn acquire(client: &Client, holder: &str, budget: Duration) -> Result<(), Result<String, kube::Error>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let mut told = false;
    loop {
        match api.create(&PostParams::default(), &lease(holder, None)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Err(e)),
        }
        let current = match api.get_opt(NAME).await.map_err(Err)? {
            Some(l) => l,
            None => continue,
        };
        let other = current.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
        if other == holder || expired(&current) {
            match api
                .replace(NAME, &PostParams::default(), &lease(holder, current.metadata.resource_version.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(Err(e)),
            }
        }
        if started.elapsed() >= budget {
            return Err(Ok(other));
        }
        if !told {
            tracing::info!("another validate ({other}) is running on this cluster; waiting for it to finish");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Keeps the Lease fresh while the run lasts (call in a task that is dropped at the end).
pub async fn renew(client: Client, holder: String) {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    loop {
        tokio::time::sleep(Duration::from_secs(DURATION_SECS as u64 / 3)).await;
        if let Ok(Some(l)) = api.get_opt(NAME).await
            && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder.as_str())
        {
            let _ =
                api.replace(NAME, &PostParams::default(), &lease(&holder, l.metadata.resource_version.clone())).await;
        }
    }
}

/// Gives the Lease up, if it is still ours.
pub async fn release(client: &Client, holder: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    if let Ok(Some(l)) = api.get_opt(NAME).await
        && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder)
    {
        let dp = DeleteParams {
            preconditions: l
                .metadata
                .resource_version
                .map(|rv| kube::api::Preconditions { resource_version: Some(rv), uid: None }),
            ..Default::default()
        };
        let _ = api.delete(NAME, &dp).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_leases_are_held_and_old_ones_expire() {
        let l = lease("a", None);
        assert!(!expired(&l));
        let mut old = l.clone();
        let past = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(61);
        old.spec.as_mut().unwrap().renew_time = Some(MicroTime(past));
        assert!(expired(&old));
    }
}
