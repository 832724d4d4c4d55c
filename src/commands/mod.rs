//! Runs a parsed command line: one module per command, each resolving its settings and calling its step's
//! functions; `run` only dispatches. `AppError` gathers the steps' errors and maps them to exit codes.

mod common;
mod config;
mod fetch;
mod join;
mod log_runner;
mod pause;
mod preflight;
mod reset;
mod routes;
mod start;
mod status;
mod validate;

use crate::apply::ApplyError;
use crate::cli::{Cli, Command, CompletionsArgs};
use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::pause::ImageError;
use crate::reset::ResetError;
use crate::settings::{DiscoverError, ResolveError, SettingsError};
use crate::state::StateError;

/// Exit codes, as documented in the README and `wkjoin --help`.
pub use crate::output::exit;

/// Every error a command can end with; [`AppError::exit_code`] maps it to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
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
    Reconcile(#[from] crate::routes::reconcile::ReconcileError),
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
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    #[error(
        "{kubeconfig} sets insecure-skip-tls-verify: the node would send its credentials to an API server it cannot authenticate; put the cluster CA in certificate-authority-data (or accept the risk with --insecure-skip-tls-verify); nothing was changed"
    )]
    Insecure { kubeconfig: String },
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Settings(_) => exit::USAGE,
            AppError::Resolve(ResolveError::Settings(_)) => exit::USAGE,
            AppError::Apply(ApplyError::ForeignOs { .. }) => exit::USAGE,
            AppError::Fetch(FetchError::ForeignRoot { .. }) => exit::USAGE,
            AppError::NotAvailable { .. } => exit::NOT_AVAILABLE,
            AppError::Config(ConfigError::ChecksFailed { .. }) => exit::VALIDATION_FAILED,
            AppError::NoConfigSource => exit::USAGE,
            AppError::Insecure { .. } => exit::USAGE,
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
        Command::Preflight(a) => preflight::run(g, a).await,
        Command::Fetch(a) => fetch::run(g, a).await,
        Command::Pause(a) => pause::run(g, a).await,
        Command::Config(a) => config::run(g, a).await,
        Command::Routes(a) => routes::run(g, a).await,
        Command::Start(a) => start::run(g, a).await,
        Command::Join(a) => join::run(g, a).await,
        Command::Validate(a) => validate::run(g, a).await,
        Command::Reset(a) => reset::run(g, a).await,
        Command::Status(a) => status::run(g, a),
        Command::Completions(a) => completions(a),
        Command::LogRunner(a) => log_runner::run(a),
    }
}

/// `wkjoin completions SHELL`: the script, from the same clap definition that parses the command line.
fn completions(a: &CompletionsArgs) -> Result<i32, AppError> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(a.shell, &mut cmd, "wkjoin", &mut std::io::stdout());
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_usage_errors_however_they_arrive() {
        let direct = AppError::from(SettingsError::NoNodeName);
        let resolved = AppError::from(ResolveError::from(SettingsError::NoNodeName));
        assert_eq!((direct.exit_code(), resolved.exit_code()), (exit::USAGE, exit::USAGE));
        assert_eq!(direct.to_string(), resolved.to_string());
        let client = crate::kube_client::ClientError { path: None, message: "x".into() };
        assert_eq!(AppError::from(ResolveError::from(client)).exit_code(), exit::FAILED);
    }
}
