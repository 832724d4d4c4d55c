//! `wkjoin join`: every step, in order, or their plans. A pasted `kubeadm join` command bootstraps the node's
//! credentials first; preflight gates the real run; `join::run` runs and records the steps; the connectivity
//! matrix for the node ends it.

use super::common::{self, step_command};
use super::{AppError, exit};
use crate::cli::{GlobalArgs, JoinArgs, OutputFormat, TokenArgs};
use crate::config;
use crate::host;
use crate::join::JoinInputs;
use crate::layout::Os;
use crate::preflight::{self, Status};
use crate::settings::{Settings, windows_build_of};
use crate::state::State;
use std::path::{Path, PathBuf};

pub async fn run(g: &GlobalArgs, a: &JoinArgs) -> Result<i32, AppError> {
    let dry_run = a.dry.dry_run;
    refuse_insecure(g, a)?;
    // Without credentials (a kubeconfig or a pasted token) the join would stop at `config`: refused before the lock.
    if !dry_run && g.kubeconfig.is_none() && a.token.is_none() {
        return Err(AppError::NoConfigSource);
    }
    // Taken before the credentials are bootstrapped: the whole join is one wkjoin's.
    let _lock = if dry_run { None } else { common::lock(&common::layered_settings(g, &a.node)?, "wkjoin join")? };
    let boot = bootstrap(g, a).await?;
    let g = &boot.global;
    let s = common::resolve_node_settings(g, &a.node, dry_run).await?;
    let inputs = JoinInputs {
        kubeconfig: boot.source.filter(|_| dry_run).or_else(|| g.kubeconfig.as_ref().map(|p| p.display().to_string())),
        image_archive: a.image_archive.clone(),
        image_archive_sha256: a.image_archive_sha256.clone(),
        next_hop: Some(a.next_hop),
        windows_build: a.windows_build.or_else(|| windows_build_of(&s)),
        validate: !a.no_validate,
        // The runtime is asked first, so the pause plan pulls or imports only what it lacks, and says so.
        pause: crate::pause::observe(&s, &mut host::Native).await,
    };
    let plans = crate::join::plan(&s, &inputs)?;
    if dry_run {
        return step_command("join", &s, plans, true, a.out.output);
    }
    let started = std::time::Instant::now();
    if inputs.kubeconfig.is_some()
        && s.os == Os::host()
        && !preflight_passed(g, &s, boot.installed_now.as_deref()).await?
    {
        return Ok(exit::VALIDATION_FAILED);
    }
    let opts = crate::join::run::Options {
        context: g.context.clone(),
        quiet: g.quiet,
        allow_insecure: a.insecure_skip_tls_verify,
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
    if a.no_validate {
        return Ok(exit::OK);
    }
    let Some(kubeconfig) = &a.validate_kubeconfig else {
        println!(
            "validate: skipped: the matrix creates a namespace, pods and Services, which the node's own credentials \
             may not; give --validate-kubeconfig FILE, or run `wkjoin validate --node {}` as a cluster admin",
            s.node_name
        );
        return Ok(exit::OK);
    };
    println!("validate: the connectivity matrix for node {} ...", s.node_name);
    let (sample, probe) = (a.sample_image.as_deref(), a.probe_image.as_deref());
    super::validate::for_joined_node(&s, kubeconfig, sample, probe, a.out.output).await
}

/// Node credentials that skip TLS verification are refused before anything changes, unless the user accepted
/// the risk with --insecure-skip-tls-verify (the config step's checks then pass it, with a warning).
fn refuse_insecure(g: &GlobalArgs, a: &JoinArgs) -> Result<(), AppError> {
    let Some(path) = &g.kubeconfig else { return Ok(()) };
    let input = config::Input::File(path.clone());
    // A kubeconfig that cannot be read is the config step's to report, with its fix.
    let Ok(resolved) = config::source::load(&input, g.context.as_deref()) else { return Ok(()) };
    if resolved.insecure_skip_tls_verify && !a.insecure_skip_tls_verify {
        return Err(AppError::Insecure { kubeconfig: path.display().to_string() });
    }
    Ok(())
}

/// What a pasted `kubeadm join` command leaves for the rest of the join.
struct Bootstrap {
    /// The global flags, with --kubeconfig naming the node's credentials once the token got them.
    global: GlobalArgs,
    /// Where the credentials come from, for the dry-run plan.
    source: Option<String>,
    /// The kubeconfig this run installed, if it did (a failed preflight says so).
    installed_now: Option<String>,
}

/// kubeadm's join command, pasted: the token's CSR gives the node its credentials first, and the rest of the
/// join (cluster settings included) then runs with them, as with --kubeconfig.
async fn bootstrap(g: &GlobalArgs, a: &JoinArgs) -> Result<Bootstrap, AppError> {
    let token_args = TokenArgs {
        token: a.token.clone(),
        server: a.api_server.as_ref().map(|a| if a.contains("://") { a.clone() } else { format!("https://{a}") }),
        ca_file: a.ca_file.clone(),
        discovery_token_ca_cert_hash: a.discovery_token_ca_cert_hash.clone(),
        csr_timeout: a.csr_timeout,
    };
    let mut boot = Bootstrap { global: g.clone(), source: None, installed_now: None };
    let Some(req) = super::config::token_request(&token_args)? else { return Ok(boot) };
    let s0 = common::layered_settings(g, &a.node)?;
    let target = s0.layout().kubeconfig();
    boot.source = Some(req.describe());
    if a.dry.dry_run {
        return Ok(boot);
    }
    if Path::new(&target).exists() {
        // A re-run (even after the token expired) uses the credential the first run got; the config step checks
        // it is this node's, for this cluster.
        println!("config: using the node's credentials already in {target}");
        boot.global.kubeconfig = Some(PathBuf::from(&target));
        return Ok(boot);
    }
    let opts = config::check::Options {
        node_name: s0.node_name.clone(),
        kubelet_version: s0.kubernetes_version.exact(),
        allow_insecure: false,
        timeout: std::time::Duration::from_secs(10),
    };
    let done = config::token::run(&req, &opts, &target, &mut host::Native).await?;
    // Recorded at once: the credential is wkjoin's, so `wkjoin reset` removes it even if the join stops in
    // preflight.
    let state_path = s0.layout().state_file();
    let mut state = State::load(Path::new(&state_path))?.unwrap_or_default();
    state.node_name.get_or_insert_with(|| s0.node_name.clone());
    state.save(Path::new(&state_path), &mut host::Native)?;
    println!("config: the node's credentials from {} are in {}", req.describe(), done.path);
    boot.global.kubeconfig = Some(PathBuf::from(&target));
    boot.installed_now = Some(target);
    Ok(boot)
}

/// Preflight before the first change: a failure is printed with what (if anything) was already installed,
/// warnings are passed on, and the count of passed checks is printed.
async fn preflight_passed(g: &GlobalArgs, s: &Settings, installed_now: Option<&str>) -> Result<bool, AppError> {
    let report = super::preflight::report(g, s, false).await;
    if !report.ok {
        preflight::print(&report, OutputFormat::Table)?;
        let changed = match installed_now {
            Some(path) => format!(
                "only the node's credentials were installed, in {path} (a re-run uses them; `wkjoin reset` removes them)"
            ),
            None => "nothing was changed".to_string(),
        };
        eprintln!("error: preflight checks failed: fix them (see above) and run `wkjoin join` again; {changed}");
        return Ok(false);
    }
    for c in report.checks.iter().filter(|c| c.status == Status::Warn) {
        eprintln!(
            "preflight warning: {}: {}{}",
            c.name,
            c.detail,
            c.fix.as_deref().map(|f| format!(" (fix: {f})")).unwrap_or_default()
        );
    }
    println!("preflight: {} checks passed", report.checks.iter().filter(|c| c.status == Status::Pass).count());
    Ok(true)
}
