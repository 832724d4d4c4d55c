//! The command line: help that teaches, one-line errors with exit code 2, honest "not available".

use crate::util::{failure_of, stdout_of, tree, wkjoin};

const SUBCOMMANDS: [&str; 11] =
    ["preflight", "fetch", "pause", "config", "routes", "start", "join", "validate", "reset", "status", "completions"];

#[test]
fn top_level_help_lists_every_subcommand_and_exit_codes() {
    let help = stdout_of(wkjoin().arg("--help"));
    for sub in SUBCOMMANDS {
        assert!(help.contains(&format!("  {sub} ")), "--help does not list {sub}:\n{help}");
    }
    assert!(help.contains("3 validation found failures"), "{help}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in SUBCOMMANDS {
        let help = stdout_of(wkjoin().args([sub, "--help"]));
        assert!(help.contains("Usage: wkjoin"), "{sub}: {help}");
    }
}

#[test]
fn node_settings_help_names_defaults_and_env() {
    let help = stdout_of(wkjoin().args(["join", "--help"]));
    for needle in [
        "--cluster-cidr <CIDR>",
        "10.244.0.0/16",
        "10.96.0.0/12",
        "WKJOIN_CLUSTER_CIDR",
        "--kubernetes-version <VERSION>",
        "--runtime <RUNTIME>",
        "--dry-run",
        "--root-dir <DIR>",
        "--kubeconfig <FILE>",
        "--context <NAME>",
        "-o, --output <OUTPUT>",
    ] {
        assert!(help.contains(needle), "join --help lacks {needle}:\n{help}");
    }
}

/// The first line of stderr, which must carry the reason on its own.
fn first_line(stderr: &str) -> &str {
    stderr.lines().next().unwrap_or_default()
}

#[test]
fn unparsable_cidr_is_a_usage_error() {
    let (code, err) = failure_of(wkjoin().args(["join", "--dry-run", "--cluster-cidr", "10.0.0/8"]));
    assert_eq!(code, 2, "{err}");
    assert!(first_line(&err).contains("'10.0.0/8'") && first_line(&err).contains("--cluster-cidr"), "{err}");
}

