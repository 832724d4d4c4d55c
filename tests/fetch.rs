//! `wkjoin fetch` against a real HTTP server on 127.0.0.1 serving generated archives in the release layout,
//! and against local mirrors. Every failure must leave the root (installed binaries included) as it was.

use crate::util::archive::{self, Entry, node_archive, sha256_hex, sha512_hex};
use crate::util::http::{Route, Server};
use crate::util::{failure_of, snapshot, stdout_of, wkjoin};
use assert_cmd::Command;
use std::path::{Path, PathBuf};
use wkjoin::layout::{Layout, Os};

const V: &str = "v1.20.2";
const SIZE: usize = 64 * 1024;

fn os() -> Os {
    Os::host()
}

fn exe(name: &str) -> String {
    format!("{name}{}", os().exe_suffix())
}

fn archive_path(version: &str) -> String {
    format!("/{version}/kubernetes-node-{}-amd64.tar.gz", os())
}

fn bin_dir(root: &Path) -> PathBuf {
    PathBuf::from(Layout::new(os(), root.to_string_lossy()).bin_dir())
}

/// Serves `archive` for `version` with its `.sha512`.
fn publish(server: &Server, version: &str, archive: &[u8]) {
    server.route(&archive_path(version), Route::new(archive.to_vec()));
    server.route(&format!("{}.sha512", archive_path(version)), Route::new(format!("{}\n", sha512_hex(archive))));
}

fn fetch(root: &Path, mirror: &str) -> Command {
    let mut cmd = wkjoin();
    cmd.arg("fetch").arg("--root-dir").arg(root).args(["--node-name", "worker-1", "--mirror", mirror]);
    // A Windows fetch also installs the CNI plugins (fetch_plugins tests them): here the runtime has its own.
    cmd.arg("--cni-bin-dir").arg(runtime_plugins());
    cmd
}

/// A CNI bin dir outside every test root that already has the Windows plugins, not installed by wkjoin.
fn runtime_plugins() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        for p in wkjoin::fetch::cni_plugins::WINDOWS {
            std::fs::write(d.path().join(p), p).unwrap();
        }
        d
    })
    .path()
}

fn fetch_version(root: &Path, mirror: &str, version: &str) -> Command {
    let mut cmd = fetch(root, mirror);
    cmd.args(["--kubernetes-version", version]);
    cmd
}

fn json(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&stdout_of(cmd.args(["-o", "json"]))).expect("json output")
}

/// A root with binaries already installed by hand, which failures must not touch.
fn root_with_old_binaries() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let bin = bin_dir(root.path());
    std::fs::create_dir_all(&bin).unwrap();
    for n in ["kubelet", "kube-proxy", "kubectl"] {
        std::fs::write(bin.join(exe(n)), format!("old {n}")).unwrap();
    }
    root
}

/// Runs a fetch expected to fail, checks the root is byte-for-byte unchanged, returns stderr.
fn fails_without_changes(root: &Path, cmd: &mut Command) -> String {
    let before = snapshot(root);
    let (code, err) = failure_of(cmd);
    assert_eq!(code, 1, "{err}");
    let after = snapshot(root);
    assert_eq!(before, after, "a failed fetch changed the root; stderr:\n{err}");
    assert!(err.contains("nothing was installed") || err.contains("not found") || err.contains("no checksum"), "{err}");
    err
}

/// What a finished fetch must not leave in the root: staging, temporary and partial files, the lock.
fn leftovers(root: &Path) -> Vec<String> {
    let temporary =
        |p: &String| ["wkjoin-staging", "wkjoin-tmp", ".part", ".lock", ".previous-new"].iter().any(|t| p.contains(t));
    crate::util::tree(root).into_iter().filter(temporary).collect()
}

fn installed(root: &Path, name: &str) -> Vec<u8> {
    std::fs::read(bin_dir(root).join(exe(name))).unwrap()
}

