//! `wkjoin config`: the node's credentials checked and installed (from a kubeconfig or by TLS bootstrap with a
//! token), or the plan of it; `config check` and `config mint`.

use super::common::{self, step_command, write_data};
use super::{AppError, exit};
use crate::cli::{ConfigAction, ConfigArgs, ConfigCheckArgs, GlobalArgs, OutputFormat, TokenArgs};
use crate::config::{self, ConfigError};
use crate::host;
use crate::settings::Settings;
use std::io::Write;
use std::time::Duration;

pub async fn run(g: &GlobalArgs, a: &ConfigArgs) -> Result<i32, AppError> {
    if let Some(action) = &a.action {
        return run_action(g, action).await;
    }
    // Credentials are checked before wkjoin talks to the cluster with them: no discovery here.
    let s = common::layered_settings(g, &a.node)?;
    let bootstrap = token_request(&a.token)?;
    let source = match &bootstrap {
        Some(req) => Some(req.describe()),
        None => a.from.clone().or_else(|| g.kubeconfig.as_ref().map(|p| p.display().to_string())),
    };
    if a.dry.dry_run {
        return step_command("config", &s, vec![config::plan(&s, source.as_deref())], true, a.out.output);
    }
    let source = source.ok_or(AppError::NoConfigSource)?;
    let _lock = common::lock(&s, "wkjoin config")?;
    let input = config::Input::parse(&source);
    let opts = check_options(&s, &a.check);
    let target = s.layout().kubeconfig();
    let installed = match &bootstrap {
        Some(req) => config::token::run(req, &opts, &target, &mut host::Native).await,
        None => config::install::run(&input, g.context.as_deref(), &opts, &target, &mut host::Native).await,
    };
    let mut stdout = std::io::stdout().lock();
    match installed {
        Ok(done) if a.out.output != OutputFormat::Table => write_data(&mut stdout, a.out.output, &done)?,
        Ok(done) => {
            done.report.print(&mut stdout, a.out.output)?;
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
            report.print(&mut stdout, a.out.output)?;
            return Err(ConfigError::ChecksFailed { report, target }.into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(exit::OK)
}

/// `wkjoin config --token ...` (and a pasted `kubeadm join`): the checked TLS bootstrap request, if a token was
/// given.
pub(super) fn token_request(t: &TokenArgs) -> Result<Option<config::token::Request>, AppError> {
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
async fn run_action(g: &GlobalArgs, action: &ConfigAction) -> Result<i32, AppError> {
    match action {
        ConfigAction::Check { from, check, node, out } => {
            let s = common::layered_settings(g, node)?;
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
