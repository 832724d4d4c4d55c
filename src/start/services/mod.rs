//! `wkjoin start`: kubelet and kube-proxy as services, with flags generated from the settings and the
//! installed binary's version (the version table in the reference).

use crate::layout::{Layout, Os};
use crate::plan::{Action, Contents, Plan, Restart, ServiceSpec, Step};
use crate::settings::{Runtime, Settings};
use crate::start::network;
use crate::version::KubeVersion;

pub use crate::settings::extra_flag_name;
use ipnet::IpNet;
use std::collections::BTreeMap;

mod fit;
pub use fit::{NetworkFound, fit_network, network_actions_for};

pub const KUBELET: &str = "kubelet";
pub const KUBE_PROXY: &str = "kube-proxy";
pub use crate::routes::ROUTES_WATCHER;
/// How long the controller manager gets to allocate a pod CIDR.
pub const POD_CIDR_TIMEOUT_SECS: u64 = 120;
/// Windows pods and images start slowly; the node itself should be Ready well within this.
pub const NODE_READY_TIMEOUT_SECS: u64 = 300;

/// The kubelet's command line for this node and kubelet version.
pub fn kubelet_args(s: &Settings, v: KubeVersion, pause_image: &str) -> Vec<String> {
    let l = s.layout();
    let mut a = vec![
        format!("--kubeconfig={}", l.kubeconfig()),
        format!("--hostname-override={}", s.node_name),
        format!("--cluster-dns={}", s.cluster_dns),
        format!("--cluster-domain={}", s.cluster_domain),
        format!("--cert-dir={}", l.pki_dir()),
    ];
    if let Some(ip) = s.node_ip {
        a.push(format!("--node-ip={ip}"));
    }
    // The kubelet API (exec, logs, metrics) only for callers the API server vouches for.
    a.push("--anonymous-auth=false".into());
    a.push("--authentication-token-webhook=true".into());
    a.push("--authorization-mode=Webhook".into());
    a.push(format!("--client-ca-file={}", cluster_ca_file(&l)));
    if !v.at_least(1, 15) {
        a.push("--allow-privileged=true".into());
    }
    match s.runtime {
        Runtime::Containerd => {
            if !v.at_least(1, 27) {
                a.push("--container-runtime=remote".into());
            }
            if let Some(ep) = &s.runtime_endpoint {
                a.push(format!("--container-runtime-endpoint={ep}"));
            }
        }
        Runtime::Docker => {
            // dockershim (< 1.24) runs CNI itself, so it needs to be told where the plugins and config are.
            a.push("--network-plugin=cni".into());
            a.push(format!("--cni-bin-dir={}", s.cni_bin_dir));
            a.push(format!("--cni-conf-dir={}", s.cni_conf_dir));
            a.push("--image-pull-progress-deadline=20m".into());
        }
    }
    if !v.at_least(1, 27) {
        a.push(format!("--pod-infra-container-image={pause_image}"));
    }
    match s.os {
        Os::Linux => {
            // Namespaced lab nodes share one filesystem, so the kubelet's state lives under wkjoin's root.
            a.push(format!("--root-dir={}", l.kubelet_dir()));
            if let Some(root) = &s.cgroup_root {
                a.push(format!("--cgroup-root={root}"));
            }
        }
        Os::Windows => {
            a.push("--resolv-conf=".into());
            a.push("--cgroups-per-qos=false".into());
            a.push("--enforce-node-allocatable=".into());
            a.push("--hairpin-mode=promiscuous-bridge".into());
            a.push("--windows-service".into());
            a.extend(windows_log_args(&l, KUBELET, v));
        }
    }
    a.push("--v=2".into());
    with_extra_flags(a, &s.kubelet_args)
}

/// Where the cluster CA (from the node's kubeconfig) is written for the kubelet's `--client-ca-file`.
pub fn cluster_ca_file(l: &Layout) -> String {
    Layout::new(l.os, l.pki_dir()).join(&["cluster-ca.crt"])
}