#[test]
fn installs_the_verified_binaries_and_reports_them() {
    let server = Server::start();
    let entries = archive::node_entries(os(), V, SIZE, true);
    let tgz = archive::tar_gz(&entries);
    publish(&server, V, &tgz);
    server.route("/stable.txt", Route::new(format!("{V}\n")));
    let root = tempfile::tempdir().unwrap();
    // What a killed run leaves behind is swept.
    std::fs::create_dir_all(bin_dir(root.path()).join(".wkjoin-staging-1")).unwrap();
    std::fs::write(bin_dir(root.path()).join(".wkjoin-staging-1").join(exe("kubelet")), "half").unwrap();
    std::fs::create_dir_all(root.path().join("cache")).unwrap();
    std::fs::write(root.path().join("cache").join(".sha512-ab.tar.gz.part-1"), "half").unwrap();

    let out = fetch(root.path(), &server.url())
        .args(["--kubernetes-version", "stable", "-o", "json"])
        .env("WKJOIN_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Not a terminal: one log line per phase instead of a progress bar.
    for phase in ["stable is v1.20.2", "downloading http://127.0.0.1", "verified: sha512", "installing into"] {
        assert!(stderr.contains(phase), "no `{phase}` line in:\n{stderr}");
    }
    assert_eq!(v["outcome"], "installed");
    assert_eq!(v["installed"]["version"], V);
    assert_eq!(v["installed"]["archive-sha512"], sha512_hex(&tgz));
    assert_eq!(v["downloaded-bytes"], tgz.len());
    let files = v["installed"]["files"].as_array().unwrap();
    let names: Vec<_> = files.iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["kubelet", "kube-proxy", "kubectl", "kubeadm"].map(exe));
    for (f, e) in
        files.iter().zip(entries.iter().filter(|e| e.kind.is_file() && e.path.starts_with(b"kubernetes/node/bin/")))
    {
        let path = Path::new(f["path"].as_str().unwrap());
        assert_eq!(path, bin_dir(root.path()).join(f["name"].as_str().unwrap()));
        assert_eq!(std::fs::read(path).unwrap(), e.data, "{}", path.display());
        assert_eq!(f["sha256"], sha256_hex(&e.data));
        if os() == Os::Linux {
            // Each binary's own version command ran on this host.
            assert_eq!(f["version"], V, "{f}");
        }
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("wkjoin-state.json")).unwrap()).unwrap();
    assert_eq!(state["binaries"]["archive-sha512"], sha512_hex(&tgz));
    assert!(state["steps"]["fetch"]["digest"].is_string());
    let cached = root.path().join("cache").join(format!("sha512-{}.tar.gz", sha512_hex(&tgz)));
    assert_eq!(std::fs::read(cached).unwrap(), tgz, "the verified archive is cached by checksum");
    assert_eq!(leftovers(root.path()), Vec::<String>::new());
}

#[test]
fn a_rerun_with_intact_binaries_transfers_nothing_and_a_damaged_one_is_repaired_from_the_cache() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    publish(&server, V, &tgz);
    let root = tempfile::tempdir().unwrap();
    stdout_of(&mut fetch_version(root.path(), &server.url(), V));

    server.clear_seen();
    let out = stdout_of(&mut fetch_version(root.path(), &server.url(), V));
    assert!(out.contains("already installed") && out.contains("nothing was downloaded"), "{out}");
    assert!(server.seen().is_empty(), "no request expected: {:?}", server.seen());

    let kubelet = installed(root.path(), "kubelet");
    std::fs::write(bin_dir(root.path()).join(exe("kubelet")), b"tampered").unwrap();
    let v = json(&mut fetch_version(root.path(), &server.url(), V));
    assert_eq!((v["outcome"].as_str(), v["from-cache"].as_bool()), (Some("installed"), Some(true)), "{v}");
    assert_eq!(installed(root.path(), "kubelet"), kubelet);
    let paths: Vec<_> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, [format!("{}.sha512", archive_path(V))], "only the checksum is read again");
    assert!(v["previous"].is_null(), "a repair keeps no copy of the damaged file: {v}");
}

