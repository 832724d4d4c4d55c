//! `wkjoin fetch --os windows`: the CNI plugins release (containernetworking/plugins' Windows archive, whose
//! entries are `./win-bridge.exe`...) verified like the node archive and installed into the CNI bin dir, never
//! over a plugin wkjoin did not install.

use crate::util::archive::{Entry, fake_binary, node_archive, sha256_hex, sha512_hex, tar_gz};
use crate::util::http::{Route, Server};
use crate::util::{failure_of, snapshot, stdout_of, wkjoin};
use std::path::Path;
use wkjoin::layout::Os;

const V: &str = "v1.20.2";
const CNI: &str = "v1.1.1";
const SIZE: usize = 32 * 1024;

/// The release archive as `tar -C bin -czf … .` makes it: a `./` root and every plugin at the top level.
fn plugins_archive() -> Vec<u8> {
    let mut entries = vec![Entry::dir("./")];
    for p in ["host-local.exe", "win-bridge.exe", "win-overlay.exe", "flannel.exe"] {
        entries.push(Entry::file(&format!("./{p}"), fake_binary(p, CNI, SIZE)));
    }
    tar_gz(&entries)
}

/// A mirror with the Windows node archive (`.sha512`) and the plugins release (`.sha256` only, like some mirrors).
fn mirror(plugins: &[u8]) -> Server {
    let server = Server::start();
    let node = node_archive(Os::Windows, V, SIZE);
    server.route(&format!("/{V}/kubernetes-node-windows-amd64.tar.gz"), Route::new(node.clone()));
    server.route(&format!("/{V}/kubernetes-node-windows-amd64.tar.gz.sha512"), Route::new(sha512_hex(&node)));
    let path = format!("/cni/{CNI}/cni-plugins-windows-amd64-{CNI}.tgz");
    server.route(&path, Route::new(plugins.to_vec()));
    server.route(
        &format!("{path}.sha256"),
        Route::new(format!("{}  cni-plugins-windows-amd64-{CNI}.tgz\n", sha256_hex(plugins))),
    );
    server
}

fn fetch(root: &Path, server: &Server) -> assert_cmd::Command {
    let mut c = wkjoin();
    c.arg("fetch").arg("--root-dir").arg(root).args(["--os", "windows", "--node-name", "win-1"]);
    c.args([
        "--kubernetes-version",
        V,
        "--mirror",
        &server.url(),
        "--cni-plugins-mirror",
        &format!("{}/cni", server.url()),
    ]);
    c
}

fn json(c: &mut assert_cmd::Command) -> serde_json::Value {
    serde_json::from_str(&stdout_of(c.args(["-o", "json"]))).expect("json output")
}

fn downloads_of_plugins(server: &Server) -> usize {
    server.seen().iter().filter(|s| s.method == "GET" && s.path.ends_with(".tgz")).count()
}

#[test]
fn the_plugins_the_pod_network_needs_are_installed_verified_and_recorded() {
    let server = mirror(&plugins_archive());
    let root = tempfile::tempdir().unwrap();
    let v = json(&mut fetch(root.path(), &server));
    let cni = root.path().join("cni");
    let p = &v["cni-plugins"];
    assert_eq!(p["outcome"], "installed", "{v}");
    assert!(p["verified-with"].as_str().unwrap().starts_with("sha256 from "), "{v}");
    for name in ["win-bridge.exe", "host-local.exe"] {
        assert_eq!(std::fs::read(cni.join(name)).unwrap(), fake_binary(name, CNI, SIZE), "{name}");
    }
    // Only what the pod network runs: the archive's other plugins stay out of the runtime's directory.
    assert!(!cni.join("win-overlay.exe").exists() && !cni.join("flannel.exe").exists());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("wkjoin-state.json")).unwrap()).unwrap();
    let files: Vec<&str> =
        state["cni-plugins"]["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(files, ["win-bridge.exe", "host-local.exe"], "{state}");
    assert_eq!(state["cni-plugins"]["version"], CNI);

    // A re-run finds them intact and downloads nothing; a damaged one is repaired.
    server.clear_seen();
    let again = json(&mut fetch(root.path(), &server));
    assert_eq!(again["cni-plugins"]["outcome"], "already-installed", "{again}");
    assert_eq!(downloads_of_plugins(&server), 0, "{:?}", server.seen());
    std::fs::write(cni.join("host-local.exe"), b"damaged").unwrap();
    let repaired = json(&mut fetch(root.path(), &server));
    assert_eq!(repaired["cni-plugins"]["outcome"], "installed", "{repaired}");
    assert_eq!(std::fs::read(cni.join("host-local.exe")).unwrap(), fake_binary("host-local.exe", CNI, SIZE));
}

