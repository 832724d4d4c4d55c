//! The one executor: runs a plan's actions in order through a [`Host`] (and a [`Cluster`] for the Node waits),
//! stopping at the first failure. Nothing runs that the plan does not list: a value only known mid-way (the pod
//! CIDR) re-plans the rest of the step through the step's own pure planner, and the re-plan is printed and
//! returned with what ran. Actions that carry a whole sub-pipeline (the release download, the routes
//! reconcile, the image import) are executed by their step, which calls [`action`] for the rest.

use crate::cluster::{Cluster, ClusterError};
use crate::host::{CommandOutput, Host, HostError};
use crate::layout::Os;
use crate::plan::{Action, Contents, Plan, Step};
use ipnet::IpNet;
use k8s_openapi::jiff::Timestamp;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{step}: {action}: {source}")]
    Host { step: Step, action: String, source: HostError },
    #[error("{step}: {action}: {source}")]
    Cluster { step: Step, action: String, source: ClusterError },
    #[error("{step}: cannot read the credentials to install from {source_path}: {source}")]
    ReadSource { step: Step, source_path: String, source: std::io::Error },
    #[error("{step}: `{action}` is not supported by this build of wkjoin yet; nothing after it was done")]
    Unsupported { step: Step, action: String },
    #[error("{step}: `{action}` cannot run until {needs}")]
    Deferred { step: Step, action: String, needs: String },
    #[error(
        "this plan is for {plan_os} but this host runs {host_os}: run wkjoin on the {plan_os} node itself (or add --dry-run to only print it)"
    )]
    ForeignOs { plan_os: Os, host_os: Os },
    #[error("{step}: {reason}; nothing of the pod network was created")]
    Replan { step: Step, reason: String },
    #[error(
        "{service} did not come back with sandbox image {image} within {secs}s after `{command}`: {message} (check the runtime's log; `wkjoin reset` restores its original config)"
    )]
    RuntimeRestart { service: String, command: String, image: String, secs: u64, message: String },
    #[error(
        "{step}: no interface holds {address} {secs} s after the HNS network was created: the host is off its network (check the adapter the network uses: Get-NetIPAddress, Get-HnsNetwork; `wkjoin reset` removes the network)"
    )]
    AddressGone { step: Step, address: std::net::IpAddr, secs: u64 },
    #[error(
        "the runtime at {endpoint} does not have image {image} under that name after the import (CRI ImageStatus): {message}; its sandboxes would fail with \"failed to get sandbox image\""
    )]
    NotInRuntime { endpoint: String, image: String, message: String },
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Every action that ran, in order: the plan's, with a re-planned part in place of its `Deferred` action.
    pub executed: Vec<Action>,
    /// How many actions changed the host (an action that found its effect in place changed nothing).
    pub changed: usize,
    /// The pod CIDR an `AwaitPodCidr` action found.
    pub pod_cidr: Option<IpNet>,
    /// HNS networks this plan created (not ones it found in place): what the state file records as wkjoin's.
    pub created_networks: Vec<String>,
}

/// What a step gives the executor beyond the plan.
#[derive(Default)]
pub struct Options<'a> {
    /// The step's pure planner for what a `Deferred` action stands for, once the pod CIDR is known; it refuses a
    /// pod CIDR it cannot trust (cluster data) with the reason.
    pub replan: Option<&'a dyn Fn(IpNet) -> Result<Vec<Action>, String>>,
    /// Print a line as each action that changes something is done (commands run for people, not for tests).
    pub verbose: bool,
}

