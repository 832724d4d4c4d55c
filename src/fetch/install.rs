//! Moving verified binaries into place: a staging directory beside them (same filesystem, so every move is a
//! rename), one atomic replacement per file, the replaced set kept in `previous/` for `--rollback`.

use super::FetchError;
use super::unpack::Staged;
use crate::host::{Host, Native};
use std::path::{Path, PathBuf};

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let path = path.display().to_string();
    move |source| FetchError::io(op, path, source)
}

/// Directories created for a run, removed again (when still empty) unless the run succeeds, so a failed
/// fetch leaves the root exactly as it found it.
#[derive(Debug, Default)]
pub struct CreatedDirs {
    /// Deepest first.
    dirs: Vec<PathBuf>,
}

impl CreatedDirs {
    pub fn create(&mut self, path: &Path) -> Result<(), FetchError> {
        let missing: Vec<PathBuf> =
            path.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(path).map_err(io("create directory", path))?;
        self.dirs.extend(missing);
        Ok(())
    }

    /// The run succeeded: the directories stay.
    pub fn keep(&mut self) {
        self.dirs.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Fails, as it should, on a directory that is not empty.
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The staging directory inside the bin dir, removed with whatever is left in it when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Also sweeps staging directories a killed run left behind (one fetch per root at a time: a concurrent
    /// one would fail cleanly, never half-install).
    pub fn create(bin_dir: &Path) -> Result<Staging, FetchError> {
        sweep(bin_dir, |name| name.starts_with(".wkjoin-staging-") || name.starts_with(".previous-new-"));
        let dir = bin_dir.join(format!(".wkjoin-staging-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(io("create directory", &dir))?;
        Ok(Staging { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the entries of `dir` whose names match: leftovers of an interrupted run.
pub fn sweep(dir: &Path, matches: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if matches(&e.file_name().to_string_lossy()) {
            let path = e.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// Moves each staged binary to `bin_dir/<name>`. With `previous_dir`, the binaries it replaces are kept there
/// (replacing what was kept before, but only once the whole new set is in place: until then they gather in a
/// sibling directory) and `retire` names managed binaries the new set lacks, which move there too; without it
/// the old files are simply replaced (a repair of the same release). On a failure midway, the files already
/// moved are put back and the release kept before stays as it was.
pub fn install(
    staged: &[Staged],
    bin_dir: &Path,
    previous_dir: Option<&Path>,
    retire: &[String],
) -> Result<Vec<PathBuf>, FetchError> {
    let gathering = previous_dir.map(|prev| prev.with_file_name(format!(".previous-new-{}", std::process::id())));
    if let Some(g) = &gathering {
        Native.remove_path(g).map_err(FetchError::Host)?;
        std::fs::create_dir_all(g).map_err(io("create directory", g))?;
    }
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for file in staged {
        let target = bin_dir.join(&file.name);
        let keep = gathering.as_ref().map(|d| d.join(&file.name)).filter(|_| target.exists());
        if let Err(e) = crate::host::replace_file(&file.path, &target, keep.as_deref()) {
            undo(&done);
            if let Some(g) = &gathering {
                let _ = Native.remove_path(g);
            }
            return Err(FetchError::Host(e));
        }
        done.push((target, keep));
    }
    for name in retire {
        let current = bin_dir.join(name);
        if current.exists() {
            let result = match &gathering {
                Some(g) => std::fs::rename(&current, g.join(name)),
                None => std::fs::remove_file(&current),
            };
            result.map_err(io("retire", &current))?;
        }
    }
    // The new set is in place: the replaced one becomes the release kept for --rollback.
    if let (Some(prev), Some(g)) = (previous_dir, &gathering) {
        Native.remove_path(prev).map_err(FetchError::Host)?;
        std::fs::rename(g, prev).map_err(io("keep the replaced release in", prev))?;
    }
    Ok(done.into_iter().map(|(t, _)| t).collect())
}

/// Best effort: the old binaries back where they were.
fn undo(done: &[(PathBuf, Option<PathBuf>)]) {
    for (target, keep) in done.iter().rev() {
        let _ = match keep {
            Some(k) => std::fs::rename(k, target),
            None => std::fs::remove_file(target),
        };
    }
}

/// Swaps the binaries named in `names` between `bin_dir` and `previous_dir`, one rename at a time (renaming
/// works on a running `.exe`, replacing it does not).
pub fn swap(bin_dir: &Path, previous_dir: &Path, names: &[String]) -> Result<(), FetchError> {
    std::fs::create_dir_all(previous_dir).map_err(io("create directory", previous_dir))?;
    for name in names {
        let current = bin_dir.join(name);
        let previous = previous_dir.join(name);
        let aside = bin_dir.join(format!(".{name}.wkjoin-swap"));
        match (current.exists(), previous.exists()) {
            (true, true) => {
                std::fs::rename(&current, &aside).map_err(io("move aside", &current))?;
                std::fs::rename(&previous, &current).map_err(io("restore", &previous))?;
                std::fs::rename(&aside, &previous).map_err(io("keep", &aside))?;
            }
            (false, true) => std::fs::rename(&previous, &current).map_err(io("restore", &previous))?,
            (true, false) => std::fs::rename(&current, &previous).map_err(io("keep", &current))?,
            (false, false) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &Path, name: &str, text: &str) -> Staged {
        let path = dir.join(format!("staged-{name}"));
        std::fs::write(&path, text).unwrap();
        Staged { name: name.into(), path, size: text.len() as u64, sha256: String::new() }
    }

    #[test]
    fn the_release_kept_before_survives_an_install_that_fails_midway() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, prev) = (dir.path().join("bin"), dir.path().join("bin/previous"));
        std::fs::create_dir_all(&prev).unwrap();
        for (d, v) in [(&bin, "v2"), (&prev, "v1")] {
            for n in ["kubelet", "kube-proxy"] {
                std::fs::write(d.join(n), format!("{n} {v}")).unwrap();
            }
        }
        // The second staged file is missing: the install fails after replacing the first.
        let broken =
            vec![staged(dir.path(), "kubelet", "kubelet v3"), staged(dir.path(), "kube-proxy", "kube-proxy v3")];
        std::fs::remove_file(&broken[1].path).unwrap();
        assert!(install(&broken, &bin, Some(&prev), &[]).is_err());
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            (read(bin.join("kubelet")), read(bin.join("kube-proxy"))),
            ("kubelet v2".into(), "kube-proxy v2".into())
        );
        assert_eq!(
            (read(prev.join("kubelet")), read(prev.join("kube-proxy"))),
            ("kubelet v1".into(), "kube-proxy v1".into())
        );
        // A whole set installs, and only then does the replaced one become the kept release.
        let whole = [staged(dir.path(), "kubelet", "kubelet v3"), staged(dir.path(), "kube-proxy", "kube-proxy v3")];
        install(&whole, &bin, Some(&prev), &[]).unwrap();
        assert_eq!(read(bin.join("kubelet")), "kubelet v3");
        assert_eq!(
            (read(prev.join("kubelet")), read(prev.join("kube-proxy"))),
            ("kubelet v2".into(), "kube-proxy v2".into())
        );
        let left: Vec<_> = std::fs::read_dir(&bin).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().starts_with(".previous-new")), "{left:?}");
    }
}
