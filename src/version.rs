//! Kubernetes versions as kubeadm names them (`v1.20.2`), and the release markers that resolve to one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A concrete Kubernetes release, e.g. `v1.20.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KubeVersion { major, minor, patch }
    }

    /// Finds a version in a binary's `--version` output, e.g. `Kubernetes v1.20.2` or `kubelet version v1.20.2-dirty`.
    pub fn find_in(text: &str) -> Option<KubeVersion> {
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '"').filter(|w| w.starts_with('v')).find_map(|w| {
            // Build metadata and pre-release suffixes (`-dirty`, `+k3s1`) do not change the flag set.
            let core = w.split(['-', '+']).next().unwrap_or(w);
            core.parse().ok()
        })
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a Kubernetes version: use the form v1.20.2 (or `stable`, `latest`, `stable-1.20`, `latest-1.20`)"
)]
pub struct VersionError {
    pub input: String,
}

impl FromStr for KubeVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError { input: s.to_string() };
        let rest = s.trim().strip_prefix('v').ok_or_else(err)?;
        let mut it = rest.split('.');
        let mut next = || -> Result<u32, VersionError> {
            let part = it.next().ok_or_else(err)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let v = KubeVersion::new(next()?, next()?, next()?);
        if it.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }
}

/// What the user asked for: a concrete version or a marker resolved against the mirror (`stable.txt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSpec {
    Exact(KubeVersion),
    /// The name of a marker file without `.txt`: `stable`, `latest`, `stable-1.20`, `latest-1.20`.
    Marker(String),
}

impl VersionSpec {
    pub fn exact(&self) -> Option<KubeVersion> {
        match self {
            VersionSpec::Exact(v) => Some(*v),
            VersionSpec::Marker(_) => None,
        }
    }
}

impl FromStr for VersionSpec {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('v') {
            return s.parse().map(VersionSpec::Exact);
        }
        let is_marker = match s.split_once('-') {
            None => s == "stable" || s == "latest",
            Some((kind, minor)) => {
                (kind == "stable" || kind == "latest")
                    && minor.split_once('.').is_some_and(|(a, b)| {
                        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                    })
            }
        };
        if is_marker { Ok(VersionSpec::Marker(s.to_string())) } else { Err(VersionError { input: s.to_string() }) }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Exact(v) => v.fmt(f),
            VersionSpec::Marker(m) => f.write_str(m),
        }
    }
}

impl Serialize for VersionSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubeadm_style_versions() {
        assert_eq!("v1.20.2".parse::<KubeVersion>().unwrap(), KubeVersion::new(1, 20, 2));
        for bad in ["1.20.2", "v1.20", "v1.20.2.1", "v1.x.2", "v1..2", ""] {
            assert!(bad.parse::<KubeVersion>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn markers_are_recognised() {
        for m in ["stable", "latest", "stable-1.20", "latest-1.33"] {
            assert_eq!(m.parse::<VersionSpec>().unwrap(), VersionSpec::Marker(m.into()));
        }
        for bad in ["stabel", "stable-1", "latest-x.y", "newest"] {
            assert!(bad.parse::<VersionSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_version_in_binary_output() {
        assert_eq!(KubeVersion::find_in("Kubernetes v1.20.2\n"), Some(KubeVersion::new(1, 20, 2)));
        assert_eq!(KubeVersion::find_in("kubelet version v1.27.3-dirty"), Some(KubeVersion::new(1, 27, 3)));
        assert_eq!(KubeVersion::find_in("no version here"), None);
    }
}
