//! Runs a parsed command line: resolves settings, computes plans, prints or applies them.

use crate::apply::ApplyError;
use crate::cli::{Cli, Command, ConfigAction, ConfigCheckArgs, GlobalArgs, NodeArgs, OutputFormat};
use crate::config::ConfigError;
use crate::fetch::progress::Progress;
use crate::fetch::{FetchError, FetchInput, Outcome, Report};
use crate::host;
use crate::image::ImageError;
use crate::join::JoinInputs;
use crate::layout::{Layout, Os};
use crate::plan::{Plan, Step, render_all};
use crate::preflight::PreflightError;
use crate::reset::{self, ResetError, ResetOptions};
use crate::settings::{self, DiscoverError, Origin, PartialSettings, Settings, SettingsError};
use crate::state::{State, StateError};
use crate::{config, fetch, image, preflight, services};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Exit codes, as documented in the README and `wkjoin --help`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const VALIDATION_FAILED: i32 = 3;
    pub const NOT_AVAILABLE: i32 = 4;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error(transparent)]
    Reset(#[from] ResetError),
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no kubeconfig to install: give it with --from FILE (or --kubeconfig FILE); nothing was changed")]
    NoConfigSource,
    #[error(transparent)]
    Start(#[from] crate::start::StartError),
    #[error(transparent)]
    Kubeconfig(#[from] crate::kube_client::ClientError),
    #[error("`wkjoin {command}` is not available in this build of wkjoin yet (only --dry-run is); nothing was changed")]
    NotAvailable { command: &'static str },
    #[error(transparent)]
    Validate(#[from] crate::validate::ValidateError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Settings(_) => exit::USAGE,
            AppError::Apply(ApplyError::ForeignOs { .. }) => exit::USAGE,
            AppError::Fetch(FetchError::ForeignRoot { .. }) => exit::USAGE,
            AppError::NotAvailable { .. } => exit::NOT_AVAILABLE,
            AppError::Config(ConfigError::ChecksFailed { .. }) => exit::VALIDATION_FAILED,
            AppError::NoConfigSource => exit::USAGE,
            AppError::Preflight(_) => exit::USAGE,
            AppError::Reset(ResetError::ForeignOs { .. }) => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32, AppError> {
    let g = &cli.global;
    match &cli.command {
        Command::Fetch { archive, sha512, rollback, node, dry, out } => {
            // Fetching only writes files: Windows binaries can be fetched on Linux, named after this host.
            let s = resolve_settings_with(g, node, dry.dry_run, true).await?;
            let input = FetchInput { archive: archive.clone(), sha512: sha512.clone(), rollback: *rollback };
            if dry.dry_run {
                return step_command("fetch", &s, vec![fetch::plan_with(&s, &input)], true, out.output);
            }
            let progress = Progress::new(g.quiet);
            let result = fetch::run(&s, &input, &progress).await;
            progress.finish();
            let (_, report) = result?;
            for w in &report.warnings {
                tracing::warn!("{w}");
            }
            print_fetch_report(&mut std::io::stdout().lock(), &report, out.output)?;
            Ok(exit::OK)
        }
        Command::Pause { image_archive, windows_build, node, dry } => {
            let s = resolve_node_settings(g, node, dry.dry_run).await?;
            let plan = image::plan(&s, image_archive.as_deref(), windows_build.or_else(|| windows_build_of(&s)))?;
            if dry.dry_run {
                return step_command("pause", &s, vec![plan], true, OutputFormat::Table);
            }
            let report = image::apply(&s, &plan, &mut host::Native).await?;
            let (changed, line) = report.summary(&image::pause_image(&s));
            println!("{}: {line}", if changed { "changed" } else { "unchanged" });
            Ok(exit::OK)
        }
        Command::Config { action: Some(action), .. } => config_action(g, action).await,
        Command::Config { action: None, from, token, check, node, dry, out } => {
            // Credentials are checked before wkjoin talks to the cluster with them: no discovery here.
            let s = layered_settings(g, node, None, false, None)?;
            let bootstrap = config_token_request(token)?;
            let source = match &bootstrap {
                Some(req) => Some(req.describe()),
                None => from.clone().or_else(|| g.kubeconfig.as_ref().map(|p| p.display().to_string())),
            };
            if dry.dry_run {
                return step_command("config", &s, vec![config::plan(&s, source.as_deref())], true, out.output);
            }
            let source = source.ok_or(AppError::NoConfigSource)?;
            let input = config::Input::parse(&source);
            let opts = check_options(&s, check);
            let target = s.layout().kubeconfig();
            let installed = match &bootstrap {
                Some(req) => config::token::run(req, &opts, &target, &mut host::Native).await,
                None => config::install::run(&input, g.context.as_deref(), &opts, &target, &mut host::Native).await,
            };
            let mut stdout = std::io::stdout().lock();
            match installed {
                Ok(done) if out.output != OutputFormat::Table => write_data(&mut stdout, out.output, &done)?,
                Ok(done) => {
                    done.report.print(&mut stdout, out.output)?;
                    match done.outcome {
                        config::install::Outcome::Installed => {
                            writeln!(stdout, "installed the credentials as {} (owner-only)", done.path)?
                        }
                        config::install::Outcome::Unchanged => {
                            writeln!(stdout, "unchanged: {} already holds these credentials", done.path)?
                        }
                    }
                }
                Err(ConfigError::ChecksFailed { report, target }) => {
                    report.print(&mut stdout, out.output)?;
                    return Err(ConfigError::ChecksFailed { report, target }.into());
                }
                Err(e) => return Err(e.into()),
            }
            Ok(exit::OK)
        }
        Command::Routes { next_hop, watch, nodes_file, windows_service, node, dry, out } => {
            if *windows_service {
                // Under the SCM: connect to it first (it waits 30 s), then resolve and watch inside the service.
                // The flags carry every setting, so an unreachable cluster (after a reboot) only warns.
                let (g, node, hop) = (g.clone(), node.clone(), *next_hop);
                let root = g.root_dir.clone().unwrap_or_else(|| Os::host().default_root_dir().to_string());
                crate::reconcile::watch_as_service(&Layout::new(Os::host(), root).log_dir(), move || async move {
                    let s = resolve_settings(&g, &node, true).await?;
                    let (client, url) = client_and_url(&g).await?;
                    crate::reconcile::watch(&client, &s, hop, crate::reconcile::api_server_address(&url)).await?;
                    Ok::<(), AppError>(())
                })?;
                return Ok(exit::OK);
            }
            let s = resolve_settings(g, node, dry.dry_run).await?;
            if let Some(file) = nodes_file {
                let report = crate::reconcile::once_from_file(file, &s, *next_hop, dry.dry_run).await?;
                crate::reconcile::print(&report, out.output, dry.dry_run)?;
                return Ok(exit::OK);
            }
            let (client, url) = client_and_url(g).await?;
            let api = crate::reconcile::api_server_address(&url);
            if *watch {
                crate::reconcile::watch(&client, &s, *next_hop, api).await?;
                return Ok(exit::OK);
            }
            let report = crate::reconcile::once(&client, &s, *next_hop, api, dry.dry_run).await?;
            crate::reconcile::print(&report, out.output, dry.dry_run)?;
            Ok(exit::OK)
        }
        Command::Start { node, dry, foreground, stop, supervise } => {
            if *supervise || *stop {
                let os = Os::host();
                let layout = Layout::new(os, g.root_dir.clone().unwrap_or_else(|| os.default_root_dir().to_string()));
                if *supervise {
                    crate::start::supervise_main(&layout).await?;
                } else if crate::start::stop(&layout).await? {
                    println!("stopped the wkjoin supervisor, kubelet and kube-proxy");
                } else {
                    println!(
                        "unchanged: no wkjoin supervisor was running (no kubelet or kube-proxy of {} runs)",
                        layout.root
                    );
                }
                return Ok(exit::OK);
            }
            let s = resolve_node_settings(g, node, dry.dry_run).await?;
            if dry.dry_run {
                let plan = services::plan(&s, s.kubernetes_version.exact(), &image::pause_image(&s));
                return step_command("start", &s, vec![plan], true, OutputFormat::Table);
            }
            crate::start::start(&s, g.kubeconfig.as_deref(), *foreground).await?;
            Ok(exit::OK)
        }
        Command::Join {
            image_archive,
            windows_build,
            next_hop,
            no_validate,
            validate_kubeconfig,
            sample_image,
            probe_image,
            api_server,
            token,
            discovery_token_ca_cert_hash,
            ca_file,
            csr_timeout,
            node,
            dry,
            out,
        } => {
            // kubeadm's join command, pasted: the token's CSR gives the node its credentials first, and the rest of
            // the join (cluster settings included) then runs with them, as with --kubeconfig.
            let token_args = crate::cli::TokenArgs {
                token: token.clone(),
                server: api_server.as_ref().map(|a| if a.contains("://") { a.clone() } else { format!("https://{a}") }),
                ca_file: ca_file.clone(),
                discovery_token_ca_cert_hash: discovery_token_ca_cert_hash.clone(),
                csr_timeout: *csr_timeout,
            };
            let mut bootstrapped = g.clone();
            let mut bootstrap_source = None;
            let mut bootstrapped_now: Option<String> = None;
            if let Some(req) = config_token_request(&token_args)? {
                let s0 = layered_settings(g, node, None, false, None)?;
                let target = s0.layout().kubeconfig();
                bootstrap_source = Some(req.describe());
                if !dry.dry_run && std::path::Path::new(&target).exists() {
                    // A re-run (even after the token expired) uses the credential the first run got; the config
                    // step checks it is this node's, for this cluster.
                    println!("config: using the node's credentials already in {target}");
                    bootstrapped.kubeconfig = Some(std::path::PathBuf::from(&target));
                } else if !dry.dry_run {
                    let opts = config::check::Options {
                        node_name: s0.node_name.clone(),
                        kubelet_version: s0.kubernetes_version.exact(),
                        allow_insecure: false,
                        timeout: std::time::Duration::from_secs(10),
                    };
                    let done = config::token::run(&req, &opts, &target, &mut host::Native).await?;
                    // Recorded at once: the credential is wkjoin's, so `wkjoin reset` removes it even if the
                    // join stops in preflight.
                    let state_path = s0.layout().state_file();
                    let mut state = State::load(std::path::Path::new(&state_path))?.unwrap_or_default();
                    state.node_name.get_or_insert_with(|| s0.node_name.clone());
                    state.save(std::path::Path::new(&state_path), &mut host::Native)?;
                    println!("config: the node's credentials from {} are in {}", req.describe(), done.path);
                    bootstrapped.kubeconfig = Some(std::path::PathBuf::from(&target));
                    bootstrapped_now = Some(target.clone());
                }
            }
            let g = &bootstrapped;
            let s = resolve_node_settings(g, node, dry.dry_run).await?;
            let inputs = JoinInputs {
                kubeconfig: bootstrap_source
                    .filter(|_| dry.dry_run)
                    .or_else(|| g.kubeconfig.as_ref().map(|p| p.display().to_string())),
                image_archive: image_archive.clone(),
                next_hop: Some(*next_hop),
                windows_build: windows_build.or_else(|| windows_build_of(&s)),
                validate: !no_validate,
            };
            let plans = crate::join::plan(&s, &inputs)?;
            if dry.dry_run {
                return step_command("join", &s, plans, true, out.output);
            }
            let started = std::time::Instant::now();
            if inputs.kubeconfig.is_some() && s.os == Os::host() {
                let report = preflight_report(g, &s, false).await;
                if !report.ok {
                    preflight::print(&report, OutputFormat::Table)?;
                    let changed = match &bootstrapped_now {
                        Some(path) => format!(
                            "only the node's credentials were installed, in {path} (a re-run uses them; `wkjoin reset` removes them)"
                        ),
                        None => "nothing was changed".to_string(),
                    };
                    eprintln!(
                        "error: preflight checks failed: fix them (see above) and run `wkjoin join` again; {changed}"
                    );
                    return Ok(exit::VALIDATION_FAILED);
                }
                for c in report.checks.iter().filter(|c| c.status == preflight::Status::Warn) {
                    eprintln!(
                        "preflight warning: {}: {}{}",
                        c.name,
                        c.detail,
                        c.fix.as_deref().map(|f| format!(" (fix: {f})")).unwrap_or_default()
                    );
                }
                println!(
                    "preflight: {} checks passed",
                    report.checks.iter().filter(|c| c.status == preflight::Status::Pass).count()
                );
            }
            let opts = crate::join::run::Options {
                kubeconfig: inputs.kubeconfig.clone(),
                context: g.context.clone(),
                image_archive: image_archive.clone(),
                next_hop: *next_hop,
                windows_build: inputs.windows_build,
                quiet: g.quiet,
            };
            let steps = match crate::join::run::run(&s, &opts, &plans).await {
                Ok(steps) => steps,
                Err(e) => {
                    eprintln!("error: {}", e);
                    return Ok(e.exit_code());
                }
            };
            let changed = steps.iter().filter(|r| r.changed).count();
            println!(
                "node {} joined in {:.1}s: {}",
                s.node_name,
                started.elapsed().as_secs_f64(),
                if changed == 0 { "nothing changed".to_string() } else { format!("{changed} steps changed the host") }
            );
            if *no_validate {
                return Ok(exit::OK);
            }
            let Some(kubeconfig) = validate_kubeconfig else {
                println!(
                    "validate: skipped: the matrix creates a namespace, pods and Services, which the node's own credentials \
                     may not; give --validate-kubeconfig FILE, or run `wkjoin validate --node {}` as a cluster admin",
                    s.node_name
                );
                return Ok(exit::OK);
            };
            println!("validate: the connectivity matrix for node {} ...", s.node_name);
            join_validate(&s, kubeconfig, sample_image.as_deref(), probe_image.as_deref(), out.output).await
        }
        Command::Preflight { hyperv_isolation, node, out } => {
            // An unreachable cluster is a failed check, not an error: discover as leniently as --dry-run does.
            let s = resolve_node_settings(g, node, true).await?;
            if s.os != Os::host() {
                return Err(PreflightError::ForeignOs { os: s.os, host: Os::host() }.into());
            }
            let report = preflight_report(g, &s, *hyperv_isolation).await;
            preflight::print(&report, out.output)?;
            Ok(if report.ok { exit::OK } else { exit::VALIDATION_FAILED })
        }
        Command::Validate { args, out } => validate(g, args, out.output).await,
        Command::Reset { delete_node, purge, node, dry } => {
            // Reset must work with the cluster down: discover leniently.
            let s = resolve_node_settings(g, node, true).await?;
            if s.os != Os::host() {
                return Err(ResetError::ForeignOs { os: s.os, host: Os::host() }.into());
            }
            let opts = ResetOptions { delete_node: *delete_node, purge: *purge };
            let kubeconfig = g.kubeconfig.as_ref().map(|p| p.display().to_string());
            let observed = reset::observe(&s, kubeconfig.as_deref(), &opts).await?;
            let plan = reset::plan(&s, &observed, &opts);
            let mut stdout = std::io::stdout().lock();
            if plan.actions.is_empty() {
                writeln!(stdout, "{}", plan.summary)?;
                return Ok(exit::OK);
            }
            if dry.dry_run {
                let header = format!("wkjoin reset plan for node {} ({}, root {})", s.node_name, s.os, s.root_dir);
                stdout.write_all(render_all(&header, &[plan]).as_bytes())?;
                return Ok(exit::OK);
            }
            let files =
                host::SupervisorFiles::new(&s.layout().join(&["run"]), &s.layout().log_dir(), &s.root_dir, false);
            let mut system = host::System::new(host::Manager::detect(false), files, Vec::new());
            let mut cluster = crate::cluster::KubeCluster::new(None, None);
            reset::apply(&plan, s.os, &mut system, &mut cluster).await?;
            writeln!(
                stdout,
                "reset node {}: {} actions done; nothing of wkjoin's is left",
                s.node_name,
                plan.actions.len()
            )?;
            Ok(exit::OK)
        }
        Command::Status { out } => status(g, out.output),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "wkjoin", &mut std::io::stdout());
            Ok(exit::OK)
        }
    }
}

/// Gathers the host's and the cluster's facts and evaluates every preflight check.
async fn preflight_report(g: &GlobalArgs, s: &Settings, hyperv_isolation: bool) -> preflight::Report {
    let state = State::load(std::path::Path::new(&s.layout().state_file())).ok().flatten();
    let api = match client_and_url(g).await {
        Ok((c, server)) => preflight::probe_api(&c, Some(server)).await,
        Err(e) => preflight::facts::Api::NoKubeconfig { reason: e.to_string() },
    };
    let facts = preflight::gather_host(s, state.as_ref(), api);
    let checks = preflight::evaluate(&facts, s, &preflight::Options { hyperv_isolation });
    preflight::Report::new(s, checks)
}

async fn validate(g: &GlobalArgs, a: &crate::cli::ValidateArgs, format: OutputFormat) -> Result<i32, AppError> {
    validate_with(&client(g).await?, a, format).await
}

/// The matrix at the end of `join`: cells to and from the new node, with the credentials given for it.
async fn join_validate(
    s: &Settings,
    kubeconfig: &std::path::Path,
    sample_image: Option<&str>,
    probe_image: Option<&str>,
    format: OutputFormat,
) -> Result<i32, AppError> {
    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        a: crate::cli::ValidateArgs,
    }
    let mut argv = vec!["validate".to_string(), "--node".into(), s.node_name.clone()];
    argv.extend(["--cluster-domain".into(), s.cluster_domain.clone()]);
    if let Some(i) = sample_image {
        argv.extend(["--sample-image".into(), i.to_string()]);
    }
    if let Some(i) = probe_image {
        argv.extend(["--probe-image".into(), i.to_string()]);
    }
    let a = <Args as clap::Parser>::parse_from(argv).a;
    let client = crate::start::client_for(kubeconfig).await?;
    validate_with(&client, &a, format).await
}

async fn validate_with(
    client: &kube::Client,
    a: &crate::cli::ValidateArgs,
    format: OutputFormat,
) -> Result<i32, AppError> {
    use crate::validate::{self, Options, matrix::Selection, report, sample::Images};
    let opts = Options {
        selection: Selection {
            focus: a.node.clone(),
            only: a.only.clone(),
            skip: a.skip.clone(),
            icmp_blocked: a.icmp_blocked.clone(),
            local: None,
        },
        images: Images {
            sample: a.sample_image.clone(),
            probe: a.probe_image.clone(),
            windows_sample: a.windows_sample_image.clone(),
            windows_probe: a.windows_probe_image.clone(),
        },
        ready_timeout: Duration::from_secs(a.timeout),
        windows_ready_timeout: Duration::from_secs(a.windows_timeout),
        probe_timeout: Duration::from_secs(a.probe_timeout),
        concurrency: a.concurrency,
        host_port: a.host_port,
        domain: a.cluster_domain.clone(),
        keep: a.keep,
        stale_after: Duration::from_secs(a.stale_after * 60),
        repeat: a.repeat,
        local: a.local,
    };
    let Some(report) = validate::command(client, &opts, a.junit.as_deref()).await? else {
        eprintln!("interrupted: the validation namespace was deleted");
        return Ok(exit::INTERRUPTED);
    };
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => out.write_all(report::render_table(&report).as_bytes())?,
        f => write_data(&mut out, f, &report)?,
    }
    Ok(if report.summary.ok() { exit::OK } else { exit::VALIDATION_FAILED })
}

/// Layers flags/env, the config file, the cluster and defaults into validated settings.
/// This host's Windows build, when the plan is for this host.
fn windows_build_of(s: &Settings) -> Option<u32> {
    (s.os == Os::host()).then(host::windows_build).flatten()
}

async fn resolve_settings(g: &GlobalArgs, node: &NodeArgs, dry_run: bool) -> Result<Settings, AppError> {
    resolve_settings_with(g, node, dry_run, false).await
}

/// Settings for a step that touches the container runtime: planning for this host with containerd, the runtime
/// is asked (CRI Status, then its config file) where it reads CNI configs and which sandbox image it runs.
async fn resolve_node_settings(g: &GlobalArgs, node: &NodeArgs, dry_run: bool) -> Result<Settings, AppError> {
    let cluster = discover(g, dry_run).await?;
    let s = layered_settings(g, node, cluster.clone(), false, None)?;
    if s.os != Os::host() || s.runtime != settings::Runtime::Containerd {
        return Ok(s);
    }
    let endpoint = s.runtime_endpoint.clone().unwrap_or_default();
    let facts = settings::discover_runtime(s.os, &endpoint, s.runtime_config.as_deref()).await;
    if facts.answered {
        tracing::debug!("container runtime: {}", facts.describe());
    } else {
        // Nothing to plan from but guesses: preflight reports the silent runtime, and join stops there.
        tracing::warn!("{}; planning from containerd's defaults", facts.describe());
    }
    layered_settings(g, node, cluster, false, Some(facts))
}

/// `host_name_for_any_os`: default the node name to this host's even when planning for another OS.
async fn resolve_settings_with(
    g: &GlobalArgs,
    node: &NodeArgs,
    dry_run: bool,
    host_name_for_any_os: bool,
) -> Result<Settings, AppError> {
    let cluster = discover(g, dry_run).await?;
    layered_settings(g, node, cluster, host_name_for_any_os, None)
}

/// Settings from flags/env, the settings file, what the cluster told (if anything) and defaults.
fn layered_settings(
    g: &GlobalArgs,
    node: &NodeArgs,
    cluster: Option<PartialSettings>,
    host_name_for_any_os: bool,
    runtime: Option<settings::RuntimeFacts>,
) -> Result<Settings, AppError> {
    let flags = node.to_partial();
    let file = match &g.config {
        Some(path) => Some((path.clone(), settings::load_file(path)?)),
        None => None,
    };
    let mut layers: Vec<(Origin, &PartialSettings)> = vec![(Origin::CommandLine, &flags)];
    if let Some((path, f)) = &file {
        layers.push((Origin::File(path.clone()), f));
    }
    if let Some(c) = &cluster {
        layers.push((Origin::Cluster("kubeadm-config, kube-dns"), c));
    }
    let os = node.os.unwrap_or(Os::host());
    // Host facts describe this machine; they only apply when planning for its own OS.
    let facts = match (os == Os::host(), host_name_for_any_os) {
        (true, _) => settings::HostFacts { runtime, ..host::facts().into() },
        (false, true) => settings::HostFacts { hostname: host::facts().hostname, ..Default::default() },
        (false, false) => Default::default(),
    };
    Ok(settings::resolve(os, g.root_dir.as_deref(), &layers, &facts)?)
}

/// `wkjoin config --token ...`: the checked TLS bootstrap request, if a token was given.
fn config_token_request(t: &crate::cli::TokenArgs) -> Result<Option<config::token::Request>, AppError> {
    let Some(token) = &t.token else { return Ok(None) };
    use config::token::{BootstrapToken, CaSource, Request, TokenError};
    let token = BootstrapToken::parse(token).map_err(ConfigError::from)?;
    let ca = match &t.ca_file {
        Some(file) => CaSource::File(file.clone()),
        None if !t.discovery_token_ca_cert_hash.is_empty() => {
            CaSource::Pinned(config::token::parse_pins(&t.discovery_token_ca_cert_hash).map_err(ConfigError::from)?)
        }
        None => return Err(ConfigError::from(TokenError::NoCa).into()),
    };
    Ok(Some(Request { token, server: t.server.clone().unwrap_or_default(), ca, timeout: t.csr_timeout }))
}

fn check_options(s: &Settings, check: &ConfigCheckArgs) -> config::check::Options {
    config::check::Options {
        node_name: s.node_name.clone(),
        kubelet_version: s.kubernetes_version.exact(),
        allow_insecure: check.insecure_skip_tls_verify,
        timeout: check.connect_timeout,
    }
}

/// `wkjoin config check` and `wkjoin config mint`.
async fn config_action(g: &GlobalArgs, action: &ConfigAction) -> Result<i32, AppError> {
    match action {
        ConfigAction::Check { from, check, node, out } => {
            let s = layered_settings(g, node, None, false, None)?;
            let source = from
                .clone()
                .or_else(|| g.kubeconfig.as_ref().map(|p| p.display().to_string()))
                .unwrap_or_else(|| s.layout().kubeconfig());
            let input = config::Input::parse(&source);
            let resolved = config::source::load(&input, g.context.as_deref()).map_err(ConfigError::from)?;
            let opts = check_options(&s, check);
            let checks = config::check::run(&resolved, &opts).await;
            let report = config::check::Report::new(input.describe(), Some(&resolved), &s.node_name, checks);
            report.print(&mut std::io::stdout().lock(), out.output)?;
            Ok(if report.passed() { exit::OK } else { exit::VALIDATION_FAILED })
        }
        ConfigAction::Mint { node_name, out, timeout } => {
            let input = match &g.kubeconfig {
                Some(p) => config::Input::File(p.clone()),
                None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                    Some(v) => config::Input::File(std::env::split_paths(&v).next().unwrap_or_default()),
                    None => config::Input::File(std::env::home_dir().unwrap_or_default().join(".kube").join("config")),
                },
            };
            let admin = config::source::load(&input, g.context.as_deref()).map_err(ConfigError::from)?;
            let opts = config::check::Options {
                node_name: node_name.clone(),
                kubelet_version: None,
                allow_insecure: false,
                timeout: Duration::from_secs(5),
            };
            let yaml = config::mint::run(&admin, node_name, &opts, *timeout).await.map_err(ConfigError::from)?;
            host::Host::write_file(&mut host::Native, out, yaml.as_bytes(), true).map_err(ConfigError::from)?;
            writeln!(
                std::io::stdout().lock(),
                "wrote node {node_name}'s credentials (CN=system:node:{node_name}, O=system:nodes) to {} (owner-only); \
                 install them on the node with `wkjoin config --from {}`",
                out.display(),
                out.display()
            )?;
            Ok(exit::OK)
        }
    }
}

