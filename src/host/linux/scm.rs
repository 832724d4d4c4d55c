//! The Windows Service Control Manager does not exist on Linux: the same names as `host/windows/scm.rs`, each
//! refusing. Linux runs the node services under systemd units or the wkjoin supervisor.

use crate::host::HostError;
use crate::host::scm_calls::ScmCall;
use crate::host::service::ServiceSpec;
use std::path::Path;

fn unsupported(what: &str) -> HostError {
    HostError::Unsupported { what: format!("{what} (the Windows Service Control Manager)") }
}

pub fn install_service(spec: &ServiceSpec) -> Result<Vec<ScmCall>, HostError> {
    Err(unsupported(&format!("installing service {}", spec.name)))
}

pub fn service_running(name: &str) -> Result<bool, HostError> {
    Err(unsupported(&format!("querying service {name}")))
}

pub fn start_service(name: &str) -> Result<(), HostError> {
    Err(unsupported(&format!("starting service {name}")))
}

/// Body of a service: runs until the receiver fires; Err is its failure message.
pub type ServiceBody = Box<dyn FnOnce(tokio::sync::oneshot::Receiver<()>) -> Result<(), String> + Send>;

pub fn run_as_service(name: &str, _log: Option<&Path>, _body: ServiceBody) -> Result<(), HostError> {
    Err(unsupported(&format!("running as service {name} (`--windows-service`)")))
}
