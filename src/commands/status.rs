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