/// Reads settings from the cluster when a kubeconfig was given explicitly (flag or $KUBECONFIG).
async fn discover(g: &GlobalArgs, dry_run: bool) -> Result<Option<PartialSettings>, AppError> {
    if g.kubeconfig.is_none() && std::env::var_os("KUBECONFIG").is_none() {
        return Ok(None);
    }
    let client = match client(g).await {
        Ok(c) => c,
        Err(e) if dry_run => {
            tracing::warn!("{e}; planning without the cluster's settings");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match settings::discover(&client).await {
        Ok(found) => Ok(Some(found)),
        Err(DiscoverError::Api { source: kube::Error::Api(status), what }) if status.code == 403 => {
            tracing::debug!("not allowed to read {what} ({}); not discovering it", status.message);
            Ok(None)
        }
        Err(e) if dry_run => {
            tracing::warn!("{e}; planning with flags, config file and defaults only");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The one kube client of a run.
pub async fn client(g: &GlobalArgs) -> Result<kube::Client, AppError> {
    Ok(client_and_url(g).await?.0)
}

/// The client and the API server URL it talks to.
pub async fn client_and_url(g: &GlobalArgs) -> Result<(kube::Client, String), AppError> {
    let source = match &g.kubeconfig {
        Some(path) => crate::kube_client::Source::File(path),
        None => crate::kube_client::Source::Default,
    };
    let opts = crate::kube_client::Options { context: g.context.clone(), ..Default::default() };
    Ok(crate::kube_client::build(source, &opts).await?)
}

#[derive(Serialize)]
struct PlanOutput<'a> {
    node: &'a str,
    os: Os,
    root_dir: &'a str,
    settings: &'a Settings,
    plans: &'a [Plan],
}

fn step_command(
    command: &'static str,
    s: &Settings,
    plans: Vec<Plan>,
    dry_run: bool,
    format: OutputFormat,
) -> Result<i32, AppError> {
    if !dry_run {
        return Err(AppError::NotAvailable { command });
    }
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let mut header = format!(
                "wkjoin {command} plan for node {} ({}, root {}, Kubernetes {})",
                s.node_name, s.os, s.root_dir, s.kubernetes_version
            );
            // What the runtime said of itself, so the plan's paths and pause image can be checked against it.
            if let Some(rt) = s.runtime_facts.as_ref().filter(|r| r.answered) {
                header.push_str(&format!("\nruntime: {}", rt.describe()));
            }
            stdout.write_all(render_all(&header, &plans).as_bytes())?;
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let value = PlanOutput { node: &s.node_name, os: s.os, root_dir: &s.root_dir, settings: s, plans: &plans };
            write_data(&mut stdout, format, &value)?;
        }
    }
    Ok(exit::OK)
}

pub(crate) fn write_data(w: &mut impl Write, format: OutputFormat, value: &impl Serialize) -> Result<(), AppError> {
    Ok(crate::output::write_data(w, format, value)?)
}

/// Sizes for people, in the progress bar's units: 91.5 MiB.
fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn print_fetch_report(w: &mut impl Write, report: &Report, format: OutputFormat) -> Result<(), AppError> {
    if format != OutputFormat::Table {
        return write_data(w, format, report);
    }
    let r = &report.installed;
    let version = r.version.as_deref().unwrap_or("(version unknown)");
    match report.outcome {
        Outcome::Installed => {
            writeln!(w, "installed Kubernetes {version} ({}/{}) into {}", r.os, r.arch, r.bin_dir)?;
            let how = if report.from_cache {
                "from the cache, nothing downloaded".to_string()
            } else if report.downloaded_bytes > 0 {
                format!("{} downloaded", human_bytes(report.downloaded_bytes))
            } else {
                "a local file".to_string()
            };
            writeln!(w, "  source:   {} ({how})", r.source)?;
            writeln!(w, "  verified: {}", report.verified_with.as_deref().unwrap_or("-"))?;
            writeln!(w, "  sha512:   {}", r.archive_sha512)?;
        }
        Outcome::AlreadyInstalled => writeln!(
            w,
            "Kubernetes {version} is already installed in {} and intact ({} binaries checked): nothing was downloaded",
            r.bin_dir,
            r.files.len()
        )?,
        Outcome::RolledBack => writeln!(w, "rolled back to Kubernetes {version} in {}", r.bin_dir)?,
    }
    let width = r.files.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &r.files {
        writeln!(w, "  {:<width$}  {:<10} {}", f.name, f.version.as_deref().unwrap_or("-"), f.path)?;
    }
    if let Some(p) = &report.previous {
        let pv = p.version.as_deref().unwrap_or("(version unknown)");
        match report.outcome {
            Outcome::RolledBack => {
                writeln!(w, "Kubernetes {pv} is kept in {}: `wkjoin fetch --rollback` returns to it", p.bin_dir)?
            }
            _ => writeln!(
                w,
                "the previous binaries (Kubernetes {pv}) are kept in {}: `wkjoin fetch --rollback` restores them",
                p.bin_dir
            )?,
        }
    }
    Ok(())
}

fn status(g: &GlobalArgs, format: OutputFormat) -> Result<i32, AppError> {
    let os = Os::host();
    let layout = Layout::new(os, g.root_dir.clone().unwrap_or_else(|| os.default_root_dir().to_string()));
    let path = layout.state_file();
    let state = State::load(std::path::Path::new(&path))?;
    let mut out = std::io::stdout().lock();
    match (format, state) {
        (OutputFormat::Table, None) => {
            writeln!(out, "not joined: no wkjoin state at {path} (run `wkjoin join`)")?;
        }
        (OutputFormat::Table, Some(st)) => {
            writeln!(out, "node: {}", st.node_name.as_deref().unwrap_or("(unknown)"))?;
            writeln!(out, "state: {path} (written by wkjoin {})", st.wkjoin_version)?;
            writeln!(out, "{:<10} {:<10} {:<22} DIGEST", "STEP", "STATE", "COMPLETED")?;
            for step in Step::ALL {
                match st.steps.get(&step) {
                    Some(r) => writeln!(
                        out,
                        "{:<10} {:<10} {:<22} {}",
                        step,
                        "done",
                        r.completed_at,
                        &r.digest[..12.min(r.digest.len())]
                    )?,
                    None => writeln!(out, "{:<10} {:<10} {:<22} -", step, "not run", "-")?,
                }
            }
        }
        (format, state) => {
            #[derive(Serialize)]
            struct StatusOutput<'a> {
                state_file: &'a str,
                joined: bool,
                state: Option<State>,
            }
            let joined = state.is_some();
            write_data(&mut out, format, &StatusOutput { state_file: &path, joined, state })?;
        }
    }
    Ok(exit::OK)
}
