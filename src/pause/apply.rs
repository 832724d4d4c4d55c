//! The pause step applied: what the runtime has is observed first, then the plan runs through the host; the
//! runtime's config change (recorded in the state file first) and the image import are the step's own actions,
//! every other action is the executor's.

use super::{ImageError, RUNTIME_SERVICE, ctr_args, pause_image, restart_command, runtime_endpoint, sha256_hex};
use crate::apply::ApplyError;
use crate::plan::{Action, Plan, Step};
use crate::settings::{Runtime, Settings};

/// What `wkjoin pause` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseOutcome {
    /// The image was already in the runtime: nothing was done.
    Present,
    Imported,
    Pulled,
    Built,
}

/// What the pause step changed: the image's outcome, and whether the runtime's config was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseReport {
    pub outcome: PauseOutcome,
    /// The runtime's sandbox image was changed from this (None: the runtime already agreed).
    pub runtime_reconfigured: Option<String>,
}

impl PauseReport {
    /// Whether anything changed, and one line saying what.
    pub fn summary(&self, image: &str) -> (bool, String) {
        let (mut changed, mut line) = match self.outcome {
            PauseOutcome::Present => (false, format!("pause image {image} is in the runtime")),
            PauseOutcome::Imported => (true, format!("imported pause image {image}")),
            PauseOutcome::Pulled => (true, format!("pulled pause image {image}")),
            PauseOutcome::Built => (true, format!("built pause image {image}")),
        };
        if let Some(from) = &self.runtime_reconfigured {
            changed = true;
            line = format!("the runtime's sandbox image is now {image} (was {from}; runtime restarted); {line}");
        }
        (changed, line)
    }
}

/// What the pause step found on the host before planning: whether the runtime has the pause image already
/// (asked over CRI; None when it cannot be asked: another OS, Docker, or no answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    pub image_present: Option<bool>,
}

/// Asks the runtime (containerd on this host) whether it has the pause image, so the plan pulls or imports it
/// only when it is missing.
pub async fn observe(s: &Settings, host: &mut impl crate::host::Host) -> Observed {
    if s.os != crate::layout::Os::host() || s.runtime != Runtime::Containerd {
        return Observed::default();
    }
    Observed { image_present: host.runtime_has_image(&runtime_endpoint(s), &pause_image(s)).await.ok() }
}

/// Applies the pause plan, action by action, through `host`: the runtime's config change (recorded in the state
/// file first) and the image import are the step's own actions; every other action is the executor's.
pub async fn apply(s: &Settings, plan: &Plan, host: &mut impl crate::host::Host) -> Result<PauseReport, ImageError> {
    let host_os = if host.is_windows() { crate::layout::Os::Windows } else { crate::layout::Os::Linux };
    if s.os != host_os {
        return Err(ApplyError::ForeignOs { plan_os: s.os, host_os }.into());
    }
    let mut report = PauseReport { outcome: PauseOutcome::Present, runtime_reconfigured: None };
    let mut ctx = crate::apply::Context::default();
    for action in &plan.actions {
        match action {
            Action::ConfigureRuntime { file, backup, from, to: _, original_sha256, contents } => {
                configure_runtime(s, file, backup, original_sha256.as_deref(), contents, host)?;
                report.runtime_reconfigured = Some(from.clone().unwrap_or_else(|| "unknown".into()));
            }
            Action::ImportImage { source, image, sha256 } => {
                import(s, source, image, sha256.as_deref(), host).await?;
                report.outcome = PauseOutcome::Imported;
            }
            other => {
                crate::apply::action(Step::Pause, other, host, &mut crate::cluster::Offline, &mut ctx).await?;
                match other {
                    Action::Run { args, .. } if args.iter().any(|a| a == "pull") => {
                        report.outcome = PauseOutcome::Pulled
                    }
                    Action::Run { .. } => report.outcome = PauseOutcome::Built,
                    _ => {}
                }
            }
        }
    }
    Ok(report)
}

/// `ctr images import`, then a check over CRI that the archive gave the image under the name sandboxes use.
async fn import(
    s: &Settings,
    source: &str,
    image: &str,
    sha256: Option<&str>,
    host: &mut impl crate::host::Host,
) -> Result<(), ImageError> {
    let file = local_archive(s, source, host).await?;
    verify_archive(source, &file, sha256, host).await?;
    let import = Action::Run {
        program: "ctr".into(),
        args: ctr_args(s, &["images", "import", &file]),
        purpose: format!("import {image}"),
    };
    crate::apply::action(Step::Pause, &import, host, &mut crate::cluster::Offline, &mut Default::default()).await?;
    let endpoint = runtime_endpoint(s);
    let present = host.runtime_has_image(&endpoint, image).await.map_err(|e| ImageError::NotInRuntime {
        endpoint: endpoint.clone(),
        image: image.into(),
        message: e.to_string(),
    })?;
    if !present {
        let (_, have) = has_image(host, s, image)?;
        return Err(ImageError::NotInArchive { source_name: source.into(), image: image.into(), have });
    }
    Ok(())
}

