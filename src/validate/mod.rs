//! `wkjoin validate`: the guide's connectivity matrix, automated and explained.
//!
//! matrix (pure cells and commands) → sample (the objects, in a labelled namespace) → wait for pods (one
//! watch) → probe (exec, concurrent, with timeouts and retries) → hints (pure diagnosis) → report (table,
//! JSON, JUnit) → cleanup (always, also on Ctrl-C).

pub mod batch;
pub mod cleanup;
pub mod hints;
pub mod lease;
pub mod local;
pub mod matrix;
pub mod probe;
pub mod report;
pub mod sample;

use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Service};
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use matrix::{Addresses, Cell, Kind, LocalMachine, NodeInfo, NodeOs, Selection, Source, Target};
use report::{CellResult, Report, Summary, Verdict};
use sample::{Images, Role};
use std::collections::BTreeMap;
use std::net::IpAddr;
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

/// This machine, for `--local`: its OS, and the Ready node it is (one of its addresses is that node's InternalIP).
fn local_machine(nodes: &[NodeInfo]) -> LocalMachine {
    let os = match crate::layout::Os::host() {
        crate::layout::Os::Windows => NodeOs::Windows,
        crate::layout::Os::Linux => NodeOs::Linux,
    };
    let node = nodes.iter().find(|n| crate::host::is_local_address(n.ip)).map(|n| n.name.clone());
    LocalMachine { os, node }
}

/// Reads the Ready nodes; notes on the ones left out.
pub fn node_infos(nodes: &[Node]) -> (Vec<NodeInfo>, Vec<String>) {
    let mut ready = Vec::new();
    let mut notes = Vec::new();
    for n in nodes {
        let c = crate::routes::from_node(n);
        let status = n.status.as_ref();
        let is_ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !is_ready {
            notes.push(format!("node {} is not Ready: not validated", c.name));
            continue;
        }
        let Some(ip) = c.internal_ips.iter().find(|i| i.is_ipv4()).or(c.internal_ips.first()).copied() else {
            notes.push(format!("node {} has no InternalIP: not validated", c.name));
            continue;
        };
        let os_name = status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.operating_system.clone())
            .or_else(|| n.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/os").cloned()))
            .unwrap_or_default();
        let os = if os_name == "windows" { NodeOs::Windows } else { NodeOs::Linux };
        let pod_cidr = c.pod_cidrs.iter().find(|n| n.addr().is_ipv4() == ip.is_ipv4()).copied();
        ready.push(NodeInfo { name: c.name, os, ip, pod_cidr });
    }
    ready.sort_by(|a, b| a.name.cmp(&b.name));
    (ready, notes)
}

/// Where a pod got to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PodState {
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
async fn wait_for_pods(
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

/// Retry policy per cell: (max attempts for a network failure, interval, window).
fn retry_policy(cell: &Cell) -> (u32, Duration, Duration) {
    match (cell.kind, &cell.target) {
        // the lab's DNS stand-in picks up a Service within ~3 s; real DNS within a TTL
        (Kind::Dns, _) => (40, Duration::from_millis(500), Duration::from_secs(10)),
        // kube-proxy programs a new Service within its sync period
        (_, Target::Service(_)) => (20, Duration::from_millis(500), Duration::from_secs(6)),
        (Kind::Icmp, _) => (2, Duration::from_millis(200), Duration::from_secs(10)),
        _ => (2, Duration::from_millis(200), Duration::from_secs(10)),
    }
}

/// Whether the probe's output shows the expected answer. DNS: the address after the queried name.
fn answered(kind: Kind, stdout: &str, expect: Option<&str>) -> bool {
    let Some(want) = expect else { return true };
    match kind {
        Kind::Dns => {
            // nslookup: answers follow "Name:"; without one only the server was printed
            let after = match stdout.find("Name:") {
                Some(i) => &stdout[i..],
                None if stdout.contains("Server:") => "",
                None => stdout,
            };
            after.split(|c: char| c.is_whitespace()).any(|tok| tok == want)
        }
        _ => stdout.contains(want),
    }
}

fn failure_reason(cell: &Cell, exit: Option<i32>, stdout: &str, expect: Option<&str>, timeout_secs: u64) -> String {
    match exit {
        Some(0) => format!("answered, but not with {:?}", expect.unwrap_or_default()),
        Some(124 | 143) => format!("no answer within {timeout_secs}s"),
        Some(code) => match cell.kind {
            Kind::Icmp => format!("no echo reply (exit status {code})"),
            Kind::Tcp => format!("no TCP connection to port {} (exit status {code})", matrix::KUBELET_PORT),
            Kind::Dns if stdout.contains("NXDOMAIN") || stdout.contains("can't find") => {
                "the name does not resolve".to_string()
            }
            _ => format!("exit status {code}"),
        },
        None => "the exit status was lost".to_string(),
    }
}

struct Ctx<'a> {
    pods: Api<Pod>,
    nodes: &'a [NodeInfo],
    index: BTreeMap<String, usize>,
    states: BTreeMap<String, PodState>,
    reasons: BTreeMap<String, String>,
    addrs: Addresses,
    opts: &'a Options,
}

