//! wkjoin's own SCM service (`routes --watch --windows-service`): installed, started, seen running, stopped
//! and removed through wkjoin's SCM code. It creates a real service, so it is ignored by default; wine's
//! service manager runs it (`cargo test --target x86_64-pc-windows-gnu -- --ignored scm_`).

use std::time::Duration;
use wkjoin::host::{self, scm};
use wkjoin::plan::{Restart, ServiceSpec};

/// Nothing listens on the discard port: the watch keeps retrying, the service keeps running.
const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
";

struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = host::stop_service(&self.0);
        let _ = host::delete_service(&self.0);
    }
}

#[test]
#[ignore = "creates a Windows service: run as Administrator, or under wine (`-- --ignored scm_`)"]
fn scm_runs_the_routes_watcher_as_a_service_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let kubeconfig = dir.path().join("k.yaml");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let name = format!("wkjoin-test-routes-{}", std::process::id());
    let spec = ServiceSpec {
        name: name.clone(),
        description: "wkjoin test: routes watcher".into(),
        program: env!("CARGO_BIN_EXE_wkjoin").into(),
        args: [
            "routes",
            "--watch",
            "--windows-service",
            &format!("--root-dir={root}"),
            &format!("--kubeconfig={}", kubeconfig.display()),
            "--node-name=n1",
            "--cluster-cidr=10.244.0.0/16",
            "--service-cidr=10.96.0.0/16",
            "--node-ip=127.0.0.1",
        ]
        .map(String::from)
        .to_vec(),
        env: Default::default(),
        depends_on: vec![],
        log_file: String::new(),
        restart: Restart { delay_secs: 5, max_delay_secs: 60 },
    };
    let _ = host::delete_service(&name);
    let _remove = Remove(name.clone());
    scm::install_service(&spec).unwrap();
    assert!(!scm::service_running(&name).unwrap());
    let log = dir.path().join("logs").join("wkjoin-routes.log");
    let started = scm::start_service(&name);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    started.unwrap_or_else(|e| panic!("{e}; its log:\n{}", text()));
    // Still running a moment later: the watch retries instead of ending the service.
    std::thread::sleep(Duration::from_secs(2));
    assert!(scm::service_running(&name).unwrap(), "stopped by itself; its log:\n{}", text());
    host::stop_service(&name).unwrap();
    assert!(!scm::service_running(&name).unwrap());
    // Its log went to the file (a service has no console), and an unreachable cluster did not stop it.
    assert!(text().contains("watching Nodes"), "{}:\n{}", log.display(), text());
    host::delete_service(&name).unwrap();
}
