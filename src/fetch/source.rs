//! Where an archive and its checksum come from: HTTP(S) mirrors, `file://` URLs and plain directories, the
//! release markers (`stable.txt`) that name a version, and the published checksum files.

use super::FetchError;
use super::download::{Downloader, Small};
use crate::version::KubeVersion;
use std::path::PathBuf;

/// A mirror, archive or checksum location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(String),
    Local(PathBuf),
}

impl Location {
    /// `http(s)://…` is fetched over the network; `file://…` and anything without a scheme is a local path.
    pub fn parse(s: &str) -> Result<Location, FetchError> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Location::Http(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            // `file:///C:/mirror` names `C:/mirror`, not `/C:/mirror`.
            let path = match path.as_bytes() {
                [b'/', d, b':', ..] if d.is_ascii_alphabetic() => &path[1..],
                _ => path,
            };
            return Ok(Location::Local(PathBuf::from(percent_decode(path))));
        }
        // A scheme other than http/https/file (ftp://, s3://) would otherwise be taken for a relative path.
        let is_scheme = |scheme: &str| {
            !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        };
        if s.split_once("://").is_some_and(|(scheme, _)| is_scheme(scheme)) {
            return Err(FetchError::UnsupportedLocation { location: s.to_string() });
        }
        Ok(Location::Local(PathBuf::from(s)))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped =
            if bytes[i] == b'%' { s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) } else { None };
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A published checksum of a whole archive, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha512(String),
    Sha256(String),
}

impl Checksum {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha512(_) => "sha512",
            Checksum::Sha256(_) => "sha256",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha512(h) | Checksum::Sha256(h) => h,
        }
    }

    /// The name of a verified archive in the cache.
    pub fn cache_name(&self) -> String {
        format!("{}-{}.tar.gz", self.algorithm(), self.hex())
    }
}

/// Parses a checksum file: its first token must be the hex digest (`sha512sum` output or the bare digest).
pub fn parse_checksum(text: &[u8], sha512: bool, url: &str) -> Result<Checksum, FetchError> {
    let digits = if sha512 { 128 } else { 64 };
    let text = String::from_utf8_lossy(text);
    let token = text.split_whitespace().next().unwrap_or("");
    if token.len() != digits || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = token.chars().take(40).collect();
        return Err(FetchError::BadChecksumFile {
            url: url.to_string(),
            reason: format!("expected {digits} hex digits, found `{shown}`"),
        });
    }
    let hex = token.to_ascii_lowercase();
    Ok(if sha512 { Checksum::Sha512(hex) } else { Checksum::Sha256(hex) })
}

/// Validates a `--sha512` value (clap value parser).
pub fn parse_sha512_arg(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 128 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("expected 128 hex digits (a SHA-512), got {} characters", s.len()))
    }
}

/// Reads a small file (marker or checksum) from a mirror; `Missing` when it does not exist.
pub async fn read_small(dl: &Downloader, location: &str, limit: usize) -> Result<Small, FetchError> {
    match Location::parse(location)? {
        Location::Http(url) => dl.get_small(&url, limit).await,
        Location::Local(path) => {
            let read = tokio::fs::read(&path).await;
            match read {
                Ok(bytes) if bytes.len() > limit => Err(FetchError::BadChecksumFile {
                    url: location.to_string(),
                    reason: format!("it is {} bytes long, more than a small text file", bytes.len()),
                }),
                Ok(bytes) => Ok(Small::Found(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Small::Missing),
                Err(source) => Err(FetchError::Io { op: "read", path: path.display().to_string(), source }),
            }
        }
    }
}

/// Resolves a release marker (`stable`, `latest-1.20`) to the version named in `{mirror}/{marker}.txt`.
pub async fn resolve_marker(dl: &Downloader, mirror: &str, marker: &str) -> Result<KubeVersion, FetchError> {
    let url = super::marker_url(mirror, marker);
    match read_small(dl, &url, 1024).await? {
        Small::Missing => Err(FetchError::MarkerNotFound { marker: marker.to_string(), url }),
        Small::Found(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let word = text.split_whitespace().next().unwrap_or("");
            word.parse().map_err(|_| FetchError::BadMarker { url, content: word.chars().take(40).collect() })
        }
    }
}

/// The archive's published checksum: `.sha512`, or `.sha256` only when there is no `.sha512`.
/// `None` when neither exists.
pub async fn published_checksum(dl: &Downloader, archive: &str) -> Result<Option<(Checksum, String)>, FetchError> {
    for sha512 in [true, false] {
        let url = format!("{archive}.{}", if sha512 { "sha512" } else { "sha256" });
        if let Small::Found(bytes) = read_small(dl, &url, 4096).await? {
            return parse_checksum(&bytes, sha512, &url).map(|c| Some((c, url)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("http://172.30.0.254:8080").unwrap(),
            Location::Http("http://172.30.0.254:8080".into())
        );
        assert_eq!(Location::parse("HTTPS://m/x").unwrap(), Location::Http("HTTPS://m/x".into()));
        assert_eq!(Location::parse("file:///srv/m%20x").unwrap(), Location::Local("/srv/m x".into()));
        assert_eq!(Location::parse("file://localhost/srv/m").unwrap(), Location::Local("/srv/m".into()));
        assert_eq!(Location::parse("file:///C:/mirror").unwrap(), Location::Local("C:/mirror".into()));
        assert_eq!(Location::parse("./mirror").unwrap(), Location::Local("./mirror".into()));
        assert_eq!(Location::parse("C:\\mirror").unwrap(), Location::Local("C:\\mirror".into()));
        assert!(matches!(Location::parse("ftp://m/x"), Err(FetchError::UnsupportedLocation { .. })));
    }

    #[test]
    fn checksum_files_take_the_first_token() {
        let h = "AB".repeat(64);
        assert_eq!(
            parse_checksum(format!("{h}  kubernetes-node-linux-amd64.tar.gz\n").as_bytes(), true, "u").unwrap(),
            Checksum::Sha512("ab".repeat(64))
        );
        assert_eq!(
            parse_checksum(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false, "u")
                .unwrap()
                .algorithm(),
            "sha256"
        );
        let err = parse_checksum(b"<!DOCTYPE html><html>", true, "http://m/x.sha512").unwrap_err().to_string();
        assert!(
            err.contains("http://m/x.sha512") && err.contains("128 hex digits") && err.contains("<!DOCTYPE"),
            "{err}"
        );
        assert!(parse_checksum(h.as_bytes(), false, "u").is_err(), "a sha512 is not a sha256");
    }

    #[test]
    fn sha512_argument() {
        assert_eq!(parse_sha512_arg(&"F".repeat(128)).unwrap(), "f".repeat(128));
        assert!(parse_sha512_arg("abc").unwrap_err().contains("128 hex digits"));
    }
}
