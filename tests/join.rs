//! `wkjoin join` and `wkjoin reset` end to end on the lab's worker-2, through `scripts/lab join|reset` (the
//! lab's settings, the node's own minted credential): bare → Ready → re-join changes nothing → a pod on the
//! node answers from the master across host-gw routes → reset leaves the node bare → join again.

use crate::util::lab::Lab;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const W: &str = "worker-2";

fn lab_cmd(lab: &Lab, args: &[&str]) -> Output {
    let out = Command::new(lab.repo.join("scripts/lab"))
        .args(args)
        .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
        .output()
        .expect("scripts/lab");
    assert!(
        out.status.success(),
        "scripts/lab {} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn in_node(lab: &Lab, args: &[&str]) -> String {
    in_node_of(lab, W, args)
}

fn in_node_of(lab: &Lab, node: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&lab.exec(node, args).stdout).into_owned()
}

/// containerd's config file inside the node, as the runtime reads it.
const RUNTIME_CONFIG: &str = "/etc/containerd/config.toml";
/// The pause image `scripts/lab join` asks for (an air-gapped admin's, imported from the mirror).
const PAUSE: &str = "wkjoin.local/pause:1.0";

fn runtime_config(lab: &Lab, node: &str) -> Vec<u8> {
    let out = lab.exec(node, &["cat", RUNTIME_CONFIG]);
    assert!(out.status.success(), "{node}: cannot read {RUNTIME_CONFIG}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The `key = "value"` of a containerd config, wherever it stands.
fn toml_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{key} ")) || l.starts_with(&format!("{key}=")))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// What the node's containerd says it runs: every pod sandbox's image, from `ctr` (not from wkjoin's own client).
fn sandbox_images(lab: &Lab, node: &str) -> Vec<String> {
    let out = in_node_of(
        lab,
        node,
        &[
            "ctr",
            "-a",
            "/run/containerd/containerd.sock",
            "-n",
            "k8s.io",
            "containers",
            "ls",
            "labels.\"io.cri-containerd.kind\"==sandbox",
        ],
    );
    out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).map(str::to_string).collect()
}

/// A joined node's runtime: wkjoin's CNI config in the runtime's own conf dir (none in wkjoin's root), the
/// runtime's sandbox image set to the agreed pause image, and every sandbox running it.
fn assert_runtime_agrees(lab: &Lab, node: &str, conf_dir: &str) {
    let cni = in_node_of(lab, node, &["cat", &format!("{conf_dir}/10-wkjoin.conflist")]);
    assert!(cni.contains("\"plugins\""), "{node}: no conflist in the runtime's conf dir {conf_dir}: {cni:?}");
    assert!(
        !lab.worker_root(node).join("cni/config/10-wkjoin.conflist").exists(),
        "{node}: a CNI config in wkjoin's own dir"
    );
    let config = String::from_utf8(runtime_config(lab, node)).unwrap();
    assert_eq!(toml_value(&config, "sandbox_image").as_deref(), Some(PAUSE), "{node}:\n{config}");
    let images = sandbox_images(lab, node);
    assert!(!images.is_empty(), "{node}: no pod sandboxes to check");
    assert!(images.iter().all(|i| i == PAUSE), "{node}: sandboxes run {images:?}, not {PAUSE}");
}

/// What a bare node must not have: wkjoin's routes, the pod bridge, kube iptables chains, node processes.
fn assert_bare(lab: &Lab) {
    assert_eq!(in_node(lab, &["ip", "route", "show", "proto", "147"]).trim(), "", "wkjoin routes left");
    assert!(!in_node(lab, &["ip", "-o", "link"]).contains("cbr0"), "the pod bridge is left");
    let rules = in_node(lab, &["iptables-save"]);
    assert!(!rules.contains("KUBE-") && !rules.contains("CNI-HOSTPORT"), "node iptables chains left:\n{rules}");
    let root = lab.worker_root(W);
    let procs = Command::new("pgrep").args(["-af", &root.to_string_lossy()]).output().unwrap();
    assert!(procs.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&procs.stdout));
    assert!(!root.join("wkjoin-state.json").exists(), "the state file is left");
}