/// Writes the runtime's new config: the original is kept once (a second join keeps the first original) and the
/// change is recorded in the state file before the file is replaced, so a failure in between is still owned.
fn configure_runtime(
    s: &Settings,
    file: &str,
    backup: &str,
    original_sha256: Option<&str>,
    contents: &str,
    host: &mut impl crate::host::Host,
) -> Result<(), ImageError> {
    use crate::state::{RuntimeConfigChange, State};
    let now = host.read_file(std::path::Path::new(file))?.map(|b| String::from_utf8_lossy(&b).into_owned());
    if now.as_deref().map(sha256_hex).as_deref() != original_sha256 {
        return Err(ImageError::RuntimeConfigChanged { file: file.into() });
    }
    let state_path = s.layout().state_file();
    let mut state = State::load(std::path::Path::new(&state_path))?.unwrap_or_default();
    // A file wkjoin changed earlier keeps its first original: reset must get back what the admin had.
    // Only while the file is still exactly what wkjoin wrote is the first original the one to restore.
    let (backup, original) = match &state.runtime_config {
        Some(prev) if prev.file == file && now.as_deref().map(sha256_hex).as_ref() == Some(&prev.written_sha256) => {
            (prev.backup.clone(), prev.original_sha256.clone())
        }
        _ => match &now {
            Some(text) => {
                host.write_file(std::path::Path::new(backup), text.as_bytes(), true)?;
                (Some(backup.to_string()), Some(sha256_hex(text)))
            }
            None => (None, None),
        },
    };
    state.runtime_config = Some(RuntimeConfigChange {
        file: file.into(),
        backup,
        original_sha256: original,
        written_sha256: sha256_hex(contents),
        service: RUNTIME_SERVICE.into(),
        restart: restart_command(s.os, s.runtime_facts.as_ref().is_some_and(|r| r.systemd_is_init)),
        endpoint: runtime_endpoint(s),
    });
    state.save(std::path::Path::new(&state_path), host)?;
    // A config readable only by its owner (registry credentials) stays that way.
    let private = host.owner_only(std::path::Path::new(file)).unwrap_or(false);
    host.write_file(std::path::Path::new(file), contents.as_bytes(), private)?;
    Ok(())
}

fn has_image(host: &mut impl crate::host::Host, s: &Settings, image: &str) -> Result<(bool, String), ImageError> {
    let args = ctr_args(s, &["images", "ls", "-q"]);
    let out = host.run("ctr", &args)?;
    if out.status != Some(0) {
        return Err(crate::host::HostError::CommandFailed {
            command: format!("ctr {}", args.join(" ")),
            status: out.status,
            stderr: out.stderr,
        }
        .into());
    }
    Ok((out.stdout.lines().any(|l| l.trim() == image), out.stdout.lines().collect::<Vec<_>>().join(", ")))
}

/// Checks the archive's SHA-256 before anything is imported: against `expected`, else the `.sha256` published
/// beside it (a URL must have one; a local file without one is imported with a warning).
async fn verify_archive(
    source: &str,
    file: &str,
    expected: Option<&str>,
    host: &mut impl crate::host::Host,
) -> Result<(), ImageError> {
    let published = format!("{source}.sha256");
    let expected = match expected {
        Some(h) => h.to_string(),
        None => match checksum_beside(&published).await? {
            Some(h) => h,
            None if is_url(source) => return Err(ImageError::NoChecksum { url: source.into() }),
            None => {
                tracing::warn!("{source} has no {published} and no --image-archive-sha256: imported unverified");
                return Ok(());
            }
        },
    };
    let bytes = host
        .read_file(std::path::Path::new(file))?
        .ok_or_else(|| ImageError::Read { path: file.into(), source: std::io::ErrorKind::NotFound.into() })?;
    let actual = crate::host::digest_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected.trim()) {
        return Err(ImageError::ChecksumMismatch { source_name: source.into(), expected, actual });
    }
    Ok(())
}

fn is_url(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The first word of a `.sha256` file (a URL or a local path); None when there is none.
async fn checksum_beside(location: &str) -> Result<Option<String>, ImageError> {
    let text = if is_url(location) {
        let dl = crate::fetch::download::Downloader::new(Default::default())
            .map_err(|e| ImageError::Download { url: location.into(), source: Box::new(e) })?;
        match dl.get_small(location, 4096).await {
            Ok(crate::fetch::download::Small::Found(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(crate::fetch::download::Small::Missing) => return Ok(None),
            Err(e) => return Err(ImageError::Download { url: location.into(), source: Box::new(e) }),
        }
    } else {
        match std::fs::read_to_string(location.strip_prefix("file://").unwrap_or(location)) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        }
    };
    Ok(text.split_whitespace().next().map(str::to_string))
}

/// A local path for an archive given as a file or an http(s) URL (downloaded into the cache).
async fn local_archive(s: &Settings, source: &str, host: &mut impl crate::host::Host) -> Result<String, ImageError> {
    let lower = source.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        let path = source.strip_prefix("file://").unwrap_or(source);
        std::fs::metadata(path).map_err(|e| ImageError::Read { path: path.to_string(), source: e })?;
        return Ok(path.to_string());
    }
    let name = source.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("image.oci.tar");
    let cache = crate::layout::Layout::new(s.os, s.layout().cache_dir()).join(&["images", name]);
    let dl = crate::fetch::download::Downloader::new(Default::default())
        .map_err(|e| ImageError::Download { url: source.into(), source: Box::new(e) })?;
    match dl.get_small(source, 1 << 30).await {
        Ok(crate::fetch::download::Small::Found(bytes)) => {
            host.write_file(std::path::Path::new(&cache), &bytes, false)?;
            Ok(cache)
        }
        Ok(crate::fetch::download::Small::Missing) => Err(ImageError::Missing { url: source.into() }),
        Err(e) => Err(ImageError::Download { url: source.into(), source: Box::new(e) }),
    }
}
