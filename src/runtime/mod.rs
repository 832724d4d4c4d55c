//! What the node's container runtime really uses — CNI config and plugin directories, sandbox (pause) image —
//! learned from the runtime itself (its CRI `Status` answer, see [`crate::host::cri`]), then from its config
//! file, then from its built-in defaults; every fact says which. Pure: callers do the asking and the reading.
//!
//! containerd's verbose `Status` has an `info` key `"config"` holding its CRI plugin config as JSON. Its shape
//! differs by major version:
//! - 1.x: `{"cni": {"binDir", "confDir", "maxConfNum", ...}, "sandboxImage": ..., ...}`.
//! - 2.x: the CRI plugin is split in two and only the runtime half is reported: `cni.confDir`, `cni.binDir`
//!   (2.0; from 2.1 `cni.binDirs`, a list, with `binDir` empty) — but no sandbox image: it moved to the images
//!   plugin (`[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox`), which `Status` does not show,
//!   so it comes from the config file or the default.

mod containerd;

pub use containerd::{fill_from_config, set_sandbox_image};

use serde::Serialize;
use std::fmt;

/// Where a fact came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    /// The runtime's own CRI `Status` answer: what it really uses now.
    Cri,
    /// The runtime's config file (path): what it uses if it read that file since the last change.
    ConfigFile(String),
    /// The runtime's built-in default, because neither the CRI nor the file said.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cri => f.write_str("CRI Status"),
            Source::ConfigFile(path) => write!(f, "config file {path}"),
            Source::Default => f.write_str("runtime default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Fact<T> {
    pub fn new(value: T, source: Source) -> Self {
        Fact { value, source }
    }
}

/// The container runtime as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInfo {
    /// CRI `runtime_name`, e.g. `containerd`.
    pub name: String,
    /// CRI `runtime_version`, e.g. `v1.7.2` or Debian's `1.6.20~ds1`.
    pub version: String,
    /// CRI `runtime_api_version`, e.g. `v1` (or `v1alpha2`).
    pub api_version: String,
    pub cni_conf_dir: Option<Fact<String>>,
    /// The directory CNI plugin binaries are looked up in (containerd 2.1+ has a list: its first entry).
    pub cni_bin_dir: Option<Fact<String>>,
    pub sandbox_image: Option<Fact<String>>,
    /// CNI max_conf_num (containerd loads only the first N configs in its conf dir, sorted by name; 1 by default).
    /// 0 means no limit.
    pub cni_max_conf_num: Option<u32>,
    /// The `NetworkReady` condition of `Status`, when the runtime reported one.
    pub network_ready: Option<bool>,
}

impl RuntimeInfo {
    /// (major, minor, patch) of `version` (`v1.6.20`, `1.6.20~ds1`, `2.0.0-rc.1`); None when not a version.
    pub fn version_triple(&self) -> Option<(u32, u32, u32)> {
        parse_version(&self.version)
    }
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let mut parts = v[..end].split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// Why the runtime's answer or config file cannot be used; each names the file or runtime and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "{runtime} answered CRI Status with an `info.{key}` that is not JSON: {message} (restart the runtime; if it persists, give its config file with --runtime-config)"
    )]
    StatusJson { runtime: String, key: String, message: String },
    #[error("{file} is not valid TOML: {message} (containerd refuses it too: fix the file)")]
    ConfigToml { file: String, message: String },
    #[error("{file} has `version = {version}`, a containerd config version wkjoin does not know (it reads 1, 2 and 3)")]
    ConfigVersion { file: String, version: i64 },
    #[error(
        "{file} is a version 3 config, which containerd {runtime_major}.x cannot read (it reads 1 and 2): write it as version 2, or upgrade containerd to 2.x"
    )]
    ConfigTooNew { file: String, runtime_major: u32 },
    #[error("{file}: `{key}` is {found}, where containerd expects {expected} (fix the file)")]
    ConfigShape { file: String, key: String, found: String, expected: &'static str },
}

/// The facts in a CRI `Status` answer. A runtime whose `info` has no `config` (not containerd, or not verbose)
/// leaves the directory and image facts `None`, for [`fill_from_config`] to complete.
pub fn from_status(st: &crate::host::cri::CriStatus) -> Result<RuntimeInfo, RuntimeError> {
    let mut info = RuntimeInfo {
        name: st.version.runtime_name.clone(),
        version: st.version.runtime_version.clone(),
        api_version: st.version.runtime_api_version.clone(),
        cni_conf_dir: None,
        cni_bin_dir: None,
        sandbox_image: None,
        cni_max_conf_num: None,
        network_ready: st.conditions.iter().find(|(t, _, _)| t == "NetworkReady").map(|(_, ok, _)| *ok),
    };
    let Some(text) = st.info.get("config") else { return Ok(info) };
    let config: serde_json::Value = serde_json::from_str(text).map_err(|e| RuntimeError::StatusJson {
        runtime: format!("{} {}", info.name, info.version).trim().to_string(),
        key: "config".into(),
        message: e.to_string(),
    })?;
    let string =
        |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
    let cri = |value: String| Fact::new(value, Source::Cri);
    let cni = config.get("cni");
    info.cni_conf_dir = string(cni.and_then(|c| c.get("confDir"))).map(cri);
    info.cni_bin_dir = string(cni.and_then(|c| c.get("binDir")))
        .or_else(|| string(cni.and_then(|c| c.get("binDirs")).and_then(|d| d.get(0))))
        .map(cri);
    info.cni_max_conf_num =
        cni.and_then(|c| c.get("maxConfNum")).and_then(|n| n.as_u64()).and_then(|n| u32::try_from(n).ok());
    // 1.x: `sandboxImage`. 2.x does not report it; were it to report its images config (proposed upstream),
    // it would be under `pinned_images` / `pinnedImages`.
    info.sandbox_image = string(config.get("sandboxImage"))
        .or_else(|| string(config.get("pinned_images").and_then(|p| p.get("sandbox"))))
        .or_else(|| string(config.get("pinnedImages").and_then(|p| p.get("sandbox"))))
        .map(cri);
    Ok(info)
}

#[cfg(test)]
mod tests;
