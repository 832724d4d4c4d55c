//! `wkjoin reset`: what wkjoin left on this host observed, planned and undone (or the plan printed).

use super::common;
use super::{AppError, exit};
use crate::cli::{GlobalArgs, ResetArgs};
use crate::host;
use crate::layout::Os;
use crate::plan::render_all;
use crate::reset::{self, ResetError, ResetOptions};
use std::io::Write;

pub async fn run(g: &GlobalArgs, a: &ResetArgs) -> Result<i32, AppError> {
    // Reset must work with the cluster down: discover leniently.
    let s = common::resolve_node_settings(g, &a.node, true).await?;
    if s.os != Os::host() {
        return Err(ResetError::ForeignOs { os: s.os, host: Os::host() }.into());
    }
    let opts = ResetOptions { delete_node: a.delete_node, purge: a.purge };
    let kubeconfig = g.kubeconfig.as_ref().map(|p| p.display().to_string());
    let _lock = if a.dry.dry_run { None } else { common::lock(&s, "wkjoin reset")? };
    let observed = reset::observe(&s, kubeconfig.as_deref(), &opts).await?;
    let plan = reset::plan(&s, &observed, &opts);
    let mut stdout = std::io::stdout().lock();
    let left_alone = |out: &mut std::io::StdoutLock| -> std::io::Result<()> {
        for l in &observed.left_alone {
            writeln!(out, "not ours, left alone: {l}")?;
        }
        Ok(())
    };
    if plan.actions.is_empty() {
        writeln!(stdout, "{}", plan.summary)?;
        left_alone(&mut stdout)?;
        return Ok(exit::OK);
    }
    if a.dry.dry_run {
        let header = format!("wkjoin reset plan for node {} ({}, root {})", s.node_name, s.os, s.root_dir);
        stdout.write_all(render_all(&header, &[plan]).as_bytes())?;
        left_alone(&mut stdout)?;
        return Ok(exit::OK);
    }
    // Services go through the machine's manager; the Node is marked (or deleted) with the recorded credentials.
    let files = crate::start::supervisor_files(&s.layout(), false);
    let mut system = host::System::new(host::Manager::detect(false), files, Vec::new());
    let mut cluster = crate::cluster::KubeCluster::new(None, None);
    reset::apply(&plan, s.os, &mut system, &mut cluster).await?;
    writeln!(stdout, "reset node {}: {} actions done; nothing of wkjoin's is left", s.node_name, plan.actions.len())?;
    left_alone(&mut stdout)?;
    Ok(exit::OK)
}
