//! The container runtime as it reports itself: asked over CRI first, completed from its config file, so the CNI
//! config, the CNI plugins and the pause image go where the runtime really looks.

use super::{Origin, Sourced};
use crate::layout::Os;
use crate::runtime::{Fact, RuntimeInfo};
use serde::Serialize;
use std::time::Duration;

/// How long wkjoin waits for the runtime's CRI answer before planning from its config file.
const CRI_TIMEOUT: Duration = Duration::from_secs(5);

/// What wkjoin learned about the node's container runtime, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuntimeFacts {
    /// The CRI endpoint asked.
    pub endpoint: String,
    /// Whether the runtime answered over CRI (else the facts come from its config file and defaults).
    pub answered: bool,
    /// Why the runtime did not answer, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub info: RuntimeInfo,
    /// The runtime's config file, which wkjoin edits to set the sandbox image.
    pub config_file: String,
    /// How the config file was found (flag, the serving process's `--config`, or the default path).
    pub config_file_source: String,
    /// Whether systemd is the init system (it then restarts the runtime; else its init script does).
    pub systemd_is_init: bool,
    /// Why the config file could not be read or understood (wkjoin then changes nothing in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// The config file's text as read (absent: no file; containerd then runs on its built-in defaults).
    #[serde(skip)]
    pub config_text: Option<String>,
}

impl RuntimeFacts {
    pub fn cni_conf_dir(&self) -> Option<Sourced<String>> {
        self.info.cni_conf_dir.as_ref().map(sourced)
    }

    pub fn cni_bin_dir(&self) -> Option<Sourced<String>> {
        self.info.cni_bin_dir.as_ref().map(sourced)
    }

    pub fn sandbox_image(&self) -> Option<Sourced<String>> {
        self.info.sandbox_image.as_ref().map(sourced)
    }

    /// containerd's major version (its config schema depends on it); 1 when unknown.
    pub fn major_version(&self) -> u32 {
        self.info
            .version
            .trim_start_matches('v')
            .split(['.', '~', '-'])
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(1)
    }

    /// One line for plans and preflight: what the runtime is and where its facts came from.
    pub fn describe(&self) -> String {
        let who = if self.answered {
            format!("{} {} at {} (CRI {})", self.info.name, self.info.version, self.endpoint, self.info.api_version)
        } else {
            format!(
                "no CRI answer from {} ({}): planned from {}",
                self.endpoint,
                self.error.as_deref().unwrap_or("unknown error"),
                self.config_file
            )
        };
        let fact = |name: &str, f: &Option<Fact<String>>| match f {
            Some(f) => format!("{name} {} ({})", f.value, f.source),
            None => format!("{name} unknown"),
        };
        format!(
            "{who}; {}; {}; {}; config file {} ({})",
            fact("CNI conf dir", &self.info.cni_conf_dir),
            fact("CNI bin dir", &self.info.cni_bin_dir),
            fact("sandbox image", &self.info.sandbox_image),
            self.config_file,
            self.config_file_source
        )
    }
}

fn sourced(f: &Fact<String>) -> Sourced<String> {
    Sourced { value: f.value.clone(), origin: Origin::Runtime(f.source.to_string()) }
}

/// containerd's config file when nothing says otherwise.
pub fn default_config_file(os: Os) -> &'static str {
    match os {
        Os::Linux => "/etc/containerd/config.toml",
        Os::Windows => "C:\\Program Files\\containerd\\config.toml",
    }
}

/// The runtime's config file: `None` only when it does not exist.
pub fn read_config(path: &str) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `--config`/`-c` value of a containerd command line.
pub fn config_flag(args: &[String]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--config" || a == "-c" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--config=").or_else(|| a.strip_prefix("-c=")) {
            return Some(v.to_string());
        }
    }
    None
}

