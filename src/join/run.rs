//! `wkjoin join` for real: after preflight, every step's printed plan is applied in pipeline order, each
//! idempotent and recorded in the state file as it completes, so a failed or killed join is resumed by running
//! it again. A step whose values are only known as it runs (the release a marker names, the routes the Node
//! list asks for, the installed kubelet's flags) prints its re-plan before applying it.

use crate::config::{self, ConfigError};
use crate::fetch::progress::Progress;
use crate::fetch::{self, FetchError, Outcome as FetchOutcome};
use crate::host;
use crate::output::{OutputFormat, exit};
use crate::pause::{self, ImageError};
use crate::plan::{Action, Plan, Step};
use crate::routes::reconcile::{self, ReconcileError};
use crate::settings::Settings;
use crate::start::{self, StartError, StartOutcome};
use crate::state::{State, StateError};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// What the user gave `join` beyond the node settings and the plans.
#[derive(Debug, Clone)]
pub struct Options {
    /// The context of the node's kubeconfig to install.
    pub context: Option<String>,
    pub quiet: bool,
    /// The user accepted credentials that skip TLS verification (--insecure-skip-tls-verify).
    pub allow_insecure: bool,
}

/// One finished step: whether it changed the host, in a line for people, and how long it took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub step: Step,
    pub changed: bool,
    pub summary: String,
    #[serde(with = "humantime_serde_secs")]
    pub elapsed: Duration,
}

mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Pause(#[from] ImageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Routes(#[from] ReconcileError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("no kubeconfig to install: give it with --from FILE (or --kubeconfig FILE); nothing was changed")]
    NoConfigSource,
    #[error("the {step} plan holds no `{needs}` action: run `wkjoin join --dry-run` to see the plan")]
    NotPlanned { step: Step, needs: &'static str },
}

/// A step that failed, and which: the steps before it are done and recorded.
#[derive(Debug, thiserror::Error)]
#[error(
    "join stopped at step `{step}`: {source}\n(the steps before it are done and recorded; fix the cause and run `wkjoin join` again: it continues where it stopped)"
)]
pub struct JoinError {
    pub step: Step,
    #[source]
    pub source: Box<StepError>,
}

