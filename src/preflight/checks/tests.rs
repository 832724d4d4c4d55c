//! The checks judged together: a healthy host of either OS passes them all, and each fact changed from it
//! changes its own check's verdict and no other.

use super::host::GIB;
use super::*;
use crate::layout::Os;
use crate::preflight::facts::{Api, CniConfig, Endpoint, Facts, Feature, PortFact, PortState, Process, WindowsVersion};
use crate::settings::{HostFacts, Origin, PartialSettings, Settings, resolve};
use crate::version::KubeVersion;
use std::time::{Duration, SystemTime};

const T0: Duration = Duration::from_secs(1_800_000_000);

fn settings(os: Os) -> Settings {
    let p = PartialSettings {
        node_name: Some("node-1".into()),
        node_ip: Some("172.30.0.12".parse().unwrap()),
        service_cidr: Some("10.96.0.0/16".parse().unwrap()),
        kubernetes_version: Some("v1.20.2".parse().unwrap()),
        ..Default::default()
    };
    let host = HostFacts { interfaces: vec![("eth0".into(), "172.30.0.12/24".parse().unwrap())], ..Default::default() };
    resolve(os, None, &[(Origin::CommandLine, &p)], &host).unwrap()
}

/// A host where everything is right.
fn healthy(os: Os) -> Facts {
    let s = settings(os);
    let mut f = Facts::empty(os);
    if os == Os::Windows {
        f.windows = Some(WindowsVersion {
            build: Some(17763),
            revision: Some(5830),
            edition: Some("ServerDatacenter".into()),
            product_name: Some("Windows Server 2019 Datacenter".into()),
            installation_type: Some("Server Core".into()),
        });
        f.containers_feature = Feature::Installed;
        f.hyperv_feature = Feature::Missing;
        f.hyperv_guest = Some(false);
    } else {
        f.sysctls = vec![
            ("net.ipv4.ip_forward".into(), Some("1\n".into())),
            ("net.bridge.bridge-nf-call-iptables".into(), Some("1\n".into())),
        ];
    }
    f.cpus = Some(4);
    f.runtime_endpoint = s.runtime_endpoint.clone();
    f.runtime = Some(Endpoint::Reachable);
    f.ports =
        PORTS.iter().map(|(p, svc)| PortFact { port: *p, service: svc.to_string(), state: PortState::Free }).collect();
    f.own_programs = vec![s.layout().binary("kubelet"), s.layout().binary("kube-proxy")];
    f.cni_bin_dir = s.cni_bin_dir.clone();
    f.cni_plugins_found = match os {
        Os::Linux => vec!["bridge".into(), "host-local".into(), "portmap".into()],
        Os::Windows => vec!["win-bridge.exe".into(), "host-local.exe".into()],
    };
    f.disk_free = Some(50 * GIB);
    let t = SystemTime::UNIX_EPOCH + T0;
    f.api = Api::Reachable {
        server: Some("https://172.30.0.10:6443".into()),
        version: "v1.20.2".into(),
        date: Some(t),
        local_time: Some(t + Duration::from_millis(700)),
    };
    f.kubelet_version = Some(KubeVersion::new(1, 20, 2));
    f
}

/// containerd as the lab's stock worker describes itself (or its silence).
fn runtime_facts(answered: bool) -> crate::settings::RuntimeFacts {
    let mut facts = crate::settings::runtime::answered("registry.k8s.io/pause:3.6", "/etc/cni/net.d", None, true);
    if !answered {
        facts = crate::settings::RuntimeFacts {
            answered: false,
            error: Some("connection refused".into()),
            info: crate::settings::RuntimeFacts::blank_info(),
            ..facts
        };
    }
    facts
}

fn status_of(checks: &[Check], name: &str) -> Status {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in {checks:#?}")).status
}

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn healthy_hosts_have_no_failures_and_only_their_os_checks() {
    for os in [Os::Linux, Os::Windows] {
        let checks = evaluate(&healthy(os), &settings(os), &Options::default());
        let bad: Vec<_> = checks.iter().filter(|c| c.status >= Status::Warn).collect();
        assert!(bad.is_empty(), "{os}: {bad:#?}");
        assert!(!any_failed(&checks));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.contains(&"windows-build"), os == Os::Windows, "{names:?}");
        assert_eq!(names.contains(&"ip-forward"), os == Os::Linux, "{names:?}");
        for c in &checks {
            assert_eq!(c.fix.is_some(), c.status >= Status::Warn, "{c:?}");
        }
    }
}