#[test]
fn a_mirror_with_only_sha256_is_verified_with_it() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&archive_path(V), Route::new(tgz.clone()));
    server.route(
        &format!("{}.sha256", archive_path(V)),
        Route::new(format!("{}  kubernetes-node.tar.gz\n", sha256_hex(&tgz))),
    );
    let root = tempfile::tempdir().unwrap();
    let v = json(&mut fetch_version(root.path(), &server.url(), V));
    assert!(v["verified-with"].as_str().unwrap().starts_with("sha256 from "), "{v}");
    assert_eq!(v["installed"]["checksum"], format!("sha256:{}", sha256_hex(&tgz)));
    assert_eq!(v["installed"]["archive-sha512"], sha512_hex(&tgz));

    let bad = Server::start();
    bad.route(&archive_path(V), Route::new(tgz.clone()));
    bad.route(&format!("{}.sha256", archive_path(V)), Route::new(format!("{}\n", sha256_hex(b"other"))));
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &bad.url(), V));
    assert!(err.contains("checksum mismatch") && err.contains(&sha256_hex(b"other")), "{err}");
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&archive_path(V), Route::new(tgz.clone()));
    let wrong = sha512_hex(b"something else");
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(wrong.clone()));
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    let url = format!("{}{}", server.url(), archive_path(V));
    for needle in ["checksum mismatch", url.as_str(), wrong.as_str(), &sha512_hex(&tgz), "nothing was installed"] {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_truncated_archive_is_a_checksum_mismatch() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&archive_path(V), Route::new(tgz[..tgz.len() / 2].to_vec()));
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(sha512_hex(&tgz)));
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn a_body_that_always_breaks_off_gives_up_after_retries() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    publish(&server, V, &tgz);
    server.route(&archive_path(V), Route { stop_at: Some(tgz.len() / 3), ..Route::new(tgz.clone()) });
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains("kept breaking off") && err.contains(&format!("of {} bytes", tgz.len())), "{err}");
    let ranged = server.seen().iter().filter(|s| s.range.is_some()).count();
    assert!(ranged >= 3, "each retry resumes: {:?}", server.seen());
}

#[test]
fn a_dropped_connection_is_resumed_with_range() {
    let server = Server::start();
    let tgz = node_archive(os(), V, 512 * 1024);
    publish(&server, V, &tgz);
    server.route(&archive_path(V), Route { drop_first_after: Some(300_000), ..Route::new(tgz.clone()) });
    let root = tempfile::tempdir().unwrap();
    let v = json(&mut fetch_version(root.path(), &server.url(), V));
    assert_eq!(v["installed"]["archive-sha512"], sha512_hex(&tgz));
    let gets: Vec<_> = server.seen().into_iter().filter(|s| s.path == archive_path(V)).collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    let resumed_at: usize =
        gets[1].range.as_deref().unwrap().trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(resumed_at > 0 && resumed_at <= 300_000, "{gets:?}");
    assert_eq!(v["downloaded-bytes"], tgz.len(), "each byte is passed on once");
}

#[test]
fn a_server_that_ignores_range_resends_and_the_pass_skips_what_it_has() {
    let server = Server::start();
    let tgz = node_archive(os(), V, 512 * 1024);
    publish(&server, V, &tgz);
    server.route(
        &archive_path(V),
        Route { drop_first_after: Some(200_000), ignore_range: true, ..Route::new(tgz.clone()) },
    );
    let root = tempfile::tempdir().unwrap();
    let v = json(&mut fetch_version(root.path(), &server.url(), V));
    assert_eq!(v["installed"]["archive-sha512"], sha512_hex(&tgz));
    assert_eq!(installed(root.path(), "kubectl"), archive::fake_binary("kubectl", V, 512 * 1024));
}

#[test]
fn server_errors_are_retried() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    publish(&server, V, &tgz);
    server.route(&archive_path(V), Route { fail_first: 2, ..Route::new(tgz.clone()) });
    let root = tempfile::tempdir().unwrap();
    let v = json(&mut fetch_version(root.path(), &server.url(), V));
    assert_eq!(v["outcome"], "installed");
    assert_eq!(server.seen().iter().filter(|s| s.path == archive_path(V)).count(), 3);
}

