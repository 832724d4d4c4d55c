//! `wkjoin validate` against the lab, with whatever nodes are Ready (the master always; workers once joined).

use crate::util::lab::Lab;
use crate::util::wkjoin;
use serde_json::Value;
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    json: Value,
    stderr: String,
}

fn lab_images(args: &[&str]) -> Vec<&'static str> {
    let mut a = Vec::new();
    if !args.contains(&"--sample-image") {
        a.extend(["--sample-image", "wkjoin.local/webserver:1.0"]);
    }
    if !args.contains(&"--probe-image") {
        a.extend(["--probe-image", "wkjoin.local/probe:1.0"]);
    }
    a
}

fn validate(lab: &Lab, args: &[&str]) -> Run {
    validate_by(wkjoin(), lab, args)
}

/// `wkjoin validate -o json` run by `cmd` (the wkjoin binary, in whatever namespaces `cmd` enters).
fn validate_by(mut cmd: assert_cmd::Command, lab: &Lab, args: &[&str]) -> Run {
    let out = cmd
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(["validate", "-o", "json"])
        .args(args)
        // The lab's own images (nothing is pulled from outside the machine), unless the test names one.
        .args(lab_images(args))
        .output()
        .expect("run wkjoin validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    Run { code: out.status.code().unwrap_or(-1), json, stderr }
}

fn cells(run: &Run) -> &Vec<Value> {
    run.json["cells"].as_array().expect("cells")
}

fn with_result<'a>(run: &'a Run, result: &str) -> Vec<&'a Value> {
    cells(run).iter().filter(|c| c["result"] == result).collect()
}

