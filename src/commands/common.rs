//! What the commands share: their settings sources taken from the command line, the one kube client of a run,
//! and the dry-run printing of plans.

use super::{AppError, exit};
use crate::cli::{GlobalArgs, NodeArgs, OutputFormat};
use crate::kube_client::{self, ClientError};
use crate::layout::Os;
use crate::plan::{Plan, render_all};
use crate::settings::{self, Settings, Sources};
use serde::Serialize;
use std::io::Write;

/// The settings sources this command line gives (flags and env, --os, --root-dir, --config).
pub fn sources(g: &GlobalArgs, node: &NodeArgs) -> Sources {
    Sources {
        flags: node.to_partial(),
        os: node.os,
        root_dir: g.root_dir.clone(),
        config_file: g.config.clone(),
        host_name_for_any_os: false,
    }
}

/// The cluster to read settings from: only when a kubeconfig was given explicitly (flag or $KUBECONFIG).
pub async fn cluster(g: &GlobalArgs) -> settings::Cluster {
    if g.kubeconfig.is_none() && std::env::var_os("KUBECONFIG").is_none() {
        return None;
    }
    Some(build_client(g).await.map(|(client, _)| client))
}

/// Settings from flags/env, the settings file, the cluster and defaults; `lenient`: an unreachable cluster warns.
pub async fn resolve_settings(g: &GlobalArgs, node: &NodeArgs, lenient: bool) -> Result<Settings, AppError> {
    Ok(settings::resolve_settings(&sources(g, node), cluster(g).await, lenient).await?)
}

/// As [`resolve_settings`], and what the container runtime says of itself when planning for this host.
pub async fn resolve_node_settings(g: &GlobalArgs, node: &NodeArgs, lenient: bool) -> Result<Settings, AppError> {
    Ok(settings::resolve_node_settings(&sources(g, node), cluster(g).await, lenient).await?)
}

/// Settings without asking the cluster (credentials are checked before wkjoin talks to it with them).
pub fn layered_settings(g: &GlobalArgs, node: &NodeArgs) -> Result<Settings, AppError> {
    Ok(settings::layered_settings(&sources(g, node), None, None)?)
}

/// The root dir's lock for a command that changes the host: one wkjoin at a time per root (a foreign OS's root,
/// which this host cannot hold, is only planned for).
pub fn lock(s: &Settings, what: &str) -> Result<Option<crate::host::lock::RootLock>, AppError> {
    if s.os != Os::host() && !std::path::Path::new(&s.root_dir).is_absolute() {
        return Ok(None);
    }
    Ok(Some(crate::host::lock::lock_root(std::path::Path::new(&s.root_dir), what)?))
}

/// The one kube client of a run.
pub async fn client(g: &GlobalArgs) -> Result<kube::Client, AppError> {
    Ok(client_and_url(g).await?.0)
}

/// The client and the API server URL it talks to.
pub async fn client_and_url(g: &GlobalArgs) -> Result<(kube::Client, String), AppError> {
    Ok(build_client(g).await?)
}

async fn build_client(g: &GlobalArgs) -> Result<(kube::Client, String), ClientError> {
    let source = match &g.kubeconfig {
        Some(path) => kube_client::Source::File(path),
        None => kube_client::Source::Default,
    };
    let opts = kube_client::Options { context: g.context.clone(), ..Default::default() };
    kube_client::build(source, &opts).await
}

#[derive(Serialize)]
struct PlanOutput<'a> {
    node: &'a str,
    os: Os,
    root_dir: &'a str,
    settings: &'a Settings,
    plans: &'a [Plan],
}

/// Prints a step's plans (a dry run), or says the command is not available for real in this build.
pub fn step_command(
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

/// JSON or YAML on `w`, as every command's `-o json|yaml` writes it.
pub fn write_data(w: &mut impl Write, format: OutputFormat, value: &impl Serialize) -> Result<(), AppError> {
    Ok(crate::output::write_data(w, format, value)?)
}
