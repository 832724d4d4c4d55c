//! `wkjoin validate`: the guide's connectivity matrix, automated and explained.
//!
//! matrix (pure cells and commands) → sample (the objects, in a labelled namespace) → wait for pods (one
//! watch) → probe (exec, concurrent, with timeouts and retries) → hints (pure diagnosis) → report (table,
//! JSON, JUnit) → cleanup (always, also on Ctrl-C).
//!
//! This module runs those steps in order (`run`, and `command` around it with the Lease and the cleanup); the
//! pieces are: nodes (which nodes), pods (where the sample's pods got to), prepare (each cell's command or its
//! result without a probe) and attempts (batched first attempts, retries, reading the answers).

mod attempts;
pub mod batch;
pub mod cleanup;
pub mod hints;
pub mod lease;
pub mod local;
pub mod matrix;
mod nodes;
mod pods;
mod prepare;
pub mod probe;
pub mod report;
pub mod sample;

pub use nodes::node_infos;

use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Service};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use matrix::{Addresses, NodeOs, Selection};
use nodes::local_machine;
use pods::{PodState, wait_for_pods};
use prepare::Ctx;
use report::{Report, Summary};
use sample::{Images, Role};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub fn plan(s: &Settings) -> Plan {
    let mut plan = Plan::new(Step::Validate, "prove node, pod and service networking");
    plan.push(Action::Validate { node: s.node_name.clone() });
    plan
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot list Nodes: {0}")]
    ListNodes(#[source] kube::Error),
    #[error("node {node} is not a Ready node of this cluster; Ready nodes: {ready}")]
    NodeNotReady { node: String, ready: String },
    #[error("no Ready node with an InternalIP to validate ({0}); join a node first")]
    NoNodes(String),
    #[error("cannot create {what} in namespace {namespace}: {source} (the admin kubeconfig is needed)")]
    Create { what: String, namespace: String, source: kube::Error },
    #[error(
        "another wkjoin validate ({holder}) still runs on this cluster after {secs}s; runs share the \
             hostPort, so they take turns (Lease {}/{})",
        lease::NAMESPACE,
        lease::NAME
    )]
    Busy { holder: String, secs: u64 },
    #[error("cannot take the Lease kube-system/wkjoin-validate: {0}")]
    Lease(#[source] kube::Error),
    #[error("the watch on the validation pods failed: {0}")]
    Watch(String),
    #[error("cannot write the JUnit report {path}: {source}")]
    Junit { path: String, source: std::io::Error },
}

/// Everything a run needs besides the client.
#[derive(Debug, Clone)]
pub struct Options {
    pub selection: Selection,
    pub images: Images,
    /// How long pods may take to start.
    pub ready_timeout: Duration,
    /// The same for pods on Windows nodes.
    pub windows_ready_timeout: Duration,
    /// How long one probe may take (its exec included).
    pub probe_timeout: Duration,
    pub concurrency: usize,
    pub host_port: u16,
    pub domain: String,
    pub keep: bool,
    pub stale_after: Duration,
    /// Run the probes this many times in one setup (`--repeat`); cells that pass only sometimes are flaky.
    pub repeat: u32,
    /// Also probe from the machine running wkjoin (`--local`).
    pub local: bool,
}

