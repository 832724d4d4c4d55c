//! `wkjoin preflight`: the host's and the cluster's facts gathered and every check evaluated; `join` runs the
//! same report before it changes anything.

use super::common;
use super::{AppError, exit};
use crate::cli::{GlobalArgs, PreflightArgs};
use crate::layout::Os;
use crate::preflight::{self, PreflightError};
use crate::settings::Settings;
use crate::state::State;

pub async fn run(g: &GlobalArgs, a: &PreflightArgs) -> Result<i32, AppError> {
    // An unreachable cluster is a failed check, not an error: discover as leniently as --dry-run does.
    let s = common::resolve_node_settings(g, &a.node, true).await?;
    if s.os != Os::host() {
        return Err(PreflightError::ForeignOs { os: s.os, host: Os::host() }.into());
    }
    let report = report(g, &s, a.hyperv_isolation).await;
    preflight::print(&report, a.out.output)?;
    Ok(if report.ok { exit::OK } else { exit::VALIDATION_FAILED })
}

/// Gathers the host's and the cluster's facts and evaluates every preflight check.
pub(super) async fn report(g: &GlobalArgs, s: &Settings, hyperv_isolation: bool) -> preflight::Report {
    let state = State::load(std::path::Path::new(&s.layout().state_file())).ok().flatten();
    let api = match common::client_and_url(g).await {
        Ok((c, server)) => preflight::probe_api(&c, Some(server)).await,
        Err(e) => preflight::facts::Api::NoKubeconfig { reason: e.to_string() },
    };
    let facts = preflight::gather_host(s, state.as_ref(), api);
    let checks = preflight::evaluate(&facts, s, &preflight::Options { hyperv_isolation });
    preflight::Report::new(s, checks)
}
