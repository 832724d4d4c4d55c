//! `wkjoin fetch`: the node binaries downloaded, verified and installed (or the plan of it), and the report.

use super::common::{self, step_command, write_data};
use super::{AppError, exit};
use crate::cli::{FetchArgs, GlobalArgs, OutputFormat};
use crate::fetch::progress::Progress;
use crate::fetch::{self, FetchInput, Outcome, Report};
use crate::settings::{self, Sources};
use std::io::Write;

pub async fn run(g: &GlobalArgs, a: &FetchArgs) -> Result<i32, AppError> {
    // Fetching only writes files: Windows binaries can be fetched on Linux, named after this host.
    let sources = Sources { host_name_for_any_os: true, ..common::sources(g, &a.node) };
    let s = settings::resolve_settings(&sources, common::cluster(g).await, a.dry.dry_run).await?;
    let input = FetchInput { archive: a.archive.clone(), sha512: a.sha512.clone(), rollback: a.rollback };
    if a.dry.dry_run {
        return step_command("fetch", &s, vec![fetch::plan_with(&s, &input)], true, a.out.output);
    }
    let _lock = common::lock(&s, "wkjoin fetch")?;
    let progress = Progress::new(g.quiet);
    let result = fetch::run(&s, &input, &progress).await;
    progress.finish();
    let (_, report) = result?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    print_report(&mut std::io::stdout().lock(), &report, a.out.output)?;
    Ok(exit::OK)
}

/// The CNI plugins part: what was installed (or found intact), and what was left alone.
fn print_plugins(w: &mut impl Write, p: &Report) -> Result<(), AppError> {
    let r = &p.installed;
    let version = r.version.as_deref().unwrap_or("(version unknown)");
    match (p.outcome, r.files.is_empty()) {
        (Outcome::Installed, _) => writeln!(
            w,
            "installed CNI plugins {version} into {} ({}; verified: {})",
            r.bin_dir,
            r.source,
            p.verified_with.as_deref().unwrap_or("-")
        )?,
        (_, false) => writeln!(w, "CNI plugins {version} are already installed in {} and intact", r.bin_dir)?,
        (_, true) => writeln!(w, "CNI plugins: nothing to install into {}", r.bin_dir)?,
    }
    for f in &r.files {
        writeln!(w, "  {}", f.path)?;
    }
    for path in &p.left_alone {
        writeln!(w, "  {path}: not installed by wkjoin, left alone")?;
    }
    Ok(())
}

/// Sizes for people, in the progress bar's units: 91.5 MiB.
fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn print_report(w: &mut impl Write, report: &Report, format: OutputFormat) -> Result<(), AppError> {
    if format != OutputFormat::Table {
        return write_data(w, format, report);
    }
    let r = &report.installed;
    let version = r.version.as_deref().unwrap_or("(version unknown)");
    match report.outcome {
        Outcome::Installed => {
            writeln!(w, "installed Kubernetes {version} ({}/{}) into {}", r.os, r.arch, r.bin_dir)?;
            let how = if report.from_cache {
                "from the cache, nothing downloaded".to_string()
            } else if report.downloaded_bytes > 0 {
                format!("{} downloaded", human_bytes(report.downloaded_bytes))
            } else {
                "a local file".to_string()
            };
            writeln!(w, "  source:   {} ({how})", r.source)?;
            writeln!(w, "  verified: {}", report.verified_with.as_deref().unwrap_or("-"))?;
            writeln!(w, "  sha512:   {}", r.archive_sha512)?;
        }
        Outcome::AlreadyInstalled => writeln!(
            w,
            "Kubernetes {version} is already installed in {} and intact ({} binaries checked): nothing was downloaded",
            r.bin_dir,
            r.files.len()
        )?,
        Outcome::RolledBack => writeln!(w, "rolled back to Kubernetes {version} in {}", r.bin_dir)?,
    }
    let width = r.files.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &r.files {
        writeln!(w, "  {:<width$}  {:<10} {}", f.name, f.version.as_deref().unwrap_or("-"), f.path)?;
    }
    if let Some(plugins) = &report.cni_plugins {
        print_plugins(w, plugins)?;
    }
    if let Some(p) = &report.previous {
        let pv = p.version.as_deref().unwrap_or("(version unknown)");
        match report.outcome {
            Outcome::RolledBack => {
                writeln!(w, "Kubernetes {pv} is kept in {}: `wkjoin fetch --rollback` returns to it", p.bin_dir)?
            }
            _ => writeln!(
                w,
                "the previous binaries (Kubernetes {pv}) are kept in {}: `wkjoin fetch --rollback` restores them",
                p.bin_dir
            )?,
        }
    }
    Ok(())
}