impl Ctx<'_> {
    fn pod_name(&self, role: Role, node: &str) -> String {
        sample::name(role, self.index[node])
    }
    fn not_running(&self, role: Role, node: &str) -> Option<String> {
        let name = self.pod_name(role, node);
        match self.states.get(&name) {
            Some(PodState::Running { .. }) => None,
            _ => Some(self.reasons.get(&name).cloned().unwrap_or_else(|| "not running".into())),
        }
    }
}

/// A cell that can be probed: its command and the pod it runs in.
struct Prepared {
    probe: matrix::Probe,
    pod: String,
    container: &'static str,
    /// The source is a Linux pod: its first attempt can share one exec with the pod's other cells.
    batch: bool,
    /// The source is this machine (`--local`): no pod, run here.
    local: bool,
}

/// The cell's result when it needs no probe (known limitation, sample-ready, a source or target that is not
/// running, an unknown address), else what to run where.
fn prepare(ctx: &Ctx<'_>, cell: &Cell) -> Result<Prepared, Box<CellResult>> {
    let cell_ = || cell.clone();
    if let Some(l) = &cell.limitation {
        return Err(Box::new(CellResult::new(cell_(), Verdict::KnownLimitation).with_reason(*l)));
    }
    let tn = cell.target.node().to_string();
    if let Target::Ready(_) = cell.target {
        let name = ctx.pod_name(Role::Web, &tn);
        let mut r = match ctx.states.get(&name) {
            Some(PodState::Running { after, .. }) => {
                let mut r = CellResult::new(cell_(), Verdict::Pass);
                r.latency_ms = Some(after.as_millis() as u64);
                r
            }
            _ => {
                let why = ctx.reasons.get(&name).cloned().unwrap_or_default();
                let mut r = CellResult::new(cell_(), Verdict::Fail)
                    .with_reason(format!("pod {}/{name} on {tn} is not running: {why}", ctx.addrs.namespace));
                if why.contains("NodePorts") || why.contains("OutOfhostPort") {
                    r.hint = Some(format!(
                        "hostPort {} is taken on {tn} by another pod: free it or pass --host-port",
                        ctx.opts.host_port
                    ));
                }
                r.hint = r.hint.or_else(|| os_build_hint(&why, &tn));
                r
            }
        };
        r.command = Some(format!("kubectl -n {} get pod {name} (wait until Running)", ctx.addrs.namespace));
        r.attempts = 1;
        return Err(Box::new(r));
    }
    let src = cell.source.node().unwrap_or_default().to_string();
    let role = if cell.source.on_host() { Role::HostProbe } else { Role::Probe };
    let sample_name = |n: &str| ctx.pod_name(Role::Web, n);
    let Some(probe) = matrix::probe(cell, ctx.nodes, &ctx.addrs, &sample_name) else {
        return Err(Box::new(CellResult::new(cell_(), Verdict::Error).with_reason("no probe command for this cell")));
    };
    let with_cmd = |mut r: CellResult| {
        r.command = Some(probe.display());
        r.expect = probe.expect.clone();
        r
    };
    let local = cell.source == Source::Local;
    if !local && let Some(PodState::Unsupported(why)) = ctx.states.get(&ctx.pod_name(role, &src)) {
        return Err(Box::new(with_cmd(CellResult::new(cell_(), Verdict::KnownLimitation).with_reason(why.clone()))));
    }
    if !local && let Some(why) = ctx.not_running(role, &src) {
        let pod = ctx.pod_name(role, &src);
        let mut r = CellResult::new(cell_(), Verdict::Error).with_reason(format!("probe pod {pod} on {src}: {why}"));
        if why.contains("ImagePull") || why.contains("ErrImageNeverPull") || why.contains("InvalidImageName") {
            r.hint = Some(format!(
                "the probe image is not available to {src}'s runtime and cannot be pulled: import it (containerd: \
                 `ctr -n k8s.io images import`) or pass --probe-image with an image {src} can pull"
            ));
        }
        r.hint = os_build_hint(&why, &src).or(r.hint);
        return Err(Box::new(with_cmd(r)));
    }
    if matches!(cell.target, Target::Pod(_) | Target::HostPort(_) | Target::Service(_) | Target::ServiceName(_))
        && ctx.not_running(Role::Web, &tn).is_some()
    {
        return Err(Box::new(with_cmd(
            CellResult::new(cell_(), Verdict::Skip)
                .with_reason(format!("the web pod on {tn} is not running (see sample-ready)")),
        )));
    }
    if probe.display().contains('<') {
        let why = format!("an address is unknown: {}", probe.display());
        return Err(Box::new(with_cmd(CellResult::new(cell_(), Verdict::Error).with_reason(why))));
    }
    if local {
        return Ok(Prepared { probe, pod: String::new(), container: "", batch: false, local });
    }
    let batch = ctx.nodes.iter().any(|n| n.name == src && n.os == NodeOs::Linux);
    Ok(Prepared { probe, pod: ctx.pod_name(role, &src), container: role.container(), batch, local })
}