/// Applies every action of `plan` in order.
pub async fn apply(
    plan: &Plan,
    os: Os,
    host: &mut impl Host,
    cluster: &mut impl Cluster,
    opts: &Options<'_>,
) -> Result<Outcome, ApplyError> {
    let host_os = if host.is_windows() { Os::Windows } else { Os::Linux };
    if os != host_os {
        return Err(ApplyError::ForeignOs { plan_os: os, host_os });
    }
    let mut ctx = Context::default();
    if let Some(node) = plan.actions.iter().find_map(|a| match a {
        Action::AwaitNodeReady { node, .. } => Some(node),
        _ => None,
    }) {
        // The heartbeat before the services (re)start: only a newer Ready counts as this start's.
        ctx.ready_before = cluster.ready_heartbeat(node).await.map_err(cluster_err(plan.step, &plan.actions[0]))?;
    }
    let mut out = Outcome::default();
    for a in &plan.actions {
        let Action::Deferred { what, needs } = a else {
            let changed = action(plan.step, a, host, cluster, &mut ctx).await?;
            if changed && opts.verbose {
                tracing::info!("{a}");
            }
            out.changed += usize::from(changed);
            created(&mut out, a, changed);
            out.executed.push(a.clone());
            continue;
        };
        let (Some(cidr), Some(replan)) = (ctx.pod_cidr, opts.replan) else {
            return Err(ApplyError::Deferred { step: plan.step, action: what.clone(), needs: needs.clone() });
        };
        let more = replan(cidr).map_err(|reason| ApplyError::Replan { step: plan.step, reason })?;
        println!("re-planned with pod CIDR {cidr}: {what}");
        for (i, m) in more.iter().enumerate() {
            println!("  {}. {m}", i + 1);
        }
        for m in more {
            let changed = action(plan.step, &m, host, cluster, &mut ctx).await?;
            out.changed += usize::from(changed);
            created(&mut out, &m, changed);
            out.executed.push(m);
        }
    }
    out.pod_cidr = ctx.pod_cidr;
    Ok(out)
}

fn created(out: &mut Outcome, a: &Action, changed: bool) {
    if let (Action::CreateHnsNetwork { name, .. }, true) = (a, changed) {
        out.created_networks.push(name.clone());
    }
}

/// What earlier actions of the same plan found.
#[derive(Debug, Default)]
pub struct Context {
    pub pod_cidr: Option<IpNet>,
    /// The Node's Ready heartbeat before this plan began.
    pub ready_before: Option<Timestamp>,
}

fn host_err(step: Step, a: &Action) -> impl FnOnce(HostError) -> ApplyError + '_ {
    move |source| match source {
        HostError::Unsupported { .. } => ApplyError::Unsupported { step, action: a.to_string() },
        source => ApplyError::Host { step, action: a.to_string(), source },
    }
}

fn cluster_err(step: Step, a: &Action) -> impl FnOnce(ClusterError) -> ApplyError + '_ {
    move |source| ApplyError::Cluster { step, action: a.to_string(), source }
}

