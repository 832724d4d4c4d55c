//! The lab itself, as every other end-to-end test relies on it: the control plane answers, the master node
//! runs pods that answer on their pod IP and through a ClusterIP Service, and `wkjoin fetch` installs the lab's
//! own release archives (Linux, and Windows binaries that run under wine).

use crate::util::lab::Lab;
use crate::util::{stdout_of, wkjoin};
use std::process::Command;

fn jsonpath(lab: &Lab, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    lab.kubectl(&a).trim().to_string()
}

/// Deletes the namespace when the test ends, however it ends.
struct Namespace(&'static Lab, String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.try_kubectl(&["delete", "namespace", &self.1, "--wait=false"]);
    }
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_master_is_ready_and_serves_a_pod_on_its_ip_and_cluster_ip() {
    let lab = Lab::get();
    let ready = jsonpath(lab, &["get", "node", "master"], "{.status.conditions[?(@.type==\"Ready\")].status}");
    assert_eq!(ready, "True", "node master is not Ready");
    let ns = Namespace(lab, format!("wkjoin-test-cluster-{}", std::process::id()));
    lab.kubectl(&["create", "namespace", &ns.1]);
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec:
  nodeName: master
  containers: [{{name: web, image: wkjoin.local/webserver:1.0, imagePullPolicy: Never}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
"#,
        ns = ns.1
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    lab.kubectl(&["apply", "-f", &file.path().to_string_lossy()]);
    lab.kubectl(&["-n", &ns.1, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let pod_ip = jsonpath(lab, &["-n", &ns.1, "get", "pod", "web"], "{.status.podIP}");
    let cluster_ip = jsonpath(lab, &["-n", &ns.1, "get", "service", "web"], "{.spec.clusterIP}");
    assert!(pod_ip.starts_with("10.244."), "pod IP {pod_ip} is outside the lab's cluster CIDR");
    for target in [pod_ip, cluster_ip] {
        // kube-proxy programs a new ClusterIP within a few seconds of the Service's creation.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let out = lab.exec("master", &["curl", "-fsS", "--max-time", "2", &format!("http://{target}/")]);
            let body = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                assert!(body.contains("hostname: web"), "http://{target}/ answered {body}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "http://{target}/ from master: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_fetch_installs_the_mirrors_linux_binaries_and_a_second_fetch_downloads_nothing() {
    let lab = Lab::get();
    let root = tempfile::tempdir().unwrap();
    let fetch = || {
        let mut c = wkjoin();
        c.arg("fetch").arg("--root-dir").arg(root.path());
        c.args(["--node-name", "worker-9", "--mirror", &lab.mirror, "--kubernetes-version", "v1.20.2", "-o", "json"]);
        c
    };
    let first: serde_json::Value = serde_json::from_str(&stdout_of(&mut fetch())).unwrap();
    assert!(first["downloaded-bytes"].as_u64().unwrap() > 1_000_000, "{first}");
    for (name, args) in
        [("kubelet", &["--version"][..]), ("kube-proxy", &["--version"]), ("kubectl", &["version", "--client"])]
    {
        let bin = root.path().join("bin").join(name);
        let out = Command::new(&bin).args(args).output().expect("run installed binary");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("v1.20.2"), "{} --version printed {text}", bin.display());
    }
    let second: serde_json::Value = serde_json::from_str(&stdout_of(&mut fetch())).unwrap();
    assert_eq!(second["downloaded-bytes"].as_u64(), Some(0), "{second}");
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_fetch_installs_windows_binaries_that_run_under_wine() {
    let lab = Lab::get();
    let root = tempfile::tempdir().unwrap();
    let out = stdout_of(&mut lab.fetch_windows(root.path()));
    assert!(out.contains("installed CNI plugins v1.1.1 into"), "{out}");
    // Windows installs into the root itself (C:\k in the guide).
    let kubelet = root.path().join("kubelet.exe");
    assert!(kubelet.is_file(), "no kubelet.exe in {}", root.path().display());
    let wine_env = lab.repo.join("scripts/wine-env");
    let wine = |env: &str, exe: &std::path::Path, args: &str| {
        let script = format!("source {} && {env} wine {} {args} </dev/null", wine_env.display(), exe.display());
        let out = Command::new("bash").args(["-c", &script]).output().expect("run wine");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let text = wine("", &kubelet, "--version");
    assert!(text.contains("v1.20.2"), "kubelet.exe --version under wine printed {text}");
    // The plugins land in the CNI bin dir (C:\k\cni by default) and are the real ones: each answers the CNI
    // VERSION command, as the runtime asks it, with the spec versions it supports.
    for plugin in ["win-bridge.exe", "host-local.exe"] {
        let text = wine("CNI_COMMAND=VERSION", &root.path().join("cni").join(plugin), "");
        assert!(
            text.contains("\"supportedVersions\"") && text.contains("1.0.0"),
            "{plugin} VERSION under wine: {text}"
        );
    }
}

/// A Node that stays NotReady longer than the client's read timeout (30 s): the wait re-watches and still sees it
/// turn Ready, against the lab's real API server (a join once stopped after ~44 s with "watch stream failed").
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_a_wait_outlasts_a_node_quiet_for_longer_than_the_read_timeout() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let lab = Lab::get();
    let name = "wkjoin-quiet-node";
    let _ = lab.try_kubectl(&["delete", "node", name, "--ignore-not-found"]);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let waited = rt.block_on(async {
        let source = wkjoin::kube_client::Source::File(&lab.kubeconfig);
        let (client, _) = wkjoin::kube_client::build(source, &Default::default()).await.unwrap();
        let nodes: Api<Node> = Api::all(client);
        let node: Node = serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let ready = |n: Option<&Node>| {
            n.and_then(|n| n.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        let started = std::time::Instant::now();
        let wait = tokio::spawn(wkjoin::wait::until(nodes.clone(), name, ready));
        // Nothing about this Node changes for longer than the read timeout.
        tokio::time::sleep(wkjoin::kube_client::READ_TIMEOUT + std::time::Duration::from_secs(10)).await;
        assert!(!wait.is_finished(), "the wait ended while the node was quiet: {:?}", wait.await);
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = serde_json::json!({ "status": { "conditions": [{
            "type": "Ready", "status": "True", "reason": "WkjoinTest", "message": "turned Ready by the test",
            "lastHeartbeatTime": now, "lastTransitionTime": now }] } });
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
        let found = tokio::time::timeout(std::time::Duration::from_secs(30), wait).await;
        (found, started.elapsed())
    });
    let _ = lab.try_kubectl(&["delete", "node", name, "--ignore-not-found"]);
    let (found, elapsed) = waited;
    let node = found.expect("the wait saw Ready within 30 s").expect("joined").expect("no API error");
    assert!(node.is_some() && elapsed.as_secs() >= 40, "{elapsed:?}");
}
