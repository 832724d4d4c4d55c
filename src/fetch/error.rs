//! What can go wrong in `wkjoin fetch`, each error saying what to do about it; and an error with its causes on
//! one line, for the retry warnings.

use super::unpack::UnpackError;
use crate::host::HostError;
use crate::layout::Os;
use crate::state::StateError;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the fetch plan holds no release to install (`{action}`): re-run `wkjoin fetch` to plan it again")]
    NotPlanned { action: String },
    #[error(
        "the previous release is not as it was kept: {path} has sha256 {actual}, not {expected}; nothing was swapped (fetch the release you want instead)"
    )]
    PreviousDamaged { path: String, expected: String, actual: String },
    #[error("{url} is {bytes} bytes or more, over wkjoin's limit of {limit} bytes for one download: is the URL right?")]
    TooLarge { url: String, bytes: u64, limit: u64 },
    #[error("version {version} not found at {mirror} ({url} does not exist)")]
    VersionNotFound { version: String, mirror: String, url: String },
    #[error("release marker `{marker}` not found: {url} does not exist")]
    MarkerNotFound { marker: String, url: String },
    #[error("{url} does not name a Kubernetes version (it says `{content}`)")]
    BadMarker { url: String, content: String },
    #[error(
        "no checksum is published for {url} (neither {url}.sha512 nor {url}.sha256 exists): give the archive's SHA-512 with --sha512"
    )]
    NoChecksum { url: String },
    #[error("{url} is not a usable checksum file: {reason}")]
    BadChecksumFile { url: String, reason: String },
    #[error("`{location}` is neither an http(s):// or file:// URL nor a local path")]
    UnsupportedLocation { location: String },
    #[error("{url} does not exist")]
    NotFound { url: String },
    #[error("GET {url}: HTTP {status} {reason}")]
    Http { url: String, status: u16, reason: String },
    #[error("GET {url}: HTTP {status} {reason}{}", gave_up(*attempts))]
    GaveUp { url: String, status: u16, reason: String, attempts: u32 },
    #[error("cannot download {url}{}", gave_up(*attempts))]
    Network {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the download of {url} kept breaking off: {received} of {} bytes{}",
        expected.map_or_else(|| "?".to_string(), |e| e.to_string()),
        gave_up(*attempts)
    )]
    Truncated { url: String, received: u64, expected: Option<u64>, attempts: u32 },
    #[error(
        "{url}: asked to resume at byte {asked}, but the server answered with {}",
        got.map_or_else(|| "no usable Content-Range".to_string(), |g| format!("bytes from {g}"))
    )]
    BadRange { url: String, asked: u64, got: Option<u64> },
    #[error("{url} is an HTML page, not a gzip archive: check --mirror (or a proxy may want a login)")]
    HtmlPage { url: String },
    #[error("{url}: {source}")]
    Archive { url: String, source: UnpackError },
    #[error("checksum mismatch for {url}: expected {algorithm} {expected} (from {checksum_source}), got {actual}")]
    ChecksumMismatch { url: String, algorithm: &'static str, expected: String, actual: String, checksum_source: String },
    #[error("{url} holds Kubernetes {found} (its kubernetes/version says so), not the {expected} asked for")]
    WrongVersion { url: String, expected: String, found: String },
    #[error("no space left on the disk holding {dir}: free some space and run `wkjoin fetch` again")]
    DiskFull { dir: String },
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the {os} root dir {root} is not a path on this {host} host: give --root-dir to fetch {os} binaries here")]
    ForeignRoot { os: Os, root: String, host: Os },
    #[error("nothing to roll back to: no previous node binaries are recorded for {dir}")]
    NothingToRollBack { dir: String },
    #[error("{source}; nothing was installed: the binaries in {bin_dir} are as they were")]
    Unchanged {
        bin_dir: String,
        #[source]
        source: Box<FetchError>,
    },
}

fn gave_up(attempts: u32) -> String {
    if attempts > 1 { format!(" (gave up after {attempts} attempts)") } else { String::new() }
}

/// An error and its causes on one line, for retry warnings.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = c.source();
    }
    out
}

impl FetchError {
    /// An I/O error, or `DiskFull` naming the directory when that is what it is.
    pub fn io(op: &'static str, path: impl Into<String>, source: std::io::Error) -> FetchError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            let dir = Path::new(&path).parent().map_or_else(|| path.clone(), |p| p.display().to_string());
            return FetchError::DiskFull { dir };
        }
        FetchError::Io { op, path, source }
    }

    pub(super) fn from_unpack(url: &str, e: UnpackError) -> FetchError {
        match e {
            UnpackError::Html => FetchError::HtmlPage { url: url.to_string() },
            UnpackError::Io { op, path, source } => FetchError::io(op, path.display().to_string(), source),
            other => FetchError::Archive { url: url.to_string(), source: other },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_by_its_directory() {
        let e = FetchError::io("write", "/var/lib/wkjoin/cache/x.part", std::io::ErrorKind::StorageFull.into());
        assert_eq!(
            e.to_string(),
            "no space left on the disk holding /var/lib/wkjoin/cache: free some space and run `wkjoin fetch` again"
        );
        let e = FetchError::io("write", "/x/y", std::io::ErrorKind::PermissionDenied.into());
        assert!(matches!(e, FetchError::Io { .. }));
    }
}
