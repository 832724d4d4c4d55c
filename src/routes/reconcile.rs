//! Runs the routes reconciler: Node list from the API → desired routes → diff against the host's table →
//! apply (or print), once or under a watch.

use crate::host::{self, HostError, RouteTable};
use crate::layout::Os;
use crate::output::{OutputFormat, write_data};
use crate::plan::{Action, NextHop};
use crate::routes::{self, ClusterNode, Route, RouteChange, RouteDiff, RouteOptions, RoutesError};
use crate::settings::Settings;
use crate::state::{State, StateError};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How long a burst of Node changes may settle before one reconcile handles all of them.
const DEBOUNCE: Duration = Duration::from_millis(300);
const WATCH_TIMEOUT_SECS: u32 = 25;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot list Nodes: {0}")]
    ListNodes(kube::Error),
    #[error(transparent)]
    Routes(#[from] RoutesError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("routes are managed on the node itself: this host runs {host}, the settings are for {os}")]
    ForeignOs { os: Os, host: Os },
    #[error("cannot read the Node list from {}: {message} (give the output of `kubectl get nodes -o json`)", path.display())]
    NodesFile { path: std::path::PathBuf, message: String },
    #[error("the Node watch ended: {0}")]
    Watch(String),
}

/// How long a routes pass waits for another wkjoin (a join's Ready wait, at most) to release the root.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// What one pass found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node: String,
    pub nodes_seen: usize,
    pub desired: Vec<Route>,
    pub diff: RouteDiff,
}

fn options(s: &Settings, next_hop: NextHop, api_server: Option<std::net::IpAddr>) -> RouteOptions {
    RouteOptions {
        self_node: s.node_name.clone(),
        os: s.os,
        next_hop,
        cluster_cidr: s.cluster_cidr,
        cluster_cidr_known: !matches!(s.origins.cluster_cidr, None | Some(crate::settings::Origin::Default)),
        service_cidr: s.service_cidr,
        primary_interface: s.interface.clone(),
        pod_interface: (s.os == Os::Windows).then(|| format!("vEthernet ({})", s.network_name)),
        api_server,
    }
}

/// One reconcile pass against `nodes`.
/// `api_server`: its address, routed on-link on Windows as the guide does (None when it is a name).
pub async fn reconcile(
    table: &RouteTable,
    s: &Settings,
    next_hop: NextHop,
    api_server: Option<std::net::IpAddr>,
    nodes: &[ClusterNode],
    dry_run: bool,
) -> Result<Report, ReconcileError> {
    // One wkjoin at a time changes the routes and the state file; the watcher waits for a join to finish.
    let _lock = match dry_run {
        true => None,
        false => Some(host::lock::lock_root_within(Path::new(&s.root_dir), "wkjoin routes", LOCK_WAIT)?),
    };
    let state_path = s.layout().state_file();
    let mut state = State::load(Path::new(&state_path))?.unwrap_or_default();
    let host_net = table.snapshot(&state.routes).await?;
    // Windows keeps the pod vNIC route only if that vNIC exists yet.
    let mut opts = options(s, next_hop, api_server);
    if let Some(pod_if) = &opts.pod_interface
        && !host_net.interfaces.iter().any(|i| &i.name == pod_if)
    {
        opts.pod_interface = None;
    }
    let desired = routes::desired(nodes, &opts, &host_net)?;
    let diff = routes::diff(&desired, &host_net.routes);
    for c in &diff.conflicts {
        tracing::warn!(
            "route {} is wanted but {} ({}) is in the way; wkjoin leaves routes it does not own alone: remove it if it is stale",
            c.desired,
            c.foreign,
            c.origin
        );
    }
    if !dry_run && !diff.changes.is_empty() {
        apply_changes(s, &diff, &mut state, &mut host::Native).await?;
    }
    Ok(Report { node: s.node_name.clone(), nodes_seen: nodes.len(), desired, diff })
}

