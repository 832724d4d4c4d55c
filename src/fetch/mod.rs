//! `wkjoin fetch`: the Kubernetes node archive, verified in one streaming pass and installed atomically.
//!
//! `plan` says what would happen (pure, for `--dry-run`); `run` does it: the body streams through the
//! checksum, gunzip and tar at once into a staging directory, and only a verified archive's binaries are
//! moved into place, the replaced ones kept for `--rollback`.

pub mod download;
mod install;
pub mod progress;
pub mod source;
pub mod unpack;

use crate::host::{HostError, Native};
use crate::layout::Os;
use crate::plan::{Action, Plan, Step};
use crate::settings::Settings;
use crate::state::{InstalledFile, InstalledRelease, State, StateError};
use crate::version::{KubeVersion, VersionSpec};
use bytes::Bytes;
use download::{Downloader, RetryPolicy, StreamError};
use progress::Progress;
use serde::Serialize;
use sha2::{Digest, Sha256};
use source::{Checksum, Location};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use unpack::{UnpackError, Wanted};

/// The binaries wkjoin installs from `kubernetes/node/bin/`.
pub const NODE_BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kubectl"];
/// Installed too when the archive has them (release archives do; some mirrors' do not).
pub const OPTIONAL_BINARIES: [&str; 1] = ["kubeadm"];

/// `{mirror}/{version}/kubernetes-node-{os}-{arch}.tar.gz`.
pub fn archive_url(mirror: &str, version: KubeVersion, os: &str, arch: &str) -> String {
    format!("{}/{version}/kubernetes-node-{os}-{arch}.tar.gz", mirror.trim_end_matches('/'))
}

/// `{mirror}/{marker}.txt`, e.g. `stable.txt`, holding a version.
pub fn marker_url(mirror: &str, marker: &str) -> String {
    format!("{}/{marker}.txt", mirror.trim_end_matches('/'))
}

/// Chunks in flight between two stages: enough to keep both busy, few enough that memory stays flat whatever
/// the archive's size (an HTTP chunk can hold a few hundred KiB).
const IN_FLIGHT: usize = 8;
/// The size of the chunks a local archive is read in.
const READ_CHUNK: usize = 128 * 1024;

/// What `wkjoin fetch` was asked for beyond the node settings.
#[derive(Debug, Clone, Default)]
pub struct FetchInput {
    /// A local archive to install instead of downloading one (needs `sha512`).
    pub archive: Option<String>,
    /// The archive's SHA-512, checked instead of the published checksum.
    pub sha512: Option<String>,
    /// Swap the installed binaries with the previous ones.
    pub rollback: bool,
}

pub fn plan(s: &Settings) -> Plan {
    plan_with(s, &FetchInput::default())
}