fn ready(lab: &Lab) -> bool {
    lab.try_kubectl(&["get", "node", W, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])
        .is_ok_and(|s| s.trim() == "True")
}

/// Deletes the test's pod however the test ends.
struct Pod(&'static Lab, String);

/// The lab's web server as a pod pinned to `node`, Ready (deleted when the returned guard goes).
fn web_pod(lab: &'static Lab, node: &str, name: &str) -> Pod {
    let pod = Pod(lab, name.to_string());
    let spec = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"nodeName":"{node}","containers":[{{"name":"web","image":"wkjoin.local/webserver:1.0","imagePullPolicy":"Never"}}]}}}}"#
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), spec).unwrap();
    lab.kubectl(&["apply", "-f", &file.path().to_string_lossy()]);
    lab.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{name}"), "--timeout=60s"]);
    pod
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.0.try_kubectl(&["delete", "pod", &self.1, "--wait=false", "--ignore-not-found"]);
    }
}

#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_join_bare_worker_to_ready_rejoin_unchanged_reset_to_bare_and_join_again() {
    let lab = Lab::get();
    let _lock = lab.lock(W);

    lab_cmd(lab, &["reset", W]);
    assert_bare(lab);
    // worker-2's containerd was customised by its admin (conf_dir, sandbox_image): wkjoin must follow it.
    let original = runtime_config(lab, W);
    let text0 = String::from_utf8_lossy(&original).into_owned();
    let conf_dir = toml_value(&text0, "conf_dir").expect("worker-2's config sets conf_dir");
    assert_ne!(conf_dir, "/etc/cni/net.d", "worker-2 is the lab's customised runtime");
    assert_ne!(toml_value(&text0, "sandbox_image").as_deref(), Some(PAUSE), "{text0}");
    // An admin's config with registry credentials is owner-only: wkjoin's rewrite and reset must keep it so.
    let mode = |lab: &Lab| in_node(lab, &["stat", "-c", "%a", RUNTIME_CONFIG]).trim().to_string();
    let stock_mode = mode(lab);
    assert!(lab.exec(W, &["chmod", "600", RUNTIME_CONFIG]).status.success());

    // Another network's config sorting first in the runtime's conf dir would take every pod: the join stops in
    // preflight, says which file, and changes nothing (the file is not wkjoin's to remove).
    let foreign = format!("{conf_dir}/05-foreign.conflist");
    let put = lab.exec(W, &["sh", "-c", &format!("mkdir -p {conf_dir} && echo '{{}}' > {foreign}")]);
    assert!(put.status.success());
    let stopped = Command::new(lab.repo.join("scripts/lab"))
        .args(["join", W, "--no-validate"])
        .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
        .output()
        .unwrap();
    let said = text(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{said}");
    assert!(said.contains("05-foreign.conflist") && said.contains("nothing was changed"), "{said}");
    assert!(runtime_config(lab, W) == original, "a stopped join changed the runtime's config");
    assert!(lab.exec(W, &["rm", &foreign]).status.success(), "the foreign file must still be there");
    assert!(!lab.worker_root(W).join("wkjoin-state.json").exists(), "a stopped join left a state file");

    let started = Instant::now();
    let out = text(&lab_cmd(lab, &["join", W, "--no-validate"]));
    eprintln!("bare → Ready in {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.contains(&format!("node {W} joined")), "{out}");
    assert!(ready(lab), "{W} is not Ready after join:\n{out}");

    assert!(out.contains(&format!("the runtime's sandbox image is now {PAUSE}")), "{out}");
    assert_eq!(mode(lab), "600", "the rewritten runtime config is readable by others");

    let again = text(&lab_cmd(lab, &["join", W, "--no-validate"]));
    assert!(again.contains("nothing changed"), "a second join changed something:\n{again}");
    assert!(again.matches("unchanged").count() >= 5, "{again}");

    // A pod on the node gets an address in its pod CIDR and answers the master across the host-gw routes.
    let cidr = lab.kubectl(&["get", "node", W, "-o", "jsonpath={.spec.podCIDR}"]);
    let name = format!("wkjt-join-{}", std::process::id());
    let pod = web_pod(lab, W, &name);
    let ip = lab.kubectl(&["get", "pod", &pod.1, "-o", "jsonpath={.status.podIP}"]);
    let net: ipnet::IpNet = cidr.trim().parse().unwrap();
    assert!(net.contains(&ip.trim().parse::<std::net::IpAddr>().unwrap()), "pod IP {ip} outside {cidr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = lab.exec("master", &["curl", "-fsS", "--max-time", "3", &format!("http://{}/", ip.trim())]);
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("hostname: {name}")));
            break;
        }
        assert!(Instant::now() < deadline, "the master cannot reach pod {ip} on {W}: no host-gw route?");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_runtime_agrees(lab, W, &conf_dir);
    drop(pod);

    let out = text(&lab_cmd(lab, &["reset", W]));
    eprintln!("{out}");
    assert_bare(lab);
    assert!(
        runtime_config(lab, W) == original,
        "reset did not restore {RUNTIME_CONFIG} byte for byte:\n{}",
        String::from_utf8_lossy(&runtime_config(lab, W))
    );
    assert!(!lab.worker_root(W).join("backup/containerd-config.toml").exists(), "the backup is left");
    assert_eq!(mode(lab), "600", "the restored runtime config is readable by others");
    assert!(lab.exec(W, &["chmod", &stock_mode, RUNTIME_CONFIG]).status.success());
    let not_ready =
        lab.kubectl(&["get", "node", W, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_ne!(not_ready.trim(), "True", "reset left the Node Ready");
    let again = text(&lab_cmd(lab, &["reset", W]));
    assert!(again.contains("nothing to reset"), "{again}");

    // A join killed (its whole process group, SIGKILL) is resumed by running it again: after fetch, after
    // routes, and mid-start (the supervisor runs, the node is not Ready yet). The last one leaves the node joined,
    // as the lab's other end-to-end tests expect.
    let state = lab.worker_root(W).join("wkjoin-state.json");
    let recorded = |step: &'static str| {
        let state = state.clone();
        move || {
            std::fs::read_to_string(&state)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["steps"][step].is_object())
        }
    };
    let supervisor = lab.worker_root(W).join("run/supervisor.pid");
    let points: [(&str, Reached, &str); 3] = [
        ("after fetch", Box::new(recorded("fetch")), "fetch"),
        ("after routes", Box::new(recorded("routes")), "routes"),
        ("mid-start", Box::new(move || supervisor.exists()), "routes"),
    ];
    for (i, (point, reached, kept)) in points.iter().enumerate() {
        if i > 0 {
            lab_cmd(lab, &["reset", W]);
            assert_bare(lab);
        }
        kill_join_when(lab, point, reached);
        let resumed = text(&lab_cmd(lab, &["join", W, "--no-validate"]));
        assert!(resumed.contains(&format!("{kept:<8} unchanged")), "the join killed {point} redid {kept}:\n{resumed}");
        assert!(resumed.contains(&format!("node {W} joined")), "{resumed}");
        assert!(ready(lab), "{W} is not Ready after the join killed {point} was resumed");
    }
}