/// Applies the diff as its plan of route actions, through the executor, recording each route in the state file
/// as soon as its change succeeded: a batch that fails half-way still leaves every route it made owned.
pub async fn apply_changes(
    s: &Settings,
    diff: &RouteDiff,
    state: &mut State,
    host: &mut impl crate::host::Host,
) -> Result<(), ReconcileError> {
    let state_path = s.layout().state_file();
    let plan = routes::changes_plan(diff);
    let mut ctx = crate::apply::Context::default();
    for a in &plan.actions {
        crate::apply::action(plan.step, a, host, &mut crate::cluster::Offline, &mut ctx).await?;
        match a {
            Action::AddRoute { route } => state.routes.push(route.clone()),
            Action::ReplaceRoute { from, to } => {
                state.routes.retain(|x| x != from);
                state.routes.push(to.clone());
            }
            Action::DeleteRoute { route } => state.routes.retain(|x| x != route),
            _ => {}
        }
        state.routes.sort();
        state.routes.dedup();
        state.node_name.get_or_insert_with(|| s.node_name.clone());
        state.save(Path::new(&state_path), host)?;
    }
    Ok(())
}

async fn list_nodes(client: &Client) -> Result<Vec<ClusterNode>, ReconcileError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&Default::default()).await.map_err(ReconcileError::ListNodes)?;
    Ok(list.items.iter().map(routes::from_node).collect())
}

/// The API server's address when the kubeconfig names it by IP (`https://172.30.0.10:6443`).
pub fn api_server_address(cluster_url: &str) -> Option<std::net::IpAddr> {
    let rest = cluster_url.split_once("://").map_or(cluster_url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.parse().ok()
}

fn check_os(s: &Settings) -> Result<(), ReconcileError> {
    if s.os != Os::host() {
        return Err(ReconcileError::ForeignOs { os: s.os, host: Os::host() });
    }
    Ok(())
}

pub async fn once(
    client: &Client,
    s: &Settings,
    next_hop: NextHop,
    api_server: Option<std::net::IpAddr>,
    dry_run: bool,
) -> Result<Report, ReconcileError> {
    check_os(s)?;
    let nodes = list_nodes(client).await?;
    let table = RouteTable::connect()?;
    reconcile(&table, s, next_hop, api_server, &nodes, dry_run).await
}

/// Adds the routes the state file records as wkjoin's that the table lacks: the routes watcher does this
/// when it starts, so routes survive a reboot (IP Helper routes live in the active store only) even before
/// the API server answers. Returns how many were added.
pub async fn restore(table: &RouteTable, s: &Settings) -> Result<usize, ReconcileError> {
    let state = State::load(Path::new(&s.layout().state_file()))?.unwrap_or_default();
    if state.routes.is_empty() {
        return Ok(0);
    }
    let host_net = table.snapshot(&state.routes).await?;
    let missing: Vec<RouteChange> = state
        .routes
        .iter()
        .filter(|r| !host_net.routes.iter().any(|t| &t.route == *r))
        // A route over an interface that is gone (the pod vNIC before HNS recreates it) waits for reconcile.
        .filter(|r| r.interface.as_ref().is_none_or(|i| host_net.interfaces.iter().any(|x| &x.name == i)))
        .map(|r| RouteChange::Add(r.clone()))
        .collect();
    if !missing.is_empty() {
        table.apply(&missing, &host_net.interfaces).await?;
    }
    Ok(missing.len())
}

/// One pass with the Node list read from a file (`kubectl get nodes -o json|yaml`): offline, no API server.
pub async fn once_from_file(
    path: &Path,
    s: &Settings,
    next_hop: NextHop,
    dry_run: bool,
) -> Result<Report, ReconcileError> {
    check_os(s)?;
    let read = |message: String| ReconcileError::NodesFile { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
    // YAML is a superset of JSON; JSON is parsed directly because it is much faster for big clusters.
    #[derive(serde::Deserialize)]
    struct NodeItems {
        items: Vec<Node>,
    }
    // kubectl prints `kind: List` (not NodeList), so only the items are read.
    let list: NodeItems = match serde_json::from_str(&text) {
        Ok(l) => l,
        Err(_) => serde_yaml::from_str(&text).map_err(|e| read(e.to_string()))?,
    };
    let nodes: Vec<ClusterNode> = list.items.iter().map(routes::from_node).collect();
    let table = RouteTable::connect()?;
    reconcile(&table, s, next_hop, None, &nodes, dry_run).await
}

/// `routes --watch --windows-service`: runs `watch` (resolving settings, then the watch) as the SCM service
/// `wkjoin-routes` until the SCM stops it. The SCM gives a service no console, so the log goes to
/// `<log_dir>/wkjoin-routes.log`; an error stops the service with a failure the SCM restarts it after.
pub fn watch_as_service<F, Fut, E>(log_dir: &str, watch: F) -> Result<(), ReconcileError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let log =
        crate::layout::Layout::new(Os::host(), log_dir.to_string()).join(&[&format!("{}.log", super::ROUTES_WATCHER)]);
    let rt = tokio::runtime::Handle::current();
    // The SCM calls the body on a thread of its own: it drives the watch on this process's runtime.
    let body: host::scm::ServiceBody = Box::new(move |stop| {
        rt.block_on(async move {
            tokio::select! {
                r = watch() => r.map_err(|e| e.to_string()),
                _ = stop => Ok(()),
            }
        })
    });
    tokio::task::block_in_place(|| host::scm::run_as_service(super::ROUTES_WATCHER, Some(Path::new(&log)), body))?;
    Ok(())
}

/// Reconciles on every Node change (debounced) until interrupted; the watcher re-lists and backs off across
/// API server restarts, and a failed pass is retried on the next change or after the backoff.
pub async fn watch(
    client: &Client,
    s: &Settings,
    next_hop: NextHop,
    api_server: Option<std::net::IpAddr>,
) -> Result<(), ReconcileError> {
    check_os(s)?;
    let table = RouteTable::connect()?;
    // After a reboot the API server may be unreachable for a while; pods need their routes before that.
    match restore(&table, s).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("restored {n} recorded routes missing from the table (reboot?)"),
        Err(e) => tracing::warn!("could not restore the recorded routes: {e}"),
    }
    let (reader, writer) = reflector::store::<Node>();
    let stream = reflector(
        writer,
        watcher(
            Api::<Node>::all(client.clone()),
            // The server ends each watch before the client's 30 s read timeout would call it a failure.
            watcher::Config::default().timeout(WATCH_TIMEOUT_SECS),
        ),
    )
    .default_backoff()
    .touched_objects();
    let mut stream = std::pin::pin!(stream);
    tracing::info!("watching Nodes; reconciling routes on {} on every change", s.node_name);
    loop {
        match stream.next().await {
            None => return Err(ReconcileError::Watch("the API server closed the stream".into())),
            Some(Err(e)) => {
                tracing::warn!("Node watch: {e}; retrying");
                continue;
            }
            Some(Ok(_)) => {}
        }
        // Let a burst of events (a re-list, several nodes joining) settle into one pass.
        while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, stream.next()).await {}
        let nodes: Vec<ClusterNode> = reader.state().iter().map(|n| routes::from_node(n)).collect();
        match reconcile(&table, s, next_hop, api_server, &nodes, false).await {
            Ok(r) => log_report(&r),
            Err(e) => tracing::error!("reconcile failed: {e}"),
        }
    }
}