#[test]
fn a_missing_version_says_so_and_where() {
    let server = Server::start();
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), "v1.20.99"));
    assert!(err.contains(&format!("version v1.20.99 not found at {}", server.url())), "{err}");

    let err = fails_without_changes(
        root.path(),
        fetch(root.path(), &server.url()).args(["--kubernetes-version", "latest-1.99"]),
    );
    assert!(err.contains("latest-1.99") && err.contains("/latest-1.99.txt does not exist"), "{err}");
}

#[test]
fn an_html_page_is_refused() {
    let server = Server::start();
    let page = b"<!DOCTYPE html><html><body>Please log in</body></html>".to_vec();
    server.route(&archive_path(V), Route { content_type: "text/html; charset=utf-8", ..Route::new(page.clone()) });
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(sha512_hex(&page)));
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains("is an HTML page, not a gzip archive"), "{err}");

    // The same page served as a binary type is still recognised by its content.
    server.route(&archive_path(V), Route::new(page));
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains("is an HTML page, not a gzip archive"), "{err}");
}

#[test]
fn a_body_that_is_not_gzip_is_refused() {
    let server = Server::start();
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    publish(&server, V, &zip);
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains("not a gzip archive (it starts with 50 4b 03 04"), "{err}");
}

#[test]
fn unsafe_entries_are_refused_by_name() {
    let node = |e: Entry| {
        let mut entries = vec![e];
        entries.extend(archive::node_entries(os(), V, 4096, false));
        entries
    };
    let kind = |path: &str, kind: tar::EntryType, link: Option<&str>| Entry {
        kind,
        link: link.map(|l| l.as_bytes().to_vec()),
        ..Entry::file(path, Vec::new())
    };
    let variants: Vec<(Entry, &str, &str)> = vec![
        (Entry::file("/etc/kubelet-evil", b"x".to_vec()), "/etc/kubelet-evil", "absolute path"),
        (
            Entry::file("kubernetes/node/bin/../../../../evil", b"x".to_vec()),
            "kubernetes/node/bin/../../../../evil",
            "`..`",
        ),
        (
            Entry::file("./kubernetes/node/bin/kubelet", b"x".to_vec()),
            "./kubernetes/node/bin/kubelet",
            "`.` path component",
        ),
        (Entry::file("kubernetes\\..\\..\\evil", b"x".to_vec()), "kubernetes\\..\\..\\evil", "backslash"),
        (Entry::file("C:evil", b"x".to_vec()), "C:evil", "drive"),
        (
            kind("kubernetes/node/bin/kube-evil", tar::EntryType::Symlink, Some("/etc/passwd")),
            "kubernetes/node/bin/kube-evil",
            "symbolic link to `/etc/passwd`",
        ),
        (
            kind("kubernetes/node/bin/kube-evil", tar::EntryType::Link, Some("/etc/passwd")),
            "kubernetes/node/bin/kube-evil",
            "hard link",
        ),
        (
            kind("kubernetes/node/bin/kube-evil", tar::EntryType::Char, None),
            "kubernetes/node/bin/kube-evil",
            "device file",
        ),
        (
            kind("kubernetes/node/bin/kube-evil", tar::EntryType::Block, None),
            "kubernetes/node/bin/kube-evil",
            "device file",
        ),
        (kind("kubernetes/node/bin/kube-evil", tar::EntryType::Fifo, None), "kubernetes/node/bin/kube-evil", "FIFO"),
        (
            Entry { declared_size: Some(2 << 30), ..Entry::file("kubernetes/node/bin/kubelet-huge", Vec::new()) },
            "kubernetes/node/bin/kubelet-huge",
            "1024 MiB limit",
        ),
    ];
    let server = Server::start();
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir_all(bin_dir(&root)).unwrap();
    std::fs::write(bin_dir(&root).join(exe("kubelet")), "old kubelet").unwrap();
    for (entry, name, why) in variants {
        publish(&server, V, &archive::tar_gz(&node(entry)));
        let err = fails_without_changes(&root, &mut fetch_version(&root, &server.url(), V));
        assert!(err.contains(&format!("refusing archive entry `{name}`")) && err.contains(why), "{name}: {err}");
        assert_eq!(
            crate::util::tree(parent.path()),
            crate::util::tree(parent.path()).into_iter().filter(|p| p.starts_with("root")).collect::<Vec<_>>(),
            "{name}: a file escaped"
        );
    }
}