/// Whether a join got to the point where it is to be killed.
type Reached = Box<dyn Fn() -> bool>;

/// Starts `scripts/lab join` and SIGKILLs its whole process group as soon as `reached()`.
fn kill_join_when(lab: &Lab, point: &str, reached: &dyn Fn() -> bool) {
    let mut join = Command::new(lab.repo.join("scripts/lab"));
    join.args(["join", W, "--no-validate"])
        .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut join, 0);
    let mut child = join.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !reached() {
        assert!(Instant::now() < deadline, "the join never got {point}");
        assert!(child.try_wait().unwrap().is_none(), "the join ended before it could be killed {point}");
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// An admin pastes `kubeadm token create --print-join-command` with `kubeadm` replaced by `wkjoin`: on worker-1,
/// whose containerd is exactly Debian's, the join changes only what it must in the runtime, and reset undoes it.
#[test]
#[ignore = "needs the lab: scripts/lab up"]
fn lab_kubeadm_join_command_pasted_joins_a_stock_worker_and_reset_restores_its_runtime() {
    const W1: &str = "worker-1";
    let lab = Lab::get();
    let _lock = lab.lock(W1);
    lab_cmd(lab, &["reset", W1]);
    let stock = runtime_config(lab, W1);
    let stock_text = String::from_utf8_lossy(&stock).into_owned();
    assert_eq!(toml_value(&stock_text, "sandbox_image"), None, "worker-1 runs containerd's defaults:\n{stock_text}");

    let printed = text(&lab_cmd(lab, &["join-command"]));
    let line = printed.lines().find(|l| l.starts_with("kubeadm join ")).unwrap_or_else(|| panic!("{printed}"));
    assert!(line.contains("--token ") && line.contains("--discovery-token-ca-cert-hash sha256:"), "{line}");
    let pasted: Vec<&str> = line.split_whitespace().skip(2).collect();
    let csrs_before = lab.kubectl(&["get", "csr", "-o", "jsonpath={.items[*].metadata.name}"]);
    let mut args = vec!["join", W1, "--no-validate", "--paste"];
    args.extend(&pasted);

    // Stopped in preflight after the token got the node its credential: the message says so, and reset
    // removes that credential (it is recorded as wkjoin's).
    let foreign = "/etc/cni/net.d/05-foreign.conflist";
    assert!(lab.exec(W1, &["sh", "-c", &format!("echo '{{}}' > {foreign}")]).status.success());
    let stopped = Command::new(lab.repo.join("scripts/lab"))
        .args(&args)
        .env("WKJOIN", assert_cmd::cargo::cargo_bin("wkjoin"))
        .output()
        .unwrap();
    let said = text(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{said}");
    assert!(said.contains("only the node's credentials were installed"), "{said}");
    let credential = lab.worker_root(W1).join("config");
    assert!(credential.exists(), "{said}");
    lab_cmd(lab, &["reset", W1]);
    assert!(!credential.exists(), "reset left the credential the token got");
    assert!(lab.exec(W1, &["rm", foreign]).status.success());

    let out = text(&lab_cmd(lab, &args));
    assert!(out.contains(&format!("node {W1} joined")), "{out}");
    assert!(out.contains("bootstrap token"), "the credential did not come from the token:\n{out}");
    assert!(
        out.contains(&format!("the runtime's sandbox image is now {PAUSE} (was registry.k8s.io/pause:3.6")),
        "{out}"
    );
    let ready = lab.kubectl(&["get", "node", W1, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready.trim(), "True", "{out}");
    // The node's credential is its own, from the CSR (not the admin's, not a minted file).
    let token_id = pasted[pasted.iter().position(|a| *a == "--token").unwrap() + 1].split('.').next().unwrap();
    let users =
        lab.kubectl(&["get", "csr", "-o", r#"jsonpath={range .items[*]}{.metadata.name}={.spec.username}{"\n"}{end}"#]);
    let new: Vec<&str> =
        users.lines().filter(|l| !csrs_before.split_whitespace().any(|b| l.starts_with(&format!("{b}=")))).collect();
    assert!(
        new.iter().any(|l| l.ends_with(&format!("=system:bootstrap:{token_id}"))),
        "no new CSR made with bootstrap token {token_id}: {new:?}"
    );

    // A pod gives the runtime a sandbox to show.
    let pod = web_pod(lab, W1, &format!("wkjt-paste-{}", std::process::id()));
    assert_runtime_agrees(lab, W1, "/etc/cni/net.d");
    // Pasting the same command again changes nothing and makes no new CSR: the node's credential is reused.
    let again = text(&lab_cmd(lab, &args));
    assert!(again.contains("using the node's credentials already in") && again.contains("nothing changed"), "{again}");
    let backup =
        std::fs::read(lab.worker_root(W1).join("backup/containerd-config.toml")).expect("the original is kept");
    assert_eq!(backup, stock, "the backup is not the original config");
    drop(pod);

    lab_cmd(lab, &["reset", W1]);
    assert!(runtime_config(lab, W1) == stock, "reset did not restore worker-1's stock config byte for byte");
    // Leave worker-1 joined, as the lab's other end-to-end tests expect.
    lab_cmd(lab, &["join", W1, "--no-validate"]);
}
