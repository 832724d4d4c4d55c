//! `wkjoin fetch --rollback`: the installed and the previous binaries swap places, on disk and in the state
//! file's records.

use super::report::{Outcome, Report};
use super::version::binary_version;
use super::{FetchError, install};
use crate::layout::Os;
use crate::settings::Settings;
use crate::state::{InstalledRelease, State};
use std::path::Path;

/// The record of a release whose files moved from their bin dir to `dir`.
pub(super) fn moved(mut rec: InstalledRelease, dir: &Path) -> InstalledRelease {
    for f in &mut rec.files {
        f.path = dir.join(&f.name).display().to_string();
    }
    rec.bin_dir = dir.display().to_string();
    rec
}

/// Swaps the installed binaries with the previous ones, both on disk and in the state file.
pub(super) async fn rollback(
    s: &Settings,
    state: &mut State,
    bin_dir: &Path,
    previous_dir: &Path,
) -> Result<Report, FetchError> {
    let (Some(current), Some(previous)) = (state.binaries.clone(), state.previous_binaries.clone()) else {
        return Err(FetchError::NothingToRollBack { dir: bin_dir.display().to_string() });
    };
    // The previous set must be exactly what was recorded, or the swap could leave the node without a kubelet.
    for f in &previous.files {
        let path = previous_dir.join(&f.name);
        if f.sha256.is_empty() {
            tracing::warn!("{}: kept before wkjoin recorded hashes; swapped in unverified", path.display());
            continue;
        }
        let actual = super::job::file_sha256(&path).unwrap_or_else(|e| format!("unreadable ({e})"));
        if actual != f.sha256 {
            return Err(FetchError::PreviousDamaged {
                path: path.display().to_string(),
                expected: f.sha256.clone(),
                actual,
            });
        }
    }
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
        left_alone: Vec::new(),
        cni_plugins: None,
    })
}