/// A Windows image built for another Windows build than the node's: the runtime's words for it.
fn os_build_hint(why: &str, node: &str) -> Option<String> {
    let w = why.to_ascii_lowercase();
    let mismatch = ["operating system does not match", "no matching manifest for windows", "os version"];
    mismatch.iter().any(|m| w.contains(m)).then(|| {
        format!(
            "OS-build mismatch on {node}: the image was built for another Windows build than the node's (process \
             isolation needs the same build); use the tag for {node}'s build ({} in --windows-sample-image and \
             --windows-probe-image picks it) or run the pods with Hyper-V isolation",
            sample::LTSC
        )
    })
}

/// The command of the attempt `elapsed` into the cell's retry window. A Service kube-proxy has not programmed
/// yet swallows the connection: early attempts give up after 2 s (not the probe's 5 s; 2 s still covers the
/// SYN retransmit at 1 s once the rules are in) so the retry comes soon; the last ones get the full timeout.
/// (1 s measured slower: it cut off those retransmits.)
fn attempt_probe(cell: &Cell, probe: &matrix::Probe, elapsed: Duration) -> matrix::Probe {
    let (_, _, window) = retry_policy(cell);
    let early = matches!(cell.target, Target::Service(_)) && elapsed + Duration::from_secs(3) < window;
    if early { probe.with_timeout(2) } else { probe.clone() }
}

