//! `wkjoin pause`: the pod infrastructure image agreed with the container runtime (or the plan of it).

use super::common::{self, step_command};
use super::{AppError, exit};
use crate::cli::{GlobalArgs, OutputFormat, PauseArgs};
use crate::settings::windows_build_of;
use crate::{host, pause};

pub async fn run(g: &GlobalArgs, a: &PauseArgs) -> Result<i32, AppError> {
    let s = common::resolve_node_settings(g, &a.node, a.dry.dry_run).await?;
    // Asked first, so the plan pulls or imports only what the runtime lacks, and says so.
    let observed = pause::observe(&s, &mut host::Native).await;
    let build = a.windows_build.or_else(|| windows_build_of(&s));
    let sha256 = a.image_archive_sha256.as_deref();
    let plan = pause::plan_observed(&s, a.image_archive.as_deref(), sha256, build, observed)?;
    if a.dry.dry_run {
        return step_command("pause", &s, vec![plan], true, OutputFormat::Table);
    }
    let _lock = common::lock(&s, "wkjoin pause")?;
    let report = pause::apply(&s, &plan, &mut host::Native).await?;
    let (changed, line) = report.summary(&pause::pause_image(&s));
    println!("{}: {line}", if changed { "changed" } else { "unchanged" });
    Ok(exit::OK)
}