type Case = (&'static str, Os, fn(&mut Facts, &mut Settings, &mut Options), &'static str, Status, &'static str);

/// (case, os, change to the healthy host, check, expected status, text the detail or fix must contain)
#[rustfmt::skip]
const CASES: &[Case] = &[
    ("runtime down", Os::Linux, |f, _, _| f.runtime = Some(Endpoint::Unreachable { reason: "Connection refused".into() }), "runtime", Status::Fail, "--runtime-endpoint"),
    ("npipe on linux", Os::Linux, |f, _, _| f.runtime = Some(Endpoint::Unsupported { reason: "only unix://".into() }), "runtime", Status::Fail, "unix://"),
    ("windows pipe missing", Os::Windows, |f, _, _| f.runtime = Some(Endpoint::Unreachable { reason: "not found".into() }), "runtime", Status::Fail, "Start-Service containerd"),
    ("port held by a stranger", Os::Linux, |f, _, _| f.ports[0].state = PortState::InUse { holder: Some(Process { pid: 42, program: Some("/usr/bin/kubelet".into()) }) }, "port-10250", Status::Fail, "/usr/bin/kubelet (pid 42)"),
    ("port held by our kubelet", Os::Linux, |f, _, _| f.ports[0].state = PortState::InUse { holder: Some(Process { pid: 42, program: Some("/var/lib/wkjoin/bin/kubelet".into()) }) }, "port-10250", Status::Pass, "wkjoin's /var/lib/wkjoin/bin/kubelet"),
    ("port held, holder unknown, services started", Os::Windows, |f, _, _| { f.ports[1].state = PortState::InUse { holder: None }; f.services_started = true; }, "port-10256", Status::Pass, "state file"),
    ("port held, holder unknown, not started", Os::Windows, |f, _, _| f.ports[2].state = PortState::InUse { holder: None }, "port-10249", Status::Fail, "wkjoin reset"),
    ("port not checkable", Os::Linux, |f, _, _| f.ports[0].state = PortState::Unknown { reason: "permission denied".into() }, "port-10250", Status::Warn, "permission denied"),
    ("no forwarding", Os::Linux, |f, _, _| f.sysctls[0].1 = Some("0\n".into()), "ip-forward", Status::Fail, "sysctl -w net.ipv4.ip_forward=1"),
    ("no br_netfilter", Os::Linux, |f, _, _| f.sysctls[1].1 = None, "bridge-nf-call-iptables", Status::Warn, "modprobe br_netfilter"),
    ("bridge-nf off", Os::Linux, |f, _, _| f.sysctls[1].1 = Some("0".into()), "bridge-nf-call-iptables", Status::Warn, "= 0"),
    ("portmap missing", Os::Linux, |f, _, _| { f.cni_plugins_found.pop(); }, "cni-plugins", Status::Fail, "portmap missing"),
    ("win-overlay is not enough", Os::Windows, |f, _, _| f.cni_plugins_found = vec!["win-overlay.exe".into()], "cni-plugins", Status::Fail, "win-bridge.exe, host-local.exe missing"),
    ("no host-local ipam", Os::Windows, |f, _, _| f.cni_plugins_found = vec!["win-bridge.exe".into()], "cni-plugins", Status::Fail, "host-local.exe missing"),
    ("no windows cni", Os::Windows, |f, _, _| f.cni_plugins_found.clear(), "cni-plugins", Status::Fail, "run `wkjoin fetch`"),
    ("a config sorts before ours", Os::Linux, |f, _, _| f.cni_conf_files = vec!["05-other.conflist".into(), "10-wkjoin.conflist".into()], "cni-conf", Status::Fail, "05-other.conflist"),
    ("ours alone in the conf dir", Os::Linux, |f, _, _| f.cni_conf_files = vec!["10-wkjoin.conflist".into()], "cni-conf", Status::Pass, "runtime's CNI conf dir"),
    ("a config sorts after ours", Os::Windows, |f, _, _| f.cni_conf_files = vec!["99-loopback.conf".into()], "cni-conf", Status::Warn, "99-loopback.conf"),
    ("non-configs are not configs", Os::Linux, |f, _, _| f.cni_conf_files = vec!["05-old.conf.bak".into(), "README".into()], "cni-conf", Status::Pass, "10-wkjoin.conflist"),
    ("containerd config unreadable", Os::Linux, |f, s, _| { f.runtime = None; s.runtime_facts = Some(crate::settings::RuntimeFacts { config_error: Some("cannot read /etc/containerd/config.toml: invalid UTF-8".into()), ..runtime_facts(true) }) }, "runtime", Status::Fail, "invalid UTF-8"),
    ("containerd silent over CRI", Os::Linux, |_, s, _| s.runtime_facts = Some(runtime_facts(false)), "runtime", Status::Fail, "does not answer over CRI"),
    ("containerd answers over CRI", Os::Linux, |f, s, _| { f.runtime = None; s.runtime_facts = Some(runtime_facts(true)) }, "runtime", Status::Pass, "sandbox image registry.k8s.io/pause:3.6 (CRI Status)"),
    ("disk nearly full", Os::Linux, |f, _, _| f.disk_free = Some(GIB / 2), "disk", Status::Fail, "0.5 GiB free"),
    ("disk low", Os::Linux, |f, _, _| f.disk_free = Some(3 * GIB), "disk", Status::Warn, "less than 5.0 GiB"),
    ("windows disk low", Os::Windows, |f, _, _| f.disk_free = Some(10 * GIB), "disk", Status::Warn, "less than 20.0 GiB"),
    ("disk unknown", Os::Linux, |f, _, _| f.disk_free = None, "disk", Status::Skip, "could not tell"),
    ("no kubeconfig", Os::Linux, |f, _, _| f.api = Api::NoKubeconfig { reason: "no ~/.kube/config".into() }, "api-server", Status::Fail, "--kubeconfig"),
    ("api unreachable", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: Some("https://10.0.0.1:6443".into()), reason: "timed out".into() }, "api-server", Status::Fail, "https://10.0.0.1:6443: timed out"),
    ("skew unknown without api", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: None, reason: "x".into() }, "version-skew", Status::Skip, "unknown"),
    ("clock unknown without api", Os::Linux, |f, _, _| f.api = Api::Unreachable { server: None, reason: "x".into() }, "clock-skew", Status::Skip, "not reachable"),
    ("kubelet newer", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 21, 0)), "version-skew", Status::Fail, "must not be newer"),
    ("kubelet 3 minors older on 1.20", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 17, 4)), "version-skew", Status::Fail, "at most 2"),
    ("kubelet 2 minors older", Os::Linux, |f, _, _| f.kubelet_version = Some(KubeVersion::new(1, 18, 0)), "version-skew", Status::Pass, "2 minor"),
    ("kubelet 3 minors older on 1.28", Os::Linux, |f, _, _| { f.kubelet_version = Some(KubeVersion::new(1, 25, 0)); if let Api::Reachable { version, .. } = &mut f.api { *version = "v1.28.3".into(); } }, "version-skew", Status::Pass, "3 minor"),
    ("kubelet version unknown", Os::Linux, |f, _, _| f.kubelet_version = None, "version-skew", Status::Skip, "not known yet"),
    ("clock ahead", Os::Linux, |f, _, _| if let Api::Reachable { local_time, date, .. } = &mut f.api { *local_time = date.map(|d| d + Duration::from_secs(30)); }, "clock-skew", Status::Warn, "30s ahead of"),
    ("clock far behind", Os::Windows, |f, _, _| if let Api::Reachable { local_time, date, .. } = &mut f.api { *local_time = date.map(|d| d - Duration::from_secs(900)); }, "clock-skew", Status::Fail, "w32tm /resync"),
    ("no date header", Os::Linux, |f, _, _| if let Api::Reachable { date, .. } = &mut f.api { *date = None; }, "clock-skew", Status::Skip, "no Date header"),
    ("cni config agrees", Os::Windows, |f, _, _| f.cni_config = Some(CniConfig { path: "C:\\k\\cni\\config\\10-wkjoin.conflist".into(), network_name: Some("cbr0".into()), error: None }), "network-name", Status::Pass, "both name network cbr0"),
    ("cni config disagrees", Os::Windows, |f, _, _| f.cni_config = Some(CniConfig { path: "C:\\k\\cni\\config\\10-wkjoin.conflist".into(), network_name: Some("l2bridge".into()), error: None }), "network-name", Status::Fail, "--network-name l2bridge"),
    ("cni config damaged", Os::Linux, |f, _, _| f.cni_config = Some(CniConfig { path: "/x.conflist".into(), network_name: None, error: Some("EOF".into()) }), "network-name", Status::Warn, "EOF"),
    ("KUBE_NETWORK disagrees", Os::Windows, |f, _, _| f.kube_network_env = Some("l2bridge".into()), "network-name", Status::Warn, "KUBE_NETWORK=l2bridge"),
    ("no cni config yet", Os::Linux, |_, _, _| {}, "network-name", Status::Skip, "no CNI config yet"),
    ("node network overlaps cluster", Os::Linux, |_, s, _| s.node_network = Some("10.244.3.0/24".parse().unwrap()), "networks", Status::Fail, "overlaps the node's network"),
    ("node network unknown", Os::Linux, |_, s, _| s.node_network = None, "networks", Status::Warn, "no interface has 172.30.0.12"),
    ("old windows", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(14393), "windows-build", Status::Fail, "older than 17763"),
    ("semi-annual windows", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(19041), "windows-build", Status::Warn, "--hyperv-isolation"),
    ("ltsc2022", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = Some(20348), "windows-build", Status::Pass, "ltsc2022"),
    ("build unreadable", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().build = None, "windows-build", Status::Warn, "CurrentBuildNumber"),
    ("client edition", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().edition = Some("Professional".into()), "windows-edition", Status::Warn, "client edition"),
    ("home edition", Os::Windows, |f, _, _| f.windows.as_mut().unwrap().edition = Some("Core".into()), "windows-edition", Status::Fail, "Windows Home"),
    ("no containers feature", Os::Windows, |f, _, _| f.containers_feature = Feature::Missing, "containers-feature", Status::Fail, "Install-WindowsFeature -Name Containers"),
    ("containers feature unknown", Os::Windows, |f, _, _| f.containers_feature = Feature::Unknown, "containers-feature", Status::Warn, "could not tell"),
    ("hyper-v not needed", Os::Windows, |_, _, _| {}, "hyperv-feature", Status::Skip, "--hyperv-isolation"),
    ("hyper-v needed and missing", Os::Windows, |_, _, o| o.hyperv_isolation = true, "hyperv-feature", Status::Fail, "Install-WindowsFeature -Name Hyper-V"),
    ("hyper-v needed and present", Os::Windows, |f, _, o| { o.hyperv_isolation = true; f.hyperv_feature = Feature::Installed; }, "hyperv-feature", Status::Pass, "installed"),
    ("hyper-v guest", Os::Windows, |f, _, _| f.hyperv_guest = Some(true), "hyperv-guest", Status::Warn, "Set-VMProcessor -VMName 'node-1' -ExposeVirtualizationExtensions $true"),
    ("hyper-v guest, 1 vCPU", Os::Windows, |f, _, _| { f.hyperv_guest = Some(true); f.cpus = Some(1); }, "hyperv-guest", Status::Warn, "at least 2"),
    ("hyper-v guest unknown", Os::Windows, |f, _, _| f.hyperv_guest = None, "hyperv-guest", Status::Skip, "could not tell"),
];

