//! `wkjoin config`: the node's cluster credentials — read (`source`), validated (`check`), installed
//! self-contained and owner-only (`install`), or minted as a node identity by an admin (`mint`).

pub mod check;
pub mod install;
pub mod mint;
pub mod source;
pub mod token;

use crate::host::HostError;
use crate::plan::{Action, Contents, Plan, Step};
use crate::settings::Settings;

pub use source::{Input, Resolved, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "{} of {} checks failed for {}: {} (fix the failures listed above and run it again)",
        report.failed, report.checks.len(), report.kubeconfig,
        target.as_ref().map(|t| format!("nothing was written to {t}")).unwrap_or_else(|| "these credentials would not work for the node".into())
    )]
    ChecksFailed { report: Box<check::Report>, target: Option<String> },
    #[error(transparent)]
    Mint(#[from] mint::MintError),
    #[error(transparent)]
    Token(#[from] token::TokenError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("the config step cannot `{action}`: give the node's kubeconfig with --kubeconfig FILE")]
    NotPlanned { action: String },
}

/// `source`: the kubeconfig given with `--kubeconfig`/`--from`, installed as `<root>/config`.
pub fn plan(s: &Settings, source: Option<&str>) -> Plan {
    let mut plan = Plan::new(Step::Config, "install the node's cluster credentials (owner-only)");
    match source {
        Some(src) => {
            plan.push(Action::WriteFile {
                path: s.layout().kubeconfig(),
                contents: Contents::Credentials { source: src.to_string() },
                private: true,
            });
        }
        None => {
            plan.push(Action::Deferred {
                what: format!("install credentials as {}", s.layout().kubeconfig()),
                needs: "--kubeconfig names the node's kubeconfig".into(),
            });
        }
    }
    plan
}

/// Applies the config plan as printed: a `WriteFile` of credentials installs them checked, self-contained and
/// owner-only ([`install::run`]); the plan holds nothing else.
pub async fn apply(
    plan: &Plan,
    context: Option<&str>,
    opts: &check::Options,
    host: &mut impl crate::host::Host,
) -> Result<Vec<install::Installed>, ConfigError> {
    let mut done = Vec::new();
    for a in &plan.actions {
        match a {
            Action::WriteFile { path, contents: Contents::Credentials { source }, .. } => {
                done.push(install::run(&Input::parse(source), context, opts, path, host).await?);
            }
            other => return Err(ConfigError::NotPlanned { action: other.to_string() }),
        }
    }
    Ok(done)
}
