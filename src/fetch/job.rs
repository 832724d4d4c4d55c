//! One install of a node archive: unchanged when the recorded binaries are intact; otherwise the expected
//! checksum, a streaming pass (from the cache when it holds the archive), the version check, and the atomic
//! install that rotates the replaced release into previous/ and records the new one.

use super::download::{Downloader, RetryPolicy};
use super::pass::{Input, joined};
use super::progress::Progress;
use super::report::{Outcome, Report};
use super::rollback::moved;
use super::source::{self, Checksum, Location};
use super::unpack::{self, Wanted};
use super::version::binary_version;
use super::{FetchError, install};
use crate::layout::Os;
use crate::settings::Settings;
use crate::state::{InstalledFile, InstalledRelease, State};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Which archive a job installs, and so which record in the state file is its.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The Kubernetes node archive: its replaced binaries rotate into previous/ for `--rollback`.
    Node,
    /// The CNI plugins release (Windows): installed into the runtime's CNI bin dir, never over a plugin wkjoin
    /// did not install (the caller leaves those out of `wanted`).
    CniPlugins,
}

/// One install of a node archive.
pub(super) struct Job<'a> {
    pub(super) kind: Kind,
    pub(super) s: &'a Settings,
    pub(super) url: &'a str,
    pub(super) pinned: Option<&'a str>,
    pub(super) version: Option<&'a str>,
    pub(super) wanted: Wanted,
    pub(super) bin_dir: &'a Path,
    pub(super) previous_dir: PathBuf,
    pub(super) cache_dir: &'a Path,
    pub(super) local_archive: bool,
}

impl Job<'_> {
    pub(super) async fn run(&self, state: &mut State, progress: &Progress) -> Result<Report, FetchError> {
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
        let Some(rec) = self.record(state) else { return Ok(None) };
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
            previous: self.previous(state),
            warnings: Vec::new(),
            left_alone: Vec::new(),
            cni_plugins: None,
        }))
    }

    /// This archive's record in the state file.
    fn record<'s>(&self, state: &'s State) -> Option<&'s InstalledRelease> {
        match self.kind {
            Kind::Node => state.binaries.as_ref(),
            Kind::CniPlugins => state.cni_plugins.as_ref(),
        }
    }

    fn previous(&self, state: &State) -> Option<InstalledRelease> {
        match self.kind {
            Kind::Node => state.previous_binaries.clone(),
            Kind::CniPlugins => None,
        }
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
        let rotate = match (self.kind, &state.binaries) {
            (Kind::CniPlugins, _) => false,
            (Kind::Node, Some(rec)) => rec.archive_sha512 != pass.digests.sha512,
            (Kind::Node, None) => pass.unpacked.files.iter().any(|f| self.bin_dir.join(&f.name).exists()),
        };
        // Plugins are only ever added or repaired: a recorded one the set lacks stays for `reset` to judge.
        let retire: Vec<String> = self
            .record(state)
            .filter(|_| self.kind == Kind::Node)
            .into_iter()
            .flat_map(|rec| rec.files.iter().map(|f| f.name.clone()))
            .filter(|n| !pass.unpacked.files.iter().any(|f| &f.name == n))
            .collect();
        // Binaries installed by hand (no record) are kept like a release, so --rollback can restore them.
        let found = match (self.record(state), rotate) {
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
        match self.kind {
            Kind::Node => {
                if rotate {
                    state.previous_binaries = state.binaries.take().or(found).map(|rec| moved(rec, &self.previous_dir));
                }
                state.binaries = Some(installed.clone());
            }
            Kind::CniPlugins => state.cni_plugins = Some(installed.clone()),
        }
        prune_cache(self.cache_dir, state);
        Ok(Report {
            outcome: Outcome::Installed,
            downloaded_bytes: pass.downloaded,
            from_cache,
            verified_with: Some(format!("{} from {checksum_source}", expected.algorithm())),
            installed,
            previous: self.previous(state),
            warnings,
            left_alone: Vec::new(),
            cni_plugins: None,
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
                    // Hashed as found, so --rollback can prove they are still what was kept.
                    sha256: file_sha256(&path).ok()?,
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

    pub(super) fn not_found(&self) -> FetchError {
        match (self.version, self.local_archive) {
            (Some(v), false) => FetchError::VersionNotFound {
                version: v.to_string(),
                mirror: self.s.mirror.clone(),
                url: self.url.to_string(),
            },
            _ => FetchError::NotFound { url: self.url.to_string() },
        }
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
        // A CNI plugin has no version flag (it answers CNI_COMMAND=VERSION, about the CNI spec).
        if self.s.os != Os::host() || self.kind == Kind::CniPlugins {
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

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// SHA-256 of a file, hex: what the state file records of each installed binary.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
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

/// Keeps the cached archives of the installed and the previous release; older ones only take space.
fn prune_cache(cache_dir: &Path, state: &State) {
    let keep: Vec<String> = [&state.binaries, &state.previous_binaries, &state.cni_plugins]
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