/// Every batchable cell's first attempt, one exec per source pod (pods in parallel). Cells whose batch was
/// lost are absent: they run on their own.
async fn first_attempts(
    ctx: &Ctx<'_>,
    cells: &[Cell],
    prepared: &[Result<Prepared, Box<CellResult>>],
) -> BTreeMap<usize, probe::ExecOutput> {
    let mut groups: BTreeMap<(&str, &str), Vec<batch::Item>> = BTreeMap::new();
    for (index, (cell, p)) in cells.iter().zip(prepared).enumerate() {
        if let Ok(p) = p
            && p.batch
        {
            let argv = attempt_probe(cell, &p.probe, Duration::ZERO).argv;
            let fresh = matches!(cell.target, Target::Service(_));
            groups.entry((p.pod.as_str(), p.container)).or_default().push(batch::Item { index, argv, fresh });
        }
    }
    let runs = futures::stream::iter(groups)
        .map(|((pod, container), items)| async move {
            match probe::exec(&ctx.pods, pod, container, &batch::script(&items), ctx.opts.probe_timeout).await {
                Ok(out) => {
                    tracing::debug!("batch of {} probes in {pod}: {} ms", items.len(), out.elapsed.as_millis());
                    batch::parse(&out.stdout)
                }
                Err(e) => {
                    tracing::debug!("batch of {} probes in {pod}: {e}; they run one by one", items.len());
                    BTreeMap::new()
                }
            }
        })
        .buffer_unordered(ctx.opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    runs.into_iter()
        .flatten()
        .map(|(i, o)| {
            let out =
                probe::ExecOutput { exit: Some(o.exit), stdout: o.output, stderr: String::new(), elapsed: o.elapsed };
            (i, out)
        })
        .collect()
}

/// Runs a prepared cell until it passes or its retries are spent; `first` is its first attempt when a batch
/// already ran it.
async fn attempts(ctx: &Ctx<'_>, cell: Cell, p: &Prepared, mut first: Option<probe::ExecOutput>) -> CellResult {
    let with_cmd = |mut r: CellResult| {
        r.command = Some(p.probe.display());
        r.expect = p.probe.expect.clone();
        r
    };
    let (max_net, interval, window) = retry_policy(&cell);
    let started = Instant::now();
    let mut attempts = 0;
    let mut transport_failures = 0;
    loop {
        attempts += 1;
        let res = match first.take() {
            Some(out) => Ok(out),
            None if p.local => local::run(cell.kind, &attempt_probe(&cell, &p.probe, started.elapsed()))
                .await
                .map_err(|e| e.to_string()),
            None => {
                let argv = attempt_probe(&cell, &p.probe, started.elapsed()).argv;
                probe::exec(&ctx.pods, &p.pod, p.container, &argv, ctx.opts.probe_timeout)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let last_chance = started.elapsed() + interval >= window;
        match res {
            Ok(out) if out.exit.is_some() => {
                let expect = p.probe.expect.as_deref();
                let ok = out.exit == Some(0) && answered(cell.kind, &out.stdout, expect);
                if ok || attempts >= max_net || last_chance {
                    let mut r = CellResult::new(cell, if ok { Verdict::Pass } else { Verdict::Fail });
                    if !ok {
                        let secs = ctx.opts.probe_timeout.as_secs().min(5);
                        // local HTTP: the client's own words (refused, unreachable, timed out), not curl's code
                        let native = p.local && r.cell.kind == Kind::Http && out.exit != Some(0);
                        r.reason = Some(if native {
                            out.stderr.trim().to_string()
                        } else {
                            failure_reason(&r.cell, out.exit, &out.stdout, expect, secs)
                        });
                        r.output = if native { out.stdout.clone() } else { out.text() };
                    }
                    r.exit_code = out.exit;
                    r.latency_ms = Some(out.elapsed.as_millis() as u64);
                    r.attempts = attempts;
                    return with_cmd(r);
                }
            }
            other => {
                // transport trouble or a lost exit status: inconclusive, retried a few times
                transport_failures += 1;
                if transport_failures >= 3 || last_chance {
                    let why = match other {
                        Err(e) => e,
                        Ok(_) if p.local => format!("{} ended without an exit status", p.probe.display()),
                        Ok(out) => {
                            format!("exec into {}: the exit status was lost; output: {}", p.pod, out.text().trim())
                        }
                    };
                    let mut r = CellResult::new(cell, Verdict::Error).with_reason(why);
                    r.attempts = attempts;
                    return with_cmd(r);
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Runs cells (each from its first attempt, when a batch ran it), at most `concurrency` at once.
async fn run_cells(
    ctx: &Ctx<'_>,
    prepared: &[Result<Prepared, Box<CellResult>>],
    work: Vec<(usize, Cell, Option<probe::ExecOutput>)>,
) -> Vec<(usize, CellResult)> {
    futures::stream::iter(work)
        .map(|(i, c, first)| async move {
            let r = match &prepared[i] {
                Err(r) => (**r).clone(),
                Ok(p) => attempts(ctx, c, p, first).await,
            };
            (i, r)
        })
        .buffer_unordered(ctx.opts.concurrency.max(1))
        .collect()
        .await
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
    let mut reasons = BTreeMap::new();
    for (name, st) in &states {
        let why = match st {
            PodState::Running { .. } => continue,
            PodState::Broken(w) | PodState::Unsupported(w) => w.clone(),
            PodState::Pending(w) => {
                let ev = last_event(&events, name).await.map(|e| format!("; last warning: {e}")).unwrap_or_default();
                let secs = budgets.get(name).unwrap_or(&opts.ready_timeout).as_secs();
                format!("still Pending after {secs}s ({w}{ev}); is the node's kubelet running?")
            }
        };
        reasons.insert(name.clone(), why);
    }

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
        let prepared: Vec<_> = cells.iter().map(|c| prepare(&ctx, c)).collect();
        // local cells run beside the pods' (batches, then the rest), each side within the concurrency limit
        let is_local = |i: usize| matches!(&prepared[i], Ok(p) if p.local);
        let local_work: Vec<_> = cells.iter().cloned().enumerate().filter(|(i, _)| is_local(*i)).collect();
        let pod_side = async {
            let mut firsts = first_attempts(&ctx, &cells, &prepared).await;
            let work: Vec<_> = cells
                .iter()
                .cloned()
                .enumerate()
                .filter(|(i, _)| !is_local(*i))
                .map(|(i, c)| (i, c, firsts.remove(&i)))
                .collect();
            run_cells(&ctx, &prepared, work).await
        };
        let local_side = run_cells(&ctx, &prepared, local_work.into_iter().map(|(i, c)| (i, c, None)).collect());
        let (mut results, local_results) = tokio::join!(pod_side, local_side);
        results.extend(local_results);
        results.sort_by_key(|(i, _)| *i);
        rounds.push(results.into_iter().map(|(_, r)| r).collect::<Vec<_>>());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answers_are_read_after_the_name() {
        let out =
            "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tweb-0.ns.svc.cluster.local\nAddress: 10.96.0.1\n";
        assert!(answered(Kind::Dns, out, Some("10.96.0.1")));
        assert!(!answered(Kind::Dns, "Server: 10.96.0.1\nAddress: 10.96.0.10:53\n", Some("10.96.0.1")));
        assert!(answered(Kind::Http, "hostname: web-1\n", Some("hostname: web-1")));
        assert!(!answered(Kind::Http, "hostname: web-2\n", Some("hostname: web-1")));
    }

    #[test]
    fn windows_build_mismatches_get_their_hint() {
        let hcs = "CreateContainerError: hcs::CreateComputeSystem web: The container operating system does not \
                   match the host operating system. (mcr.microsoft.com/windows/servercore:ltsc2019)";
        let h = os_build_hint(hcs, "win-1").expect("a hint");
        assert!(h.contains("win-1") && h.contains("{ltsc}"), "{h}");
        let pull = "ErrImagePull: no matching manifest for windows/amd64 10.0.20348 in the manifest list entries";
        assert!(os_build_hint(pull, "win-1").is_some());
        assert_eq!(os_build_hint("ErrImagePull: not found (busybox:1.36)", "worker-1"), None);
    }

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