#[test]
fn a_plugin_wkjoin_did_not_install_is_left_alone() {
    let server = mirror(&plugins_archive());
    let root = tempfile::tempdir().unwrap();
    let cni = root.path().join("cni");
    std::fs::create_dir_all(&cni).unwrap();
    std::fs::write(cni.join("win-bridge.exe"), b"the runtime's own win-bridge").unwrap();
    let out = stdout_of(&mut fetch(root.path(), &server));
    assert!(out.contains("win-bridge.exe: not installed by wkjoin, left alone"), "{out}");
    assert_eq!(std::fs::read(cni.join("win-bridge.exe")).unwrap(), b"the runtime's own win-bridge");
    assert_eq!(std::fs::read(cni.join("host-local.exe")).unwrap(), fake_binary("host-local.exe", CNI, SIZE));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("wkjoin-state.json")).unwrap()).unwrap();
    let files = state["cni-plugins"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "only host-local.exe is wkjoin's: {state}");
}

#[test]
fn a_plugins_archive_that_fails_its_checksum_installs_no_plugin() {
    let good = plugins_archive();
    let server = mirror(&good);
    // The mirror serves another archive than the one its checksum names.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    server.route(&format!("/cni/{CNI}/cni-plugins-windows-amd64-{CNI}.tgz"), Route::new(bad));
    let root = tempfile::tempdir().unwrap();
    let (code, err) = failure_of(&mut fetch(root.path(), &server));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cni-plugins-windows-amd64") && err.contains("nothing was installed"), "{err}");
    assert!(!root.path().join("cni").join("win-bridge.exe").exists());
    let before = snapshot(root.path());
    let _ = failure_of(&mut fetch(root.path(), &server));
    assert_eq!(before, snapshot(root.path()), "a second failing run changed the root");
}

#[test]
fn unsafe_plugin_entries_are_refused() {
    for (path, reason) in
        [("./../win-bridge.exe", "`..`"), ("/win-bridge.exe", "absolute"), ("././host-local.exe", "`.`")]
    {
        let server = mirror(&tar_gz(&[Entry::file(path, b"x".to_vec())]));
        let root = tempfile::tempdir().unwrap();
        let (code, err) = failure_of(&mut fetch(root.path(), &server));
        assert_eq!(code, 1, "{path}: {err}");
        assert!(err.contains(reason), "{path}: {err}");
        assert!(
            !root.path().join("win-bridge.exe").exists() && !root.path().join("cni").join("host-local.exe").exists()
        );
    }
}

#[test]
fn the_dry_run_names_the_plugins_release_pinned_to_the_kubernetes_version() {
    let plan = |extra: &[&str]| {
        stdout_of(
            wkjoin()
                .args(["fetch", "--dry-run", "--os", "windows", "--node-name", "n", "--kubernetes-version"])
                .args(extra),
        )
    };
    let gh = "https://github.com/containernetworking/plugins/releases/download";
    let old = plan(&[V]);
    assert!(
        old.contains(&format!("download {gh}/v1.1.1/cni-plugins-windows-amd64-v1.1.1.tgz, verify it against {gh}/v1.1.1/cni-plugins-windows-amd64-v1.1.1.tgz.sha512, install win-bridge.exe, host-local.exe into C:\\k\\cni")),
        "{old}"
    );
    assert!(plan(&["v1.29.0"]).contains("/v1.5.1/cni-plugins-windows-amd64-v1.5.1.tgz"));
    assert!(plan(&[V, "--cni-plugins-version", "v1.6.2"]).contains("/v1.6.2/cni-plugins-windows-amd64-v1.6.2.tgz"));
    let marker = plan(&["stable"]);
    assert!(marker.contains("the Kubernetes version, which the CNI plugins release is pinned to"), "{marker}");
    let (code, err) = failure_of(
        wkjoin()
            .args(["fetch", "--dry-run", "--os", "windows", "--node-name", "n"])
            .args(["--cni-plugins-version", "latest/../x"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cni-plugins-version `latest/../x`") && err.contains("v1.1.1"), "{err}");
    // Linux nodes bring their own plugins (containernetworking-plugins): no such action there.
    let linux = stdout_of(wkjoin().args(["fetch", "--dry-run", "--os", "linux", "--node-name", "n"]).args([
        "--root-dir",
        "/var/lib/wkjoin",
        "--kubernetes-version",
        V,
    ]));
    assert!(!linux.contains("cni-plugins"), "{linux}");
}
