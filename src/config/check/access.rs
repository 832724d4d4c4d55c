//! Access reviews of the credentials: what a kubelet needs (SelfSubjectAccessReviews), and what a node should
//! not be able to do (cluster-admin, secrets everywhere, modifying another Node past NodeRestriction).

use super::report::Check;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// What a kubelet needs (the Node authorizer and the system:node rules grant exactly this): pass, or fail naming
/// what is missing.
pub(super) async fn node_access(client: &Client, node: &str) -> Result<Check, kube::Error> {
    let needs: [(&str, &str, Option<&str>, Option<&str>); 8] = [
        ("get", "nodes", None, Some(node)),
        ("list", "nodes", None, None),
        ("watch", "nodes", None, None),
        ("create", "nodes", None, None),
        ("patch", "nodes", None, Some(node)),
        ("patch", "nodes", Some("status"), Some(node)),
        ("list", "pods", None, None),
        ("watch", "pods", None, None),
    ];
    let mut missing = Vec::new();
    for (verb, resource, sub, name) in needs {
        if !access_sub(client, verb, resource, sub, name).await?.0 {
            missing.push(describe(verb, resource, sub, name));
        }
    }
    Ok(if missing.is_empty() {
        Check::pass(
            "node-access",
            format!("can get/list/watch nodes and pods, create node {node} and patch it and its status"),
        )
    } else {
        Check::fail(
            "node-access",
            format!("the credentials cannot {}: a kubelet needs it", missing.join(", ")),
            format!(
                "use node {node}'s credential (CN=system:node:{node}, O=system:nodes) on a cluster with \
                 --authorization-mode=Node,RBAC: `wkjoin config mint --node-name {node} --out <file>`"
            ),
        )
    })
}

pub(super) async fn least_privilege(client: &Client, node: &str) -> Result<Check, kube::Error> {
    const NAME: &str = "least-privilege";
    let mut too_much = Vec::new();
    if access_sub(client, "*", "*", None, None).await?.0 {
        return Ok(Check::warn(
            NAME,
            "the credentials can do anything in the cluster (cluster-admin): too privileged for a node",
            format!(
                "install a node credential instead: `wkjoin config mint --node-name {node} --out <file>` with this \
                 kubeconfig, then `wkjoin config --from <file>`"
            ),
        ));
    }
    let (secrets, reason) = access_sub(client, "list", "secrets", None, None).await?;
    if secrets {
        let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
        too_much.push(format!("list secrets in every namespace{why}"));
    }
    // NodeRestriction is admission, which access reviews do not see: a dry-run patch of another Node shows it.
    let nodes: Api<Node> = Api::all(client.clone());
    let other = nodes
        .list_metadata(&ListParams::default().limit(20))
        .await
        .ok()
        .and_then(|l| l.items.into_iter().filter_map(|n| n.metadata.name).find(|n| n != node));
    if let Some(other) = &other {
        let patch = serde_json::json!({"metadata": {"annotations": {"wkjoin.io/privilege-probe": "dry-run"}}});
        let pp = PatchParams { dry_run: true, ..Default::default() };
        match nodes.patch(other, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => too_much.push(format!("modify another node ({other})")),
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let checked = match &other {
        Some(o) => format!("cannot list secrets cluster-wide nor modify node {o}"),
        None => "cannot list secrets cluster-wide (no other node to try modifying)".to_string(),
    };
    Ok(if too_much.is_empty() {
        Check::pass(NAME, checked)
    } else {
        Check::warn(
            NAME,
            format!("too privileged for a node: can {}", too_much.join(" and ")),
            "give nodes only the Node authorizer's rights (--authorization-mode=Node,RBAC, NodeRestriction admission, no \
             extra bindings to system:nodes or this user)",
        )
    })
}

fn describe(verb: &str, resource: &str, sub: Option<&str>, name: Option<&str>) -> String {
    let res = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    match name {
        Some(n) => format!("{verb} {res} {n}"),
        None => format!("{verb} {res}"),
    }
}

pub(super) async fn access(
    client: &Client,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
) -> Result<bool, kube::Error> {
    access_sub(client, verb, resource, sub, name).await.map(|(a, _)| a)
}

/// A SelfSubjectAccessReview: whether these credentials may do `verb` on `resource`, and the authorizer's reason.
async fn access_sub(
    client: &Client,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
) -> Result<(bool, String), kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_string),
                name: name.map(str::to_string),
                group: if resource == "*" { Some("*".into()) } else { Some(String::new()) },
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let out = api.create(&PostParams::default(), &review).await?;
    let status = out.status.unwrap_or_default();
    Ok((status.allowed, status.reason.unwrap_or_default()))
}
