//! Executes a plan through a host backend, action by action, stopping at the first failure.

use crate::host::{Host, HostError};
use crate::layout::Os;
use crate::plan::{Action, Contents, Plan, Step};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{step}: {action}: {source}")]
    Host { step: Step, action: String, source: HostError },
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
}

/// Applies every action of `plan` in order.
pub fn apply(plan: &Plan, os: Os, host: &mut impl Host) -> Result<(), ApplyError> {
    if os != Os::host() {
        return Err(ApplyError::ForeignOs { plan_os: os, host_os: Os::host() });
    }
    for action in &plan.actions {
        let step = plan.step;
        let wrap = |source| ApplyError::Host { step, action: action.to_string(), source };
        tracing::debug!(%step, "{action}");
        match action {
            Action::CreateDir { path } => host.create_dir(Path::new(path)).map_err(wrap)?,
            Action::WriteFile { path, contents, private } => {
                let bytes =
                    match contents {
                        Contents::Text { text } => text.clone().into_bytes(),
                        Contents::Credentials { source } => std::fs::read(source)
                            .map_err(|e| ApplyError::ReadSource { step, source_path: source.clone(), source: e })?,
                        Contents::ClusterCa { kubeconfig } => crate::config::ca::cluster_ca_pem(Path::new(kubeconfig))
                            .map_err(|e| ApplyError::ReadSource { step, source_path: kubeconfig.clone(), source: e })?,
                    };
                host.write_file(Path::new(path), &bytes, *private).map_err(wrap)?;
            }
            Action::RemovePath { path } => host.remove_path(Path::new(path)).map_err(wrap)?,
            Action::CreateCgroup { path } => host.create_cgroup(path).map_err(wrap)?,
            Action::InstallSelf { path } => install_self(Path::new(path)).map_err(wrap)?,
            Action::Run { program, args, .. } => {
                let out = host.run(program, args).map_err(wrap)?;
                if out.status != Some(0) {
                    return Err(wrap(HostError::CommandFailed {
                        command: format!("{program} {}", args.join(" ")),
                        status: out.status,
                        stderr: out.stderr,
                    }));
                }
            }
            Action::Deferred { what, needs } => {
                return Err(ApplyError::Deferred { step, action: what.clone(), needs: needs.clone() });
            }
            other => return Err(ApplyError::Unsupported { step, action: other.to_string() }),
        }
    }
    Ok(())
}

/// Copies the running executable to `target` unless it already holds the same bytes; the copy is staged
/// beside the target and renamed over it, so the target is never half-written.
fn install_self(target: &Path) -> Result<(), HostError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| HostError::Io { op, path, source }
    };
    let me = std::env::current_exe().map_err(io("find", Path::new("the running wkjoin executable")))?;
    let mine = std::fs::read(&me).map_err(io("read", &me))?;
    if std::fs::read(target).is_ok_and(|theirs| theirs == mine) {
        return Ok(());
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let staged = target.with_extension("new");
    std::fs::write(&staged, &mine).map_err(io("write", &staged))?;
    crate::host::set_executable(&staged)?;
    crate::host::replace_file(&staged, target, None)
}