pub fn plan_with(s: &Settings, input: &FetchInput) -> Plan {
    let layout = s.layout();
    let suffix = s.os.exe_suffix();
    let names = |list: &[&str]| -> Vec<String> { list.iter().map(|b| format!("{b}{suffix}")).collect() };
    if input.rollback {
        let mut plan = Plan::new(Step::Fetch, "roll back to the previous node binaries");
        plan.push(Action::RollbackRelease { bin_dir: layout.bin_dir(), previous_dir: layout.previous_bin_dir() });
        return plan;
    }
    let release = |url: String, checksum_url: Option<String>| Action::FetchRelease {
        url,
        checksum_url,
        sha512: input.sha512.clone(),
        version: s.kubernetes_version.exact().map(|v| v.to_string()),
        binaries: names(&NODE_BINARIES),
        optional_binaries: names(&OPTIONAL_BINARIES),
        bin_dir: layout.bin_dir(),
        cache_dir: layout.cache_dir(),
    };
    if let Some(archive) = &input.archive {
        let mut plan = Plan::new(Step::Fetch, format!("install the node binaries from {archive}"));
        plan.push(release(archive.clone(), None));
        return plan;
    }
    let mut plan = Plan::new(Step::Fetch, format!("install the Kubernetes {} node binaries", s.kubernetes_version));
    match &s.kubernetes_version {
        VersionSpec::Exact(v) => {
            let url = archive_url(&s.mirror, *v, s.os.as_str(), &s.arch);
            let checksum_url = input.sha512.is_none().then(|| format!("{url}.sha512"));
            plan.push(release(url, checksum_url));
        }
        VersionSpec::Marker(m) => {
            plan.push(Action::Deferred {
                what: format!("download and install {} for {}", names(&NODE_BINARIES).join(", "), s.os),
                needs: format!("{} names the version", marker_url(&s.mirror, m)),
            });
        }
    }
    plan
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
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

    fn from_unpack(url: &str, e: UnpackError) -> FetchError {
        match e {
            UnpackError::Html => FetchError::HtmlPage { url: url.to_string() },
            UnpackError::Io { op, path, source } => FetchError::io(op, path.display().to_string(), source),
            other => FetchError::Archive { url: url.to_string(), source: other },
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Installed,
    AlreadyInstalled,
    RolledBack,
}

/// The result of `wkjoin fetch`, printed as a table or `-o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub outcome: Outcome,
    /// Bytes read from the network (0 when the cache or installed binaries served).
    pub downloaded_bytes: u64,
    pub from_cache: bool,
    /// `sha512` or `sha256`, and where the expected value came from.
    pub verified_with: Option<String>,
    pub installed: InstalledRelease,
    /// What `--rollback` would restore.
    pub previous: Option<InstalledRelease>,
    pub warnings: Vec<String>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Runs `wkjoin fetch`: resolves a release marker, then installs (or rolls back). Returns the plan it carried
/// out (with the resolved version) and what happened.
pub async fn run(s: &Settings, input: &FetchInput, progress: &Progress) -> Result<(Plan, Report), FetchError> {
    // `C:\k` on Linux (or `/var/lib/wkjoin` on Windows) would become a relative directory with an odd name.
    if s.os != Os::host() && !Path::new(&s.root_dir).is_absolute() {
        return Err(FetchError::ForeignRoot { os: s.os, root: s.root_dir.clone(), host: Os::host() });
    }
    let layout = s.layout();
    let state_path = PathBuf::from(layout.state_file());
    let mut state = State::load(&state_path)?.unwrap_or_default();
    let mut s = s.clone();
    if input.archive.is_none() && !input.rollback {
        if let VersionSpec::Marker(marker) = &s.kubernetes_version {
            let dl = Downloader::new(RetryPolicy::default())?;
            let v = source::resolve_marker(&dl, &s.mirror, marker).await?;
            progress.phase(format!("{marker} is {v} at {}", s.mirror));
            s.kubernetes_version = VersionSpec::Exact(v);
        }
    }
    let plan = plan_with(&s, input);
    let report = match plan.actions.first() {
        Some(Action::FetchRelease {
            url, sha512, version, binaries, optional_binaries, bin_dir, cache_dir, ..
        }) => {
            let job = Job {
                s: &s,
                url,
                pinned: sha512.as_deref(),
                version: version.as_deref(),
                wanted: Wanted { required: binaries.clone(), optional: optional_binaries.clone() },
                bin_dir: Path::new(bin_dir),
                previous_dir: PathBuf::from(layout.previous_bin_dir()),
                cache_dir: Path::new(cache_dir),
                local_archive: input.archive.is_some(),
            };
            job.run(&mut state, progress).await?
        }
        Some(Action::RollbackRelease { bin_dir, previous_dir }) => {
            rollback(&s, &mut state, Path::new(bin_dir), Path::new(previous_dir)).await?
        }
        _ => unreachable!("plan_with plans a release or a rollback once the version is exact"),
    };
    state.record(&plan, SystemTime::now());
    if state.node_name.is_none() {
        state.node_name = Some(s.node_name.clone());
    }
    state.save(&state_path, &mut Native)?;
    Ok((plan, report))
}

/// One install of a node archive.
struct Job<'a> {
    s: &'a Settings,
    url: &'a str,
    pinned: Option<&'a str>,
    version: Option<&'a str>,
    wanted: Wanted,
    bin_dir: &'a Path,
    previous_dir: PathBuf,
    cache_dir: &'a Path,
    local_archive: bool,
}

/// Where the bytes of one pass come from.
enum Input {
    Http(String),
    File(PathBuf),
}

/// What one pass produced.
struct Pass {
    digests: unpack::Digests,
    unpacked: unpack::Unpacked,
    downloaded: u64,
}

impl Job<'_> {
    async fn run(&self, state: &mut State, progress: &Progress) -> Result<Report, FetchError> {
        if let Some(report) = self.already_installed(state).await? {
            return Ok(report);
        }
        let mut created = install::CreatedDirs::default();
        let result = self.install(state, progress, &mut created).await;
        if result.is_ok() {
            created.keep();
        }
        result
    }

    /// The same archive is recorded as installed and every binary still has the recorded SHA-256.
    async fn already_installed(&self, state: &State) -> Result<Option<Report>, FetchError> {
        let Some(rec) = &state.binaries else { return Ok(None) };
        let same = rec.source == self.url
            && rec.os == self.s.os.as_str()
            && Path::new(&rec.bin_dir) == self.bin_dir
            && self.pinned.is_none_or(|p| p == rec.archive_sha512)
            && self.wanted.required.iter().all(|r| rec.files.iter().any(|f| &f.name == r));
        if !same {
            return Ok(None);
        }
        let files = rec.files.clone();
        let intact = tokio::task::spawn_blocking(move || {
            files.iter().all(|f| file_sha256(Path::new(&f.path)).is_ok_and(|h| h == f.sha256))
        })
        .await;
        let intact = joined(intact);
        if !intact {
            tracing::info!("the installed binaries differ from what was installed; installing again");
            return Ok(None);
        }
        Ok(Some(Report {
            outcome: Outcome::AlreadyInstalled,
            downloaded_bytes: 0,
            from_cache: false,
            verified_with: None,
            installed: rec.clone(),
            previous: state.previous_binaries.clone(),
            warnings: Vec::new(),
        }))
    }

    async fn install(
        &self,
        state: &mut State,
        progress: &Progress,
        created: &mut install::CreatedDirs,
    ) -> Result<Report, FetchError> {
        let dl = Downloader::new(RetryPolicy::default())?;
        let location = Location::parse(self.url)?;
        let (expected, checksum_source) = self.expected_checksum(&dl, &location).await?;
        let unchanged =
            |e: FetchError| FetchError::Unchanged { bin_dir: self.bin_dir.display().to_string(), source: Box::new(e) };

        created.create(self.bin_dir)?;
        let cached = self.cache_dir.join(expected.cache_name());
        let http = matches!(location, Location::Http(_));
        let mut from_cache = http && cached.is_file();
        let pass = loop {
            let staging = install::Staging::create(self.bin_dir).map_err(unchanged)?;
            let (input, tee) = match (&location, from_cache) {
                (_, true) => (Input::File(cached.clone()), None),
                (Location::Http(u), false) => {
                    created.create(self.cache_dir).map_err(unchanged)?;
                    install::sweep(self.cache_dir, |n| n.starts_with('.') && n.contains(".tar.gz.part-"));
                    let tmp = self.cache_dir.join(format!(".{}.part-{}", expected.cache_name(), std::process::id()));
                    (Input::Http(u.clone()), Some(tmp))
                }
                (Location::Local(p), false) => (Input::File(p.clone()), None),
            };
            match &input {
                Input::Http(u) => progress.begin("downloading", u),
                Input::File(p) if from_cache => progress.begin("reading the cached archive", &p.display().to_string()),
                Input::File(p) => progress.begin("reading", &p.display().to_string()),
            }
            let result =
                self.pass(&dl, &input, &expected, &checksum_source, staging.path(), tee.as_deref(), progress).await;
            match (result, tee) {
                (Ok(pass), tee) => {
                    if let Some(tmp) = tee {
                        std::fs::rename(&tmp, &cached)
                            .map_err(|e| unchanged(FetchError::io("store", cached.display().to_string(), e)))?;
                    }
                    // The staging directory holds the binaries until they are moved in below.
                    break (pass, staging);
                }
                (Err(FetchError::ChecksumMismatch { .. }), _) if from_cache => {
                    tracing::warn!("the cached archive {} is damaged; downloading it again", cached.display());
                    let _ = std::fs::remove_file(&cached);
                    from_cache = false;
                }
                (Err(e), tee) => {
                    if let Some(tmp) = tee {
                        let _ = std::fs::remove_file(tmp);
                    }
                    return Err(unchanged(e));
                }
            }
        };
        let (pass, staging) = pass;
        progress.phase(format!("verified: {} {}", expected.algorithm(), expected.hex()));

        let mut warnings = Vec::new();
        let version = match (self.version, &pass.unpacked.archive_version) {
            (Some(want), Some(found)) if want != found => {
                return Err(unchanged(FetchError::WrongVersion {
                    url: self.url.to_string(),
                    expected: want.to_string(),
                    found: found.clone(),
                }));
            }
            (want, found) => want.map(str::to_string).or_else(|| found.clone()),
        };

        // A new release rotates the current one into previous/; reinstalling the same one (a repair) does not.
        let rotate = match &state.binaries {
            Some(rec) => rec.archive_sha512 != pass.digests.sha512,
            None => pass.unpacked.files.iter().any(|f| self.bin_dir.join(&f.name).exists()),
        };
        let retire: Vec<String> = state
            .binaries
            .iter()
            .flat_map(|rec| rec.files.iter().map(|f| f.name.clone()))
            .filter(|n| !pass.unpacked.files.iter().any(|f| &f.name == n))
            .collect();
        // Binaries installed by hand (no record) are kept like a release, so --rollback can restore them.
        let found = match (&state.binaries, rotate) {
            (None, true) => Some(self.found_release(&pass.unpacked.files)),
            _ => None,
        };
        progress.phase(format!("installing into {}", self.bin_dir.display()));
        let previous_dir = rotate.then_some(self.previous_dir.as_path());
        let paths = install::install(&pass.unpacked.files, self.bin_dir, previous_dir, &retire).map_err(unchanged)?;
        drop(staging);

        let mut files = Vec::new();
        for (staged, path) in pass.unpacked.files.iter().zip(&paths) {
            let v = self.binary_version(&staged.name, path, version.as_deref(), &mut warnings).await;
            files.push(InstalledFile {
                name: staged.name.clone(),
                path: path.display().to_string(),
                size: staged.size,
                sha256: staged.sha256.clone(),
                version: v,
            });
        }
        let version = version.or_else(|| files.iter().find_map(|f| f.version.clone()));
        let installed = InstalledRelease {
            version,
            os: self.s.os.as_str().to_string(),
            arch: self.s.arch.clone(),
            source: self.url.to_string(),
            archive_sha512: pass.digests.sha512.clone(),
            checksum: format!("{}:{}", expected.algorithm(), expected.hex()),
            installed_at: now(),
            bin_dir: self.bin_dir.display().to_string(),
            files,
        };
        if rotate {
            state.previous_binaries = state.binaries.take().or(found).map(|rec| moved(rec, &self.previous_dir));
        }
        state.binaries = Some(installed.clone());
        prune_cache(self.cache_dir, state);
        Ok(Report {
            outcome: Outcome::Installed,
            downloaded_bytes: pass.downloaded,
            from_cache,
            verified_with: Some(format!("{} from {checksum_source}", expected.algorithm())),
            installed,
            previous: state.previous_binaries.clone(),
            warnings,
        })
    }

    /// A record of the binaries found in the bin dir that wkjoin did not install.
    fn found_release(&self, names: &[unpack::Staged]) -> InstalledRelease {
        let files = names
            .iter()
            .filter_map(|f| {
                let path = self.bin_dir.join(&f.name);
                let meta = std::fs::metadata(&path).ok()?;
                Some(InstalledFile {
                    name: f.name.clone(),
                    path: path.display().to_string(),
                    size: meta.len(),
                    sha256: String::new(),
                    version: None,
                })
            })
            .collect();
        InstalledRelease {
            version: None,
            os: self.s.os.as_str().to_string(),
            arch: self.s.arch.clone(),
            source: format!("found in {} (not installed by wkjoin)", self.bin_dir.display()),
            archive_sha512: String::new(),
            checksum: String::new(),
            installed_at: String::new(),
            bin_dir: self.bin_dir.display().to_string(),
            files,
        }
    }

    /// The pinned `--sha512`, or the mirror's published `.sha512` (`.sha256` only when there is none).
    async fn expected_checksum(&self, dl: &Downloader, location: &Location) -> Result<(Checksum, String), FetchError> {
        if let Some(h) = self.pinned {
            return Ok((Checksum::Sha512(h.to_string()), "--sha512".to_string()));
        }
        if let Some(found) = source::published_checksum(dl, self.url).await? {
            return Ok(found);
        }
        let exists = match location {
            Location::Http(u) => dl.exists(u).await?,
            Location::Local(p) => p.exists(),
        };
        Err(if exists { FetchError::NoChecksum { url: self.url.to_string() } } else { self.not_found() })
    }

    fn not_found(&self) -> FetchError {
        match (self.version, self.local_archive) {
            (Some(v), false) => FetchError::VersionNotFound {
                version: v.to_string(),
                mirror: self.s.mirror.clone(),
                url: self.url.to_string(),
            },
            _ => FetchError::NotFound { url: self.url.to_string() },
        }
    }

    /// One pass over the archive: stream → hash (+ cache) → gunzip → tar → staging, each stage on its own
    /// thread with bounded channels between them, so memory stays flat whatever the archive's size.
    #[allow(clippy::too_many_arguments)]
    async fn pass(
        &self,
        dl: &Downloader,
        input: &Input,
        expected: &Checksum,
        checksum_source: &str,
        staging: &Path,
        tee: Option<&Path>,
        progress: &Progress,
    ) -> Result<Pass, FetchError> {
        let url = self.url;
        let tee = match tee {
            Some(p) => Some((
                std::fs::File::create(p).map_err(|e| FetchError::io("create", p.display().to_string(), e))?,
                p.to_path_buf(),
            )),
            None => None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT);
        let (tx2, rx2) = std::sync::mpsc::sync_channel::<Bytes>(IN_FLIGHT);
        let want_sha256 = matches!(expected, Checksum::Sha256(_));
        let verifier = tokio::task::spawn_blocking(move || unpack::verify(rx, tx2, want_sha256, tee));
        let (staging_dir, wanted) = (staging.to_path_buf(), self.wanted.clone());
        let unpacker =
            tokio::task::spawn_blocking(move || unpack::unpack(unpack::ChunkReader::new(rx2), &staging_dir, &wanted));
        let streamed = match input {
            Input::Http(u) => dl.stream(u, &tx, progress).await,
            Input::File(p) => read_file(p.clone(), tx.clone(), progress.clone()).await,
        };
        drop(tx);
        let verified = joined(verifier.await);
        let unpacked = joined(unpacker.await);
        progress.finish();
        let downloaded = match streamed {
            Ok(n) => n,
            Err(StreamError::Fetch(FetchError::NotFound { .. })) => return Err(self.not_found()),
            Err(StreamError::Fetch(e)) => return Err(e),
            Err(StreamError::Aborted) => match verified {
                Err(e) => return Err(FetchError::from_unpack(url, e)),
                Ok(_) => unreachable!("the hashing stage reads until the stream ends unless it fails"),
            },
        };
        let digests = verified.map_err(|e| FetchError::from_unpack(url, e))?;
        let actual = match expected {
            Checksum::Sha512(_) => digests.sha512.clone(),
            Checksum::Sha256(_) => digests.sha256.clone().unwrap_or_default(),
        };
        if actual != expected.hex() {
            return Err(FetchError::ChecksumMismatch {
                url: url.to_string(),
                algorithm: expected.algorithm(),
                expected: expected.hex().to_string(),
                actual,
                checksum_source: checksum_source.to_string(),
            });
        }
        let unpacked = unpacked.map_err(|e| FetchError::from_unpack(url, e))?;
        let downloaded = if matches!(input, Input::Http(_)) { downloaded } else { 0 };
        Ok(Pass { digests, unpacked, downloaded })
    }

    /// Runs the binary's version command when it can run here; a failure is a warning, not an error: the
    /// files are verified and installed either way.
    async fn binary_version(
        &self,
        name: &str,
        path: &Path,
        want: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Option<String> {
        if self.s.os != Os::host() {
            return None;
        }
        match binary_version(name, path).await {
            Ok(v) => {
                if want.is_some_and(|w| w != v) {
                    warnings.push(format!("{} reports {v}, not {}", path.display(), want.unwrap_or_default()));
                }
                Some(v)
            }
            Err(e) => {
                warnings.push(format!("{}: {e}", path.display()));
                None
            }
        }
    }
}

/// A blocking task's result; its panic, if it panicked, continues here.
fn joined<T>(r: Result<T, tokio::task::JoinError>) -> T {
    r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Streams a local file into the pipeline in large chunks.
async fn read_file(
    path: PathBuf,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    progress: Progress,
) -> Result<u64, StreamError> {
    let read = tokio::task::spawn_blocking(move || {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StreamError::Fetch(FetchError::NotFound { url: path.display().to_string() }));
            }
            Err(e) => return Err(StreamError::Fetch(FetchError::io("read", path.display().to_string(), e))),
        };
        progress.set_total(f.metadata().ok().map(|m| m.len()));
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = f
                .read(&mut buf)
                .map_err(|e| StreamError::Fetch(FetchError::io("read", path.display().to_string(), e)))?;
            if n == 0 {
                return Ok(total);
            }
            buf.truncate(n);
            total += n as u64;
            progress.advance(n as u64);
            if tx.blocking_send(Bytes::from(buf)).is_err() {
                return Err(StreamError::Aborted);
            }
        }
    })
    .await;
    joined(read)
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The arguments that make each binary print its version without side effects.
fn version_args(name: &str) -> &'static [&'static str] {
    match name.trim_end_matches(".exe") {
        "kubectl" => &["version", "--client"],
        "kubeadm" => &["version", "-o", "short"],
        _ => &["--version"],
    }
}

