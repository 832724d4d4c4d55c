//! `wkjoin join` for real: preflight, then every step in pipeline order, each idempotent and recorded in the
//! state file as it completes, so a failed or killed join is resumed by running it again.

use crate::app::AppError;
use crate::config;
use crate::fetch::progress::Progress;
use crate::fetch::{self, FetchInput, Outcome as FetchOutcome};
use crate::host;
use crate::image;
use crate::plan::{NextHop, Plan, Step};
use crate::reconcile;
use crate::settings::Settings;
use crate::start::{self, StartOutcome};
use crate::state::State;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// What the user gave `join` beyond the node settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node's credentials to install (a kubeconfig file).
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub image_archive: Option<String>,
    pub next_hop: NextHop,
    pub windows_build: Option<u32>,
    pub quiet: bool,
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

/// A step that failed, and which: the steps before it are done and recorded.
#[derive(Debug, thiserror::Error)]
#[error(
    "join stopped at step `{step}`: {source}\n(the steps before it are done and recorded; fix the cause and run `wkjoin join` again: it continues where it stopped)"
)]
pub struct JoinError {
    pub step: Step,
    #[source]
    pub source: Box<AppError>,
}

impl JoinError {
    pub fn exit_code(&self) -> i32 {
        self.source.exit_code()
    }
}

fn fail(step: Step) -> impl FnOnce(AppError) -> JoinError {
    move |e| JoinError { step, source: Box::new(e) }
}

/// Runs fetch → pause → config → routes → start, printing a line per step as it ends.
pub async fn run(s: &Settings, o: &Options, plans: &[Plan]) -> Result<Vec<StepReport>, JoinError> {
    // Without credentials the join would stop at `config` with binaries already installed.
    if o.kubeconfig.is_none() {
        return Err(fail(Step::Config)(AppError::NoConfigSource));
    }
    let mut done = Vec::new();
    let total = plans.iter().filter(|p| p.step != Step::Validate).count();
    for (i, plan) in plans.iter().filter(|p| p.step != Step::Validate).enumerate() {
        let started = Instant::now();
        eprintln!("[{}/{total}] {}: {} ...", i + 1, plan.step, plan.summary);
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
fn record(s: &Settings, plan: &Plan) -> Result<(), AppError> {
    let path = s.layout().state_file();
    let mut state = State::load(Path::new(&path))?.unwrap_or_default();
    state.node_name.get_or_insert_with(|| s.node_name.clone());
    state.record(plan, SystemTime::now());
    state.save(Path::new(&path), &mut host::Native)?;
    Ok(())
}

async fn step(s: &Settings, o: &Options, plan: &Plan) -> Result<(bool, String), AppError> {
    match plan.step {
        Step::Fetch => {
            let progress = Progress::new(o.quiet);
            let result = fetch::run(s, &FetchInput::default(), &progress).await;
            progress.finish();
            let (_, report) = result?;
            let version = report.installed.version.clone().unwrap_or_else(|| "(version unknown)".into());
            Ok(match report.outcome {
                FetchOutcome::AlreadyInstalled => (
                    false,
                    format!("Kubernetes {version} already installed and intact in {}", report.installed.bin_dir),
                ),
                _ => (true, format!("installed Kubernetes {version} into {}", report.installed.bin_dir)),
            })
        }
        Step::Pause => Ok(image::apply(s, plan, &mut host::Native).await?.summary(&image::pause_image(s))),
        Step::Config => {
            let source = o.kubeconfig.clone().ok_or(AppError::NoConfigSource)?;
            let opts = config::check::Options {
                node_name: s.node_name.clone(),
                kubelet_version: s.kubernetes_version.exact(),
                allow_insecure: false,
                timeout: Duration::from_secs(10),
            };
            let target = s.layout().kubeconfig();
            let input = config::Input::parse(&source);
            match config::install::run(&input, o.context.as_deref(), &opts, &target, &mut host::Native).await {
                Ok(done) => Ok(match done.outcome {
                    config::install::Outcome::Unchanged => (false, format!("{target} holds these credentials")),
                    config::install::Outcome::Installed => {
                        (true, format!("installed the node's credentials as {target} (owner-only)"))
                    }
                }),
                Err(config::ConfigError::ChecksFailed { report, target }) => {
                    report.print(&mut std::io::stdout().lock(), crate::cli::OutputFormat::Table)?;
                    Err(config::ConfigError::ChecksFailed { report, target }.into())
                }
                Err(e) => Err(e.into()),
            }
        }
        Step::Routes => {
            let kubeconfig = s.layout().kubeconfig();
            let client = start::client_for(Path::new(&kubeconfig)).await?;
            let url = kube::config::Kubeconfig::read_from(&kubeconfig)
                .ok()
                .and_then(|kc| kc.clusters.first().and_then(|c| c.cluster.as_ref()?.server.clone()));
            let api = url.as_deref().and_then(reconcile::api_server_address);
            let r = reconcile::once(&client, s, o.next_hop, api, false).await?;
            let changes = r.diff.changes.len();
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
        Step::Start => Ok(match start::start(s, None, false).await? {
            StartOutcome::Unchanged => (false, "kubelet, kube-proxy and the routes watcher run with this plan".into()),
            StartOutcome::Started => (true, format!("node {} is Ready (fresh heartbeat)", s.node_name)),
        }),
        other => Ok((false, format!("{other}: nothing to do"))),
    }
}
