//! `wkjoin routes`: host-gateway routes reconciled once (from the API server or a Node list file), under a
//! Node watch, or as the Windows service wkjoin-routes.

use super::common;
use super::{AppError, exit};
use crate::cli::{GlobalArgs, RoutesArgs};
use crate::layout::{Layout, Os};
use crate::routes::reconcile;

pub async fn run(g: &GlobalArgs, a: &RoutesArgs) -> Result<i32, AppError> {
    if a.windows_service {
        // Under the SCM: connect to it first (it waits 30 s), then resolve and watch inside the service.
        // The flags carry every setting, so an unreachable cluster (after a reboot) only warns.
        let (g, node, hop) = (g.clone(), a.node.clone(), a.next_hop);
        let root = g.root_dir.clone().unwrap_or_else(|| Os::host().default_root_dir().to_string());
        reconcile::watch_as_service(&Layout::new(Os::host(), root).log_dir(), move || async move {
            let s = common::resolve_settings(&g, &node, true).await?;
            let (client, url) = common::client_and_url(&g).await?;
            reconcile::watch(&client, &s, hop, reconcile::api_server_address(&url)).await?;
            Ok::<(), AppError>(())
        })?;
        return Ok(exit::OK);
    }
    let dry_run = a.dry.dry_run;
    let s = common::resolve_settings(g, &a.node, dry_run).await?;
    if let Some(file) = &a.nodes_file {
        let report = reconcile::once_from_file(file, &s, a.next_hop, dry_run).await?;
        reconcile::print(&report, a.out.output, dry_run)?;
        return Ok(exit::OK);
    }
    let (client, url) = common::client_and_url(g).await?;
    let api = reconcile::api_server_address(&url);
    if a.watch {
        reconcile::watch(&client, &s, a.next_hop, api).await?;
        return Ok(exit::OK);
    }
    let report = reconcile::once(&client, &s, a.next_hop, api, dry_run).await?;
    reconcile::print(&report, a.out.output, dry_run)?;
    Ok(exit::OK)
}
