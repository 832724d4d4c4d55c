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

/// A test service running wkjoin.exe with `args`.
fn spec(name: &str, description: &str, args: Vec<String>) -> ServiceSpec {
    ServiceSpec {
        name: name.to_string(),
        description: description.to_string(),
        program: env!("CARGO_BIN_EXE_wkjoin").into(),
        args,
        env: Default::default(),
        depends_on: vec![],
        log_file: String::new(),
        restart: Restart { delay_secs: 5, max_delay_secs: 60 },
    }
}

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
    let args = [
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
    .to_vec();
    let spec = spec(&name, "wkjoin test: routes watcher", args);
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

/// From Kubernetes 1.26 the node services run under `wkjoin.exe log-runner` (the SCM captures no output, and
/// klog has no log-file flags). Its child here is `cmd /c` printing a line, waiting, printing another and
/// running on (unbuffered, as klog writes): the SCM runs the runner, the child's output lands in the log file
/// as it is written, a stop ends both.
#[test]
#[ignore = "creates a Windows service: run as Administrator, or under wine (`-- --ignored scm_`)"]
fn scm_runs_a_program_under_the_log_runner_with_its_output_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("wkjoin-test-logrunner-{}", std::process::id());
    let log = dir.path().join("logs").join("child.log");
    let system = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\windows".into());
    let cmd = format!(r"{system}\system32\cmd.exe");
    let script = "echo tick-1 & ping -n 3 127.0.0.1 >nul & echo tick-2 & ping -n 40 127.0.0.1 >nul";
    let args: Vec<String> =
        ["log-runner".to_string(), format!("--service={name}"), format!("--log-file={}", log.display())]
            .into_iter()
            .chain(["--", &cmd, "/c", script].map(String::from))
            .collect();
    let spec = spec(&name, "wkjoin test: log runner", args);
    let _ = host::delete_service(&name);
    let _remove = Remove(name.clone());
    scm::install_service(&spec).unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    scm::start_service(&name).unwrap_or_else(|e| panic!("{e}; its log:\n{}", text()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !text().contains("tick-2") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        text().contains("tick-1") && text().contains("tick-2"),
        "the child's output is not in {}:\n{}",
        log.display(),
        text()
    );
    assert!(scm::service_running(&name).unwrap(), "stopped by itself; its log:\n{}", text());
    host::stop_service(&name).unwrap();
    assert!(!scm::service_running(&name).unwrap());
    // The child went with the runner: the log stops growing.
    let after_stop = text();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(text(), after_stop, "the child still runs after the service stopped");
    host::delete_service(&name).unwrap();
}