impl JoinError {
    pub fn exit_code(&self) -> i32 {
        match &*self.source {
            StepError::Config(ConfigError::ChecksFailed { .. }) => exit::VALIDATION_FAILED,
            StepError::NoConfigSource | StepError::Fetch(FetchError::ForeignRoot { .. }) => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

fn fail<E: Into<StepError>>(step: Step) -> impl FnOnce(E) -> JoinError {
    move |e| JoinError { step, source: Box::new(e.into()) }
}

/// Applies fetch → pause → config → routes → start as planned, printing a line per step as it ends.
pub async fn run(s: &Settings, o: &Options, plans: &[Plan]) -> Result<Vec<StepReport>, JoinError> {
    // Without credentials the join would stop at `config` with binaries already installed.
    let config_plan = plans.iter().find(|p| p.step == Step::Config);
    if !config_plan.is_some_and(|p| p.actions.iter().any(|a| matches!(a, Action::WriteFile { .. }))) {
        return Err(fail(Step::Config)(StepError::NoConfigSource));
    }
    let mut done = Vec::new();
    let steps: Vec<&Plan> = plans.iter().filter(|p| p.step != Step::Validate).collect();
    for (i, plan) in steps.iter().enumerate() {
        let started = Instant::now();
        eprintln!("[{}/{}] {}: {} ...", i + 1, steps.len(), plan.step, plan.summary);
        let (changed, summary) = step(s, o, plan).await.map_err(fail(plan.step))?;
        record(s, plan).map_err(fail(plan.step))?;
        let report = StepReport { step: plan.step, changed, summary, elapsed: started.elapsed() };
        println!(
            "{:<8} {:<9} {:>6.1}s  {}",
            report.step.as_str(),
            if changed { "changed" } else { "unchanged" },
            report.elapsed.as_secs_f64(),
            report.summary
        );
        done.push(report);
    }
    Ok(done)
}

/// Marks the step done in the state file (the digest of its plan), so `wkjoin status` shows progress.
fn record(s: &Settings, plan: &Plan) -> Result<(), StepError> {
    let path = s.layout().state_file();
    let mut state = State::load(Path::new(&path))?.unwrap_or_default();
    state.node_name.get_or_insert_with(|| s.node_name.clone());
    state.record(plan, SystemTime::now());
    state.save(Path::new(&path), &mut host::Native)?;
    Ok(())
}

async fn step(s: &Settings, o: &Options, plan: &Plan) -> Result<(bool, String), StepError> {
    match plan.step {
        Step::Fetch => {
            let progress = Progress::new(o.quiet);
            let result = fetch::apply(s, plan, &progress).await;
            progress.finish();
            let (_, report) = result?;
            let version = report.installed.version.clone().unwrap_or_else(|| "(version unknown)".into());
            let (mut changed, mut summary) = match report.outcome {
                FetchOutcome::AlreadyInstalled => (
                    false,
                    format!("Kubernetes {version} already installed and intact in {}", report.installed.bin_dir),
                ),
                _ => (true, format!("installed Kubernetes {version} into {}", report.installed.bin_dir)),
            };
            if let Some(p) = &report.cni_plugins {
                let v = p.installed.version.as_deref().unwrap_or("(version unknown)");
                changed |= p.outcome == FetchOutcome::Installed;
                summary += &match p.outcome {
                    FetchOutcome::Installed => format!("; CNI plugins {v} into {}", p.installed.bin_dir),
                    _ => format!("; CNI plugins {v} in place in {}", p.installed.bin_dir),
                };
                if !p.left_alone.is_empty() {
                    summary += &format!(" (not wkjoin's, left alone: {})", p.left_alone.join(", "));
                }
            }
            Ok((changed, summary))
        }
        Step::Pause => Ok(pause::apply(s, plan, &mut host::Native).await?.summary(&pause::pause_image(s))),
        Step::Config => {
            let opts = config::check::Options {
                node_name: s.node_name.clone(),
                kubelet_version: s.kubernetes_version.exact(),
                allow_insecure: o.allow_insecure,
                timeout: Duration::from_secs(10),
            };
            match config::apply(plan, o.context.as_deref(), &opts, &mut host::Native).await {
                Ok(done) => {
                    let changed = done.iter().any(|d| d.outcome == config::install::Outcome::Installed);
                    let target = s.layout().kubeconfig();
                    Ok(match changed {
                        false => (false, format!("{target} holds these credentials")),
                        true => (true, format!("installed the node's credentials as {target} (owner-only)")),
                    })
                }
                Err(ConfigError::ChecksFailed { report, target }) => {
                    report.print(&mut std::io::stdout().lock(), OutputFormat::Table)?;
                    Err(ConfigError::ChecksFailed { report, target }.into())
                }
                Err(e) => Err(e.into()),
            }
        }
        Step::Routes => {
            let Some(Action::ReconcileRoutes { next_hop, .. }) = plan.actions.first() else {
                return Err(StepError::NotPlanned { step: Step::Routes, needs: "reconcile-routes" });
            };
            let kubeconfig = s.layout().kubeconfig();
            let client = start::client_for(Path::new(&kubeconfig)).await?;
            let url = kube::config::Kubeconfig::read_from(&kubeconfig)
                .ok()
                .and_then(|kc| kc.clusters.first().and_then(|c| c.cluster.as_ref()?.server.clone()));
            let api = url.as_deref().and_then(reconcile::api_server_address);
            let r = reconcile::once(&client, s, *next_hop, api, false).await?;
            let changes = r.diff.changes.len();
            // The re-plan: the route actions the Node list asked for, as they were applied.
            for a in &crate::routes::changes_plan(&r.diff).actions {
                println!("  routes: {a}");
            }
            let summary = format!(
                "{} routes for {} nodes: {} in place, {changes} changed{}",
                r.desired.len(),
                r.nodes_seen,
                r.diff.unchanged,
                if r.diff.conflicts.is_empty() {
                    String::new()
                } else {
                    format!(", {} foreign routes in the way (see warnings)", r.diff.conflicts.len())
                }
            );
            Ok((changes > 0, summary))
        }
        Step::Start => Ok(match start::start_planned(s, None, false, Some(plan)).await? {
            StartOutcome::Unchanged => (false, "kubelet, kube-proxy and the routes watcher run with this plan".into()),
            StartOutcome::Started => (true, format!("node {} is Ready (fresh heartbeat)", s.node_name)),
        }),
        other => Ok((false, format!("{other}: nothing to do"))),
    }
}
