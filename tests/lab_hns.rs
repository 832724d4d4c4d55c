//! The guide's #1 Windows failure ("Unable to find Hns Network specified by cbr0"), shown impossible: wkjoin's
//! own Windows code creates the pod network and its host endpoint, and the real kube-proxy.exe v1.20.2
//! (winkernel), given the command line and environment of wkjoin's kube-proxy service, finds that network by
//! name and programs HNS load balancers for the lab's Services. HNS is a stand-in (scripts/wine/hns-standin:
//! computenetwork.dll and vmcompute.dll keeping objects in a state dir shared by processes; it programs nothing),
//! and kube-proxy runs as a console process: wine's service manager loses kube-proxy.exe right after it reports
//! RUNNING (no log line), so `--windows-service` (its SCM hook, nothing else) is the one flag left out.
//! Run by scripts/test after `lab up`, in the HNS prefix: `WKJOIN_WINE_HNS=1`, `-- --ignored lab_hns_`, with
//! `WKJOIN_LAB_NODE_KUBECONFIG` a node credential (`scripts/lab credential worker-1`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use wkjoin::apply::{self, Options};
use wkjoin::cluster::Offline;
use wkjoin::host::Native;
use wkjoin::layout::Os;
use wkjoin::plan::{Action, Plan, ServiceSpec, Step};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};
use wkjoin::version::KubeVersion;

/// A fact of the lab (`scripts/lab env`), as a Windows path where it is one; missing fails the test.
fn lab(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run under `eval \"$(scripts/lab env)\"`"))
}

/// wine maps the Unix root to drive Z:.
fn z(unix: &str) -> PathBuf {
    PathBuf::from(format!("Z:{}", unix.replace('/', "\\")))
}

