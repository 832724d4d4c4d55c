//! The pipeline: fetch → pause → config → routes → start → validate, as one list of plans.

pub mod run;

use crate::plan::{NextHop, Plan};
use crate::settings::Settings;
use crate::start::services;
use crate::{config, fetch, pause, routes, validate};

/// Inputs of a join beyond the node settings.
#[derive(Debug, Clone, Default)]
pub struct JoinInputs {
    /// The node's kubeconfig to install.
    pub kubeconfig: Option<String>,
    pub image_archive: Option<String>,
    /// The archive's SHA-256 (else its published `.sha256`).
    pub image_archive_sha256: Option<String>,
    pub next_hop: Option<NextHop>,
    pub windows_build: Option<u32>,
    pub validate: bool,
    /// What the pause step found in the runtime.
    pub pause: pause::Observed,
}

pub fn plan(s: &Settings, inputs: &JoinInputs) -> Result<Vec<Plan>, pause::ImageError> {
    let archive = inputs.image_archive.as_deref();
    let sha256 = inputs.image_archive_sha256.as_deref();
    let pause = pause::plan_observed(s, archive, sha256, inputs.windows_build, inputs.pause)?;
    let mut plans = vec![
        fetch::plan(s),
        pause,
        config::plan(s, inputs.kubeconfig.as_deref()),
        routes::plan(s, inputs.next_hop.unwrap_or(NextHop::NodeIp)),
        services::plan(s, s.kubernetes_version.exact(), &pause::pause_image(s)),
    ];
    if inputs.validate {
        plans.push(validate::plan(s));
    }
    Ok(plans)
}