/// Runs one action; returns whether it changed the host. Every action treats "already so" as success.
pub async fn action(
    step: Step,
    a: &Action,
    host: &mut impl Host,
    cluster: &mut impl Cluster,
    ctx: &mut Context,
) -> Result<bool, ApplyError> {
    let he = host_err(step, a);
    tracing::debug!(%step, "{a}");
    match a {
        Action::CreateDir { path } => host.create_dir(Path::new(path)).map_err(he)?,
        Action::WriteFile { path, contents, private } => {
            let bytes = match contents {
                Contents::Text { text } => text.clone().into_bytes(),
                Contents::Credentials { source } => std::fs::read(source).map_err(|e| ApplyError::ReadSource {
                    step,
                    source_path: source.clone(),
                    source: e,
                })?,
                Contents::ClusterCa { kubeconfig } => crate::kube_client::cluster_ca_pem(Path::new(kubeconfig))
                    .map_err(|e| ApplyError::ReadSource { step, source_path: kubeconfig.clone(), source: e })?,
            };
            host.write_file(Path::new(path), &bytes, *private).map_err(he)?;
        }
        Action::RemovePath { path } => host.remove_path(Path::new(path)).map_err(he)?,
        Action::CreateCgroup { path } => host.create_cgroup(path).map_err(he)?,
        Action::InstallSelf { path } => return host.install_self(Path::new(path)).map_err(he),
        Action::Run { program, args, .. } => {
            let out = host.run(program, args).map_err(host_err(step, a))?;
            if out.status != Some(0) {
                return Err(he(HostError::CommandFailed {
                    command: format!("{program} {}", args.join(" ")),
                    status: out.status,
                    stderr: out.stderr,
                }));
            }
        }
        Action::RestartRuntime { service, command, endpoint, sandbox_image, timeout_secs } => {
            restart_runtime(service, command, endpoint, sandbox_image, *timeout_secs, host).await?;
        }
        Action::RestoreRuntimeConfig { file, backup, written_sha256 } => {
            let now = host.read_file(Path::new(file)).map_err(host_err(step, a))?;
            if now.as_deref().map(crate::host::digest_hex).as_deref() != Some(written_sha256.as_str()) {
                tracing::warn!("{file} changed since wkjoin wrote it: left alone");
                return Ok(false);
            }
            match backup {
                Some(b) => {
                    let original = host.read_file(Path::new(b)).map_err(host_err(step, a))?.ok_or_else(|| {
                        he(HostError::Io { op: "read", path: b.into(), source: std::io::ErrorKind::NotFound.into() })
                    })?;
                    // The file kept the original's access when wkjoin wrote it: it keeps it now.
                    let private = host.owner_only(Path::new(file)).unwrap_or(false);
                    host.write_file(Path::new(file), &original, private).map_err(host_err(step, a))?;
                }
                None => host.remove_path(Path::new(file)).map_err(he)?,
            }
        }
        Action::VerifyImage { endpoint, image } => {
            let has = host.runtime_has_image(endpoint, image).await.map_err(|e| ApplyError::NotInRuntime {
                endpoint: endpoint.clone(),
                image: image.clone(),
                message: e.to_string(),
            })?;
            if !has {
                return Err(ApplyError::NotInRuntime {
                    endpoint: endpoint.clone(),
                    image: image.clone(),
                    message: "not found".into(),
                });
            }
            return Ok(false);
        }
        Action::AwaitPodCidr { node, timeout_secs } => {
            let cidr =
                cluster.await_pod_cidr(node, Duration::from_secs(*timeout_secs)).await.map_err(cluster_err(step, a))?;
            println!("node {node} has pod CIDR {cidr}");
            ctx.pod_cidr = Some(cidr);
            return Ok(false);
        }
        Action::AwaitNodeReady { node, timeout_secs } => {
            cluster
                .await_ready(node, ctx.ready_before, Duration::from_secs(*timeout_secs))
                .await
                .map_err(cluster_err(step, a))?;
            println!("node {node} is Ready (heartbeat newer than this start)");
            return Ok(false);
        }
        Action::CreateHnsNetwork { name, definition } => {
            let created = host.create_hns_network(name, definition).map_err(he)?;
            if !created {
                println!("HNS network {name} exists already: kept (pods on it keep their network)");
            }
            return Ok(created);
        }
        Action::AddRoute { route } => {
            host.change_routes(&[crate::host::RouteChange::Add(route.clone())]).await.map_err(he)?
        }
        Action::ReplaceRoute { from, to } => host
            .change_routes(&[crate::host::RouteChange::Replace { from: from.clone(), to: to.clone() }])
            .await
            .map_err(he)?,
        Action::DeleteRoute { route } => host.delete_route(route).await.map_err(he)?,
        Action::InstallService(spec) => return host.install_service(spec).map_err(he),
        Action::StartService { name, restart } => {
            host.start_service(name, *restart).await.map_err(he)?;
            println!("started service {name}");
        }
        Action::StopService { name } => host.stop_service(name).map_err(he)?,
        Action::RemoveService { name } => host.remove_service(name).map_err(he)?,
        Action::CreateHostEndpoint { network, name, address } => {
            return host.create_host_endpoint(network, name, *address).map_err(he);
        }
        Action::EnableForwarding { address } => return host.enable_forwarding(*address).map_err(he),
        Action::RemoveHostEndpoint { name } => return host.remove_host_endpoint(name).map_err(he),
        Action::WaitForAddress { address, timeout_secs } => {
            let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
            loop {
                if let Some(iface) = host.interface_with_address(*address).map_err(host_err(step, a))? {
                    tracing::info!("{address} is on {iface}");
                    return Ok(false);
                }
                if Instant::now() >= deadline {
                    return Err(ApplyError::AddressGone { step, address: *address, secs: *timeout_secs });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Action::AllowFirewallPort { rule, protocol, port } => {
            return host.allow_firewall_port(rule, protocol, *port).map_err(he);
        }
        Action::RemoveFirewallRule { rule } => host.remove_firewall_rule(rule).map_err(he)?,
        Action::StopProcess { pid, program, .. } => host.stop_process(*pid, program.as_deref()).map_err(he)?,
        Action::MarkNodeNotReady { node, kubeconfig } => {
            // Best effort: the node controller marks a silent node NotReady anyway, and a reset must work
            // with the cluster down or the credentials already broken.
            if let Err(e) = cluster.mark_not_ready(node, kubeconfig).await {
                tracing::warn!("{e}; the node controller will mark it NotReady once its heartbeats stop");
            }
        }
        Action::DeleteNode { node, kubeconfig } => {
            cluster.delete_node(node, kubeconfig).await.map_err(cluster_err(step, a))?
        }
        Action::RemoveContainers { address, namespace, ids } => {
            for id in ids {
                // `tasks delete --force` kills a running task; then the container goes. A task whose shim is
                // exiting answers "ttrpc: closed" for a moment: retry, and let the container removal judge.
                for attempt in 0..5 {
                    match ctr_idempotent(host, address, namespace, &["tasks", "delete", "--force", id]) {
                        Ok(()) => break,
                        Err(e) if attempt == 4 => tracing::warn!("{e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                ctr_idempotent(host, address, namespace, &["containers", "delete", id]).map_err(host_err(step, a))?;
            }
        }
        Action::RemoveNetns { path } => {
            host.unmount(path).map_err(host_err(step, a))?;
            host.remove_path(Path::new(path)).map_err(he)?;
        }
        Action::KubeProxyCleanup { program } => match host.run(program, &["--cleanup".to_string()]) {
            Ok(out) if out.status == Some(0) => {}
            Ok(out) => tracing::warn!("{program} --cleanup exited with {:?}: {}", out.status, out.stderr.trim()),
            // A kube-proxy that is gone already has no rules to clean up.
            Err(HostError::Spawn { .. }) => return Ok(false),
            Err(e) => tracing::warn!("{e}"),
        },
        Action::RemoveIptablesChains { program, table, chains } => {
            return remove_chains(host, program, table, chains).map_err(he);
        }
        Action::RemoveLink { name } => host.remove_link(name).await.map_err(he)?,
        Action::RemoveHnsNetwork { name } => host.delete_hns_network(name).map_err(he)?,
        Action::Unmount { path } => host.unmount(path).map_err(he)?,
        Action::Deferred { what, needs } => {
            return Err(ApplyError::Deferred { step, action: what.clone(), needs: needs.clone() });
        }
        Action::FetchRelease { .. }
        | Action::FetchCniPlugins { .. }
        | Action::RollbackRelease { .. }
        | Action::ImportImage { .. }
        | Action::ConfigureRuntime { .. }
        | Action::ReconcileRoutes { .. }
        | Action::Validate { .. } => return Err(ApplyError::Unsupported { step, action: a.to_string() }),
    }
    Ok(true)
}

/// Deletes exactly the rules that jump to `chains`, then flushes and deletes the chains, one `-w` call each:
/// never a whole-table restore, which would race (and undo) whatever another component changed meanwhile.
fn remove_chains(host: &mut impl Host, program: &str, table: &str, chains: &[String]) -> Result<bool, HostError> {
    let ipt = |host: &mut dyn FnMut(&[String]) -> Result<CommandOutput, HostError>, rest: &[&str]| {
        let mut args: Vec<String> = ["-w", "-t", table].map(String::from).to_vec();
        args.extend(rest.iter().map(|r| r.to_string()));
        host(&args)
    };
    let mut run = |args: &[String]| -> Result<CommandOutput, HostError> {
        let out = host.run(program, args)?;
        match out.status {
            Some(0) => Ok(out),
            status => Err(HostError::CommandFailed {
                command: format!("{program} {}", args.join(" ")),
                status,
                stderr: out.stderr,
            }),
        }
    };
    let listed = ipt(&mut run, &["-S"])?.stdout;
    let ours = |c: &str| chains.iter().any(|x| x == c);
    let mut present = Vec::new();
    let mut changed = false;
    for line in listed.lines() {
        let words = iptables_words(line);
        match words.as_slice() {
            [n, chain] if n == "-N" && ours(chain) => present.push(chain.clone()),
            [a, chain, rest @ ..] if a == "-A" && !ours(chain) => {
                let jumps = rest.windows(2).any(|w| (w[0] == "-j" || w[0] == "-g") && ours(&w[1]));
                if jumps {
                    let mut del = vec!["-D", chain.as_str()];
                    del.extend(rest.iter().map(String::as_str));
                    ipt(&mut run, &del)?;
                    changed = true;
                }
            }
            _ => {}
        }
    }
    for verb in ["-F", "-X"] {
        for chain in &present {
            ipt(&mut run, &[verb, chain])?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The words of one `iptables -S` line: split on spaces, double-quoted words (comments) kept whole.
pub fn iptables_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => word.extend(chars.next()),
            '"' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

fn ctr_idempotent(host: &mut impl Host, address: &str, namespace: &str, args: &[&str]) -> Result<(), HostError> {
    let mut a: Vec<String> =
        ["--address", address, "--connect-timeout", "5s", "-n", namespace].map(String::from).to_vec();
    a.extend(args.iter().map(|s| s.to_string()));
    let out = host.run("ctr", &a)?;
    if out.status == Some(0) || out.stderr.contains("not found") {
        return Ok(());
    }
    Err(HostError::CommandFailed { command: format!("ctr {}", a.join(" ")), status: out.status, stderr: out.stderr })
}

/// Runs the restart command, then waits until the runtime answers over CRI with the expected sandbox image.
pub async fn restart_runtime(
    service: &str,
    command: &[String],
    endpoint: &str,
    sandbox_image: &str,
    timeout_secs: u64,
    host: &mut impl Host,
) -> Result<(), ApplyError> {
    let fail = |message: String| ApplyError::RuntimeRestart {
        service: service.into(),
        command: command.join(" "),
        image: sandbox_image.into(),
        secs: timeout_secs,
        message,
    };
    let (program, args) = command.split_first().ok_or_else(|| fail("no restart command".into()))?;
    let out = host.run(program, args).map_err(|e| fail(e.to_string()))?;
    if out.status != Some(0) {
        return Err(fail(format!("it exited with {:?}: {}", out.status, out.stderr.trim())));
    }
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match host.runtime_status(endpoint).await {
            Ok(st) => match crate::runtime::from_status(&st) {
                Ok(info) => match info.sandbox_image {
                    _ if sandbox_image.is_empty() => return Ok(()),
                    Some(f) if f.value == sandbox_image => return Ok(()),
                    Some(f) => last = format!("it reports sandbox image {}", f.value),
                    None => return Ok(()),
                },
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(fail(last))
}