#[test]
fn an_archive_without_the_node_binaries_is_refused() {
    let server = Server::start();
    let tgz = archive::tar_gz(&[Entry::file("kubernetes/node/bin/kube-proxy", b"x".to_vec())]);
    publish(&server, V, &tgz);
    let root = root_with_old_binaries();
    let err = fails_without_changes(root.path(), &mut fetch_version(root.path(), &server.url(), V));
    assert!(err.contains(&format!("the archive has no kubernetes/node/bin/{}", exe("kubelet"))), "{err}");
}

#[test]
fn an_upgrade_keeps_the_previous_release_for_rollback() {
    let server = Server::start();
    let (old, new) = (node_archive(os(), V, SIZE), node_archive(os(), "v1.21.0", SIZE));
    publish(&server, V, &old);
    publish(&server, "v1.21.0", &new);
    let root = tempfile::tempdir().unwrap();
    stdout_of(&mut fetch_version(root.path(), &server.url(), V));
    let out = stdout_of(&mut fetch_version(root.path(), &server.url(), "v1.21.0"));
    assert!(out.contains("installed Kubernetes v1.21.0") && out.contains("--rollback"), "{out}");
    let kubelet = |v| archive::fake_binary("kubelet", v, SIZE);
    assert_eq!(installed(root.path(), "kubelet"), kubelet("v1.21.0"));
    let previous = bin_dir(root.path()).join("previous");
    assert_eq!(std::fs::read(previous.join(exe("kubelet"))).unwrap(), kubelet(V));

    let dry = stdout_of(
        wkjoin().args(["fetch", "--rollback", "--dry-run", "--node-name", "n", "--root-dir"]).arg(root.path()),
    );
    assert!(dry.contains("swap the node binaries in") && dry.contains("dry run: nothing was changed"), "{dry}");
    assert_eq!(installed(root.path(), "kubelet"), kubelet("v1.21.0"));

    let rollback = || {
        let mut cmd = wkjoin();
        cmd.args(["fetch", "--rollback", "--node-name", "n", "--root-dir"]).arg(root.path());
        cmd
    };
    let v = json(&mut rollback());
    assert_eq!((v["outcome"].as_str(), v["installed"]["version"].as_str()), (Some("rolled-back"), Some(V)), "{v}");
    assert_eq!(installed(root.path(), "kubelet"), kubelet(V));
    assert_eq!(std::fs::read(previous.join(exe("kubelet"))).unwrap(), kubelet("v1.21.0"));
    // Rolling back twice is rolling forward again.
    let v = json(&mut rollback());
    assert_eq!(v["installed"]["version"], "v1.21.0");
    assert_eq!(installed(root.path(), "kubelet"), kubelet("v1.21.0"));
    // The state file now says the installed release is v1.21.0: a re-run downloads nothing.
    server.clear_seen();
    let out = stdout_of(&mut fetch_version(root.path(), &server.url(), "v1.21.0"));
    assert!(out.contains("already installed"), "{out}");
    assert!(server.seen().is_empty());
}

