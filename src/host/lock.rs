//! One wkjoin at a time per root dir: an exclusive lock on `<root>/.lock` (flock on Linux, LockFileEx on
//! Windows, through std), with who holds it and since when in `<root>/.lock.owner`. The lock is re-entrant
//! within a process (join holds it and calls the steps that take it too); the OS drops it when the process
//! ends, so a killed wkjoin never leaves a stale lock. Both files are removed (while still locked) when the
//! last guard goes, so a refused or finished command leaves nothing behind; a waiter that locked the removed
//! file sees it is no longer the one at the path and takes the lock again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another wkjoin is changing this node ({holder}; lock {}): wait for it to finish, or stop it, then run this again; nothing was changed",
        path.display()
    )]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Locks this process holds, by path, with how many guards share each.
fn held() -> &'static Mutex<BTreeMap<PathBuf, Arc<File>>> {
    static HELD: OnceLock<Mutex<BTreeMap<PathBuf, Arc<File>>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// The exclusive lock of a root dir; released when the last guard of this process drops.
#[derive(Debug)]
pub struct RootLock {
    path: PathBuf,
    file: Option<Arc<File>>,
}

impl Drop for RootLock {
    fn drop(&mut self) {
        let mut held = held().lock().unwrap_or_else(|e| e.into_inner());
        // The map's own reference and ours: the last guard removes it, and the file's close unlocks it.
        if self.file.take().is_some_and(|f| Arc::strong_count(&f) <= 2) {
            let _ = std::fs::remove_file(owner_file(&self.path));
            let _ = std::fs::remove_file(&self.path);
            held.remove(&self.path);
        }
    }
}

fn owner_file(lock: &Path) -> PathBuf {
    lock.with_file_name(".lock.owner")
}

/// How long a command waits for the routes watcher's pass (a state write of a moment) before it gives up.
const BRIEF_HOLDER_WAIT: Duration = Duration::from_secs(30);

/// Takes the lock of `root` at once, or says who holds it. `what`: this command, for the owner file. A routes
/// pass (the watcher's state write) is waited for, briefly: it ends within moments, unlike another command.
pub fn lock_root(root: &Path, what: &str) -> Result<RootLock, LockError> {
    match lock_root_within(root, what, Duration::ZERO) {
        Err(LockError::Held { holder, .. }) if holder.contains("`wkjoin routes`") => {
            tracing::info!("waiting for the routes watcher's pass ({holder}) to finish");
            lock_root_within(root, what, BRIEF_HOLDER_WAIT)
        }
        other => other,
    }
}

/// As [`lock_root`], waiting up to `wait` for a holder to finish (the routes watcher's state writes).
pub fn lock_root_within(root: &Path, what: &str, wait: Duration) -> Result<RootLock, LockError> {
    let path = root.join(".lock");
    let io = |source| LockError::Io { path: path.clone(), source };
    let mut map = held().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = map.get(&path) {
        return Ok(RootLock { path, file: Some(f.clone()) });
    }
    // A root wkjoin creates is protected before anything is written into it (Windows: SYSTEM and Administrators
    // only, Users read); one that exists keeps what its owner gave it.
    if !root.exists() {
        std::fs::create_dir_all(root).map_err(io)?;
        super::protect_dir(root)
            .map_err(|e| LockError::Io { path: root.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
    }
    let deadline = Instant::now() + wait;
    let busy = |path: PathBuf| {
        let holder = std::fs::read_to_string(owner_file(&path))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "a process that did not say who it is".into());
        LockError::Held { path, holder }
    };
    let file = loop {
        let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            // Windows: the holder is removing it (delete pending) as it finishes.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Err(busy(path)),
            Err(e) => return Err(io(e)),
        };
        match file.try_lock() {
            // Locked, but the holder may have removed it meanwhile: only the file at the path counts.
            Ok(()) if is_at(&file, &path) => break file,
            Ok(()) => continue,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(TryLockError::WouldBlock) => return Err(busy(path)),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    };
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let owner = format!("pid {}, since {since}, `{what}`", std::process::id());
    // Who holds it, for the next wkjoin's message; the lock itself is what counts.
    if let Ok(mut f) = File::create(owner_file(&path)) {
        let _ = f.write_all(owner.as_bytes());
    }
    let file = Arc::new(file);
    map.insert(path.clone(), file.clone());
    Ok(RootLock { path, file: Some(file) })
}

/// Whether `file` is the file at `path` now (not one removed since it was opened).
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Windows cannot open a file that is being removed: the one opened is the one at the path.
#[cfg(windows)]
fn is_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds `root`'s lock as another process would (its own open file), saying it is `holder`, for `secs`.
    fn held_by(root: &Path, holder: &str, secs: u64) -> std::thread::JoinHandle<()> {
        std::fs::create_dir_all(root).unwrap();
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(root.join(".lock")).unwrap();
        file.try_lock().unwrap();
        std::fs::write(root.join(".lock.owner"), format!("pid 1, since now, `{holder}`")).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            drop(file);
        })
    }

    #[test]
    fn a_command_waits_briefly_for_a_routes_pass_and_never_for_another_command() {
        let dir = tempfile::tempdir().unwrap();
        let pass = held_by(dir.path(), "wkjoin routes", 1);
        let started = Instant::now();
        let got = lock_root(dir.path(), "wkjoin join").expect("the routes pass ends and the join goes on");
        assert!(started.elapsed() >= Duration::from_millis(800), "{:?}", started.elapsed());
        drop(got);
        pass.join().unwrap();
        let other = dir.path().join("other");
        let join = held_by(&other, "wkjoin join", 2);
        let started = Instant::now();
        let e = lock_root(&other, "wkjoin reset").unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500) && e.to_string().contains("`wkjoin join`"), "{e}");
        join.join().unwrap();
    }

    #[test]
    fn the_lock_is_reentrant_in_a_process_and_released_by_the_last_guard() {
        let dir = tempfile::tempdir().unwrap();
        let a = lock_root(dir.path(), "wkjoin join").unwrap();
        let b = lock_root(dir.path(), "wkjoin routes").unwrap();
        let owner = std::fs::read_to_string(dir.path().join(".lock.owner")).unwrap();
        assert!(owner.contains(&format!("pid {}", std::process::id())) && owner.contains("`wkjoin join`"), "{owner}");
        // Another open file description of the same lock cannot take it while a guard lives.
        let other = File::open(dir.path().join(".lock")).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(a);
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)), "a guard still holds it");
        drop(b);
        other.try_lock().expect("released with the last guard");
        // And nothing is left behind in the root (Windows removes a file once its last handle closes).
        drop(other);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
