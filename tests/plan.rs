//! `--dry-run` plans, golden-tested. The same tests run natively on Linux and, for the Windows build,
//! under wine, where the Windows plan is the host's own.

use crate::util::{PLAN_NODE as NODE, stdout_of, wkjoin};

#[test]
fn windows_join_plan() {
    let out = stdout_of(
        wkjoin().args(["join", "--dry-run", "--os", "windows", "--kubeconfig", "node.kubeconfig"]).args(NODE),
    );
    golden!("join-windows.txt", out);
}

#[test]
fn windows_join_plan_with_docker_on_old_kubernetes() {
    let out = stdout_of(
        wkjoin()
            .args(["join", "--dry-run", "--os", "windows", "--runtime", "docker", "--network-name", "l2bridge"])
            .args(NODE.iter().map(|a| if *a == "v1.20.2" { "v1.14.3" } else { a }))
            .args(["--root-dir", "D:\\kube"])
            // The build the guide's Docker pause image must match (a Windows Server 2019 node).
            .args(["--windows-build", "17763"]),
    );
    golden!("join-windows-docker-1.14.txt", out);
}

#[test]
fn linux_join_plan() {
    let out = stdout_of(
        wkjoin()
            .args([
                "join",
                "--dry-run",
                "--os",
                "linux",
                "--kubeconfig",
                "node.kubeconfig",
                "--root-dir",
                "/var/lib/wkjoin",
            ])
            .args(["--image-archive", "http://172.30.0.254:8080/images/pause.oci.tar"])
            .args(NODE),
    );
    golden!("join-linux.txt", out);
}

#[test]
fn plans_without_a_pod_cidr_or_exact_version_defer_what_they_cannot_know() {
    let out = stdout_of(wkjoin().args([
        "join",
        "--dry-run",
        "--os",
        "linux",
        "--node-name",
        "w",
        "--kubernetes-version",
        "stable-1.20",
    ]));
    assert!(out.contains("(planned once https://dl.k8s.io/release/stable-1.20.txt names the version)"), "{out}");
    assert!(out.contains("(planned once --kubeconfig names the node's kubeconfig"), "{out}");
    assert!(out.contains("(planned once the installed kubelet reports its version)"), "{out}");
    let out = stdout_of(wkjoin().args([
        "start",
        "--dry-run",
        "--os",
        "linux",
        "--node-name",
        "w",
        "--kubernetes-version",
        "v1.20.2",
    ]));
    assert!(out.contains("wait up to 120s for node w to be given a pod CIDR"), "{out}");
    assert!(
        out.contains("create the pod network cbr0 and its CNI config (planned once the node's pod CIDR is allocated)"),
        "{out}"
    );
}

#[test]
fn json_plan_is_complete_and_typed() {
    let json = stdout_of(
        wkjoin().args(["join", "--dry-run", "-o", "json", "--os", "windows", "--kubeconfig", "k"]).args(NODE),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps: Vec<&str> = v["plans"].as_array().unwrap().iter().map(|p| p["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["fetch", "pause", "config", "routes", "start", "validate"]);
    let start = &v["plans"][4]["actions"];
    let hns = start.as_array().unwrap().iter().find(|a| a["action"] == "create-hns-network").unwrap();
    let def: serde_json::Value = serde_json::from_str(hns["definition"].as_str().unwrap()).unwrap();
    assert_eq!(def["Type"], "L2Bridge");
    let proxy = start
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "kube-proxy" && a["action"] == "install-service")
        .unwrap();
    assert_eq!(proxy["env"]["KUBE_NETWORK"], def["Name"], "one network name for HNS and kube-proxy");
    let yaml = stdout_of(
        wkjoin().args(["join", "--dry-run", "-o", "yaml", "--os", "windows", "--kubeconfig", "k"]).args(NODE),
    );
    let y: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(y, v, "yaml and json carry the same plan");
}

#[test]
fn no_validate_drops_the_last_step() {
    let out = stdout_of(wkjoin().args(["join", "--dry-run", "--no-validate", "--os", "linux"]).args(NODE));
    assert!(out.contains("[5/5] start") && !out.contains("validate:"), "{out}");
}

/// From Kubernetes 1.26 the Windows plan's kubelet and kube-proxy services are `wkjoin.exe log-runner … -- <binary>
/// <args>`: wkjoin's own command line (what the SCM starts) takes exactly those arguments, and hands the binary
/// its flags unchanged, without `--windows-service` (the runner is the service).
#[test]
fn the_windows_1_26_services_are_command_lines_wkjoins_log_runner_accepts() {
    use clap::Parser;
    let json = stdout_of(
        wkjoin()
            .args(["join", "--dry-run", "-o", "json", "--os", "windows", "--kubeconfig", "k"])
            .args(NODE.iter().map(|a| if *a == "v1.20.2" { "v1.29.0" } else { a })),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let start = v["plans"].as_array().unwrap().iter().find(|p| p["step"] == "start").unwrap();
    let services: Vec<&serde_json::Value> =
        start["actions"].as_array().unwrap().iter().filter(|a| a["action"] == "install-service").collect();
    for name in ["kubelet", "kube-proxy"] {
        let sp = services.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} in {start}"));
        let args: Vec<String> =
            sp["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        assert_eq!(sp["program"], "C:\\k\\wkjoin.exe");
        let cli = wkjoin::cli::Cli::try_parse_from(std::iter::once("wkjoin".to_string()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let wkjoin::cli::Command::LogRunner(runner) = cli.command else { panic!("{name}: not log-runner") };
        assert_eq!(runner.service.as_deref(), Some(name));
        assert_eq!(runner.log_file, std::path::PathBuf::from(format!("C:\\k\\logs\\{name}.log")));
        assert_eq!(runner.command[0], format!("C:\\k\\{name}.exe"));
        let after = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(runner.command[1..], args[after + 2..], "{name}: its flags reach the binary unchanged");
        assert!(!runner.command.iter().any(|a| a == "--windows-service"), "{name}");
        assert!(runner.command.iter().any(|a| a.starts_with("--kubeconfig=")), "{name}");
    }
}
