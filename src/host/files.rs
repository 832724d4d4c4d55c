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

/// Writes beside the target and renames over it, so readers see the old or the new file, never half of one.
/// `restrict` runs on the temporary file before it gets its final name.
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
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
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

pub fn run(program: &str, args: &[String]) -> Result<super::CommandOutput, HostError> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| HostError::Spawn { program: program.to_string(), source })?;
    Ok(super::CommandOutput {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a program with `input` on its standard input; a non-zero exit is an error.
pub fn run_with_input(program: &str, args: &[String], input: &[u8]) -> Result<(), HostError> {
    let spawn = |source| HostError::Spawn { program: program.to_string(), source };
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        return Ok(());
    }
    Err(HostError::CommandFailed {
        command: format!("{program} {}", args.join(" ")),
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Whether `ip` is an address of this machine: binding a UDP socket to it succeeds only then (no packet is
/// sent; the same on Linux and Windows).
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}
