//! The cluster side of applying a plan: waiting for the Node's pod CIDR and a fresh Ready, and marking or
//! deleting the Node on reset. [`KubeCluster`] talks to the API server; tests record instead.

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot use the node kubeconfig {path}: {message} (install it with `wkjoin config`, or give --kubeconfig)")]
    Kubeconfig { path: String, message: String },
    #[error("cannot {what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error(
        "node {node} got no pod CIDR within {secs}s: the controller manager must run with --allocate-node-cidrs and --cluster-cidr (or give --pod-cidr){tail}"
    )]
    PodCidrTimeout { node: String, secs: u64, tail: String },
    #[error("node {node} reported no fresh Ready condition within {secs}s{tail}")]
    ReadyTimeout { node: String, secs: u64, tail: String },
    #[error("node {node}'s pod CIDR `{value}` is not a CIDR")]
    BadPodCidr { node: String, value: String },
    #[error("no cluster to {what}: this plan was applied without API access")]
    Offline { what: String },
}

/// The Node operations a plan may ask for.
#[allow(async_fn_in_trait)] // used through generics only
pub trait Cluster {
    /// The heartbeat of the Node's current Ready=True condition (None: not Ready, or no such Node).
    async fn ready_heartbeat(&mut self, node: &str) -> Result<Option<Timestamp>, ClusterError>;
    async fn await_pod_cidr(&mut self, node: &str, timeout: Duration) -> Result<IpNet, ClusterError>;
    /// Waits for a Ready heartbeat newer than `since` (a stale Ready left by an earlier kubelet does not count).
    async fn await_ready(
        &mut self,
        node: &str,
        since: Option<Timestamp>,
        timeout: Duration,
    ) -> Result<(), ClusterError>;
    /// Marks the Node NotReady with the credentials of `kubeconfig`; a missing Node is fine.
    async fn mark_not_ready(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError>;
    /// Deletes the Node with the credentials of `kubeconfig`; a missing Node is fine.
    async fn delete_node(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError>;
}

/// The Node's pod CIDR, once allocated.
pub fn pod_cidr_of(node: Option<&Node>) -> Option<&str> {
    node?.spec.as_ref()?.pod_cidr.as_deref().filter(|c| !c.is_empty())
}

/// The heartbeat of the Node's Ready=True condition.
pub fn ready_heartbeat(node: &Node) -> Option<Timestamp> {
    let conds = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conds.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.last_heartbeat_time.as_ref().map(|t| t.0)
}

/// Ready with a heartbeat newer than the one seen before this start: a stale Ready (left by an earlier kubelet)
/// does not count. Comparing the API server's own timestamps keeps clock skew out of it.
pub fn freshly_ready(node: Option<&Node>, before: Option<Timestamp>) -> bool {
    match (node.and_then(ready_heartbeat), before) {
        (Some(now), Some(before)) => now > before,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The API server, through the node's kubeconfig (or the one an action names).
#[derive(Default)]
pub struct KubeCluster {
    kubeconfig: Option<PathBuf>,
    clients: BTreeMap<String, kube::Client>,
    /// A log whose last lines explain a timeout (the kubelet's).
    log: Option<String>,
}

impl KubeCluster {
    pub fn new(kubeconfig: Option<PathBuf>, log: Option<String>) -> KubeCluster {
        KubeCluster { kubeconfig, clients: BTreeMap::new(), log }
    }

    async fn nodes(&mut self, kubeconfig: Option<&str>) -> Result<Api<Node>, ClusterError> {
        let path = match kubeconfig {
            Some(p) => PathBuf::from(p),
            None => self.kubeconfig.clone().ok_or(ClusterError::Offline { what: "watch the node".into() })?,
        };
        let key = path.display().to_string();
        if let Some(c) = self.clients.get(&key) {
            return Ok(Api::all(c.clone()));
        }
        let opts = crate::kube_client::Options::default();
        let built = crate::kube_client::build(crate::kube_client::Source::File(Path::new(&path)), &opts).await;
        let (client, _) = built.map_err(|e| ClusterError::Kubeconfig { path: key.clone(), message: e.message })?;
        self.clients.insert(key, client.clone());
        Ok(Api::all(client))
    }

    fn tail(&self) -> String {
        self.log.as_deref().map(|l| crate::host::last_lines(l, 10)).unwrap_or_default()
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Cluster for KubeCluster {
    async fn ready_heartbeat(&mut self, node: &str) -> Result<Option<Timestamp>, ClusterError> {
        let api = self.nodes(None).await?;
        let found = api
            .get_opt(node)
            .await
            .map_err(|source| ClusterError::Kube { what: format!("read node {node}"), source })?;
        Ok(found.as_ref().and_then(ready_heartbeat))
    }

    async fn await_pod_cidr(&mut self, node: &str, timeout: Duration) -> Result<IpNet, ClusterError> {
        let api = self.nodes(None).await?;
        let secs = timeout.as_secs();
        eprintln!("waiting up to {secs}s for node {node} to register and be given a pod CIDR ...");
        let cond = |n: Option<&Node>| pod_cidr_of(n).is_some();
        let Ok(found) = tokio::time::timeout(timeout, crate::wait::until(api, node, cond)).await else {
            return Err(ClusterError::PodCidrTimeout { node: node.into(), secs, tail: self.tail() });
        };
        let found = found.map_err(|source| ClusterError::Kube { what: format!("watch node {node}"), source })?;
        let value = pod_cidr_of(found.as_ref()).unwrap_or_default().to_string();
        value.parse().map_err(|_| ClusterError::BadPodCidr { node: node.into(), value })
    }

    async fn await_ready(
        &mut self,
        node: &str,
        since: Option<Timestamp>,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let api = self.nodes(None).await?;
        let secs = timeout.as_secs();
        eprintln!("waiting up to {secs}s for node {node} to report Ready ...");
        let cond = move |n: Option<&Node>| freshly_ready(n, since);
        match tokio::time::timeout(timeout, crate::wait::until(api, node, cond)).await {
            Err(_) => Err(ClusterError::ReadyTimeout { node: node.into(), secs, tail: self.tail() }),
            Ok(Err(source)) => Err(ClusterError::Kube { what: format!("watch node {node}"), source }),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn mark_not_ready(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError> {
        let api = self.nodes(Some(kubeconfig)).await?;
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let patch = serde_json::json!({ "status": { "conditions": [{
            "type": "Ready", "status": "False", "reason": "WkjoinReset",
            "message": "wkjoin reset stopped the kubelet and removed the node's configuration",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}});
        match api.patch_status(node, &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(source) => Err(ClusterError::Kube { what: format!("mark node {node} NotReady"), source }),
        }
    }

    async fn delete_node(&mut self, node: &str, kubeconfig: &str) -> Result<(), ClusterError> {
        let api = self.nodes(Some(kubeconfig)).await?;
        match api.delete(node, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(source) => Err(ClusterError::Kube { what: format!("delete node {node}"), source }),
        }
    }
}

/// No API access: every Node operation refuses (steps whose plans have none).
pub struct Offline;

impl Cluster for Offline {
    async fn ready_heartbeat(&mut self, _node: &str) -> Result<Option<Timestamp>, ClusterError> {
        Err(ClusterError::Offline { what: "read the node".into() })
    }
    async fn await_pod_cidr(&mut self, _node: &str, _t: Duration) -> Result<IpNet, ClusterError> {
        Err(ClusterError::Offline { what: "wait for the pod CIDR".into() })
    }
    async fn await_ready(&mut self, _n: &str, _s: Option<Timestamp>, _t: Duration) -> Result<(), ClusterError> {
        Err(ClusterError::Offline { what: "wait for Ready".into() })
    }
    async fn mark_not_ready(&mut self, _node: &str, _k: &str) -> Result<(), ClusterError> {
        Err(ClusterError::Offline { what: "mark the node NotReady".into() })
    }
    async fn delete_node(&mut self, _node: &str, _k: &str) -> Result<(), ClusterError> {
        Err(ClusterError::Offline { what: "delete the node".into() })
    }
}