fn ready_nodes(lab: &Lab) -> Vec<(String, String)> {
    let nodes: Value = serde_json::from_str(&lab.kubectl(&["get", "nodes", "-o", "json"])).expect("nodes JSON");
    nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits (polling the API, not asserting on time) until the namespace is gone. Generous: a kubelet acts on a
/// pod's deletion only after the image pull it is in finishes (a missing image's pull retries its lookups).
fn assert_namespace_gone(lab: &Lab, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match lab.try_kubectl(&["get", "namespace", ns, "-o", "name"]) {
            Err(e) if e.contains("NotFound") => return,
            _ if Instant::now() > deadline => panic!("namespace {ns} still exists after the run"),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn summary(run: &Run) -> String {
    format!("{}\nstderr:\n{}", serde_json::to_string_pretty(&run.json["summary"]).unwrap(), run.stderr)
}

fn problems(run: &Run) -> String {
    let bad: Vec<String> = cells(run)
        .iter()
        .filter(|c| c["result"] == "fail" || c["result"] == "error")
        .map(|c| format!("{} {}: {} | {} | {}", c["result"], c["id"], c["reason"], c["output"], c["hint"]))
        .collect();
    bad.join("\n")
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_full_matrix_passes_and_cleans_up() {
    let lab = Lab::get();
    let nodes = ready_nodes(lab);
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("validate.xml");
    let run = validate(lab, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", problems(&run), summary(&run));
    let n = nodes.len();
    // every Ready node took part; the matrix has the size the pure matrix promises
    let validated: Vec<&str> =
        run.json["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    for (name, _) in &nodes {
        assert!(validated.contains(&name.as_str()), "node {name} not validated: {validated:?}");
    }
    let v = validated.len();
    assert_eq!(cells(&run).len(), 3 * v + 6 * v * v + 2 * v * (v - 1), "{n} Ready nodes");
    assert_eq!(run.json["summary"]["fail"], 0);
    assert_eq!(run.json["summary"]["error"], 0);
    assert_eq!(with_result(&run, "pass").len(), cells(&run).len(), "Linux nodes have no known limitations");
    for c in cells(&run) {
        if c["check"] != "sample-ready" {
            assert!(c["command"].is_string() && c["latency_ms"].is_u64() && c["attempts"].as_u64() >= Some(1), "{c}");
        }
    }
    // JUnit: well-formed enough for CI (one testcase per cell, balanced suites), no failures
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testcase ").count(), cells(&run).len());
    assert_eq!(xml.matches("<testsuite ").count(), xml.matches("</testsuite>").count());
    assert!(!xml.contains("<failure") && !xml.contains("<error"), "{xml}");
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_missing_probe_image_is_an_error_with_the_reason() {
    let lab = Lab::get();
    let run = validate(
        lab,
        &[
            "--probe-image",
            "wkjoin.local/does-not-exist:1.0",
            "--only",
            "pod-to-pod,node-to-pod,sample-ready",
            "--timeout",
            "40",
        ],
    );
    assert_eq!(run.code, 3, "{}", summary(&run));
    let errors = with_result(&run, "error");
    assert!(!errors.is_empty(), "{}", summary(&run));
    for c in &errors {
        let reason = c["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("does-not-exist") || reason.contains("Pending"),
            "the reason should name the image or the pending pod: {c}"
        );
    }
    // the probe pods carry every probe; the sample (a present image) still became ready
    assert_eq!(errors.len(), cells(&run).iter().filter(|c| c["check"] != "sample-ready").count());
    assert!(cells(&run).iter().filter(|c| c["check"] == "sample-ready").all(|c| c["result"] == "pass"));
    assert_eq!(run.json["summary"]["fail"], 0, "transport/setup errors are not network failures");
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_keep_leaves_the_namespace_and_the_next_run_removes_it() {
    let lab = Lab::get();
    let kept = validate(lab, &["--keep", "--only", "sample-ready"]);
    assert_eq!(kept.code, 0, "{}", summary(&kept));
    let ns = kept.json["namespace"].as_str().unwrap().to_string();
    assert_eq!(kept.json["kept"], true);
    let labels = lab.kubectl(&["get", "namespace", &ns, "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains("wkjoin.io/validate"), "{labels}");
    let pods = lab.kubectl(&["-n", &ns, "get", "pods", "-o", "name"]);
    assert!(pods.contains("pod/web-0"), "{pods}");
    // the next run (runs take turns) treats it as left over and removes it, pods included
    let next = validate(lab, &["--only", "sample-ready"]);
    assert_eq!(next.code, 0, "{}\n{}", problems(&next), summary(&next));
    assert!(
        next.json["not_validated"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains(&ns)),
        "{}",
        next.json["not_validated"]
    );
    assert_namespace_gone(lab, &ns);
    assert_namespace_gone(lab, next.json["namespace"].as_str().unwrap());
}

/// Blackhole routes in the master's namespace covering one pod CIDR; removed on drop (also on panic).
struct RouteFault {
    routes: Vec<String>,
}

impl RouteFault {
    fn blackhole(lab: &'static Lab, cidr: &str) -> RouteFault {
        // two halves: more specific than the host-gw route, which stays untouched
        let net: ipnet::Ipv4Net = cidr.parse().expect("IPv4 pod CIDR");
        let routes: Vec<String> = net.subnets(net.prefix_len() + 1).unwrap().map(|n| n.to_string()).collect();
        let fault = RouteFault { routes };
        for r in &fault.routes {
            let _ = lab.exec("master", &["ip", "route", "del", "blackhole", r]);
            let out = lab.exec("master", &["ip", "route", "add", "blackhole", r]);
            assert!(out.status.success(), "ip route add blackhole {r}: {}", String::from_utf8_lossy(&out.stderr));
        }
        fault
    }
}

impl Drop for RouteFault {
    fn drop(&mut self) {
        let lab = Lab::get();
        for r in &self.routes {
            let out = lab.exec("master", &["ip", "route", "del", "blackhole", r]);
            if !out.status.success() {
                eprintln!("could not remove blackhole {r}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_route_fault_fails_exactly_the_cross_node_cells_and_names_the_route() {
    let lab = Lab::get();
    let nodes = ready_nodes(lab);
    let Some((worker, cidr)) = nodes.iter().find(|(n, c)| n != "master" && !c.is_empty()).cloned() else {
        eprintln!("skipped: no Ready worker with a pod CIDR (join one with `scripts/lab join worker-1`)");
        return;
    };
    let _lock = lab.lock("master");
    let run = {
        let _fault = RouteFault::blackhole(lab, &cidr);
        validate(lab, &[])
    };
    assert_eq!(run.code, 3, "{}", summary(&run));
    assert_eq!(run.json["summary"]["error"], 0, "{}", problems(&run));
    let node_of = |c: &Value, side: &str| -> String { c[side]["node"].as_str().unwrap_or_default().to_string() };
    let failed = with_result(&run, "fail");
    for c in &failed {
        let (s, t) = (node_of(c, "source"), node_of(c, "target"));
        let involves_worker = s == worker || t == worker;
        let crosses_master = s == "master" || t == "master" || c["check"] == "service-dns";
        assert!(involves_worker && crosses_master, "only master <-> {worker} cells may fail: {c}\n{}", problems(&run));
        let hint = c["hint"].as_str().unwrap_or_default();
        assert!(hint.contains(&cidr) && hint.contains("wkjoin routes") && hint.contains("on master"), "{c}");
    }
    for id in [
        format!("node-to-pod/http/host:master->pod:{worker}"),
        format!("pod-to-pod/icmp/pod:master->pod:{worker}"),
        format!("pod-to-pod/http/pod:master->pod:{worker}"),
        format!("pod-to-pod/http/pod:{worker}->pod:master"),
        format!("gateway-ping/icmp/gateway:{worker}->node:master"),
    ] {
        assert!(failed.iter().any(|c| c["id"] == id.as_str()), "{id} should fail\n{}", problems(&run));
    }
    // the same cells pass again once the route is back
    let again = validate(lab, &["--only", "node-to-pod,pod-to-pod"]);
    assert_eq!(again.code, 0, "{}", problems(&again));
}

/// `--repeat`: one setup, the probes N times; every cell records its rounds and nothing is flaky on a healthy lab.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_repeat_runs_every_probe_each_round() {
    let lab = Lab::get();
    let run = validate(lab, &["--repeat", "3", "--only", "pod-to-pod,service-from-pod"]);
    assert_eq!(run.code, 0, "{}\n{}", problems(&run), summary(&run));
    assert_eq!(run.json["repeat"], 3);
    assert_eq!(run.json["flaky"], serde_json::json!([]));
    assert!(!cells(&run).is_empty());
    for c in cells(&run) {
        assert_eq!(c["rounds"], serde_json::json!({"runs": 3, "passed": 3}), "{c}");
    }
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}

/// The "scale the sample to 0": the sample web pods never run (their image cannot be had). sample-ready
/// fails with the reason, the cells that need a web pod are skipped, the others still run.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_no_sample_fails_sample_ready_and_skips_its_dependants() {
    let lab = Lab::get();
    let run = validate(lab, &["--sample-image", "wkjoin.local/no-such-sample:1.0", "--timeout", "30"]);
    assert_eq!(run.code, 3, "{}", summary(&run));
    let v = run.json["nodes"].as_array().unwrap().len();
    let failed = with_result(&run, "fail");
    assert_eq!(failed.len(), v, "only sample-ready fails, once per node:\n{}", problems(&run));
    for c in &failed {
        assert_eq!(c["check"], "sample-ready", "{c}");
        let reason = c["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("is not running") && reason.contains("no-such-sample"), "{c}");
    }
    assert_eq!(run.json["summary"]["error"], 0, "{}", problems(&run));
    for c in cells(&run) {
        let needs_web = matches!(c["target"]["to"].as_str(), Some("pod" | "host-port" | "service" | "service-name"));
        match c["check"].as_str().unwrap() {
            "sample-ready" => {}
            _ if needs_web => {
                assert_eq!(c["result"], "skip", "{c}");
                assert!(c["reason"].as_str().unwrap().contains("see sample-ready"), "{c}");
            }
            _ => assert_eq!(c["result"], "pass", "node and gateway pings need no sample: {c}"),
        }
    }
    assert!(with_result(&run, "skip").len() > v, "{}", summary(&run));
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}

fn alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid.trim()).exists()
}

fn sighup(pid_file: &std::path::Path) -> Result<(), String> {
    let pid = std::fs::read_to_string(pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let st = std::process::Command::new("kill").args(["-HUP", pid.trim()]).status().map_err(|e| e.to_string())?;
    if st.success() { Ok(()) } else { Err(format!("kill -HUP {} failed", pid.trim())) }
}

/// Polls (bounded) until `f` holds.
fn eventually(what: &str, secs: u64, f: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {secs}s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// kube-proxy stopped on one worker and its rules cleaned up: the worker's supervisor loses kube-proxy from its
/// services file (SIGHUP reloads it), then `kube-proxy --cleanup` runs in the node. On drop (also on panic) the
/// services file comes back, the supervisor restarts kube-proxy, and `scripts/lab join <worker> --no-validate`
/// runs with the wkjoin under test.
struct KubeProxyStopped {
    lab: &'static Lab,
    worker: String,
    services: std::path::PathBuf,
    supervisor_pid: std::path::PathBuf,
    original: Vec<u8>,
}

impl KubeProxyStopped {
    fn stop(lab: &'static Lab, worker: &str) -> KubeProxyStopped {
        let root = lab.worker_root(worker);
        let run = root.join("run");
        let services = run.join("services.json");
        let original =
            std::fs::read(&services).unwrap_or_else(|e| panic!("{}: {e} (is {worker} joined?)", services.display()));
        let mut file: Value = serde_json::from_slice(&original).expect("services.json");
        let list = file["services"].as_array_mut().expect("services");
        let before = list.len();
        list.retain(|s| s["name"] != "kube-proxy");
        assert_eq!(list.len() + 1, before, "{worker} runs no kube-proxy under the supervisor");
        let proxy_pid = std::fs::read_to_string(run.join("kube-proxy.pid")).expect("kube-proxy pid file");
        assert!(alive(&proxy_pid), "kube-proxy on {worker} is not running");
        let guard = KubeProxyStopped {
            lab,
            worker: worker.to_string(),
            services: services.clone(),
            supervisor_pid: run.join("supervisor.pid"),
            original,
        };
        std::fs::write(&services, serde_json::to_vec_pretty(&file).unwrap()).expect("write services.json");
        sighup(&guard.supervisor_pid).unwrap();
        eventually("kube-proxy stops", 20, || !alive(&proxy_pid)).unwrap();
        let kp = root.join("bin/kube-proxy");
        // Its exit status is not success in the lab: the ipvs part of the cleanup needs `ipset`, which the lab
        // lacks. The iptables part (what this kube-proxy programmed) runs first; checked below.
        let out = lab.exec(worker, &[kp.to_str().unwrap(), "--cleanup"]);
        let rules = lab.exec(worker, &["iptables-save", "-t", "nat"]);
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(
            !rules.contains("KUBE-SERVICES"),
            "the Service rules are still there after kube-proxy --cleanup ({}):\n{rules}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    fn restore(&self) -> Result<(), String> {
        std::fs::write(&self.services, &self.original).map_err(|e| e.to_string())?;
        sighup(&self.supervisor_pid)?;
        let pid_file = self.services.with_file_name("kube-proxy.pid");
        eventually("kube-proxy runs again", 30, || std::fs::read_to_string(&pid_file).is_ok_and(|p| alive(&p)))?;
        let out = std::process::Command::new(self.lab.repo.join("scripts/lab"))
            .args(["join", &self.worker, "--no-validate"])
            .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "scripts/lab join {} --no-validate: {}\n{}",
                self.worker,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for KubeProxyStopped {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!(
                "RESTORING {} FAILED: {e}; rejoin it: scripts/lab join {} --no-validate",
                self.worker, self.worker
            );
        }
    }
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_kube_proxy_stopped_fails_exactly_that_nodes_service_cells() {
    let lab = Lab::get();
    let worker = "worker-1";
    if !ready_nodes(lab).iter().any(|(n, _)| n == worker) {
        eprintln!("skipped: {worker} is not Ready (join it with `scripts/lab join {worker}`)");
        return;
    }
    let _lock = lab.lock(worker);
    let run = {
        let _fault = KubeProxyStopped::stop(lab, worker);
        validate(lab, &[])
        // restored here: services file, kube-proxy, `scripts/lab join --no-validate`
    };
    assert_eq!(run.code, 3, "{}", summary(&run));
    assert_eq!(run.json["summary"]["error"], 0, "{}", problems(&run));
    let nodes: Vec<String> =
        run.json["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect();
    let mut expected: Vec<String> = Vec::new();
    for n in &nodes {
        expected.push(format!("service-from-node/http/host:{worker}->service:{n}"));
        expected.push(format!("service-from-pod/http/pod:{worker}->service:{n}"));
    }
    expected.push(format!("service-dns/dns/pod:{worker}->dns:{worker}"));
    expected.sort();
    let failed = with_result(&run, "fail");
    let mut got: Vec<String> = failed.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    got.sort();
    assert_eq!(got, expected, "exactly {worker}'s Service and DNS cells fail:\n{}", problems(&run));
    for c in &failed {
        let hint = c["hint"].as_str().unwrap_or_default();
        assert!(hint.contains(&format!("kube-proxy on {worker}")), "{c}");
    }
    // restored: Ready, and the matrix for the worker passes again
    let ready =
        lab.kubectl(&["get", "node", worker, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready.trim(), "True", "{worker} is not Ready after the restore");
    let again = validate(lab, &["--node", worker]);
    assert_eq!(again.code, 0, "{}\n{}", problems(&again), summary(&again));
}

/// Fake Windows Nodes (API objects only: no kubelet, no traffic); deleted on drop, with their pods.
struct FakeWindowsNodes {
    names: Vec<String>,
}

impl FakeWindowsNodes {
    /// Nodes accept their status on create: Ready, Windows, the given (name, IP, kernel, kubelet, runtime).
    fn create(lab: &'static Lab, nodes: &[(&str, &str, &str, &str, &str)]) -> FakeWindowsNodes {
        let fake = FakeWindowsNodes { names: nodes.iter().map(|n| n.0.to_string()).collect() };
        let dir = tempfile::tempdir().unwrap();
        // a fresh heartbeat, as a kubelet would post (a null one may read as a node that never reported)
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        for (name, ip, kernel, kubelet, runtime) in nodes {
            let node = serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/os": "windows", "kubernetes.io/hostname": name}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake",
                                    "lastHeartbeatTime": now, "lastTransitionTime": now}],
                    "addresses": [{"type": "InternalIP", "address": ip}],
                    "nodeInfo": {"operatingSystem": "windows", "architecture": "amd64", "kernelVersion": kernel,
                                 "osImage": "Windows Server Datacenter", "containerRuntimeVersion": runtime,
                                 "kubeletVersion": kubelet, "kubeProxyVersion": kubelet, "machineID": "",
                                 "systemUUID": "", "bootID": ""}
                }
            });
            let f = dir.path().join(format!("{name}.json"));
            std::fs::write(&f, node.to_string()).unwrap();
            lab.kubectl(&["create", "-f", f.to_str().unwrap()]);
        }
        fake
    }
}

impl Drop for FakeWindowsNodes {
    fn drop(&mut self) {
        let lab = Lab::get();
        for n in &self.names {
            let _ = lab.try_kubectl(&["delete", "node", n, "--wait=false"]);
        }
    }
}

/// Windows images follow each node's build ({ltsc} → ltsc2022 for 20348); a build no image fits gets no pods
/// and says why; a node too old for HostProcess containers gets no host probe pod, and its host cells are known
/// limitations. Proven through the real API with fake Windows Node objects (no Windows kubelet exists here).
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_windows_pods_get_the_image_of_their_node_build() {
    let lab = Lab::get();
    let fake = FakeWindowsNodes::create(
        lab,
        &[
            ("win-fake-a", "172.30.0.98", "10.0.20348.1970", "v1.26.0", "containerd://1.6.20"),
            ("win-fake-b", "172.30.0.99", "10.0.19041.1", "v1.26.0", "containerd://1.6.20"),
            ("win-fake-c", "172.30.0.97", "10.0.17763.3406", "v1.20.2", "docker://19.3.14"),
        ],
    );
    // Windows pods get their own budget (the Linux pods keep the default 60 s and start in ~2 s)
    let run = validate(lab, &["--only", "sample-ready,node-ping", "--windows-timeout", "3", "--keep"]);
    let ns = run.json["namespace"].as_str().unwrap().to_string();
    let index = |node: &str| {
        let nodes = run.json["nodes"].as_array().unwrap();
        let seen = || format!("{node} not validated: {:?}; {}", nodes, run.json["not_validated"]);
        nodes.iter().position(|n| n["name"] == node).unwrap_or_else(|| panic!("{}", seen()))
    };
    let cell = |node: &str| {
        cells(&run).iter().find(|c| c["id"] == format!("sample-ready/ready/api->pod:{node}")).expect("cell").clone()
    };
    let image =
        |pod: String| lab.try_kubectl(&["-n", &ns, "get", "pod", &pod, "-o", "jsonpath={.spec.containers[0].image}"]);
    let (a, b, c) = (index("win-fake-a"), index("win-fake-b"), index("win-fake-c"));
    let (web_c, host_c) = (image(format!("web-{c}")), image(format!("hostprobe-{c}")));
    let from_c: Vec<Value> = cells(&run)
        .iter()
        .filter(|x| {
            x["id"].as_str().unwrap().starts_with("node-ping/tcp/host:win-fake-c->")
                || x["id"].as_str().unwrap().starts_with("node-ping/icmp/host:win-fake-c->")
        })
        .cloned()
        .collect();
    let (web_a, probe_a, web_b) =
        (image(format!("web-{a}")), image(format!("hostprobe-{a}")), image(format!("web-{b}")));
    let (cell_a, cell_b) = (cell("win-fake-a"), cell("win-fake-b"));
    // leave nothing behind before asserting: the fake nodes' pods never start, so they are force-deleted
    let _ = lab.try_kubectl(&["-n", &ns, "delete", "pods", "--all", "--grace-period=0", "--force"]);
    let _ = lab.try_kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    drop(fake);

    assert_ne!(run.code, 0, "{}", summary(&run));
    assert_eq!(web_a.as_deref(), Ok("mcr.microsoft.com/windows/servercore:ltsc2022"));
    assert_eq!(probe_a.as_deref(), Ok("mcr.microsoft.com/windows/servercore:ltsc2022"));
    assert_eq!(cell_a["result"], "fail");
    assert!(cell_a["reason"].as_str().unwrap().contains("still Pending after 3s"), "{cell_a}");
    assert!(web_b.is_err(), "no pod for a build without an image: {web_b:?}");
    assert_eq!(cell_b["result"], "fail");
    let why = cell_b["reason"].as_str().unwrap();
    assert!(why.contains("not created") && why.contains("19041") && why.contains("ltsc2022"), "{why}");
    for (node, _) in ready_nodes(lab).iter().filter(|(n, _)| !n.starts_with("win-fake")) {
        assert_eq!(cell(node)["result"], "pass", "{}", problems(&run));
    }
    assert_eq!(web_c.as_deref(), Ok("mcr.microsoft.com/windows/servercore:ltsc2019"));
    assert!(host_c.is_err(), "no HostProcess pod on kubelet v1.20 with Docker: {host_c:?}");
    assert!(!from_c.is_empty());
    for x in &from_c {
        assert_eq!(x["result"], "known-limitation", "{x}");
        assert!(x["reason"].as_str().unwrap().contains("HostProcess"), "{x}");
    }
    assert_namespace_gone(lab, &ns);
}

/// Drops ICMP echo requests arriving on a node's eth0 (as a cloud security group would); removed on drop.
struct IcmpDrop {
    node: &'static str,
}

const ICMP_DROP: [&str; 10] = ["INPUT", "-i", "eth0", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP", "-w"];

impl IcmpDrop {
    fn on(lab: &Lab, node: &'static str) -> IcmpDrop {
        let out = lab.exec(node, &[&["iptables", "-I"][..], &ICMP_DROP].concat());
        assert!(out.status.success(), "iptables: {}", String::from_utf8_lossy(&out.stderr));
        IcmpDrop { node }
    }
}

impl Drop for IcmpDrop {
    fn drop(&mut self) {
        let out = Lab::get().exec(self.node, &[&["iptables", "-D"][..], &ICMP_DROP].concat());
        if !out.status.success() {
            eprintln!("could not remove the ICMP drop on {}: {}", self.node, String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// A node whose host drops ICMP fails exactly the pings to it; with --icmp-blocked they become TCP connects to
/// its kubelet, reported as `tcp` cells, and pass.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_icmp_blocked_node_is_pinged_over_tcp() {
    let lab = Lab::get();
    let target = "worker-2";
    let _lock = lab.lock(target);
    let nodes: Vec<String> = ready_nodes(lab).into_iter().map(|(n, _)| n).collect();
    assert!(nodes.iter().any(|n| n == target), "{target} must be joined: {nodes:?}");
    let blocked = IcmpDrop::on(lab, target);
    let plain = validate(lab, &["--only", "node-ping,gateway-ping"]);
    let tcp = validate(lab, &["--only", "node-ping,gateway-ping", "--icmp-blocked", target]);
    drop(blocked);

    let mut expected: Vec<String> = nodes
        .iter()
        .filter(|n| *n != target)
        .flat_map(|n| {
            [format!("node-ping/icmp/host:{n}->node:{target}"), format!("gateway-ping/icmp/gateway:{n}->node:{target}")]
        })
        .collect();
    expected.sort();
    let mut failed: Vec<String> =
        with_result(&plain, "fail").iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    failed.sort();
    assert_eq!(failed, expected, "{}", problems(&plain));

    assert_eq!(tcp.code, 0, "{}\n{}", problems(&tcp), summary(&tcp));
    let to_target: Vec<&Value> =
        cells(&tcp).iter().filter(|c| c["id"].as_str().unwrap().ends_with(&format!("->node:{target}"))).collect();
    assert_eq!(to_target.len(), expected.len());
    for c in to_target {
        assert_eq!(c["kind"], "tcp", "{c}");
        assert_eq!(c["result"], "pass", "{c}");
        assert!(c["command"].as_str().unwrap().contains("10250"), "{c}");
    }
}

fn local_cells<'a>(run: &'a Run, check: &str) -> Vec<&'a Value> {
    cells(run).iter().filter(|c| c["source"]["on"] == "local" && c["check"] == check).collect()
}

/// `--local` on the master (its network namespace: host-gw routes to every pod CIDR, kube-proxy): every local
/// cell passes, like the guide's checks from the master. An HTTP proxy in the environment that does not exist
/// proves the local HTTP cells bypass it.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_local_on_the_master_passes_every_local_cell() {
    let lab = Lab::get();
    let mut cmd = lab.wkjoin_in("master");
    cmd.env("HTTP_PROXY", "http://127.0.0.1:9").env("http_proxy", "http://127.0.0.1:9");
    let run = validate_by(cmd, lab, &["--local"]);
    assert_eq!(run.code, 0, "{}\n{}", problems(&run), summary(&run));
    let v = run.json["nodes"].as_array().unwrap().len();
    assert_eq!(cells(&run).len(), 3 * v + 6 * v * v + 2 * v * (v - 1) + 4 * v, "{v} nodes, --local");
    let local: Vec<&Value> = cells(&run).iter().filter(|c| c["source"]["on"] == "local").collect();
    assert_eq!(local.len(), 4 * v);
    for c in &local {
        assert_eq!(c["result"], "pass", "{c}");
        let id = c["id"].as_str().unwrap();
        assert!(id.contains("/local->"), "{id}");
        assert!(c["command"].is_string() && c["latency_ms"].is_u64() && c["attempts"].as_u64() >= Some(1), "{c}");
    }
    // the master is a node: its ClusterIP cells ran (no known limitation), through curl's equivalent
    for c in local_cells(&run, "service-from-node") {
        assert!(c["command"].as_str().unwrap().starts_with("curl -sS -m "), "{c}");
        assert!(c["expect"].as_str().unwrap().starts_with("hostname: web-"), "{c}");
    }
    for c in local_cells(&run, "node-ping") {
        assert!(c["command"].as_str().unwrap().starts_with("ping -c 1 -W 2 172.30.0."), "{c}");
    }
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}

/// A machine beside the nodes but not one of them: a network namespace of this test with one leg on the lab's
/// bridge (172.30.0.200/24) and no other route, so a pod IP is unreachable here and nothing leaves the machine
/// (the host's own namespace would send it out of its default route). Deleted on drop.
struct OffCluster {
    name: String,
}

impl OffCluster {
    const ADDRESS: &'static str = "172.30.0.200/24";

    fn new() -> OffCluster {
        let pid = std::process::id();
        let name = format!("wkjt-{pid}-local");
        let leg = format!("wkjtl{pid}");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        };
        let _ = std::process::Command::new("ip").args(["netns", "del", &name]).output();
        run(&["netns", "add", &name]);
        let ns = OffCluster { name };
        run(&["link", "add", &leg, "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
        run(&["link", "set", &leg, "master", "wkjlab0", "up"]);
        run(&["-n", &ns.name, "link", "set", "lo", "up"]);
        run(&["-n", &ns.name, "addr", "add", Self::ADDRESS, "dev", "eth0"]);
        run(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        let routes = std::process::Command::new("ip").args(["-n", &ns.name, "route"]).output().unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout);
        assert!(!routes.contains("default"), "the off-cluster namespace must have no default route: {routes}");
        ns
    }

    /// wkjoin inside the namespace, with the environment `wkjoin()` gives.
    fn wkjoin(&self) -> assert_cmd::Command {
        let mut cmd = wkjoin();
        let bin = assert_cmd::cargo::cargo_bin("wkjoin");
        let std_cmd = {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", &self.name]).arg(bin);
            c
        };
        let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> =
            cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        cmd = assert_cmd::Command::from_std(std_cmd);
        for (k, v) in envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }
}

impl Drop for OffCluster {
    fn drop(&mut self) {
        // the veth pair goes with the namespace
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// `--local` off-cluster: node IPs answer (ping, hostPort), pod IPs do not (no route to the pod CIDRs: the hint
/// names each CIDR with its node as the gateway and `wkjoin routes`), ClusterIPs are known-limitation (the
/// decision: they answer only on nodes), and the pod-side matrix is untouched.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_validate_local_off_cluster_names_the_missing_routes() {
    let lab = Lab::get();
    let nodes = ready_nodes(lab);
    let off = OffCluster::new();
    let run = validate_by(off.wkjoin(), lab, &["--local"]);
    drop(off);
    assert_eq!(run.code, 3, "{}\n{}", problems(&run), summary(&run));
    let v = run.json["nodes"].as_array().unwrap().len();
    assert_eq!(v, nodes.len());
    for c in local_cells(&run, "node-ping") {
        assert_eq!(c["result"], "pass", "node IPs answer over the lab's network: {c}");
    }
    for c in local_cells(&run, "hostport") {
        assert_eq!(c["result"], "pass", "a node's hostPort answers from beside the nodes: {c}");
    }
    let to_pods = local_cells(&run, "node-to-pod");
    assert_eq!(to_pods.len(), v);
    for c in &to_pods {
        assert_eq!(c["result"], "fail", "{c}");
        let node = c["target"]["node"].as_str().unwrap();
        let (_, cidr) = nodes.iter().find(|(n, _)| n == node).unwrap();
        let hint = c["hint"].as_str().unwrap_or_default();
        for want in [
            format!("this machine has no route to {node}'s pod CIDR {cidr}"),
            format!("gateway {}", lab.node_ip(node)),
            "`wkjoin routes` on this machine".to_string(),
        ] {
            assert!(hint.contains(&want), "hint lacks {want:?}: {c}");
        }
        assert!(c["reason"].as_str().unwrap().contains("cannot connect to http://10.244."), "{c}");
    }
    for c in local_cells(&run, "service-from-node") {
        assert_eq!(c["result"], "known-limitation", "{c}");
        assert!(c["reason"].as_str().unwrap().contains("not a Ready node"), "{c}");
    }
    // exactly the local → pod cells failed; every pod-side cell still passes
    assert_eq!(run.json["summary"]["fail"], v, "{}", problems(&run));
    assert_eq!(run.json["summary"]["error"], 0, "{}", problems(&run));
    assert!(cells(&run).iter().filter(|c| c["source"]["on"] != "local").all(|c| c["result"] == "pass"));
    let diagnosis: Vec<&str> =
        run.json["hints"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap()).collect();
    assert_eq!(diagnosis.len(), v, "one hint per node's pod CIDR: {diagnosis:#?}");
    assert_namespace_gone(lab, run.json["namespace"].as_str().unwrap());
}