/// Runs `<binary> --version` (or its equivalent) and finds the Kubernetes version in what it prints.
pub async fn binary_version(name: &str, path: &Path) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(version_args(name)).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let shown = format!("{} {}", name, version_args(name).join(" "));
    let out = match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
        Err(_) => return Err(format!("`{shown}` did not finish within 30s")),
        Ok(Err(e)) => return Err(format!("cannot run `{shown}`: {e}")),
        Ok(Ok(out)) => out,
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let text = format!("{stdout}\n{stderr}");
    if !out.status.success() {
        let first_line = |t: &str| t.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string);
        let first = first_line(&stderr).or_else(|| first_line(&stdout)).unwrap_or_default();
        return Err(format!("`{shown}` failed ({}): {first}", out.status));
    }
    KubeVersion::find_in(&text).map(|v| v.to_string()).ok_or_else(|| format!("`{shown}` printed no version"))
}

/// The record of a release whose files moved from their bin dir to `dir`.
fn moved(mut rec: InstalledRelease, dir: &Path) -> InstalledRelease {
    for f in &mut rec.files {
        f.path = dir.join(&f.name).display().to_string();
    }
    rec.bin_dir = dir.display().to_string();
    rec
}

/// Keeps the cached archives of the installed and the previous release; older ones only take space.
fn prune_cache(cache_dir: &Path, state: &State) {
    let keep: Vec<String> = [&state.binaries, &state.previous_binaries]
        .into_iter()
        .flatten()
        .filter_map(|rec| rec.checksum.split_once(':').map(|(a, h)| format!("{a}-{h}.tar.gz")))
        .collect();
    let Ok(entries) = std::fs::read_dir(cache_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("sha512-") || name.starts_with("sha256-")) && name.ends_with(".tar.gz");
        if ours && !keep.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Swaps the installed binaries with the previous ones, both on disk and in the state file.
async fn rollback(s: &Settings, state: &mut State, bin_dir: &Path, previous_dir: &Path) -> Result<Report, FetchError> {
    let (Some(current), Some(previous)) = (state.binaries.take(), state.previous_binaries.take()) else {
        return Err(FetchError::NothingToRollBack { dir: bin_dir.display().to_string() });
    };
    let mut names: Vec<String> = current.files.iter().map(|f| f.name.clone()).collect();
    names.extend(previous.files.iter().map(|f| f.name.clone()).filter(|n| !current.files.iter().any(|f| &f.name == n)));
    install::swap(bin_dir, previous_dir, &names)?;
    let mut restored = moved(previous, bin_dir);
    let mut warnings = Vec::new();
    if s.os == Os::host() {
        for f in &mut restored.files {
            match binary_version(&f.name, Path::new(&f.path)).await {
                Ok(v) => f.version = Some(v),
                Err(e) => warnings.push(format!("{}: {e}", f.path)),
            }
        }
    }
    state.binaries = Some(restored.clone());
    state.previous_binaries = Some(moved(current, previous_dir));
    Ok(Report {
        outcome: Outcome::RolledBack,
        downloaded_bytes: 0,
        from_cache: false,
        verified_with: None,
        installed: restored,
        previous: state.previous_binaries.clone(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_layout_urls() {
        assert_eq!(
            archive_url("https://dl.k8s.io/release/", KubeVersion::new(1, 20, 2), "windows", "amd64"),
            "https://dl.k8s.io/release/v1.20.2/kubernetes-node-windows-amd64.tar.gz"
        );
        assert_eq!(marker_url("http://m", "latest-1.20"), "http://m/latest-1.20.txt");
    }

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

    #[test]
    fn version_commands_have_no_side_effects() {
        assert_eq!(version_args("kubelet.exe"), ["--version"]);
        assert_eq!(version_args("kubectl"), ["version", "--client"]);
        assert_eq!(version_args("kubeadm"), ["version", "-o", "short"]);
    }
}