#[test]
fn each_fact_changes_its_check() {
    for (case, os, change, name, want, text) in CASES {
        let (mut f, mut s, mut o) = (healthy(*os), settings(*os), Options::default());
        change(&mut f, &mut s, &mut o);
        let checks = evaluate(&f, &s, &o);
        let c = check(&checks, name);
        assert_eq!(c.status, *want, "{case}: {c:#?}");
        let all = format!("{} {}", c.detail, c.fix.as_deref().unwrap_or(""));
        assert!(all.contains(text), "{case}: `{text}` not in {all}");
        assert_eq!(any_failed(&checks), *want == Status::Fail || checks.iter().any(|c| c.status == Status::Fail));
        // Every other check keeps its healthy verdict: one fact, one check.
        let others = checks.iter().filter(|c| c.name != *name && c.status >= Status::Warn).count();
        let tolerated = usize::from(matches!(*case, "skew unknown without api" | "clock unknown without api"));
        assert_eq!(others, tolerated, "{case}: {checks:#?}");
    }
}

#[test]
fn hyperv_guest_warning_has_all_host_side_commands() {
    let mut f = healthy(Os::Windows);
    f.hyperv_guest = Some(true);
    let checks = evaluate(&f, &settings(Os::Windows), &Options::default());
    let fix = check(&checks, "hyperv-guest").fix.clone().unwrap();
    for cmd in [
        "Set-VMProcessor -VMName 'node-1' -ExposeVirtualizationExtensions $true -Count 2",
        "Set-VMMemory -VMName 'node-1' -DynamicMemoryEnabled $false",
        "Set-VMNetworkAdapter -MacAddressSpoofing On",
    ] {
        assert!(fix.contains(cmd), "{cmd} missing from {fix}");
    }
    assert_eq!(status_of(&checks, "hyperv-guest"), Status::Warn);
}