fn settings(root: &Path) -> Settings {
    let p = PartialSettings {
        node_name: Some("win-hns-1".into()),
        node_ip: Some("172.30.0.31".parse().unwrap()),
        kubernetes_version: Some("v1.20.2".parse().unwrap()),
        cluster_cidr: Some(lab("WKJOIN_LAB_CLUSTER_CIDR").parse().unwrap()),
        service_cidr: Some(lab("WKJOIN_LAB_SERVICE_CIDR").parse().unwrap()),
        pod_cidr: Some("10.244.31.0/24".parse().unwrap()),
        ..Default::default()
    };
    let root = root.display().to_string();
    resolve(Os::Windows, Some(&root), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The stand-in's state (it may be mid-write: read again until it parses).
fn state(dir: &Path) -> Value {
    for _ in 0..100 {
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str(&text) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no readable state in {}", dir.display())
}

fn list<'a>(state: &'a Value, kind: &str) -> Vec<&'a Value> {
    state[kind].as_array().map(|l| l.iter().collect()).unwrap_or_default()
}

/// The kube-proxy service of the plan, started as a console process (see the module doc) with its own
/// environment plus the stand-in's switch.
fn kube_proxy(spec: &ServiceSpec, env: &[(&str, &str)], standin: &Path, stderr: &Path) -> Child {
    let args: Vec<&String> = spec.args.iter().filter(|a| *a != "--windows-service").collect();
    Command::new(&spec.program)
        .args(args)
        .envs(&spec.env)
        .envs(env.iter().copied())
        .env("WKJOIN_HNS_STANDIN", standin)
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("start kube-proxy.exe")
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the lab and the HNS prefix: scripts/test runs it (WKJOIN_WINE_HNS=1, -- --ignored lab_hns_)"]
fn lab_hns_the_real_kube_proxy_finds_wkjoins_network_and_programs_the_lab_services() {
    let root = tempfile::tempdir().unwrap();
    let standin = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let l = s.layout();
    // What fetch and config would have installed: the node binaries, and a node credential (CN=system:node:…, the
    // identity wkjoin gives kube-proxy; a lab worker's here, minted by scripts/test).
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    let bin = z(&lab("WKJOIN_LAB_WIN_BIN"));
    std::fs::copy(bin.join("kube-proxy.exe"), root.path().join("kube-proxy.exe")).expect("the lab's kube-proxy.exe");
    std::fs::copy(z(&lab("WKJOIN_LAB_NODE_KUBECONFIG")), l.kubeconfig()).unwrap();

    let plan = wkjoin::start::services::plan(&s, Some(KubeVersion::new(1, 20, 2)), &s.pause_image);
    let spec = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::InstallService(spec) if spec.name == "kube-proxy" => Some(spec.clone()),
            _ => None,
        })
        .expect("the plan installs kube-proxy");
    assert_eq!(spec.env.get("KUBE_NETWORK").map(String::as_str), Some("cbr0"), "{spec:?}");
    // The pod network as start makes it, through wkjoin's own HNS code (wine has no vNIC to wait for or to
    // forward on: those two actions are not run).
    let mut network = Plan::new(Step::Start, "pod network");
    network.actions = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateHnsNetwork { .. } | Action::CreateHostEndpoint { .. }))
        .cloned()
        .collect();
    assert_eq!(network.actions.len(), 2, "{:#?}", plan.actions);
    // SAFETY: this test is the only one of its run (`--ignored lab_hns_`); the stand-in reads the variable.
    unsafe { std::env::set_var("WKJOIN_HNS_STANDIN", standin.path()) };
    let out = block_on(apply::apply(&network, Os::Windows, &mut Native, &mut Offline, &Options::default()));
    let out = out.expect("wkjoin makes the pod network through the stand-in");
    assert_eq!(out.created_networks, ["cbr0"]);
    let made = state(standin.path());
    let networks = list(&made, "networks");
    assert_eq!(networks.len(), 1, "{made:#}");
    let network_id = networks[0]["ID"].as_str().unwrap().to_string();

    // A kube-proxy told another network name waits for it and programs nothing: the guide's failure.
    let log = PathBuf::from(l.log_dir()).join("kube-proxy.log");
    let stderr = PathBuf::from(l.log_dir()).join("kube-proxy.stderr");
    {
        let _wrong = Kill(kube_proxy(&spec, &[("KUBE_NETWORK", "vxlan0")], standin.path(), &stderr));
        let text = wait_for(Duration::from_secs(60), || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            t.contains("Unable to find HNS Network specified by vxlan0").then_some(t)
        });
        assert!(text.is_some(), "kube-proxy with KUBE_NETWORK=vxlan0 never said it could not find it");
    }
    assert!(list(&state(standin.path()), "loadbalancers").is_empty(), "a load balancer without the network");
    std::fs::remove_file(&log).unwrap();

    // wkjoin's service definition: kube-proxy finds cbr0 and programs the kubernetes Service (the API server
    // as its one endpoint, a remote one on wkjoin's network) and kube-dns.
    let kp = Kill(kube_proxy(&spec, &[], standin.path(), &stderr));
    let api = lab("WKJOIN_LAB_API");
    let (api_ip, api_port) = api.trim_start_matches("https://").split_once(':').unwrap();
    let service_ip = first_address(&lab("WKJOIN_LAB_SERVICE_CIDR"));
    let found = wait_for(Duration::from_secs(150), || {
        let st = state(standin.path());
        let lb =
            list(&st, "loadbalancers").into_iter().find(|lb| lb["FrontendVIPs"][0] == service_ip.as_str())?.clone();
        Some((st, lb))
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr_text = std::fs::read_to_string(&stderr).unwrap_or_default();
    let (st, lb) = found.unwrap_or_else(|| {
        panic!("no load balancer for {service_ip} in 150 s; kube-proxy's log:\n{log_text}\nstderr:\n{stderr_text}")
    });
    assert_eq!(lb["PortMappings"][0]["ExternalPort"], 443, "{lb:#}");
    assert_eq!(lb["PortMappings"][0]["InternalPort"].to_string(), api_port, "{lb:#}");
    let backend = lb["HostComputeEndpoints"][0].as_str().expect("a backend endpoint");
    let endpoint = list(&st, "endpoints").into_iter().find(|e| e["ID"] == backend).expect("the backend exists");
    assert_eq!(endpoint["IpConfigurations"][0]["IpAddress"], api_ip, "{endpoint:#}");
    assert_eq!(endpoint["HostComputeNetwork"], network_id.as_str(), "on wkjoin's network: {endpoint:#}");
    assert!(!log_text.contains("Unable to find HNS Network"), "{log_text}");
    let dns = lab("WKJOIN_LAB_DNS");
    assert!(list(&st, "loadbalancers").iter().any(|lb| lb["FrontendVIPs"][0] == dns.as_str()), "{st:#}");

    // reset's plan for the network start recorded: the host endpoint, then the network, through the same code.
    drop(kp);
    let observed = wkjoin::reset::Observed { state_file: true, hns_network: Some("cbr0".into()), ..Default::default() };
    let mut undo = wkjoin::reset::plan(&s, &observed, &Default::default());
    undo.actions.retain(|a| matches!(a, Action::RemoveHostEndpoint { .. } | Action::RemoveHnsNetwork { .. }));
    assert_eq!(undo.actions.len(), 2, "{undo:#?}");
    block_on(apply::apply(&undo, Os::Windows, &mut Native, &mut Offline, &Options::default())).expect("reset");
    let after = state(standin.path());
    assert!(list(&after, "networks").is_empty(), "{after:#}");
    assert!(!list(&after, "endpoints").iter().any(|e| e["Name"] == "cbr0_ep"), "{after:#}");
    // SAFETY: as above.
    unsafe { std::env::remove_var("WKJOIN_HNS_STANDIN") };
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

fn first_address(cidr: &str) -> String {
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    let mut octets = net.network().octets();
    octets[3] += 1;
    std::net::Ipv4Addr::from(octets).to_string()
}
