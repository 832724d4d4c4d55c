//! One pause image agreed by everyone: the runtime's sandbox image set in its config file (only that changes),
//! and how the runtime's service is restarted afterwards.

use super::{ImageError, sha256_hex};
use crate::plan::Action;
use crate::settings::Settings;

/// How long a restarted runtime gets to answer over CRI again.
pub const RUNTIME_RESTART_TIMEOUT_SECS: u64 = 60;

/// The runtime's service: containerd's unit or Windows service name.
pub const RUNTIME_SERVICE: &str = "containerd";

/// The command that restarts the runtime's service: systemd's, the init script's, or the SCM's.
pub fn restart_command(os: crate::layout::Os, systemd_is_init: bool) -> Vec<String> {
    let words: &[&str] = match (os, systemd_is_init) {
        // The kubelet's service depends on containerd's: -Force stops it too, and it is started again after.
        (crate::layout::Os::Windows, _) => &[
            "powershell.exe",
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "$d = Get-Service -Name containerd -DependentServices | Where-Object Status -eq 'Running'; \
             Restart-Service -Force -Name containerd; $d | Start-Service",
        ],
        (_, true) => &["systemctl", "restart", "containerd"],
        (_, false) => &["service", "containerd", "restart"],
    };
    words.iter().map(|w| w.to_string()).collect()
}

/// One pause image agreed by everyone: when the runtime's sandbox image is not the kubelet's pause image, its
/// config file is changed (original kept) and the runtime restarted. Nothing when they already agree.
pub fn align_runtime(s: &Settings) -> Result<Vec<Action>, ImageError> {
    // A runtime that did not answer cannot be agreed with: preflight stops the join before this plan runs.
    let Some(rt) = s.runtime_facts.as_ref().filter(|r| r.answered) else { return Ok(Vec::new()) };
    let current = rt.info.sandbox_image.as_ref().map(|f| f.value.clone());
    if current.as_deref() == Some(s.pause_image.as_str()) {
        return Ok(Vec::new());
    }
    if let Some(message) = &rt.config_error {
        return Err(ImageError::RuntimeConfig { file: rt.config_file.clone(), message: message.clone() });
    }
    let contents = crate::runtime::set_sandbox_image(rt.config_text.as_deref(), &s.pause_image, rt.major_version())
        .map_err(|e| ImageError::RuntimeConfig { file: rt.config_file.clone(), message: e.to_string() })?;
    Ok(vec![
        Action::ConfigureRuntime {
            file: rt.config_file.clone(),
            backup: s.layout().runtime_config_backup(),
            from: current,
            to: s.pause_image.clone(),
            original_sha256: rt.config_text.as_deref().map(sha256_hex),
            contents,
        },
        Action::RestartRuntime {
            service: RUNTIME_SERVICE.into(),
            command: restart_command(s.os, rt.systemd_is_init),
            endpoint: rt.endpoint.clone(),
            sandbox_image: s.pause_image.clone(),
            timeout_secs: RUNTIME_RESTART_TIMEOUT_SECS,
        },
    ])
}