#[test]
fn rollback_without_a_previous_release_changes_nothing() {
    let root = root_with_old_binaries();
    let before = snapshot(root.path());
    let (code, err) =
        failure_of(wkjoin().args(["fetch", "--rollback", "--node-name", "n", "--root-dir"]).arg(root.path()));
    assert_eq!(code, 1);
    assert!(err.contains("nothing to roll back to"), "{err}");
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn an_offline_archive_is_checked_against_the_given_sha512() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = node_archive(os(), V, SIZE);
    let file = dir.path().join("kubernetes-node.tar.gz");
    std::fs::write(&file, &tgz).unwrap();
    let root = root_with_old_binaries();
    let offline = |sha: &str| {
        let mut cmd = wkjoin();
        cmd.args(["fetch", "--node-name", "n", "--root-dir"])
            .arg(root.path())
            .arg("--archive")
            .arg(&file)
            .args(["--sha512", sha]);
        cmd
    };
    let err = fails_without_changes(root.path(), &mut offline(&sha512_hex(b"x")));
    assert!(err.contains("checksum mismatch") && err.contains("from --sha512"), "{err}");

    let v = json(&mut offline(&sha512_hex(&tgz).to_uppercase()));
    assert_eq!(v["outcome"], "installed");
    assert_eq!(v["downloaded-bytes"], 0);
    assert_eq!(installed(root.path(), "kubelet"), archive::fake_binary("kubelet", V, SIZE));
    assert!(!root.path().join("cache").exists(), "a local archive is not copied into the cache");
    // The hand-installed binaries it replaced are kept, and --rollback restores them.
    assert_eq!(std::fs::read(bin_dir(root.path()).join("previous").join(exe("kubelet"))).unwrap(), b"old kubelet");
    let v = json(wkjoin().args(["fetch", "--rollback", "--node-name", "n", "--root-dir"]).arg(root.path()));
    assert_eq!(v["outcome"], "rolled-back");
    assert_eq!(installed(root.path(), "kubelet"), b"old kubelet");
    assert_eq!(installed(root.path(), "kube-proxy"), b"old kube-proxy");

    let (code, err) = failure_of(wkjoin().args(["fetch", "--node-name", "n", "--archive"]).arg(&file));
    assert_eq!(code, 2, "--archive needs --sha512: {err}");
    let (code, err) = failure_of(wkjoin().args(["fetch", "--dry-run", "--node-name", "n", "--sha512", "abc"]));
    assert_eq!(code, 2);
    assert!(err.contains("128 hex digits"), "{err}");
}

#[test]
fn file_urls_and_plain_directories_are_mirrors() {
    let mirror = tempfile::tempdir().unwrap();
    let tgz = node_archive(os(), V, SIZE);
    let dir = mirror.path().join(V);
    std::fs::create_dir(&dir).unwrap();
    let name = format!("kubernetes-node-{}-amd64.tar.gz", os());
    std::fs::write(dir.join(&name), &tgz).unwrap();
    std::fs::write(dir.join(format!("{name}.sha512")), sha512_hex(&tgz)).unwrap();
    std::fs::write(mirror.path().join("stable.txt"), V).unwrap();
    let plain = mirror.path().to_string_lossy().into_owned();
    let url = format!("file:///{}", plain.trim_start_matches('/').replace('\\', "/"));
    for m in [plain, url] {
        let root = tempfile::tempdir().unwrap();
        let v = json(&mut fetch(root.path(), &m));
        assert_eq!(
            (v["outcome"].as_str(), v["installed"]["version"].as_str()),
            (Some("installed"), Some(V)),
            "{m}: {v}"
        );
        assert_eq!(installed(root.path(), "kube-proxy"), archive::fake_binary("kube-proxy", V, SIZE));
    }
}

#[test]
fn environment_proxies_are_used_unless_no_proxy_says_otherwise() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    publish(&server, V, &tgz);
    let root = tempfile::tempdir().unwrap();
    // `.invalid` never resolves: only the proxy can reach this "mirror".
    let v = json(fetch_version(root.path(), "http://mirror.invalid", V).env("HTTP_PROXY", server.url()));
    assert_eq!(v["outcome"], "installed");
    assert!(server.seen().iter().all(|s| s.proxied), "{:?}", server.seen());

    let root = tempfile::tempdir().unwrap();
    server.clear_seen();
    let dead_proxy = "http://127.0.0.1:9";
    let v =
        json(fetch_version(root.path(), &server.url(), V).env("HTTP_PROXY", dead_proxy).env("NO_PROXY", "127.0.0.1"));
    assert_eq!(v["outcome"], "installed");
    assert!(server.seen().iter().all(|s| !s.proxied), "{:?}", server.seen());
}

