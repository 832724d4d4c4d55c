//! File operations that are the same on both platforms.

use super::HostError;
use std::io::Write;
use std::path::Path;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io { op, path: path.to_path_buf(), source }
}

pub fn create_dir(path: &Path) -> Result<(), HostError> {
    std::fs::create_dir_all(path).map_err(io("create directory", path))
}

/// Creates `path` exclusively (never through a link or over a file someone put there), owner-only on Unix until
/// the caller widens it: no byte is ever readable by others before its mode is set.
pub fn create_exclusive(path: &Path) -> Result<std::fs::File, HostError> {
    // A leftover of a crashed run (or a link someone planted) goes first; remove_file never follows a link.
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map_err(io("create", path))
}

/// Writes beside the target and renames over it, so readers see the old or the new file, never half of one.
/// `restrict` runs on the temporary file (created exclusively, owner-only) before any byte is written.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    restrict: impl FnOnce(&Path) -> Result<(), HostError>,
) -> Result<(), HostError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.wkjoin-tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = create_exclusive(&tmp)?;
        restrict(&tmp)?;
        f.write_all(contents).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io("replace", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn remove_path(path: &Path) -> Result<(), HostError> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.map_err(io("remove", path))
}

/// How long an external command may run before it is killed: long enough for `docker build` of a Windows
/// pause image (a nanoserver pull) or a large `ctr images import`, short enough that a hung tool ends the step.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20 * 60);

pub fn run(program: &str, args: &[String]) -> Result<super::CommandOutput, HostError> {
    run_for(program, args, COMMAND_TIMEOUT)
}

/// Runs a command with no stdin, collecting its output; killed (and an error) once `timeout` has passed.
pub fn run_for(
    program: &str,
    args: &[String],
    timeout: std::time::Duration,
) -> Result<super::CommandOutput, HostError> {
    use std::io::Read;
    use std::process::Stdio;
    let spawn = |source| HostError::Spawn { program: program.to_string(), source };
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    // Both pipes drain on their own threads, so a chatty command never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn)? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostError::Timeout {
                command: format!("{program} {}", args.join(" ")),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(super::CommandOutput {
        status: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    })
}

/// Whether `ip` is an address of this machine: binding a UDP socket to it succeeds only then (no packet is
/// sent; the same on Linux and Windows).
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

// Links and process kills as these tests need them are Unix ones; Windows stages files the same way.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_at_the_temporary_name_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let target = dir.path().join("config");
        let tmp = dir.path().join(format!(".config.wkjoin-tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&target, b"secret", |_| Ok(())).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        use std::os::unix::fs::PermissionsExt;
        // Created owner-only: a caller that does not widen it keeps it so.
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let e = run_for("sleep", &["30".into()], std::time::Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, HostError::Timeout { secs: 0, .. }), "{e}");
        assert!(e.to_string().contains("sleep 30"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "waited {:?}", started.elapsed());
        // Output and exit codes of commands that finish come back as before.
        let out = run_for("sh", &["-c".into(), "echo out; echo err >&2; exit 3".into()], COMMAND_TIMEOUT).unwrap();
        assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (Some(3), "out\n", "err\n"));
    }
}
