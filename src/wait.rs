//! Waits on one API object that outlast dropped and quiet watches. kube's `await_condition` ends at the first
//! stream error, and a watch that is silent longer than the client's read timeout (30 s) errors: a NotReady
//! node pulling images is silent far longer. Here the watcher re-lists and re-watches with backoff instead, and
//! only the caller's own deadline (`tokio::time::timeout`) ends the wait.

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Server-side watch timeout: below the client's 30 s read timeout, so a quiet watch is closed and renewed by
/// the API server before the client gives up on it.
const WATCH_SECS: u32 = 25;

/// Resolves with the object named `name` (None: it does not exist) as soon as `cond` holds for it. Dropped and
/// quiet watches are renewed; only a refusal (401, 403: no retry can change it) ends the wait early.
pub async fn until<K>(api: Api<K>, name: &str, cond: impl Fn(Option<&K>) -> bool) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}")).timeout(WATCH_SECS);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut seen: Option<K> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(o)) | Ok(Event::InitApply(o)) => {
                if cond(Some(&o)) {
                    return Ok(Some(o));
                }
                seen = Some(o);
            }
            Ok(Event::Delete(_)) => {
                seen = None;
                if cond(None) {
                    return Ok(None);
                }
            }
            Ok(Event::Init) => seen = None,
            Ok(Event::InitDone) => {
                if seen.is_none() && cond(None) {
                    return Ok(None);
                }
            }
            Err(e) => match refusal(e) {
                Ok(e) => return Err(e),
                Err(e) => tracing::debug!("watch of {name} dropped ({e}); watching again"),
            },
        }
    }
    // The backoff stream never ends; should it, the caller's deadline still ends the wait.
    std::future::pending().await
}

/// The API error in a watcher error when it is a refusal of these credentials; else the error back.
fn refusal(e: watcher::Error) -> Result<kube::Error, watcher::Error> {
    let refused = |code: u16| code == 401 || code == 403;
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
            if refused(s.code) =>
        {
            Ok(kube::Error::Api(s))
        }
        watcher::Error::WatchError(s) if refused(s.code) => Ok(kube::Error::Api(s)),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::core::v1::Node;
    use kube::client::Body;
    use std::time::Duration;

    fn node(ready: &str, rv: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "resourceVersion": rv},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        })
    }

    fn ready(n: Option<&Node>) -> bool {
        n.and_then(|n| n.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// The first watch dies (as a quiet one does at the client's read timeout); the wait goes on, and sees the
    /// node turn Ready on a later watch. `await_condition` ended at that first error.
    #[tokio::test]
    async fn a_dropped_watch_is_watched_again_until_the_condition_holds() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut watches = 0;
            let mut lists = 0;
            while let Some((req, send)) = handle.next_request().await {
                let query = req.uri().query().unwrap_or_default().to_string();
                assert!(query.contains("fieldSelector=metadata.name%3Dn1"), "{query}");
                if !query.contains("watch=true") {
                    lists += 1;
                    let list = serde_json::json!({
                        "apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
                        "items": [node("False", "1")]
                    });
                    send.send_response(Response::new(Body::from(serde_json::to_vec(&list).unwrap())));
                    continue;
                }
                watches += 1;
                if watches == 1 {
                    send.send_error(std::io::Error::other("error reading a body from connection"));
                    continue;
                }
                let event = serde_json::json!({"type": "MODIFIED", "object": node("True", "2")});
                send.send_response(Response::new(Body::from(serde_json::to_vec(&event).unwrap())));
                return (lists, watches);
            }
            (lists, watches)
        });
        let nodes: Api<Node> = Api::all(kube::Client::new(service, "default"));
        let got = tokio::time::timeout(Duration::from_secs(30), until(nodes, "n1", ready)).await;
        let node = got.expect("the wait ended at the dropped watch instead of watching again").unwrap();
        assert!(ready(node.as_ref()));
        let (lists, watches) = server.await.unwrap();
        assert!(watches >= 2 && lists >= 1, "lists {lists}, watches {watches}");
    }

    /// An object that never exists is waited on (None is the answer only when the condition asks for it).
    #[tokio::test]
    async fn a_missing_object_satisfies_a_condition_on_none() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                let list = serde_json::json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"}, "items": []});
                send.send_response(Response::new(Body::from(serde_json::to_vec(&list).unwrap())));
            }
        });
        let nodes: Api<Node> = Api::all(kube::Client::new(service, "default"));
        let got =
            tokio::time::timeout(Duration::from_secs(10), until(nodes, "n1", |n: Option<&Node>| n.is_none())).await;
        assert!(got.expect("no answer").unwrap().is_none());
    }

    /// Credentials the API server refuses end the wait at once, with the server's answer: no retry can help.
    #[tokio::test]
    async fn a_refusal_ends_the_wait_with_the_reason() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                let status = serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "message": "nodes is forbidden: User \"system:node:x\" cannot watch resource \"nodes\"",
                    "reason": "Forbidden", "code": 403});
                let mut resp = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
                *resp.status_mut() = http::StatusCode::FORBIDDEN;
                send.send_response(resp);
            }
        });
        let nodes: Api<Node> = Api::all(kube::Client::new(service, "default"));
        let got = tokio::time::timeout(Duration::from_secs(10), until(nodes, "n1", ready)).await;
        let err = got.expect("a refusal was retried until the deadline").unwrap_err().to_string();
        assert!(err.contains("forbidden"), "{err}");
    }
}
