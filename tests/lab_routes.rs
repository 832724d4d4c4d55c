//! `wkjoin routes --watch` against the lab's real API server: Node objects made here (with pod CIDRs and
//! addresses) become routes in the master's kernel table, and a deleted Node's route goes, also after the
//! API server restarted under the watcher.

use crate::util::lab::Lab;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAKE: &str = "wkjt-routes-fake";
const FAKE_CIDR: &str = "10.244.250.0/24";
const FAKE_IP: &str = "172.30.0.250";

/// The watcher process and the fake Node, both gone when the test ends however it ends.
struct Cleanup {
    lab: &'static Lab,
    watcher: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut w) = self.watcher.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.lab.try_kubectl(&["delete", "node", FAKE, "--ignore-not-found"]);
        let _ = Command::new("ip").args(["-n", "wkjlab-master", "route", "del", FAKE_CIDR, "proto", "147"]).output();
    }
}

fn master_route() -> String {
    let out = Command::new("ip").args(["-n", "wkjlab-master", "route", "show", FAKE_CIDR]).output().expect("ip");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

fn apiserver_pid(lab: &Lab) -> Option<i32> {
    let text = std::fs::read_to_string(lab.node_dir("master").join("run/kube-apiserver.pid")).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_routes_watch_follows_nodes_across_an_api_server_restart() {
    let lab = Lab::get();
    let _lock = lab.lock("master");
    let root = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup { lab, watcher: None };
    let _ = lab.try_kubectl(&["delete", "node", FAKE, "--ignore-not-found"]);

    let bin = assert_cmd::cargo::cargo_bin("wkjoin");
    let watcher = lab
        .command_in("master", bin)
        .args(["routes", "--watch", "--node-name", "master", "--root-dir"])
        .arg(root.path())
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(["--cluster-cidr", &lab.cluster_cidr, "--service-cidr", &lab.service_cidr])
        .env("WKJOIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watcher");
    cleanup.watcher = Some(watcher);

    let node = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        node.path(),
        format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {FAKE}}}\nspec: {{podCIDR: {FAKE_CIDR}, podCIDRs: [{FAKE_CIDR}]}}\n\
             status: {{addresses: [{{type: InternalIP, address: {FAKE_IP}}}]}}\n"
        ),
    )
    .unwrap();
    lab.kubectl(&["create", "-f", &node.path().to_string_lossy()]);
    let added = wait_for("the fake node's route", Duration::from_secs(20), || {
        let r = master_route();
        r.contains(&format!("via {FAKE_IP}")) && r.contains("proto 147")
    });
    eprintln!("route added {added:?} after the Node was created");

    // The API server goes away under the watcher and comes back (scripts/lab up restarts what is missing).
    let pid = apiserver_pid(lab).expect("kube-apiserver is running");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("kube-apiserver to exit", Duration::from_secs(10), || apiserver_pid(lab).is_none());
    let up = Command::new(lab.repo.join("scripts/lab")).arg("up").output().expect("scripts/lab up");
    assert!(up.status.success(), "scripts/lab up: {}", String::from_utf8_lossy(&up.stderr));
    assert!(cleanup.watcher.as_mut().unwrap().try_wait().unwrap().is_none(), "the watcher exited with the API server");

    lab.kubectl(&["delete", "node", FAKE]);
    let removed = wait_for("the deleted node's route to go", Duration::from_secs(30), || master_route().is_empty());
    eprintln!("route removed {removed:?} after the Node was deleted (API server restarted in between)");
    assert!(cleanup.watcher.as_mut().unwrap().try_wait().unwrap().is_none(), "the watcher is still running");
}
