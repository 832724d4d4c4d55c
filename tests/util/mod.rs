//! Helpers shared by the integration tests.

pub mod archive;
pub mod http;
#[cfg(target_os = "linux")]
pub mod lab;
#[cfg(target_os = "linux")]
pub mod netns;

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::Path;

/// `wkjoin` with an environment that cannot leak the developer's cluster or settings into a test.
pub fn wkjoin() -> Command {
    let mut cmd = Command::cargo_bin("wkjoin").expect("wkjoin binary is built");
    cmd.env_remove("KUBECONFIG").env("WKJOIN_LOG", "warn");
    // Tests talk to 127.0.0.1 only, never through a proxy of the developer's.
    for proxy in
        ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"]
    {
        cmd.env_remove(proxy);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("WKJOIN_") && key != "WKJOIN_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Standard output of a command expected to succeed.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs a command expected to fail; returns (exit code, stderr).
pub fn failure_of(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("runs");
    assert!(!out.status.success(), "expected failure, got success:\n{}", String::from_utf8_lossy(&out.stdout));
    (out.status.code().expect("exit code"), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Compares with a golden file embedded at compile time; `UPDATE_GOLDEN=1` rewrites it instead.
pub fn check_golden(path: &str, expected: &str, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "output differs from {path} (first differing line: {first:?}); rerun with UPDATE_GOLDEN=1 if the change is intended\n--- actual ---\n{actual}"
        );
    }
}

macro_rules! golden {
    ($name:literal, $actual:expr) => {
        $crate::util::check_golden(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/", $name),
            include_str!(concat!("golden/", $name)),
            &$actual,
        )
    };
}

/// Every file below `dir`, as sorted relative paths, to prove a failed command changed nothing.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                if p.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every file and directory below `dir` with the files' contents, to prove a failed command changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    tree(dir)
        .into_iter()
        .map(|rel| {
            let p = dir.join(&rel);
            let contents = if p.is_dir() { None } else { Some(std::fs::read(&p).unwrap()) };
            (rel, contents)
        })
        .collect()
}

/// Explicit settings, so the plan depends on nothing from the machine running the test.
pub const PLAN_NODE: [&str; 14] = [
    "--node-name",
    "worker-1",
    "--node-ip",
    "172.30.0.11",
    "--kubernetes-version",
    "v1.20.2",
    "--cluster-cidr",
    "10.244.0.0/16",
    "--service-cidr",
    "10.96.0.0/16",
    "--pod-cidr",
    "10.244.1.0/24",
    "--cni-bin-dir",
    "/usr/lib/cni",
];