#[test]
fn windows_binaries_can_be_fetched_from_any_host() {
    let server = Server::start();
    let tgz = node_archive(Os::Windows, V, SIZE);
    server.route(&format!("/{V}/kubernetes-node-windows-amd64.tar.gz"), Route::new(tgz.clone()));
    server.route(&format!("/{V}/kubernetes-node-windows-amd64.tar.gz.sha512"), Route::new(sha512_hex(&tgz)));
    // The plugins release is another test's subject (fetch_plugins): the runtime's own are kept (`fetch`).
    let root = tempfile::tempdir().unwrap();
    let v = json(fetch_version(root.path(), &server.url(), V).args(["--os", "windows"]));
    assert_eq!(v["installed"]["os"], "windows");
    // The Windows layout keeps the binaries in the root itself, as C:\k does.
    assert_eq!(std::fs::read(root.path().join("kubelet.exe")).unwrap(), archive::fake_binary("kubelet", V, SIZE));
    assert!(root.path().join("wkjoin-state.json").is_file());
}

#[test]
fn another_os_needs_a_root_dir_of_this_host() {
    let other = if os() == Os::Linux { "windows" } else { "linux" };
    let cwd = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(
        wkjoin()
            .current_dir(cwd.path())
            .args(["fetch", "--node-name", "n", "--os", other, "--kubernetes-version", V])
            .args(["--mirror", "http://127.0.0.1:9"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give --root-dir"), "{err}");
    assert!(crate::util::tree(cwd.path()).is_empty());
}

#[test]
fn the_dry_run_names_every_source() {
    let plan = stdout_of(wkjoin().args([
        "fetch",
        "--dry-run",
        "--node-name",
        "n",
        "--os",
        "linux",
        "--root-dir",
        "/var/lib/wkjoin",
        "--kubernetes-version",
        V,
        "--mirror",
        "http://172.30.0.254:8080",
    ]));
    assert!(plan.contains("1. download http://172.30.0.254:8080/v1.20.2/kubernetes-node-linux-amd64.tar.gz, verify it against http://172.30.0.254:8080/v1.20.2/kubernetes-node-linux-amd64.tar.gz.sha512, install kubelet, kube-proxy, kubectl (and kubeadm if the archive has it) into /var/lib/wkjoin/bin"), "{plan}");
    let sha = "ab".repeat(64);
    let plan = stdout_of(wkjoin().args([
        "fetch",
        "--dry-run",
        "--node-name",
        "n",
        "--os",
        "windows",
        "--archive",
        "node.tar.gz",
        "--sha512",
        &sha,
    ]));
    assert!(plan.contains(&format!("1. read node.tar.gz, verify its sha512 is {sha}, install kubelet.exe")), "{plan}");
    // Offline, nothing else is downloaded: the CNI plugins are not part of a node archive.
    assert!(!plan.contains("cni-plugins") && !plan.contains("2. "), "{plan}");
}

/// A checksum URL that serves a large body (a wrong URL, a hostile mirror) is read only up to the small-file
/// limit and refused; nothing is installed.
#[test]
fn a_huge_checksum_file_is_refused_without_reading_it_all() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&archive_path(V), Route::new(tgz));
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(vec![b'a'; 8 << 20]));
    let root = root_with_old_binaries();
    let (code, err) = failure_of(&mut fetch_version(root.path(), &server.url(), V));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("more than") && err.contains("bytes long") && !err.contains("8388608"), "{err}");
    assert_eq!(installed(root.path(), "kubelet"), b"old kubelet");
}

