//! `wkjoin preflight`: exit code 3 and the JSON shape on a host that cannot join; in the lab, the runtime and
//! API checks of a bare worker.

use crate::util::wkjoin;
use serde_json::Value;

/// A runtime endpoint nothing listens on, in this OS's scheme.
fn dead_endpoint(dir: &std::path::Path) -> String {
    if cfg!(windows) {
        "npipe:////./pipe/wkjoin-test-nobody-listens".to_string()
    } else {
        format!("unix://{}", dir.join("nobody.sock").display())
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
fn unreachable_runtime_and_cluster_fail_with_exit_3_and_fixes_in_json() {
    let dir = tempfile::tempdir().unwrap();
    // A cluster at a port nothing listens on.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    )
    .unwrap();
    let out = wkjoin()
        .args(["preflight", "-o", "json", "--node-name", "pf-test", "--kubernetes-version", "v1.20.2"])
        .arg("--runtime-endpoint")
        .arg(dead_endpoint(dir.path()))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--root-dir")
        .arg(dir.path().join("root"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(report["node"], "pf-test");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let fails = checks.iter().filter(|c| c["status"] == "fail").count() as u64;
    assert_eq!(report["summary"]["fail"], fails);
    let total: u64 = ["pass", "warn", "fail", "skip"].iter().map(|k| report["summary"][k].as_u64().unwrap()).sum();
    assert_eq!(total, checks.len() as u64);
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        let status = c["status"].as_str().unwrap();
        assert!(["pass", "warn", "fail", "skip"].contains(&status), "{c}");
        // Every warn and fail says what to do; a pass has nothing to fix.
        assert_eq!(c["fix"].is_string(), status == "warn" || status == "fail", "{c}");
    }
    let runtime = check(&report, "runtime");
    assert_eq!(runtime["status"], "fail", "{runtime}");
    assert!(runtime["fix"].as_str().unwrap().contains("--runtime-endpoint"), "{runtime}");
    let api = check(&report, "api-server");
    assert_eq!(api["status"], "fail", "{api}");
    assert!(api["detail"].as_str().unwrap().contains("127.0.0.1:1"), "{api}");
    assert_eq!(check(&report, "clock-skew")["status"], "skip");
    // The Windows build (under wine in scripts/test) reads the OS build from the registry.
    if cfg!(windows) {
        let build = check(&report, "windows-build");
        assert!(build["detail"].as_str().unwrap().starts_with("build "), "{build}");
    } else {
        assert_eq!(check(&report, "ip-forward")["name"], "ip-forward");
    }
}

#[test]
fn preflight_refuses_to_check_another_os() {
    let other = if cfg!(windows) { "linux" } else { "windows" };
    let out = wkjoin().args(["preflight", "--node-name", "pf-test", "--os", other]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("preflight checks the host it runs on"));
}

#[cfg(target_os = "linux")]
mod lab {
    use super::check;
    use crate::util::lab::Lab;
    use serde_json::Value;

    const WORKER: &str = "worker-2";

    fn preflight(lab: &Lab, endpoint: &str) -> (Option<i32>, Value, String) {
        let out = lab
            .wkjoin_in(WORKER)
            .args(["preflight", "-o", "json", "--node-name", WORKER, "--node-ip", &lab.node_ip(WORKER)])
            .arg("--runtime-endpoint")
            .arg(endpoint)
            .arg("--kubeconfig")
            .arg(lab.node_credential(WORKER))
            .arg("--root-dir")
            .arg(lab.worker_root(WORKER))
            .output()
            .expect("run wkjoin in the worker");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (out.status.code(), report, stderr)
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_preflight_bare_worker_reaches_runtime_and_api() {
        let lab = Lab::get();
        let sock = format!("unix://{}", lab.containerd_socket(WORKER).display());
        let (code, report, stderr) = preflight(lab, &sock);
        for name in ["runtime", "api-server", "version-skew", "clock-skew", "networks"] {
            assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}\n{stderr}");
        }
        assert!(check(&report, "api-server")["detail"].as_str().unwrap().contains(&lab.api), "{report:#}");
        // The runtime speaks for itself over CRI: worker-2's admin moved containerd's CNI conf dir.
        let runtime = check(&report, "runtime")["detail"].as_str().unwrap().to_string();
        assert!(
            runtime.contains("containerd 1.6") && runtime.contains("CNI conf dir /srv/k8s/cni-conf (CRI Status)"),
            "{runtime}"
        );
        assert_eq!(check(&report, "cni-conf")["status"], "pass", "{report:#}");
        // A bare worker has no kubelet: its ports are free.
        assert_eq!(check(&report, "port-10250")["status"], "pass", "{report:#}");
        let failed = report["summary"]["fail"].as_u64().unwrap();
        assert_eq!(code, Some(if failed == 0 { 0 } else { 3 }), "{report:#}");
    }

    #[test]
    #[ignore = "needs the lab: scripts/lab up"]
    fn lab_preflight_wrong_runtime_endpoint_fails_with_a_fix() {
        let lab = Lab::get();
        let wrong = format!("unix://{}", lab.node_dir(WORKER).join("containerd/nobody.sock").display());
        let (code, report, _) = preflight(lab, &wrong);
        assert_eq!(code, Some(3), "{report:#}");
        let runtime = check(&report, "runtime");
        assert_eq!(runtime["status"], "fail", "{runtime}");
        assert!(runtime["detail"].as_str().unwrap().contains("nobody.sock"), "{runtime}");
        assert!(runtime["fix"].as_str().unwrap().contains("--runtime-endpoint"), "{runtime}");
        // The cluster is still reachable: only the runtime is wrong.
        assert_eq!(check(&report, "api-server")["status"], "pass", "{report:#}");
    }
}
