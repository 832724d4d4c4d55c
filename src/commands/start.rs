//! `wkjoin start`: kubelet and kube-proxy under the service manager (or the plan of it), `--stop`, and the
//! detached supervisor itself (`--supervise`).

use super::common::{self, step_command};
use super::{AppError, exit};
use crate::cli::{GlobalArgs, OutputFormat, StartArgs};
use crate::layout::{Layout, Os};
use crate::pause;
use crate::start::services;

pub async fn run(g: &GlobalArgs, a: &StartArgs) -> Result<i32, AppError> {
    if a.supervise || a.stop {
        let os = Os::host();
        let layout = Layout::new(os, g.root_dir.clone().unwrap_or_else(|| os.default_root_dir().to_string()));
        if a.supervise {
            crate::start::supervise_main(&layout).await?;
            return Ok(exit::OK);
        }
        let _lock = crate::host::lock::lock_root(std::path::Path::new(&layout.root), "wkjoin start --stop")?;
        if crate::start::stop(&layout).await? {
            println!("stopped the wkjoin supervisor, kubelet and kube-proxy");
        } else {
            println!("unchanged: no wkjoin supervisor was running (no kubelet or kube-proxy of {} runs)", layout.root);
        }
        return Ok(exit::OK);
    }
    let s = common::resolve_node_settings(g, &a.node, a.dry.dry_run).await?;
    if a.dry.dry_run {
        let plan = services::plan(&s, s.kubernetes_version.exact(), &pause::pause_image(&s));
        return step_command("start", &s, vec![plan], true, OutputFormat::Table);
    }
    let _lock = common::lock(&s, "wkjoin start")?;
    crate::start::start(&s, g.kubeconfig.as_deref(), a.foreground).await?;
    Ok(exit::OK)
}