fn log_report(r: &Report) {
    let (mut add, mut rep, mut del) = (0, 0, 0);
    for c in &r.diff.changes {
        match c {
            RouteChange::Add(_) => add += 1,
            RouteChange::Replace { .. } => rep += 1,
            RouteChange::Delete(_) => del += 1,
        }
    }
    tracing::info!(
        "routes on {}: {add} added, {rep} replaced, {del} deleted, {} unchanged, {} conflicts ({} nodes)",
        r.node,
        r.diff.unchanged,
        r.diff.conflicts.len(),
        r.nodes_seen
    );
}

pub fn print(r: &Report, format: OutputFormat, dry_run: bool) -> Result<(), std::io::Error> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let plan = routes::changes_plan(&r.diff);
            let verb = if dry_run { "would change" } else { "changed" };
            writeln!(
                out,
                "routes on {} ({} nodes): {} desired, {} already in place, {verb} {}",
                r.node,
                r.nodes_seen,
                r.desired.len(),
                r.diff.unchanged,
                r.diff.changes.len()
            )?;
            for (i, a) in plan.actions.iter().enumerate() {
                writeln!(out, "  {}. {a}", i + 1)?;
            }
            for c in &r.diff.conflicts {
                writeln!(
                    out,
                    "  conflict: {} wanted, but {} ({}) is in the way; left alone",
                    c.desired, c.foreign, c.origin
                )?;
            }
            if dry_run {
                writeln!(out, "dry run: nothing was changed")?;
            }
        }
        f => write_data(&mut out, f, r)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::api_server_address;

    #[test]
    fn the_api_server_address_comes_from_ip_urls_only() {
        assert_eq!(api_server_address("https://172.30.0.10:6443"), Some("172.30.0.10".parse().unwrap()));
        assert_eq!(api_server_address("https://[fd00::10]:6443/"), Some("fd00::10".parse().unwrap()));
        assert_eq!(api_server_address("https://10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(api_server_address("https://api.example.internal:6443"), None);
    }
}