/// Adds the user's extra flags: one with the name of a generated flag replaces it in place, others are appended.
pub fn with_extra_flags(mut args: Vec<String>, extra: &[String]) -> Vec<String> {
    let name_of = |a: &str| extra_flag_name(a).map(str::to_string);
    for e in extra {
        let Some(name) = name_of(e) else { continue };
        let flag = format!("--{}", e.trim_start_matches('-'));
        match args.iter().position(|a| name_of(a).as_deref() == Some(name.as_str())) {
            Some(i) => {
                args[i] = flag;
                let mut j = i + 1;
                while j < args.len() {
                    if name_of(&args[j]).as_deref() == Some(name.as_str()) {
                        args.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => args.push(flag),
        }
    }
    args
}

/// Services under the SCM have no console: klog writes to a size-capped file (flag removed in 1.26).
fn windows_log_args(l: &Layout, name: &str, v: KubeVersion) -> Vec<String> {
    let file = Layout::new(l.os, l.log_dir()).join(&[&format!("{name}.log")]);
    if v.at_least(1, 26) {
        vec![]
    } else {
        vec!["--logtostderr=false".into(), format!("--log-file={file}"), "--log-file-max-size=100".into()]
    }
}

/// kube-proxy's command line and environment.
pub fn kube_proxy_args(s: &Settings, v: KubeVersion) -> (Vec<String>, BTreeMap<String, String>) {
    let l = s.layout();
    let mut a = vec![
        format!("--kubeconfig={}", l.kubeconfig()),
        format!("--hostname-override={}", s.node_name),
        format!("--cluster-cidr={}", s.cluster_cidr),
    ];
    let mut env = BTreeMap::new();
    match s.os {
        Os::Linux => a.push("--proxy-mode=iptables".into()),
        Os::Windows => {
            a.push("--proxy-mode=kernelspace".into());
            // The #1 Windows pain point: this must name the same HNS network as the CNI config. The flag (read
            // before KUBE_NETWORK, proxier.go) needs no service environment; the variable is the guide's way.
            a.push(format!("--network-name={}", s.network_name));
            a.push("--windows-service".into());
            a.extend(windows_log_args(&l, KUBE_PROXY, v));
            env.insert("KUBE_NETWORK".to_string(), s.network_name.clone());
        }
    }
    a.push("--v=2".into());
    (with_extra_flags(a, &s.kube_proxy_args), env)
}

fn service(
    s: &Settings,
    name: &str,
    description: &str,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    depends_on: Vec<String>,
) -> ServiceSpec {
    let l = s.layout();
    ServiceSpec {
        name: name.to_string(),
        description: description.to_string(),
        program: l.binary(name),
        args,
        env,
        depends_on,
        log_file: Layout::new(s.os, l.log_dir()).join(&[&format!("{name}.log")]),
        restart: Restart { delay_secs: 5, max_delay_secs: 60 },
    }
}

/// The SCM starts the kubelet only after the container runtime's service (as sig-windows-tools' PrepareNode.ps1
/// installs it); Linux units and the supervisor leave the runtime to the host's own init order.
fn runtime_dependency(s: &Settings) -> Vec<String> {
    match (s.os, s.runtime) {
        (Os::Windows, crate::settings::Runtime::Containerd) => vec!["containerd".into()],
        (Os::Windows, crate::settings::Runtime::Docker) => vec!["docker".into()],
        (Os::Linux, _) => vec![],
    }
}

/// How long the host's address may take to reach the new vEthernet adapter (seconds, as the guide sees it).
pub const HNS_VNIC_WAIT_SECS: u64 = 60;

/// The pod network's actions once the pod CIDR is known.
pub fn network_actions(s: &Settings, pod_cidr: IpNet) -> Vec<Action> {
    let conf_path = Layout::new(s.os, s.cni_conf_dir.clone()).join(&[network::CNI_CONF_FILE]);
    match s.os {
        Os::Linux => vec![
            Action::CreateDir { path: s.cni_conf_dir.clone() },
            Action::WriteFile {
                path: conf_path,
                contents: Contents::Text { text: network::linux_cni_config(s, pod_cidr) },
                private: false,
            },
        ],
        Os::Windows => {
            let mut actions = vec![Action::CreateHnsNetwork {
                name: s.network_name.clone(),
                definition: network::hns_network(s, pod_cidr),
            }];
            // The host is off its network until its address is on the new vNIC: nothing may start before.
            if let Some(address) = s.node_ip {
                actions.push(Action::WaitForAddress { address, timeout_secs: HNS_VNIC_WAIT_SECS });
            }
            // The pods' gateway `.2` is the host's own endpoint on the pod network; both it and the node's vNIC
            // forward between the pods and the rest of the cluster (flannel's host-gw steps 5 to 7).
            let (name, gateway) = network::host_endpoint(s, pod_cidr);
            actions.push(Action::CreateHostEndpoint { network: s.network_name.clone(), name, address: gateway });
            for address in s.node_ip.into_iter().chain([gateway]) {
                actions.push(Action::EnableForwarding { address });
            }
            actions.push(Action::CreateDir { path: s.cni_conf_dir.clone() });
            actions.push(Action::WriteFile {
                path: conf_path,
                contents: Contents::Text { text: network::windows_cni_config(s, pod_cidr) },
                private: false,
            });
            actions
        }
    }
}

/// kubelet first (it registers the node and so gets the pod CIDR), then the pod network, then kube-proxy.
pub fn plan(s: &Settings, kubelet_version: Option<KubeVersion>, pause_image: &str) -> Plan {
    let l = s.layout();
    let mut plan = Plan::new(Step::Start, "pod network, kubelet and kube-proxy as services");
    let Some(v) = kubelet_version else {
        plan.push(Action::Deferred {
            what: "install and start kubelet and kube-proxy with flags for their version".into(),
            needs: "the installed kubelet reports its version".into(),
        });
        return plan;
    };
    plan.push(Action::CreateDir { path: l.log_dir() });
    plan.push(Action::WriteFile {
        path: cluster_ca_file(&l),
        contents: Contents::ClusterCa { kubeconfig: l.kubeconfig() },
        private: false,
    });
    if let (Os::Linux, Some(root)) = (s.os, &s.cgroup_root) {
        plan.push(Action::CreateCgroup { path: root.clone() });
    }
    // wkjoin installs itself beside the node binaries: its services must not depend on where it was run from.
    let wkjoin = l.binary("wkjoin");
    if s.os == Os::Windows {
        plan.push(Action::AllowFirewallPort { rule: "wkjoin kubelet API".into(), protocol: "tcp".into(), port: 10250 });
        plan.push(Action::InstallSelf { path: wkjoin.clone() });
    }
    plan.push(Action::InstallService(captured(
        service(
            s,
            KUBELET,
            "Kubernetes node agent",
            kubelet_args(s, v, pause_image),
            BTreeMap::new(),
            runtime_dependency(s),
        ),
        s,
        v,
    )))
    .push(Action::StartService { name: KUBELET.into(), restart: false });
    match s.pod_cidr {
        Some(pod) => plan.actions.extend(network_actions(s, pod)),
        None => {
            plan.push(Action::AwaitPodCidr { node: s.node_name.clone(), timeout_secs: POD_CIDR_TIMEOUT_SECS }).push(
                Action::Deferred {
                    what: format!("create the pod network {} and its CNI config", s.network_name),
                    needs: "the node's pod CIDR is allocated".into(),
                },
            );
        }
    }
    let (args, env) = kube_proxy_args(s, v);
    plan.push(Action::InstallService(captured(
        service(s, KUBE_PROXY, "Kubernetes service proxy", args, env, vec![KUBELET.into()]),
        s,
        v,
    )))
    .push(Action::StartService { name: KUBE_PROXY.into(), restart: false });
    let mut watcher = service(
        s,
        ROUTES_WATCHER,
        "wkjoin host-gateway routes watcher",
        routes_watcher_args(s),
        BTreeMap::new(),
        vec![],
    );
    watcher.program = wkjoin.clone();
    if s.os == Os::Linux {
        plan.push(Action::InstallSelf { path: wkjoin });
    }
    plan.push(Action::InstallService(watcher))
        .push(Action::StartService { name: ROUTES_WATCHER.into(), restart: false })
        .push(Action::AwaitNodeReady { node: s.node_name.clone(), timeout_secs: NODE_READY_TIMEOUT_SECS });
    plan
}

/// From Kubernetes 1.26 klog has no log-file flags and the SCM captures no output: on Windows the service is
/// `wkjoin.exe log-runner`, which runs the binary (not as a service itself) with its output in the service's
/// log file, rotated at 100 MiB, 5 kept (kube-log-runner's job, as sig-windows-tools wraps the node services).
fn captured(mut spec: ServiceSpec, s: &Settings, v: KubeVersion) -> ServiceSpec {
    if s.os != Os::Windows || !v.at_least(1, 26) {
        return spec;
    }
    let mut args = vec![
        "log-runner".to_string(),
        format!("--service={}", spec.name),
        format!("--log-file={}", spec.log_file),
        "--".into(),
        spec.program.clone(),
    ];
    args.extend(spec.args.into_iter().filter(|a| a != "--windows-service"));
    spec.args = args;
    spec.program = s.layout().binary("wkjoin");
    spec
}

/// `wkjoin routes --watch` for this node: new nodes get routes, departed ones lose them, and the recorded
/// routes are restored when it starts (after a reboot).
pub fn routes_watcher_args(s: &Settings) -> Vec<String> {
    let l = s.layout();
    let mut a = vec![
        "routes".to_string(),
        "--watch".into(),
        format!("--root-dir={}", l.root),
        format!("--kubeconfig={}", l.kubeconfig()),
        format!("--node-name={}", s.node_name),
        format!("--cluster-cidr={}", s.cluster_cidr),
        format!("--service-cidr={}", s.service_cidr),
        format!("--network-name={}", s.network_name),
    ];
    if let Some(ip) = s.node_ip {
        a.push(format!("--node-ip={ip}"));
    }
    if let Some(i) = &s.interface {
        a.push(format!("--interface={i}"));
    }
    if s.os == Os::Windows {
        // wkjoin.exe talks to the SCM itself (a service control handler) instead of being a console program.
        a.push("--windows-service".into());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{HostFacts, Origin, PartialSettings, resolve};

    fn settings(os: Os, runtime: Runtime) -> Settings {
        let p = PartialSettings {
            node_name: Some("win-1".into()),
            node_ip: Some("172.30.0.11".parse().unwrap()),
            runtime: Some(runtime),
            ..Default::default()
        };
        resolve(os, None, &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
    }

    fn has(args: &[String], flag: &str) -> bool {
        args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    }

    #[test]
    fn kubelet_flags_follow_the_version_table() {
        let s = settings(Os::Windows, Runtime::Docker);
        let old = kubelet_args(&s, KubeVersion::new(1, 14, 0), "kubeletwin/pause");
        assert!(has(&old, "--allow-privileged") && has(&old, "--network-plugin") && has(&old, "--log-file"));
        let s = settings(Os::Windows, Runtime::Containerd);
        let v126 = kubelet_args(&s, KubeVersion::new(1, 26, 0), "p");
        assert!(!has(&v126, "--allow-privileged") && !has(&v126, "--network-plugin") && !has(&v126, "--log-file"));
        assert!(has(&v126, "--pod-infra-container-image") && has(&v126, "--container-runtime"));
        let v127 = kubelet_args(&s, KubeVersion::new(1, 27, 0), "p");
        assert!(!has(&v127, "--pod-infra-container-image") && !has(&v127, "--container-runtime"));
        assert!(v127.contains(&"--container-runtime-endpoint=npipe:////./pipe/containerd-containerd".to_string()));
        assert!(v127.contains(&"--resolv-conf=".to_string()) && v127.contains(&"--windows-service".to_string()));
    }

    #[test]
    fn linux_kubelet_serves_only_authenticated_callers_under_its_own_roots() {
        let p = PartialSettings {
            node_name: Some("worker-1".into()),
            cgroup_root: Some("/wkjlab-worker-1".into()),
            pause_image: Some("wkjoin.local/pause:1.0".into()),
            kubelet_arg: Some(vec!["resolv-conf=/etc/lab.conf".into(), "--v=4".into(), "fail-swap-on=false".into()]),
            ..Default::default()
        };
        let s = resolve(Os::Linux, Some("/srv/w1"), &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap();
        let a = kubelet_args(&s, KubeVersion::new(1, 20, 2), &s.pause_image);
        for f in [
            "--anonymous-auth=false",
            "--authorization-mode=Webhook",
            "--client-ca-file=/srv/w1/pki/cluster-ca.crt",
            "--root-dir=/srv/w1/kubelet",
            "--cgroup-root=/wkjlab-worker-1",
            "--pod-infra-container-image=wkjoin.local/pause:1.0",
            "--resolv-conf=/etc/lab.conf",
            "--fail-swap-on=false",
        ] {
            assert!(a.contains(&f.to_string()), "{f} missing from {a:?}");
        }
        // An extra flag replaces wkjoin's own of the same name, in place.
        assert_eq!(a.iter().filter(|x| x.starts_with("--v=")).collect::<Vec<_>>(), ["--v=4"]);
        let plan = plan(&s, Some(KubeVersion::new(1, 20, 2)), &s.pause_image);
        assert!(plan.actions.contains(&Action::CreateCgroup { path: "/wkjlab-worker-1".into() }));
    }

    #[test]
    fn extra_flags_override_or_append() {
        let base = vec!["--a=1".to_string(), "--b".into(), "--a=2".into()];
        let out = with_extra_flags(base, &["a=3".into(), "--c=x=y".into(), "b=false".into()]);
        assert_eq!(out, ["--a=3", "--b=false", "--c=x=y"]);
        assert_eq!(extra_flag_name("--node-labels=a=b"), Some("node-labels"));
        assert_eq!(extra_flag_name("=x"), None);
        assert_eq!(extra_flag_name("a b=c"), None);
    }

    #[test]
    fn windows_services_become_scm_services_that_talk_to_the_scm() {
        let s = settings(Os::Windows, Runtime::Containerd);
        let p = plan(&s, Some(KubeVersion::new(1, 20, 2)), "p");
        let specs: Vec<&ServiceSpec> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::InstallService(sp) => Some(sp),
                _ => None,
            })
            .collect();
        let names: Vec<&str> = specs.iter().map(|sp| sp.name.as_str()).collect();
        assert_eq!(names, [KUBELET, KUBE_PROXY, ROUTES_WATCHER]);
        for sp in &specs {
            assert!(sp.args.iter().any(|a| a == "--windows-service"), "{} is not SCM-aware", sp.name);
        }
        // The SCM starts the kubelet after containerd, and stops it first.
        assert_eq!(crate::host::scm_calls::desired(specs[0]).dependencies, ["containerd"]);
        let proxy = crate::host::scm_calls::desired(specs[1]);
        assert_eq!(proxy.dependencies, [KUBELET]);
        assert_eq!(proxy.environment, [format!("KUBE_NETWORK={}", s.network_name)]);
        assert!(proxy.command_line.starts_with(r#""C:\k\kube-proxy.exe" --kubeconfig=C:\k\config "#));
        let routes = crate::host::scm_calls::desired(specs[2]);
        assert!(routes.command_line.starts_with(r#""C:\k\wkjoin.exe" routes --watch "#), "{}", routes.command_line);
        // The Linux watcher is a plain process (supervisor or systemd).
        let linux = routes_watcher_args(&settings(Os::Linux, Runtime::Containerd));
        assert!(!linux.iter().any(|a| a == "--windows-service"));
    }

    /// From 1.26 the SCM runs `wkjoin.exe log-runner -- <binary> <args>` (no `--windows-service` for the binary),
    /// installed before the first service that needs it; before 1.26 the binaries are the services.
    #[test]
    fn from_1_26_the_windows_services_run_under_wkjoins_log_runner() {
        let s = settings(Os::Windows, Runtime::Containerd);
        let plan = plan(&s, Some(KubeVersion::new(1, 29, 0)), "p");
        let specs: Vec<&ServiceSpec> = plan_specs(&plan);
        for sp in &specs[..2] {
            assert_eq!(sp.program, r"C:\k\wkjoin.exe", "{}", sp.name);
            let binary = format!(r"C:\k\{}.exe", sp.name);
            let head = [
                "log-runner".into(),
                format!("--service={}", sp.name),
                format!(r"--log-file=C:\k\logs\{}.log", sp.name),
                "--".into(),
                binary,
            ];
            assert_eq!(sp.args[..5], head, "{:?}", sp.args);
            assert!(!sp.args.iter().any(|a| a == "--windows-service"), "{:?}", sp.args);
        }
        let self_at = plan.actions.iter().position(|a| matches!(a, Action::InstallSelf { .. })).unwrap();
        let kubelet_at =
            plan.actions.iter().position(|a| matches!(a, Action::InstallService(sp) if sp.name == KUBELET));
        assert!(self_at < kubelet_at.unwrap(), "wkjoin.exe is installed before the service that runs it");
        let old = plan_specs(&super::plan(&s, Some(KubeVersion::new(1, 25, 9)), "p"))
            .iter()
            .map(|sp| sp.program.clone())
            .collect::<Vec<_>>();
        assert_eq!(old[..2], [r"C:\k\kubelet.exe".to_string(), r"C:\k\kube-proxy.exe".to_string()]);
    }

    fn plan_specs(p: &Plan) -> Vec<&ServiceSpec> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::InstallService(sp) => Some(sp),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn kube_proxy_network_name_matches_the_cni_config() {
        let s = settings(Os::Windows, Runtime::Containerd);
        let (args, env) = kube_proxy_args(&s, KubeVersion::new(1, 20, 2));
        assert!(args.contains(&"--proxy-mode=kernelspace".to_string()));
        let cni: serde_json::Value =
            serde_json::from_str(&network::windows_cni_config(&s, "10.244.1.0/24".parse().unwrap())).unwrap();
        assert_eq!(env["KUBE_NETWORK"], cni["name"].as_str().unwrap());
        assert!(args.contains(&format!("--network-name={}", cni["name"].as_str().unwrap())), "{args:?}");
    }
}
