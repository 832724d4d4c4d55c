//! `wkjoin start` and `wkjoin pause` against the lab: flags the real v1.20 binaries accept, and worker-1 turned
//! into a Ready node whose pods get addresses from its pod CIDR and answer, supervised and stopped again.

use crate::util::lab::Lab;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wkjoin::layout::{Layout, Os};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, resolve};
use wkjoin::start::services::{kube_proxy_args, kubelet_args};
use wkjoin::version::KubeVersion;

const WORKER: &str = "worker-1";

/// The flag names a binary's `--help` lists.
fn help_flags(bin: &Path) -> BTreeSet<String> {
    let out = Command::new(bin).arg("--help").output().expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.split(['=', ',', '[']).next().unwrap_or(w).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn names(args: &[String]) -> Vec<String> {
    args.iter().map(|a| a.trim_start_matches('-').split('=').next().unwrap().to_string()).collect()
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_start_flags_exist_in_the_real_v1_20_binaries() {
    let lab = Lab::get();
    let v = KubeVersion::new(1, 20, 2);
    let p = PartialSettings {
        node_name: Some(WORKER.into()),
        node_ip: Some(lab.node_ip(WORKER).parse().unwrap()),
        cgroup_root: Some("/wkjlab-worker-1".into()),
        ..Default::default()
    };
    let s = resolve(Os::Linux, Some("/var/lib/wkjoin"), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap();
    let kubelet = help_flags(&lab.bin.join("kubelet"));
    let proxy = help_flags(&lab.bin.join("kube-proxy"));
    assert!(kubelet.contains("kubeconfig") && proxy.contains("proxy-mode"), "help parsed: {kubelet:?}");
    let missing: Vec<String> =
        names(&kubelet_args(&s, v, &s.pause_image)).into_iter().filter(|n| !kubelet.contains(n)).collect();
    assert!(missing.is_empty(), "kubelet v1.20.2 lacks {missing:?}");
    let missing: Vec<String> = names(&kube_proxy_args(&s, v).0).into_iter().filter(|n| !proxy.contains(n)).collect();
    assert!(missing.is_empty(), "kube-proxy v1.20.2 lacks {missing:?}");
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pid_in(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Processes running one of the worker's own kubelet/kube-proxy binaries.
fn node_processes(root: &Path) -> Vec<u32> {
    let bins = [root.join("bin/kubelet"), root.join("bin/kube-proxy")];
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|t| bins.contains(&t)) && alive(*pid))
        .collect()
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"wkjoin-start-web","namespace":"default","labels":{"app":"wkjoin-start-web"}},"spec":{"nodeName":"worker-1","terminationGracePeriodSeconds":1,"containers":[{"name":"web","image":"wkjoin.local/webserver:1.0","imagePullPolicy":"Never","ports":[{"containerPort":80}]}]}}"#;

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_start_makes_worker_1_a_ready_supervised_node() {
    let lab = Lab::get();
    let _lock = lab.lock(WORKER);
    let root = lab.worker_root(WORKER);
    let root_s = root.display().to_string();
    let socket = lab.containerd_socket(WORKER);
    let node_args: Vec<String> = [
        "--root-dir",
        &root_s,
        "--node-name",
        WORKER,
        "--node-ip",
        &lab.node_ip(WORKER),
        "--cluster-cidr",
        &lab.cluster_cidr,
        "--service-cidr",
        &lab.service_cidr,
        "--cluster-dns",
        &lab.dns,
        "--runtime",
        "containerd",
        "--runtime-endpoint",
        &format!("unix://{}", socket.display()),
        "--pause-image",
        "wkjoin.local/pause:1.0",
        "--cgroup-root",
        "/wkjlab-worker-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // As the lab's own kubelet: the lab's DNS, and eviction thresholds for a test machine's small disk.
    let resolv = root.join("resolv.conf");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(&resolv, "nameserver 172.30.0.10\n").unwrap();
    let extra: Vec<String> = [
        format!("--kubelet-arg=resolv-conf={}", resolv.display()),
        "--kubelet-arg=eviction-hard=memory.available<100Mi,nodefs.available<2%,imagefs.available<2%".into(),
        "--kubelet-arg=image-gc-high-threshold=98".into(),
        "--kubelet-arg=image-gc-low-threshold=95".into(),
        // A network namespace cannot change the global conntrack table size, and this machine lacks
        // CAP_SYS_RESOURCE for oom_score_adj (the lab's own kube-proxy is configured the same way).
        "--kube-proxy-arg=conntrack-max-per-core=0".into(),
        "--kube-proxy-arg=conntrack-min=0".into(),
        "--kube-proxy-arg=conntrack-tcp-timeout-established=0s".into(),
        "--kube-proxy-arg=conntrack-tcp-timeout-close-wait=0s".into(),
        "--kube-proxy-arg=oom-score-adj=0".into(),
    ]
    .into();

    // Leave nothing of an earlier run behind.
    lab.wkjoin_in(WORKER).args(["start", "--stop", "--root-dir", &root_s]).assert().success();
    let _ = lab.try_kubectl(&["delete", "pod", "wkjoin-start-web", "--ignore-not-found", "--wait=true"]);

    lab.wkjoin_in(WORKER)
        .args(["fetch", "--mirror", &lab.mirror, "--kubernetes-version", "v1.20.2"])
        .args(&node_args)
        .assert()
        .success();
    // The node credential as the kubeconfig (what `wkjoin config` installs), owner-only.
    let layout = Layout::new(Os::Linux, root_s.clone());
    let kubeconfig = Path::new(&layout.kubeconfig()).to_path_buf();
    std::fs::copy(lab.node_credential(WORKER), &kubeconfig).unwrap();
    std::fs::set_permissions(&kubeconfig, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let out = lab
        .wkjoin_in(WORKER)
        .args(["pause", "--image-archive", &format!("{}/images/pause.oci.tar", lab.mirror)])
        .args(&node_args)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("wkjoin.local/pause:1.0"), "{text}");

    let out =
        lab.wkjoin_in(WORKER).arg("start").args(&node_args).args(&extra).timeout(Duration::from_secs(420)).assert();
    let o = out.get_output();
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "wkjoin start failed:\n{text}");
    assert!(text.contains("is Ready"), "{text}");

    let pod_cidr: ipnet::IpNet =
        lab.kubectl(&["get", "node", WORKER, "-o", "jsonpath={.spec.podCIDR}"]).trim().parse().unwrap();
    // The CNI config is where the node's stock containerd reads it (its conf_dir), not in wkjoin's root.
    let cni =
        String::from_utf8_lossy(&lab.exec(WORKER, &["cat", "/etc/cni/net.d/10-wkjoin.conflist"]).stdout).into_owned();
    assert!(!root.join("cni/config/10-wkjoin.conflist").exists());
    assert!(cni.contains(&pod_cidr.to_string()), "{cni}");

    // The same plan again with the supervisor alive: nothing changes.
    let out = lab.wkjoin_in(WORKER).arg("start").args(&node_args).args(&extra).assert().success();
    let again = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(again.contains("unchanged"), "{again}");

    // A pod pinned to worker-1 gets an address from its pod CIDR and answers from inside the node.
    let mut kubectl_apply = Command::new(lab.bin.join("kubectl"));
    kubectl_apply.arg("--kubeconfig").arg(&lab.kubeconfig).args(["apply", "-f", "-"]);
    let mut child = kubectl_apply.stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), POD.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    lab.kubectl(&["wait", "--for=condition=Ready", "pod/wkjoin-start-web", "--timeout=180s"]);
    let ip: std::net::IpAddr =
        lab.kubectl(&["get", "pod", "wkjoin-start-web", "-o", "jsonpath={.status.podIP}"]).trim().parse().unwrap();
    assert!(pod_cidr.contains(&ip), "pod IP {ip} outside {pod_cidr}");
    let url = format!("http://{ip}/");
    let mut answered = String::new();
    wait_until("the pod to answer HTTP", Duration::from_secs(30), || {
        let o = lab.exec(WORKER, &["wget", "-q", "-T", "3", "-O", "-", &url]);
        answered = String::from_utf8_lossy(&o.stdout).into_owned();
        o.status.success()
    });
    assert!(!answered.is_empty());

    // kill -9 the kubelet: the supervisor starts a new one.
    let run = root.join("run");
    let old = pid_in(&run.join("kubelet.pid")).expect("kubelet pid file");
    assert!(alive(old));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until("a restarted kubelet", Duration::from_secs(60), || {
        pid_in(&run.join("kubelet.pid")).is_some_and(|p| p != old && alive(p))
    });

    // Stop: no kubelet or kube-proxy of worker-1 remains.
    lab.kubectl(&["delete", "pod", "wkjoin-start-web", "--wait=true", "--timeout=60s"]);
    let out = lab.wkjoin_in(WORKER).args(["start", "--stop", "--root-dir", &root_s]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("stopped"));
    assert_eq!(node_processes(&root), Vec::<u32>::new());
    assert!(!run.join("supervisor.pid").exists());

    // Leave worker-1 joined, as the lab's other end-to-end tests expect (and as it was found).
    let rejoin = std::process::Command::new(lab.repo.join("scripts/lab"))
        .args(["join", WORKER, "--no-validate"])
        .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
        .output()
        .unwrap();
    assert!(rejoin.status.success(), "rejoin {WORKER}: {}", String::from_utf8_lossy(&rejoin.stderr));
}

/// The lines of a run's output in which its flag parser refused a flag.
fn flag_errors(text: &str) -> Vec<&str> {
    let bad = ["unknown flag", "flag provided but not defined", "invalid argument", "unknown shorthand"];
    text.lines().filter(|l| bad.iter().any(|b| l.contains(b))).collect()
}

/// The Windows plan's exact kubelet and kube-proxy command lines, given to the real v1.20.2 Windows binaries under
/// wine: they parse every flag and go on to the service manager or their kubeconfig (which fail under wine, as
/// expected), never stopping at a flag.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_start_windows_command_lines_are_accepted_by_the_real_windows_binaries() {
    let lab = Lab::get();
    let root = tempfile::tempdir().unwrap();
    crate::util::stdout_of(&mut lab.fetch_windows(root.path()));
    let v = KubeVersion::new(1, 20, 2);
    let p = PartialSettings {
        node_name: Some("win-1".into()),
        node_ip: Some("172.30.0.21".parse().unwrap()),
        pod_cidr: Some("10.244.5.0/24".parse().unwrap()),
        ..Default::default()
    };
    let s = resolve(Os::Windows, Some("C:\\k"), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap();
    let wine_env = lab.repo.join("scripts/wine-env");
    for (exe, args) in
        [("kubelet.exe", kubelet_args(&s, v, &s.pause_image)), ("kube-proxy.exe", kube_proxy_args(&s, v).0)]
    {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))).collect();
        let script = format!(
            "source {} >/dev/null; set +e; timeout 60 wine {} {} 2>&1; echo \"exit $?\"",
            wine_env.display(),
            root.path().join(exe).display(),
            quoted.join(" ")
        );
        let out = Command::new("bash").args(["-c", &script]).output().expect("run wine");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(flag_errors(&text).is_empty(), "{exe} rejected a flag of the plan: {:?}\n{text}", flag_errors(&text));
        // It got past the flags: it reached the service manager, its kubeconfig, or its own start-up log.
        let went_on = ["service", "kubeconfig", "Version", "I1", "W1", "E1", "F1"].iter().any(|m| text.contains(m));
        assert!(went_on, "{exe} stopped before doing anything: {text}");
    }
}