/// A previous release changed since it was kept (damaged, or replaced by someone) is not swapped in: the node
/// keeps its working binaries.
#[test]
fn a_rollback_to_a_damaged_previous_release_is_refused() {
    let server = Server::start();
    let (old, new) = (node_archive(os(), V, SIZE), node_archive(os(), "v1.21.0", SIZE));
    publish(&server, V, &old);
    publish(&server, "v1.21.0", &new);
    let root = tempfile::tempdir().unwrap();
    stdout_of(&mut fetch_version(root.path(), &server.url(), V));
    stdout_of(&mut fetch_version(root.path(), &server.url(), "v1.21.0"));
    let kept = bin_dir(root.path()).join("previous").join(exe("kubelet"));
    std::fs::write(&kept, "not the kubelet that was kept").unwrap();
    let before = snapshot(root.path());
    let (code, err) =
        failure_of(wkjoin().args(["fetch", "--rollback", "--node-name", "n", "--root-dir"]).arg(root.path()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not as it was kept") && err.contains("nothing was swapped"), "{err}");
    assert_eq!(snapshot(root.path()), before);
    assert_eq!(installed(root.path(), "kubelet"), archive::fake_binary("kubelet", "v1.21.0", SIZE));
}

/// A fetch killed (SIGKILL) while its mirror stalls mid-archive leaves the installed binaries as they were and
/// no lock: the next run is not refused, finishes the install, and leaves no staging files behind.
#[cfg(unix)]
#[test]
fn a_fetch_killed_mid_download_leaves_the_node_as_it_was_and_the_next_run_finishes() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(format!("{}\n", sha512_hex(&tgz))));
    server.route(&archive_path(V), Route { stall_after: Some(tgz.len() / 2), ..Route::new(tgz.clone()) });
    let root = root_with_old_binaries();
    let before = snapshot(root.path());
    let cmd = fetch_version(root.path(), &server.url(), V);
    let mut child = std::process::Command::new(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the mirror has served half the archive and gone silent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.seen().iter().any(|s| s.path == archive_path(V)) {
        assert!(std::time::Instant::now() < deadline, "the fetch never asked for the archive");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let after: Vec<String> = snapshot(root.path()).into_keys().filter(|k| !before.contains_key(k)).collect();
    // Only what a killed process cannot clean: its partial download and staging (never installed) and the lock
    // file (the OS released the lock itself).
    let dead = |k: &String| k.starts_with("cache") || k.starts_with(".lock") || k.starts_with("bin/.wkjoin-staging-");
    assert!(after.iter().all(dead), "left: {after:?}");
    assert_eq!(installed(root.path(), "kubelet"), b"old kubelet");

    server.route(&archive_path(V), Route::new(tgz));
    let out = stdout_of(&mut fetch_version(root.path(), &server.url(), V));
    assert!(out.contains("installed Kubernetes"), "{out}");
    assert_eq!(installed(root.path(), "kubelet"), archive::fake_binary("kubelet", V, SIZE));
    assert_eq!(leftovers(root.path()), Vec::<String>::new());
}

/// A mirror that goes silent mid-archive: the attempt ends at the stall timeout and the download resumes where it
/// stopped (here 2 s instead of 60 through WKJOIN_STALL_SECS).
#[test]
fn a_stalled_mirror_is_given_up_on_and_the_download_resumed() {
    let server = Server::start();
    let tgz = node_archive(os(), V, SIZE);
    server.route(&format!("{}.sha512", archive_path(V)), Route::new(format!("{}\n", sha512_hex(&tgz))));
    server.route(&archive_path(V), Route { stall_after: Some(tgz.len() / 2), ..Route::new(tgz.clone()) });
    let root = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = stdout_of(fetch_version(root.path(), &server.url(), V).env("WKJOIN_STALL_SECS", "2"));
    assert!(out.contains("installed Kubernetes"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    let gets: Vec<Option<String>> =
        server.seen().into_iter().filter(|s| s.path == archive_path(V)).map(|s| s.range).collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[1].as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"), "resumed: {gets:?}");
}
