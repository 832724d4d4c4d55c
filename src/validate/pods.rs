//! The sample's pods as they start: what state each got to (running, still pending, stuck in a state the kubelet
//! will not leave, or not created), one watch until all settle or their budgets run out, and why those not
//! running are not.

use super::ValidateError;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Where a pod got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PodState {
    Pending(String),
    Running {
        ip: Option<IpAddr>,
        after: Duration,
    },
    Broken(String),
    /// Not created: the node cannot run it (its cells are known limitations, not errors).
    Unsupported(String),
}

/// Container states the kubelet will not leave on its own.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

fn pod_state(p: &Pod, after: Duration) -> PodState {
    let Some(st) = p.status.as_ref() else { return PodState::Pending("no status yet".into()) };
    let phase = st.phase.as_deref().unwrap_or("Pending");
    if matches!(phase, "Failed" | "Succeeded") {
        let why = [st.reason.clone(), st.message.clone()].into_iter().flatten().collect::<Vec<_>>().join(": ");
        return PodState::Broken(format!("{phase}: {why}"));
    }
    for cs in st.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let msg = w.message.clone().unwrap_or_default();
            let text = format!("{reason}: {} ({})", msg.trim(), cs.image).replace(":  (", ": (");
            if STUCK.contains(&reason.as_str()) {
                return PodState::Broken(text);
            }
            return PodState::Pending(text);
        }
    }
    let ready = st.container_statuses.as_ref().is_some_and(|v| !v.is_empty() && v.iter().all(|c| c.ready));
    if phase == "Running" && ready {
        return PodState::Running { ip: st.pod_ip.as_deref().and_then(|i| i.parse().ok()), after };
    }
    let cond =
        st.conditions.iter().flatten().find(|c| c.status != "True").map(|c| {
            format!("{} is False{}", c.type_, c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())
        });
    PodState::Pending(format!("{phase}{}", cond.map(|c| format!(", {c}")).unwrap_or_default()))
}

/// One watch over the namespace's pods until every pod runs or is stuck, or its own budget (by the OS of its
/// node: `names` pairs each pod with it) is spent.
pub(super) async fn wait_for_pods(
    pods: &Api<Pod>,
    names: &[(String, Duration)],
) -> Result<BTreeMap<String, PodState>, ValidateError> {
    let started = Instant::now();
    let mut states: BTreeMap<String, PodState> =
        names.iter().map(|(n, _)| (n.clone(), PodState::Pending("not seen yet".into()))).collect();
    let budgets: BTreeMap<&str, Duration> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let budget = budgets.values().max().copied().unwrap_or_default();
    // a pod past its own budget counts as settled (still Pending): a slow Windows pod does not hold up the rest
    let settled = |s: &BTreeMap<String, PodState>| {
        s.iter().all(|(n, v)| !matches!(v, PodState::Pending(_)) || started.elapsed() >= budgets[n.as_str()])
    };
    // The server ends each watch before the client's 30 s read timeout; a broken watch is resumed (the
    // deadline bounds the wait), since pods that start slowly send no events for a while.
    let mut stream =
        watcher(pods.clone(), watcher::Config::default().timeout(25)).default_backoff().applied_objects().boxed();
    let mut last_report = 0;
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    while !settled(&states) {
        tokio::select! {
            next = stream.try_next() => match next {
                Ok(Some(p)) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if let Some(slot) = states.get_mut(&name) {
                        *slot = pod_state(&p, started.elapsed());
                    }
                    let running = states.values().filter(|v| matches!(v, PodState::Running { .. })).count();
                    if running != last_report {
                        last_report = running;
                        tracing::info!("pods running: {running}/{}", states.len());
                    }
                }
                Ok(None) => return Err(ValidateError::Watch("the stream ended".into())),
                Err(e) => tracing::debug!("pod watch: {e}; resuming"),
            },
            _ = &mut deadline => break,
            // wakes the loop when a shorter budget runs out
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    Ok(states)
}

/// The last event about a pod (why it is Pending), if any.
async fn last_event(events: &Api<Event>, pod: &str) -> Option<String> {
    let lp = ListParams::default().fields(&format!("involvedObject.kind=Pod,involvedObject.name={pod}"));
    let list = events.list(&lp).await.ok()?;
    let e = list.items.into_iter().rfind(|e| e.type_.as_deref() == Some("Warning"))?;
    Some(format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default().trim()))
}

/// Why each pod that is not running is not, for the cells that need it: its own state, and for a pending pod
/// its last warning event and the budget it had.
pub(super) async fn reasons(
    events: &Api<Event>,
    states: &BTreeMap<String, PodState>,
    budgets: &BTreeMap<String, Duration>,
    default_budget: Duration,
) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for (name, st) in states {
        let why = match st {
            PodState::Running { .. } => continue,
            PodState::Broken(w) | PodState::Unsupported(w) => w.clone(),
            PodState::Pending(w) => {
                let ev = last_event(events, name).await.map(|e| format!("; last warning: {e}")).unwrap_or_default();
                let secs = budgets.get(name).unwrap_or(&default_budget).as_secs();
                format!("still Pending after {secs}s ({w}{ev}); is the node's kubelet running?")
            }
        };
        reasons.insert(name.clone(), why);
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_states_tell_stuck_from_pending() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "probe", "image": "wkjoin.local/missing:1.0", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "failed to resolve reference"}}
            }]}
        }))
        .unwrap();
        assert_eq!(
            pod_state(&p, Duration::ZERO),
            PodState::Broken("ErrImagePull: failed to resolve reference (wkjoin.local/missing:1.0)".into())
        );
        let pending: Pod = serde_json::from_value(serde_json::json!({"status": {"phase": "Pending"}})).unwrap();
        assert!(matches!(pod_state(&pending, Duration::ZERO), PodState::Pending(_)));
    }
}