/// One whole run in namespace `ns` (created here; deleting it is the caller's job).
pub async fn run(client: &Client, opts: &Options, ns: &str) -> Result<Report, ValidateError> {
    let started = Instant::now();
    let node_list =
        Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(ValidateError::ListNodes)?;
    let (nodes, mut notes) = node_infos(&node_list.items);
    if nodes.is_empty() {
        return Err(ValidateError::NoNodes(notes.join("; ")));
    }
    if let Some(f) = &opts.selection.focus
        && !nodes.iter().any(|n| &n.name == f)
    {
        let ready = nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(ValidateError::NodeNotReady { node: f.clone(), ready });
    }
    tracing::debug!("{} nodes to validate", nodes.len());
    let mut selection = opts.selection.clone();
    if opts.local {
        let me = local_machine(&nodes);
        match &me.node {
            Some(n) => tracing::info!("--local: this machine is node {n}"),
            None => tracing::info!("--local: this machine is not a Ready node (off-cluster)"),
        }
        selection.local = Some(me);
    }
    let cells = matrix::matrix(&nodes, &selection);
    let index: BTreeMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();

    // Stale namespaces from killed runs go before this run's pods: their sample pods hold the hostPort on every
    // node. Their pods are force-deleted, and the kubelet sees those deletions before this run's pods (one
    // ordered watch). The namespace and the Services need no such wait.
    let create = |what: &str, source| ValidateError::Create { what: what.into(), namespace: ns.to_string(), source };
    let pp = PostParams::default();
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let namespace_and_services = async {
        Api::<Namespace>::all(client.clone())
            .create(&pp, &sample::namespace(ns))
            .await
            .map_err(|e| create("the namespace", e))?;
        let svc_futs = nodes.iter().enumerate().map(|(i, n)| {
            let (svcs, pp) = (&svcs, &pp);
            async move { svcs.create(pp, &sample::service(i)).await.map(|s| (n.name.clone(), s)) }
        });
        futures::future::try_join_all(svc_futs).await.map_err(|e| create("a Service", e))
    };
    let (cleaned, services) = tokio::join!(cleanup::stale(client, ns, opts.stale_after), namespace_and_services);
    match cleaned {
        Ok(cleaned) if !cleaned.is_empty() => {
            notes.push(format!("removed leftover namespaces: {}", cleaned.join(", ")))
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot clean up earlier runs' namespaces: {e}"),
    }
    let services = services?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // What each node says of itself (status.nodeInfo): a Windows node's build picks its images (a node no image
    // fits gets no pods, its reason instead); its kubelet and runtime whether it can run the host probe pod
    let mut builds: BTreeMap<String, Option<u32>> = BTreeMap::new();
    let mut unstartable = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let node = node_list.items.iter().find(|k| k.metadata.name.as_deref() == Some(n.name.as_str()));
        let info = node.and_then(|k| k.status.as_ref()?.node_info.as_ref());
        builds.insert(n.name.clone(), info.and_then(|i| sample::windows_build(&i.kernel_version)));
        let versions = info.map(|i| (i.kubelet_version.as_str(), i.container_runtime_version.as_str()));
        if let Some(why) = sample::host_probe_unsupported(n, versions) {
            unstartable.insert(sample::name(Role::HostProbe, i), PodState::Unsupported(why));
        }
    }
    let mut names = Vec::new();
    // The web pods go first: kube-proxy programs their Services only after they are Ready, at most once a
    // second, which is the longest wait of a run; the probe pods start meanwhile.
    for roles in [&[Role::Web][..], &[Role::Probe, Role::HostProbe]] {
        let mut creates = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            for &role in roles {
                if unstartable.contains_key(&sample::name(role, i)) {
                    continue;
                }
                let images = match opts.images.for_node(n.os, builds.get(&n.name).copied().flatten()) {
                    Ok(images) => images,
                    Err(why) => {
                        unstartable.insert(sample::name(role, i), PodState::Broken(format!("not created: {why}")));
                        continue;
                    }
                };
                let pod = sample::pod(role, i, n, &images, opts.host_port);
                let budget = if n.os == NodeOs::Windows { opts.windows_ready_timeout } else { opts.ready_timeout };
                names.push((sample::name(role, i), budget));
                let (pods, pp) = (&pods, &pp);
                creates.push(async move { pods.create(pp, &pod).await.map(|_| ()) });
            }
        }
        for r in futures::future::join_all(creates).await {
            r.map_err(|e| create("a pod", e))?;
        }
    }
    tracing::info!(
        "namespace {ns}: {} pods and {} Services on {} nodes; waiting for the pods",
        names.len(),
        services.len(),
        nodes.len()
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut states = wait_for_pods(&pods, &names).await?;
    let budgets: BTreeMap<String, Duration> = names.into_iter().collect();
    states.extend(unstartable);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let reasons = pods::reasons(&events, &states, &budgets, opts.ready_timeout).await;

    let mut addrs = Addresses {
        namespace: ns.to_string(),
        domain: opts.domain.clone(),
        host_port: opts.host_port,
        local_os: selection.local.as_ref().map(|l| l.os).unwrap_or_default(),
        ..Default::default()
    };
    for (node, svc) in &services {
        if let Some(ip) = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).and_then(|i| i.parse().ok()) {
            addrs.cluster_ips.insert(node.clone(), ip);
        }
        addrs.service_names.insert(node.clone(), svc.metadata.name.clone().unwrap_or_default());
    }
    for n in &nodes {
        if let Some(PodState::Running { ip: Some(ip), .. }) = states.get(&sample::name(Role::Web, index[&n.name])) {
            addrs.pod_ips.insert(n.name.clone(), *ip);
        }
    }
    let ctx = Ctx { pods, nodes: &nodes, index, states, reasons, addrs, opts };
    let repeat = opts.repeat.max(1);
    let mut rounds = Vec::new();
    for round in 1..=repeat {
        if repeat > 1 {
            tracing::info!("round {round}/{repeat}: running {} probes", cells.len());
        } else {
            tracing::info!("running {} probes", cells.len());
        }
        rounds.push(attempts::round(&ctx, &cells).await);
    }
    let (mut cells, flaky) = report::combine(rounds);
    let hints = hints::diagnose(&mut cells, &nodes, selection.local.as_ref());
    Ok(Report {
        namespace: ns.to_string(),
        kept: opts.keep,
        nodes,
        not_validated: notes,
        duration_ms: started.elapsed().as_millis() as u64,
        summary: Summary::of(&cells),
        cells,
        hints,
        repeat,
        flaky,
    })
}

