//! `wkjoin status`: what earlier runs recorded in this host's state file, step by step.

use super::common::write_data;
use super::{AppError, exit};
use crate::cli::{GlobalArgs, OutputFormat, StatusArgs};
use crate::layout::{Layout, Os};
use crate::plan::Step;
use crate::state::State;
use serde::Serialize;
use std::io::Write;

pub fn run(g: &GlobalArgs, a: &StatusArgs) -> Result<i32, AppError> {
    let os = Os::host();
    let layout = Layout::new(os, g.root_dir.clone().unwrap_or_else(|| os.default_root_dir().to_string()));
    let path = layout.state_file();
    let state = State::load(std::path::Path::new(&path))?;
    let mut out = std::io::stdout().lock();
    match (a.out.output, state) {
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
            for line in owned(&st) {
                writeln!(out, "{line}")?;
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

/// What the state file records as wkjoin's: what `reset` would remove, and nothing else.
fn owned(st: &State) -> Vec<String> {
    let mut out = Vec::new();
    let release = |what: &str, r: &crate::state::InstalledRelease| {
        let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
        format!("{what} {} in {}: {}", r.version.as_deref().unwrap_or("(version unknown)"), r.bin_dir, names.join(", "))
    };
    if let Some(r) = &st.binaries {
        out.push(release("node binaries", r));
    }
    if let Some(r) = &st.previous_binaries {
        out.push(release("kept for --rollback:", r));
    }
    if let Some(r) = &st.cni_plugins {
        out.push(release("CNI plugins", r));
    }
    if let Some(n) = &st.hns_network {
        out.push(format!("HNS network {} ({})", n.name, n.subnet));
    }
    if !st.routes.is_empty() {
        out.push(format!("routes: {}", st.routes.len()));
    }
    if let Some(rc) = &st.runtime_config {
        out.push(format!("runtime config changed: {} (the original kept for reset)", rc.file));
    }
    if out.is_empty() {
        return out;
    }
    out.insert(0, "wkjoin's own here (what `wkjoin reset` removes):".to_string());
    out.iter().enumerate().map(|(i, l)| if i == 0 { l.clone() } else { format!("  {l}") }).collect()
}
