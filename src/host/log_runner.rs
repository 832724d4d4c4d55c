//! Runs a program with its stdout and stderr captured into a size-capped, rotated log file: what a service
//! manager without log capture (the Windows SCM) needs for programs that only log to stderr (klog from 1.26).

use super::supervisor::RotatingLog;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How large the log may grow before it is rotated, and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub keep: u32,
}

/// Runs `program` until it exits (an error: a service's program is meant to run) or `stop` fires (it is
/// killed, and that is success), with every line of its stdout and stderr in `log`.
pub fn run_logged(
    program: &str,
    args: &[String],
    log: &Path,
    limits: Limits,
    stop: mpsc::Receiver<()>,
) -> Result<(), String> {
    let mut out = RotatingLog::open(log, limits.max_bytes, limits.keep)
        .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
    // The supervisor's log writer adds the line end itself.
    let mut write = |line: &[u8]| out.write_line(line.strip_suffix(b"\n").unwrap_or(line));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let pipes: Vec<Box<dyn std::io::Read + Send>> = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let tx = tx.clone();
            // Whole lines only, so the two streams never interleave inside a line.
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut buf = Vec::new();
                while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    if tx.send(std::mem::take(&mut buf)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let result = loop {
        while let Ok(line) = rx.try_recv() {
            write(&line).map_err(|e| format!("cannot write log {}: {e}", log.display()))?;
        }
        if stop.try_recv().is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            break Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => break Err(format!("{program} exited ({status})")),
            Ok(None) => {}
            Err(e) => break Err(format!("cannot wait for {program}: {e}")),
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => write(&line).map_err(|e| format!("cannot write log {}: {e}", log.display()))?,
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
    };
    // What the program printed last (its reason for exiting) goes in too; a pipe a grandchild still holds open
    // is not waited for.
    drop(readers);
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        let _ = write(&line);
    }
    result
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> (String, Vec<String>) {
        ("sh".into(), vec!["-c".into(), script.into()])
    }

    #[test]
    fn both_streams_land_in_the_log_and_an_exit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs").join("kubelet.log");
        let (p, a) = sh("echo to-stdout; echo to-stderr >&2; exit 3");
        let (_tx, rx) = mpsc::channel();
        let err = run_logged(&p, &a, &log, Limits { max_bytes: 1 << 20, keep: 2 }, rx).unwrap_err();
        assert!(err.contains("exited") && err.contains('3'), "{err}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("to-stdout\n") && text.contains("to-stderr\n"), "{text}");
    }

    #[test]
    fn a_stop_kills_the_program_and_is_success() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kube-proxy.log");
        let (p, a) = sh("echo started; exec sleep 60");
        let (tx, rx) = mpsc::channel();
        let t = std::time::Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            let _ = tx.send(());
        });
        run_logged(&p, &a, &log, Limits { max_bytes: 1 << 20, keep: 2 }, rx).unwrap();
        assert!(t.elapsed() < Duration::from_secs(30), "the program was not killed");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");
    }

    #[test]
    fn the_log_rotates_at_its_size_and_keeps_that_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kubelet.log");
        let mut r = RotatingLog::open(&log, 10, 2).unwrap();
        for i in 0..5 {
            r.write_line(format!("line-{i}").as_bytes()).unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap_or_default();
        assert_eq!(read("kubelet.log"), "line-4\n");
        assert_eq!(read("kubelet.log.1"), "line-3\n");
        assert_eq!(read("kubelet.log.2"), "line-2\n");
        assert!(!dir.path().join("kubelet.log.3").exists(), "only `keep` rotated files");
    }
}