/// What `wkjoin validate` prints and returns: the report, written as asked, and whether it passed.
pub async fn command(
    client: &Client,
    opts: &Options,
    junit: Option<&std::path::Path>,
) -> Result<Option<Report>, ValidateError> {
    let ns = cleanup::namespace_name();
    let guarded = async {
        lease::acquire(client, &ns, opts.ready_timeout).await.map_err(|e| match e {
            Ok(holder) => ValidateError::Busy { holder, secs: opts.ready_timeout.as_secs() },
            Err(e) => ValidateError::Lease(e),
        })?;
        tracing::debug!("lease taken");
        let renewal = tokio::spawn(lease::renew(client.clone(), ns.clone()));
        let r = run(client, opts, &ns).await;
        renewal.abort();
        r
    };
    let outcome = tokio::select! {
        r = guarded => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    tracing::debug!("run done; cleaning up");
    let delete = async {
        if !opts.keep || outcome.is_none() {
            tokio::select! {
                r = cleanup::delete_namespace(client, &ns) => if let Err(e) = r {
                    tracing::warn!("cannot delete namespace {ns}: {e}; delete it with `kubectl delete namespace {ns}`");
                },
                _ = tokio::signal::ctrl_c() => tracing::warn!("interrupted again: namespace {ns} is left; the next run removes it"),
            }
        } else {
            tracing::info!("keeping namespace {ns} (--keep)");
        }
    };
    // (the next run may start while these pods terminate: it force-deletes whatever they still hold)
    tokio::join!(delete, lease::release(client, &ns));
    tracing::debug!("cleaned up");
    let Some(result) = outcome else { return Ok(None) };
    let report = result?;
    if let Some(path) = junit {
        std::fs::write(path, report::render_junit(&report))
            .map_err(|source| ValidateError::Junit { path: path.display().to_string(), source })?;
    }
    Ok(Some(report))
}