#[test]
fn overlapping_ranges_are_a_usage_error_naming_both() {
    let (code, err) = failure_of(wkjoin().args([
        "join",
        "--dry-run",
        "--node-name",
        "n1",
        "--cluster-cidr",
        "10.96.0.0/12",
        "--service-cidr",
        "10.100.0.0/16",
    ]));
    assert_eq!(code, 2, "{err}");
    let line = first_line(&err);
    assert!(line.contains("10.96.0.0/12") && line.contains("10.100.0.0/16"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn unknown_output_format_is_a_usage_error() {
    let (code, err) = failure_of(wkjoin().args(["status", "-o", "xml"]));
    assert_eq!(code, 2);
    assert!(first_line(&err).contains("'xml'"), "{err}");
}

#[test]
fn env_and_config_file_layer_under_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wkjoin.yaml");
    std::fs::write(&file, "cluster-cidr: 10.200.0.0/16\nservice-cidr: 10.201.0.0/16\nnode-name: from-file\n").unwrap();
    let json = stdout_of(
        wkjoin()
            .args(["join", "--dry-run", "-o", "json", "--node-name", "from-flag", "--config"])
            .arg(&file)
            .env("WKJOIN_SERVICE_CIDR", "10.202.0.0/16"),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["settings"]["node-name"], "from-flag");
    assert_eq!(v["settings"]["cluster-cidr"], "10.200.0.0/16", "file beats default");
    assert_eq!(v["settings"]["service-cidr"], "10.202.0.0/16", "env beats file");
    assert_eq!(v["settings"]["cluster-dns"], "10.202.0.10", "DNS follows the service range");
}

#[test]
fn a_bad_config_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wkjoin.yaml");
    std::fs::write(&file, "cluster_cidr: 10.200.0.0/16\n").unwrap();
    let (code, err) = failure_of(wkjoin().args(["fetch", "--dry-run", "--node-name", "n", "--config"]).arg(&file));
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `cluster_cidr`") && err.contains("cluster-cidr"), "{err}");
}

#[test]
fn a_join_without_node_credentials_is_refused_before_it_changes_anything() {
    let root = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(wkjoin().args(["join", "--node-name", "n"]).arg("--root-dir").arg(root.path()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--kubeconfig") && err.contains("nothing was changed"), "{err}");
    assert!(tree(root.path()).is_empty(), "files appeared: {:?}", tree(root.path()));
}

#[test]
fn validate_rejects_unknown_checks_and_needs_a_cluster() {
    let (code, err) = failure_of(wkjoin().args(["validate", "--only", "pod-to-pod,bogus"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown check \"bogus\"") && err.contains("service-dns"), "{err}");
    let home = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(wkjoin().args(["validate"]).env("HOME", home.path()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("kubeconfig"), "{err}");
}

#[test]
fn completions_are_generated() {
    let script = stdout_of(wkjoin().args(["completions", "bash"]));
    assert!(script.contains("wkjoin") && script.contains("--cluster-cidr"), "{script}");
}

/// A root dir that is not wkjoin's own is refused before anything is looked at (reset would remove its bin/).
#[test]
fn a_system_directory_is_never_a_root_dir() {
    for (os, root) in [("linux", "/usr/local"), ("linux", "/"), ("windows", "C:\\Windows")] {
        let (code, err) =
            failure_of(wkjoin().args(["reset", "--dry-run", "--node-name", "n", "--os", os, "--root-dir", root]));
        assert_eq!(code, 2, "{root}: {err}");
        assert!(err.contains(&format!("--root-dir `{root}`")) && err.contains("of wkjoin's own"), "{err}");
    }
}

/// One wkjoin at a time per root dir: a second one says who holds the lock and changes nothing.
#[test]
fn a_second_wkjoin_on_the_same_root_is_refused_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_s = root.display().to_string();
    let held = wkjoin::host::lock::lock_root(&root, "wkjoin join (this test)").unwrap();
    let missing = dir.path().join("no-such-archive.tar.gz").display().to_string();
    let os = if cfg!(windows) { "windows" } else { "linux" };
    let sha = "0".repeat(128);
    let node = ["--node-name", "n1", "--os", os, "--kubernetes-version", "v1.20.2", "--sha512", &sha];
    let runs: [Vec<&str>; 2] = [
        ["fetch", "--archive", &missing, "--root-dir", &root_s].into_iter().chain(node).collect(),
        vec!["start", "--stop", "--root-dir", &root_s],
    ];
    for args in runs {
        let (code, err) = failure_of(wkjoin().args(&args));
        assert_eq!(code, 1, "{args:?}: {err}");
        let pid = format!("pid {}", std::process::id());
        assert!(err.contains("another wkjoin is changing this node") && err.contains(&pid), "{args:?}: {err}");
        assert!(err.contains("wkjoin join (this test)") && err.contains("nothing was changed"), "{args:?}: {err}");
    }
    assert!(!root.join("bin").exists() && !root.join("state.json").exists());
    // Released: the next run gets past the lock (and fails on the missing archive instead).
    drop(held);
    let args: Vec<&str> = ["fetch", "--archive", &missing, "--root-dir", &root_s].into_iter().chain(node).collect();
    let (_, err) = failure_of(wkjoin().args(&args));
    assert!(!err.contains("another wkjoin") && err.contains("no-such-archive"), "{err}");
}

/// Node credentials that skip TLS verification are refused before the join changes anything.
#[test]
fn a_join_with_insecure_credentials_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("insecure.kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    let (code, err) = failure_of(
        wkjoin().arg("join").arg("--kubeconfig").arg(&kc).arg("--root-dir").arg(&root).args(["--node-name", "n1"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("insecure-skip-tls-verify") && err.contains("nothing was changed"), "{err}");
    assert!(!root.exists(), "the join created {}", root.display());
}

/// A cluster domain (from flags or the cluster's kubeadm-config) goes into service command lines: a DNS name only.
#[test]
fn a_cluster_domain_that_is_not_a_dns_name_is_refused() {
    for bad in ["corp.local; rm -rf /", "$(reboot).local", "a..b", "-x.local"] {
        let domain = format!("--cluster-domain={bad}");
        let (code, err) = failure_of(wkjoin().args(["start", "--dry-run", "--node-name", "n", &domain]));
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("is not a DNS name"), "{bad}: {err}");
    }
    stdout_of(wkjoin().args(["start", "--dry-run", "--node-name", "n", "--cluster-domain", "corp.example.local"]));
}

/// A root dir wkjoin creates is writable by root only (0755), whatever the umask it runs under: with umask 077
/// it would be 0700 (the kubelet's files unreadable to the tools that inspect them), with 000 world-writable.
#[cfg(unix)]
#[test]
fn a_root_wkjoin_creates_gets_its_own_mode_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    for umask in ["077", "000"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("k");
        // A command that takes the root lock and then fails at once (nothing listens on the discard port).
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("umask {umask}; exec \"$@\""), "sh", env!("CARGO_BIN_EXE_wkjoin"), "fetch"])
            .arg("--root-dir")
            .arg(&root)
            .args([
                "--os",
                "linux",
                "--node-name",
                "n",
                "--kubernetes-version",
                "v1.20.2",
                "--mirror",
                "http://127.0.0.1:9",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "the fetch was to fail: {out:?}");
        let mode =
            std::fs::metadata(&root).unwrap_or_else(|e| panic!("umask {umask}: no root: {e}")).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "umask {umask}: root mode {:o}", mode & 0o777);
    }
}