/// Asks the runtime at `endpoint` over CRI, then reads its config file for what the CRI did not say.
/// Never fails: an unreachable runtime is recorded in `error`, and preflight reports it.
pub async fn discover_runtime(os: Os, endpoint: &str, config_override: Option<&str>) -> RuntimeFacts {
    let (mut info, answered, error) = match crate::host::cri::status(endpoint, CRI_TIMEOUT).await {
        Ok(st) => match crate::runtime::from_status(&st) {
            Ok(info) => (info, true, None),
            Err(e) => (unknown_runtime(), false, Some(e.to_string())),
        },
        Err(e) => (unknown_runtime(), false, Some(e.to_string())),
    };
    let (config_file, config_file_source) = match config_override {
        Some(p) => (p.to_string(), "--runtime-config".to_string()),
        None => {
            let pid = crate::host::cri::server_pid(endpoint);
            match pid.and_then(crate::host::process_cmdline).as_deref().and_then(config_flag) {
                Some(p) => (p, format!("--config of the process serving the endpoint, pid {}", pid.unwrap_or(0))),
                None => (
                    default_config_file(os).to_string(),
                    match pid {
                        Some(pid) => {
                            format!("default path: the process serving the endpoint (pid {pid}) has no --config")
                        }
                        None => "default path".to_string(),
                    },
                ),
            }
        }
    };
    // Only a missing file is "no file": an unreadable one must never be replaced by a fresh one.
    let (config_text, mut config_error) = match read_config(&config_file) {
        Ok(text) => (text, None),
        Err(e) => (None, Some(format!("cannot read {config_file}: {e}"))),
    };
    if config_error.is_none()
        && let Err(e) = crate::runtime::fill_from_config(&mut info, &config_file, config_text.as_deref(), os)
    {
        config_error = Some(e.to_string());
    }
    RuntimeFacts {
        endpoint: endpoint.to_string(),
        answered,
        error,
        info,
        config_file,
        config_file_source,
        systemd_is_init: crate::host::process::systemd_is_init(),
        config_error,
        config_text,
    }
}

impl RuntimeFacts {
    /// A runtime about which nothing is known yet (containerd, by default).
    pub fn blank_info() -> RuntimeInfo {
        unknown_runtime()
    }
}

/// containerd 1.6 as it answered over CRI, for tests: its sandbox image and CNI conf dir, its config file text.
#[cfg(test)]
pub fn answered(sandbox: &str, conf_dir: &str, config_text: Option<&str>, systemd_is_init: bool) -> RuntimeFacts {
    use crate::runtime::Source;
    let mut info = unknown_runtime();
    info.version = "1.6.20~ds1".into();
    info.api_version = "v1".into();
    info.cni_conf_dir = Some(Fact { value: conf_dir.into(), source: Source::Cri });
    info.cni_bin_dir = Some(Fact { value: "/usr/lib/cni".into(), source: Source::Cri });
    info.sandbox_image = Some(Fact { value: sandbox.into(), source: Source::Cri });
    RuntimeFacts {
        endpoint: "unix:///run/containerd/containerd.sock".into(),
        answered: true,
        error: None,
        info,
        config_file: "/etc/containerd/config.toml".into(),
        config_file_source: "default path".into(),
        systemd_is_init,
        config_error: None,
        config_text: config_text.map(str::to_string),
    }
}

fn unknown_runtime() -> RuntimeInfo {
    RuntimeInfo {
        name: "containerd".into(),
        version: String::new(),
        api_version: String::new(),
        cni_conf_dir: None,
        cni_bin_dir: None,
        sandbox_image: None,
        cni_max_conf_num: None,
        network_ready: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_flag_is_read_in_every_spelling() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(config_flag(&args(&["containerd", "--config", "/x.toml"])).as_deref(), Some("/x.toml"));
        assert_eq!(config_flag(&args(&["containerd", "-c", "/y.toml", "-l", "debug"])).as_deref(), Some("/y.toml"));
        assert_eq!(config_flag(&args(&["containerd", "--config=/z.toml"])).as_deref(), Some("/z.toml"));
        assert_eq!(config_flag(&args(&["containerd", "--log-level", "info"])), None);
        // The program name is never a flag, even when it looks like one.
        assert_eq!(config_flag(&args(&["--config"])), None);
    }
}
