//! The guide's #1 Windows failure ("Unable to find Hns Network specified by cbr0"), shown impossible: wkjoin's
//! own Windows code creates the pod network and its host endpoint, installs and starts kube-proxy as an SCM
//! service from the plan's own service definition, and the real kube-proxy.exe v1.20.2 (winkernel) finds that
//! network by name and programs HNS load balancers for the lab's Services; reset's actions then stop and remove
//! the service and the network. HNS is a stand-in (scripts/wine/hns-standin: computenetwork.dll and vmcompute.dll
//! keeping objects in a state dir shared by processes; it programs nothing); the service manager is wine's, which
//! passes no `Environment` value to a service (so the flag `--network-name`, not `KUBE_NETWORK`, is what reaches
//! kube-proxy here), and kubelet is not run (the service's dependency on it is dropped).
//! Run by scripts/test after `lab up`, in the HNS prefix: `WKJOIN_WINE_HNS=1`, `-- --ignored lab_hns_`, with
//! `WKJOIN_LAB_NODE_KUBECONFIG` a node credential (`scripts/lab credential worker-1`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use wkjoin::apply::{self, Options};
use wkjoin::cluster::Offline;
use wkjoin::host::{self, Manager, Native, System};
use wkjoin::layout::Os;
use wkjoin::plan::{Action, Plan, ServiceSpec, Step};
use wkjoin::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};
use wkjoin::version::KubeVersion;

/// A fact of the lab (`scripts/lab env`); missing fails the test.
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

/// The plan's kube-proxy told another network (flag and variable), as a console process.
fn kube_proxy_on(spec: &ServiceSpec, network: &str, stderr: &Path) -> Child {
    let args = spec
        .args
        .iter()
        .filter(|a| *a != "--windows-service")
        .map(|a| if a.starts_with("--network-name=") { format!("--network-name={network}") } else { a.clone() });
    Command::new(&spec.program)
        .args(args)
        .envs(&spec.env)
        .env("KUBE_NETWORK", network)
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("start kube-proxy.exe")
}

/// Names the stand-in's state dir for every process of the prefix, services included, until dropped.
struct StandinFile(PathBuf);

impl StandinFile {
    fn new(dir: &Path) -> StandinFile {
        let file = PathBuf::from(std::env::var("SystemRoot").expect("SystemRoot")).join("hns-standin.txt");
        std::fs::write(&file, dir.display().to_string()).unwrap();
        StandinFile(file)
    }
}

impl Drop for StandinFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stops and removes the kube-proxy service if the test ends before reset did.
struct RemoveService;

impl Drop for RemoveService {
    fn drop(&mut self) {
        let _ = host::stop_service("kube-proxy");
        let _ = host::delete_service("kube-proxy");
    }
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
    let _named = StandinFile::new(standin.path());
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
        let _wrong = Kill(kube_proxy_on(&spec, "vxlan0", &stderr));
        let text = wait_for(Duration::from_secs(90), || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            t.contains("Unable to find HNS Network specified by vxlan0").then_some(t)
        });
        assert!(text.is_some(), "kube-proxy with KUBE_NETWORK=vxlan0 never said it could not find it");
    }
    assert!(list(&state(standin.path()), "loadbalancers").is_empty(), "a load balancer without the network");
    std::fs::remove_file(&log).unwrap();

    // wkjoin's service definition, installed and started by wkjoin's SCM code: kube-proxy finds cbr0 and programs
    // the kubernetes Service (the API server as its one endpoint, a remote one on wkjoin's network) and kube-dns.
    let _cleanup = RemoveService;
    let mut service = spec.clone();
    service.depends_on.clear();
    let mut run = Plan::new(Step::Start, "kube-proxy");
    run.actions =
        vec![Action::InstallService(service), Action::StartService { name: "kube-proxy".into(), restart: false }];
    let mut scm = System::new(Manager::Scm, wkjoin::start::supervisor_files(&l, false), Vec::new());
    block_on(apply::apply(&run, Os::Windows, &mut scm, &mut Offline, &Options::default())).expect("kube-proxy service");
    let api = lab("WKJOIN_LAB_API");
    let (api_ip, api_port) = api.trim_start_matches("https://").split_once(':').unwrap();
    let service_ip = first_address(&lab("WKJOIN_LAB_SERVICE_CIDR"));
    let dns = lab("WKJOIN_LAB_DNS");
    // kube-proxy programs one Service after another, in no fixed order: wait for both.
    let found = wait_for(Duration::from_secs(150), || {
        let st = state(standin.path());
        let front = |vip: &str| list(&st, "loadbalancers").into_iter().find(|lb| lb["FrontendVIPs"][0] == vip).cloned();
        let (lb, _dns) = (front(&service_ip)?, front(&dns)?);
        Some((st.clone(), lb))
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr_text = std::fs::read_to_string(&stderr).unwrap_or_default();
    let (st, lb) = found.unwrap_or_else(|| {
        panic!("no load balancers for {service_ip} and {dns} in 150 s; kube-proxy's log:\n{log_text}\nstderr:\n{stderr_text}")
    });
    assert_eq!(lb["PortMappings"][0]["ExternalPort"], 443, "{lb:#}");
    assert_eq!(lb["PortMappings"][0]["InternalPort"].to_string(), api_port, "{lb:#}");
    let backend = lb["HostComputeEndpoints"][0].as_str().expect("a backend endpoint");
    let endpoint = list(&st, "endpoints").into_iter().find(|e| e["ID"] == backend).expect("the backend exists");
    assert_eq!(endpoint["IpConfigurations"][0]["IpAddress"], api_ip, "{endpoint:#}");
    assert_eq!(endpoint["HostComputeNetwork"], network_id.as_str(), "on wkjoin's network: {endpoint:#}");
    assert!(!log_text.contains("Unable to find HNS Network"), "{log_text}");

    // reset's plan for what start made: the service stopped and removed, then the host endpoint and the network.
    let observed = wkjoin::reset::Observed {
        state_file: true,
        hns_network: Some("cbr0".into()),
        services: vec!["kube-proxy".into()],
        ..Default::default()
    };
    let mut undo = wkjoin::reset::plan(&s, &observed, &Default::default());
    undo.actions.retain(|a| {
        matches!(
            a,
            Action::StopService { .. }
                | Action::RemoveService { .. }
                | Action::RemoveHostEndpoint { .. }
                | Action::RemoveHnsNetwork { .. }
        )
    });
    assert_eq!(undo.actions.len(), 4, "{undo:#?}");
    block_on(apply::apply(&undo, Os::Windows, &mut scm, &mut Offline, &Options::default())).expect("reset");
    assert!(!host::service_active(Manager::Scm, "kube-proxy"), "kube-proxy still runs after reset");
    let after = state(standin.path());
    assert!(list(&after, "networks").is_empty(), "{after:#}");
    assert!(!list(&after, "endpoints").iter().any(|e| e["Name"] == "cbr0_ep"), "{after:#}");
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
