//! The pod-network files wkjoin writes, read by the upstream code that reads them in production: libcni (the
//! kubelet's, vendored by Kubernetes 1.20, and Debian's 1.x that containerd builds with), host-local's allocator,
//! win-bridge's pkg/hns and hcsshim's hcn types. hcn and pkg/hns compile for Windows only, so the Windows checker
//! runs under wine. scripts/upstream/build builds both checkers (scripts/test runs it first); without them these
//! tests fail with the command that builds them: they never skip. (Linux runs them: they start wine themselves.)
#![cfg(target_os = "linux")]

use crate::util::{PLAN_NODE as NODE, stdout_of, wkjoin};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use wkjoin::layout::Os;
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Runtime, resolve};

const BUILD: &str = "scripts/upstream/build";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the checkers built from the current sources, or a failure that says how to build them.
fn checkers() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let out = Command::new(repo().join(BUILD)).arg("--check").output().map_err(|e| format!("{BUILD}: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(Path::new(stdout.lines().last().unwrap_or_default()).join("bin"))
    });
    match dir {
        Ok(d) => d,
        Err(e) => panic!("the upstream checkers are not built: {e}\nbuild them with: {BUILD}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Checker {
    /// cnicheck for Linux: both libcni versions and host-local.
    Linux,
    /// cnicheck.exe under wine: that, plus win-bridge's pkg/hns and hcsshim's hcn.
    Windows,
}

fn run(checker: Checker, check: &str, file: &Path) -> Output {
    let mut cmd = match checker {
        Checker::Linux => {
            let mut c = Command::new(checkers().join("cnicheck"));
            c.arg(check).arg(file);
            c
        }
        Checker::Windows => {
            // The project's wine prefix and settings, as every Windows test run gets them.
            let mut c = Command::new("bash");
            c.current_dir(repo()).arg("-c").arg(r#"source scripts/wine-env >&2 && exec wine "$@""#).arg("wine");
            c.arg(checkers().join("cnicheck.exe")).arg(check).arg(wine_path(file));
            c
        }
    };
    let out = cmd.output().unwrap_or_else(|e| panic!("{checker:?} checker: {e}"));
    if matches!(checker, Checker::Windows) && out.status.code() == Some(127) {
        panic!("wine is missing: run scripts/setup, then {BUILD}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// wine maps the Unix root to drive Z:.
fn wine_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// What the checker made of the file; fails the test with the upstream error when upstream rejected it.
fn accepted(checker: Checker, check: &str, name: &str, contents: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, contents).unwrap();
    let out = run(checker, check, &file);
    assert!(
        out.status.success(),
        "{checker:?} checker rejected {name}:\n{}\n--- {name} ---\n{contents}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the checker prints JSON")
}

/// The upstream error for a file upstream must reject.
fn rejected(checker: Checker, check: &str, contents: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rejected.conflist");
    std::fs::write(&file, contents).unwrap();
    let out = run(checker, check, &file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{checker:?} checker accepted it:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The start step's actions of `wkjoin join --dry-run -o json`: what the binary itself would write.
fn start_actions(extra: &[&str]) -> Vec<Value> {
    let json = stdout_of(
        wkjoin().args(["join", "--dry-run", "-o", "json", "--kubeconfig", "node.kubeconfig"]).args(extra).args(NODE),
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let start = v["plans"].as_array().unwrap().iter().find(|p| p["step"] == "start").expect("a start step");
    start["actions"].as_array().unwrap().clone()
}

fn cni_config(actions: &[Value]) -> String {
    let w = actions
        .iter()
        .find(|a| {
            a["action"] == "write-file" && a["path"].as_str().unwrap().ends_with(wkjoin::start::network::CNI_CONF_FILE)
        })
        .expect("the start step writes the CNI config");
    w["contents"]["text"].as_str().unwrap().to_string()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|s| s.as_str().unwrap()).collect()
}

fn policies<'a>(summary: &'a Value, ty: &str) -> Vec<&'a Value> {
    let wb = &summary["containerd"]["plugins"][0]["winBridge"];
    wb["policies"].as_array().unwrap().iter().filter(|p| p["type"] == ty).map(|p| &p["settings"]).collect()
}

#[test]
fn windows_plan_files_for_containerd_are_accepted_by_libcni_host_local_win_bridge_and_hcsshim() {
    let actions = start_actions(&["--os", "windows"]);
    let conf = cni_config(&actions);

    let linux = accepted(Checker::Linux, "conflist", "10-wkjoin.conflist", &conf);
    for view in [&linux["kubeletLibcni"], &linux["containerd"]] {
        assert_eq!((view["name"].as_str(), view["cniVersion"].as_str()), (Some("cbr0"), Some("0.3.1")), "{view}");
    }
    assert_eq!(strings(&linux["kubeletLibcni"]["plugins"]), ["win-bridge"]);
    let ipam = &linux["containerd"]["plugins"][0]["ipam"];
    // .1 is the platform's, .2 the host endpoint: the first pod gets .3.
    assert_eq!(strings(&ipam["addresses"]), ["10.244.1.3/24"], "{ipam}");

    let win = accepted(Checker::Windows, "conflist", "10-wkjoin.conflist", &conf);
    let wb = &win["containerd"]["plugins"][0]["winBridge"];
    assert_eq!(wb["apiVersion"], 2, "containerd takes the HCN (v2) path: {wb}");
    let proxy = actions.iter().find(|a| a["action"] == "install-service" && a["name"] == "kube-proxy").unwrap();
    assert_eq!(wb["network"], proxy["env"]["KUBE_NETWORK"], "win-bridge and kube-proxy name one HNS network");
    let endpoint = &wb["endpoint"];
    assert_eq!(endpoint["Routes"][0]["NextHop"], "10.244.1.2", "win-bridge's gateway is .2: {endpoint}");
    assert_eq!(endpoint["IpConfigurations"][0]["IpAddress"], "10.244.1.3");
    assert_eq!(endpoint["Dns"]["ServerList"][0], "10.96.0.10");

    let hns = actions.iter().find(|a| a["action"] == "create-hns-network").expect("an HNS network");
    let net = accepted(Checker::Windows, "hns-network", "cbr0.json", hns["definition"].as_str().unwrap());
    assert_eq!((net["name"].as_str(), net["type"].as_str()), (Some("cbr0"), Some("L2Bridge")), "{net}");
    assert_eq!(net["subnets"][0]["prefix"], "10.244.1.0/24");
    assert_eq!(strings(&net["subnets"][0]["routes"]), ["0.0.0.0/0 via 10.244.1.1"]);
    assert!(net["create"].as_str().unwrap().starts_with("hcsshim's checks passed"), "{net}");
}

#[test]
fn win_bridge_makes_the_v2_nat_exceptions_routes_and_port_mappings_from_wkjoins_config() {
    // A node whose interface wkjoin knows: its network joins the NAT exceptions, its name the HNS network.
    let p = PartialSettings {
        node_name: Some("worker-1".into()),
        node_ip: Some("172.30.0.11".parse().unwrap()),
        interface: Some("Ethernet".into()),
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/12".parse().unwrap()),
        runtime: Some(Runtime::Containerd),
        ..Default::default()
    };
    let host =
        HostFacts { interfaces: vec![("Ethernet".into(), "172.30.0.11/24".parse().unwrap())], ..Default::default() };
    let s = resolve(Os::Windows, None, &[(Origin::CommandLine, &p)], &host).unwrap();
    let pod = "10.244.7.0/24".parse().unwrap();

    let win = accepted(
        Checker::Windows,
        "conflist",
        "10-wkjoin.conflist",
        &wkjoin::start::network::windows_cni_config(&s, pod),
    );
    let nat = policies(&win, "OutBoundNAT");
    assert_eq!(nat.len(), 1, "{win}");
    assert_eq!(strings(&nat[0]["Exceptions"]), ["10.244.0.0/16", "10.96.0.0/12", "172.30.0.0/24"]);
    let routes: Vec<(&str, bool)> = policies(&win, "SDNRoute")
        .iter()
        .map(|r| (r["DestinationPrefix"].as_str().unwrap(), r["NeedEncap"].as_bool().unwrap()))
        .collect();
    assert_eq!(routes, [("10.96.0.0/12", true), ("172.30.0.11/32", true)]);
    // The runtime's hostPort (the checker passes 8080 -> 80/tcp) through the portMappings capability.
    let ports = policies(&win, "PortMapping");
    assert_eq!((ports[0]["ExternalPort"].as_u64(), ports[0]["InternalPort"].as_u64()), (Some(8080), Some(80)));
    assert_eq!(ports[0]["Protocol"], 6, "tcp");
    assert_eq!(win["containerd"]["plugins"][0]["winBridge"]["endpoint"]["Routes"][0]["NextHop"], "10.244.7.2");

    let net = accepted(Checker::Windows, "hns-network", "cbr0.json", &wkjoin::start::network::hns_network(&s, pod));
    assert_eq!(net["policies"][0]["type"], "NetAdapterName", "{net}");
    assert_eq!(net["policies"][0]["settings"]["NetworkAdapterName"], "Ethernet");
}

#[test]
fn windows_plan_file_for_dockershim_is_accepted_by_the_kubelets_libcni_and_win_bridge_v1() {
    let conf = cni_config(&start_actions(&["--os", "windows", "--runtime", "docker"]));
    let linux = accepted(Checker::Linux, "conflist", "10-wkjoin.conflist", &conf);
    assert_eq!(strings(&linux["kubeletLibcni"]["plugins"]), ["win-bridge"]);

    let win = accepted(Checker::Windows, "conflist", "10-wkjoin.conflist", &conf);
    let wb = &win["containerd"]["plugins"][0]["winBridge"];
    assert_eq!(wb["apiVersion"], 0, "dockershim takes the HNS (v1) path: {wb}");
    assert_eq!(wb["endpoint"]["GatewayAddress"], "10.244.1.2");
    let nat = policies(&win, "OutBoundNAT");
    assert_eq!(strings(&nat[0]["ExceptionList"]), ["10.244.0.0/16", "10.96.0.0/16"], "{wb}");
    let routes: Vec<&str> = policies(&win, "ROUTE").iter().map(|r| r["DestinationPrefix"].as_str().unwrap()).collect();
    assert_eq!(routes, ["10.96.0.0/16", "172.30.0.11/32"]);
    assert_eq!(policies(&win, "NAT")[0]["ExternalPort"], 8080, "hostPort as an HNS NAT policy");
}

#[test]
fn linux_plan_conflist_is_accepted_by_libcni_and_host_local() {
    let conf = cni_config(&start_actions(&["--os", "linux", "--root-dir", "/var/lib/wkjoin"]));
    let linux = accepted(Checker::Linux, "conflist", "10-wkjoin.conflist", &conf);
    assert_eq!(strings(&linux["kubeletLibcni"]["plugins"]), ["bridge", "portmap"]);
    let plugins = &linux["containerd"]["plugins"];
    assert_eq!(strings(&plugins[0]["ipam"]["addresses"]), ["10.244.1.2/24"], "{plugins}");
    assert_eq!(strings(&plugins[0]["ipam"]["gateways"]), ["10.244.1.1"], "the bridge is the gateway");
    assert_eq!(plugins[1]["runtimeConfig"]["portMappings"][0]["hostPort"], 8080, "portmap gets the hostPort");
}

/// What wkjoin wrote before: a single flat config with no `plugins`, dockershim-era policies, and an ipam without
/// `type`. libcni refused it, so a Windows node never became NetworkReady.
const OLD_FLAT_CONFIG: &str = r#"{
  "cniVersion": "0.2.0",
  "name": "cbr0",
  "type": "win-bridge",
  "capabilities": { "portMappings": true, "dns": true },
  "ipam": { "subnet": "10.244.1.0/24", "routes": [{ "GW": "10.244.1.2" }] },
  "dns": { "Nameservers": ["10.96.0.10"], "Search": ["svc.cluster.local"] },
  "policies": [
    { "Name": "EndpointPolicy", "Value": { "Type": "OutBoundNAT", "ExceptionList": ["10.244.0.0/16", "10.96.0.0/16"] } },
    { "Name": "EndpointPolicy", "Value": { "Type": "ROUTE", "DestinationPrefix": "10.96.0.0/16", "NeedEncap": true } }
  ]
}"#;

#[test]
fn the_checkers_reject_wkjoins_old_flat_windows_config() {
    for checker in [Checker::Linux, Checker::Windows] {
        let err = rejected(checker, "conflist", OLD_FLAT_CONFIG);
        assert!(err.contains("error parsing configuration list: no 'plugins' key"), "{checker:?}: {err}");
    }
}

#[test]
fn the_windows_checker_rejects_v1_policies_on_the_v2_api() {
    // pkg/hns would keep this as an OutBoundNAT without Settings (its unmarshal ignores ExceptionList): the pods
    // would be NATed to everything, the cluster included.
    let conf = r#"{ "cniVersion": "0.3.1", "name": "cbr0", "plugins": [ {
        "type": "win-bridge", "apiVersion": 2,
        "ipam": { "type": "host-local", "subnet": "10.244.1.0/24", "rangeStart": "10.244.1.3" },
        "policies": [ { "name": "EndpointPolicy", "value": { "Type": "OutBoundNAT", "ExceptionList": ["10.244.0.0/16"] } } ]
    } ] }"#;
    let err = rejected(Checker::Windows, "conflist", conf);
    assert!(err.contains(r#"unknown field "ExceptionList""#), "{err}");
}

/// The real `win-bridge.exe` (Debian's containernetworking/plugins 1.1.1 source, built by the checker's script)
/// run for CNI ADD with `config` on stdin under wine; with `hns` (the HNS stand-in's state dir) it runs in the HNS
/// prefix (scripts/wine-env: WKJOIN_WINE_HNS=1) for the pod sandbox namespace `netns`.
fn win_bridge(config: &Value, hns: Option<(&Path, &str)>) -> Output {
    let plugins = checkers().parent().unwrap().join("plugins");
    let mut c = Command::new("bash");
    c.current_dir(repo()).arg("-c").arg(r#"source scripts/wine-env >&2 && exec wine "$@""#).arg("wine");
    c.arg(plugins.join("win-bridge.exe"));
    c.envs([("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "wkjoin-test"), ("CNI_NETNS", "none"), ("CNI_IFNAME", "eth0")]);
    c.env("CNI_PATH", wine_path(&plugins));
    if let Some((state, netns)) = hns {
        c.envs([("WKJOIN_WINE_HNS", "1"), ("CNI_NETNS", netns)]).env("WKJOIN_HNS_STANDIN", wine_path(state));
    }
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("run win-bridge.exe under wine");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), config.to_string().as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// What win-bridge.exe answers without HNS: its error JSON's `msg` (it must fail).
fn win_bridge_add(config: &Value) -> String {
    let out = win_bridge(config, None);
    assert_eq!(out.status.code(), Some(1), "win-bridge.exe without HNS must fail: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: not a CNI error: {stdout}"));
    err["msg"].as_str().unwrap_or_default().to_string()
}

/// The plugin's own config as the runtime hands it over: the list's `name` and `cniVersion` injected (libcni).
fn first_plugin(conflist: &str) -> Value {
    let list: Value = serde_json::from_str(conflist).unwrap();
    let mut plugin = list["plugins"][0].clone();
    plugin["name"] = list["name"].clone();
    plugin["cniVersion"] = list["cniVersion"].clone();
    plugin
}

/// The real win-bridge.exe takes wkjoin's config through its own parsing and picks the path the runtime needs:
/// HCN (v2) for containerd, HNS v1 for dockershim, each asking HNS for the network named `cbr0`; that call is
/// where it stops under wine (no computenetwork.dll, no vmcompute.dll). A config it cannot parse stops earlier.
#[test]
fn the_real_win_bridge_exe_reads_wkjoins_config_and_asks_hns_for_its_network() {
    let v2 = win_bridge_add(&first_plugin(&cni_config(&start_actions(&["--os", "windows"]))));
    assert!(v2.contains("error while getting network cbr0") && v2.contains("hcnEnumerateNetworks"), "{v2}");
    let v1 = win_bridge_add(&first_plugin(&cni_config(&start_actions(&["--os", "windows", "--runtime", "docker"]))));
    assert!(v1.contains("error while getting network cbr0") && v1.contains("hnsCall"), "{v1}");
    // The control: a config win-bridge cannot load never reaches HNS.
    let mut broken = first_plugin(&cni_config(&start_actions(&["--os", "windows"])));
    broken["ipam"] = Value::String("host-local".into());
    let msg = win_bridge_add(&broken);
    assert!(!msg.contains("getting network") && msg.contains("failed to load netconf"), "{msg}");
}

/// The host endpoint's HNS v1 requests are byte for byte (as JSON values, keys' case included) what hcsshim itself
/// sends for flannel's host-gw endpoint: `HNSEndpoint.Create` and `HostAttach(1)` (cnicheck.exe under wine).
#[test]
fn the_host_endpoint_requests_are_what_hcsshim_sends() {
    use wkjoin::host::hns_v1;
    let (name, network, address) = ("cbr0_ep", "22222222-0000-0000-0000-000000000002", "10.244.1.2");
    let input = serde_json::json!({ "Name": name, "VirtualNetwork": network, "IPAddress": address }).to_string();
    let upstream = accepted(Checker::Windows, "hns-v1-requests", "endpoint.json", &input);
    let ours = |c: hns_v1::Call| serde_json::from_str::<Value>(&c.request).unwrap();
    assert_eq!(ours(hns_v1::create_endpoint(name, network, address.parse().unwrap())), upstream["create"]);
    assert_eq!(ours(hns_v1::attach_to_host("33333333")), upstream["attach"]);
}

/// A pod added to wkjoin's network by the real plugins: the network exactly as wkjoin's plan creates it (in the
/// HNS stand-in: scripts/wine/hns-standin, not HNS; it keeps what HCN is asked to make) and the sandbox namespace
/// containerd would have made; then the real win-bridge.exe, with wkjoin's CNI config, runs the real
/// host-local.exe for the address and makes the pod's endpoint through HCN. The endpoint it asks HNS for carries
/// wkjoin's NAT exceptions and routes, sits on wkjoin's network and joins the namespace; the result gives the pod
/// the first address of the range and `.2` as its gateway. (host-local's dataDir is moved to a temporary dir.)
#[test]
fn the_real_win_bridge_exe_and_host_local_exe_add_a_pod_to_wkjoins_network() {
    let actions = start_actions(&["--os", "windows"]);
    let create = actions.iter().find(|a| a["action"] == "create-hns-network").expect("the plan creates the network");
    let mut network: Value = serde_json::from_str(create["definition"].as_str().unwrap()).unwrap();
    let network_id = "5e6f7a8b-0000-4000-8000-00000000c0de";
    network["ID"] = network_id.into();
    let netns = "0d0e0f10-0000-4000-8000-0000000000aa";
    let namespace =
        serde_json::json!({ "ID": netns, "Type": "HostDefault", "SchemaVersion": { "Major": 2, "Minor": 0 } });
    let state = tempfile::tempdir().unwrap();
    let initial = serde_json::json!({ "networks": [network], "namespaces": [namespace] });
    std::fs::write(state.path().join("state.json"), initial.to_string()).unwrap();
    let mut config = first_plugin(&cni_config(&actions));
    config["ipam"]["dataDir"] = wine_path(&state.path().join("ipam")).into();

    let out = win_bridge(&config, Some((state.path(), netns)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let calls = std::fs::read_to_string(state.path().join("calls.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "win-bridge.exe ADD failed: {stdout}\n{}\ncalls:\n{calls}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: not a CNI result: {stdout}"));
    let ipam = &config["ipam"];
    let address = result["ips"][0]["address"].as_str().unwrap_or_default().to_string();
    assert_eq!(address, format!("{}/24", ipam["rangeStart"].as_str().unwrap()), "{result:#}");
    assert_eq!(result["ips"][0]["gateway"], ipam["gateway"], "{result:#}");
    assert_eq!(ipam["gateway"], "10.244.1.2", "upstream's Windows gateway is .2");

    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("state.json")).unwrap()).unwrap();
    let endpoints = after["endpoints"].as_array().expect("an endpoint was made");
    assert_eq!(endpoints.len(), 1, "{after:#}");
    let ep = &endpoints[0];
    assert_eq!(ep["HostComputeNetwork"], network_id, "{ep:#}");
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"].as_str(), address.split('/').next(), "{ep:#}");
    assert_eq!(ep["Routes"][0]["NextHop"], "10.244.1.2", "{ep:#}");
    let policy = |ty: &str| -> Vec<Value> {
        ep["Policies"].as_array().unwrap().iter().filter(|p| p["Type"] == ty).map(|p| p["Settings"].clone()).collect()
    };
    let nat = policy("OutBoundNAT");
    assert_eq!(nat.len(), 1, "{ep:#}");
    assert_eq!(strings(&nat[0]["Exceptions"]), ["10.244.0.0/16", "10.96.0.0/16"], "{ep:#}");
    let routes = policy("SDNRoute");
    assert!(routes.iter().any(|r| r["DestinationPrefix"] == "10.96.0.0/16" && r["NeedEncap"] == true), "{ep:#}");
    assert_eq!(
        after["namespaces"][0]["Resources"][0]["Data"]["ID"], ep["ID"],
        "the endpoint joined the sandbox: {after:#}"
    );
}
